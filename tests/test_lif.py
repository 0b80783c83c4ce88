"""LIF: RTL under cocotb/Verilator against the golden model, exact, with gaps and backpressure."""

import json

import numpy as np
import pytest

from spikeforge.cli import main
from spikeforge.cores import get_core
from spikeforge.sim.run import simulate

SPEC = get_core("lif")

# (overrides, steps): both presets, ternary and binary, small and large n, per-step lists,
# subtractive ternary reset, the hazard stall (one beat per step) and saturation.
CASES = {
    "spikelm": ({"preset": "spikelm", "n": 64, "p": 4}, 400),
    "bispikclm": ({"preset": "bispikclm", "n": 32, "p": 8}, 700),
    "large_n": ({"preset": "spikelm", "n": 2048, "p": 16}, 12),
    "single": ({"preset": "bispikclm", "n": 1, "p": 1, "theta_pos": 5, "theta_reset": 5}, 20000),
    "per_step_rho": ({"preset": "spikelm", "n": 24, "p": 3, "T": 3, "rho": 1, "frac": 4,
                      "beta_pos": [16, 8, 12], "beta_zero": [15, 14, 13], "beta_neg": 9,
                      "theta_pos": [40, 50, 60], "theta_neg": 45, "theta_reset": [30, 20, 10]}, 1000),
    "saturate": ({"preset": "bispikclm", "n": 8, "p": 2, "x_width": 12, "m_width": 10, "frac": 4,
                  "beta_pos": 16, "beta_zero": 16, "beta_neg": 16, "theta_pos": 511,
                  "theta_reset": 0}, 3000),
}


# In CI: four sets (both presets, ternary and binary, n from 8 to 2048, the stall at n/p = 4);
# the single-neuron and per-step sets also run in the slow suite (the Amaranth-simulator tests
# and the fuzzing cover per-step lists and the stall boundaries in CI).
SLOW_CASES = {"single", "per_step_rho"}


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW_CASES
                                  else c for c in sorted(CASES)])
def test_rtl_matches_golden(case, tmp_path):
    overrides, steps = CASES[case]
    params = SPEC.params(overrides)
    assert steps * params["n"] >= 20000          # at least 20,000 neuron-steps per parameter set
    s = simulate(SPEC, params, steps=steps, seed=sum(map(ord, case)), out_dir=tmp_path,
                 progress=lambda m: None)
    assert s["beats_got"] == s["beats_expected"] == steps * params["n"] // params["p"]
    assert s["mismatches"] == 0 and s["beat_mismatches"] == 0, s["first_divergence"]
    assert s["bit_exact"]
    assert s["events"] > 0                        # the stimulus makes the neurons fire
    assert (tmp_path / "golden.npz").exists() and (tmp_path / "rtl.npz").exists()


def test_saturation_reaches_both_rails():
    from spikeforge.golden.lif import lif
    overrides, steps = CASES["saturate"]
    params = SPEC.params(overrides)
    stim = SPEC.stimulus(params, steps, np.random.default_rng(sum(map(ord, "saturate"))))
    beats = stim["i"]
    x = np.array([b["x"] for b in beats]).reshape(steps, params["n"])
    first = np.array([beats[k * 4]["first"] for k in range(steps)], dtype=bool)
    kwargs = {k: v for k, v in params.items() if k != "preset"}
    _, m = lif(x, first, **kwargs, return_membrane=True)
    assert m.max() == 2 ** 9 - 1 and m.min() == -2 ** 9


def test_full_throughput_cycles(tmp_path):
    """Without gaps the array sustains p neuron-updates per cycle once n/p covers the hazard window."""
    params = SPEC.params({"n": 64, "p": 4})
    s = simulate(SPEC, params, steps=50, seed=7, gaps=False, progress=lambda m: None)
    res = s["_result"]
    cycles = res.cycles["o"]
    assert s["bit_exact"]
    assert cycles[-1] - cycles[0] == len(cycles) - 1


def test_cli_sim_exact_and_golden_mutation_detected(tmp_path, monkeypatch, capsys):
    out = tmp_path / "ok"
    assert main(["sim", "lif", "--steps", "300", "--seed", "1", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("core", "params", "seed", "steps", "events", "mismatches", "bit_exact"):
        assert key in summary
    assert summary["bit_exact"] is True and summary["mismatches"] == 0

    # Change one constant of the golden model: the comparison must fail and name the step.
    import spikeforge.sim.specs.lif as lif_spec
    real = lif_spec.golden_lif

    def mutated(x, first, **kw):
        kw["theta_pos"] = [t + 1 for t in kw["theta_pos"]] if isinstance(kw["theta_pos"], list) \
            else kw["theta_pos"] + 1
        return real(x, first, **kw)
    monkeypatch.setattr(lif_spec, "golden_lif", mutated)
    bad = tmp_path / "bad"
    assert main(["sim", "lif", "--steps", "300", "--seed", "1", "--out", str(bad)]) == 1
    text = capsys.readouterr().out
    assert "first divergence at step" in text
    summary = json.loads((bad / "summary.json").read_text())
    assert summary["bit_exact"] is False and summary["mismatches"] > 0
    assert summary["first_divergence"]["step"] >= 0


def test_cli_bad_param(capsys):
    assert main(["sim", "lif", "--param", "p=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spikeforge: error: LIF parameter 'p' must divide n=16, not 3")
    assert main(["sim", "lif", "--param", "nope=1"]) == 2
    assert "has no parameter 'nope'" in capsys.readouterr().err
