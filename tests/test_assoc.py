# amaranth: UnusedElaboratable=no
"""Associative memory: parameter rules, hand-checked golden cases, the Word2Spike retrieval demo,
RTL vs golden in the Amaranth simulator and under cocotb/Verilator, with run-time writes,
random valid gaps and backpressure."""

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
from spikeforge.cores import ParamError, get_core
from spikeforge.firmware.image import save_image
from spikeforge.golden.assoc import (assoc, assoc_scores, assoc_write, synthetic_codes,
                                     word2spike_retrieval)
from spikeforge.rtl.assoc import ASSOC_PARAMS, Assoc, check_assoc_params
from spikeforge.sim.run import simulate

SPEC = get_core("assoc")
TERN = dict(K=8, D=5, kind="ternary", N=2, alpha=192, frac=8, banks=2, top_k=3)
RANK = dict(K=6, D=12, kind="rank", N=3, alpha=128, frac=8, banks=2, top_k=2)


def test_init():
    dut = Assoc(**TERN)
    code = data.ArrayLayout(signed(2), 5)
    assert dut.signature == wiring.Signature({
        "i": In(stream.Signature(data.StructLayout({"q": code, "first": 1, "last": 1}))),
        "w": In(stream.Signature(data.StructLayout({"addr": range(8), "code": code}))),
        "o": Out(stream.Signature(data.StructLayout({
            "index": data.ArrayLayout(range(8), 3), "score": data.ArrayLayout(signed(4), 3),
            "err": 1, "first": 1, "last": 1}))),
    })
    # 4 slots + 10 + top_k + the merge (2 banks * 3 - 1); merge-bound interval 2 * 3.
    assert (dut.rows, dut.slots, dut.latency, dut.interval) == (4, 4, 4 + 10 + 3 + 5, 6)
    assert dut.max_cycles_per_beat == dut.interval        # the harness's cycle budget
    assert dut.params == TERN
    rank = Assoc(**RANK)
    assert rank.i.payload.shape()["q"].shape == data.ArrayLayout(range(12), 3)
    # Scores bounded by (256 + 128 + 64)^2 = 200704 < 2^18.
    assert rank.score_shape == unsigned(18)


@pytest.mark.parametrize("name, value, exc, message", [
    ("kind", "binary", ValueError,
     r"^Assoc parameter 'kind' must be one of 'rank', 'ternary', not 'binary'$"),
    ("K", 0, ValueError, r"^Assoc parameter 'K' must be in 1\.\.65536, not 0$"),
    ("K", 8.0, TypeError, r"^Assoc parameter 'K' must be an integer, not 8\.0$"),
    ("D", 0, ValueError, r"^Assoc parameter 'D' must be in 1\.\.1024, not 0$"),
    ("N", 33, ValueError, r"^Assoc parameter 'N' must be in 1\.\.32, "
                          r"not 33$"),
    ("frac", 17, ValueError, r"^Assoc parameter 'frac' must be in 1\.\.16, not 17$"),
    ("alpha", 256, ValueError, r"^Assoc parameter 'alpha' must be in 1\.\.255 "
                               r"\(alpha/2\^frac in \(0, 1\) with frac=8\), not 256$"),
    ("alpha", 0, ValueError, r"^Assoc parameter 'alpha' must be in 1\.\.255 "
                             r"\(alpha/2\^frac in \(0, 1\) with frac=8\), not 0$"),
    ("banks", 3, ValueError,
     r"^Assoc parameter 'banks' must be a power of two dividing K=8, not 3$"),
    ("banks", 16, ValueError, r"^Assoc parameter 'banks' must be a power of two dividing "
                              r"K=8, not 16$"),
    ("banks", 0, ValueError, r"^Assoc parameter 'banks' must be in 1\.\.64, not 0$"),
    ("top_k", 9, ValueError, r"^Assoc parameter 'top_k' must be in 1\.\.8 "
                             r"\(top_k <= min\(K=8, 16\)\), not 9$"),
])
def test_init_wrong_param(name, value, exc, message):
    with pytest.raises(exc, match=message):
        Assoc(**{**TERN, name: value})


