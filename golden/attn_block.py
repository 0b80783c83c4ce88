"""Golden model of the BiSpikCLM attention block: the golden ``ternary_linear``, ``lif`` and
``sfsa`` models composed (integer NumPy)."""

from numbers import Integral

import numpy as np

from .lif import lif
from .sfsa import sfsa, sfsa_positions, sfsa_step_cycles
from .ternary_linear import ternary_linear

__all__ = ["attn_block", "attn_block_token_cycles", "random_block_weights", "LIF_HAZARD"]


def random_block_weights(seed, d_model, d):
    """The weights a ``weights_seed`` stands for: ``wq``, ``wk``, ``wv`` (``d x d_model``) then
    ``wo`` (``d_model x d``), drawn in that order from ``numpy.random.default_rng(seed)`` with
    ``integers(-1, 2, size=shape)``."""
    if not isinstance(seed, Integral) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"attn_block parameter 'weights_seed' must be a non-negative integer, "
                         f"not {seed!r}")
    rng = np.random.default_rng(int(seed))
    shapes = {"wq": (d, d_model), "wk": (d, d_model), "wv": (d, d_model), "wo": (d_model, d)}
    return {name: rng.integers(-1, 2, size=shape).astype(np.int64)
            for name, shape in shapes.items()}


def _neurons(x, token_start, *, theta, beta, frac, T, n_in):
    """BiSpikCLM neurons over the steps of each token (restarted at every token's t = 0)."""
    return lif(x, token_start, n=x.shape[1], p=1, T=T, x_width=n_in.bit_length() + 1,
               m_width=max(T * n_in, theta).bit_length() + 1, frac=frac, beta_pos=beta,
               beta_zero=beta, beta_neg=beta, theta_pos=theta, theta_neg=1, theta_reset=theta,
               rho=1, bipolar=False)


def attn_block(x, first, *, wq, wk, wv, wo, d_model, d, L, T, strict, p, k, frac, qkv_theta,
               qkv_beta, attn_theta, attn_beta, out_theta, out_beta, proj_theta, proj_beta,
               return_internals=False):
    """Run the block over ``S`` step beats of binary input spikes ``x`` ``(S, d_model)``.

    ``first`` (bool ``(S,)``) starts sequences; steps come token by token, ``T`` per token::

        Q, K, V = SN_qkv(Wq·x), SN_qkv(Wk·x), SN_qkv(Wv·x)
        A       = sfsa(Q, K, V)
        Y       = SN_proj(Wo·A)

    with each ``SN`` the BiSpikCLM neuron (``golden.lif.lif``: binary, subtractive reset by
    theta, leak ``beta/2^frac``) restarted at ``t = 0`` of every token. ``p`` and ``k`` only
    shape the hardware. Returns ``Y`` as uint8 ``(S, d_model)``; with ``return_internals``
    also a dict of ``q``, ``k``, ``v``, ``a`` (the SFSA output).
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != d_model:
        raise ValueError(f"attn_block input 'x' must have shape (S, {d_model}), not {x.shape}")
    if x.size and (x.dtype.kind not in "iub" or x.min() < 0 or x.max() > 1):
        raise ValueError("attn_block input 'x' must hold binary spikes 0/1")
    first = np.asarray(first, dtype=bool)
    t, _ = sfsa_positions(first, T)
    token_start = t == 0
    x = x.astype(np.int64)
    spikes = {}
    for name, w in (("q", wq), ("k", wk), ("v", wv)):
        y, _ = ternary_linear(x, w)
        spikes[name] = _neurons(y, token_start, theta=qkv_theta, beta=qkv_beta, frac=frac,
                                T=T, n_in=d_model)
    a = sfsa(spikes["q"], spikes["k"], spikes["v"], first, d=d, L=L, T=T, strict=strict,
             frac=frac, attn_theta=attn_theta, attn_beta=attn_beta, out_theta=out_theta,
             out_beta=out_beta)
    y, _ = ternary_linear(a.astype(np.int64), wo)
    out = _neurons(y, token_start, theta=proj_theta, beta=proj_beta, frac=frac, T=T,
                   n_in=d).astype(np.uint8)
    if return_internals:
        return out, {**spikes, "a": a}
    return out


#: A LIF array takes at least this many cycles per step (its documented hazard window).
LIF_HAZARD = 5


def attn_block_token_cycles(i, *, d_model, d, L, T, strict, p, k, **_):
    """Cycles per token at position ``i`` in the steady state, at full throughput.

    The stages run concurrently, so once a sequence's window is full (``i >= L + 2``, a token
    after the window last changed) every token costs ``T`` times the slowest stage's cycles per
    step: the Q/K/V projection ``(3d/p)*(d_model/k)``, its LIF array ``max(3d/p, 5)``, SFSA
    ``max(n_i, 2)``, the output projection ``(d_model/p)*(d/k)`` and its LIF array
    ``max(d_model/p, 5)``. While the window grows, tokens may take up to a few cycles more or
    less as the stages' buffers fill and drain.
    """
    stages = max((3 * d // p) * (d_model // k), max(3 * d // p, LIF_HAZARD),
                 (d_model // p) * (d // k), max(d_model // p, LIF_HAZARD))
    return T * np.maximum(sfsa_step_cycles(i, L=L, strict=strict), stages)
