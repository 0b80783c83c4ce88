# amaranth: UnusedElaboratable=no
"""Event-driven LUT index unit: parameter rules, golden hand checks, equivalence with the vector
index unit (golden and RTL), RTL vs golden in the Amaranth simulator and under cocotb."""

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from spikeforge.cores import get_core
from spikeforge.firmware.image import ImageError
from spikeforge.golden.lut import lut_index, random_anchors, random_tables, save_lut_image
from spikeforge.golden.lut_event import latencies_to_events, load_anchors, lut_event
from spikeforge.rtl.lut import LUT
from spikeforge.rtl.lut_event import LUTEvent
from spikeforge.sim.harness import run_rtl
from spikeforge.sim.run import simulate

SPEC = get_core("lut_event")
LUT_SPEC = get_core("lut")
SHAPE = dict(n=8, n_t=3, n_c=2, t_width=4)


def anchors_for(shape, seed=0):
    return random_anchors(shape["n"], shape["n_t"], shape["n_c"], np.random.default_rng(seed))


def test_init():
    dut = LUTEvent(**SHAPE, anchors=anchors_for(SHAPE))
    assert dut.signature == wiring.Signature({
        "i": In(stream.Signature(data.StructLayout({
            "neuron": range(8), "time": unsigned(4), "spike": 1, "first": 1, "last": 1}))),
        "w": In(stream.Signature(data.StructLayout({
            "table": range(3), "a": data.ArrayLayout(range(8), 2),
            "b": data.ArrayLayout(range(8), 2)}))),
        "o": Out(stream.Signature(data.StructLayout({"j": data.ArrayLayout(unsigned(2), 3)}))),
    })
    assert dut.latency == 3


@pytest.mark.parametrize("name, value, exc, message", [
    ("n", 1, ValueError, r"^LUT event parameter 'n' must be in 2\.\.1024, not 1$"),
    ("n_t", 257, ValueError, r"^LUT event parameter 'n_t' must be in 1\.\.256, not 257$"),
    ("n_c", 17, ValueError, r"^LUT event parameter 'n_c' must be in 1\.\.16, not 17$"),
    ("t_width", 0, ValueError, r"^LUT event parameter 't_width' must be in 1\.\.24, not 0$"),
    ("t_width", "4", TypeError, r"^LUT event parameter 't_width' must be an integer, not '4'$"),
])
def test_init_wrong_param(name, value, exc, message):
    with pytest.raises(exc, match=message):
        LUTEvent(**{**SHAPE, name: value}, anchors=anchors_for(SHAPE))


def test_init_wrong_anchors():
    anchors = anchors_for(SHAPE)
    bad = anchors.copy()
    bad[1, 0, 0] = 9
    with pytest.raises(ValueError, match=r"^LUT event anchor a of table 1 pair 0 must be in "
                                         r"0\.\.7, not 9$"):
        LUTEvent(**SHAPE, anchors=bad)
    bad = anchors.copy()
    bad[2, 1] = [3, 3]
    with pytest.raises(ValueError, match=r"^LUT event anchor pair 1 of table 2 compares neuron 3 "
                                         r"with itself \(a == b\)$"):
        LUTEvent(**SHAPE, anchors=bad)
    with pytest.raises(ValueError, match=r"^LUT event anchors must have shape \(n_t, n_c, 2\) = "
                                         r"\(3, 2, 2\), not \(3, 3, 2\)$"):
        LUTEvent(**SHAPE, anchors=np.zeros((3, 3, 2), int))


def test_anchors_from_image(tmp_path):
    anchors = anchors_for(SHAPE)
    path = save_lut_image(tmp_path / "l.npz", anchors=anchors,
                          tables=random_tables((3, 4, 2), 4, np.random.default_rng(0)),
                          n=8, w_width=4)
    assert np.array_equal(load_anchors(path, n=8, n_t=3, n_c=2), anchors)
    params = SPEC.params({**SHAPE, "image": str(path)})
    from spikeforge.sim.specs.lut_event import anchors as spec_anchors
    assert np.array_equal(spec_anchors(params), anchors)
    with pytest.raises(ImageError, match=r"^\S+l\.npz: memory 'anchors' has shape \(3, 2, 2\), "
                                         r"expected \(3, 3, 2\)$"):
        SPEC.params({**SHAPE, "n_c": 3, "image": str(path)})


# Golden ------------------------------------------------------------------------------------

def window(events, n_extra=()):
    """Arrays of one window from (neuron, time, spike) triples."""
    ev = np.array(events).reshape(-1, 3)
    first = np.zeros(len(ev), int)
    first[0] = 1
    last = np.zeros(len(ev), int)
    last[-1] = 1
    return dict(neuron=ev[:, 0], time=ev[:, 1], spike=ev[:, 2], first=first, last=last)