def test_init_wrong_memory():
    with pytest.raises(ValueError, match=r"^Assoc parameter 'K' is too large for the memory: "
                                         r"65536 codes of 128 bits need 8388608 bits, more "
                                         r"than the 3833856 bits of block RAM of an "
                                         r"LFE5U-85F$"):
        Assoc(**{**TERN, "K": 65536, "D": 64})
    with pytest.raises(ValueError, match=r"^Assoc parameter 'N' must be in 1\.\.2 "
                                         r"\(N <= min\(D=2, 32\)\), not 3$"):
        Assoc(**{**RANK, "D": 2})
    with pytest.raises(ValueError, match=r"^Assoc 'patterns' must be an integer array of "
                                         r"shape \(6, 3\), not int64 \(6, 2\)$"):
        Assoc(**RANK, patterns=np.zeros((6, 2), np.int64))
    with pytest.raises(ValueError, match=r"^Assoc 'patterns' must hold values in 0\.\.11$"):
        Assoc(**RANK, patterns=np.full((6, 3), 12))
    with pytest.raises(TypeError, match=r"^Assoc parameters missing: top_k$"):
        check_assoc_params(**{k: v for k, v in TERN.items() if k != "top_k"})
    with pytest.raises(TypeError, match=r"^Assoc has no parameter 'lanes'$"):
        check_assoc_params(**TERN, lanes=2)


def test_spec_wrong_param(tmp_path):
    with pytest.raises(ParamError, match=r"^assoc parameter 'init_seed' must be a "
                                         r"non-negative integer or None, not -1$"):
        SPEC.params({"init_seed": -1})
    with pytest.raises(ParamError, match=r"^assoc parameter 'image' must be a file path, "
                                         r"not 3$"):
        SPEC.params({"image": 3})


# Golden, hand-checked ------------------------------------------------------------------------

def test_golden_ternary_ties_and_illegal():
    memory = np.array([[1, 0, -1, 1, 0], [1, 1, 1, 1, 1], [1, 0, -1, 1, 0],
                       [-2, -2, -2, -2, -2], [0, 0, 0, 0, 0], [-1, 0, 1, -1, 0],
                       [1, 0, -1, 1, 1], [0, 1, 0, 0, 0]])
    # The last element of the query is illegal (-2 = 0b10): it counts as 0 and sets err.
    q = [[1, 0, -1, 1, -2], [0, 0, 0, 0, 0]]
    scores, err = assoc_scores(memory, q, D=5, kind="ternary", N=1, alpha=1, frac=1)
    assert scores.tolist() == [[3, 1, 3, 0, 0, -3, 3, 0], [0] * 8]
    assert err.tolist() == [True, False]
    index, score, err = assoc(memory, q, **TERN)
    # Three codes tie at 3: lowest indices first. All tie at 0: 0, 1, 2.
    assert index.tolist() == [[0, 2, 6], [0, 1, 2]]
    assert score.tolist() == [[3, 3, 3], [0, 0, 0]]


def test_golden_rank():
    memory = np.array([[0, 1, 2], [2, 1, 0], [5, 6, 7], [1, 0, 2], [0, 0, 0], [3, 4, 5]])
    s = [256, 128, 64]
    scores, err = assoc_scores(memory, [[0, 1, 2], [0, 9, 9]], D=12, kind="rank", N=3,
                               alpha=128, frac=8)
    assert scores[0].tolist() == [
        s[0] ** 2 + s[1] ** 2 + s[2] ** 2, 2 * s[0] * s[2] + s[1] ** 2, 0,
        2 * s[0] * s[1] + s[2] ** 2, s[0] * (s[0] + s[1] + s[2]), 0]
    # Repeated indices count every equal pair: (9 at ranks 1, 2) never matches here.
    assert scores[1].tolist() == [s[0] ** 2, s[0] * s[2], 0, s[0] * s[1],
                                  s[0] * (s[0] + s[1] + s[2]), 0]
    assert not err.any()
    # The invalid code [0, 0, 0] (index 0 at every rank) outscores the exact match.
    index, score, _ = assoc(memory, [[0, 1, 2]], **RANK)
    assert index.tolist() == [[4, 0]] and score.tolist() == [[114688, 86016]]


