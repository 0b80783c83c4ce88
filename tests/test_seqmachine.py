# amaranth: UnusedElaboratable=no
"""Sequence machine: parameter rules, hand-checked golden behaviour, the recall benchmark, RTL vs
golden in the Amaranth simulator and under cocotb/Verilator (step for step, random valid gaps
and backpressure), and the documented cycle counts."""

import json
import re

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from spikeforge.cli import main
from spikeforge.cores import get_core
from spikeforge.golden.seqmachine import (DEFAULTS, benchmark_table, check_seqmachine_params,
                                          seqmachine, seqmachine_benchmark, seqmachine_cycles,
                                          seqmachine_recall, seqmachine_tables)
from spikeforge.rtl.seqmachine import SEQMACHINE_RTL_PARAMS, SeqMachine
from spikeforge.sim.run import simulate

SPEC = get_core("seqmachine")
SMALL = dict(DEFAULTS, S=10, M=16, N=3, K=6, W=32, w=4, a=6)
TOO_BIG = dict(SMALL, W=4096, M=128, N=100, w=32)    # 4096 x 128 exponents of 8 bits


def rtl(params, **tables):
    params = check_seqmachine_params(**params)
    return SeqMachine(**{k: params[k] for k in SEQMACHINE_RTL_PARAMS},
                      **(tables or seqmachine_tables(**params)))


def test_init():
    dut = rtl(SMALL)
    assert dut.signature == wiring.Signature({
        "i": In(stream.Signature(data.StructLayout({
            "sym": range(10), "learn": 1, "clear": 1, "first": 1, "last": 1}))),
        "o": Out(stream.Signature(data.StructLayout({
            "pred": range(10), "score": unsigned(10), "err": 1, "first": 1, "last": 1}))),
    })
    base = 2 * 16 + 6 + 32 + 4 + 3 + 10 + 19
    assert dut.cycles(learn=False, clear=False) == base
    assert dut.cycles(learn=True, clear=True) == base + 32 + 6
    assert dut.max_cycles_per_beat == base + 40
    assert seqmachine_cycles([0, 1, 1], [0, 0, 1], **SMALL).tolist() == \
        [base, base + 6, base + 38]


RTL_PARAMS = {k: SMALL[k] for k in SEQMACHINE_RTL_PARAMS}


@pytest.mark.parametrize("name, value, exc, message", [
    ("S", 1, ValueError, r"^SeqMachine parameter 'S' must be in 2\.\.1024, not 1$"),
    ("M", 129, ValueError, r"^SeqMachine parameter 'M' must be in 2\.\.128, not 129$"),
    ("N", 17, ValueError, r"^SeqMachine parameter 'N' must be in 1\.\.16 \(N <= M=16\), "
                          r"not 17$"),
    ("K", 0, ValueError, r"^SeqMachine parameter 'K' must be in 1\.\.16 \(K <= M=16\), not 0$"),
    ("w", 33, ValueError, r"^SeqMachine parameter 'w' must be in 1\.\.32 "
                          r"\(w <= min\(W=32, 32\)\), not 33$"),
    ("alpha", 256, ValueError, r"^SeqMachine parameter 'alpha' must be in 1\.\.255 "
                               r"\(alpha/2\^frac in \(0, 1\) with frac=8\), not 256$"),
    ("alpha", 0, ValueError, r"^SeqMachine parameter 'alpha' must be in 1\.\.255 "
                             r"\(alpha/2\^frac in \(0, 1\) with frac=8\), not 0$"),
    ("lam", 257, ValueError, r"^SeqMachine parameter 'lam' must be in 0\.\.256 "
                             r"\(lam/2\^frac in \[0, 1\] with frac=8\), not 257$"),
    ("frac", 2.0, TypeError, r"^SeqMachine parameter 'frac' must be an integer, not 2\.0$"),
])
def test_init_wrong_param(name, value, exc, message):
    with pytest.raises(exc, match=message):
        SeqMachine(**{**RTL_PARAMS, name: value}, **seqmachine_tables(**SMALL))


