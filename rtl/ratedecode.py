"""Spike-count rate decoder: W ticks of spike trains in, one ternary vector out (Word2Spike)."""

import math

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .vectors import check_d_max, check_int, check_lanes, tick_layout, vector_layout

__all__ = ["RateDecode", "check_ratedecode_params", "ml_threshold"]


def ml_threshold(W, rate_pos, rate_neg):
    """Maximum-likelihood split ``C = floor((p+ - p-)*W / ln(p+/p-) + 1/2)`` for per-tick spike
    probabilities ``p = rate/2^16`` (``lambda*dt``), clamped to ``1..W``; 1 if ``rate_neg = 0``.
    """
    if rate_neg == 0:
        return 1
    split = (rate_pos - rate_neg) / 65536 * W / math.log(rate_pos / rate_neg)
    return min(W, max(1, math.floor(split + 0.5)))


def check_ratedecode_params(*, d_max, p, W, C=None, count_width=None, rate_pos=6554,
                            rate_neg=3277):
    """Validate a RateDecode parameter set; fill in ``count_width`` and ``C``; return plain ints.

    ``count_width`` defaults to the bit length of ``W`` (a W-tick window never saturates);
    ``C`` defaults to :func:`ml_threshold` of ``W``, ``rate_pos`` and ``rate_neg``, which then
    needs ``rate_pos > rate_neg``. Raises :exc:`TypeError` or :exc:`ValueError` naming the
    parameter and the bad value.
    """
    p = check_lanes("RateDecode", p)
    out = {"d_max": check_d_max("RateDecode", d_max, p), "p": p,
           "W": check_int("RateDecode", "W", W, 1, 65535)}
    out["rate_pos"] = check_int("RateDecode", "rate_pos", rate_pos, 0, 65535)
    out["rate_neg"] = check_int("RateDecode", "rate_neg", rate_neg, 0, 65535)
    if count_width is None:
        count_width = out["W"].bit_length()
    out["count_width"] = cw = check_int("RateDecode", "count_width", count_width, 1, 16)
    if C is None:
        if out["rate_neg"] >= out["rate_pos"]:
            raise ValueError(f"RateDecode parameter 'rate_neg' must be below "
                             f"rate_pos={out['rate_pos']} to derive C, not {out['rate_neg']}")
        C = min(ml_threshold(out["W"], out["rate_pos"], out["rate_neg"]), 2 ** cw - 1)
    out["C"] = check_int("RateDecode", "C", C, 1, 2 ** cw - 1)
    return out


