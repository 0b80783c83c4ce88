# amaranth: UnusedElaboratable=no
"""Rank-order encoder: parameter rules, hand-checked golden cases, RTL vs golden in the Amaranth
simulator and under cocotb/Verilator, with random valid gaps and backpressure."""

import json
import re

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from spikeforge.cli import main
from spikeforge.cores import get_core
from spikeforge.golden.rankorder import rankorder, significance
from spikeforge.rtl.rankorder import RankOrder, check_rankorder_params, significance_table
from spikeforge.sim.run import simulate

SPEC = get_core("rankorder")
BASE = dict(M=6, N=3, width=4, order="largest", alpha=192, frac=8, outputs="both")


def test_init():
    dut = RankOrder(**BASE)
    assert dut.signature == wiring.Signature({
        "i": In(stream.Signature(data.StructLayout({
            "x": data.ArrayLayout(signed(4), 6), "first": 1, "last": 1}))),
        "o": Out(stream.Signature(data.StructLayout({
            "idx": data.ArrayLayout(range(6), 3), "sig": data.ArrayLayout(unsigned(9), 6),
            "first": 1, "last": 1}))),
    })
    assert dut.latency == 3 and dut.params == BASE
    late = RankOrder(**{**BASE, "order": "earliest", "outputs": "indices"})
    assert late.i.payload.shape()["x"].shape == data.ArrayLayout(unsigned(4), 6)
    assert set(late.o.payload.shape().members) == {"idx", "first", "last"}
    sig = RankOrder(**{**BASE, "outputs": "significance"})
    assert set(sig.o.payload.shape().members) == {"sig", "first", "last"}


@pytest.mark.parametrize("name, value, exc, message", [
    ("M", 1, ValueError, r"^RankOrder parameter 'M' must be in 2\.\.64, not 1$"),
    ("M", 65, ValueError, r"^RankOrder parameter 'M' must be in 2\.\.64, not 65$"),
    ("M", 6.0, TypeError, r"^RankOrder parameter 'M' must be an integer, not 6\.0$"),
    ("N", 7, ValueError, r"^RankOrder parameter 'N' must be in 1\.\.6 \(N <= M=6\), not 7$"),
    ("N", 0, ValueError, r"^RankOrder parameter 'N' must be in 1\.\.6 \(N <= M=6\), not 0$"),
    ("width", 0, ValueError, r"^RankOrder parameter 'width' must be in 1\.\.24, not 0$"),
    ("order", "smallest", ValueError,
     r"^RankOrder parameter 'order' must be one of 'earliest', 'largest', not 'smallest'$"),
    ("frac", 0, ValueError, r"^RankOrder parameter 'frac' must be in 1\.\.16, not 0$"),
    ("alpha", 256, ValueError, r"^RankOrder parameter 'alpha' must be in 1\.\.255 "
                               r"\(alpha/2\^frac in \(0, 1\) with frac=8\), not 256$"),
    ("alpha", 0, ValueError, r"^RankOrder parameter 'alpha' must be in 1\.\.255 "
                             r"\(alpha/2\^frac in \(0, 1\) with frac=8\), not 0$"),
    ("alpha", 0.75, TypeError, r"^RankOrder parameter 'alpha' must be an integer, not 0\.75$"),
    ("alpha", True, TypeError, r"^RankOrder parameter 'alpha' must be an integer, not True$"),
    ("outputs", "all", ValueError, r"^RankOrder parameter 'outputs' must be one of 'both', "
                                   r"'indices', 'significance', not 'all'$"),
])
def test_init_wrong_param(name, value, exc, message):
    with pytest.raises(exc, match=message):
        RankOrder(**{**BASE, name: value})


def test_init_wrong_names():
    with pytest.raises(TypeError, match=r"^RankOrder parameters missing: alpha$"):
        RankOrder(**{k: v for k, v in BASE.items() if k != "alpha"})
    with pytest.raises(TypeError, match=r"^RankOrder has no parameter 'beta'$"):
        check_rankorder_params(**BASE, beta=1)


# Golden, hand-checked ------------------------------------------------------------------------

def test_significance_table():
    # 0.75 at F=8: 256, 192, 144, 108, 81, floor(60.75)=60, floor(45.56)=45.
    assert significance(192, 8, 7).tolist() == [256, 192, 144, 108, 81, 60, 45]
    assert significance_table(192, 8, 7) == [256, 192, 144, 108, 81, 60, 45]
    # 0.5 at F=2 reaches 0 at rank 3 and stays there.
    assert significance(2, 2, 6).tolist() == [4, 2, 1, 0, 0, 0]
    assert significance_table(2, 2, 6) == [4, 2, 1, 0, 0, 0]
    # Deep ranks stay exact (Python ints), no float rounding: alpha = 1 - 2^-16.
    a = 2 ** 16 - 1
    assert significance(a, 16, 40).tolist() == [(a ** k) // 2 ** (16 * (k - 1)) if k else 2 ** 16
                                                for k in range(40)]
    with pytest.raises(ValueError, match=r"^rankorder parameter 'alpha' must be in 1\.\.3, "
                                         r"not 4$"):
        significance(4, 2, 3)


def test_golden_largest_ties():
    idx, sig = rankorder([[3, 7, 3, -8, 7, 0]], **BASE)
    # 7 (index 1) before 7 (index 4), then the lower-index 3.
    assert idx.tolist() == [[1, 4, 0]]
    assert sig.tolist() == [[144, 256, 0, 0, 192, 0]]


