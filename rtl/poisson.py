"""Poisson rate encoder: ternary vectors in, W ticks of Bernoulli spike trains out (Word2Spike)."""

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .vectors import check_d_max, check_int, check_lanes, tick_layout, vector_layout

__all__ = ["Poisson", "check_poisson_params", "lane_seeds", "DEFAULT_RATES"]

#: 16-bit per-tick spike probabilities (x 2^-16) for +1, 0, -1: 100 Hz, 0 Hz, 50 Hz at dt = 1 ms.
DEFAULT_RATES = (6554, 0, 3277)
_MASK = 0xFFFFFFFF


def check_poisson_params(*, d_max, p, W, seed, rate_pos, rate_zero, rate_neg):
    """Validate a Poisson parameter set; return it as plain ints.

    Raises :exc:`TypeError` or :exc:`ValueError` naming the parameter and the bad value.
    """
    p = check_lanes("Poisson", p)
    out = {"d_max": check_d_max("Poisson", d_max, p), "p": p,
           "W": check_int("Poisson", "W", W, 1, 65535),
           "seed": check_int("Poisson", "seed", seed, 0, _MASK)}
    for name, value in (("rate_pos", rate_pos), ("rate_zero", rate_zero),
                        ("rate_neg", rate_neg)):
        out[name] = check_int("Poisson", name, value, 0, 65535)
    return out


def lane_seeds(seed, p):
    """Initial xorshift32 state of lane ``k``: ``fmix32((seed + (k+1)*0x9E3779B9) mod 2^32)``,
    or ``0x6D2B79F5`` where that is 0 (splitmix32; every lane gets a distinct nonzero state)."""
    seeds = []
    for k in range(p):
        z = (seed + (k + 1) * 0x9E3779B9) & _MASK
        z = ((z ^ (z >> 16)) * 0x85EBCA6B) & _MASK
        z = ((z ^ (z >> 13)) * 0xC2B2AE35) & _MASK
        seeds.append((z ^ (z >> 16)) or 0x6D2B79F5)
    return seeds


def _xorshift32(x):
    x = x ^ (x << 13)[:32]
    x = x ^ (x >> 17)
    return x ^ (x << 5)[:32]


