"""Poisson rate encoder: ternary vectors in, W ticks of Bernoulli spike trains out (Word2Spike)."""

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .vectors import check_d_max, check_int, check_lanes, tick_layout, vector_layout

__all__ = ["Poisson", "check_poisson_params", "lane_seeds", "lutram", "lutram_latency",
           "DEFAULT_RATES"]

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


def _xorshift32_int(x):
    x ^= (x << 13) & _MASK
    x ^= x >> 17
    return x ^ ((x << 5) & _MASK)


def _xorshift32(x):
    x = x ^ (x << 13)[:32]
    x = x ^ (x >> 17)
    return x ^ (x << 5)[:32]


def lutram(m, name, shape, depth, *, wr_en, wr_addr, wr_data, rd_en, rd_addr, wr_bank=None):
    """A memory of ``depth`` words in distributed RAM with a pipelined read.

    ``rd_en`` advances the read pipeline; the word at ``rd_addr`` reaches the returned value
    after :func:`lutram_latency` ``(depth)`` enabled cycles and is held while ``rd_en`` is low
    (a word written in the same cycle as its read reads old). Returns ``value``.
    ``wr_bank``, if given, is the one-hot bank of ``wr_addr`` (bit ``b`` for words
    ``16*b..16*b+15``), so the write needs no address decoder.

    Words live in banks of 16 (one LUT RAM deep), each with a registered output; the banks are
    then selected four at a time, one register level per step. An ECP5 block RAM's
    clock-to-output alone (4.3 ns at speed grade 8 in nextpnr's model) would leave too little
    of a 200 MHz cycle for any logic behind it.
    """
    layout = shape if isinstance(shape, data.Layout) else None
    width = Shape.cast(shape).width
    banks = -(-depth // 16)
    level = []
    for b in range(banks):
        mem = Memory(shape=unsigned(width), depth=min(16, depth), init=[],
                     attrs={"ram_style": "distributed"})
        m.submodules[f"{name}{b}"] = mem
        wp = mem.write_port()
        rp = mem.read_port(domain="comb")
        hit = 1 if banks == 1 else wr_addr[4:] == b if wr_bank is None else wr_bank[b]
        m.d.comb += [wp.en.eq(wr_en & hit), wp.addr.eq(wr_addr[:4]), wp.data.eq(wr_data),
                     rp.addr.eq(rd_addr[:4])]
        level.append(rp.data)
    # Each step registers the current words, then selects among groups of four of them by
    # the next two address bits. Every group has its own copy of the select register, to keep
    # each register's fanout small.
    sel = Value.cast(rd_addr)[4:]
    step = 0
    while True:
        regs = []
        for n, value in enumerate(level):
            q = Signal(width, reset_less=True, name=f"{name}_l{step}_{n}")
            with m.If(rd_en):
                m.d.sync += q.eq(value)
            regs.append(q)
        if len(regs) == 1:
            return layout(regs[0]) if layout else regs[0]
        copies = []
        for g in range(0, len(regs), 4):
            copy = Signal(len(sel), reset_less=True, name=f"{name}_sel{step}_{g // 4}")
            with m.If(rd_en):
                m.d.sync += copy.eq(sel)
            copies.append(copy)
        level = [Array(regs[g:g + 4])[copies[g // 4][:2]] for g in range(0, len(regs), 4)]
        sel = copies[0][2:]
        step += 1


def lutram_latency(depth):
    """Cycles from a :func:`lutram` read to its data (enabled cycles)."""
    banks, latency = -(-depth // 16), 1
    while banks > 1:
        banks, latency = -(-banks // 4), latency + 1
    return latency


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
    the first output beat is valid :attr:`latency` ``= 3 + lutram_latency(d_max/p)`` cycles
    after the vector's last input handshake (4 up to 16 beats, 5 up to 64, 6 up to 256, 7 up
    to 1024).
    ``o.valid`` never depends on ``o.ready``; ``i.ready`` depends on neither ``i.valid`` nor
    the payload. Reset: generators back to their seeds, the next beat starts a vector.

    The vector buffer is distributed RAM read through a pipelined bank select (:func:`lutram`),
    no block RAM: every path is register to a few LUT levels to register (200 MHz and more at
    speed grade 8).
    """

    def __init__(self, *, d_max, p, W, seed=0, rate_pos=DEFAULT_RATES[0],
                 rate_zero=DEFAULT_RATES[1], rate_neg=DEFAULT_RATES[2]):
        params = check_poisson_params(d_max=d_max, p=p, W=W, seed=seed, rate_pos=rate_pos,
                                      rate_zero=rate_zero, rate_neg=rate_neg)
        self.params = params
        for key, value in params.items():
            setattr(self, key, value)
        self.groups = self.d_max // self.p
        #: Cycles from a vector's last input handshake to its first output beat being valid.
        self.latency = 3 + lutram_latency(self.groups)
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

        wr = Signal(data.StructLayout({"en": 1, "addr": range(G), "data": 2 * p}))
        wr_bank = Signal(-(-G // 16))
        rd = Signal(data.StructLayout({"en": 1, "addr": range(G)}))
        rd_data = lutram(m, "mem", data.ArrayLayout(signed(2), p), G, wr_en=wr.en,
                         wr_addr=wr.addr, wr_data=wr.data, rd_en=rd.en, rd_addr=rd.addr,
                         wr_bank=wr_bank)

        # ---- Load a vector. --------------------------------------------------------------
        # Every decision of the loop below comes from a flag registered a cycle ahead, so no
        # counter comparison sits between two registers that must agree in the same cycle.
        loading = Signal()
        fresh = Signal(init=1)
        count = Signal(range(G + 1))            # beats of the current vector so far
        full = Signal()                         # count == G: later beats are dropped
        v_empty = Signal.like(self.i.payload.empty)
        pay = self.i.payload
        accept = self.i.valid & self.i.ready
        start = pay.first | fresh
        beat_g = Mux(start, 0, count)
        keep = start | ~full
        count_bank = Signal(len(wr_bank), init=1)   # one-hot LUT RAM bank of count
        m.d.comb += [self.i.ready.eq(loading),
                     wr.en.eq(accept & keep), wr.addr.eq(beat_g), wr.data.eq(pay.q),
                     wr_bank.eq(Mux(start, 1, count_bank))]
        with m.If(accept):
            m.d.sync += fresh.eq(pay.last)
            with m.If(start):
                m.d.sync += [count.eq(1), full.eq(G == 1), count_bank.eq(1)]
            with m.Elif(~full):
                m.d.sync += [count.eq(count + 1), full.eq(count == G - 1)]
                with m.If(count[:4] == 15):
                    m.d.sync += count_bank.eq(count_bank << 1)

        # ---- Emit W ticks of G beats. ------------------------------------------------------
        rg = Signal(range(G))
        tick = Signal(range(W))
        end_tick = Signal()                     # rg is the tick's last beat
        last_tick = Signal()                    # tick == W - 1
        first_beat = Signal()                   # rg == 0 and tick == 0
        single = Signal()                       # the vector has one beat
        g_before_last = Signal(range(G + 1))    # index of the vector's last beat, minus one
        advance = Signal()
        issue = Signal()
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready), rd.en.eq(advance),
                     rd.addr.eq(rg)]
        with m.FSM():
            with m.State("LOAD"):
                m.d.comb += loading.eq(1)
                with m.If(accept & pay.last):
                    one = start | (G == 1)
                    m.d.sync += [rg.eq(0), tick.eq(0), end_tick.eq(one), single.eq(one),
                                 last_tick.eq(W == 1), first_beat.eq(1),
                                 g_before_last.eq(Mux(full, G - 2, count - 1)),
                                 v_empty.eq(Mux(keep, pay.empty, 0))]
                    m.next = "EMIT"
            with m.State("EMIT"):
                m.d.comb += issue.eq(advance)
                with m.If(advance):
                    m.d.sync += [rg.eq(Mux(end_tick, 0, rg + 1)), first_beat.eq(0),
                                 end_tick.eq(Mux(end_tick, single, rg == g_before_last))]
                    with m.If(end_tick):
                        m.d.sync += [tick.eq(tick + 1),
                                     last_tick.eq(tick == W - 2 if W >= 2 else 1)]
                        with m.If(last_tick):
                            m.next = "LOAD"

        # The read pipeline: the beat's framing travels beside its read, lutram_latency(G)
        # stages, then s2 joins it with the data. Only the valid bits reset (a data register
        # with both a synchronous reset and an enable needs a LUT in front of the flip-flop).
        meta = data.StructLayout({"first": 1, "last": 1, "tick_last": 1,
                                  "empty": len(v_empty), "used": p})
        s1_valid = Signal(name="s1_valid")
        s1 = Signal(meta, reset_less=True, name="s1")
        with m.If(advance):
            m.d.sync += [s1_valid.eq(issue), s1.first.eq(first_beat),
                         s1.last.eq(end_tick & last_tick), s1.tick_last.eq(end_tick),
                         s1.empty.eq(Mux(end_tick, v_empty, 0)),
                         s1.used.eq(Cat(~end_tick | (v_empty < p - k) for k in range(p)))]
        for n in range(1, lutram_latency(G)):
            nxt_valid = Signal(name=f"s1_{n}_valid")
            nxt = Signal(meta, reset_less=True, name=f"s1_{n}")
            with m.If(advance):
                m.d.sync += [nxt_valid.eq(s1_valid), nxt.eq(s1)]
            s1_valid, s1 = nxt_valid, nxt

        s2_valid, o_valid = Signal(name="s2_valid"), Signal(name="o_valid")
        s2 = Signal(data.StructLayout({"meta": meta, "q": data.ArrayLayout(signed(2), p)}),
                    reset_less=True)
        with m.If(advance):
            m.d.sync += [s2_valid.eq(s1_valid), s2.meta.eq(s1), s2.q.eq(rd_data)]

        # The output register. The three threshold comparisons of the state each lane uses
        # next are registered: a beat entering the output only selects among them, and the
        # generators step (and compare) meanwhile.
        rates = (self.rate_pos, self.rate_zero, self.rate_neg)
        o = Signal(data.StructLayout({"s": data.ArrayLayout(unsigned(1), p),
                                      "first": 1, "last": 1, "tick_last": 1,
                                      "empty": len(v_empty)}), reset_less=True)
        with m.If(advance):
            m.d.sync += [o_valid.eq(s2_valid), o.first.eq(s2.meta.first),
                         o.last.eq(s2.meta.last), o.tick_last.eq(s2.meta.tick_last),
                         o.empty.eq(s2.meta.empty)]
        for k, seed in enumerate(lane_seeds(self.seed, p)):
            # `below`: the comparisons of the state the lane uses next; `gen`: the state after
            # it, so that no comparison waits for a generator step.
            first_state = _xorshift32_int(seed)
            gen = Signal(32, init=_xorshift32_int(first_state), name=f"gen{k}")
            below = Signal(3, init=sum(((first_state >> 16) < r) << n for n, r in enumerate(rates)),
                           name=f"below{k}")
            with m.If(advance & s2_valid):
                m.d.sync += [gen.eq(_xorshift32(gen)), below.eq(Cat(gen[16:] < r for r in rates))]
            # Select by the ternary code: 0b01 -> +1, 0b11 -> -1, 0b00 and 0b10 -> 0.
            code = s2.q[k]
            hit = Mux(code == 1, below[0], Mux(code == -1, below[2], below[1]))
            with m.If(advance):
                m.d.sync += o.s[k].eq(hit & s2.meta.used[k])
        m.d.comb += [self.o.valid.eq(o_valid), self.o.payload.s.eq(o.s),
                     self.o.payload.first.eq(o.first), self.o.payload.last.eq(o.last),
                     self.o.payload.tick_last.eq(o.tick_last), self.o.payload.empty.eq(o.empty)]
        return m
