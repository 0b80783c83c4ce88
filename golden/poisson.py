"""Golden model of the Poisson rate encoder: per-lane xorshift32 Bernoulli draws, vectorised.

xorshift32 is linear over GF(2), so a run of states is computed in parallel: the model jumps
ahead (a 32x32 bit matrix applied through byte tables) to the start of many chunks of the run
and then steps all chunks of all lanes together. Integers only.
"""

from functools import lru_cache
from numbers import Integral

import numpy as np

__all__ = ["poisson", "lane_seeds", "xorshift32", "xorshift32_states", "DEFAULT_RATES"]

_MASK = 0xFFFFFFFF
#: 16-bit per-tick spike probabilities (x 2^-16) for +1, 0, -1: 100 Hz, 0 Hz, 50 Hz at dt = 1 ms.
DEFAULT_RATES = (6554, 0, 3277)
_ZERO_SEED = 0x6D2B79F5            # replaces a lane seed that hashes to 0 (xorshift's fixed point)


def _check_int(name, value, lo, hi):
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"poisson parameter {name!r} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"poisson parameter {name!r} must be in {lo}..{hi}, not {value}")
    return int(value)


def lane_seeds(seed, p):
    """The initial state of each of the ``p`` lane generators, derived from one user seed.

    ``x_k = fmix32((seed + (k + 1) * 0x9E3779B9) mod 2^32)`` for lane ``k`` (splitmix32: the
    golden-ratio increment, then MurmurHash3's 32-bit finaliser), replaced by ``0x6D2B79F5``
    if it is 0, the one state xorshift never leaves. Returns uint32 ``(p,)``.
    """
    seed = _check_int("seed", seed, 0, _MASK)
    p = _check_int("p", p, 1, 65536)
    out = []
    for k in range(p):
        z = (seed + (k + 1) * 0x9E3779B9) & _MASK
        z = ((z ^ (z >> 16)) * 0x85EBCA6B) & _MASK
        z = ((z ^ (z >> 13)) * 0xC2B2AE35) & _MASK
        z ^= z >> 16
        out.append(z or _ZERO_SEED)
    return np.array(out, dtype=np.uint32)


_S13, _S16, _S17, _S5 = np.uint32(13), np.uint32(16), np.uint32(17), np.uint32(5)


def xorshift32(x):
    """One xorshift32 step (``x ^= x << 13; x ^= x >> 17; x ^= x << 5``) of a uint32 array."""
    x = np.asarray(x, dtype=np.uint32)
    x = x ^ (x << _S13)
    x = x ^ (x >> _S17)
    return x ^ (x << _S5)


# A linear map of GF(2)^32 is held as byte tables: (4, 256) uint32, row b mapping byte b.
def _tables(cols):
    """Byte tables of the map whose images of the 32 unit vectors are ``cols``."""
    bits = np.arange(256, dtype=np.uint32)
    tables = np.zeros((4, 256), dtype=np.uint32)
    for b in range(4):
        for i in range(8):
            tables[b] ^= np.where((bits >> np.uint32(i)) & np.uint32(1), cols[8 * b + i],
                                  np.uint32(0)).astype(np.uint32)
    return tables


def _apply(tables, x):
    """The map given by ``tables`` applied to every element of the uint32 array ``x``."""
    out = tables[0][x & np.uint32(255)]
    for b in range(1, 4):
        out ^= tables[b][(x >> np.uint32(8 * b)) & np.uint32(255)]
    return out


_UNIT = np.uint32(1) << np.arange(32, dtype=np.uint32)


@lru_cache(maxsize=64)
def _power(n):
    """Byte tables of the map of ``n`` xorshift32 steps (by repeated squaring)."""
    result = _UNIT
    square = xorshift32(_UNIT)
    while n:
        if n & 1:
            result = _apply(_tables(square), result)
        n >>= 1
        if n:
            square = _apply(_tables(square), square)
    return _tables(result)