def test_golden_write_and_errors():
    memory = np.zeros((4, 2), np.int64)
    after = assoc_write(memory, [1, 3, 1], [[1, 1], [-1, 0], [0, -1]])
    assert after.tolist() == [[0, 0], [0, -1], [0, 0], [-1, 0]]
    assert memory.tolist() == [[0, 0]] * 4
    with pytest.raises(ValueError, match=r"^assoc write 'addr' must be in 0\.\.3$"):
        assoc_write(memory, [4], [[0, 0]])
    with pytest.raises(ValueError, match=r"^assoc input 'queries' must hold values in "
                                         r"-2\.\.1, not 2$"):
        assoc(np.zeros((8, 5), np.int64), [[2, 0, 0, 0, 0]], **TERN)
    with pytest.raises(ValueError, match=r"^assoc input 'memory' must hold K=8 codes, "
                                         r"not shape \(7, 5\)$"):
        assoc(np.zeros((7, 5), np.int64), [[0] * 5], **TERN)
    with pytest.raises(ValueError, match=r"^assoc parameter 'top_k' must be in 1\.\.8, "
                                         r"not 9$"):
        assoc(np.zeros((8, 5), np.int64), [[0] * 5], **dict(TERN, top_k=9))
    with pytest.raises(ValueError, match=r"^assoc parameter 'banks' must be a power of two "
                                         r"dividing K=8, not 3$"):
        assoc(np.zeros((8, 5), np.int64), [[0] * 5], **dict(TERN, banks=3))
    with pytest.raises(ValueError, match=r"^rankorder parameter 'alpha' must be in 1\.\.255, "
                                         r"not 0$"):
        assoc(np.zeros((8, 5), np.int64), [[0] * 5], **dict(TERN, alpha=0))


# Word2Spike retrieval demo -------------------------------------------------------------------

def test_word2spike_retrieval():
    codes = synthetic_codes(64, 48, seed=2)
    assert codes.shape == (64, 48) and set(np.unique(codes)) == {-1, 0, 1}
    long = word2spike_retrieval(codes, W=300, seed=1, top_k=2)
    assert long["accuracy"] == 1.0 and long["top_k_accuracy"] == 1.0
    assert long["index"].shape == (64, 2) and long["decoded"].shape == codes.shape
    short = word2spike_retrieval(codes, W=10, seed=1)
    assert short["element_errors"] > long["element_errors"] and short["accuracy"] < 1.0
    # Any channel: here, flip the sign of the first 12 elements of every code.
    flipped = word2spike_retrieval(codes, W=1, channel=lambda c: np.concatenate(
        [-c[:, :12], c[:, 12:]], axis=1))
    assert flipped["exact"] == 0.0 and flipped["accuracy"] > 0.9
    with pytest.raises(ValueError, match=r"^word2spike_retrieval 'codes' must hold -1, 0, "
                                         r"\+1$"):
        word2spike_retrieval([[2]], W=5)
    with pytest.raises(ValueError, match=r"^word2spike_retrieval channel must return shape "
                                         r"\(64, 48\), not \(64, 47\)$"):
        word2spike_retrieval(codes, W=5, channel=lambda c: c[:, 1:])


# RTL vs golden in the Amaranth simulator -----------------------------------------------------

def run_rtl(dut, phases, n_out, seed, *, gap=0.3, stall=0.3):
    """Drive the phases (``{"i": [...], "w": [...]}``) in turn, with random gaps and ready."""
    rng = np.random.default_rng(seed)
    out = []

    async def producer(ctx):
        for phase in phases:
            for name in ("w", "i"):
                port = getattr(dut, name)
                for beat in phase.get(name, []):
                    while rng.random() < gap:
                        await ctx.tick()
                    ctx.set(port.payload, beat)
                    ctx.set(port.valid, 1)
                    await ctx.tick().until(port.ready)
                    ctx.set(port.valid, 0)

    async def consumer(ctx):
        while len(out) < n_out:
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


def check_rtl(overrides, steps, seed):
    params = SPEC.params(overrides)
    phases = SPEC.stimulus(params, steps, np.random.default_rng(seed))
    expected = SPEC.golden(params, phases)["o"]
    out = run_rtl(SPEC.build(**params), phases, len(expected), seed)
    for got, want in zip(out, expected, strict=True):
        assert [int(v) for v in got.index] == want["index"]
        assert [int(v) for v in got.score] == want["score"]
        assert (got.err, got.first, got.last) == (want["err"], want["first"], want["last"])
    return expected