class Poisson(wiring.Component):
    """Encode each ternary vector as ``W`` ticks of Bernoulli (Poisson-rate) spike trains.

    Lane ``k`` of every beat has its own xorshift32 generator (``x ^= x << 13; x ^= x >> 17;
    x ^= x << 5``); element ``j`` of a vector is served by generator ``j % p``. Each generator
    steps exactly once per output beat, whether or not its lane holds an element, and the beat
    uses the new state ``r``: element ``j`` spikes at that tick iff ``(r >> 16) < rate[q_j]``.
    Generators are seeded at reset by :func:`lane_seeds` from ``seed`` and run on from vector to
    vector; they are never re-seeded by ``first`` (so the stream after reset is reproducible
    and successive vectors draw fresh random numbers).

    Parameters
    ----------
    d_max : int
        Longest vector, 1..65536, a multiple of ``p``.
    p : int
        Lanes per beat, a power of two in 1..64.
    W : int
        Ticks per vector (the spike window), 1..65535.
    seed : int
        User seed, 0..2^32-1.
    rate_pos, rate_zero, rate_neg : int
        Spike thresholds in 0..65535 for +1, 0 and -1: the per-tick spike probability is
        ``rate / 2^16``. Defaults (:data:`DEFAULT_RATES`) 6554, 0, 3277 are 100 Hz, 0 Hz and
        50 Hz at ``dt = 1 ms``.

    Members
    -------
    i : ``In(stream.Signature(StructLayout({"q": ArrayLayout(signed(2), p), "empty": log2(p), "first": 1, "last": 1})))``
        Ternary vectors, framed as the :class:`~spikeforge.rtl.absmean.AbsMean` output (a vector
        starts after reset, after ``last`` and at any ``first``; beats past ``d_max/p`` are
        dropped; ``empty`` on the ``last`` beat). The illegal code 0b10 is read as 0 (it uses
        ``rate_zero``); nothing else changes.
    o : ``Out(stream.Signature(StructLayout({"s": ArrayLayout(unsigned(1), p), "empty": log2(p), "first": 1, "last": 1, "tick_last": 1})))``
        Per input vector of ``G = ceil(d/p)`` beats, ``W*G`` beats: tick 0 beats 0..G-1, tick 1,
        ... ``tick_last`` marks the last beat of every tick and carries the vector's ``empty``;
        ``first`` marks the window's first beat and ``last`` its final beat. Unused lanes never
        spike.

    Timing: a vector is loaded in ``G`` cycles (one beat per cycle), then its ``W*G`` output
    beats are issued one per cycle under ``o.ready``; ``i.ready`` is low meanwhile and rises in
    the cycle after the last beat is issued. Without gaps or backpressure a vector takes
    ``(W + 1)*G`` cycles (:meth:`cycles_per_vector`), i.e. ``p*W/(W+1)`` spike-ticks per cycle;
    the first output beat is valid :attr:`latency` = 4 cycles after the vector's last input
    handshake. ``o.valid`` never depends on ``o.ready``; ``i.ready`` depends on neither
    ``i.valid`` nor the payload. Reset: generators back to their seeds, the next beat starts a
    vector.
    """

    #: Cycles from a vector's last input handshake to its first output beat being valid.
    latency = 4

    def __init__(self, *, d_max, p, W, seed=0, rate_pos=DEFAULT_RATES[0],
                 rate_zero=DEFAULT_RATES[1], rate_neg=DEFAULT_RATES[2]):
        params = check_poisson_params(d_max=d_max, p=p, W=W, seed=seed, rate_pos=rate_pos,
                                      rate_zero=rate_zero, rate_neg=rate_neg)
        self.params = params
        for key, value in params.items():
            setattr(self, key, value)
        self.groups = self.d_max // self.p
        super().__init__({
            "i": In(stream.Signature(vector_layout("q", signed(2), self.p))),
            "o": Out(stream.Signature(tick_layout(self.p))),
        })

    def cycles_per_vector(self, d):
        """Cycles a vector of ``d`` elements occupies the core without gaps or backpressure."""
        G = -(-d // self.p)
        return (self.W + 1) * G

    def elaborate(self, platform):
        m = Module()
        p, G, W = self.p, self.groups, self.W

        m.submodules.mem = mem = Memory(shape=data.ArrayLayout(signed(2), p), depth=G, init=[])
        wr = mem.write_port()
        rd = mem.read_port()

        # ---- Load a vector. --------------------------------------------------------------
        loading = Signal()
        fresh = Signal(init=1)
        count = Signal(range(G + 1))
        n_beats = Signal(range(G + 1))
        v_empty = Signal.like(self.i.payload.empty)
        pay = self.i.payload
        accept = self.i.valid & self.i.ready
        start = pay.first | fresh
        beat_g = Mux(start, 0, count)
        keep = beat_g < G
        m.d.comb += [self.i.ready.eq(loading),
                     wr.en.eq(accept & keep), wr.addr.eq(beat_g), wr.data.eq(pay.q)]
        with m.If(accept):
            m.d.sync += [count.eq(Mux(keep, beat_g + 1, G)), fresh.eq(pay.last)]
            with m.If(pay.last):
                m.d.sync += [n_beats.eq(Mux(keep, beat_g + 1, G)),
                             v_empty.eq(Mux(keep, pay.empty, 0))]

        # ---- Emit W ticks of G beats. ------------------------------------------------------
        rg = Signal(range(G))
        tick = Signal(range(W))
        advance = Signal()
        issue = Signal()
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready), rd.en.eq(advance),
                     rd.addr.eq(rg)]
        end_tick = rg == n_beats - 1
        with m.FSM():
            with m.State("LOAD"):
                m.d.comb += loading.eq(1)
                with m.If(accept & pay.last):
                    m.d.sync += [rg.eq(0), tick.eq(0)]
                    m.next = "EMIT"
            with m.State("EMIT"):
                m.d.comb += issue.eq(advance)
                with m.If(advance):
                    m.d.sync += rg.eq(Mux(end_tick, 0, rg + 1))
                    with m.If(end_tick):
                        m.d.sync += tick.eq(tick + 1)
                        with m.If(tick == W - 1):
                            m.next = "LOAD"

        s1 = Signal(data.StructLayout({"valid": 1, "first": 1, "last": 1, "tick_last": 1,
                                       "empty": len(v_empty)}))
        with m.If(advance):
            m.d.sync += [s1.valid.eq(issue), s1.first.eq((rg == 0) & (tick == 0)),
                         s1.last.eq(end_tick & (tick == W - 1)), s1.tick_last.eq(end_tick),
                         s1.empty.eq(Mux(end_tick, v_empty, 0))]

        # s2 registers the memory output (a block RAM's clock-to-output is most of a cycle).
        s2 = Signal(data.StructLayout({"valid": 1, "first": 1, "last": 1, "tick_last": 1,
                                       "empty": len(v_empty),
                                       "q": data.ArrayLayout(signed(2), p)}))
        with m.If(advance):
            m.d.sync += [s2.valid.eq(s1.valid), s2.first.eq(s1.first), s2.last.eq(s1.last),
                         s2.tick_last.eq(s1.tick_last), s2.empty.eq(s1.empty),
                         s2.q.eq(rd.data)]

        # The output register; the generators step exactly when a beat enters it.
        seeds = lane_seeds(self.seed, p)
        gens = [Signal(32, init=seeds[k], name=f"gen{k}") for k in range(p)]
        o = Signal(data.StructLayout({"valid": 1, "s": data.ArrayLayout(unsigned(1), p),
                                      "first": 1, "last": 1, "tick_last": 1,
                                      "empty": len(v_empty)}))
        rates = {"pos": self.rate_pos, "zero": self.rate_zero, "neg": self.rate_neg}
        with m.If(advance):
            m.d.sync += [o.valid.eq(s2.valid), o.first.eq(s2.first), o.last.eq(s2.last),
                         o.tick_last.eq(s2.tick_last), o.empty.eq(s2.empty)]
            for k in range(p):
                r = Signal(32, name=f"next{k}")
                m.d.comb += r.eq(_xorshift32(gens[k]))
                with m.If(s2.valid):
                    m.d.sync += gens[k].eq(r)
                hi = r[16:]
                code = s2.q[k]
                # One comparison against each constant, then a select by the ternary code:
                # 0b01 -> +1, 0b11 -> -1, 0b00 and the illegal 0b10 -> 0.
                hit = Mux(code == 1, hi < rates["pos"],
                          Mux(code == -1, hi < rates["neg"], hi < rates["zero"]))
                m.d.sync += o.s[k].eq(hit & (k < p - s2.empty))
        m.d.comb += [self.o.valid.eq(o.valid), self.o.payload.s.eq(o.s),
                     self.o.payload.first.eq(o.first), self.o.payload.last.eq(o.last),
                     self.o.payload.tick_last.eq(o.tick_last), self.o.payload.empty.eq(o.empty)]
        return m
