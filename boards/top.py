"""A portable benchmarking top: any stream component, registered I/O, one output bit.

:class:`BenchTop` lets the flow place and route a core on its own, without pins for its ports:
its inputs come from free-running pseudo-random registers and its outputs are folded into a
single register bit, so every path that starts or ends at a core port is register to register
and synthesis cannot remove any of the core's logic. The top knows nothing about boards: a
board wrapper connects :attr:`BenchTop.led` to a pin.
"""


import itertools

from amaranth.hdl import Cat, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import Out

__all__ = ["BenchTop", "check_core", "stream_ports"]

_MASK32 = 0xFFFF_FFFF
# x^32 + x^22 + x^2 + x + 1, a maximal-length polynomial (period 2**32 - 1, Xilinx XAPP052).
_LFSR32_TAPS = 0x8020_0003


def _splitmix32(x: int) -> int:
    # A fixed integer hash that spreads (seed, lane) into well-mixed non-zero lane seeds.
    x = (x + 0x9E37_79B9) & _MASK32
    x = ((x ^ (x >> 16)) * 0x85EB_CA6B) & _MASK32
    x = ((x ^ (x >> 13)) * 0xC2B2_AE35) & _MASK32
    return (x ^ (x >> 16)) or 1


def stream_ports(core) -> list[tuple]:
    """``(name, flow, interface, signature)`` for every stream member of ``core``, arrays expanded.

    Raises :class:`TypeError` if ``core`` is not a :class:`wiring.Component`, and
    :class:`ValueError` naming the members that are not streams.
    """
    if not isinstance(core, wiring.Component):
        raise TypeError(f"BenchTop core must be an amaranth.lib.wiring.Component, not {core!r}")
    ports, bad = [], []
    for name, member in core.signature.members.items():
        if not (member.is_signature and isinstance(member.signature, stream.Signature)):
            bad.append(name)
            continue
        obj = getattr(core, name)
        for index in itertools.product(*(range(n) for n in member.dimensions)):
            iface = obj
            for i in index:
                iface = iface[i]
            suffix = "".join(f"[{i}]" for i in index)
            ports.append((name + suffix, member.flow, iface, member.signature))
    if bad:
        raise ValueError(f"BenchTop core members must all be streams; not streams: "
                         f"{', '.join(bad)}")
    if not ports:
        raise ValueError("BenchTop core has no stream members")
    return ports


def check_core(core) -> list[tuple]:
    """:func:`stream_ports`, plus a :class:`ValueError` if the core has nothing to observe."""
    ports = stream_ports(core)
    if not any(flow == wiring.Out or not sig.always_ready for _, flow, _, sig in ports):
        raise ValueError("BenchTop core has no output to observe: it needs an Out stream or an "
                         "In stream with a ready")
    return ports


class BenchTop(wiring.Component):
    """Wrap ``core`` so it can be placed and routed with a single output pin.

    Parameters
    ----------
    core : wiring.Component
        Every member must be an ``amaranth.lib.stream`` interface (any payload shape or layout,
        arrays of streams allowed). ``In`` members are sinks the harness feeds, ``Out`` members
        are sources it drains.
    seed : int
        Seeds the pseudo-random stimulus (non-negative).

    Members
    -------
    led : Out(1)
        XOR of everything the core outputs, through a pipeline of registers.

    What the harness adds, all in the ``sync`` domain (so resource numbers include it):

    * stimulus: 32-bit Galois LFSRs (one per 32 bits of input payload plus valid/ready
      control bits); each ``In`` stream's payload and valid and each ``Out`` stream's ready
      come straight from their flip-flops. The stimulus is free-running: it ignores
      backpressure, since the harness is a synthesis load, not a testbench;
    * capture: every ``Out`` payload and valid and every ``In`` ready is registered, then
      XOR-folded four bits per LUT, one register per level, into ``led``.

    Cost: 32 FF and 4 LUT4 per 32 stimulus bits, plus about 1.3 FF and 0.3 LUT4 per captured
    bit; a core with one 16-bit input and one 16-bit output stream gets about 60 FF and 12 LUT4.

    ``led`` is a meaningless bit that changes with the core's outputs: the parity of everything
    captured ``1 + ceil(log4(captured bits))`` cycles earlier.
    """

    led: Out(1)

    def __init__(self, core, seed=0):
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"BenchTop seed must be a non-negative integer, not {seed!r}")
        if seed < 0:
            raise ValueError(f"BenchTop seed must be a non-negative integer, not {seed!r}")
        self._ports = check_core(core)
        self.core = core
        self.seed = seed
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self.core

        drive, observe = [], []
        for name, flow, iface, sig in self._ports:
            if flow == wiring.In:
                drive.append(Value.cast(iface.payload))
                if not sig.always_valid:
                    drive.append(iface.valid)
                if not sig.always_ready:
                    observe.append(iface.ready)
            else:
                observe.append(Value.cast(iface.payload))
                if not sig.always_valid:
                    observe.append(iface.valid)
                if not sig.always_ready:
                    drive.append(iface.ready)

        n_drive = sum(len(v) for v in drive)
        lanes = []
        for i in range((n_drive + 31) // 32):
            lane = Signal(32, init=_splitmix32(self.seed * 0x1_0000 + i), name=f"stim{i}")
            # Galois form: four XOR LUTs per 32 bits, so the harness stays small.
            m.d.sync += lane.eq(Mux(lane[0], (lane >> 1) ^ _LFSR32_TAPS, lane >> 1))
            lanes.append(lane)
        bits = Cat(*lanes)
        offset = 0
        for target in drive:
            m.d.comb += target.eq(bits[offset:offset + len(target)])
            offset += len(target)

        level = Signal(sum(len(v) for v in observe), name="capture")
        m.d.sync += level.eq(Cat(*observe))
        depth = 0
        while len(level) > 1:
            depth += 1
            folded = Signal((len(level) + 3) // 4, name=f"fold{depth}")
            m.d.sync += [folded[i].eq(level[4 * i:4 * i + 4].xor())
                         for i in range(len(folded))]
            level = folded
        m.d.comb += self.led.eq(level)
        return m
