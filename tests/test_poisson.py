"""poisson: RTL under cocotb/Verilator against the golden model, exact, with gaps and
backpressure, on three parameter sets; full-throughput cycle counts; the CLI."""

import json

import numpy as np
import pytest

from spikeforge.cli import main
from spikeforge.cores import get_core
from spikeforge.sim.harness import run_rtl
from spikeforge.sim.run import simulate
from spikeforge.sim.specs._w2s import vector_beats

SPEC = get_core("poisson")

# (overrides, ticks): the CLI defaults; one lane with every rate nonzero (the illegal code
# then spikes at rate_zero); 16 lanes with extreme rates and two-tick windows; a deep buffer.
CASES = {
    "default": ({}, 3000),
    "one_lane": ({"d_max": 3, "p": 1, "W": 5, "seed": 0, "rate_pos": 40000,
                  "rate_zero": 9000, "rate_neg": 20000}, 3000),
    "wide": ({"d_max": 64, "p": 16, "W": 2, "seed": 2 ** 32 - 1, "rate_pos": 65535,
              "rate_neg": 1}, 1000),
    # 136 beats: nine LUT RAM banks, two levels of bank select.
    "deep": ({"d_max": 272, "p": 2, "W": 2, "seed": 5}, 300),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rtl_matches_golden(case, tmp_path):
    overrides, steps = CASES[case]
    params = SPEC.params(overrides)
    s = simulate(SPEC, params, steps=steps, seed=sum(map(ord, case)), out_dir=tmp_path,
                 progress=lambda m: None)
    assert s["beats_got"] == s["beats_expected"] >= steps
    assert s["mismatches"] == 0 and s["beat_mismatches"] == 0, s["first_divergence"]
    assert s["bit_exact"] and not s["timed_out"]
    assert s["events"] > 0


def test_stimulus_covers_illegal_code_and_framing():
    params = SPEC.params()
    beats = SPEC.stimulus(params, 3000, np.random.default_rng(sum(map(ord, "default"))))["i"]
    assert any(-2 in b["q"] for b in beats)
    assert any(b["first"] == 0 and k and beats[k - 1]["last"] for k, b in enumerate(beats))
    assert any(b["first"] and k and not beats[k - 1]["last"] for k, b in enumerate(beats))


def test_full_throughput_cycles():
    """Without gaps a vector of G beats takes (W+1)*G cycles; spikes leave one beat per cycle."""
    params = SPEC.params()
    core = SPEC.build(**params)
    rng = np.random.default_rng(5)
    lengths = rng.integers(1, 9, size=30)
    q = rng.integers(-1, 2, size=(30, 8))
    beats = vector_beats(q, lengths, params["p"], "q")
    want = SPEC.golden(params, {"i": beats})["o"]
    res = run_rtl(core, {"i": beats}, {"o": len(want)}, seed=5, gaps=False)
    assert res.outputs["o"] == want
    G = -(-lengths // params["p"])
    first_in = np.array(res.input_cycles["i"])[np.r_[0, np.cumsum(G)[:-1]]]
    assert (np.diff(first_in) == [core.cycles_per_vector(d) for d in lengths[:-1]]).all()
    out = np.array(res.cycles["o"])
    per_vector = np.split(out, np.cumsum(params["W"] * G)[:-1])
    assert all((np.diff(c) == 1).all() for c in per_vector)


def test_cli_sim_exact(tmp_path):
    out = tmp_path / "ok"
    assert main(["sim", "poisson", "--steps", "1000", "--seed", "2", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["bit_exact"] is True and summary["unit"] == "tick"


def test_cli_bad_param(capsys):
    assert main(["sim", "poisson", "--param", "rate_pos=70000"]) == 2
    assert capsys.readouterr().err.startswith(
        "spikeforge: error: Poisson parameter 'rate_pos' must be in 0..65535, not 70000")
