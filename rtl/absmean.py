"""Absmean ternary quantiser (BitNet b1.58), the first stage of Word2Spike."""

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .ecp5_ram import PipelinedRAM
from .vectors import check_d_max, check_int, check_lanes, vector_layout

__all__ = ["AbsMean", "check_absmean_params"]


def check_absmean_params(*, d_max, p, e_width):
    """Validate an AbsMean parameter set; return it as plain ints.

    Raises :exc:`TypeError` or :exc:`ValueError` naming the parameter and the bad value.
    """
    p = check_lanes("AbsMean", p)
    return {"d_max": check_d_max("AbsMean", d_max, p), "p": p,
            "e_width": check_int("AbsMean", "e_width", e_width, 2, 24)}


def _tree_levels(values):
    """Pairwise sums of ``values`` (one adder level)."""
    return [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
            for i in range(0, len(values), 2)]


class AbsMean(wiring.Component):
    """Quantise each vector of signed fixed-point values to {-1, 0, +1} with the absmean rule.

    For a vector ``e`` of ``d`` elements with ``S = sum |e_j|``::

        q_j = +1 if 2*d*e_j > S;  -1 if 2*d*e_j < -S;  else 0

    which is BitNet b1.58's ``RoundClip(e / mean|e|, -1, 1)`` with ties (``2*d*|e| == S``)
    going to 0, and all zeros when ``S = 0``. The hardware compares ``|e_j|`` against
    ``t = floor(S / 2d)`` (``2*d*|e| > S`` iff ``|e| > t`` for integers), where ``t`` comes
    from one restoring division per vector (``e_width - 1`` cycles, shift and subtract): no
    multiplier, no DSP block. ``t <= 2^(e_width-2)`` because ``S <= d * 2^(e_width-1)``.

    Parameters
    ----------
    d_max : int
        Longest vector, 1..65536, a multiple of ``p``.
    p : int
        Lanes per beat, a power of two in 1..64.
    e_width : int
        Signed input width, 2..24.

    Members
    -------
    i : ``In(stream.Signature(StructLayout({"e": ArrayLayout(signed(e_width), p), "empty": log2(p), "first": 1, "last": 1})))``
        Vectors: element ``j`` is lane ``j % p`` of beat ``j // p``. ``last`` ends a vector;
        ``empty`` counts the unused top lanes of the ``last`` beat (ignored on other beats).
        A vector starts at the first beat after reset, after every ``last`` beat, and at every
        ``first`` beat (an unfinished vector is then abandoned). Beats past the
        ``d_max/p``-th of a vector are accepted and dropped (its length is then ``d_max``).
    o : ``Out(stream.Signature(StructLayout({"q": ArrayLayout(signed(2), p), "empty": log2(p), "first": 1, "last": 1})))``
        One output vector per input vector, same length and beat framing: ``first`` on its
        first beat, ``last`` and ``empty`` on its last beat (``empty`` is 0 elsewhere), unused
        lanes 0. ``q`` is 2-bit two's complement (+1 = 0b01, 0 = 0b00, -1 = 0b11); 0b10 is never
        produced.

    Timing: two passes over a single vector buffer. Input beats are accepted one per cycle
    until ``last``; then ``i.ready`` stays low while the sum drains (:attr:`sum_latency`
    cycles), ``t`` is divided out (:attr:`divide_cycles`) and the vector is read back, one
    beat per cycle under ``o.ready``. With ``G = ceil(d/p)`` beats and no gaps or
    backpressure a vector occupies the core for ``2*G + overhead`` cycles,
    ``overhead = sum_latency + divide_cycles + 1`` (:attr:`overhead_cycles`); the next vector's
    first beat is accepted in the cycle after the read-back is issued. The first output beat is
    valid :attr:`latency` ``= sum_latency + divide_cycles + 5`` cycles after the handshake of
    the vector's last input beat. Throughput for long vectors: ``p/2`` elements per cycle.
    ``o.valid`` never
    depends on ``o.ready``, ``i.ready`` depends on neither ``i.valid`` nor the payload.

    Bounds: ``S < 2^sum_width`` with ``sum_width`` the bit length of ``d_max * 2^(e_width-1)``;
    nothing can overflow. Reset: the first beat after reset starts a vector; the buffer needs no
    clearing (only addresses written by the current vector are read back).
    """

    def __init__(self, *, d_max, p, e_width):
        params = check_absmean_params(d_max=d_max, p=p, e_width=e_width)
        self.params = params
        self.d_max, self.p, self.e_width = d_max, p, e_width
        self.groups = d_max // p
        #: Cycles from the handshake of a vector's last beat until its sum is final.
        self.sum_latency = 1 + (p - 1).bit_length()
        #: Cycles of the restoring division (one quotient bit per cycle).
        self.divide_cycles = e_width - 1
        #: Cycles per vector beyond the 2*G beats of the two passes (no gaps, no backpressure).
        self.overhead_cycles = self.sum_latency + self.divide_cycles + 1
        #: Cycles from the handshake of a vector's last beat to its first output beat being valid.
        self.latency = self.sum_latency + self.divide_cycles + 5
        super().__init__({
            "i": In(stream.Signature(vector_layout("e", signed(e_width), p))),
            "o": Out(stream.Signature(vector_layout("q", signed(2), p))),
        })

    def elaborate(self, platform):
        m = Module()
        p, G, ew = self.p, self.groups, self.e_width
        qbits = ew - 1
        sum_width = (self.d_max * 2 ** (ew - 1)).bit_length()

        # The buffer reads through two registers (address, then the block RAM's own output
        # register on ECP5: `PipelinedRAM`), both enabled with the read-back pipeline; the
        # second is s2's `e`. Writes (pass 1) do not wait for that enable. A read that shares
        # a cycle with a write only fills an empty pipeline slot.
        rd = Signal(data.StructLayout({"en": 1, "addr": range(G)}))
        m.submodules.mem = mem = PipelinedRAM(width=p * ew, depth=max(G, 2), write_ce=False)
        wr = Signal(data.StructLayout({"en": 1, "addr": range(G),
                                       "data": data.ArrayLayout(signed(ew), p)}))
        m.d.comb += [mem.ce.eq(rd.en), mem.r_addr.eq(rd.addr), mem.w_en.eq(wr.en),
                     mem.w_addr.eq(wr.addr), mem.w_data.eq(wr.data)]
        s2_e = data.View(data.ArrayLayout(signed(ew), p), mem.r_data)

        # ---- Pass 1: store the vector and sum |e| over its elements. -------------------------
        loading = Signal()
        fresh = Signal(init=1)                  # the next beat starts a vector
        count = Signal(range(G + 1))            # beats of the current vector so far (saturating)
        n_beats = Signal(range(G + 1))          # of the vector being divided / read back
        v_empty = Signal.like(self.i.payload.empty)

        pay = self.i.payload
        accept = self.i.valid & self.i.ready
        start = pay.first | fresh
        beat_g = Mux(start, 0, count)
        keep = beat_g < G
        m.d.comb += [self.i.ready.eq(loading),
                     wr.en.eq(accept & keep), wr.addr.eq(beat_g), wr.data.eq(pay.e)]
        with m.If(accept):
            m.d.sync += [count.eq(Mux(keep, beat_g + 1, G)), fresh.eq(pay.last)]
            with m.If(pay.last):
                m.d.sync += [n_beats.eq(Mux(keep, beat_g + 1, G)),
                             v_empty.eq(Mux(keep, pay.empty, 0))]

        # Sum pipeline: masked |e| per lane, a registered adder tree, then the accumulator.
        def stage(name, width, n):
            return Signal(data.StructLayout({"valid": 1, "start": 1, "end": 1,
                                             "lanes": range(p + 1),
                                             "v": data.ArrayLayout(unsigned(width), n)}),
                          name=name)

        a = stage("abs", ew, p)
        n_used = Mux(pay.last, p - pay.empty, p)
        m.d.sync += [a.valid.eq(accept), a.start.eq(start), a.end.eq(pay.last),
                     a.lanes.eq(Mux(keep, n_used, 0))]
        for k in range(p):
            e = pay.e[k]
            m.d.sync += a.v[k].eq(Mux(keep & (k < n_used), Mux(e < 0, -e, e), 0))
        level, width, n = a, ew, p
        depth = 0
        while n > 1:
            depth += 1
            width, n_next = width + 1, (n + 1) // 2
            nxt = stage(f"tree{depth}", width, n_next)
            sums = _tree_levels([level.v[k] for k in range(n)])
            m.d.sync += [nxt.valid.eq(level.valid), nxt.start.eq(level.start),
                         nxt.end.eq(level.end), nxt.lanes.eq(level.lanes)]
            m.d.sync += [nxt.v[k].eq(sums[k]) for k in range(n_next)]
            level, n = nxt, n_next

        total = Signal(sum_width)               # S, then the division's remainder
        d = Signal(range(self.d_max + 1))
        done = Signal()                         # the vector's last beat reached the sum
        m.d.comb += done.eq(level.valid & level.end)
        with m.If(level.valid):
            m.d.sync += [total.eq(Mux(level.start, 0, total) + level.v[0]),
                         d.eq(Mux(level.start, 0, d) + level.lanes)]

        # ---- Division: t = floor(S / 2d), one quotient bit per cycle. ---------------------
        divisor = Signal(self.d_max.bit_length() + qbits)   # 2d << (qbits - 1 - k)
        quotient = Signal(qbits)
        bit = Signal(range(qbits + 1))
        t = Signal(qbits)

        # ---- Pass 2: read the vector back and compare against +-t. ------------------------
        rg = Signal(range(G))                   # next beat to read
        s1 = Signal(data.StructLayout({"valid": 1, "first": 1, "last": 1,
                                       "empty": len(v_empty), "t": qbits,
                                       "t_neg": signed(qbits + 1)}))
        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)
        m.d.comb += [rd.en.eq(advance), rd.addr.eq(rg)]
        issue = Signal()

        with m.FSM():
            with m.State("LOAD"):
                m.d.comb += loading.eq(1)
                with m.If(accept & pay.last):
                    m.next = "SUM"
            with m.State("SUM"):
                with m.If(done):
                    m.next = "PREP"
            with m.State("PREP"):
                m.d.sync += [divisor.eq(d << qbits), quotient.eq(0), bit.eq(0)]
                m.next = "DIVIDE"
            with m.State("DIVIDE"):
                ge = total >= divisor
                with m.If(ge):
                    m.d.sync += total.eq(total - divisor)
                m.d.sync += [quotient.eq(Cat(ge, quotient)), divisor.eq(divisor >> 1),
                             bit.eq(bit + 1)]
                with m.If(bit == qbits - 1):
                    m.d.sync += rg.eq(0)
                    m.next = "READ"
            with m.State("READ"):
                m.d.comb += issue.eq(advance)
                with m.If(advance):
                    m.d.sync += rg.eq(rg + 1)
                    with m.If(rg == n_beats - 1):
                        m.next = "LOAD"
        m.d.comb += t.eq(quotient)

        with m.If(advance):
            m.d.sync += [s1.valid.eq(issue), s1.first.eq(rg == 0),
                         s1.last.eq(rg == n_beats - 1),
                         s1.empty.eq(Mux(rg == n_beats - 1, v_empty, 0)),
                         s1.t.eq(t), s1.t_neg.eq(-t)]

        # s2 is beside the memory's output register (`s2_e`; a block RAM's clock-to-output
        # without that register is most of a cycle).
        # s1 and s2 carry t and the framing, so a stalled output beat is never affected by the
        # next vector, which may load and divide meanwhile.
        s2_valid = Signal()
        s2 = Signal(data.StructLayout({"first": 1, "last": 1,
                                       "empty": len(v_empty), "t": qbits,
                                       "t_neg": signed(qbits + 1)}), reset_less=True)
        with m.If(advance):
            m.d.sync += [s2_valid.eq(s1.valid), s2.first.eq(s1.first), s2.last.eq(s1.last),
                         s2.empty.eq(s1.empty), s2.t.eq(s1.t), s2.t_neg.eq(s1.t_neg)]

        # The output register.
        q_out = Signal(data.ArrayLayout(signed(2), p))
        o_valid = Signal()
        o_first, o_last = Signal(), Signal()
        o_empty = Signal.like(v_empty)
        with m.If(advance):
            m.d.sync += [o_valid.eq(s2_valid), o_first.eq(s2.first), o_last.eq(s2.last),
                         o_empty.eq(s2.empty)]
            for lane in range(p):
                e = s2_e[lane]
                used = lane < p - s2.empty
                m.d.sync += q_out[lane].eq(
                    Mux(used & (e > s2.t), 1, Mux(used & (e < s2.t_neg), -1, 0)))
        m.d.comb += [self.o.valid.eq(o_valid), self.o.payload.q.eq(q_out),
                     self.o.payload.first.eq(o_first), self.o.payload.last.eq(o_last),
                     self.o.payload.empty.eq(o_empty)]
        return m
