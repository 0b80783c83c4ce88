# amaranth: UnusedElaboratable=no
"""UART PHY: loopback, baud tolerance, glitches, framing errors, overrun, parameter rules."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from spikeforge.rtl.uart import UARTRx, UARTTx, uart_divisor


def test_init():
    assert UARTTx(4).signature == wiring.Signature({"i": In(stream.Signature(8)),
                                                    "tx": Out(1, init=1)})
    assert UARTRx(9).signature == wiring.Signature({
        "rx": In(1, init=1), "o": Out(stream.Signature(8)), "frame_error": Out(1),
        "overrun": Out(1)})


@pytest.mark.parametrize("cls", [UARTTx, UARTRx])
@pytest.mark.parametrize("value, exc, message", [
    (3, ValueError, r"parameter 'divisor' must be in 4\.\.16777216, not 3$"),
    (2 ** 24 + 1, ValueError, r"parameter 'divisor' must be in 4\.\.16777216, not 16777217$"),
    (8.0, TypeError, r"parameter 'divisor' must be an integer, not 8\.0$"),
    (True, TypeError, r"parameter 'divisor' must be an integer, not True$"),
])
def test_init_wrong_divisor(cls, value, exc, message):
    with pytest.raises(exc, match=rf"^{cls.__name__} {message}"):
        cls(value)


def test_uart_divisor():
    assert uart_divisor(150e6, 3e6) == 50
    assert uart_divisor(25e6, 115200) == 217
    with pytest.raises(ValueError, match=r"^uart_divisor: 3e\+06 baud needs at least 4 clock "
                                         r"cycles per bit; 10 MHz gives 3\.33$"):
        uart_divisor(10e6, 3e6)
    with pytest.raises(ValueError, match=r"^uart_divisor: 25 MHz / 8 = 3125000 baud is 4\.2% "
                                         r"off 3e\+06 baud \(at most 2%\)$"):
        uart_divisor(25e6, 3e6)
    with pytest.raises(ValueError, match=r"^uart_divisor parameter 'baud' must be a positive "
                                         r"number, not 0$"):
        uart_divisor(25e6, 0)


class _Loop(wiring.Component):
    def __init__(self, divisor):
        self.tx, self.rx = UARTTx(divisor), UARTRx(divisor)
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx, m.submodules.rx = self.tx, self.rx
        m.d.comb += self.rx.rx.eq(self.tx.tx)
        wiring.connect(m, wiring.flipped(self.i), self.tx.i)
        wiring.connect(m, self.rx.o, wiring.flipped(self.o))
        return m


@pytest.mark.parametrize("divisor", [4, 5, 7])
def test_loopback(divisor):
    """Back-to-back bytes with random valid gaps through tx -> line -> rx, at any divisor."""
    dut = _Loop(divisor)
    rng = random.Random(divisor)
    sent = [rng.randrange(256) for _ in range(40)] + [0x00, 0xFF, 0x55, 0xAA]
    got = []

    async def source(ctx):
        for byte in sent:
            while rng.random() < 0.3:
                await ctx.tick()
            ctx.set(dut.i.payload, byte)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def sink(ctx):
        ctx.set(dut.o.ready, 1)
        async for _, _, valid, payload, err in ctx.tick().sample(
                dut.o.valid, dut.o.payload, dut.rx.frame_error):
            assert not err
            if valid:
                got.append(payload)
            if len(got) == len(sent):
                break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(source, background=True)
    sim.add_testbench(sink)
    sim.run_until(1e-8 * 10 * divisor * (len(sent) * 2 + 4))
    assert got == sent


def _drive_line(ctx_rx, events):
    """events: [(level, cycles)]; the line is driven with cycle granularity."""
    async def drive(ctx):
        for level, cycles in events:
            ctx.set(ctx_rx, level)
            await ctx.tick().repeat(cycles)
    return drive


def _frame(byte, bit, stop=1):
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop], bit


def _bits_to_events(bits, period, offset=0.0):
    """Bit levels at a fractional bit period (cycles), rounded to whole cycles at each edge."""
    events, t = [], offset
    for level in bits:
        start, t = round(t), t + period
        events.append((level, round(t) - start))
    return events


def _run_rx(divisor, events, *, ready=1):
    dut = UARTRx(divisor)
    got, errors, overruns = [], [], []

    async def monitor(ctx):
        ctx.set(dut.o.ready, ready)
        async for _, _, valid, payload, err, ovr in ctx.tick().sample(
                dut.o.valid, dut.o.payload, dut.frame_error, dut.overrun):
            if valid and ready:
                got.append(payload)
            errors.append(err)
            overruns.append(ovr)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(monitor, background=True)
    sim.add_testbench(_drive_line(dut.rx, events + [(1, 4 * divisor)]))
    sim.run()
    return got, sum(errors), sum(overruns), dut


@pytest.mark.parametrize("skew", [-0.035, 0.035])
def test_baud_tolerance(skew):
    """A host 3.5% slower or faster than clock/divisor is still received correctly."""
    divisor = 16
    data = [0x00, 0xFF, 0x55, 0xAA, 0x81, 0x7E]
    bits = [1] * 3
    for byte in data:
        bits += [0] + [(byte >> i) & 1 for i in range(8)] + [1]
    got, err, _, _ = _run_rx(divisor, _bits_to_events(bits, divisor * (1 + skew), 0.3))
    assert got == data and err == 0


def test_glitch_framing_error_and_break():
    d = 8
    ev = [(1, 20), (0, 2), (1, 30)]                         # a glitch shorter than half a bit
    ev += _bits_to_events([0] + [1, 0] * 4 + [0], d)        # stop bit 0: framing error
    ev += [(0, 5 * d), (1, 3 * d)]                          # a break, then idle
    ev += _bits_to_events([0] + [(0x3C >> i) & 1 for i in range(8)] + [1], d)
    got, err, _, _ = _run_rx(d, ev)
    assert got == [0x3C] and err == 1


def test_overrun_keeps_the_first_byte():
    d = 4
    bits = [1, 1]
    for byte in (0x11, 0x22):
        bits += [0] + [(byte >> i) & 1 for i in range(8)] + [1]
    dut = UARTRx(d)
    seen = {}

    async def tb(ctx):
        ctx.set(dut.o.ready, 0)
        ovr = 0
        for level, cycles in _bits_to_events(bits, d):
            ctx.set(dut.rx, level)
            for _ in range(cycles):
                ovr += ctx.get(dut.overrun)
                await ctx.tick()
        for _ in range(2 * d):
            ovr += ctx.get(dut.overrun)
            await ctx.tick()
        seen.update(valid=ctx.get(dut.o.valid), payload=ctx.get(dut.o.payload), overrun=ovr)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert seen == {"valid": 1, "payload": 0x11, "overrun": 1}
