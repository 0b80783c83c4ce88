"""Rank-order edge cases that mutation testing (``python -m spikeforge.sim.mutate rankorder``)
showed the other tests did not pin: the upper ends of the significance table's parameters."""

import pytest

from spikeforge.golden.rankorder import significance


def test_significance_parameter_upper_ends():
    assert significance(1, 16, 2).tolist() == [2 ** 16, 1]
    with pytest.raises(ValueError, match=r"^rankorder parameter 'frac' must be in 1\.\.16, "
                                         r"not 17$"):
        significance(1, 17, 2)
    assert len(significance(1, 1, 1 << 20)) == 1 << 20
    with pytest.raises(ValueError, match=r"^rankorder parameter 'n' must be in 0\.\.1048576, "
                                         r"not 1048577$"):
        significance(1, 1, (1 << 20) + 1)
