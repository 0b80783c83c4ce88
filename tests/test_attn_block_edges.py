"""Attention-block edge cases that mutation testing
(``python -m spikeforge.sim.mutate attn_block``) showed the other tests did not pin: the
golden model refuses non-binary input spikes, and the cycle model's stage costs."""

import numpy as np
import pytest

from spikeforge.golden.attn_block import attn_block, attn_block_token_cycles, random_block_weights

PARAMS = dict(d_model=2, d=2, L=2, T=1, strict=False, p=1, k=1, frac=8, qkv_theta=2,
              qkv_beta=128, attn_theta=2, attn_beta=128, out_theta=2, out_beta=128,
              proj_theta=2, proj_beta=128)


@pytest.mark.parametrize("bad", [-1, 2])
def test_golden_refuses_non_binary_spikes(bad):
    weights = random_block_weights(d_model=2, d=2, seed=1)
    with pytest.raises(ValueError, match=r"^attn_block input 'x' must hold binary spikes 0/1$"):
        attn_block(np.array([[0, bad]]), [True], **weights, **PARAMS)


@pytest.mark.parametrize("shape, cycles", [
    # Q/K/V projection (3d/p)*(d_model/k) = 24*8 = 192 cycles per step, T = 2 steps.
    (dict(d_model=8, d=8, T=2, p=1, k=1), 384),
    # Every stage is short: the LIF hazard window, 5 cycles, sets the pace.
    (dict(d_model=2, d=2, T=1, p=2, k=2), 5),
    # Q/K/V projection (3*2/1)*(6/2) = 18 against the output projection's (6/1)*(2/2) = 6.
    (dict(d_model=6, d=2, T=1, p=1, k=2), 18),
    # k = d_model: the Q/K/V projection and its LIF array both take 3d/p = 12 cycles.
    (dict(d_model=4, d=4, T=1, p=1, k=4), 12),
])
def test_token_cycles_by_hand(shape, cycles):
    assert attn_block_token_cycles(10, L=4, strict=False, **shape) == cycles
