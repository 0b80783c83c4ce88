"""How the Word2Spike cores cut a framed beat stream into vectors (golden side).

A vector of ``d`` elements travels as beats of ``p`` lanes; element ``j`` is lane ``j % p`` of
beat ``j // p``. A vector starts at the first beat of the stream, at the beat after a ``last``
beat, and at any ``first`` beat (which abandons an unfinished vector); it ends at a ``last``
beat. Beats past the ``max_beats``-th beat of a vector are dropped. ``empty`` is the number of
unused top lanes of the ``last`` beat; it is honoured only when that beat is kept (a vector cut
at ``max_beats`` beats is ``max_beats * p`` long). A vector the stream never ends is not output.
"""

import numpy as np

__all__ = ["split_vectors", "gather_vectors"]


def _flags(name, value, n):
    arr = np.asarray(value)
    if arr.shape != (n,):
        raise ValueError(f"framing input {name!r} must have shape ({n},), not {arr.shape}")
    return arr.astype(bool)


def split_vectors(first, last, empty, *, p, max_beats):
    """The complete vectors of a beat stream: ``(start, n_beats, length)``, int64 arrays.

    ``start`` is the index of each vector's first beat, ``n_beats`` the number of its beats
    that are kept (at most ``max_beats``), ``length`` its length in elements.
    """
    last = np.asarray(last).astype(bool)
    n = last.shape[0] if last.ndim == 1 else -1
    if last.ndim != 1:
        raise ValueError(f"framing input 'last' must be one-dimensional, not {last.shape}")
    first = _flags("first", first, n)
    empty = np.asarray(empty).astype(np.int64)
    if empty.shape != (n,):
        raise ValueError(f"framing input 'empty' must have shape ({n},), not {empty.shape}")
    if n and (empty.min() < 0 or empty.max() >= p):
        raise ValueError(f"framing input 'empty' must be in 0..{p - 1}")
    if n == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z.copy(), z.copy()
    starts = first.copy()
    starts[0] = True
    starts[1:] |= last[:-1]
    begin = np.flatnonzero(starts)
    end = np.append(begin[1:], n) - 1          # a `last` beat always ends its group
    done = last[end]
    begin, end = begin[done], end[done]
    total = end - begin + 1
    kept = np.minimum(total, max_beats)
    length = kept * p - np.where(total <= max_beats, empty[end], 0)
    return begin.astype(np.int64), kept.astype(np.int64), length.astype(np.int64)


def gather_vectors(lanes, start, n_beats, *, max_beats, fill=0):
    """``(V, max_beats * p)``: the kept beats of each vector laid end to end, ``fill`` after."""
    lanes = np.asarray(lanes)
    p = lanes.shape[1]
    V = len(start)
    out = np.full((V, max_beats, p), fill, dtype=lanes.dtype)
    if V:
        j = np.arange(max_beats)
        use = j[None, :] < n_beats[:, None]
        rows = (start[:, None] + j[None, :])[use]
        out[use] = lanes[rows]
    return out.reshape(V, max_beats * p)
