"""Spec of the Word2Spike chain (absmean -> poisson -> ratedecode) for the generic tools.

``--steps`` counts encoder ticks (``W`` per vector). The trace has one row per tick: the
decoded vector of the k-th input vector is recorded in row ``(k+1)*W - 1``, indexed by
element position 0..d_max-1.
"""

import numpy as np

from spikeforge.cores import CoreSpec
from spikeforge.golden.w2s_chain import w2s_chain as golden_chain
from spikeforge.rtl.poisson import DEFAULT_RATES
from spikeforge.rtl.w2s_chain import W2SChain, check_w2s_chain_params

from ._w2s import beats_to_vectors, random_lengths, vector_beats, vector_rows
from .absmean import _vector

# `spikeforge sim w2s_chain` defaults: vectors of up to 8 12-bit values, 4 lanes, 64-tick
# windows (C = 5 for the default rates).
DEFAULTS = {"d_max": 8, "p": 4, "e_width": 12, "W": 64, "seed": 1,
            "rate_pos": DEFAULT_RATES[0], "rate_zero": DEFAULT_RATES[1],
            "rate_neg": DEFAULT_RATES[2], "C": None, "count_width": None}


def resolve(params):
    return check_w2s_chain_params(**params)


def build(**params):
    return W2SChain(**params)


def stimulus(params, steps, rng):
    """``ceil(steps/W)`` vectors of random length and value regime (see the absmean spec)."""
    d_max, p, W, ew = params["d_max"], params["p"], params["W"], params["e_width"]
    n = -(-steps // W)
    lengths = random_lengths(rng, n, d_max)
    e = np.zeros((n, d_max), dtype=np.int64)
    for v, d in enumerate(lengths.tolist()):
        e[v, :d] = _vector(rng, d, ew)
    return {"i": vector_beats(e, lengths, p, "e", first=rng.random(n) < 0.8)}


def golden(params, stim):
    e, lengths = beats_to_vectors(stim["i"], "e", params["p"], params["d_max"])
    kwargs = {k: v for k, v in params.items() if k != "d_max"}
    decoded = golden_chain(e, lengths, **kwargs)
    return {"o": vector_beats(decoded, lengths, params["p"], "q")}


def to_dense(params, outputs):
    d_max, p, W = params["d_max"], params["p"], params["W"]
    q, lengths = beats_to_vectors(outputs["o"], "q", p, d_max)
    return vector_rows(lengths, d_max, q, (np.arange(len(lengths)) + 1) * W - 1), "ternary"


SPECS = [CoreSpec(
    name="w2s_chain",
    summary="Word2Spike chain: absmean quantiser -> Poisson encoder -> rate decoder, streaming",
    build=build, defaults=DEFAULTS, stimulus=stimulus, golden=golden, to_dense=to_dense,
    resolve=resolve, build_defaults={"d_max": 3072, "p": 4, "e_width": 16, "W": 1000},
    step_unit="tick", demo_steps=4000,
    bench_builds=[{"d_max": 3072, "p": 4, "e_width": 16, "W": 1000}],
    bench_sims=[({"d_max": 64, "p": 4, "e_width": 16, "W": 100}, 2000)],
)]
