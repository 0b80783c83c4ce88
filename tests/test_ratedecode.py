"""ratedecode: RTL under cocotb/Verilator against the golden model, exact, with gaps and
backpressure, on three parameter sets; malformed windows; full-throughput cycles; the CLI."""

import json

import numpy as np
import pytest

from spikeforge.cli import main
from spikeforge.cores import get_core
from spikeforge.golden.ratedecode import ratedecode_beats
from spikeforge.sim.harness import run_rtl
from spikeforge.sim.run import simulate
from spikeforge.sim.specs._w2s import vector_beats

SPEC = get_core("ratedecode")

# (overrides, ticks): the CLI defaults (C = 2 from the encoder rates); 2-bit counters that
# saturate within a 9-tick window; one lane, one tick per window; a deep counter memory.
CASES = {
    "default": ({}, 3000),
    "saturate": ({"d_max": 16, "p": 8, "W": 9, "C": 3, "count_width": 2}, 2000),
    "one_lane_one_tick": ({"d_max": 3, "p": 1, "W": 1, "C": 1}, 2000),
    # 136 beats: a four-stage counter read, forwarding over seven beats.
    "deep": ({"d_max": 272, "p": 2, "W": 3}, 300),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rtl_matches_golden(case, tmp_path):
    overrides, steps = CASES[case]
    params = SPEC.params(overrides)
    s = simulate(SPEC, params, steps=steps, seed=sum(map(ord, case)), out_dir=tmp_path,
                 progress=lambda m: None)
    assert s["beats_got"] == s["beats_expected"] >= steps // params["W"]
    assert s["mismatches"] == 0 and s["beat_mismatches"] == 0, s["first_divergence"]
    assert s["bit_exact"] and not s["timed_out"]
    assert s["events"] > 0


def _golden_beats(params, beats):
    p = params["p"]
    s = np.array([b["s"] for b in beats]).reshape(-1, p)
    flags = np.array([(b["first"], b["last"], b["tick_last"], b["empty"]) for b in beats])
    q, lengths = ratedecode_beats(s, *flags.T, p=p, d_max=params["d_max"], C=params["C"],
                                  count_width=params["count_width"])
    return vector_beats(q, lengths, p, "q")


def test_rtl_malformed_windows():
    """Windows abandoned by `first`, windows shorter and longer than W, `last` mid-tick."""
    params = SPEC.params(CASES["saturate"][0])
    rng = np.random.default_rng(8)
    beats = SPEC.stimulus(params, 900, rng)["i"]
    cut = []
    k = 0
    while k < len(beats):                       # drop or repeat random stretches of beats
        n = int(rng.integers(1, 40))
        part = beats[k:k + n]
        u = rng.random()
        if u < 0.15:
            part = [dict(b, first=0, last=0) for b in part[:-1]]
        elif u < 0.25:
            part = part + [dict(b, first=0, last=0) for b in part]
        cut += part
        k += n
    cut[0] = dict(cut[0], first=1)
    want = _golden_beats(params, cut)
    res = run_rtl(SPEC.build(**params), {"i": cut}, {"o": len(want)}, seed=8)
    assert res.outputs["o"] == want and not res.timed_out
    assert len(want) > 20


def test_full_throughput_cycles():
    """Without gaps a window of W ticks of G beats takes (W+1)*G + 2*L + 3 cycles."""
    params = SPEC.params()
    core = SPEC.build(**params)
    beats = SPEC.stimulus(params, 40 * params["W"], np.random.default_rng(6))["i"]
    want = SPEC.golden(params, {"i": beats})["o"]
    res = run_rtl(core, {"i": beats}, {"o": len(want)}, seed=6, gaps=False)
    assert res.outputs["o"] == want
    begin = np.r_[0, np.flatnonzero([b["last"] for b in beats])[:-1] + 1]
    starts = np.array(res.input_cycles["i"])[begin]
    sizes = np.diff(np.r_[begin, len(beats)])   # input beats per window
    G = np.diff(np.r_[-1, np.flatnonzero([o["last"] for o in want])])   # output beats
    # Each window: every input beat (W*G, or more for a malformed tick) plus G read-out plus
    # 2*L + 3 (the last update landing, the read pipeline draining).
    extra = 2 * core.read_latency + 3
    assert (np.diff(starts) == sizes[:-1] + G[:-1] + extra).all()


def test_cli_sim_exact(tmp_path):
    out = tmp_path / "ok"
    assert main(["sim", "ratedecode", "--steps", "1000", "--seed", "2", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["bit_exact"] is True and summary["unit"] == "tick"
    assert summary["params"]["C"] == 2 and summary["params"]["count_width"] == 6


def test_cli_bad_param(capsys):
    assert main(["sim", "ratedecode", "--param", "C=64"]) == 2
    assert capsys.readouterr().err.startswith(
        "spikeforge: error: RateDecode parameter 'C' must be in 1..63, not 64")
