"""Spec of the absmean ternary quantiser for the generic tools.

``--steps`` counts input elements. The trace has one row per output element: the ternary
vector is recorded in the row of its last element (the step at which it is decided), indexed
by element position 0..d_max-1.
"""

import numpy as np

from spikeforge.cores import CoreSpec
from spikeforge.golden.absmean import absmean as golden_absmean
from spikeforge.rtl.absmean import AbsMean, check_absmean_params

from ._w2s import beats_to_vectors, random_lengths, vector_beats, vector_rows

# `spikeforge sim absmean` defaults: vectors of up to 64 16-bit values, 4 lanes per beat.
DEFAULTS = {"d_max": 64, "p": 4, "e_width": 16}


def resolve(params):
    return check_absmean_params(**params)


def build(**params):
    return AbsMean(**params)


def _vector(rng, d, ew):
    """One vector of ``d`` values from a random regime: full range, small values (many ties),
    a constructed exact tie (2*d*|e| == S), all zero, or full scale."""
    lo, hi = -2 ** (ew - 1), 2 ** (ew - 1) - 1
    regime = rng.choice(5, p=[0.35, 0.2, 0.3, 0.05, 0.1])
    if regime == 2 and hi < 2 * d:              # no room for a constructed tie
        regime = 1
    if regime == 0:
        return rng.integers(lo, hi + 1, size=d)
    if regime == 1:
        return np.clip(rng.integers(-3, 4, size=d), lo, hi)
    if regime == 3 or d == 1 and regime == 2:
        return np.zeros(d, dtype=np.int64)
    if regime == 4:
        e = np.where(rng.random(d) < 0.5, lo, hi)
        e[rng.random(d) < 0.3] = 0
        return e
    # An exact tie: d-1 values in [-2t, 2t] with one at +-t, and one more value chosen so that
    # S = 2*d*t; then every |e| == t sits exactly on the split.
    t = int(rng.integers(1, hi // (2 * d) + 1))
    e = rng.integers(-2 * t, 2 * t + 1, size=d)
    e[0] = t if rng.random() < 0.5 else -t
    rest = int(np.abs(e[:-1]).sum())
    e[-1] = (2 * d * t - rest) * (1 if rng.random() < 0.5 else -1)
    return rng.permutation(e)


def stimulus(params, steps, rng):
    """Vectors of random length (a fifth of length 1, a fifth d_max) until ``steps`` elements
    are sent; a few vectors are abandoned half-way by a ``first`` or run past ``d_max``."""
    d_max, p, ew = params["d_max"], params["p"], params["e_width"]
    beats = []
    sent = 0
    while sent < steps:
        d = int(min(random_lengths(rng, 1, d_max)[0], steps - sent))
        e = _vector(rng, d, ew)
        u = rng.random()
        if u < 0.02 and d > p:                  # abandoned: some beats, no `last`
            part = vector_beats(e[None, :], [d], p, "e")[:-1]
            beats += part[:int(rng.integers(1, len(part) + 1))]
        elif u < 0.03:                          # too long: beats past d_max are dropped
            extra = int(rng.integers(1, 2 * p + 1))
            long_e = np.concatenate([_vector(rng, d_max, ew), _vector(rng, extra, ew)])
            beats += vector_beats(long_e[None, :], [d_max + extra], p, "e")
        first = [int(rng.random() < 0.8)]       # after `last`, `first` is optional
        beats += vector_beats(e[None, :], [d], p, "e", first=first)
        sent += d
    return {"i": beats}


def golden(params, stim):
    d_max, p = params["d_max"], params["p"]
    e, lengths = beats_to_vectors(stim["i"], "e", p, d_max)
    q = golden_absmean(e, lengths, e_width=params["e_width"])
    return {"o": vector_beats(q, lengths, p, "q")}


def to_dense(params, outputs):
    d_max, p = params["d_max"], params["p"]
    q, lengths = beats_to_vectors(outputs["o"], "q", p, d_max)
    return vector_rows(lengths, d_max, q, np.cumsum(lengths) - 1), "ternary"


SPECS = [CoreSpec(
    name="absmean",
    summary="BitNet b1.58 absmean ternary quantiser, integer-exact (no DSP), two passes per vector",
    build=build, defaults=DEFAULTS, stimulus=stimulus, golden=golden, to_dense=to_dense,
    resolve=resolve, build_defaults={"d_max": 3072, "p": 4, "e_width": 16},
    step_unit="element", demo_steps=20000,
    bench_builds=[{"d_max": 3072, "p": 4, "e_width": 16}, {"d_max": 3072, "p": 16, "e_width": 16}],
    bench_sims=[({"d_max": 3072, "p": 4, "e_width": 16}, 20000),
                ({"d_max": 3072, "p": 16, "e_width": 16}, 20000)],
)]
