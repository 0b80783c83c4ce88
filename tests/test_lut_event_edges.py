"""Event-driven LUT index unit edge cases that mutation testing
(``python -m spikeforge.sim.mutate lut_event``) showed the other tests did not pin: an image
whose anchors are out of range is refused at both ends with the image's own error, and a
write payload without ``valid`` is ignored."""

import numpy as np
import pytest
from amaranth.hdl import Value
from amaranth.sim import Simulator

from spikeforge.cores import get_core
from spikeforge.firmware.image import ImageError, MemorySpec, save_image
from spikeforge.golden.lut_event import load_anchors
from spikeforge.sim.harness import stream_ports
from spikeforge.sim.payload import Codec


@pytest.mark.parametrize("value, ok", [(0, True), (7, True), (-1, False), (8, False)])
def test_image_anchor_range(tmp_path, value, ok):
    anchors = np.array([[[value, 3 if value != 3 else 4]]], np.int64)
    path = save_image(tmp_path / "a.npz", core="lut", params={},
                      memories={"anchors": anchors},
                      specs={"anchors": MemorySpec((1, 1, 2), -5, 10)})
    if ok:
        assert np.array_equal(load_anchors(path, n=8, n_t=1, n_c=1), anchors)
    else:
        with pytest.raises(ImageError, match=r"memory 'anchors' holds -?\d+, outside 0\.\.7$"):
            load_anchors(path, n=8, n_t=1, n_c=1)


def test_rtl_ignores_a_write_payload_without_valid():
    """A legal anchor write on ``w.payload`` with ``w.valid`` low changes nothing."""
    spec = get_core("lut_event")
    params = spec.params({"n": 6, "n_t": 2, "n_c": 2, "t_width": 3, "anchor_seed": 3})
    core = spec.build(**params)
    beats = spec.stimulus(params, 4, np.random.default_rng(1))
    beats = [b for phase in beats for b in phase.get("i", ())]
    want = spec.golden(params, {"i": beats})["o"]
    ins, outs = stream_ports(core)
    w_codec, i_codec, o_codec = Codec(dict(ins)["w"]), Codec(dict(ins)["i"]), Codec(dict(outs)["o"])
    got = []

    async def producer(ctx):
        ctx.set(Value.cast(core.w.payload), w_codec.pack({"table": 0, "a": [5, 4], "b": [4, 5]}))
        await ctx.tick().repeat(3)
        for beat in beats:
            ctx.set(Value.cast(core.i.payload), i_codec.pack(beat))
            ctx.set(core.i.valid, 1)
            await ctx.tick().until(core.i.ready)
        ctx.set(core.i.valid, 0)

    async def consumer(ctx):
        ctx.set(core.o.ready, 1)
        for _ in range(len(beats) + 20):
            _, _, valid, payload = await ctx.tick().sample(core.o.valid,
                                                           Value.cast(core.o.payload))
            if valid:
                got.append(o_codec.unpack(payload))

    sim = Simulator(core)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert got == want


@pytest.mark.parametrize("gaps", [False, True])
def test_rtl_window_opened_by_a_framing_beat(gaps):
    """A window opened by a beat without a spike starts its group time at 0, whatever the
    previous window left: events at a time below the previous window's last one, right after
    such a beat, still count as one group (back to back, the event register compares them with
    the group time the flag stage is setting in the same cycle)."""
    from spikeforge.sim.amaranth_bench import golden_mismatches, run_stream
    spec = get_core("lut_event")
    params = spec.params({"n": 4, "n_t": 8, "n_c": 2, "t_width": 4, "anchor_seed": 1})

    def ev(neuron, time, spike=1, first=0, last=0):
        return {"neuron": neuron, "time": time, "spike": spike, "first": first, "last": last}

    beats = [ev(0, 5, first=1), ev(1, 9, last=1),
             ev(0, 0, spike=0, first=1), ev(2, 3), ev(3, 3), ev(0, 3), ev(1, 4, last=1),
             ev(0, 0, spike=0, first=1), ev(3, 2), ev(2, 2), ev(1, 8), ev(0, 8, last=1)]
    stim = [{"i": beats}]
    want = spec.golden(params, stim)
    assert len(want["o"]) == 3
    result = run_stream(spec.build(**params), stim, {"o": 3}, seed=4, gaps=gaps)
    assert golden_mismatches(spec, params, stim, result) == []
