"""Golden model of softmax-free spiking attention (SFSA): integer NumPy.

The neurons are those of :func:`spikeforge.golden.lif.lif` (the ``bispikclm`` form: binary,
subtractive reset by theta, one leak), run on the attention scores of every pair ``(i, j)`` and
on the value counts of every output channel, each over the ``T`` steps of one token.
"""

from numbers import Integral

import numpy as np

from .lif import lif

__all__ = ["sfsa", "sfsa_positions", "sfsa_step_cycles", "sfsa_token_cycles",
           "sfsa_schedule", "SFSA_LATENCY", "SFSA_HAZARD"]

#: Cycles from the last key cycle of a step to its output beat (full throughput).
SFSA_LATENCY = 10
#: Minimum cycles per step.
SFSA_HAZARD = 2


def _check_int(name, value, lo, hi):
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"sfsa parameter {name!r} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"sfsa parameter {name!r} must be in {lo}..{hi}, not {value}")
    return int(value)


def _neuron(x, first, theta, beta, frac, T, x_max, m_max):
    """BiSpikCLM neurons on ``x`` (steps, n): the LIF golden model with sizes that never
    saturate (the membrane stays in -theta..m_max)."""
    return lif(x, first, n=x.shape[1], p=1, T=T, x_width=x_max.bit_length() + 1,
               m_width=max(m_max, theta).bit_length() + 1, frac=frac, beta_pos=beta,
               beta_zero=beta, beta_neg=beta, theta_pos=theta, theta_neg=1,
               theta_reset=theta, rho=1, bipolar=False)


def sfsa_positions(first, T):
    """``(t, i)``: the step within its token and the token's position, for each beat."""
    first = np.asarray(first, dtype=bool)
    t = np.zeros(len(first), dtype=np.int64)
    i = np.zeros(len(first), dtype=np.int64)
    for s in range(1, len(first)):
        if not first[s]:
            t[s], i[s] = (0, i[s - 1] + 1) if t[s - 1] == T - 1 else (t[s - 1] + 1, i[s - 1])
    return t, i


