"""Spec of the spike-count rate decoder for the generic tools.

``--steps`` counts input ticks; the stimulus sends windows of exactly ``W`` ticks. The trace
has one row per tick: the decoded vector of the k-th window is recorded in row
``(k+1)*W - 1``, the tick that completes it, indexed by element position 0..d_max-1.
"""

import numpy as np

from spikeforge.cores import CoreSpec
from spikeforge.golden.ratedecode import ratedecode_beats
from spikeforge.rtl.ratedecode import RateDecode, check_ratedecode_params

from ._w2s import beats_to_vectors, random_lengths, vector_beats, vector_rows

# `spikeforge sim ratedecode` defaults: vectors of up to 8 elements, 4 lanes, 32-tick windows,
# C from the default encoder rates (2 spikes).
DEFAULTS = {"d_max": 8, "p": 4, "W": 32, "C": None, "count_width": None,
            "rate_pos": 6554, "rate_neg": 3277}


def resolve(params):
    return check_ratedecode_params(**params)


def build(**params):
    return RateDecode(**params)


def _window(rng, d, params):
    """Spikes ``(W, d)`` from one regime: the encoder's rates, uniform per-element rates,
    rates around C/W (counts near the split), or all-on / all-off elements."""
    W, C = params["W"], params["C"]
    regime = rng.integers(4)
    if regime == 0:
        rate = rng.choice([params["rate_pos"], 0, params["rate_neg"]], size=d) / 65536
    elif regime == 1:
        rate = rng.random(d)
    elif regime == 2:
        rate = np.clip(C / W + rng.normal(0, 1 / W, size=d), 0, 1)
    else:
        rate = rng.choice([0.0, 1.0], size=d)
    return (rng.random((W, d)) < rate[None, :]).astype(np.int64)


def stimulus(params, steps, rng):
    """``ceil(steps/W)`` windows of ``W`` ticks each. About one window in twenty has a
    malformed tick shape (tick 0 past ``d_max``, or a later tick a beat short or long), and
    about a fifth omit ``first``."""
    d_max, p, W = params["d_max"], params["p"], params["W"]
    n = -(-steps // W)
    lengths = random_lengths(rng, n, d_max)
    beats = []
    for v in range(n):
        d = int(lengths[v])
        odd = rng.random() < 0.05
        if odd and rng.random() < 0.3:
            d = d_max + int(rng.integers(1, p + 1))
        spikes = _window(rng, d, params)
        G = -(-d // p)
        shape = np.full(W, G)
        if odd and W > 1:
            t = int(rng.integers(1, W))
            shape[t] = max(1, shape[t] + int(rng.choice([-1, 1])))
        first = int(rng.random() < 0.8)
        for t in range(W):
            row = np.zeros(max(shape[t], G) * p, dtype=np.int64)
            row[:d] = spikes[t]
            if shape[t] > G:
                row[G * p:] = rng.integers(0, 2, size=(shape[t] - G) * p)
            for g in range(shape[t]):
                end = g == shape[t] - 1
                beats.append({"s": row[g * p:(g + 1) * p].tolist(),
                              "empty": G * p - d if end else 0,
                              "first": first if t == g == 0 else 0,
                              "last": int(end and t == W - 1), "tick_last": int(end)})
    return {"i": beats}


def golden(params, stim):
    beats = stim["i"]
    p = params["p"]
    s = np.array([b["s"] for b in beats], dtype=np.int64).reshape(-1, p)
    flags = np.array([(b["first"], b["last"], b["tick_last"], b["empty"]) for b in beats],
                     dtype=np.int64).reshape(-1, 4)
    q, lengths = ratedecode_beats(s, *flags.T, p=p, d_max=params["d_max"], C=params["C"],
                                  count_width=params["count_width"])
    return {"o": vector_beats(q, lengths, p, "q")}


def to_dense(params, outputs):
    d_max, p, W = params["d_max"], params["p"], params["W"]
    q, lengths = beats_to_vectors(outputs["o"], "q", p, d_max)
    return vector_rows(lengths, d_max, q, (np.arange(len(lengths)) + 1) * W - 1), "ternary"


SPECS = [CoreSpec(
    name="ratedecode",
    summary="spike-count rate decoder: W ticks of spike trains to a ternary vector (ML split)",
    build=build, defaults=DEFAULTS, stimulus=stimulus, golden=golden, to_dense=to_dense,
    resolve=resolve, build_defaults={"d_max": 3072, "p": 4, "W": 1000},
    step_unit="tick", demo_steps=4000,
    bench_builds=[{"d_max": 3072, "p": 4, "W": 1000}, {"d_max": 3072, "p": 16, "W": 1000}],
    bench_sims=[({"d_max": 64, "p": 4, "W": 100}, 2000), ({"d_max": 64, "p": 16, "W": 100}, 2000)],
)]
