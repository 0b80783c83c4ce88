"""LIF edge cases that mutation testing (``python -m spikeforge.sim.mutate lif``) showed the
other tests did not pin: the golden model and the RTL accept exactly the same parameters, the
golden model names the first bad input, the SpikeLM preset's defaults, and leak constants whose
shift-and-add networks have three or more terms of one sign, or that are exactly 1."""

import re

import numpy as np
import pytest

from spikeforge.cores import get_core
from spikeforge.golden.lif import lif
from spikeforge.rtl.lif import check_lif_params, lif_preset
from spikeforge.sim.amaranth_bench import golden_mismatches, run_stream

LEGAL = {"n": 4, "p": 2, "T": 2, "x_width": 6, "m_width": 8, "frac": 3, "beta_pos": 0,
         "beta_zero": 4, "beta_neg": 8, "theta_pos": 10, "theta_neg": 9, "theta_reset": 3,
         "rho": 1, "bipolar": True}
RANGES = {"n": (1, 65536), "p": (1, 65536), "T": (1, 64), "x_width": (2, 24),
          "m_width": (2, 32), "frac": (0, 16), "beta_pos": (0, 8), "beta_zero": (0, 8),
          "beta_neg": (0, 8), "theta_pos": (1, 127), "theta_neg": (1, 127),
          "theta_reset": (0, 127), "rho": (0, 1)}


def _variants():
    """Each integer parameter at both ends of its range and one beyond, the rest legal."""
    for name, (lo, hi) in RANGES.items():
        for value in (lo - 1, lo, hi, hi + 1):
            params = {**LEGAL, name: value}
            if name == "n":
                params["p"] = 1
            if name == "p":     # p must divide n in the RTL; the golden model ignores p
                params["n"] = value if 1 <= value <= 65536 else 4
            if name == "frac" and value >= 0:
                params.update(beta_zero=min(4, 2 ** value), beta_neg=min(8, 2 ** value))
            if name == "m_width" and value >= 2:
                top = 2 ** (value - 1) - 1
                params.update(theta_pos=min(10, top), theta_neg=min(9, top),
                              theta_reset=min(3, top))
            yield f"{name}={value}", params
        if name not in ("n", "p", "x_width", "m_width", "frac", "rho", "T"):
            yield f"{name}=list", {**LEGAL, name: [lo, hi]}
            yield f"{name}=list-bad", {**LEGAL, name: [lo, hi + 1]}


@pytest.mark.parametrize("label, params", list(_variants()))
def test_golden_and_rtl_accept_the_same(label, params):
    """Same verdict, same exception type, same parameter named in the message."""
    def outcome(fn):
        try:
            fn()
        except (TypeError, ValueError) as exc:
            return type(exc).__name__, re.match(r"\w+ parameter '(\w+)", str(exc)).group(1)
        return "accepted"
    n = max(params["n"], 0)
    rtl = outcome(lambda: check_lif_params(**params))
    golden = outcome(lambda: lif(np.zeros((1, n), dtype=np.int64), [True], **params))
    assert rtl == golden, f"{label}: RTL {rtl}, golden {golden}"


def test_golden_names_the_first_bad_input():
    """The golden model rejects inputs outside x_width (the RTL cannot see them: a wire holds
    only x_width bits), naming the first bad value; values on the limits are legal."""
    params = {**LEGAL, "x_width": 6}
    x = np.array([[-32, 31, -33, 32]])
    with pytest.raises(ValueError, match=r"^lif input 'x' must be in -32\.\.31 \(x_width=6\), "
                                         r"not -33$"):
        lif(x, [True], **params)
    assert lif(x[:, :2].repeat(2, axis=1), [True], **params).shape == (1, 4)


def test_spikelm_default_scale():
    """256 membrane LSBs per unit: theta = floor(a*256/2) + 1 for any amplitude (the default
    amplitudes alone cannot tell 256 from 257)."""
    assert lif_preset("spikelm", amplitude=[2.0, 0.01])["theta_pos"] == [257, 2]


def test_spikelm_amplitude_count():
    """1..64 amplitudes (one per step, T = their number), both ends included."""
    assert lif_preset("spikelm", amplitude=[1.0] * 64)["T"] == 64
    assert lif_preset("spikelm", amplitude=[1.0])["T"] == 1
    with pytest.raises(ValueError, match=r"^lif_preset 'spikelm' parameter 'amplitude' must be "
                                         r"a list of 1\.\.64 amplitudes, not \[1\.0, "):
        lif_preset("spikelm", amplitude=[1.0] * 65)


@pytest.mark.parametrize("leaks", [
    # Non-adjacent forms with 3-4 terms of one sign: 170 = 2+8+32+128, 85 = 1+4+16+64,
    # 219 = 256-32-4-1; and a leak of exactly 1 (256/256) at the first step of a sequence.
    {"frac": 8, "beta_pos": 219, "beta_zero": [256, 170], "beta_neg": 85},
    # frac = 0: leaks are 0 or 1.
    {"frac": 0, "beta_pos": 0, "beta_zero": 1, "beta_neg": [1, 0]},
])
def test_rtl_matches_golden_on_edge_leaks(leaks):
    spec = get_core("lif")
    params = spec.params({"n": 6, "p": 3, "T": 2, "x_width": 8, "m_width": 12, "rho": 1,
                          "theta_pos": 60, "theta_neg": 50, "theta_reset": 20,
                          "bipolar": True, **leaks})
    for seed in range(3):
        stim = spec.stimulus(params, 24, np.random.default_rng(seed))
        expected = spec.golden(params, stim)
        result = run_stream(spec.build(**params), stim, {"o": len(expected["o"])}, seed=seed)
        assert golden_mismatches(spec, params, stim, result) == []


def test_rtl_sequence_starts_from_zero_with_unit_leak():
    """With a leak of exactly 1 a stale membrane would survive the sequence start: x one
    below threshold must not fire at the first step of a sequence, every lane."""
    spec = get_core("lif")
    params = spec.params({"n": 4, "p": 2, "T": 1, "x_width": 8, "m_width": 10, "frac": 4,
                          "beta_pos": 16, "beta_zero": 16, "beta_neg": 16, "theta_pos": 40,
                          "theta_neg": 40, "theta_reset": 0, "rho": 0, "bipolar": True})
    beats = []
    for step, x in enumerate([39, 39, -39, 39, 1, -1]):
        start = step % 2 == 0           # sequences of two steps: the second one fires
        beats += [{"x": [x, x], "first": int(start and g == 0), "last": int(not start and g == 1)}
                  for g in range(2)]
    stim = {"i": beats}
    expected = spec.golden(params, stim)
    assert [b["q"] for b in expected["o"][::2]] == [[0, 0], [1, 1], [0, 0], [0, 0], [0, 0],
                                                   [0, 0]]
    result = run_stream(spec.build(**params), stim, {"o": len(expected["o"])}, seed=1)
    assert golden_mismatches(spec, params, stim, result) == []
