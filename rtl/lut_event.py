"""Event-driven LUT index unit: the LUT index computed from spike events in firing order."""

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .lut import MAX_INDEX_BITS, _int, check_anchors

__all__ = ["LUTEvent", "check_lut_event_params"]


def check_lut_event_params(*, n, n_t, n_c, t_width):
    """Validate the event unit's parameters; return them as plain ints."""
    who = "LUT event"
    return {"n": _int(who, "n", n, 2, 1024), "n_t": _int(who, "n_t", n_t, 1, 256),
            "n_c": _int(who, "n_c", n_c, 1, MAX_INDEX_BITS),
            "t_width": _int(who, "t_width", t_width, 1, 24)}


class LUTEvent(wiring.Component):
    """Index unit fed by spike events: ``n_t`` indices of ``n_c`` bits per window.

    A *window* is a run of input beats from one with ``first`` set (or the first beat after a
    ``last``) to the next beat with ``last`` set. Each beat is either a spike event (``spike =
    1``: neuron ``neuron`` fired at time ``time``) or a framing-only beat (``spike = 0``, e.g.
    a window in which nothing fired is one beat with ``first = last = 1, spike = 0``). Events
    arrive in firing order: ``time`` nondecreasing within a window. At the window's ``last``
    beat the unit emits, for every table ``t`` and pair ``r`` with anchors ``(a, b)``::

        bit_tr = 1  exactly when b fired strictly before a
        j_t    = sum_r bit_tr * 2**r

    which equals the vector unit's ``[x[a] - x[b] > 0]`` on the neurons' latencies: spikes at
    the same ``time`` are simultaneous (a tie gives 0), and a neuron that never fires in the
    window fires last (after every neuron that fired; two silent neurons tie).

    Rules for malformed input, identical in the golden model: only a neuron's first spike in a
    window counts; an event whose ``time`` is below an earlier one of the window counts as
    simultaneous with the latest time seen (the unit never goes back in time); an event for a
    neuron ``>= n`` is ignored; a ``first`` beat inside an open window discards that window (no
    output for it) and starts a new one.

    Hardware: per anchor pair, two neuron comparators (in the event register's stage, with
    the time comparison) and four flags (b fired in the current time group, b fired earlier,
    a fired, bit), updated one stage later; the indices are formed from the flags in a third.
    When an event's time exceeds the current group time, "current" becomes "earlier"; when
    ``a`` fires, the bit latches "b fired earlier". At ``last``, pairs whose ``a`` never fired
    take "b fired at all".

    Parameters
    ----------
    n : int
        Neurons, 2..1024.
    n_t : int
        Tables, 1..256.
    n_c : int
        Anchor pairs per table (index bits), 1..16.
    t_width : int
        Unsigned spike time width, 1..24.
    anchors : int array ``(n_t, n_c, 2)``
        Initial anchor pairs ``(a, b)``, both in ``0..n-1``, ``a != b``.

    Members
    -------
    i : ``In(stream.Signature(StructLayout({"neuron": range(n), "time": unsigned(t_width), "spike": 1, "first": 1, "last": 1})))``
        Spike events, one per beat.
    w : ``In(stream.Signature(StructLayout({"table": range(n_t), "a": ArrayLayout(range(n), n_c), "b": ArrayLayout(range(n), n_c)})))``
        Rewrites all anchor pairs of one table. A write naming a table ``>= n_t``, or with
        ``a[r] == b[r]`` or an index ``>= n``, is dropped whole. ``w.ready`` is high only between
        windows, and a pending write holds ``i.ready`` low there (and for the cycle after it is
        taken, when it is applied), so a write affects exactly the windows that start after it.
    o : ``Out(stream.Signature(StructLayout({"j": ArrayLayout(unsigned(n_c), n_t)})))``
        One beat per completed window: every table's index.

    Timing: one event per cycle; the window's indices are valid 3 cycles (:attr:`latency`)
    after its ``last`` beat is accepted (the event register, the flag update, the indices
    from the final flags). ``i.ready`` is low while an output waits (``o.valid &
    ~o.ready``); ``o.valid`` never depends on ``o.ready``; ``i.ready`` depends on neither
    ``i.valid`` nor the payload.

    Reset: no window is open and the output is empty; the anchors return to ``anchors``.
    """

    latency = 3

    def __init__(self, *, n, n_t, n_c, t_width, anchors):
        params = check_lut_event_params(n=n, n_t=n_t, n_c=n_c, t_width=t_width)
        self.params = params
        for key, value in params.items():
            setattr(self, key, value)
        self.anchors = check_anchors("LUT event", anchors, n=n, n_t=n_t, n_c=n_c)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "neuron": range(n), "time": unsigned(t_width), "spike": 1, "first": 1,
                "last": 1}))),
            "w": In(stream.Signature(data.StructLayout({
                "table": range(n_t), "a": data.ArrayLayout(range(n), n_c),
                "b": data.ArrayLayout(range(n), n_c)}))),
            "o": Out(stream.Signature(data.StructLayout({
                "j": data.ArrayLayout(unsigned(n_c), n_t)}))),
        })

    def elaborate(self, platform):
        m = Module()
        n, n_t, n_c = self.n, self.n_t, self.n_c
        P = n_t * n_c
        ab = Shape.cast(range(n)).width

        pa = [Signal(range(n), name=f"a{p}", init=int(self.anchors.reshape(P, 2)[p, 0]))
              for p in range(P)]
        pb = [Signal(range(n), name=f"b{p}", init=int(self.anchors.reshape(P, 2)[p, 1]))
              for p in range(P)]
        cur = Signal(P)       # b fired in the current time group
        early = Signal(P)     # b fired in an earlier time group
        afired = Signal(P)    # a fired
        bits = Signal(P)      # latched when a fired: b fired strictly before
        open_ = Signal()      # a window is in progress (as far as the accepted beats go)
        now = Signal(self.t_width)

        # Stage 1 registers an accepted event with everything that does not depend on the
        # flags: which anchors it matches, whether it starts a window and whether its time is
        # past the group time (`now` as stage 2 leaves it in the same cycle). Stage 2 updates
        # the flags from these registers only.
        ev = Signal(data.StructLayout({"valid": 1, "last": 1, "fresh": 1, "promote": 1,
                                       "time": self.t_width, "fire": 1,
                                       "is_a": P, "is_b": P}))

        advance = ~self.o.valid | self.o.ready
        w_now = self.w.valid & ~open_
        w_pend = Signal()     # an accepted anchor write not yet applied
        m.d.comb += [self.w.ready.eq(~open_),
                     self.i.ready.eq(advance & ~w_now & ~w_pend)]
        accept = self.i.valid & self.i.ready
        beat = self.i.payload

        # Stage 2: the flags after the registered event.
        cur_in = Mux(ev.fresh, 0, cur)
        early_in = Mux(ev.fresh, 0, early)
        afired_in = Mux(ev.fresh, 0, afired)

        early_n = Signal(P)
        cur_n = Signal(P)
        afired_n = Signal(P)
        bits_n = Signal(P)
        for p in range(P):
            is_a, is_b = ev.is_a[p], ev.is_b[p]
            e = early_in[p] | (ev.promote & cur_in[p])
            m.d.comb += [
                early_n[p].eq(e),
                cur_n[p].eq((cur_in[p] & ~ev.promote) | (is_b & ~e)),
                afired_n[p].eq(afired_in[p] | is_a),
                # `bit` counts only where `a fired` (see `final`), and is set when `a` first
                # fires, so a new window needs no clearing of it.
                bits_n[p].eq(Mux(is_a & ~afired_in[p], e, bits[p])),
            ]

        # The group time. Times are unsigned, so 0 at the start of a window acts as "before
        # everything".
        with m.If(advance & ev.valid):
            with m.If(ev.fresh):
                m.d.sync += now.eq(Mux(ev.fire, ev.time, 0))
            with m.Elif(ev.promote):
                m.d.sync += now.eq(ev.time)

        # Stage 3: the cycle after a window's last event, the flags are its final state (a
        # next window's first event may be changing them in that same cycle).
        done = Signal()
        final = Signal(P)
        m.d.comb += final.eq((afired & bits) | (~afired & (early | cur)))   # bit by bit
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(advance):
            m.d.sync += [ev.valid.eq(accept), done.eq(ev.valid & ev.last)]
            with m.If(done):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.j.as_value().eq(final)]
            with m.If(ev.valid):
                m.d.sync += [cur.eq(cur_n), early.eq(early_n), afired.eq(afired_n),
                             bits.eq(bits_n)]

        # Stage 1. An event accepted now is compared with the group time as stage 2 leaves it
        # (it advances too): the event in stage 2 sets it to its own time when it starts a
        # window with a spike or starts a later group, to 0 when it starts one without.
        fresh = beat.first | ~open_
        to_ev = ev.valid & ((ev.fresh & ev.fire) | ev.promote)
        to_zero = ev.valid & ev.fresh & ~ev.fire
        later = Mux(to_ev, beat.time > ev.time, Mux(to_zero, beat.time != 0, beat.time > now))
        fire = beat.spike & (beat.neuron < n if n < 2 ** ab else C(1))
        with m.If(accept):
            m.d.sync += [
                open_.eq(~beat.last),
                ev.last.eq(beat.last), ev.fresh.eq(fresh), ev.fire.eq(fire),
                ev.time.eq(beat.time), ev.promote.eq(fire & ~fresh & later),
                ev.is_a.eq(Cat(*[fire & (pa[p] == beat.neuron) for p in range(P)])),
                ev.is_b.eq(Cat(*[fire & (pb[p] == beat.neuron) for p in range(P)])),
            ]

        # Anchor writes: a register takes the accepted write with its checks and the table it
        # selects; the anchors change one cycle later. Events wait while one is pending.
        w = self.w.payload
        anchors_ok = Cat(*[(w.a[r] != w.b[r]) & (w.a[r] < n) & (w.b[r] < n)
                           for r in range(n_c)]).all()
        w_sel = Signal(n_t)     # one-hot: the table a checked write rewrites (0: none, which
                                # includes tables >= n_t)
        w_a = Signal.like(w.a)
        w_b = Signal.like(w.b)
        m.d.sync += [w_sel.eq(0), w_pend.eq(self.w.valid & self.w.ready)]
        with m.If(self.w.valid & self.w.ready):
            m.d.sync += [w_sel.eq(Cat(*[(w.table == t) & anchors_ok
                                        for t in range(n_t)])),
                         w_a.eq(w.a), w_b.eq(w.b)]
        for t in range(n_t):
            with m.If(w_sel[t]):
                for r in range(n_c):
                    m.d.sync += [pa[t * n_c + r].eq(w_a[r]), pb[t * n_c + r].eq(w_b[r])]
        return m
