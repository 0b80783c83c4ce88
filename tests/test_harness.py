"""The cocotb/Verilator harness: payload codec, the flat wrapper, and the stream bench itself."""

import numpy as np
import pytest
from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spikeforge.sim.harness import HarnessTop, run_rtl, stream_ports
from spikeforge.sim.payload import Codec

PAIR = data.StructLayout({"a": signed(8), "b": signed(8), "last": 1})


class Adder(wiring.Component):
    """Registered a+b with a stall-all pipeline; `drop_every` loses beats on purpose."""

    def __init__(self, drop_every=0):
        self.drop_every = drop_every
        super().__init__({"i": In(stream.Signature(PAIR)), "o": Out(stream.Signature(signed(9)))})

    def elaborate(self, platform):
        m = Module()
        advance = ~self.o.valid | self.o.ready
        count = Signal(8)
        keep = Signal()
        m.d.comb += keep.eq(1 if not self.drop_every else (count != self.drop_every - 1))
        with m.If(advance):
            m.d.sync += [self.o.valid.eq(self.i.valid & keep),
                         self.o.payload.eq(self.i.payload.a + self.i.payload.b)]
            with m.If(self.i.valid):
                m.d.sync += count.eq(Mux(keep, count + 1, 0))
        m.d.comb += self.i.ready.eq(advance)
        return m


def _stim(n, seed=0):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(-128, 128, n), rng.integers(-128, 128, n)
    beats = [{"a": int(x), "b": int(y), "last": int(k == n - 1)} for k, (x, y) in enumerate(zip(a, b))]
    return beats, (a + b).tolist()


def test_codec_round_trip():
    layout = data.StructLayout({"x": data.ArrayLayout(signed(5), 3), "first": 1, "last": 1})
    codec = Codec(layout)
    assert codec.width == 17
    value = {"x": [-16, 15, -1], "first": 1, "last": 0}
    assert codec.unpack(codec.pack(value)) == value
    assert codec.pack({"x": [0, 0, 0], "first": 0, "last": 1}) == 1 << 16


def test_codec_rejects_out_of_range():
    codec = Codec(signed(4))
    with pytest.raises(ValueError, match=r"^payload value 8 does not fit signed\(4\)$"):
        codec.pack(8)


def test_stream_ports_and_wrapper():
    ins, outs = stream_ports(Adder())
    assert [n for n, _ in ins] == ["i"] and [n for n, _ in outs] == ["o"]
    top = HarnessTop(Adder())
    assert set(top.signature.members) == {"i_payload", "i_valid", "i_ready", "i_fire",
                                          "o_ready", "o_valid", "o_fire", "o_data"}


def test_wrapper_rejects_non_stream_member():
    class Bad(wiring.Component):
        en: In(1)

        def elaborate(self, platform):
            return Module()
    with pytest.raises(ValueError, match=r"^member 'en' of Bad is not a stream; "):
        HarnessTop(Bad())


def test_bench_random_gaps_exact():
    beats, want = _stim(5000, seed=1)
    res = run_rtl(Adder(), {"i": beats}, {"o": len(want)}, seed=3)
    assert not res.timed_out
    assert res.outputs["o"] == want
    # Gaps and backpressure really happened: the run took far more cycles than beats.
    assert res.total_cycles > 1.3 * len(want)


def test_bench_full_throughput():
    beats, want = _stim(2000, seed=2)
    res = run_rtl(Adder(), {"i": beats}, {"o": len(want)}, seed=0, gaps=False)
    assert res.outputs["o"] == want
    cycles = res.cycles["o"]
    assert cycles[-1] - cycles[0] == len(want) - 1     # one beat per cycle, no bubble


def test_bench_sees_lost_beats():
    beats, want = _stim(1000, seed=4)
    res = run_rtl(Adder(drop_every=100), {"i": beats}, {"o": len(want)}, seed=5, max_cycles=20000)
    assert res.timed_out
    assert len(res.outputs["o"]) == len(want) - len(want) // 100


def test_bench_phases_run_in_order():
    beats, want = _stim(600, seed=6)
    phases = [{"i": beats[:200]}, {}, {"i": beats[200:]}]
    res = run_rtl(Adder(), phases, {"o": len(want)}, seed=8)
    assert res.outputs["o"] == want


def testbuild_key_follows_the_cocotb_install(monkeypatch):
    """A cached simulator loads cocotb's libraries from where they were at build time, so a
    cocotb installed elsewhere (another environment) must get a build of its own."""
    import cocotb

    from spikeforge.sim import harness
    key = harness.build_key("module t; endmodule", ["-O2"], False)
    assert key == harness.build_key("module t; endmodule", ["-O2"], False)
    assert key != harness.build_key("module t; endmodule", ["-O2"], True)
    assert key != harness.build_key("module u; endmodule", ["-O2"], False)
    monkeypatch.setattr(cocotb, "__file__", "/elsewhere/site-packages/cocotb/__init__.py")
    assert key != harness.build_key("module t; endmodule", ["-O2"], False)
