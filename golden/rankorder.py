"""Golden model of the N-of-M rank-order encoder: integer NumPy, vectorised over vectors."""

from numbers import Integral

import numpy as np

__all__ = ["rankorder", "significance"]


def _check_int(name, value, lo, hi):
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"rankorder parameter {name!r} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"rankorder parameter {name!r} must be in {lo}..{hi}, not {value}")
    return int(value)


def significance(alpha, frac, n):
    """int64 array ``s[k] = floor((alpha/2^frac)^k * 2^frac)`` for ``k = 0..n-1``, exact.

    ``alpha/2^frac`` must lie in (0, 1): ``frac`` in 1..16 and ``alpha`` in 1..2^frac-1.
    """
    frac = _check_int("frac", frac, 1, 16)
    alpha = _check_int("alpha", alpha, 1, 2 ** frac - 1)
    n = _check_int("n", n, 0, 1 << 20)
    # (alpha/2^F)^k * 2^F = alpha^k / 2^(F(k-1)); Python ints keep it exact before the floor.
    values = []
    for k in range(n):
        v = 2 ** frac if k == 0 else alpha ** k >> (frac * (k - 1))
        if v == 0:
            break           # every deeper rank rounds to 0 as well
        values.append(v)
    values += [0] * (n - len(values))
    return np.array(values, dtype=np.int64)


def rankorder(x, *, M, N, width, order, alpha, frac, outputs="both"):
    """N-of-M rank-order codes of ``S`` vectors.

    ``x``: integer array ``(S, M)``, signed ``width``-bit values for ``order="largest"``,
    unsigned ``width``-bit latencies for ``order="earliest"``. Elements are ordered largest
    first (or earliest first), ties to the lower index. Returns ``(idx, sig)``: ``idx`` int64
    ``(S, N)``, the indices of the first ``N`` elements in order, and ``sig`` int64 ``(S, M)``,
    ``significance(alpha, frac, N)[k]`` at the element of rank ``k < N`` and 0 elsewhere.
    ``outputs`` is accepted for a signature uniform with the RTL ("both", "indices",
    "significance") and does not change the result.
    """
    M = _check_int("M", M, 2, 64)
    N = _check_int("N", N, 1, M)
    width = _check_int("width", width, 1, 24)
    if order not in ("earliest", "largest"):
        raise ValueError(f"rankorder parameter 'order' must be 'earliest' or 'largest', "
                         f"not {order!r}")
    if outputs not in ("both", "indices", "significance"):
        raise ValueError(f"rankorder parameter 'outputs' must be 'both', 'indices' or "
                         f"'significance', not {outputs!r}")
    table = significance(alpha, frac, N)

    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != M:
        raise ValueError(f"rankorder input 'x' must have shape (S, {M}), not {x.shape}")
    if x.size and x.dtype.kind not in "iu":
        raise TypeError(f"rankorder input 'x' must be an integer array, not {x.dtype}")
    x = x.astype(np.int64)
    lo, hi = ((-2 ** (width - 1), 2 ** (width - 1) - 1) if order == "largest"
              else (0, 2 ** width - 1))
    if x.size and (x.min() < lo or x.max() > hi):
        bad = x[(x < lo) | (x > hi)][0]
        raise ValueError(f"rankorder input 'x' must be in {lo}..{hi} (width={width}, "
                         f"order={order!r}), not {bad}")

    # A stable sort keeps equal keys in index order: ties go to the lower index.
    key = -x if order == "largest" else x
    idx = np.argsort(key, axis=1, kind="stable")[:, :N]
    sig = np.zeros(x.shape, dtype=np.int64)
    np.put_along_axis(sig, idx, np.broadcast_to(table, idx.shape), axis=1)
    return idx.astype(np.int64), sig