def test_golden_hand_checked():
    # One table: pair 0 = (a=0, b=1), pair 1 = (a=2, b=3).
    anchors = np.array([[[0, 1], [2, 3]]])
    run = lambda ev: lut_event(**window(ev), anchors=anchors, n=4)[0, 0]
    assert run([(1, 0, 1), (0, 1, 1), (3, 1, 1), (2, 2, 1)]) == 0b11   # b before a, twice
    assert run([(0, 0, 1), (1, 1, 1), (2, 1, 1), (3, 5, 1)]) == 0b00   # a before b, twice
    assert run([(1, 3, 1), (0, 3, 1), (2, 4, 1), (3, 4, 1)]) == 0b00   # simultaneous: ties
    assert run([(1, 2, 1)]) == 0b01        # 0, 2, 3 silent: 1 fired before 0; 2 and 3 tie
    assert run([(3, 0, 1)]) == 0b10
    assert run([(0, 0, 0)]) == 0           # nobody fired: every pair ties
    assert run([(0, 1, 1), (1, 4, 1), (0, 5, 1)]) == 0       # a's second spike is ignored
    assert run([(1, 5, 1), (0, 2, 1)]) == 0  # time went back: 0 counts at time 5, a tie
    assert run([(1, 1, 1), (0, 1, 0), (0, 2, 1)]) == 1       # framing beats carry no event


def test_golden_framing():
    anchors = np.array([[[0, 1]]])
    # Window 1 (b first) is cut by a `first`: dropped. Window 2 (a first), window 3 has no
    # `first` (it starts after a `last`) and b fires first.
    beats = [(1, 0, 1, 1, 0), (0, 1, 1, 0, 0),
             (0, 0, 1, 1, 0), (1, 1, 1, 0, 1),
             (1, 3, 1, 0, 0), (0, 4, 1, 0, 1)]
    arr = np.array(beats)
    j = lut_event(*arr.T, anchors=anchors, n=2)
    assert j.tolist() == [[0], [1]]
    # A neuron >= n carries no event.
    assert lut_event([2, 1, 0], [0, 1, 2], [1, 1, 1], [1, 0, 0], [0, 0, 1],
                     anchors=anchors, n=2).tolist() == [[1]]


def test_golden_wrong_input():
    with pytest.raises(ValueError, match=r"^lut_event anchor pair 0 of table 0 compares a "
                                         r"neuron with itself \(a == b\)$"):
        lut_event([0], [0], [1], [1], [1], anchors=[[[1, 1]]], n=2)
    with pytest.raises(ValueError, match=r"^lut_event inputs 'neuron', 'time', 'spike', "
                                         r"'first', 'last' must have one length$"):
        lut_event([0, 1], [0], [1], [1], [1], anchors=[[[0, 1]]], n=2)


def events_of(x, rng, silent):
    """A one-window beat stream for a latency vector."""
    neuron, time = latencies_to_events(x, rng=rng, silent_latest=silent)
    if not len(neuron):
        neuron, time, spike = np.zeros(1, int), np.zeros(1, int), np.zeros(1, int)
    else:
        spike = np.ones(len(neuron), int)
    first = np.zeros(len(neuron), int)
    first[0] = 1
    last = np.zeros(len(neuron), int)
    last[-1] = 1
    return neuron, time, spike, first, last


def random_latencies(rng, count, n, span):
    x = rng.integers(0, span, size=(count, n))
    narrow = rng.integers(0, 3, size=(count, n))                 # many ties
    return np.where(rng.random((count, 1)) < 0.5, narrow, x)


@pytest.mark.parametrize("n, n_t, n_c", [(16, 8, 4), (5, 3, 6), (40, 16, 6), (2, 1, 1)])
def test_golden_event_equals_vector(n, n_t, n_c):
    rng = np.random.default_rng(n * 100 + n_c)
    anchors = random_anchors(n, n_t, n_c, rng)
    x = random_latencies(rng, 3000, n, 50)
    streams = [events_of(row, rng, silent=bool(k % 2)) for k, row in enumerate(x)]
    cat = [np.concatenate([s[f] for s in streams]) for f in range(5)]
    assert np.array_equal(lut_event(*cat, anchors=anchors, n=n), lut_index(x, anchors))
    # Latencies offset anywhere (the vector unit is shift-invariant, events start at 0).
    assert np.array_equal(lut_index(x - 7, anchors), lut_index(x, anchors))


# RTL ----------------------------------------------------------------------------------------