def sfsa(q, k, v, first, *, d, L, T, strict, frac, attn_theta, attn_beta, out_theta, out_beta,
         return_internals=False):
    """Run one SFSA head over ``S`` step beats.

    ``q``, ``k``, ``v``: binary arrays ``(S, d)``; ``first``: bool ``(S,)``, true where a beat
    starts a sequence (beat 0 always does). Beats come token by token, ``T`` steps per token
    (the last token of a sequence may be cut short by the next ``first``). A token at position
    ``i`` attends, at each of its steps ``t``, to the keys ``K_j,t`` of positions
    ``max(0, i-L+1) <= j <= i`` (``strict``: ``max(0, i-L) <= j < i``)::

        A_ij = neuron over t of popcount(Q_i,t & K_j,t)        (attn_theta, attn_beta)
        O_i,t = sum_j A_ij,t * V_j,t
        S_i  = neuron over t of O_i,t                          (out_theta, out_beta)

    each neuron ``U_t = floor(beta*U_{t-1} / 2^frac) + x_t - S_{t-1}*theta``,
    ``S_t = [U_t >= theta]``, starting from 0 at ``t = 0`` of every token. Returns the output
    spikes ``S`` as uint8 ``(S, d)``; with ``return_internals`` also ``O`` (int64 ``(S, d)``)
    and the per-token attention maps (a list of ``(positions_attended, A)`` per token, ``A``
    of shape ``(steps, n)``).
    """
    d = _check_int("d", d, 1, 1024)
    L = _check_int("L", L, 1, 4096)
    T = _check_int("T", T, 1, 64)
    if not isinstance(strict, (bool, np.bool_)):
        raise TypeError(f"sfsa parameter 'strict' must be a bool, not {strict!r}")
    frac = _check_int("frac", frac, 0, 16)
    attn_theta = _check_int("attn_theta", attn_theta, 1, 65535)
    out_theta = _check_int("out_theta", out_theta, 1, 65535)
    attn_beta = _check_int("attn_beta", attn_beta, 0, 2 ** frac)
    out_beta = _check_int("out_beta", out_beta, 0, 2 ** frac)
    arrays = {}
    for name, arr in (("q", q), ("k", k), ("v", v)):
        arr = np.asarray(arr)
        if arr.ndim != 2 or arr.shape[1] != d:
            raise ValueError(f"sfsa input {name!r} must have shape (S, {d}), not {arr.shape}")
        if arr.size and (arr.dtype.kind not in "iub" or arr.min() < 0 or arr.max() > 1):
            raise ValueError(f"sfsa input {name!r} must hold binary spikes 0/1")
        arrays[name] = arr.astype(np.int64)
    q, k, v = arrays["q"], arrays["k"], arrays["v"]
    S = q.shape[0]
    if k.shape[0] != S or v.shape[0] != S:
        raise ValueError(f"sfsa inputs 'q', 'k', 'v' must have the same length, not "
                         f"{S}, {k.shape[0]}, {v.shape[0]}")
    first = np.asarray(first, dtype=bool)
    if first.shape != (S,):
        raise ValueError(f"sfsa input 'first' must have shape ({S},), not {first.shape}")

    t, pos = sfsa_positions(first, T)
    seq_start = np.maximum.accumulate(np.where((t == 0) & (pos == 0), np.arange(S), 0))
    o = np.zeros((S, d), dtype=np.int64)
    maps = []
    token_starts = np.flatnonzero(t == 0)
    token_ends = np.append(token_starts[1:], S)
    for s0, s1 in zip(token_starts, token_ends):
        i, steps = pos[s0], s1 - s0
        lo = max(0, i - L + 1) if not strict else max(0, i - L)
        hi = i if not strict else i - 1
        if hi < lo:
            maps.append((np.zeros(0, dtype=np.int64), np.zeros((steps, 0), dtype=np.uint8)))
            continue
        js = np.arange(lo, hi + 1)
        # Every earlier token of the sequence is complete, so K_j,t is beat start + j*T + t.
        idx = seq_start[s0] + js[:, None] * T + np.arange(steps)[None, :]      # (n, steps)
        scores = np.einsum("td,jtd->tj", q[s0:s1], k[idx])
        first_step = np.zeros(steps, dtype=bool)
        first_step[0] = True
        a = _neuron(scores, first_step, attn_theta, attn_beta, frac, T, d, T * d)
        o[s0:s1] = np.einsum("tj,jtd->td", a.astype(np.int64), v[idx])
        maps.append((js, a))
    spikes = _neuron(o, t == 0, out_theta, out_beta, frac, T, L, T * L).astype(np.uint8)
    if return_internals:
        return spikes, o, maps
    return spikes


def _window(i, L, strict):
    i = np.asarray(i, dtype=np.int64)
    return np.minimum(i, L) if strict else np.minimum(i + 1, L)


def sfsa_step_cycles(i, *, L, strict, **_):
    """Cycles a step of a token at position ``i`` occupies: ``max(n_i, 2)`` with ``n_i`` the
    keys in its window, ``min(i+1, L)`` (strict: ``min(i, L)``)."""
    return np.maximum(_window(i, L, strict), SFSA_HAZARD)


def sfsa_token_cycles(i, *, L, T, strict, d=None, **_):
    """Cycles per token at position ``i`` at full throughput: ``T * max(n_i, 2)``.

    The head dimension ``d`` does not enter: every key costs one cycle whatever its width.
    """
    return T * sfsa_step_cycles(i, L=L, strict=strict)


def sfsa_schedule(first, *, L, T, strict, **_):
    """Output cycles at full throughput, relative to the cycle the first beat is accepted.

    Step ``b`` is accepted in the last key cycle of step ``b-1``; its output leaves
    ``SFSA_LATENCY`` cycles after its own last key cycle, so output ``b`` leaves at
    ``sum(step_cycles[:b+1]) + SFSA_LATENCY``.
    """
    _, pos = sfsa_positions(first, T)
    cost = sfsa_step_cycles(pos, L=L, strict=strict)
    return np.cumsum(cost) + SFSA_LATENCY
