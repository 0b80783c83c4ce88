"""Rate-decoder edge cases that mutation testing (``python -m spikeforge.sim.mutate
ratedecode``) showed the other tests did not pin: a beat stream with no beats."""

import numpy as np

from spikeforge.golden.ratedecode import ratedecode_beats


def test_golden_beats_of_an_empty_stream():
    q, lengths = ratedecode_beats(np.zeros((0, 2), np.int64), [], [], [], [], p=2, d_max=4,
                                  C=1, count_width=2)
    assert q.shape == (0, 4) and q.dtype == np.int8
    assert lengths.shape == (0,) and lengths.dtype == np.int64
