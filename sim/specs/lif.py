"""Spec of the LIF integrator array for the generic tools."""

import numpy as np

from spikeforge.cores import CoreSpec
from spikeforge.golden.lif import lif as golden_lif
from spikeforge.rtl.lif import LIF, LIF_PARAMS, check_lif_params, lif_preset

# `spikeforge sim lif` defaults: SpikeLM's neuron on 16 neurons in 4 lanes (4 beats per step).
DEFAULTS = {"preset": "spikelm", **{name: None for name in LIF_PARAMS}, "n": 16, "p": 4}


def resolve(params):
    """Start from the named preset, override with every parameter that is set, validate."""
    preset = params.get("preset") or "spikelm"
    base = lif_preset(preset)
    base.update({k: v for k, v in params.items() if k in LIF_PARAMS and v is not None})
    return {"preset": preset, **check_lif_params(**base)}


def _lif_kwargs(params):
    return {k: params[k] for k in LIF_PARAMS}


def build(**params):
    return LIF(**_lif_kwargs(params))


def _per_step_max(value):
    return max(value) if isinstance(value, list) else value


def stimulus(params, steps, rng):
    """Random sequences (mostly T steps long, some shorter or longer) of random step inputs.

    The input scale changes every sequence (quiet, near threshold, loud, full scale) so the
    neurons sit idle, spike now and then, spike every step and saturate, in turn.
    """
    n, p, T, xw = params["n"], params["p"], params["T"], params["x_width"]
    lo, hi = -(1 << (xw - 1)), (1 << (xw - 1)) - 1
    theta = _per_step_max(params["theta_pos"])
    x = np.empty((steps, n), dtype=np.int64)
    first = np.zeros(steps, dtype=bool)
    s = 0
    while s < steps:
        length = T if rng.random() < 0.6 else int(rng.integers(1, 3 * T + 1))
        length = min(length, steps - s)
        first[s] = True
        scale = rng.choice([theta / 4, theta / 2, theta, 2 * theta, hi])
        block = np.rint(rng.normal(0.0, scale, size=(length, n)))
        if rng.random() < 0.1:      # drive to the rails: saturation in both directions
            block = np.where(rng.random((length, n)) < 0.5, lo, hi)
        x[s:s + length] = np.clip(block, lo, hi)
        s += length
    last = np.roll(first, -1)
    last[-1] = True
    beats = []
    groups = n // p
    for step in range(steps):
        for g in range(groups):
            beats.append({"x": x[step, g * p:(g + 1) * p].tolist(),
                          "first": int(first[step] and g == 0),
                          "last": int(last[step] and g == groups - 1)})
    return {"i": beats}


def _unbeat(params, beats, field):
    n, p = params["n"], params["p"]
    groups = n // p
    steps = len(beats) // groups
    arr = np.array([b[field] for b in beats[:steps * groups]], dtype=np.int64)
    return arr.reshape(steps, n), steps


def golden(params, stim):
    beats = stim["i"]
    x, steps = _unbeat(params, beats, "x")
    groups = params["n"] // params["p"]
    first = np.array([beats[s * groups]["first"] for s in range(steps)], dtype=bool)
    q = golden_lif(x, first, **_lif_kwargs(params))
    out = []
    for step in range(steps):
        for g in range(groups):
            b = beats[step * groups + g]
            out.append({"q": q[step, g * params["p"]:(g + 1) * params["p"]].tolist(),
                        "first": b["first"], "last": b["last"]})
    return {"o": out}


def to_dense(params, outputs):
    q, _ = _unbeat(params, outputs["o"], "q")
    return q, ("ternary" if params["bipolar"] else "binary")


SPECS = [CoreSpec(
    name="lif",
    summary="ternary/binary LIF integrator array (SpikeLM, BiSpikCLM presets), P neurons per cycle",
    build=build, defaults=DEFAULTS, stimulus=stimulus, golden=golden, to_dense=to_dense,
    resolve=resolve, build_defaults={"n": 1024, "p": 4}, step_unit="step", demo_steps=2000,
    bench_builds=[{"n": n, "p": p} for n in (64, 1024, 8192) for p in (1, 4, 16)],
    bench_sims=[({"n": 64, "p": 4}, 500), ({"n": 1024, "p": 4}, 40), ({"n": 1024, "p": 16}, 40),
                ({"n": 8, "p": 8}, 2000)],
)]
