"""Spike-count rate decoder: W ticks of spike trains in, one ternary vector out (Word2Spike)."""

import math

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .poisson import lutram, lutram_latency
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

    Timing: input beats are accepted one per cycle, each updating its ``p`` counters: a
    read-modify-write pipeline over distributed RAM (:func:`~spikeforge.rtl.poisson.lutram`,
    ``L = lutram_latency(d_max/p)`` read stages) that never stalls, with forwarding from the
    ``L + 3`` updates still in flight. After a window's ``last`` beat, ``i.ready`` is low for
    ``L + 3`` cycles while the last update lands, then while the ``G`` output beats are read out
    under ``o.ready``, then until the read pipeline has drained. Without gaps or backpressure
    a window of ``T`` ticks of ``G`` beats takes ``(T + 1)*G + 2*L + 3`` cycles
    (:meth:`cycles_per_window`); the first output beat is valid :attr:`latency` ``= 2*L + 6``
    cycles after the window's last input handshake. ``o.valid`` never depends on
    ``o.ready``; ``i.ready`` depends on neither ``i.valid`` nor the payload.

    Bounds: counters saturate at ``2^count_width - 1`` (never reached by a window of at most
    ``W`` ticks with the default width). Reset: the next beat starts a window; the counter
    memory needs no clearing (tick 0 overwrites every counter the window uses).
    """

    def __init__(self, *, d_max, p, W, C=None, count_width=None, rate_pos=6554, rate_neg=3277):
        params = check_ratedecode_params(d_max=d_max, p=p, W=W, C=C, count_width=count_width,
                                         rate_pos=rate_pos, rate_neg=rate_neg)
        self.params = params
        for key, value in params.items():
            setattr(self, key, value)
        self.groups = self.d_max // self.p
        #: Cycles of the counter memory's pipelined read (:func:`~.poisson.lutram_latency`).
        self.read_latency = lutram_latency(self.groups)
        #: Cycles from a window's last input handshake to its first output beat being valid.
        self.latency = 2 * self.read_latency + 6
        super().__init__({
            "i": In(stream.Signature(tick_layout(self.p))),
            "o": Out(stream.Signature(vector_layout("q", signed(2), self.p))),
        })

    def cycles_per_window(self, ticks, d):
        """Cycles a window of ``ticks`` ticks of ``d`` elements takes, without gaps or stalls."""
        G = -(-d // self.p)
        return (ticks + 1) * G + 2 * self.read_latency + 3

    def elaborate(self, platform):
        m = Module()
        p, G, cw, L = self.p, self.groups, self.count_width, self.read_latency
        top = 2 ** cw - 1
        counts = data.ArrayLayout(unsigned(cw), p)

        # The counters: distributed RAM with a pipelined read (lutram), written back
        # L + 2 cycles after the beat that reads them.
        wr = Signal(data.StructLayout({"en": 1, "addr": range(G), "data": counts}))
        rd = Signal(data.StructLayout({"en": 1, "addr": range(G)}))
        rd_data = lutram(m, "mem", counts, G, wr_en=wr.en, wr_addr=wr.addr, wr_data=wr.data,
                         rd_en=rd.en, rd_addr=rd.addr)

        # ---- Count. ----------------------------------------------------------------------
        # Every decision comes from flags registered a cycle ahead (no counter comparison
        # between two registers and the decision that needs it).
        counting = Signal()
        fresh = Signal(init=1)                  # the next beat starts a window
        tick0 = Signal()                        # the window is still in tick 0
        g = Signal(range(G + 1))                # beat within the tick (saturating at G)
        g_full = Signal()                       # g == G: tick 0 is past d_max/p beats
        g_in = Signal()                         # g < tick 0's kept beats (later ticks)
        g_last = Signal(range(G))               # tick 0's last kept beat
        g_before_last = Signal(range(G + 1))    # g_last - 1 (any value if g_last is 0)
        single = Signal()                       # g_last == 0
        v_empty = Signal.like(self.i.payload.empty)
        pay = self.i.payload
        accept = self.i.valid & self.i.ready
        start = pay.first | fresh
        in_tick0 = start | tick0
        beat_g = Mux(start, 0, g)
        keep = Mux(start, 1, Mux(tick0, ~g_full, g_in))
        tick_end = pay.tick_last | pay.last
        with m.If(accept):
            m.d.sync += [tick0.eq(in_tick0 & ~tick_end), fresh.eq(pay.last)]
            with m.If(tick_end):
                m.d.sync += [g.eq(0), g_full.eq(0), g_in.eq(1)]
            with m.Elif(start):
                m.d.sync += [g.eq(1), g_full.eq(G == 1)]
            with m.Elif(~g_full):
                m.d.sync += [g.eq(g + 1), g_full.eq(g == G - 1),
                             g_in.eq(g_in & (g != g_last))]
            with m.Else():
                m.d.sync += g_in.eq(0)
            with m.If(in_tick0 & tick_end):
                m.d.sync += [g_last.eq(Mux(start, 0, Mux(g_full, G - 1, g))),
                             g_before_last.eq(Mux(g_full, G - 2, g - 1)),
                             single.eq(start | (g_full & (G == 1))),
                             v_empty.eq(Mux(start | ~g_full, pay.empty, 0))]

        # The update pipeline never stalls. A beat accepted in cycle t is registered in c[0]
        # and reads its counters in cycle t + 1; they arrive in cycle t + R (R = L + 1, stage
        # c[R-1]); the base count is registered, y adds the spikes, and the write lands in cycle
        # t + R + 2. The read misses the writes of the R + 2 beats before it, so each beat
        # carries one match bit per distance d = 1..R+2 (the beat d cycles earlier was kept and
        # has the same address): d = 1 is taken from y's own new counts in the adder's loop,
        # d = 2 from y, d >= 3 from the history h of written counts; the nearest match wins.
        R = L + 1
        beat = data.StructLayout({"valid": 1, "init": 1, "g": range(G),
                                  "s": data.ArrayLayout(unsigned(1), p), "match": R + 2})
        hist = [Signal(data.StructLayout({"valid": 1, "g": range(G)}), name=f"hist{d}")
                for d in range(R + 2)]
        m.d.sync += [hist[0].valid.eq(accept & keep), hist[0].g.eq(beat_g)]
        m.d.sync += [hist[d].eq(hist[d - 1]) for d in range(1, R + 2)]
        c = [Signal(beat, name=f"c{k}") for k in range(R)]
        m.d.sync += [c[0].valid.eq(accept & keep), c[0].init.eq(in_tick0), c[0].g.eq(beat_g),
                     c[0].s.eq(pay.s),
                     c[0].match.eq(Cat(hist[d].valid & (hist[d].g == beat_g)
                                       for d in range(R + 2)))]
        m.d.sync += [c[k].eq(c[k - 1]) for k in range(1, R)]
        y = Signal(data.StructLayout({"valid": 1, "g": range(G), "new": counts}))
        h = [Signal(counts, name=f"h{d}") for d in range(R)]
        m.d.sync += [h[0].eq(y.new)] + [h[d].eq(h[d - 1]) for d in range(1, R)]
        base = Signal(counts)
        for k in range(p):
            value = rd_data[k]
            for d in reversed(range(1, R + 2)):         # nearest last, so it wins
                value = Mux(c[-1].match[d], y.new[k] if d == 1 else h[d - 2][k], value)
            m.d.sync += base[k].eq(Mux(c[-1].init, 0, value))
        # `near` is registered once per lane: it selects all of a lane's counter bits.
        pb = Signal(data.StructLayout({"valid": 1, "near": p, "g": range(G),
                                       "s": data.ArrayLayout(unsigned(1), p)}))
        near = c[-1].match[0] & ~c[-1].init
        m.d.sync += [pb.valid.eq(c[-1].valid), pb.near.eq(Cat(near for _ in range(p))),
                     pb.g.eq(c[-1].g), pb.s.eq(c[-1].s)]
        m.d.sync += [y.valid.eq(pb.valid), y.g.eq(pb.g)]
        for k in range(p):
            total = Mux(pb.near[k], y.new[k], base[k]) + pb.s[k]
            # Saturate: the sum carries out only from top + 1.
            m.d.sync += y.new[k].eq(Mux(total[cw], top, total[:cw]))
        m.d.comb += [wr.en.eq(y.valid), wr.addr.eq(y.g), wr.data.eq(y.new)]

        # ---- Read out. ---------------------------------------------------------------------
        advance = Signal()
        issue = Signal()
        rg = Signal(range(G))
        settle = Signal(range(R + 3))
        end = Signal()                          # rg == g_last
        first_read = Signal()                   # rg == 0
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)
        meta = data.StructLayout({"first": 1, "last": 1, "empty": len(v_empty), "used": p})
        stages = [(Signal(name=f"s1_{n}_valid"), Signal(meta, reset_less=True, name=f"s1_{n}"))
                  for n in range(L)]
        with m.FSM():
            with m.State("COUNT"):
                m.d.comb += [counting.eq(1), rd.en.eq(1), rd.addr.eq(c[0].g)]
                with m.If(accept & pay.last):
                    m.d.sync += [rg.eq(0), settle.eq(0)]
                    m.next = "SETTLE"
            with m.State("SETTLE"):
                # The window's last beat writes in the (R + 2)-th cycle after it; its read
                # is still in the (free-running) read pipeline.
                m.d.comb += [rd.en.eq(1), rd.addr.eq(c[0].g)]
                m.d.sync += settle.eq(settle + 1)
                with m.If(settle == R + 1):
                    m.d.sync += [end.eq(single), first_read.eq(1)]
                    m.next = "READ"
            with m.State("READ"):
                m.d.comb += [issue.eq(advance), rd.en.eq(advance), rd.addr.eq(rg)]
                with m.If(advance):
                    m.d.sync += [rg.eq(rg + 1), end.eq(rg == g_before_last),
                                 first_read.eq(0)]
                    with m.If(end):
                        m.next = "DRAIN"
            with m.State("DRAIN"):
                # Counting reads every cycle, which would overwrite the read pipeline: wait
                # until the last beat leaves it.
                m.d.comb += [rd.en.eq(advance), rd.addr.eq(rg)]
                busy = Cat(v for v, _ in stages[:-1]).any() if L > 1 else C(0)
                with m.If(~busy & (~stages[-1][0] | advance)):
                    m.next = "COUNT"
        m.d.comb += self.i.ready.eq(counting)

        v1, s1 = stages[0]
        with m.If(advance):
            m.d.sync += [v1.eq(issue), s1.first.eq(first_read), s1.last.eq(end),
                         s1.empty.eq(Mux(end, v_empty, 0)),
                         s1.used.eq(Cat(~end | (v_empty < p - k) for k in range(p)))]
            for (va, sa), (vb, sb) in zip(stages, stages[1:]):
                m.d.sync += [vb.eq(va), sb.eq(sa)]

        # s2 joins the framing with the counts; the decision is made from registers.
        s2_valid = Signal()
        s2 = Signal(data.StructLayout({"meta": meta, "n": counts}), reset_less=True)
        vl, sl = stages[-1]
        with m.If(advance):
            m.d.sync += [s2_valid.eq(vl), s2.meta.eq(sl), s2.n.eq(rd_data)]

        o_valid = Signal()
        o = Signal(data.StructLayout({"q": data.ArrayLayout(signed(2), p), "first": 1,
                                      "last": 1, "empty": len(v_empty)}), reset_less=True)
        with m.If(advance):
            m.d.sync += [o_valid.eq(s2_valid), o.first.eq(s2.meta.first),
                         o.last.eq(s2.meta.last), o.empty.eq(s2.meta.empty)]
            for k in range(p):
                n = s2.n[k]
                m.d.sync += o.q[k].eq(Mux(~s2.meta.used[k] | (n == 0), 0,
                                          Mux(n >= self.C, 1, -1)))
        m.d.comb += [self.o.valid.eq(o_valid), self.o.payload.q.eq(o.q),
                     self.o.payload.first.eq(o.first), self.o.payload.last.eq(o.last),
                     self.o.payload.empty.eq(o.empty)]
        return m
