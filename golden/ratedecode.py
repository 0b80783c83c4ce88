"""Golden model of the spike-count rate decoder: integer NumPy, vectorised."""

import math
from numbers import Integral

import numpy as np

__all__ = ["ratedecode", "ratedecode_beats", "ml_threshold"]


def _check_int(name, value, lo, hi):
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"ratedecode parameter {name!r} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"ratedecode parameter {name!r} must be in {lo}..{hi}, not {value}")
    return int(value)


def ml_threshold(W, rate_pos, rate_neg):
    """The maximum-likelihood count split between the +1 and -1 rates over ``W`` ticks.

    With per-tick probabilities ``p+ = rate_pos/2^16`` and ``p- = rate_neg/2^16`` (so
    ``lambda*dt = p``), ``C = floor((p+ - p-) * W / ln(p+/p-) + 1/2)``, at least 1 (a count of
    0 always decodes to 0) and at most ``W``; ``rate_neg = 0`` gives ``C = 1``.
    Needs ``rate_pos > rate_neg``.
    """
    W = _check_int("W", W, 1, 65535)
    rate_pos = _check_int("rate_pos", rate_pos, 1, 65535)
    rate_neg = _check_int("rate_neg", rate_neg, 0, 65535)
    if rate_neg >= rate_pos:
        raise ValueError(f"ratedecode parameter 'rate_neg' must be below rate_pos={rate_pos} "
                         f"for a count split, not {rate_neg}")
    if rate_neg == 0:
        return 1
    split = (rate_pos - rate_neg) / 65536 * W / math.log(rate_pos / rate_neg)
    return min(W, max(1, math.floor(split + 0.5)))


def _decode(counts, C):
    return np.where(counts == 0, 0, np.where(counts >= C, 1, -1)).astype(np.int8)


def ratedecode(spikes, lengths=None, *, C, count_width):
    """Decode each window of spike trains to a ternary vector.

    Per element, ``n`` = spikes over the window's ticks, saturating at ``2^count_width - 1``;
    ``q = 0`` if ``n == 0``, ``+1`` if ``n >= C``, else ``-1``.

    ``spikes``: array ``(V, T, D)`` of 0/1. ``lengths``: ``(V,)`` in 1..D (default D);
    elements past a vector's length give 0. Returns ``q`` as int8 ``(V, D)``.
    """
    count_width = _check_int("count_width", count_width, 1, 16)
    C = _check_int("C", C, 1, 2 ** count_width - 1)
    spikes = np.asarray(spikes)
    if spikes.ndim != 3:
        raise ValueError(f"ratedecode input 'spikes' must have shape (V, T, D), not {spikes.shape}")
    V, _, D = spikes.shape
    counts = np.minimum(spikes.sum(axis=1, dtype=np.int64), 2 ** count_width - 1)
    q = _decode(counts, C)
    if lengths is not None:
        lengths = np.asarray(lengths).astype(np.int64)
        q[np.arange(D)[None, :] >= lengths[:, None]] = 0
    return q


def ratedecode_beats(s, first, last, tick_last, empty, *, p, d_max, C, count_width):
    """The decoder on a framed beat stream, malformed framing included.

    ``s``: ``(B, p)`` spike bits; ``first``, ``last``, ``tick_last``, ``empty``: ``(B,)``.
    A window starts at the first beat, after each ``last`` beat and at each ``first`` beat
    (abandoning an unfinished window) and ends at a ``last`` beat; a tick ends at a
    ``tick_last`` or ``last`` beat. Tick 0 fixes the window's shape: its beats number
    ``G0 = min(beats, d_max/p)`` (beats past ``d_max/p`` are dropped) and its final beat's
    ``empty`` (if kept) gives the length ``G0*p - empty``. In later ticks, beats past the
    ``G0``-th are dropped. Element ``j`` counts the spikes of lane ``j % p`` of the ``j//p``-th
    beat of every tick. Returns ``(q, lengths)``: int8 ``(N, d_max)`` and int64 ``(N,)`` for the
    ``N`` complete windows.
    """
    s = np.asarray(s).astype(np.int64)
    B = s.shape[0]
    if s.shape != (B, p):
        raise ValueError(f"ratedecode input 's' must have shape (B, {p}), not {s.shape}")
    first, last, tick_last = (np.asarray(a).astype(bool) for a in (first, last, tick_last))
    empty = np.asarray(empty).astype(np.int64)
    G = d_max // p
    if B == 0:
        return np.zeros((0, d_max), dtype=np.int8), np.zeros(0, dtype=np.int64)
    idx = np.arange(B)
    win_start = first.copy()
    win_start[0] = True
    win_start[1:] |= last[:-1]
    tick_end = tick_last | last
    tick_start = win_start.copy()
    tick_start[1:] |= tick_end[:-1]
    win = np.cumsum(win_start) - 1
    tick = np.cumsum(tick_start) - 1
    g = idx - np.maximum.accumulate(np.where(tick_start, idx, 0))
    begins = np.flatnonzero(win_start)
    in_tick0 = tick == tick[begins][win]
    # Tick 0's end: the first tick_end beat of each window (windows without one are incomplete).
    ends0 = np.flatnonzero(tick_end & in_tick0)
    n_win = len(begins)
    g_end = np.full(n_win, -1, dtype=np.int64)
    empty_end = np.zeros(n_win, dtype=np.int64)
    g_end[win[ends0]] = g[ends0]
    empty_end[win[ends0]] = empty[ends0]
    G0 = np.minimum(g_end + 1, G)
    length = G0 * p - np.where(g_end < G, empty_end, 0)
    keep = np.where(in_tick0, g < G, g < G0[win])
    ends = np.append(begins[1:], B) - 1
    done = last[ends]

    cells = ((win[keep] * G + g[keep])[:, None] * p + np.arange(p)[None, :]).reshape(-1)
    counts = np.bincount(cells, weights=s[keep].reshape(-1), minlength=n_win * G * p)
    counts = np.minimum(counts.astype(np.int64), 2 ** count_width - 1).reshape(n_win, G * p)
    q = _decode(counts, C)
    q[np.arange(G * p)[None, :] >= length[:, None]] = 0
    return q[done], length[done]
