"""Ternary linear layer: y = W·s with W in {-1, 0, +1}, additions and subtractions only.

The equations, the weight layout and the timing are on :class:`TernaryLinear`.
"""

from numbers import Integral

import numpy as np
from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .ecp5_ram import replicated_register
from .lut import RowMemory
from .stream import SkidBuffer

__all__ = ["TernaryLinear", "check_ternary_linear_params", "weight_words", "popcount"]

#: Bits of the weight memory per read-address copy.
MEM_COLUMN = 32

#: Memories of at most this many words are LUT RAM read through the port's own enable
#: (:class:`~spikeforge.rtl.lut.RowMemory` ``distributed``); deeper ones are block RAM.
DIST_DEPTH = 64

#: Accumulator lanes per copy of the accumulate stage's `start` and `valid` flags.
ACC_GROUP = 4

#: Names of the structural parameters, in the order they are validated.
TERNARY_LINEAR_PARAMS = ("n_in", "n_out", "p", "k", "spikes")


def _int(name, value, lo, hi):
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"ternary_linear parameter {name!r} must be an integer, not {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"ternary_linear parameter {name!r} must be in {lo}..{hi}, not {value}")
    return value


def check_ternary_linear_params(*, n_in, n_out, p, k, spikes):
    """Validate the structural parameters; return them normalised (plain ints and str).

    Raises :exc:`TypeError` or :exc:`ValueError` naming the parameter and the bad value.
    """
    n_in = _int("n_in", n_in, 1, 4096)
    n_out = _int("n_out", n_out, 1, 4096)
    p = _int("p", p, 1, 4096)
    if n_out % p:
        raise ValueError(f"ternary_linear parameter 'p' must divide n_out={n_out}, not {p}")
    k = _int("k", k, 1, 4096)
    if n_in % k:
        raise ValueError(f"ternary_linear parameter 'k' must divide n_in={n_in}, not {k}")
    if spikes not in ("binary", "ternary"):
        raise ValueError(f"ternary_linear parameter 'spikes' must be 'binary' or 'ternary', "
                         f"not {spikes!r}")
    return dict(n_in=n_in, n_out=n_out, p=p, k=k, spikes=spikes)


