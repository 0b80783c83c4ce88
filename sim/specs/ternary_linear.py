"""Spec of the ternary linear layer for the generic tools."""

import numpy as np

from spikeforge.cores import CoreSpec
from spikeforge.firmware.image import MemorySpec, load_image
from spikeforge.golden.ternary_linear import (apply_weight_writes, random_ternary_weights,
                                              ternary_linear as golden_ternary_linear)
from spikeforge.rtl.ternary_linear import TernaryLinear, check_ternary_linear_params

# `spikeforge sim ternary_linear`: 64 ternary inputs -> 32 outputs, 8 lanes x 16 inputs per cycle
# (16 cycles per vector). `weights` is a memory-image path; without it the weights are drawn
# from `weights_seed`.
DEFAULTS = {"n_in": 64, "n_out": 32, "p": 8, "k": 16, "spikes": "ternary", "weights_seed": 1,
            "weights": None}


def image_specs(n_out, n_in):
    """The memories of a ternary_linear image: ``w``, ``(n_out, n_in)`` in -1..1."""
    return {"w": MemorySpec((n_out, n_in), -1, 1)}


def resolve(params):
    out = dict(params)
    out.update(check_ternary_linear_params(**{k: params[k] for k in
                                              ("n_in", "n_out", "p", "k", "spikes")}))
    seed = out["weights_seed"]
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"ternary_linear parameter 'weights_seed' must be a non-negative "
                         f"integer, not {seed!r}")
    if out["weights"] is not None and not isinstance(out["weights"], str):
        raise TypeError(f"ternary_linear parameter 'weights' must be a memory-image path or "
                        f"None, not {out['weights']!r}")
    return out


def initial_weights(params):
    """The ``(n_out, n_in)`` initial weights: from the image ``weights`` or ``weights_seed``."""
    if params.get("weights"):
        _, mems = load_image(params["weights"], core="ternary_linear",
                             specs=image_specs(params["n_out"], params["n_in"]))
        return mems["w"]
    return random_ternary_weights(params["weights_seed"], params["n_out"], params["n_in"])


def build(**params):
    return TernaryLinear(n_in=params["n_in"], n_out=params["n_out"], p=params["p"],
                         k=params["k"], spikes=params["spikes"], weights=initial_weights(params))


def _vectors(params, count, rng):
    n_in = params["n_in"]
    beats = []
    for _ in range(count):
        if params["spikes"] == "binary":
            s = rng.random(n_in) < rng.choice([0.05, 0.3, 0.7, 1.0])
        else:
            s = rng.choice([-1, 0, 1], size=n_in, p=rng.dirichlet([1, 1, 1]))
            if rng.random() < 0.1:
                s = rng.choice([-1, 1], size=n_in)        # full scale: |y| can reach n_in
            if rng.random() < 0.02:
                s[rng.integers(n_in)] = -2                # the illegal code 0b10
        beats.append({"s": s.astype(int).tolist(), "first": int(rng.random() < 0.2),
                      "last": int(rng.random() < 0.2)})
    return beats


def _writes(params, rng):
    p, k = params["p"], params["k"]
    depth = (params["n_out"] // p) * (params["n_in"] // k)
    addr_max = (1 << max(depth - 1, 0).bit_length()) - 1     # every value the field can carry
    beats = []
    for _ in range(int(rng.integers(1, depth + 1))):
        w = rng.choice([-1, 0, 1], size=(p, k))
        if rng.random() < 0.1:
            w[rng.integers(p), rng.integers(k)] = -2
        beats.append({"addr": int(rng.integers(0, addr_max + 1)), "w": w.tolist()})
    return beats


def stimulus(params, steps, rng):
    """Three phases: vectors on the initial weights, run-time weight writes, more vectors.

    Inputs mix sparse, dense and full-scale vectors (|y| = n_in reachable) and, for ternary
    spikes, an occasional illegal code; writes hit random words, some with an illegal code and,
    where the address field allows, some beyond the memory.
    """
    first = steps // 2
    return [{"i": _vectors(params, first, rng)},
            {"w": _writes(params, rng)},
            {"i": _vectors(params, steps - first, rng)}]


def _s(beats):
    return np.array([b["s"] for b in beats], dtype=np.int64).reshape(len(beats), -1)


def golden(params, stim):
    weights = initial_weights(params)
    p, n_out = params["p"], params["n_out"]
    out = []
    for phase in stim:
        weights = apply_weight_writes(weights, phase.get("w", []), p=p, k=params["k"])
        beats = phase.get("i", [])
        if not beats:
            continue
        y, err = golden_ternary_linear(_s(beats), weights, spikes=params["spikes"])
        groups = n_out // p
        for v, beat in enumerate(beats):
            for g in range(groups):
                out.append({"y": y[v, g * p:(g + 1) * p].tolist(), "err": int(err[v]),
                            "first": int(beat["first"] and g == 0),
                            "last": int(beat["last"] and g == groups - 1)})
    return {"o": out}


def to_dense(params, outputs):
    n_out, p = params["n_out"], params["p"]
    beats = outputs["o"]
    vectors = len(beats) // (n_out // p)
    y = np.array([b["y"] for b in beats[:vectors * (n_out // p)]], dtype=np.int64)
    return y.reshape(vectors, n_out), "int"


# Benchmark parameters (`python -m spikeforge.bench`).
BENCH = {"n_in": 64, "n_out": 64, "p": 8, "k": 16, "spikes": "ternary"}


SPECS = [CoreSpec(
    name="ternary_linear",
    summary="ternary linear layer y = W·s (adds/subtracts only), p outputs x k inputs per cycle",
    build=build, defaults=DEFAULTS, stimulus=stimulus, golden=golden, to_dense=to_dense,
    resolve=resolve, build_defaults={"n_in": 256, "n_out": 256, "p": 16, "k": 16,
                                     "spikes": "binary"},
    step_unit="vector", demo_steps=2000,
    bench_builds=[BENCH],
    bench_sims=[(BENCH, 1000)],
)]
