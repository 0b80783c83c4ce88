"""Spec of the N-of-M rank-order encoder for the generic tools."""

import numpy as np

from spikeforge.cores import CoreSpec
from spikeforge.golden.rankorder import rankorder as golden_rankorder
from spikeforge.rtl.rankorder import RankOrder, check_rankorder_params

# `spikeforge sim rankorder` defaults: 4-of-16 codes of 8-bit values, alpha = 0.75.
DEFAULTS = {"M": 16, "N": 4, "width": 8, "order": "largest", "alpha": 192, "frac": 8,
            "outputs": "both"}


def resolve(params):
    return check_rankorder_params(**params)


def build(**params):
    return RankOrder(**params)


def stimulus(params, steps, rng):
    """Random vectors in short sequences; each sequence draws from one of four value regimes.

    Full range; a narrow band (many ties); two or three distinct values (ties everywhere,
    including at rank N); for latencies, a few spikes with the rest never firing (all-ones).
    """
    M, width, order = params["M"], params["width"], params["order"]
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if order == "largest" \
        else (0, (1 << width) - 1)
    x = np.empty((steps, M), dtype=np.int64)
    first = np.zeros(steps, dtype=bool)
    s = 0
    while s < steps:
        length = min(int(rng.integers(1, 9)), steps - s)
        first[s] = True
        regime = rng.integers(4)
        if regime == 0:
            block = rng.integers(lo, hi + 1, size=(length, M))
        elif regime == 1:
            centre = int(rng.integers(lo, hi + 1))
            block = np.clip(centre + rng.integers(-2, 3, size=(length, M)), lo, hi)
        elif regime == 2:
            values = rng.integers(lo, hi + 1, size=int(rng.integers(1, 4)))
            block = rng.choice(values, size=(length, M))
        else:
            block = rng.integers(lo, hi + 1, size=(length, M))
            silent = rng.random((length, M)) < 0.7
            block[silent] = hi if order == "earliest" else lo
        x[s:s + length] = block
        s += length
    last = np.roll(first, -1)
    last[-1] = True
    return {"i": [{"x": x[k].tolist(), "first": int(first[k]), "last": int(last[k])}
                  for k in range(steps)]}


def golden(params, stim):
    beats = stim["i"]
    x = np.array([b["x"] for b in beats], dtype=np.int64).reshape(len(beats), params["M"])
    idx, sig = golden_rankorder(x, **params)
    out = []
    for k, b in enumerate(beats):
        beat = {"first": b["first"], "last": b["last"]}
        if params["outputs"] in ("both", "indices"):
            beat["idx"] = idx[k].tolist()
        if params["outputs"] in ("both", "significance"):
            beat["sig"] = sig[k].tolist()
        out.append(beat)
    return {"o": out}


def to_dense(params, outputs):
    """One row per vector: the N indices (if present), then the M significances (if present)."""
    beats = outputs["o"]
    cols = []
    if params["outputs"] in ("both", "indices"):
        cols.append(np.array([b["idx"] for b in beats], dtype=np.int64).reshape(len(beats), -1))
    if params["outputs"] in ("both", "significance"):
        cols.append(np.array([b["sig"] for b in beats], dtype=np.int64).reshape(len(beats), -1))
    return np.concatenate(cols, axis=1), "int"


# Benchmark parameters (`python -m spikeforge.bench`).
BENCH = {"M": 16, "N": 4, "width": 8, "order": "earliest", "alpha": 230, "frac": 8,
         "outputs": "both"}


SPECS = [CoreSpec(
    name="rankorder",
    summary="N-of-M rank-order encoder (largest or earliest first), one vector per cycle",
    build=build, defaults=DEFAULTS, stimulus=stimulus, golden=golden, to_dense=to_dense,
    resolve=resolve, build_defaults={"M": 32, "N": 8, "width": 8, "order": "earliest",
                                     "alpha": 230, "frac": 8, "outputs": "both"},
    step_unit="vector", demo_steps=3000,
    bench_builds=[BENCH],
    bench_sims=[(BENCH, 5000)],
)]