def run_streams(dut, phases, n_out, seed, *, gap=0.3, stall=0.3):
    """Drive phases ({port: beats}; a phase starts when the last one is accepted) with random
    valid gaps, take ``n_out`` output beats with random ready."""
    rng = np.random.default_rng(seed)
    out = []

    async def producer(ctx):
        for phase in phases:
            for name, beats in phase.items():
                port = getattr(dut, name)
                for beat in beats:
                    while rng.random() < gap:
                        await ctx.tick()
                    ctx.set(port.payload, beat)
                    ctx.set(port.valid, 1)
                    await ctx.tick().until(port.ready)
                    ctx.set(port.valid, 0)

    async def consumer(ctx):
        while len(out) < n_out:
            ready = int(rng.random() >= stall)
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and ready:
                out.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return out


@pytest.mark.parametrize("shape", [SHAPE, dict(n=5, n_t=2, n_c=3, t_width=2),
                                   dict(n=2, n_t=1, n_c=1, t_width=1)])
def test_rtl_sim_matches_golden(shape):
    params = SPEC.params(shape)
    stim = SPEC.stimulus(params, 200, np.random.default_rng(5))
    expected = SPEC.golden(params, stim)["o"]
    out = run_streams(SPEC.build(**params), stim, len(expected), 6)
    assert [{"j": [int(v) for v in b.j]} for b in out] == expected


def test_rtl_sim_event_equals_vector_rtl():
    """Both RTL units, same anchors, same random latency vectors (ties included)."""
    rng = np.random.default_rng(11)
    n, n_t, n_c = 10, 4, 3
    anchors = random_anchors(n, n_t, n_c, rng)
    x = random_latencies(rng, 150, n, 16)
    beats = []
    for k, row in enumerate(x):
        for u, t, s, f, l in zip(*events_of(row, rng, silent=bool(k % 2))):
            beats.append({"neuron": int(u), "time": int(t), "spike": int(s), "first": int(f),
                          "last": int(l)})
    out = run_streams(LUTEvent(n=n, n_t=n_t, n_c=n_c, t_width=4, anchors=anchors),
                      [{"i": beats}], len(x), 1)
    ev = np.array([[int(v) for v in b.j] for b in out])
    vec = LUT(n=n, x_width=6, n_t=n_t, n_c=n_c, y_dim=1, w_width=2, banks=2, anchors=anchors,
              tables=np.zeros((n_t, 2 ** n_c, 1), int))
    out = run_streams(vec, [{"i": [{"x": r.tolist(), "first": 0, "last": 0} for r in x]}],
                      len(x), 2)
    assert np.array_equal(ev, np.array([[int(v) for v in b.j] for b in out]))
    assert np.array_equal(ev, lut_index(x, anchors))


def test_verilog_converts():
    params = SPEC.params(SPEC.build_defaults)
    assert "module lut_event" in verilog.convert(SPEC.build(**params), name="lut_event")


CASES = {
    "default": ({}, 1500),
    "odd": ({"n": 13, "n_t": 3, "n_c": 5, "t_width": 3, "anchor_seed": 4}, 1500),
    "tiny": ({"n": 2, "n_t": 1, "n_c": 1, "t_width": 1}, 1500),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rtl_matches_golden(case, tmp_path):
    overrides, steps = CASES[case]
    params = SPEC.params(overrides)
    s = simulate(SPEC, params, steps=steps, seed=sum(map(ord, case)), out_dir=tmp_path,
                 progress=lambda m: None)
    assert s["beats_got"] == s["beats_expected"] >= steps * 0.97
    assert s["mismatches"] == 0 and s["beat_mismatches"] == 0, s["first_divergence"]
    assert s["bit_exact"]


def test_rtl_event_equals_vector_rtl_under_cocotb():
    """The default `lut` and `lut_event` designs share their anchors (same seed): drive the same
    latency vectors through both under Verilator and compare every index."""
    ev_params, vec_params = SPEC.params({}), LUT_SPEC.params({})
    from spikeforge.sim.specs.lut import contents
    from spikeforge.sim.specs.lut_event import anchors as event_anchors
    assert np.array_equal(event_anchors(ev_params), contents(vec_params)[0])
    rng = np.random.default_rng(12)
    x = random_latencies(rng, 1000, 16, 32)
    vec = run_rtl(LUT_SPEC.build(**vec_params),
                  {"i": [{"x": r.tolist(), "first": 0, "last": 0} for r in x]},
                  {"o": len(x)}, seed=3)
    beats = []
    for k, row in enumerate(x):
        for u, t, s, f, l in zip(*events_of(row, rng, silent=bool(k % 2))):
            beats.append({"neuron": int(u), "time": int(t), "spike": int(s), "first": int(f),
                          "last": int(l)})
    ev = run_rtl(SPEC.build(**ev_params), {"i": beats}, {"o": len(x)}, seed=4)
    j_vec = np.array([b["j"] for b in vec.outputs["o"]])
    j_ev = np.array([b["j"] for b in ev.outputs["o"]])
    assert np.array_equal(j_vec, j_ev)
    assert np.array_equal(j_ev, lut_index(x, event_anchors(ev_params)))
