"""Spec of the Poisson rate encoder for the generic tools.

``--steps`` counts output ticks (``W`` per vector). The trace has one row per tick and one
column per element position 0..d_max-1: the spike raster.
"""

import numpy as np

from spikeforge.cores import CoreSpec
from spikeforge.golden.poisson import poisson as golden_poisson
from spikeforge.rtl.poisson import DEFAULT_RATES, Poisson, check_poisson_params

from ._w2s import beats_to_vectors, random_lengths, tick_beats, vector_beats

# `spikeforge sim poisson` defaults: vectors of up to 8 elements, 4 lanes, 16-tick windows.
DEFAULTS = {"d_max": 8, "p": 4, "W": 16, "seed": 1, "rate_pos": DEFAULT_RATES[0],
            "rate_zero": DEFAULT_RATES[1], "rate_neg": DEFAULT_RATES[2]}


def resolve(params):
    return check_poisson_params(**params)


def build(**params):
    return Poisson(**params)


def stimulus(params, steps, rng):
    """``ceil(steps/W)`` ternary vectors of random length and mix (uniform, mostly 0, all +1,
    all -1); some carry the illegal code 0b10, a few are abandoned half-way or run past
    ``d_max``, and about a fifth omit ``first``."""
    d_max, p, W = params["d_max"], params["p"], params["W"]
    n = -(-steps // W)
    lengths = random_lengths(rng, n, d_max)
    probs = np.array([[1, 1, 1], [1, 8, 1], [1, 0, 0], [0, 0, 1]], dtype=float)
    probs /= probs.sum(axis=1, keepdims=True)
    mix = probs[rng.integers(0, len(probs), size=n)]
    u = rng.random((n, d_max))
    q = np.where(u < mix[:, :1], 1, np.where(u < mix[:, :1] + mix[:, 1:2], 0, -1))
    illegal = (rng.random(n) < 0.05)[:, None] & (rng.random((n, d_max)) < 0.3)
    q[illegal] = -2
    first = rng.random(n) < 0.8
    beats = []
    for v in range(n):
        u = rng.random()
        if u < 0.02 and lengths[v] > p:         # abandoned: some beats, no `last`
            part = vector_beats(q[v:v + 1], lengths[v:v + 1], p, "q")[:-1]
            beats += part[:int(rng.integers(1, len(part) + 1))]
        elif u < 0.03:                          # too long: beats past d_max are dropped
            long_q = rng.integers(-1, 2, size=(1, d_max + p))
            beats += vector_beats(long_q, [d_max + int(rng.integers(1, p + 1))], p, "q")
        beats += vector_beats(q[v:v + 1], lengths[v:v + 1], p, "q", first=first[v:v + 1])
    return {"i": beats}


def _kwargs(params):
    return {k: params[k] for k in ("p", "W", "seed", "rate_pos", "rate_zero", "rate_neg")}


def golden(params, stim):
    q, lengths = beats_to_vectors(stim["i"], "q", params["p"], params["d_max"])
    spikes = golden_poisson(q, lengths, **_kwargs(params))
    return {"o": tick_beats(spikes, lengths, params["p"])}


def to_dense(params, outputs):
    """Rows are ticks (a tick ends at ``tick_last``), columns element positions."""
    d_max, p = params["d_max"], params["p"]
    beats = outputs["o"]
    if not beats:
        return np.zeros((0, d_max), dtype=np.int64), "binary"
    s = np.array([b["s"] for b in beats], dtype=np.int64).reshape(-1, p)
    end = np.array([b["tick_last"] for b in beats], dtype=bool)
    idx = np.arange(len(beats))
    tick = np.cumsum(end) - end
    starts = np.ones(len(beats), dtype=bool)
    starts[1:] = end[:-1]
    g = idx - np.maximum.accumulate(np.where(starts, idx, 0))
    grid = np.zeros((int(tick[-1]) + 1, d_max), dtype=np.int64)
    ok = g < d_max // p                         # a tick longer than d_max/p beats is malformed
    cols = g[ok, None] * p + np.arange(p)[None, :]
    grid[np.repeat(tick[ok], p), cols.reshape(-1)] = s[ok].reshape(-1)
    return grid, "binary"


SPECS = [CoreSpec(
    name="poisson",
    summary="Poisson rate encoder: per-lane xorshift32 Bernoulli spikes, W ticks per vector",
    build=build, defaults=DEFAULTS, stimulus=stimulus, golden=golden, to_dense=to_dense,
    resolve=resolve, build_defaults={"d_max": 3072, "p": 4, "W": 1000, "seed": 1},
    step_unit="tick", demo_steps=4000,
    # 3072: text-embedding-3-large (the paper); 384: all-MiniLM-L6-v2 (the reproduction).
    bench_builds=[{"d_max": 3072, "p": 4, "W": 1000}, {"d_max": 3072, "p": 16, "W": 1000},
                  {"d_max": 384, "p": 32, "W": 100}],
    bench_sims=[({"d_max": 64, "p": 4, "W": 100}, 2000), ({"d_max": 64, "p": 16, "W": 100}, 2000)],
)]
