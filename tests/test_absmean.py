"""absmean: RTL under cocotb/Verilator against the golden model, exact, with gaps and
backpressure, on three parameter sets; full-throughput cycle counts; the CLI."""

import json

import numpy as np
import pytest

from spikeforge.cli import main
from spikeforge.cores import get_core
from spikeforge.golden.vectors import split_vectors
from spikeforge.sim.harness import run_rtl
from spikeforge.sim.run import simulate
from spikeforge.sim.specs._w2s import vector_beats

SPEC = get_core("absmean")

# (overrides, elements): the CLI defaults; one lane of 2-bit values (ties and zeros
# everywhere, d <= 5); 16 lanes of 24-bit values (the widest sum and divider).
CASES = {
    "default": ({}, 6000),
    "one_lane_2bit": ({"d_max": 5, "p": 1, "e_width": 2}, 3000),
    "wide": ({"d_max": 128, "p": 16, "e_width": 24}, 8000),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rtl_matches_golden(case, tmp_path):
    overrides, steps = CASES[case]
    params = SPEC.params(overrides)
    s = simulate(SPEC, params, steps=steps, seed=sum(map(ord, case)), out_dir=tmp_path,
                 progress=lambda m: None)
    assert s["beats_got"] == s["beats_expected"] > steps // params["p"] // 2
    assert s["mismatches"] == 0 and s["beat_mismatches"] == 0, s["first_divergence"]
    assert s["bit_exact"] and not s["timed_out"]
    assert s["events"] > 0


def test_stimulus_covers_the_edges():
    params = SPEC.params()
    stim = SPEC.stimulus(params, 6000, np.random.default_rng(sum(map(ord, "default"))))
    beats = stim["i"]
    first, last, empty = (np.array([b[k] for b in beats]) for k in ("first", "last", "empty"))
    _, n_beats, lengths = split_vectors(first, last, empty, p=4, max_beats=16)
    assert (lengths == 1).any() and (lengths == 64).any()
    e = [b["e"] for b in beats]
    assert any(all(v == 0 for v in x) for x in e)
    q = SPEC.golden(params, stim)["o"]
    assert len(q) == n_beats.sum()
    # Some vector has an element exactly on the split (2*d*|e| == S).
    starts = np.flatnonzero(np.r_[True, last[:-1].astype(bool)] | first.astype(bool))
    ties = 0
    for b0, g, d in zip(starts, n_beats, lengths):
        vals = np.array([x for k in range(g) for x in e[b0 + k]])[:d]
        ties += int((2 * d * np.abs(vals) == np.abs(vals).sum()).any() and vals.any())
    assert ties > 5


def test_full_throughput_cycles():
    """Without gaps, a vector of G beats occupies the core for 2*G + overhead_cycles cycles."""
    params = SPEC.params()                      # the CLI's build, cached
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 65, size=40)
    e = rng.integers(-2 ** 15, 2 ** 15, size=(40, 64))
    beats = vector_beats(e, lengths, 4, "e")
    core = SPEC.build(**params)
    res = run_rtl(core, {"i": beats}, {"o": len(beats)}, seed=3, gaps=False)
    want = SPEC.golden(params, {"i": beats})["o"]
    assert res.outputs["o"] == want
    G = -(-lengths // params["p"])
    first_in = np.array(res.input_cycles["i"])[np.r_[0, np.cumsum(G)[:-1]]]
    assert (np.diff(first_in) == 2 * G[:-1] + core.overhead_cycles).all()
    first_out = np.array(res.cycles["o"])[np.r_[0, np.cumsum(G)[:-1]]]
    last_in = np.array(res.input_cycles["i"])[np.cumsum(G) - 1]
    assert (first_out - last_in == core.latency).all()


def test_cli_sim_exact(tmp_path):
    out = tmp_path / "ok"
    assert main(["sim", "absmean", "--steps", "2000", "--seed", "1", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["bit_exact"] is True and summary["mismatches"] == 0
    assert summary["unit"] == "element" and summary["steps"] == 2000


def test_cli_bad_param(capsys):
    assert main(["sim", "absmean", "--param", "p=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spikeforge: error: AbsMean parameter 'p' must be a power of two "
                          "in 1..64, not 3")