def test_init_wrong_memory_and_tables():
    with pytest.raises(ValueError, match=r"^SeqMachine parameter 'W' is too large for the "
                                         r"memory: 4096 rows of 128 weights of 8 bits need "
                                         r"4194304 bits, more than the 3833856 bits of block "
                                         r"RAM of an LFE5U-85F$"):
        SeqMachine(**{k: TOO_BIG[k] for k in SEQMACHINE_RTL_PARAMS}, codes=None, conn=None,
                   perm=None)
    tables = seqmachine_tables(**SMALL)
    codes = tables["codes"].copy()
    codes[3, 1] = codes[3, 0]
    with pytest.raises(ValueError, match=r"^SeqMachine table 'codes' must hold distinct "
                                         r"indices in each row$"):
        SeqMachine(**RTL_PARAMS, **{**tables, "codes": codes})
    with pytest.raises(ValueError, match=r"^SeqMachine table 'codes' must hold values in "
                                         r"0\.\.15$"):
        SeqMachine(**RTL_PARAMS, **{**tables, "codes": codes + 16})
    with pytest.raises(ValueError, match=r"^SeqMachine table 'perm' must be a permutation of "
                                         r"0\.\.M-1$"):
        SeqMachine(**RTL_PARAMS, **{**tables, "perm": np.zeros(16, np.int64)})
    with pytest.raises(ValueError, match=r"^SeqMachine table 'conn' must be an integer array "
                                         r"of shape \(32, 16\), not int64 \(16, 32\)$"):
        SeqMachine(**RTL_PARAMS, **{**tables, "conn": tables["conn"].T})
    with pytest.raises(TypeError, match=r"^SeqMachine has no parameter 'seed'$"):
        SeqMachine(**RTL_PARAMS, seed=1, **tables)


@pytest.mark.parametrize("name, value, exc, message", [
    ("N", 17, ValueError, r"^seqmachine parameter 'N' must be in 1\.\.16 \(N <= M=16\), "
                          r"not 17$"),
    ("K", 17, ValueError, r"^seqmachine parameter 'K' must be in 1\.\.16 \(K <= M=16\), "
                          r"not 17$"),
    ("a", 17, ValueError, r"^seqmachine parameter 'a' must be in 1\.\.16 \(a <= M=16\), "
                          r"not 17$"),
    ("alpha", 256, ValueError, r"^seqmachine parameter 'alpha' must be in 1\.\.255 "
                               r"\(alpha/2\^frac in \(0, 1\) with frac=8\), not 256$"),
    ("seed", -1, ValueError, r"^seqmachine parameter 'seed' must be in 0\.\.4294967295, "
                             r"not -1$"),
    ("w", True, TypeError, r"^seqmachine parameter 'w' must be an integer, not True$"),
])
def test_golden_wrong_param(name, value, exc, message):
    with pytest.raises(exc, match=message):
        check_seqmachine_params(**{**SMALL, name: value})


def test_golden_wrong_memory_and_input():
    with pytest.raises(ValueError, match=r"^seqmachine parameter 'W' is too large for the "
                                         r"memory: 4096 rows of 128 weights of 8 bits need "
                                         r"4194304 bits, more than the 3833856 bits of block "
                                         r"RAM of an LFE5U-85F$"):
        check_seqmachine_params(**TOO_BIG)
    with pytest.raises(TypeError, match=r"^seqmachine parameters missing: lam$"):
        check_seqmachine_params(**{k: v for k, v in SMALL.items() if k != "lam"})
    with pytest.raises(ValueError, match=r"^seqmachine input 'symbols' must be in 0\.\.15$"):
        seqmachine([16], [1], [1], [1], **SMALL)
    with pytest.raises(ValueError, match=r"^seqmachine input 'learn' must have shape \(2,\), "
                                         r"not \(1,\)$"):
        seqmachine([1, 2], [1], [1, 0], [1, 0], **SMALL)


# Golden behaviour ----------------------------------------------------------------------------

def test_tables():
    tab = seqmachine_tables(**SMALL)
    assert tab["codes"].shape == (10, 3) and tab["conn"].shape == (32, 16)
    assert all(len(set(row)) == 3 for row in tab["codes"].tolist())
    assert (tab["conn"].sum(axis=1) == 6).all()
    assert sorted(tab["perm"].tolist()) == list(range(16))
    again = seqmachine_tables(**SMALL)
    assert all(np.array_equal(tab[k], again[k]) for k in tab)
    other = seqmachine_tables(**dict(SMALL, seed=2))
    assert not np.array_equal(tab["codes"], other["codes"])


