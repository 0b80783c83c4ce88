"""UART physical layer: 8N1 receiver and transmitter with a fixed baud divisor.

Both count ``divisor`` clock cycles per bit (baud = clock / divisor); :func:`uart_divisor`
picks the divisor for a clock and baud rate and refuses rates the receiver cannot meet.
"""

from numbers import Integral

from amaranth.hdl import *
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx", "uart_divisor"]

#: Smallest divisor: the receiver needs a few cycles per bit to find the middle of a bit.
MIN_DIVISOR = 4
#: Largest baud-rate error accepted by :func:`uart_divisor` (both ends together may be off by
#: about 4.5% before the last data bit is sampled in the wrong bit; half of that is left to
#: the host).
MAX_BAUD_ERROR = 0.02


def _check_divisor(owner, divisor):
    if not isinstance(divisor, Integral) or isinstance(divisor, bool):
        raise TypeError(f"{owner} parameter 'divisor' must be an integer, not {divisor!r}")
    if not MIN_DIVISOR <= divisor <= 2 ** 24:
        raise ValueError(f"{owner} parameter 'divisor' must be in {MIN_DIVISOR}..{2 ** 24}, "
                         f"not {divisor}")
    return int(divisor)


def uart_divisor(clk_hz, baud) -> int:
    """Clock cycles per bit for ``baud`` at ``clk_hz``; :exc:`ValueError` if the nearest
    divisor is below 4 or misses ``baud`` by more than 2%."""
    for name, value in (("clk_hz", clk_hz), ("baud", baud)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"uart_divisor parameter {name!r} must be a positive number, "
                             f"not {value!r}")
    divisor = round(clk_hz / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"uart_divisor: {baud:g} baud needs at least {MIN_DIVISOR} clock cycles "
                         f"per bit; {clk_hz / 1e6:g} MHz gives {clk_hz / baud:.2f}")
    error = abs(clk_hz / divisor - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise ValueError(f"uart_divisor: {clk_hz / 1e6:g} MHz / {divisor} = "
                         f"{clk_hz / divisor:.0f} baud is {100 * error:.1f}% off {baud:g} baud "
                         f"(at most {100 * MAX_BAUD_ERROR:g}%)")
    return divisor


class UARTTx(wiring.Component):
    """8N1 transmitter.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, 4..2**24.

    Members
    -------
    i : ``In(stream.Signature(8))``
        Bytes to send. ``i.ready`` is high while the line is idle; a byte is taken the cycle
        after the previous stop bit ends, so back-to-back bytes leave no idle time.
    tx : ``Out(1)``
        The line, registered, high when idle (and in reset).

    A byte takes ``10 * divisor`` cycles: start bit, 8 data bits LSB first, stop bit.
    """

    def __init__(self, divisor):
        self.divisor = _check_divisor("UARTTx", divisor)
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        shreg = Signal(9)               # data bits then the stop bit, LSB first
        bits = Signal(range(11))        # bit periods left, including the one on the line
        timer = Signal(range(d))

        m.d.comb += self.i.ready.eq(bits == 0)
        with m.If(bits == 0):
            with m.If(self.i.valid):
                m.d.sync += [self.tx.eq(0), shreg.eq(Cat(self.i.payload, C(1, 1))),
                             bits.eq(10), timer.eq(d - 1)]
        with m.Elif(timer == 0):
            m.d.sync += [timer.eq(d - 1), bits.eq(bits - 1)]
            with m.If(bits != 1):
                m.d.sync += [self.tx.eq(shreg[0]), shreg.eq(shreg >> 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m


class UARTRx(wiring.Component):
    """8N1 receiver.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, 4..2**24.

    Members
    -------
    rx : ``In(1)``
        The line (asynchronous; synchronised by two flip-flops inside).
    o : ``Out(stream.Signature(8))``
        Received bytes. A byte is valid from the cycle after the middle of its stop bit and
        stays valid until taken; if the next byte completes first, the next byte is dropped and
        ``overrun`` pulses (a consumer that keeps ``o.ready`` high never loses a byte).
    frame_error : ``Out(1)``
        Pulses for one cycle when a stop bit reads 0; that byte is dropped and the receiver
        waits for the line to go high again (a break) before looking for the next start bit.
    overrun : ``Out(1)``
        Pulses for one cycle when a byte is dropped because ``o`` was still full.

    Each bit is sampled once, in its middle (``divisor // 2`` cycles after the start edge,
    counting the synchroniser, then every ``divisor`` cycles). A start bit that is gone by its
    middle is ignored as a glitch. The receiver looks for the next start bit from the middle of
    the stop bit on, so a sender up to about 4% faster or slower than ``clock / divisor`` is
    received correctly (tested at 3.5%).
    """

    def __init__(self, divisor):
        self.divisor = _check_divisor("UARTRx", divisor)
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(8)),
                          "frame_error": Out(1), "overrun": Out(1)})

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)

        timer = Signal(range(d))
        shreg = Signal(8)
        bit = Signal(range(8))

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    m.next = "IDLE"         # a glitch, not a start bit
                with m.Else():
                    m.d.sync += [timer.eq(d - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shreg.eq(Cat(shreg[1:], line)), timer.eq(d - 1),
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    with m.If(self.o.valid & ~self.o.ready):
                        m.d.comb += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += self.frame_error.eq(1)
                    m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m