class _Generators:
    """P xorshift32 generators; :meth:`take` returns their next states in bulk."""

    def __init__(self, state):
        self.state = np.array(state, dtype=np.uint32).reshape(-1)
        self._buffers = {}

    def _buffer(self, name, shape):
        # Reused between calls: fresh large arrays cost a page fault per 4 KiB on first touch.
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape:
            buf = self._buffers[name] = np.empty(shape, dtype=np.uint32)
        return buf

    def take(self, n):
        """States after the next 1..n steps: uint32 ``(n, P)``; the generators advance n steps.

        The result is a view of a buffer that the next call overwrites.
        """
        P = self.state.shape[0]
        if n <= 0:
            return np.zeros((0, P), dtype=np.uint32)
        # K chunks of L consecutive steps, stepped together: K*P elements per NumPy call keep
        # the per-call cost small and the working set in the cache.
        L = min(n, 256)
        K = -(-n // L)
        if K * P > 8192:
            K = max(1, 8192 // P)
            L = -(-n // K)
        K = -(-n // L)
        starts = np.empty((K, P), dtype=np.uint32)
        starts[0] = self.state
        filled, step = 1, L
        while filled < K:                        # starts[c] = (c*L steps)(state), by doubling
            m = min(filled, K - filled)
            starts[filled:filled + m] = _apply(_power(step), starts[:m])
            filled += m
            step *= 2
        buf = self._buffer("steps", (L, K, P))
        tmp = self._buffer("tmp", (K, P))
        x = starts
        for j in range(L):
            nxt = buf[j]
            np.left_shift(x, _S13, out=tmp)
            np.bitwise_xor(x, tmp, out=nxt)
            np.right_shift(nxt, _S17, out=tmp)
            np.bitwise_xor(nxt, tmp, out=nxt)
            np.left_shift(nxt, _S5, out=tmp)
            np.bitwise_xor(nxt, tmp, out=nxt)
            x = nxt
        out = self._buffer("out", (K, L, P))
        np.copyto(out, buf.transpose(1, 0, 2))
        out = out.reshape(K * L, P)[:n]
        self.state = out[-1].copy()
        return out


def xorshift32_states(state, n):
    """States after 1..n steps of each generator: uint32 ``(n, P)`` for ``state`` ``(P,)``."""
    return np.ascontiguousarray(_Generators(state).take(max(int(n), 0)))


def poisson(q, lengths=None, *, p, W, seed=0, rate_pos=DEFAULT_RATES[0],
            rate_zero=DEFAULT_RATES[1], rate_neg=DEFAULT_RATES[2], state=None,
            return_state=False):
    """Encode each ternary vector as ``W`` ticks of binary spikes.

    Element ``j`` of a vector is served by lane generator ``k = j % p``. Every generator steps
    once per output beat (one beat = ``p`` elements of one tick), whether or not its lane holds
    an element, in stream order: vector by vector, tick by tick, beat by beat. At tick ``t``
    element ``j`` spikes iff ``(r >> 16) < rate[q_j]``, ``r`` being its generator's new state.
    Generators start from :func:`lane_seeds` (or ``state``) and are never re-seeded in between.

    ``q``: integer array ``(V, D)`` of ternary values -1, 0, +1; -2 (the illegal 2-bit code
    0b10) is treated as 0. ``lengths``: ``(V,)`` in 1..D (default D); elements past a vector's
    length never spike. ``rate_*``: 16-bit thresholds in 0..65535 (probability ``rate/2^16``).
    Returns spikes as uint8 ``(V, W, D)``, and with ``return_state`` also the final generator
    states (uint32 ``(p,)``), from which a following call continues (``state=``).
    """
    p = _check_int("p", p, 1, 65536)
    W = _check_int("W", W, 1, 65535)
    rates = [_check_int(name, v, 0, 65535) for name, v in
             (("rate_pos", rate_pos), ("rate_zero", rate_zero), ("rate_neg", rate_neg))]
    q = np.asarray(q)
    if q.ndim != 2:
        raise ValueError(f"poisson input 'q' must have shape (V, D), not {q.shape}")
    if q.size and (q.dtype.kind not in "iu" or q.min() < -2 or q.max() > 1):
        raise ValueError("poisson input 'q' must hold 2-bit ternary codes -1, 0, +1 "
                         "(or -2, the illegal code, read as 0)")
    V, D = q.shape
    if lengths is None:
        lengths = np.full(V, D, dtype=np.int64)
    lengths = np.asarray(lengths).astype(np.int64)
    if lengths.shape != (V,) or (V and (lengths.min() < 1 or lengths.max() > D)):
        raise ValueError(f"poisson input 'lengths' must be {V} integers in 1..{D}")
    if state is None:
        state = lane_seeds(seed, p)
    else:
        state = np.asarray(state, dtype=np.uint32)
        if state.shape != (p,) or not state.all():
            raise ValueError(f"poisson input 'state' must be {p} nonzero uint32 values")

    # Threshold per element: code & 3 indexes (0, +1, illegal, -1); past the length: never.
    table = np.array([rates[1], rates[0], rates[1], rates[2]], dtype=np.uint32)
    G = -(-lengths // p)
    Gmax = -(-D // p)
    thr = np.zeros((V, Gmax * p), dtype=np.uint32)
    thr[:, :D] = table[q.astype(np.int64) & 3]
    thr[np.arange(Gmax * p)[None, :] >= lengths[:, None]] = 0
    thr = thr.reshape(V, 1, Gmax, p)
    gens = _Generators(state)
    hits = np.zeros((V, W, Gmax, p), dtype=bool)
    beats = W * G
    offsets = np.concatenate([[0], np.cumsum(beats)])
    # Slices of consecutive vectors of about 2^20 states (or one longer vector) at a time.
    budget = max(1, (1 << 20) // p)
    v = 0
    while v < V:
        end = max(v + 1, int(np.searchsorted(offsets, offsets[v] + budget, side="right")) - 1)
        r = gens.take(int(offsets[end] - offsets[v]))
        np.right_shift(r, _S16, out=r)          # the buffer is ours until the next take
        g = int(G[v])
        if (G[v:end] == g).all():               # equal shapes: compare by broadcasting
            r = r.reshape(end - v, W, g, p)
            if g == Gmax:
                np.less(r, thr[v:end], out=hits[v:end])
            else:
                hits[v:end, :, :g] = r < thr[v:end, :, :g]
        else:                                   # mixed shapes: a threshold row per beat
            vid = np.repeat(np.arange(v, end), beats[v:end])
            pos = np.arange(len(vid)) - (offsets[vid] - offsets[v])
            grp = pos % G[vid]
            hits[vid, pos // G[vid], grp] = r < thr[vid, 0, grp]
        v = end
    spikes = hits.view(np.uint8).reshape(V, W, Gmax * p)
    if Gmax * p != D:
        spikes = np.ascontiguousarray(spikes[:, :, :D])
    if return_state:
        return spikes, gens.state.copy()
    return spikes