class RateDecode(wiring.Component):
    """Count each element's spikes over a window and decode the count to {-1, 0, +1}.

    Per element, ``n`` = spikes in the window (saturating at ``2^count_width - 1``)::

        q = 0 if n == 0;  +1 if n >= C;  else -1

    With the encoder's rates (+1 fires more often than -1, 0 never) and ``C`` the
    maximum-likelihood split of the two rates, this inverts
    :class:`~spikeforge.rtl.poisson.Poisson`.

    Parameters
    ----------
    d_max : int
        Longest vector, 1..65536, a multiple of ``p``.
    p : int
        Lanes per beat, a power of two in 1..64.
    W : int
        Nominal ticks per window, 1..65535: sets the default ``count_width`` and ``C``.
    C : int or None
        Count threshold for +1, ``1..2^count_width - 1``; None: :func:`ml_threshold`.
    count_width : int or None
        Counter bits, 1..16; None: bit length of ``W``.
    rate_pos, rate_neg : int
        The encoder's 16-bit rates for +1 and -1, used only to derive ``C``.

    Members
    -------
    i : ``In(stream.Signature(StructLayout({"s": ArrayLayout(unsigned(1), p), "empty": log2(p), "first": 1, "last": 1, "tick_last": 1})))``
        Spike windows as :class:`~spikeforge.rtl.poisson.Poisson` sends them. A window starts
        after reset, after ``last`` and at any ``first`` (abandoning an unfinished one) and ends
        at ``last``; a tick ends at ``tick_last`` or ``last``. Tick 0 fixes the shape: its beats
        (at most ``d_max/p``; later ones are dropped) and its final beat's ``empty`` give the
        vector length. In later ticks, beats past tick 0's count are dropped, so a malformed
        window never reads a counter it did not clear.
    o : ``Out(stream.Signature(StructLayout({"q": ArrayLayout(signed(2), p), "empty": log2(p), "first": 1, "last": 1})))``
        One ternary vector per window (the :class:`~spikeforge.rtl.absmean.AbsMean` output
        framing); unused lanes 0; 0b10 is never produced.

    Timing: input beats are accepted one per cycle, each updating its ``p`` counters
    (a two-stage read-modify-write on block RAM, with forwarding for back-to-back updates of
    the same counters). After a window's ``last`` beat, ``i.ready`` is low for one cycle while
    the last update lands, then while the ``G`` output beats are read out under ``o.ready``,
    and rises in the cycle after the last of them leaves the memory's output. Without gaps or
    backpressure a window of ``T`` ticks of ``G`` beats takes ``(T + 1)*G + 2`` cycles
    (:meth:`cycles_per_window`); the first output beat is valid :attr:`latency` = 5 cycles
    after the window's last input handshake. ``o.valid`` never depends on
    ``o.ready``; ``i.ready`` depends on neither ``i.valid`` nor the payload.

    Bounds: counters saturate at ``2^count_width - 1`` (never reached by a window of at most
    ``W`` ticks with the default width). Reset: the next beat starts a window; the counter
    memory needs no clearing (tick 0 overwrites every counter the window uses).
    """

    #: Cycles from a window's last input handshake to its first output beat being valid.
    latency = 5

    def __init__(self, *, d_max, p, W, C=None, count_width=None, rate_pos=6554, rate_neg=3277):
        params = check_ratedecode_params(d_max=d_max, p=p, W=W, C=C, count_width=count_width,
                                         rate_pos=rate_pos, rate_neg=rate_neg)
        self.params = params
        for key, value in params.items():
            setattr(self, key, value)
        self.groups = self.d_max // self.p
        super().__init__({
            "i": In(stream.Signature(tick_layout(self.p))),
            "o": Out(stream.Signature(vector_layout("q", signed(2), self.p))),
        })

    def cycles_per_window(self, ticks, d):
        """Cycles a window of ``ticks`` ticks of ``d`` elements takes, without gaps or stalls."""
        G = -(-d // self.p)
        return (ticks + 1) * G + 2

    def elaborate(self, platform):
        m = Module()
        p, G, cw = self.p, self.groups, self.count_width
        top = 2 ** cw - 1

        m.submodules.mem = mem = Memory(shape=data.ArrayLayout(unsigned(cw), p), depth=G,
                                        init=[])
        wr = mem.write_port()
        rd = mem.read_port(transparent_for=(wr,))

        # ---- Count. ----------------------------------------------------------------------
        counting = Signal()
        fresh = Signal(init=1)                  # the next beat starts a window
        tick0 = Signal()                        # the window is still in tick 0
        g = Signal(range(G + 1))                # beat within the tick (saturating)
        n_beats = Signal(range(G + 1))          # tick 0's kept beats
        v_empty = Signal.like(self.i.payload.empty)
        pay = self.i.payload
        accept = self.i.valid & self.i.ready
        start = pay.first | fresh
        in_tick0 = start | tick0
        beat_g = Mux(start, 0, g)
        keep = beat_g < Mux(in_tick0, G, n_beats)
        tick_end = pay.tick_last | pay.last
        with m.If(accept):
            m.d.sync += [g.eq(Mux(tick_end, 0, Mux(beat_g < G, beat_g + 1, G))),
                         tick0.eq(in_tick0 & ~tick_end), fresh.eq(pay.last)]
            with m.If(in_tick0 & tick_end):
                m.d.sync += [n_beats.eq(Mux(beat_g < G, beat_g + 1, G)),
                             v_empty.eq(Mux(beat_g < G, pay.empty, 0))]

        # Two update stages, so that no path runs from the block RAM's slow output into its
        # input: x receives the counters read for the beat accepted last cycle and registers
        # them in y, which writes old + spikes back. The beat in y writes one cycle too late
        # for the read of the beat behind it, so x takes y's new counts for the same address;
        # the read port's transparency covers the beat two behind.
        x = Signal(data.StructLayout({"valid": 1, "init": 1, "g": range(G),
                                      "s": data.ArrayLayout(unsigned(1), p)}))
        y = Signal(data.StructLayout({"valid": 1, "g": range(G),
                                      "s": data.ArrayLayout(unsigned(1), p),
                                      "old": data.ArrayLayout(unsigned(cw), p)}))
        m.d.sync += [x.valid.eq(accept & keep), x.init.eq(in_tick0), x.g.eq(beat_g),
                     x.s.eq(pay.s), y.valid.eq(x.valid), y.g.eq(x.g), y.s.eq(x.s)]
        forward = y.valid & (y.g == x.g)
        m.d.comb += [wr.en.eq(y.valid), wr.addr.eq(y.g)]
        for k in range(p):
            new = Signal(cw, name=f"new{k}")
            m.d.comb += [new.eq(Mux(y.old[k] == top, top, y.old[k] + y.s[k])),
                         wr.data[k].eq(new)]
            m.d.sync += y.old[k].eq(Mux(x.init, 0, Mux(forward, new, rd.data[k])))

        # ---- Read out. ---------------------------------------------------------------------
        advance = Signal()
        issue = Signal()
        rg = Signal(range(G))
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)
        s1 = Signal(data.StructLayout({"valid": 1, "first": 1, "last": 1,
                                       "empty": len(v_empty)}))
        end = rg == n_beats - 1
        # A read port's enable resets to 1: every state drives it.
        with m.FSM():
            with m.State("COUNT"):
                m.d.comb += [counting.eq(1), rd.en.eq(1), rd.addr.eq(beat_g)]
                with m.If(accept & pay.last):
                    m.d.sync += rg.eq(0)
                    m.next = "SETTLE"
            with m.State("SETTLE"):
                # The last beat is in x now and writes from y next cycle, when reading starts
                # (the transparent port then returns its update).
                m.d.comb += rd.en.eq(0)
                m.next = "READ"
            with m.State("READ"):
                m.d.comb += [issue.eq(advance), rd.en.eq(advance), rd.addr.eq(rg)]
                with m.If(advance):
                    m.d.sync += rg.eq(rg + 1)
                    with m.If(end):
                        m.next = "DRAIN"
            with m.State("DRAIN"):
                # Counting would overwrite rd.data, which s1 may still need while stalled.
                m.d.comb += rd.en.eq(0)
                with m.If(advance):
                    m.next = "COUNT"
        m.d.comb += self.i.ready.eq(counting)

        with m.If(advance):
            m.d.sync += [s1.valid.eq(issue), s1.first.eq(rg == 0), s1.last.eq(end),
                         s1.empty.eq(Mux(end, v_empty, 0))]

        # s2 registers the memory output; the decision is made from registers.
        s2 = Signal(data.StructLayout({"valid": 1, "first": 1, "last": 1,
                                       "empty": len(v_empty),
                                       "n": data.ArrayLayout(unsigned(cw), p)}))
        with m.If(advance):
            m.d.sync += [s2.valid.eq(s1.valid), s2.first.eq(s1.first), s2.last.eq(s1.last),
                         s2.empty.eq(s1.empty), s2.n.eq(rd.data)]

        o = Signal(data.StructLayout({"valid": 1, "q": data.ArrayLayout(signed(2), p),
                                      "first": 1, "last": 1, "empty": len(v_empty)}))
        with m.If(advance):
            m.d.sync += [o.valid.eq(s2.valid), o.first.eq(s2.first), o.last.eq(s2.last),
                         o.empty.eq(s2.empty)]
            for k in range(p):
                n = s2.n[k]
                used = k < p - s2.empty
                m.d.sync += o.q[k].eq(Mux(~used | (n == 0), 0, Mux(n >= self.C, 1, -1)))
        m.d.comb += [self.o.valid.eq(o.valid), self.o.payload.q.eq(o.q),
                     self.o.payload.first.eq(o.first), self.o.payload.last.eq(o.last),
                     self.o.payload.empty.eq(o.empty)]
        return m