def test_golden_earliest_never_fired():
    params = dict(BASE, order="earliest", N=4, alpha=128)
    # Latency 15 = never fired: it ranks last, and ties among silent neurons go to the lower index.
    idx, sig = rankorder([[15, 2, 15, 0, 2, 15]], **params)
    assert idx.tolist() == [[3, 1, 4, 0]]
    assert sig.tolist() == [[32, 128, 0, 256, 64, 0]]


def test_golden_all_equal_and_shapes():
    idx, sig = rankorder(np.zeros((2, 6), np.int64), **BASE)
    assert idx.tolist() == [[0, 1, 2]] * 2
    assert sig.tolist() == [[256, 192, 144, 0, 0, 0]] * 2
    idx, sig = rankorder(np.zeros((0, 6), np.int64), **BASE)
    assert idx.shape == (0, 3) and sig.shape == (0, 6)


def test_golden_wrong_input():
    with pytest.raises(ValueError, match=r"^rankorder input 'x' must be in -8\.\.7 \(width=4, "
                                         r"order='largest'\), not 8$"):
        rankorder([[8, 0, 0, 0, 0, 0]], **BASE)
    with pytest.raises(ValueError, match=r"^rankorder input 'x' must be in 0\.\.15 \(width=4, "
                                         r"order='earliest'\), not -1$"):
        rankorder([[-1, 0, 0, 0, 0, 0]], **dict(BASE, order="earliest"))
    with pytest.raises(ValueError, match=r"^rankorder input 'x' must have shape \(S, 6\), "
                                         r"not \(5,\)$"):
        rankorder([1, 2, 3, 4, 5], **BASE)
    with pytest.raises(TypeError, match=r"^rankorder input 'x' must be an integer array, "
                                        r"not float64$"):
        rankorder([[1.0] * 6], **BASE)
    with pytest.raises(ValueError, match=r"^rankorder parameter 'N' must be in 1\.\.6, not 7$"):
        rankorder([[0] * 6], **dict(BASE, N=7))
    with pytest.raises(ValueError, match=r"^rankorder parameter 'alpha' must be in 1\.\.255, "
                                         r"not 256$"):
        rankorder([[0] * 6], **dict(BASE, alpha=256))


# RTL vs golden in the Amaranth simulator -----------------------------------------------------

def run_rtl(params, beats, seed, *, gap=0.3, stall=0.3):
    """Drive ``beats`` with random valid gaps, take the output with random ready."""
    dut = RankOrder(**params)
    rng = np.random.default_rng(seed)
    out = []

    async def producer(ctx):
        for beat in beats:
            while rng.random() < gap:
                await ctx.tick()
            ctx.set(dut.i.payload, beat)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        while len(out) < len(beats):
            ready = int(rng.random() >= stall)
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and ready:
                out.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return out


@pytest.mark.parametrize("params", [
    BASE,
    dict(BASE, M=2, N=2, width=1, order="earliest", alpha=1, frac=1),
    dict(BASE, M=9, N=9, width=3, order="earliest", outputs="indices"),
    dict(BASE, M=5, N=1, width=6, alpha=65535, frac=16, outputs="significance"),
])
def test_rtl_matches_golden(params):
    rng = np.random.default_rng(params["M"])
    stim = SPEC.stimulus(params, 60, rng)
    expected = SPEC.golden(params, stim)["o"]
    out = run_rtl(params, stim["i"], 5)
    for got, want in zip(out, expected, strict=True):
        if "idx" in want:
            assert [int(v) for v in got.idx] == want["idx"]
        if "sig" in want:
            assert [int(v) for v in got.sig] == want["sig"]
        assert (got.first, got.last) == (want["first"], want["last"])


def test_verilog_converts_without_multipliers():
    text = verilog.convert(RankOrder(**BASE), name="rankorder")
    assert "module rankorder" in text
    assert not re.search(r"[\w\])] \* [\w(]", text)      # no `*`: no DSP block


# RTL vs golden under cocotb/Verilator --------------------------------------------------------

# Signed and latency inputs, N = M, N = 1, every outputs choice, alpha at both ends.
CASES = {
    "default": ({}, 3000),
    "latency_full": ({"M": 12, "N": 12, "width": 4, "order": "earliest", "alpha": 3, "frac": 2,
                      "outputs": "indices"}, 2000),
    "wide_sig": ({"M": 24, "N": 1, "width": 12, "alpha": 65535, "frac": 16,
                  "outputs": "significance"}, 2000),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cocotb_matches_golden(case, tmp_path):
    overrides, steps = CASES[case]
    params = SPEC.params(overrides)
    s = simulate(SPEC, params, steps=steps, seed=sum(map(ord, case)), out_dir=tmp_path,
                 progress=lambda m: None)
    assert s["beats_got"] == s["beats_expected"] == steps
    assert s["mismatches"] == 0 and s["beat_mismatches"] == 0, s["first_divergence"]
    assert s["bit_exact"] and s["events"] > 0


def test_full_throughput_cycles():
    s = simulate(SPEC, SPEC.params({}), steps=100, seed=3, gaps=False, progress=lambda m: None)
    cycles = s["_result"].cycles["o"]
    assert s["bit_exact"] and cycles[-1] - cycles[0] == len(cycles) - 1
    assert cycles[0] - s["_result"].input_cycles["i"][0] == RankOrder.latency


def test_cli_sim_and_bad_param(tmp_path, capsys):
    assert main(["sim", "rankorder", "--steps", "500", "--seed", "2", "--out",
                 str(tmp_path)]) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["bit_exact"] is True
    assert main(["sim", "rankorder", "--param", "N=17"]) == 2
    assert capsys.readouterr().err.startswith(
        "spikeforge: error: RankOrder parameter 'N' must be in 1..16 (N <= M=16), not 17")
