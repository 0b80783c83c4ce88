"""absmean edge cases that mutation testing (``python -m spikeforge.sim.mutate absmean``)
showed the other tests did not pin."""

import pytest

from spikeforge.golden.absmean import absmean


def test_golden_names_the_first_bad_input():
    with pytest.raises(ValueError, match=r"^absmean input 'e' must be in -8\.\.7 "
                                         r"\(e_width=4\), not 9$"):
        absmean([[1, 9], [-20, 0]], e_width=4)
