"""Beat <-> array conversions and random vectors shared by the Word2Spike specs (absmean,
poisson, ratedecode, w2s_chain). Framing rules live in :mod:`spikeforge.golden.vectors`."""

import numpy as np

from spikeforge.golden.vectors import gather_vectors, split_vectors


def random_lengths(rng, n, d_max):
    """``n`` vector lengths: a fifth 1, a fifth ``d_max``, the rest uniform in 1..d_max."""
    kind = rng.random(n)
    lengths = rng.integers(1, d_max + 1, size=n)
    lengths[kind < 0.2] = 1
    lengths[(kind >= 0.2) & (kind < 0.4)] = d_max
    return lengths


def vector_beats(values, lengths, p, field, *, first=None):
    """Beats (dicts) of the vectors ``values[v, :lengths[v]]``; ``first[v]`` sets the flag
    on a vector's first beat (default: always)."""
    beats = []
    values = np.asarray(values)
    for v, d in enumerate(np.asarray(lengths).tolist()):
        G = -(-d // p)
        row = np.zeros(G * p, dtype=np.int64)
        row[:d] = values[v, :d]
        lanes = row.reshape(G, p).tolist()
        f = 1 if first is None else int(first[v])
        for g in range(G):
            last = g == G - 1
            beats.append({field: lanes[g], "empty": G * p - d if last else 0,
                          "first": f if g == 0 else 0, "last": int(last)})
    return beats


def beat_arrays(beats, field):
    """``(lanes, first, last, empty)`` arrays of a list of beats."""
    lanes = np.array([b[field] for b in beats], dtype=np.int64)
    flags = np.array([(b["first"], b["last"], b["empty"]) for b in beats],
                     dtype=np.int64).reshape(-1, 3)
    return lanes, flags[:, 0], flags[:, 1], flags[:, 2]


def beats_to_vectors(beats, field, p, d_max):
    """The complete vectors of a beat stream as the cores frame them: ``(values, lengths)``,
    ``(V, d_max)`` and ``(V,)``."""
    if not beats:
        return np.zeros((0, d_max), dtype=np.int64), np.zeros(0, dtype=np.int64)
    lanes, first, last, empty = beat_arrays(beats, field)
    start, n_beats, lengths = split_vectors(first, last, empty, p=p, max_beats=d_max // p)
    values = gather_vectors(lanes.reshape(-1, p), start, n_beats, max_beats=d_max // p)
    values[np.arange(d_max)[None, :] >= lengths[:, None]] = 0
    return values, lengths


def tick_beats(spikes, lengths, p):
    """Beats of spike windows ``spikes`` (V, W, D): W ticks of ceil(d/p) beats per vector."""
    beats = []
    V, W, _ = spikes.shape
    for v, d in enumerate(np.asarray(lengths).tolist()):
        G = -(-d // p)
        rows = np.zeros((W, G * p), dtype=np.int64)
        rows[:, :d] = spikes[v, :, :d]
        lanes = rows.reshape(W, G, p).tolist()
        for t in range(W):
            for g in range(G):
                end = g == G - 1
                beats.append({"s": lanes[t][g], "empty": G * p - d if end else 0,
                              "first": int(t == 0 and g == 0), "last": int(end and t == W - 1),
                              "tick_last": int(end)})
    return beats


def vector_rows(lengths, d_max, values, row_of):
    """A dense ``(n_rows, d_max)`` trace grid with vector ``v`` in row ``row_of[v]``."""
    n_rows = int(row_of[-1]) + 1 if len(row_of) else 0
    grid = np.zeros((n_rows, d_max), dtype=np.int64)
    if len(row_of):
        grid[row_of] = values
    return grid