@pytest.mark.parametrize("overrides", [
    dict(K=8, D=5, banks=2, top_k=3),
    dict(K=4, D=3, banks=4, top_k=4, init_seed=None),
    dict(K=6, D=7, kind="rank", N=3, banks=1, top_k=2, alpha=100, frac=7),
    dict(K=1, D=1, banks=1, top_k=1),
    dict(K=2, D=2, kind="rank", N=1, banks=2, top_k=2, alpha=1, frac=1),
    dict(K=32, D=20, banks=8, top_k=5),
])
def test_rtl_matches_golden(overrides):
    expected = check_rtl(overrides, 40, 4)
    if overrides["K"] > 2:
        assert len({tuple(e["index"]) for e in expected}) > 1


def test_rtl_write_with_query_same_cycle():
    """A write and a query in the same cycle: the write applies first."""
    dut = Assoc(**TERN)
    code = [1, -1, 1, -1, 1]
    got = []

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.w.payload, {"addr": 5, "code": code})
        ctx.set(dut.i.payload, {"q": code, "first": 1, "last": 1})
        ctx.set(dut.w.valid, 1)
        ctx.set(dut.i.valid, 1)
        assert ctx.get(dut.w.ready) and ctx.get(dut.i.ready)
        await ctx.tick()
        ctx.set(dut.w.valid, 0)
        ctx.set(dut.i.valid, 0)
        # While the query is scanned, writes wait.
        assert not ctx.get(dut.w.ready)
        (payload,) = await ctx.tick().sample(dut.o.payload).until(dut.o.valid)
        got.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert got[0].index[0] == 5 and got[0].score[0] == 5


def test_initial_image(tmp_path):
    params = SPEC.params(dict(K=4, D=6, kind="rank", N=2, banks=2, top_k=1))
    codes = np.array([[0, 1], [2, 3], [4, 5], [5, 4]])
    path = tmp_path / "codes.npz"
    save_image(path, core="assoc", params={}, memories={"codes": codes},
               specs={"codes": ((4, 2), 0, 5)})
    params = SPEC.params({**params, "image": str(path)})
    phases = [{"i": [{"q": [5, 4], "first": 1, "last": 1}, {"q": [2, 3], "first": 1,
                                                            "last": 1}]}]
    expected = SPEC.golden(params, phases)["o"]
    assert [e["index"] for e in expected] == [[3], [1]]
    out = run_rtl(SPEC.build(**params), phases, 2, 1)
    assert [int(b.index[0]) for b in out] == [3, 1]


@pytest.mark.parametrize("params", [TERN, RANK])
def test_verilog_converts_without_multipliers(params):
    text = verilog.convert(Assoc(**params), name="assoc")
    assert "module assoc" in text
    assert not re.search(r"[\w\])] \* [\w(]", text)      # no `*`: no DSP block


# RTL vs golden under cocotb/Verilator --------------------------------------------------------

# Ternary with 4 banks and a merge; rank codes with D not a power of two; one bank, top_k = K.
CASES = {
    "default": ({}, 3000),
    "rank": ({"K": 32, "D": 20, "kind": "rank", "N": 5, "alpha": 200, "frac": 8, "banks": 2,
              "top_k": 3}, 2000),
    "one_bank_all": ({"K": 16, "D": 9, "banks": 1, "top_k": 16}, 2000),
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
    params = SPEC.params({})
    s = simulate(SPEC, params, steps=60, seed=3, gaps=False, progress=lambda m: None)
    res, core = s["_result"], Assoc(**{k: params[k] for k in ASSOC_PARAMS})
    out, inp = np.array(res.cycles["o"]), np.array(res.input_cycles["i"])
    assert s["bit_exact"]
    assert out[0] - inp[0] == core.latency
    # Within a phase of queries, one result every `interval` cycles: 32 codes in 8 cycles.
    assert core.interval == 8 and np.median(np.diff(out)) == core.interval


def test_cli_sim_and_bad_param(tmp_path, capsys):
    assert main(["sim", "assoc", "--steps", "400", "--seed", "2", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["bit_exact"] is True
    assert main(["sim", "assoc", "--param", "K=70000"]) == 2
    assert capsys.readouterr().err.startswith(
        "spikeforge: error: Assoc parameter 'K' must be in 1..65536, not 70000")