def weight_words(weights, *, p, k):
    """The weight memory contents: a list of ``(n_out/p)*(n_in/k)`` ints, one per word.

    Word ``g*(n_in/k) + c`` holds ``W[g*p + l, c*k + m]`` as a 2-bit two's complement code
    at bits ``2*(l*k + m)``, for lane ``l < p`` and input ``m < k``.
    """
    w = np.asarray(weights, dtype=np.int64)
    n_out, n_in = w.shape
    codes = (w & 3).reshape(n_out // p, p, n_in // k, k).transpose(0, 2, 1, 3)
    codes = codes.reshape(-1, p * k)
    shifts = [2 * j for j in range(p * k)]
    return [sum(int(c) << s for c, s in zip(row, shifts)) for row in codes]


def _tree_sum(terms):
    # Balanced: log2(len) adder levels instead of a chain.
    terms = list(terms)
    if not terms:
        return C(0, 1)
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


def _code(value):
    """The raw bits of a ternary field (compare codes, not signed values: 0b10 is -2)."""
    return Value.cast(value).as_unsigned()


def popcount(bits):
    """Number of set bits, as an adder tree: of a value, or of a list of 1-bit values.

    Pass a list rather than a ``Cat`` of expressions: a slice of a ``Cat`` re-emits the whole
    ``Cat`` in the netlist, once per bit.
    """
    if not isinstance(bits, (list, tuple)):
        value = Value.cast(bits)
        bits = [value[j] for j in range(len(value))]
    return _tree_sum(bits)


class TernaryLinear(wiring.Component):
    """``y = W·s`` for an ``n_out x n_in`` ternary weight matrix, ``p`` outputs in parallel.

    ``s`` is a vector of ``n_in`` binary spikes {0, 1} or ternary spikes {-1, 0, +1}; ``y`` is
    an integer vector. There is no multiplier: each product ``W[o,j]·s[j]`` is a +1/-1/0 decision
    and each lane sums ``k`` of them per cycle as (count of +1) - (count of -1).

    Parameters
    ----------
    n_in, n_out : int
        Input and output lengths, 1..4096.
    p : int
        Output lanes, divides ``n_out``. An input vector yields ``n_out/p`` output beats.
    k : int
        Inputs consumed per cycle per lane, divides ``n_in``.
    spikes : str
        ``"binary"`` (1-bit inputs) or ``"ternary"`` (2-bit two's complement inputs).
    weights : array-like of shape ``(n_out, n_in)`` with entries in {-1, 0, +1}, or None
        Initial contents of the weight memory (None: all zeros).

    Members
    -------
    i : ``In(stream.Signature(StructLayout({"s": ArrayLayout(unsigned(1) or signed(2), n_in), "first": 1, "last": 1})))``
        One input vector per beat. ``first``/``last`` only travel to the output.
    o : ``Out(stream.Signature(StructLayout({"y": ArrayLayout(signed(acc_width), p), "err": 1, "first": 1, "last": 1})))``
        ``n_out/p`` beats per input vector, group ``g`` holding ``y[g*p : (g+1)*p]``.
        ``first`` is set on group 0 of a vector with ``first``, ``last`` on its last group of a
        vector with ``last``. ``err`` is set on every beat of a vector holding an illegal
        ternary code 0b10, which counts as 0.
    w : ``In(stream.Signature(StructLayout({"addr": range(depth), "w": ArrayLayout(ArrayLayout(signed(2), k), p)})))``
        Run-time weight writes, one memory word per beat: ``w[l][m]`` becomes
        ``W[g*p + l, c*k + m]`` for ``addr = g*(n_in/k) + c`` (see :func:`weight_words`).
        A code 0b10 is stored as 0; an ``addr >= depth`` is ignored. ``w.ready`` is low while a
        vector is being issued, so a vector never sees a mix of old and new weights: a write
        applies to every vector accepted later; a write offered while no vector is being issued
        holds ``i.ready`` low. (``w.ready`` also stays low in the cycle after a vector's last
        issue, while its last weight word leaves the memory.)

    Accumulator: ``|y| <= n_in``, so :attr:`acc_width` ``= bit_length(n_in) + 1`` bits never
    overflow (no saturation). Weights live in one memory of :attr:`depth` ``= (n_out/p)*(n_in/k)``
    words of ``2*p*k`` bits (LUT RAM up to :data:`DIST_DEPTH` words, else block RAM), cut into
    columns of :data:`MEM_COLUMN` bits that each read through their own copy of the address.

    Timing: an input vector occupies the core for :attr:`cycles_per_vector` ``= depth`` cycles
    (``n_in/k`` per group of ``p`` outputs); the next vector is accepted in the last of them,
    so at full throughput vectors follow each other with no gap. Group ``g`` leaves
    ``(g+1)*(n_in/k) +`` :attr:`latency` cycles after its vector was accepted. The output
    register is a two-entry skid buffer (:class:`~spikeforge.rtl.stream.SkidBuffer`): a beat
    that reaches a held output waits in its second entry, and the pipeline stalls as a whole
    from the next cycle until that entry drains. ``o.valid`` and ``o.payload`` are flip-flops;
    ``i.ready`` and ``w.ready`` depend on neither valid nor payload, nor on ``o.ready``.

    Reset: the core is idle; the weight memory keeps its contents (initial or last written).
    """

    #: Cycles from issuing the last chunk of a group to its output beat being valid.
    latency = 7

    def __init__(self, *, n_in, n_out, p, k, spikes="binary", weights=None):
        params = check_ternary_linear_params(n_in=n_in, n_out=n_out, p=p, k=k, spikes=spikes)
        for key, value in params.items():
            setattr(self, key, value)
        self.params = params
        if weights is None:
            weights = np.zeros((self.n_out, self.n_in), dtype=np.int64)
        w = np.asarray(weights)
        if w.shape != (self.n_out, self.n_in):
            raise ValueError(f"ternary_linear parameter 'weights' must have shape "
                             f"({self.n_out}, {self.n_in}), not {w.shape}")
        if w.size and (w.dtype.kind not in "iu" or w.min() < -1 or w.max() > 1):
            raise ValueError("ternary_linear parameter 'weights' must hold integers in -1..1")
        self.weights = w.astype(np.int64)
        self.groups = self.n_out // self.p
        self.chunks = self.n_in // self.k
        self.depth = self.groups * self.chunks
        self.cycles_per_vector = self.depth
        self.acc_width = self.n_in.bit_length() + 1
        s_shape = unsigned(1) if self.spikes == "binary" else signed(2)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "s": data.ArrayLayout(s_shape, self.n_in), "first": 1, "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({
                "y": data.ArrayLayout(signed(self.acc_width), self.p),
                "err": 1, "first": 1, "last": 1}))),
            "w": In(stream.Signature(data.StructLayout({
                "addr": range(self.depth),
                "w": data.ArrayLayout(data.ArrayLayout(signed(2), self.k), self.p)}))),
        })

    def elaborate(self, platform):
        m = Module()
        p, k, G, Cn, depth = self.p, self.k, self.groups, self.chunks, self.depth
        ternary = self.spikes == "ternary"
        sbits = 2 if ternary else 1
        word = data.ArrayLayout(data.ArrayLayout(signed(2), k), p)

        # Columns of MEM_COLUMN bits, each read through its own copy of the address: one
        # address register would drive the address pins of every RAM cell of the word.
        mem = RowMemory(m, "mem", width=2 * p * k, depth=depth,
                        init=weight_words(self.weights, p=p, k=k), shared_addr=True,
                        column_width=MEM_COLUMN, platform=platform,
                        distributed=depth <= DIST_DEPTH)

        # The output register is a skid buffer: the pipeline advances on its registered
        # `ready`, so `o.ready` drives only the two output entries, not every stage.
        m.submodules.out = out = SkidBuffer(self.o.payload.shape())
        wiring.connect(m, wiring.flipped(self.o), out.o)
        advance = Signal()
        m.d.comb += advance.eq(out.i.ready)

        # Issue stage: the accepted vector, walked chunk by chunk, group by group.
        busy = Signal()
        s_reg = Signal(sbits * self.n_in)
        v_first, v_last, v_err = Signal(), Signal(), Signal()
        addr = Signal(range(depth))
        c = Signal(range(Cn))
        g = Signal(range(G))
        last_issue = Signal()
        # `at_last` is addr == depth - 1, kept as a register so that `i.ready` has no
        # address comparator in front of it.
        at_last = Signal(init=int(depth == 1))
        m.d.comb += last_issue.eq(busy & at_last)
        # A write accepted now lands in the next cycle, before the next vector's first read.
        m.d.comb += self.i.ready.eq(advance & (~busy | last_issue) & ~(self.w.valid & ~busy))

        p1 = Signal(data.StructLayout({"valid": 1, "start": 1, "end": 1, "first": 1,
                                       "last": 1, "err": 1, "chunk": sbits * k}))
        p2 = Signal(data.StructLayout({"valid": 1, "start": 1, "end": 1, "first": 1,
                                       "last": 1, "err": 1,
                                       "part": data.ArrayLayout(signed(k.bit_length() + 1), p)}))

        # `addr` loads this while `advance` is high (the issue stage below).
        next_addr = Mux(busy, Mux(last_issue, 0, addr + 1), addr)
        rdata = mem.read(m, addr, advance, next_addr=next_addr)
        # Writes never overlap the issue of a vector, nor the cycle after it whose read data
        # is still at the memory output (see the docstring).
        m.d.comb += self.w.ready.eq(~busy & ~p1.valid)
        wcodes = [self.w.payload.w[l][j] for l in range(p) for j in range(k)]
        # The illegal code 0b10 is stored as 0: the high bit is kept only with the low one
        # (plain gates, not a multiplexer to 0 that synthesis would make a synchronous reset).
        mem.write(m, self.w.payload.addr,
                  Cat(Cat(_code(cd)[0], _code(cd)[0] & _code(cd)[1]) for cd in wcodes),
                  self.w.valid & self.w.ready & (self.w.payload.addr < depth))

        with m.If(advance):
            m.d.sync += [
                p1.valid.eq(busy), p1.start.eq(c == 0), p1.end.eq(c == Cn - 1),
                p1.first.eq(v_first & (g == 0)), p1.last.eq(v_last & (g == G - 1)),
                p1.err.eq(v_err), p1.chunk.eq(s_reg[:sbits * k]),
            ]
            with m.If(busy):
                # Rotating the vector brings the next chunk to the bottom (no wide mux), and
                # after n_in/k issues it is back in place for the next group.
                m.d.sync += [addr.eq(Mux(last_issue, 0, addr + 1)),
                             s_reg.eq(s_reg.rotate_right(sbits * k))]
                if depth > 1:
                    m.d.sync += at_last.eq(~last_issue & (addr == depth - 2))
                with m.If(c == Cn - 1):
                    m.d.sync += [c.eq(0), g.eq(Mux(g == G - 1, 0, g + 1))]
                with m.Else():
                    m.d.sync += c.eq(c + 1)
                with m.If(last_issue):
                    m.d.sync += busy.eq(0)
            with m.If(self.i.valid & self.i.ready):
                s_flat = Value.cast(self.i.payload.s)
                bad = C(0)
                if ternary:
                    bad = Cat(_code(self.i.payload.s[j]) == 0b10
                              for j in range(self.n_in)).any()
                m.d.sync += [busy.eq(1), s_reg.eq(s_flat), v_first.eq(self.i.payload.first),
                             v_last.eq(self.i.payload.last), v_err.eq(bad)]

        ctl = {"valid": 1, "start": 1, "end": 1, "first": 1, "last": 1, "err": 1}

        def follow(dst, src):
            return [getattr(dst, f).eq(getattr(src, f)) for f in ctl]

        # p1: the weights leave the block RAM, straight into a register (its clock-to-out
        # leaves no time for logic).
        pw = Signal(data.StructLayout({**ctl, "chunk": sbits * k, "w": 2 * p * k}))
        with m.If(advance):
            m.d.sync += follow(pw, p1) + [pw.chunk.eq(p1.chunk), pw.w.eq(rdata)]

        # pw: every product becomes a +1 bit and a -1 bit.
        wv = word(pw.w)
        plus, minus = [], []
        for l in range(p):
            for j in range(k):
                wc = _code(wv[l][j])
                wpos, wneg = wc == 0b01, wc == 0b11
                if ternary:
                    sc = pw.chunk[2 * j:2 * j + 2]
                    spos, sneg = sc == 0b01, sc == 0b11
                    plus.append((wpos & spos) | (wneg & sneg))
                    minus.append((wpos & sneg) | (wneg & spos))
                else:
                    sj = pw.chunk[j]
                    plus.append(wpos & sj)
                    minus.append(wneg & sj)
        pm = Signal(data.StructLayout({**ctl, "plus": p * k, "minus": p * k}))
        with m.If(advance):
            m.d.sync += follow(pm, pw) + [pm.plus.eq(Cat(plus)), pm.minus.eq(Cat(minus))]

        # pm: popcounts of 8-product slices per lane; pp: each lane sums its k products as
        # (#+1) - (#-1).
        slices = [(j, min(j + 8, k)) for j in range(0, k, 8)]
        cnt = unsigned(min(k, 8).bit_length())
        pp = Signal(data.StructLayout({
            **ctl, "plus": data.ArrayLayout(data.ArrayLayout(cnt, len(slices)), p),
            "minus": data.ArrayLayout(data.ArrayLayout(cnt, len(slices)), p)}))
        with m.If(advance):
            m.d.sync += follow(pp, pm)
            for l in range(p):
                for n_, (lo, hi) in enumerate(slices):
                    m.d.sync += [pp.plus[l][n_].eq(popcount(pm.plus[l * k + lo:l * k + hi])),
                                 pp.minus[l][n_].eq(popcount(pm.minus[l * k + lo:l * k + hi]))]
            m.d.sync += follow(p2, pp)
            for l in range(p):
                m.d.sync += p2.part[l].eq(_tree_sum([pp.plus[l][n_] for n_ in range(len(slices))])
                                          - _tree_sum([pp.minus[l][n_]
                                                       for n_ in range(len(slices))]))

        # p2: accumulate over the chunks of a group. `start` and `valid` reach every lane: one
        # copy of each per ACC_GROUP lanes, loaded with p2.
        copies = -(-p // ACC_GROUP)
        start = replicated_register(m, platform, pp.start, copies, name="p2_start",
                                    enable=advance)
        valid = replicated_register(m, platform, pp.valid, copies, name="p2_valid",
                                    enable=advance)
        acc = Signal(data.ArrayLayout(signed(self.acc_width), p))
        for l in range(p):
            with m.If(advance & valid[l // ACC_GROUP]):
                m.d.sync += acc[l].eq(Mux(start[l // ACC_GROUP], 0, acc[l]) + p2.part[l])

        # p3: after a group's last chunk the accumulator holds its total, offered from there
        # (no adder in front of the output). It stays until the handshake, which is the edge
        # the next group's first chunk is accumulated on (both wait for `advance`).
        p3 = Signal(data.StructLayout({"valid": 1, "first": 1, "last": 1, "err": 1}))
        with m.If(advance):
            m.d.sync += [p3.valid.eq(p2.valid & p2.end), p3.first.eq(p2.first),
                         p3.last.eq(p2.last), p3.err.eq(p2.err)]
        m.d.comb += [out.i.valid.eq(p3.valid),
                     out.i.payload.first.eq(p3.first), out.i.payload.last.eq(p3.last),
                     out.i.payload.err.eq(p3.err)]
        m.d.comb += [out.i.payload.y[l].eq(acc[l]) for l in range(p)]
        return m
