"""w2s_chain: the composed RTL under cocotb/Verilator against the composed golden model,
exact, with gaps and backpressure; the CLI."""

import json

import pytest

from spikeforge.cli import main
from spikeforge.cores import get_core
from spikeforge.sim.run import simulate

SPEC = get_core("w2s_chain")

# (overrides, ticks): the CLI defaults (64-tick windows, C = 5); short windows at high rates
# with one lane, so every decoded value occurs often.
CASES = {
    "default": ({}, 2500),
    "short_windows": ({"d_max": 4, "p": 1, "e_width": 6, "W": 3, "rate_pos": 50000,
                       "rate_zero": 2000, "rate_neg": 20000, "C": 2}, 1500),
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


def test_cli_sim_exact(tmp_path):
    out = tmp_path / "ok"
    assert main(["sim", "w2s_chain", "--steps", "640", "--seed", "3", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["bit_exact"] is True and summary["params"]["C"] == 5


def test_cli_bad_param(capsys):
    assert main(["sim", "w2s_chain", "--param", "W=0"]) == 2
    assert capsys.readouterr().err.startswith(
        "spikeforge: error: Poisson parameter 'W' must be in 1..65535, not 0")
