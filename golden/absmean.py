"""Golden model of the absmean ternary quantiser (BitNet b1.58): integer NumPy, vectorised."""

from numbers import Integral

import numpy as np

__all__ = ["absmean"]


def _check_int(name, value, lo, hi):
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"absmean parameter {name!r} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"absmean parameter {name!r} must be in {lo}..{hi}, not {value}")
    return int(value)


def absmean(e, lengths=None, *, e_width=None):
    """Quantise each row of ``e`` to {-1, 0, +1} with the absmean rule, without division.

    For a vector of ``d`` elements with ``S = sum(|e|)``: ``q = +1`` iff ``2*d*e > S``,
    ``-1`` iff ``2*d*e < -S``, else 0 (so ``|e|`` exactly at ``S / 2d``, the rounding tie of
    ``round(e / mean|e|)``, gives 0, and ``S = 0`` gives all zeros).

    ``e``: integer array ``(V, D)``. ``lengths``: ``(V,)`` integers in 1..D, the vector
    lengths (default D); elements past a vector's length are ignored and give 0.
    ``e_width``: if given, every element must fit a signed ``e_width``-bit integer.
    Returns ``q`` as int8 ``(V, D)``.
    """
    e = np.asarray(e)
    if e.ndim != 2:
        raise ValueError(f"absmean input 'e' must have shape (V, D), not {e.shape}")
    if e.size and e.dtype.kind not in "iu":
        raise TypeError(f"absmean input 'e' must be an integer array, not {e.dtype}")
    V, D = e.shape
    e = e.astype(np.int64)
    if e_width is not None:
        e_width = _check_int("e_width", e_width, 2, 24)
        lo, hi = -2 ** (e_width - 1), 2 ** (e_width - 1) - 1
        if e.size and (e.min() < lo or e.max() > hi):
            bad = e[(e < lo) | (e > hi)][0]
            raise ValueError(f"absmean input 'e' must be in {lo}..{hi} (e_width={e_width}), "
                             f"not {bad}")
    if lengths is None:
        lengths = np.full(V, D, dtype=np.int64)
    lengths = np.asarray(lengths)
    if lengths.shape != (V,) or (V and lengths.dtype.kind not in "iu"):
        raise ValueError(f"absmean input 'lengths' must be {V} integers, not {lengths!r}")
    lengths = lengths.astype(np.int64)
    if V and (lengths.min() < 1 or lengths.max() > D):
        raise ValueError(f"absmean input 'lengths' must be in 1..{D}")
    e = np.where(np.arange(D)[None, :] < lengths[:, None], e, 0)
    S = np.abs(e).sum(axis=1, keepdims=True)
    # |2*d*e| <= 2 * 65536 * 2^23 and S <= 65536 * 2^23: exact in int64.
    two_d_e = 2 * lengths[:, None] * e
    q = np.where(two_d_e > S, 1, np.where(two_d_e < -S, -1, 0))
    return q.astype(np.int8)
