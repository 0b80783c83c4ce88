"""Associative-memory edge cases that mutation testing
(``python -m spikeforge.sim.mutate assoc``) showed the other tests did not pin: the golden
model and the RTL accept the same parameters at the ends of their ranges, a negative write
address is refused, and the retrieval demo's documented defaults."""

import re

import numpy as np
import pytest

from spikeforge.golden.assoc import assoc, assoc_write, synthetic_codes, word2spike_retrieval
from spikeforge.rtl.assoc import check_assoc_params

BASE = dict(K=32, D=40, kind="ternary", N=2, alpha=192, frac=8, banks=2, top_k=1)


def _outcome(fn):
    try:
        fn()
    except (TypeError, ValueError) as exc:
        return type(exc).__name__, re.search(r"parameter '(\w+)'", str(exc)).group(1)
    return "accepted"


@pytest.mark.parametrize("change, accepted", [
    ({"top_k": 16}, True), ({"top_k": 17}, False), ({"N": 32}, True), ({"N": 33}, False),
    ({"kind": "rank", "N": 32}, True), ({"kind": "rank", "N": 33}, False),
    ({"kind": "rank", "D": 20, "N": 20}, True), ({"kind": "rank", "D": 20, "N": 21}, False),
    ({"kind": "rank", "D": 2, "N": 1}, True), ({"kind": "rank", "D": 1, "N": 1}, False),
    ({"D": 1, "N": 1}, True), ({"D": 0, "N": 1}, False),
])
def test_golden_and_rtl_accept_the_same(change, accepted):
    params = {**BASE, **change}
    width = params["N"] if params["kind"] == "rank" else params["D"]
    golden = _outcome(lambda: assoc(np.zeros((32, width), np.int64),
                                    np.zeros((1, width), np.int64), **params))
    rtl = _outcome(lambda: check_assoc_params(**params))
    assert golden == rtl
    assert (golden == "accepted") == accepted


def test_golden_write_refuses_a_negative_address():
    with pytest.raises(ValueError, match=r"^assoc write 'addr' must be in 0\.\.3$"):
        assoc_write(np.zeros((4, 2), np.int64), [-1], [[1, 1]])


def test_retrieval_defaults():
    """``p`` defaults to 8 lanes (which lane encodes an element depends on it), ``top_k`` is capped
    at 16 (the memory's limit) and at the number of codes."""
    codes = synthetic_codes(20, 20, seed=3)
    default = word2spike_retrieval(codes, W=6, seed=2)
    assert np.array_equal(default["decoded"], word2spike_retrieval(codes, W=6, seed=2,
                                                                   p=8)["decoded"])
    assert not np.array_equal(default["decoded"], word2spike_retrieval(codes, W=6, seed=2,
                                                                       p=4)["decoded"])
    assert word2spike_retrieval(codes, W=6, seed=2, top_k=30)["index"].shape == (20, 16)