def run(params, seq, learn_passes=1):
    L = len(seq)
    symbols = np.tile(seq, learn_passes + 1)
    learn = np.repeat([1] * learn_passes + [0], L)
    first = np.tile(np.arange(L) == 0, learn_passes + 1)
    clear = np.arange(len(symbols)) == 0
    return seqmachine(symbols, learn, first, clear, **params)


def test_golden_learns_and_recalls_in_one_presentation():
    seq = [3, 1, 4, 0, 5, 9, 2, 6, 8, 7]
    pred, score, err = run(SMALL, seq)
    # Before anything is learnt, nothing is recalled: score 0, prediction 0.
    assert pred[0] == 0 and score[0] == 0
    assert pred[10:19].tolist() == seq[1:] and (score[10:19] > 0).all()
    assert not err.any()
    # Context disambiguates repeated symbols: 1 is followed by 2, then by 3.
    seq = [0, 1, 2, 4, 1, 3, 5, 6]
    pred, _, _ = run(SMALL, seq)
    assert pred[8:15].tolist() == seq[1:]


def test_golden_clear_first_and_unknown_symbol():
    seq = [3, 1, 4, 1, 5]
    symbols = seq + seq + seq
    learn = [1] * 5 + [0] * 10
    first = [1, 0, 0, 0, 0] * 3
    clear = [1] + [0] * 9 + [1, 0, 0, 0, 0]
    pred, score, _ = seqmachine(symbols, learn, first, clear, **SMALL)
    assert pred[5:9].tolist() == seq[1:]
    # After clear, nothing is recalled.
    assert (score[10:] == 0).all() and (pred[10:] == 0).all()
    # Symbols 10..15 have no code: no input spikes, err set; the context still decays.
    pred, score, err = seqmachine([12, 3, 15], [1, 1, 1], [1, 0, 0], [1, 0, 0], **SMALL)
    assert err.tolist() == [1, 0, 1]


def test_recall_and_benchmark():
    rng = np.random.default_rng(5)
    seqs = [rng.permutation(10) for _ in range(5)]
    assert seqmachine_recall(seqs, **dict(SMALL, W=128)).tolist() == [1.0] * 5
    # A second presentation does not hurt (the max write is idempotent).
    assert seqmachine_recall(seqs, presentations=2, **dict(SMALL, W=128)).tolist() == [1.0] * 5
    table = seqmachine_benchmark(lengths=(8, 48), Ws=(16, 256), trials=4, seed=1, S=16, M=32)
    assert set(table) == {(8, 16), (48, 16), (8, 256), (48, 256)}
    # Longer sequences need more memory: a small memory forgets, a large one recalls.
    assert table[48, 16] < table[48, 256] and table[48, 256] > 0.9
    assert table[8, 256] >= table[48, 256]
    text = benchmark_table(table).splitlines()
    assert text[0] == "| length \\ W | 16 | 256 |" and text[2].startswith("| 8 | ")


# RTL vs golden in the Amaranth simulator -----------------------------------------------------

def run_rtl(dut, beats, seed, *, gap=0.3, stall=0.3):
    rng = np.random.default_rng(seed)
    out, hung = [], []
    # A generous bound on the cycles the whole run takes.
    budget = (4 * (dut.M + dut.K + dut.W + dut.w + dut.N + dut.S) + 100) * (len(beats) + 1)

    async def producer(ctx):
        for beat in beats:
            while rng.random() < gap:
                await ctx.tick()
            ctx.set(dut.i.payload, beat)
            ctx.set(dut.i.valid, 1)
            while True:
                *_, ready = await ctx.tick().sample(dut.i.ready)
                if ready or hung:
                    break
            ctx.set(dut.i.valid, 0)
            if hung:
                return

    async def consumer(ctx):
        cycles = 0
        while len(out) < len(beats):
            cycles += 1
            if cycles > budget:              # a hung machine fails the test, not the suite
                hung.append(1)
                return
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


