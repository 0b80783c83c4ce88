"""Attention-LUT edge cases that mutation testing
(``python -m spikeforge.sim.mutate lut_attention``) showed the other tests did not pin: the
ranges of an image's memories at both ends, the golden model with other than two comparisons
per table, the limit on the index width, and the declared latency with several banks."""

import numpy as np
import pytest
from test_lut_attention import brute_force, contents

from spikeforge.cores import get_core
from spikeforge.golden.lut import random_anchors
from spikeforge.golden.lut_attention import lut_attention, save_attention_image
from spikeforge.rtl.lut_attention import check_lut_attention_params
from spikeforge.sim.amaranth_bench import golden_mismatches, run_stream

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


@pytest.mark.parametrize("banks, n_t", [(1, 2), (2, 2), (2, 4), (4, 4), (3, 3)])
def test_latency_as_declared(banks, n_t):
    """``latency(i)`` (which the LM's cycle model adds up) is the cycles from position i's
    input handshake to its output in the Amaranth simulator, no gaps, for every bank count
    (the adder tree over banks adds ceil(log2(banks)) cycles)."""
    spec = get_core("lut_attention")
    params = spec.params({"n": 6, "n_t": n_t, "n_c": 1, "p": 1, "ctx": 3, "y_dim": 1,
                          "banks": banks})
    stim = spec.stimulus(params, 5, np.random.default_rng(1))
    beats = [b for phase in stim for b in phase.get("i", ())]
    beats = [dict(b, first=int(k == 0)) for k, b in enumerate(beats)]
    core = spec.build(**params)
    res = run_stream(core, {"i": beats}, {"o": len(beats)}, gaps=False)
    assert [o - i for i, o in zip(res.input_cycles["i"], res.cycles["o"])] == \
        [core.latency(k) for k in range(len(beats))]


@pytest.mark.parametrize("banks", [1, 3])
def test_rtl_drops_writes_to_tables_past_n_t(banks):
    """``n_t = 3`` leaves table number 3 on the wire; writes to it (anchors, rows, codes) must
    be dropped, as the golden model does (the spec's random writes only name real tables)."""
    spec = get_core("lut_attention")
    params = spec.params({"n": 6, "n_t": 3, "n_c": 1, "p": 1, "ctx": 3, "y_dim": 1,
                          "w_width": 4, "banks": banks})
    rng = np.random.default_rng(3)
    stim = spec.stimulus(params, 6, rng)
    beats = [b for phase in stim for b in phase.get("i", ())]
    def write(kind, addr=0, a=0, b=1):
        return {"kind": kind, "table": 3, "addr": addr, "y": [5], "a": [a], "b": [b], "pe": 1}
    writes = ([write(0, addr) for addr in range(8)] + [write(2, 0), write(2, 1)]
              + [write(1, a=a, b=b) for a, b in [(0, 1), (2, 5), (4, 3)]])
    stim = [{"i": beats[:3]}, {"w": writes}, {"i": beats[3:]}]
    expected = spec.golden(params, stim)
    result = run_stream(spec.build(**params), stim, {k: len(v) for k, v in expected.items()},
                        seed=4)
    assert golden_mismatches(spec, params, stim, result) == []
