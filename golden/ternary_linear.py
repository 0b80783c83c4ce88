"""Golden model of the ternary linear layer: integer NumPy, vectorised over vectors and outputs."""

from numbers import Integral

import numpy as np

__all__ = ["ternary_linear", "ternary_linear_cycles", "random_ternary_weights",
           "apply_weight_writes"]


def _check_int(name, value, lo, hi):
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"ternary_linear parameter {name!r} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"ternary_linear parameter {name!r} must be in {lo}..{hi}, not {value}")
    return int(value)


def _check_weights(weights, n_out=None, n_in=None):
    w = np.asarray(weights)
    if w.ndim != 2 or (n_out is not None and w.shape != (n_out, n_in)):
        want = f"({n_out}, {n_in})" if n_out is not None else "(n_out, n_in)"
        raise ValueError(f"ternary_linear parameter 'weights' must have shape {want}, "
                         f"not {w.shape}")
    if w.size and (w.dtype.kind not in "iu" or w.min() < -1 or w.max() > 1):
        raise ValueError("ternary_linear parameter 'weights' must hold integers in -1..1")
    return w.astype(np.int64)


def random_ternary_weights(seed, n_out, n_in):
    """The weights a ``weights_seed`` stands for: uniform over {-1, 0, +1}, row-major draws
    of ``numpy.random.default_rng(seed).integers(-1, 2, size=(n_out, n_in))``."""
    seed = _check_int("weights_seed", seed, 0, 2 ** 63 - 1)
    return np.random.default_rng(seed).integers(-1, 2, size=(n_out, n_in)).astype(np.int64)


def ternary_linear(s, weights, *, spikes="binary"):
    """``y = W·s`` for each input vector; returns ``(y, err)``.

    ``s``: integer array ``(S, n_in)``; binary spikes in {0, 1}, or ternary values in
    {-1, 0, +1} where ``-2`` stands for the illegal wire code 0b10: it counts as 0 and sets
    ``err`` for its vector. ``weights``: ``(n_out, n_in)`` in {-1, 0, +1}. Returns ``y`` as int64
    ``(S, n_out)`` (``|y| <= n_in``) and ``err`` as bool ``(S,)``.
    """
    w = _check_weights(weights)
    n_out, n_in = w.shape
    if spikes not in ("binary", "ternary"):
        raise ValueError(f"ternary_linear parameter 'spikes' must be 'binary' or 'ternary', "
                         f"not {spikes!r}")
    s = np.asarray(s)
    if s.ndim != 2 or s.shape[1] != n_in:
        raise ValueError(f"ternary_linear input 's' must have shape (S, {n_in}), not {s.shape}")
    if s.size and s.dtype.kind not in "iu":
        raise TypeError(f"ternary_linear input 's' must be an integer array, not {s.dtype}")
    s = s.astype(np.int64)
    lo = 0 if spikes == "binary" else -2
    if s.size and (s.min() < lo or s.max() > 1):
        bad = s[(s < lo) | (s > 1)][0]
        raise ValueError(f"ternary_linear input 's' must be in {lo}..1 ({spikes}), not {bad}")
    err = (s == -2).any(axis=1)
    s = np.where(s == -2, 0, s)
    return s @ w.T, err


def apply_weight_writes(weights, writes, *, p, k):
    """The weights after the write-stream beats ``writes`` (dicts ``{"addr", "w"}``), in order.

    Word ``addr = g*(n_in/k) + c`` lane ``l`` input ``m`` is ``W[g*p + l, c*k + m]``; a code
    ``-2`` (0b10) is stored as 0; an address beyond the memory is ignored.
    """
    w = _check_weights(weights).copy()
    n_out, n_in = w.shape
    chunks = n_in // k
    for beat in writes:
        addr = int(beat["addr"])
        if addr >= (n_out // p) * chunks:
            continue
        g, c = divmod(addr, chunks)
        block = np.array(beat["w"], dtype=np.int64).reshape(p, k)
        w[g * p:(g + 1) * p, c * k:(c + 1) * k] = np.where(block == -2, 0, block)
    return w


def ternary_linear_cycles(*, n_in, n_out, p, k, **_):
    """Cycle model at full throughput: ``(cycles_per_vector, latency)``.

    A vector takes ``(n_out/p) * (n_in/k)`` cycles and vectors follow with no gap; group ``g``
    of a vector accepted in cycle ``a`` leaves in cycle ``a + (g+1)*(n_in/k) + latency`` with
    ``latency = 7``.
    """
    return (n_out // p) * (n_in // k), 7