@pytest.mark.parametrize("overrides", [
    dict(SMALL, W=16),
    dict(S=2, M=2, N=1, K=1, W=1, w=1, a=1),
    dict(S=3, M=5, N=5, K=5, W=3, w=3, a=5, lam=0),
    dict(S=5, M=6, N=2, K=1, W=7, w=7, a=2, alpha=1, frac=1, lam=2),
    dict(S=33, M=7, N=3, K=7, W=5, w=2, a=7, frac=16, alpha=60000, lam=65536),
    # The step counter must reach S + 3 and W + 3: with S = 5 (or W = 5) and everything else
    # small it used to be one bit short and the machine never answered (found by fuzzing).
    dict(S=5, M=2, N=1, K=1, W=1, w=1, a=1, alpha=1, frac=1, lam=0),
    dict(S=2, M=2, N=1, K=1, W=5, w=1, a=1, alpha=1, frac=1, lam=0),
])
def test_rtl_matches_golden(overrides):
    params = SPEC.params(overrides)
    stim = SPEC.stimulus(params, 40, np.random.default_rng(2))
    expected = SPEC.golden(params, stim)["o"]
    out = run_rtl(SPEC.build(**params), stim["i"], 3)
    got = [{"pred": int(b.pred), "score": int(b.score), "err": int(b.err), "first": int(b.first),
            "last": int(b.last)} for b in out]
    assert got == expected
    if overrides["S"] == 10:
        assert any(e["score"] for e in expected) and any(e["err"] for e in expected)


def test_verilog_converts_without_multipliers():
    text = verilog.convert(rtl(SMALL), name="seqmachine")
    assert "module seqmachine" in text
    assert not re.search(r"[\w\])] \* [\w(]", text)      # no `*`: no DSP block


# RTL vs golden under cocotb/Verilator --------------------------------------------------------

# The defaults scaled down; S not a power of two (unknown symbols) with lam = 1; a tiny machine
# with a coarse significance (alpha = 12/16) where many values tie.
CASES = {
    "small": (dict(S=16, M=16, N=3, K=6, W=32, w=4, a=6), 160),
    "odd": (dict(S=10, M=24, N=4, K=10, W=48, w=6, a=8, alpha=200, lam=256, seed=7), 160),
    "tiny": (dict(S=4, M=8, N=2, K=3, W=16, w=3, a=3, alpha=12, frac=4, lam=8, seed=3), 160),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cocotb_recall_matches_golden(case, tmp_path):
    overrides, steps = CASES[case]
    params = SPEC.params(overrides)
    seed = sum(map(ord, case))
    beats = SPEC.stimulus(params, steps, np.random.default_rng(seed))["i"]
    recalls = sum(1 for b in beats if b["first"] and not b["learn"])
    assert recalls >= 5                      # at least 5 random sequences learnt and recalled
    s = simulate(SPEC, params, steps=steps, seed=seed, out_dir=tmp_path,
                 progress=lambda m: None)
    assert s["beats_got"] == s["beats_expected"] == steps
    assert s["mismatches"] == 0 and s["beat_mismatches"] == 0, s["first_divergence"]
    assert s["bit_exact"] and not s["timed_out"]
    # The recall steps themselves, compared explicitly: prediction and score, step for step.
    got = s["_result"].outputs["o"]
    want = SPEC.golden(params, {"i": beats})["o"]
    recall = [k for k, b in enumerate(beats) if not b["learn"]]
    assert [(got[k]["pred"], got[k]["score"]) for k in recall] == \
        [(want[k]["pred"], want[k]["score"]) for k in recall]
    assert any(want[k]["score"] for k in recall)


def test_cycles_match_model():
    overrides, _ = CASES["small"]
    params = SPEC.params(overrides)
    s = simulate(SPEC, params, steps=40, seed=9, gaps=False, progress=lambda m: None)
    beats = SPEC.stimulus(params, 40, np.random.default_rng(9))["i"]
    res = s["_result"]
    taken = np.array(res.cycles["o"]) - np.array(res.input_cycles["i"])
    model = seqmachine_cycles([b["learn"] for b in beats], [b["clear"] for b in beats], **params)
    assert s["bit_exact"] and np.array_equal(taken, model)


def test_cli_sim_and_bad_param(tmp_path, capsys):
    args = ["--param", "M=16", "--param", "N=3", "--param", "K=6", "--param", "W=32",
            "--param", "a=6"]
    assert main(["sim", "seqmachine", *args, "--steps", "60", "--seed", "2", "--out",
                 str(tmp_path)]) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["bit_exact"] is True
    assert main(["sim", "seqmachine", "--param", "N=33"]) == 2
    assert capsys.readouterr().err.startswith(
        "spikeforge: error: seqmachine parameter 'N' must be in 1..32 (N <= M=32), not 33")
