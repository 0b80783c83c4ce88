"""Associative-memory edge cases that mutation testing
(``python -m spikeforge.sim.mutate assoc``) showed the other tests did not pin: the golden
model and the RTL accept the same parameters at the ends of their ranges, a negative write
address is refused, the retrieval demo's documented defaults, the range of the RTL's initial
patterns, and the declared latency and interval with several banks."""

import re

import numpy as np
import pytest

from spikeforge.cores import get_core
from spikeforge.golden.assoc import assoc, assoc_write, synthetic_codes, word2spike_retrieval
from spikeforge.rtl.assoc import Assoc, check_assoc_params
from spikeforge.sim.amaranth_bench import run_stream

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


@pytest.mark.parametrize("kind, bad, ok", [("ternary", 2, 1), ("ternary", -3, -2),
                                           ("rank", 4, 3), ("rank", -1, 0)])
def test_rtl_pattern_range(kind, bad, ok):
    params = {"K": 2, "D": 4, "kind": kind, "N": 2, "alpha": 192, "frac": 8, "banks": 1,
              "top_k": 1}
    shape = (2, 4) if kind == "ternary" else (2, 2)
    Assoc(patterns=np.full(shape, ok), **params)
    with pytest.raises(ValueError, match=r"^Assoc 'patterns' must hold values in "
                                         + (r"-2\.\.1$" if kind == "ternary" else r"0\.\.3$")):
        Assoc(patterns=np.full(shape, bad), **params)


@pytest.mark.parametrize("K, banks, top_k", [(8, 2, 2), (8, 4, 2), (4, 4, 3), (6, 1, 2)])
def test_rtl_latency_and_interval_as_declared(K, banks, top_k):
    """Queries back to back, no gaps or backpressure (Amaranth simulator): the first result
    comes ``latency`` cycles after its handshake and the others ``interval`` apart, the merge
    of several banks included."""
    spec = get_core("assoc")
    params = spec.params({"K": K, "D": 4, "banks": banks, "top_k": top_k})
    stim = spec.stimulus(params, 6, np.random.default_rng(1))
    beats = [b for phase in (stim if isinstance(stim, list) else [stim])
             for b in phase.get("i", ())]
    core = spec.build(**params)
    res = run_stream(core, {"i": beats}, {"o": len(beats)}, gaps=False)
    out = res.cycles["o"]
    assert len(out) == len(beats)
    assert out[0] - res.input_cycles["i"][0] == core.latency
    assert np.diff(out).tolist() == [core.interval] * (len(out) - 1)
