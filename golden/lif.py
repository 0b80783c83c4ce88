"""Golden model of the LIF integrator array: integer NumPy, vectorised over neurons."""

from numbers import Integral

import numpy as np

__all__ = ["lif"]


def _check_int(name, value, lo, hi):
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"lif parameter {name!r} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"lif parameter {name!r} must be in {lo}..{hi}, not {value}")
    return int(value)


def _per_step(name, value, lo, hi, T):
    """The parameter as an int64 array of length T (a scalar is the same at every step)."""
    values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value] * T
    if len(values) != T:
        raise ValueError(f"lif parameter {name!r} must be an integer or a list of T={T} "
                         f"integers, not a list of {len(values)}")
    return np.array([_check_int(name, v, lo, hi) for v in values], dtype=np.int64)


def lif(x, first, *, n, p, T, x_width, m_width, frac, beta_pos, beta_zero, beta_neg,
        theta_pos, theta_neg, theta_reset, rho, bipolar, return_membrane=False):
    """Run ``n`` LIF neurons over ``S`` steps.

    ``m_t = sat(floor(beta[q_{t-1}]_t * m_{t-1} / 2^frac) + x_t - rho*q_{t-1}*theta_reset_t)``;
    ``q_t = +1 if m_t >= theta_pos_t, -1 if bipolar and m_t <= -theta_neg_t, else 0``, with
    ``beta[+1, 0, -1] = beta_pos, beta_zero, beta_neg``, ``sat`` to the signed ``m_width`` range,
    per-step parameters indexed by the step index within the sequence modulo ``T``, and
    ``m = q = 0`` before the first step of every sequence.

    ``x``: integer array ``(S, n)`` within the signed ``x_width`` range. ``first``: bool array
    ``(S,)``, true where a step starts a sequence (step 0 always does). ``p`` is accepted for a
    signature uniform with the RTL and not used. Returns ``q`` as int8 ``(S, n)``, and with
    ``return_membrane`` also ``m`` as int64 ``(S, n)``.
    """
    n = _check_int("n", n, 1, 65536)
    _check_int("p", p, 1, 65536)
    T = _check_int("T", T, 1, 64)
    x_width = _check_int("x_width", x_width, 2, 24)
    m_width = _check_int("m_width", m_width, 2, 32)
    frac = _check_int("frac", frac, 0, 16)
    m_hi = 2 ** (m_width - 1) - 1
    m_lo = -m_hi - 1
    b_pos = _per_step("beta_pos", beta_pos, 0, 2 ** frac, T)
    b_zero = _per_step("beta_zero", beta_zero, 0, 2 ** frac, T)
    b_neg = _per_step("beta_neg", beta_neg, 0, 2 ** frac, T)
    th_pos = _per_step("theta_pos", theta_pos, 1, m_hi, T)
    th_neg = _per_step("theta_neg", theta_neg, 1, m_hi, T)
    th_reset = _per_step("theta_reset", theta_reset, 0, m_hi, T)
    rho = _check_int("rho", rho, 0, 1)
    if not isinstance(bipolar, (bool, np.bool_)):
        raise TypeError(f"lif parameter 'bipolar' must be a bool, not {bipolar!r}")

    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != n:
        raise ValueError(f"lif input 'x' must have shape (S, {n}), not {x.shape}")
    if x.size and x.dtype.kind not in "iu":
        raise TypeError(f"lif input 'x' must be an integer array, not {x.dtype}")
    x = x.astype(np.int64)
    x_lo, x_hi = -2 ** (x_width - 1), 2 ** (x_width - 1) - 1
    if x.size and (x.min() < x_lo or x.max() > x_hi):
        bad = x[(x < x_lo) | (x > x_hi)][0]
        raise ValueError(f"lif input 'x' must be in {x_lo}..{x_hi} (x_width={x_width}), "
                         f"not {bad}")
    first = np.asarray(first, dtype=bool)
    if first.shape != (x.shape[0],):
        raise ValueError(f"lif input 'first' must have shape ({x.shape[0]},), not {first.shape}")

    S = x.shape[0]
    q_out = np.zeros((S, n), dtype=np.int8)
    m_out = np.zeros((S, n), dtype=np.int64)
    m = np.zeros(n, dtype=np.int64)
    q = np.zeros(n, dtype=np.int64)
    t = 0
    for s in range(S):
        if s == 0 or first[s]:
            m[:] = 0
            q[:] = 0
            t = 0
        beta = np.where(q > 0, b_pos[t], np.where(q < 0, b_neg[t], b_zero[t]))
        # |beta*m| < 2^48: exact in int64, and >> on int64 is the floor for negative m too.
        total = ((beta * m) >> frac) + x[s] - rho * q * th_reset[t]
        m = np.clip(total, m_lo, m_hi)
        q = np.where(m >= th_pos[t], 1, 0)
        if bipolar:
            q = np.where(m <= -th_neg[t], -1, q)
        q_out[s] = q
        m_out[s] = m
        t = (t + 1) % T
    if return_membrane:
        return q_out, m_out
    return q_out
