"""Ternary-linear edge cases that mutation testing (``python -m spikeforge.sim.mutate
ternary_linear``) showed the other tests did not pin: the weight range and the upper end of
``weights_seed``."""

import pytest

from spikeforge.golden.ternary_linear import random_ternary_weights, ternary_linear


@pytest.mark.parametrize("bad", [-2, 2])
def test_golden_refuses_weights_outside_minus_one_to_one(bad):
    ternary_linear([[1, 1]], [[1, -1], [0, 1]])          # the ends themselves are fine
    with pytest.raises(ValueError, match=r"^ternary_linear parameter 'weights' must hold "
                                         r"integers in -1\.\.1$"):
        ternary_linear([[1, 1]], [[1, bad], [0, 1]])


def test_weights_seed_upper_end():
    top = 2 ** 63 - 1
    assert random_ternary_weights(top, 2, 3).shape == (2, 3)
    with pytest.raises(ValueError, match=r"^ternary_linear parameter 'weights_seed' must be in "
                                         rf"0\.\.{top}, not {top + 1}$"):
        random_ternary_weights(top + 1, 2, 3)
