"""Attention-LUT edge cases that mutation testing
(``python -m spikeforge.sim.mutate lut_attention``) showed the other tests did not pin: the
ranges of an image's memories at both ends, the golden model with other than two comparisons
per table, and the limit on the index width."""

import numpy as np
import pytest
from test_lut_attention import brute_force, contents

from spikeforge.golden.lut import random_anchors
from spikeforge.golden.lut_attention import lut_attention, save_attention_image
from spikeforge.rtl.lut_attention import check_lut_attention_params

# n = 8, n_t = 2, n_c = 1, p = 2, ctx = 4 (3 relative positions), y_dim = 1, w_width = 5.


def _save(path, memory, value):
    mems = {"anchors": random_anchors(8, 2, 1, np.random.default_rng(1)),
            "tables": np.zeros((2, 2 ** (2 + 2), 1), np.int64),
            "pe": np.zeros((2, 3), np.int64)}
    mems[memory] = mems[memory].copy()
    mems[memory].flat[1] = value
    save_attention_image(path, **mems, n=8, p=2, ctx=4, w_width=5)


@pytest.mark.parametrize("memory, value, ok", [
    ("anchors", 0, True), ("anchors", 7, True), ("anchors", -1, False), ("anchors", 8, False),
    ("tables", 15, True), ("tables", -16, True), ("tables", 16, False), ("tables", -17, False),
    ("pe", 0, True), ("pe", 3, True), ("pe", -1, False), ("pe", 4, False),
])
def test_image_ranges(tmp_path, memory, value, ok):
    if ok:
        _save(tmp_path / "a.npz", memory, value)
    else:
        with pytest.raises(ValueError, match=memory):
            _save(tmp_path / "a.npz", memory, value)


@pytest.mark.parametrize("n_c", [1, 3])
def test_golden_matches_brute_force_n_c(n_c):
    shape = dict(n=8, n_t=2, n_c=n_c, p=1, ctx=4, y_dim=2, w_width=5)
    anchors, tables, pe = contents(shape, seed=n_c)
    rng = np.random.default_rng(n_c)
    x = rng.integers(-3, 4, size=(30, 8))
    first = rng.random(30) < 0.1
    z, _ = lut_attention(x, first, anchors, tables, pe, p=1, ctx=4)
    zb, _ = brute_force(x, first, anchors, tables, pe, p=1, ctx=4, causal_self=False)
    assert np.array_equal(z, zb)


@pytest.mark.parametrize("n_c, p, ok", [(6, 4, True), (6, 5, False), (8, 0, True),
                                        (7, 3, False)])
def test_index_width_limit(n_c, p, ok):
    """The index ``J`` has ``2*n_c + p`` bits, at most 16."""
    params = dict(n=16, x_width=4, n_t=1, n_c=n_c, p=p, ctx=2, y_dim=1, w_width=4)
    if ok:
        assert check_lut_attention_params(**params)["n_c"] == n_c
    else:
        with pytest.raises(ValueError, match=r"^LUT attention index width 2\*n_c \+ p must be "
                                             rf"at most 16, not {2 * n_c + p} "
                                             rf"\(n_c={n_c}, p={p}\)$"):
            check_lut_attention_params(**params)
