"""Associative memory: ``K`` stored codes in block RAM, best matches by integer dot product.

The equations and the parameter rules are on :class:`Assoc`.
"""

from numbers import Integral

import numpy as np
from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .ecp5_ram import PipelinedRAM, replicated_register

__all__ = ["Assoc", "ASSOC_PARAMS", "BRAM_BITS", "check_assoc_params", "assoc_pair_table"]

#: Names of the associative-memory parameters, in the order they are validated.
ASSOC_PARAMS = ("K", "D", "kind", "N", "alpha", "frac", "banks", "top_k")
KINDS = ("rank", "ternary")
#: Block RAM of the largest target, an LFE5U-85F: 208 DP16KD of 18 Kbit.
BRAM_BITS = 208 * 18 * 1024


def _int(name, value, lo, hi, rule=""):
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"Assoc parameter {name!r} must be an integer, not {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"Assoc parameter {name!r} must be in {lo}..{hi}{rule}, not {value}")
    return value


def _word_bits(kind, D, N):
    return 2 * D if kind == "ternary" else N * max(1, (D - 1).bit_length())


def check_assoc_params(**params):
    """Validate a full associative-memory parameter set; return it normalised.

    Raises :exc:`TypeError` or :exc:`ValueError` naming the parameter and the bad value.
    """
    missing = [name for name in ASSOC_PARAMS if name not in params]
    if missing:
        raise TypeError(f"Assoc parameters missing: {', '.join(missing)}")
    unknown = sorted(set(params) - set(ASSOC_PARAMS))
    if unknown:
        raise TypeError(f"Assoc has no parameter {unknown[0]!r}")
    out = {}
    if params["kind"] not in KINDS:
        raise ValueError(f"Assoc parameter 'kind' must be one of 'rank', 'ternary', "
                         f"not {params['kind']!r}")
    out["kind"] = kind = params["kind"]
    out["K"] = K = _int("K", params["K"], 1, 65536)
    out["D"] = D = _int("D", params["D"], 1 if kind == "ternary" else 2, 1024)
    if kind == "rank":
        out["N"] = N = _int("N", params["N"], 1, min(D, 32), f" (N <= min(D={D}, 32))")
    else:
        out["N"] = N = _int("N", params["N"], 1, 32)
    out["frac"] = frac = _int("frac", params["frac"], 1, 16)
    out["alpha"] = _int("alpha", params["alpha"], 1, 2 ** frac - 1,
                        f" (alpha/2^frac in (0, 1) with frac={frac})")
    out["banks"] = B = _int("banks", params["banks"], 1, 64)
    if B & (B - 1) or K % B:
        raise ValueError(f"Assoc parameter 'banks' must be a power of two dividing K={K}, "
                         f"not {B}")
    out["top_k"] = _int("top_k", params["top_k"], 1, min(K, 16), f" (top_k <= min(K={K}, 16))")
    bits = K * _word_bits(kind, D, N)
    if bits > BRAM_BITS:
        raise ValueError(f"Assoc parameter 'K' is too large for the memory: {K} codes of "
                         f"{_word_bits(kind, D, N)} bits need {bits} bits, more than the "
                         f"{BRAM_BITS} bits of block RAM of an LFE5U-85F")
    return {name: out[name] for name in ASSOC_PARAMS}


def assoc_pair_table(alpha, frac, N):
    """``P[k][l] = s_k * s_l`` with ``s_k = floor((alpha/2^frac)^k * 2^frac)``, exact ints."""
    s = [2 ** frac] + [alpha ** k >> (frac * (k - 1)) for k in range(1, N)]
    return [[a * b for b in s] for a in s]


def _tree_sum(terms):
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


class Assoc(wiring.Component):
    """Associative memory of ``K`` codes; each query returns the ``top_k`` best matches.

    ``kind="ternary"``: codes are ``D`` ternary elements; the score of stored code ``p`` for
    query ``q`` is ``sum_j q_j * p_j`` in ``-D..D``. The illegal element 0b10, in a query or
    stored, counts as 0; a query that holds one has ``err`` set in its result.

    ``kind="rank"``: codes are N-of-M rank-order codes given as their ``N`` indices in rank
    order (``idx`` of :class:`~spikeforge.rtl.rankorder.RankOrder`, ``M = D``); the score is
    ``sum_{k,l: q[k] == p[l]} s_k * s_l`` with ``s_k = floor(alpha^k * 2^frac)``, the dot
    product of the two significance vectors when each code's indices are distinct (every
    product is a constant of a table, never a multiplier). Indices are only compared for
    equality, so any value is legal.

    Results are sorted by score, highest first, equal scores by lower index. Zero DSP blocks.

    Parameters
    ----------
    K : int
        Stored codes, 1..65536, with ``K * word_bits`` within the 3,833,856 bits of block RAM
        of an LFE5U-85F (``word_bits = 2*D``, or ``N*ceil(log2 D)`` for rank codes).
    D : int
        Ternary dimension, 1..1024; or the rank codes' ``M``, 2..1024.
    kind : str
        ``"ternary"`` or ``"rank"``.
    N, alpha, frac : int
        Rank codes only (validated always): code size ``1..min(D, 32)`` (1..32 for ternary
        codes, where it is unused); significance ratio ``alpha/2^frac`` in (0, 1), ``frac``
        in 1..16.
    banks : int
        Codes compared per cycle, a power of two dividing ``K`` (1..64). Code ``c`` lives in
        bank ``c % banks`` at row ``c // banks``.
    top_k : int
        Results per query, ``1..min(K, 16)``.
    patterns : array-like or None
        Initial contents, ``(K, D)`` ternary or ``(K, N)`` indices in ``0..D-1``; ``None`` is
        all zero. Not a parameter of the check above: it is memory contents.

    Members
    -------
    i : ``In(stream.Signature(StructLayout({"q": code, "first": 1, "last": 1})))``
        One query per beat; ``code`` is ``ArrayLayout(signed(2), D)`` or
        ``ArrayLayout(range(D), N)``. ``first``/``last`` only travel to the output.
    w : ``In(stream.Signature(StructLayout({"addr": range(K), "code": code})))``
        Writes: stores ``code`` at ``addr``; a write with ``addr >= K`` (representable when
        ``K`` is not a power of two) is accepted and ignored. A write is accepted only while
        no query is being scanned and the pipeline is not stalled; a write accepted in the
        same cycle as a query applies before it, and a query already accepted never sees a
        later write. Queries offered back to back hold writes off.
    o : ``Out(stream.Signature(StructLayout({"index": ArrayLayout(range(K), top_k), "score": ArrayLayout(score_shape, top_k), "err": 1, "first": 1, "last": 1})))``
        One result per query, in order. ``score_shape`` is ``signed`` for ternary codes (range
        ``-D..D``) and ``unsigned`` for rank codes (bound ``(sum_k s_k)^2``): no overflow.
        ``err`` is always 0 for rank codes.

    Timing: a query takes ``P = max(R, top_k)`` scan slots, one per cycle, for its
    ``R = K/banks`` rows (slots past ``R`` are bubbles), through an 8-stage pipeline into
    per-bank best lists of ``top_k`` cells that a candidate passes one per cycle; then the
    lists are merged in ``M = banks*top_k - 1`` cycles (0 with one bank) while the next query
    is already being scanned. Sustained, a query takes :attr:`interval` = ``max(P, M + 1)``
    cycles; its result is valid :attr:`latency` = ``P + 10 + top_k + M`` cycles after the
    query handshake when nothing stalls.
    The pipeline stalls as a whole while the merge or the output are full; ``o.valid`` never
    depends on ``o.ready``. Reset empties the pipeline and keeps the memory contents.
    """

    def __init__(self, *, patterns=None, **params):
        params = check_assoc_params(**params)
        self.params = params
        for key, value in params.items():
            setattr(self, key, value)
        self.rows = self.K // self.banks
        #: Scan slots per query: the rows, at least ``top_k`` (the extra slots are bubbles).
        self.slots = max(self.rows, self.top_k)
        #: Cycles of the merge after it takes the banks' lists: the other banks' entries, one
        #: per cycle, and the drain of its chain of ``top_k`` cells.
        self.merge_cycles = self.banks * self.top_k - 1 if self.banks > 1 else 0
        if self.kind == "ternary":
            self.code_layout = data.ArrayLayout(signed(2), self.D)
            shape, lo, hi = (self.K, self.D), -2, 1
            self.score_shape = signed((self.D).bit_length() + 1)
        else:
            self.code_layout = data.ArrayLayout(range(self.D), self.N)
            shape, lo, hi = (self.K, self.N), 0, self.D - 1
            bound = sum(map(sum, assoc_pair_table(self.alpha, self.frac, self.N)))
            self.score_shape = unsigned(max(1, bound.bit_length()))
        if patterns is None:
            patterns = np.zeros(shape, dtype=np.int64)
        patterns = np.asarray(patterns)
        if patterns.shape != shape or (patterns.size and patterns.dtype.kind not in "iu"):
            raise ValueError(f"Assoc 'patterns' must be an integer array of shape {shape}, "
                             f"not {patterns.dtype} {patterns.shape}")
        if patterns.size and (patterns.min() < lo or patterns.max() > hi):
            raise ValueError(f"Assoc 'patterns' must hold values in {lo}..{hi}")
        self.patterns = patterns.astype(np.int64)
        #: Cycles from a query handshake to its result when nothing stalls.
        self.latency = self.slots + 10 + self.top_k + self.merge_cycles
        #: Cycles per query, sustained.
        self.interval = max(self.slots, self.merge_cycles + 1)
        #: Cycles one query holds the scanner when nothing stalls (the simulation harness
        #: sizes its cycle budget with it: a scan of 128 rows is far above its default).
        self.max_cycles_per_beat = self.interval
        top = self.top_k
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "q": self.code_layout, "first": 1, "last": 1}))),
            "w": In(stream.Signature(data.StructLayout({
                "addr": range(self.K), "code": self.code_layout}))),
            "o": Out(stream.Signature(data.StructLayout({
                "index": data.ArrayLayout(range(self.K), top),
                "score": data.ArrayLayout(self.score_shape, top),
                "err": 1, "first": 1, "last": 1}))),
        })


    def elaborate(self, platform):
        m = Module()
        B, R, P, K, top = self.banks, self.rows, self.slots, self.K, self.top_k
        bank_bits = (B - 1).bit_length()
        ternary = self.kind == "ternary"

        # The pipeline's enable, ~(hand_off & merge_busy) below, is registered: computed a
        # cycle ahead from the next values of those registers, so its large fanout starts at a
        # flip-flop.
        advance = Signal(init=1)
        advance_next = Signal()

        # S0: the scanner. It holds the query and walks the rows, one read per cycle.
        busy = Signal()
        row = Signal(range(P))
        q0 = Signal(self.code_layout)
        f0, l0 = Signal(name="f0"), Signal(name="l0")
        # row == P - 1 kept as a register, and so are `~busy | last_row` and `w.ready` (computed
        # a cycle ahead from the next values): `i.ready` is one gate from flip-flops.
        last_row = Signal(init=P == 1)
        idle, w_ready = Signal(init=1), Signal(init=1)      # ~busy | last_row; ~busy & advance
        i_ready = Signal()
        m.d.comb += i_ready.eq(idle & advance)
        start = self.i.valid & i_ready
        step = advance & busy
        busy_next = Mux(start, 1, Mux(step & last_row, 0, busy))
        last_next = Mux(start | (step & last_row), P == 1,
                        Mux(step, row == P - 2 if P > 1 else 1, last_row))
        m.d.comb += [self.i.ready.eq(i_ready), self.w.ready.eq(w_ready)]
        m.d.sync += [busy.eq(busy_next), last_row.eq(last_next),
                     idle.eq(~busy_next | last_next), w_ready.eq(advance_next & ~busy_next)]
        with m.If(step):
            m.d.sync += row.eq(Mux(last_row, 0, row + 1))
        with m.If(start):
            m.d.sync += row.eq(0)
        # Loaded whenever a query could be accepted, valid or not: a scan reads `q0` only
        # while busy, and the last row's read is issued at the edge that reloads it.
        with m.If(i_ready):
            m.d.sync += [q0.eq(self.i.payload.q), f0.eq(self.i.payload.first),
                         l0.eq(self.i.payload.last)]

        # Writes are registered before the memory (the write enables reach every block RAM of
        # the design), and so is the row address: a write accepted in the same cycle as a
        # query still lands before that query's first read. A write accepted before a stall
        # must not be lost, so the write port ignores the RAM's enable. A write to addr >= K
        # (possible on the wire when K is not a power of two) is accepted and dropped: it must
        # not alias onto a stored pattern.
        in_range = self.w.payload.addr < self.K
        width = Shape.cast(self.code_layout).width
        w_en = Signal(B)
        w_row = Signal(range(max(R, 2)))
        w_code = Signal(width)
        r_row = Signal(range(max(R, 2)))
        m.d.sync += [w_en.eq(Cat((self.w.payload.addr[:bank_bits] == b if B > 1 else 1)
                                 & self.w.valid & self.w.ready & in_range for b in range(B))),
                     w_row.eq(self.w.payload.addr[bank_bits:]), w_code.eq(self.w.payload.code)]
        with m.If(advance):
            m.d.sync += r_row.eq(row)
        reads = []
        for b in range(B):
            init = [self.code_layout.const(self.patterns[r * B + b].tolist()).as_value().value
                    for r in range(R)]
            # Block RAM with its output register (on ECP5): the row address is sampled at one
            # enabled edge, the code appears after the next (`reads`). The read side is
            # enabled with the pipeline. Writes only happen while no query is scanned, and a
            # read sampled with a write is a pipeline bubble, so read-during-write never
            # matters.
            ram = PipelinedRAM(width=width, depth=max(R, 2), init=init, write_ce=False,
                               wide=True)
            m.submodules[f"bank{b}"] = ram
            m.d.comb += [ram.ce.eq(advance), ram.w_en.eq(w_en[b]), ram.w_addr.eq(w_row),
                         ram.w_data.eq(w_code), ram.r_addr.eq(r_row)]
            reads.append(data.View(self.code_layout, ram.r_data))

        def meta(name, **extra):
            return Signal(data.StructLayout({"valid": 1, "row": range(R), "cand": 1,
                                             "last_row": 1, "first": 1, "last": 1, **extra}),
                          name=name)

        # S0: the row address register; S0b: the RAM samples it; S1: the rows arrive from
        # memory during this stage.
        s0 = meta("s0", q=self.code_layout)
        s0b = meta("s0b", q=self.code_layout)
        s1 = meta("s1", q=self.code_layout)
        with m.If(advance):
            m.d.sync += [s0.valid.eq(busy), s0.row.eq(row), s0.cand.eq(row < R),
                         s0.last_row.eq(last_row), s0.first.eq(f0), s0.last.eq(l0),
                         s0.q.eq(q0), s0b.eq(s0), s1.eq(s0b)]

        def copy(dst, src):
            return [dst.valid.eq(src.valid), dst.row.eq(src.row), dst.cand.eq(src.cand),
                    dst.last_row.eq(src.last_row), dst.first.eq(src.first), dst.last.eq(src.last)]

        # S2: element products as match bits; S3: sums of two or four products; S4 and S4b:
        # partial sums of up to three terms; S5: one score per bank. A sum of three terms is
        # one level of full adders (LUTs) and a carry chain.
        if ternary:
            D = self.D
            quads = [range(g, min(g + 4, D)) for g in range(0, D, 4)]
            groups = [range(g, min(g + 3, len(quads))) for g in range(0, len(quads), 3)]
            part_shape = signed((12).bit_length() + 1)
            s2 = meta("s2", err=1, pos=data.ArrayLayout(unsigned(D), B),
                      neg=data.ArrayLayout(unsigned(D), B))
            s3 = meta("s3", err=1, quad=data.ArrayLayout(
                data.ArrayLayout(signed(4), len(quads)), B))
            s4 = meta("s4", err=1, part=data.ArrayLayout(
                data.ArrayLayout(part_shape, len(groups)), B))
            # The sum of two elements' products, -2..2, from their four match bits: a table,
            # so that it maps to one level of LUTs rather than to adders.
            pair_table = Array(C((i & 1) - (i >> 1 & 1) + (i >> 2 & 1) - (i >> 3 & 1),
                                 signed(3)) for i in range(16))

            def pair(b, js):
                bits = Cat(*[Cat(s2.pos[b][j], s2.neg[b][j]) for j in js])
                return pair_table[bits]

            with m.If(advance):
                m.d.sync += copy(s2, s1)
                # Bit 0 of a 2-bit code is set for +1 and -1 only, so 0b10 counts as 0.
                m.d.sync += s2.err.eq(Cat(Value.cast(s1.q[j]).as_unsigned() == 0b10
                                          for j in range(D)).any())
                for b in range(B):
                    for j in range(D):
                        qv, pv = Value.cast(s1.q[j]), Value.cast(reads[b][j])
                        both = qv[0] & pv[0]
                        m.d.sync += [s2.pos[b][j].eq(both & ~(qv[1] ^ pv[1])),
                                     s2.neg[b][j].eq(both & (qv[1] ^ pv[1]))]
                m.d.sync += [*copy(s3, s2), s3.err.eq(s2.err)]
                for b in range(B):
                    for g, js in enumerate(quads):
                        m.d.sync += s3.quad[b][g].eq(_tree_sum(
                            [pair(b, js[i:i + 2]) for i in range(0, len(js), 2)]))
                m.d.sync += [*copy(s4, s3), s4.err.eq(s3.err)]
                for b in range(B):
                    for g, ks in enumerate(groups):
                        m.d.sync += s4.part[b][g].eq(_tree_sum([s3.quad[b][k] for k in ks]))
            parts = [[s4.part[b][g] for g in range(len(groups))] for b in range(B)]
            err4 = s4.err
        else:
            N = self.N
            table = assoc_pair_table(self.alpha, self.frac, N)
            row_shape = unsigned(max(1, sum(table[0]).bit_length()))
            halves = [range(l, min(l + 2, N)) for l in range(0, N, 2)]
            s2 = meta("s2", match=data.ArrayLayout(unsigned(N * N), B))
            s3 = meta("s3", half=data.ArrayLayout(
                data.ArrayLayout(data.ArrayLayout(row_shape, len(halves)), N), B))
            s4 = meta("s4", part=data.ArrayLayout(data.ArrayLayout(row_shape, N), B))
            with m.If(advance):
                m.d.sync += copy(s2, s1)
                for b in range(B):
                    for k in range(N):
                        for l in range(N):
                            m.d.sync += s2.match[b][k * N + l].eq(s1.q[k] == reads[b][l])
                m.d.sync += copy(s3, s2)
                for b in range(B):
                    for k in range(N):
                        for h, ls in enumerate(halves):
                            m.d.sync += s3.half[b][k][h].eq(_tree_sum(
                                [Mux(s2.match[b][k * N + l], table[k][l], 0) for l in ls]))
                m.d.sync += copy(s4, s3)
                for b in range(B):
                    for k in range(N):
                        m.d.sync += s4.part[b][k].eq(_tree_sum(
                            [s3.half[b][k][h] for h in range(len(halves))]))
            parts = [[s4.part[b][k] for k in range(N)] for b in range(B)]
            err4 = C(0)

        threes = [range(g, min(g + 3, len(parts[0]))) for g in range(0, len(parts[0]), 3)]
        s4b = meta("s4b", err=1, part=data.ArrayLayout(
            data.ArrayLayout(self.score_shape, len(threes)), B))
        with m.If(advance):
            m.d.sync += [*copy(s4b, s4), s4b.err.eq(err4)]
            for b in range(B):
                for t, ks in enumerate(threes):
                    m.d.sync += s4b.part[b][t].eq(_tree_sum([parts[b][k] for k in ks]))
        sums = [_tree_sum([s4b.part[b][t] for t in range(len(threes))]) for b in range(B)]

        s5 = meta("s5", err=1, score=data.ArrayLayout(self.score_shape, B))
        with m.If(advance):
            m.d.sync += copy(s5, s4b)
            m.d.sync += s5.err.eq(s4b.err)
            for b in range(B):
                m.d.sync += s5.score[b].eq(sums[b])

        # Per-bank best lists, each a systolic chain of `top` cells: a candidate meets cell 0
        # in the cycle after its score, and at cell p the better of the two (full order:
        # valid, score, then lower row) stays while the other moves on to cell p+1 a cycle
        # later; the last cell's loser drops out. A cell's logic is one comparison and a 2:1
        # select, whatever `top`. A query's marker travels down the chain with its last slot;
        # where it passes, the cell's result goes to `final` and the cell empties for the next
        # query (whose candidates follow right behind). The scanner pads a query to at least
        # `top` slots so that the next marker never overwrites a final entry before the merge
        # has taken it.
        def beats(x, c, ix, ic):
            """``x`` before ``c``: valid, then higher score, then lower index. One subtraction,
            its borrow the result; the operands trade their index fields (lower wins) and, for
            signed scores, their sign bits (signed order as unsigned), so that no bit is
            inverted outside the carry chain."""
            xs, cs = x.score.as_unsigned(), c.score.as_unsigned()
            if ternary:
                xs, cs = Cat(xs[:-1], cs[-1]), Cat(cs[:-1], xs[-1])
            a, b = Cat(ic, xs, x.valid), Cat(ix, cs, c.valid)
            return (b - a)[-1]

        bentry = data.StructLayout({"valid": 1, "score": self.score_shape, "row": range(R)})
        tag = data.StructLayout({"valid": 1, "first": 1, "last": 1, "err": 1})
        # marks[p]: the marker at cell p (marks[0] from S5); marks[top] is the hand-off.
        marks = [Signal(tag, name=f"mark{p}") for p in range(top + 1)]
        m.d.comb += [marks[0].valid.eq(s5.valid & s5.last_row), marks[0].first.eq(s5.first),
                     marks[0].last.eq(s5.last), marks[0].err.eq(s5.err)]
        with m.If(advance):
            m.d.sync += [marks[p + 1].eq(marks[p]) for p in range(top)]
        finals = [Signal(data.ArrayLayout(bentry, top), name=f"final{b}") for b in range(B)]
        # S5's "a real row" bit, one flip-flop per bank, each placed by its bank's cells.
        cand_valid = replicated_register(m, platform, s4b.valid & s4b.cand, B,
                                         name="cand_valid", enable=advance)
        for b in range(B):
            cells = [Signal(bentry, name=f"cell{b}_{p}") for p in range(top)]
            moving = [Signal(bentry, name=f"moving{b}_{p}") for p in range(top)]
            m.d.comb += [moving[0].valid.eq(cand_valid[b]), moving[0].score.eq(s5.score[b]),
                         moving[0].row.eq(s5.row)]
            for p in range(top):
                x, c = moving[p], cells[p]
                win = Signal(name=f"win{b}_{p}")
                m.d.comb += win.eq(beats(x, c, x.row, c.row))
                keep = Mux(win, x, c)
                with m.If(advance):
                    m.d.sync += c.eq(keep)
                    if p + 1 < top:
                        m.d.sync += moving[p + 1].eq(Mux(win, c, x))
                    with m.If(marks[p].valid):
                        # Only the valid bit is cleared: the marker is then an input of one
                        # flip-flop's select, not of every bit's.
                        m.d.sync += [finals[b][p].eq(keep), c.valid.eq(0)]

        # Merge: a chain of `top` cells like the banks', loaded with bank 0's final list;
        # every entry of the other banks follows one per cycle from a shift queue (zeros, i.e.
        # empty entries, shift in behind), compared on the full order (valid, score, lower
        # index). `count` covers the feed and the chain's drain; then the cells hold the
        # result. The chain itself never stalls.
        entry = data.StructLayout({"valid": 1, "score": self.score_shape, "index": range(K)})

        def widen(dst, e, b):
            return [dst.valid.eq(e.valid), dst.score.eq(e.score),
                    dst.index.eq(Cat(C(b, bank_bits), e.row))]

        merged = [Signal(entry, name=f"merged{p}") for p in range(top)]
        flowing = [Signal(entry, name=f"flowing{p}") for p in range(top)]
        queue = Signal(data.ArrayLayout(entry, max(1, (B - 1) * top)))
        count = Signal(range(self.merge_cycles + 1))
        # count == 0 and count == 1, kept as registers: the pipeline enable is computed from
        # them a cycle ahead.
        count_zero, count_one = Signal(init=1), Signal()
        mvalid, mfirst, mlast, merr = (Signal(name=n) for n in
                                       ("mvalid", "mfirst", "mlast", "merr"))
        hand_off = marks[top].valid
        take = Signal()                 # advance & hand_off, registered like advance
        o_free = ~self.o.valid | self.o.ready
        send = mvalid & count_zero & o_free
        # The merge takes the next lists at the edge where it sends its result (the cells are
        # read and reloaded at once), provided that the output register is known to be empty
        # then: `advance` is decided a cycle ahead, so its ready cannot be waited for.
        hand_off_next = Mux(advance, marks[top - 1].valid, hand_off)
        mvalid_next = Mux(take, 1, Mux(send, 0, mvalid))
        counting = mvalid & ~count_zero
        zero_next = Mux(take, self.merge_cycles == 0, Mux(counting, count_one, count_zero))
        one_next = Mux(take, self.merge_cycles == 1, Mux(counting, count == 2, count_one))
        m.d.sync += [count_zero.eq(zero_next), count_one.eq(one_next)]
        o_valid_next = send | (self.o.valid & ~self.o.ready)
        merge_busy = mvalid_next & ~(zero_next & ~o_valid_next)
        m.d.comb += advance_next.eq(~(hand_off_next & merge_busy))
        m.d.sync += [advance.eq(advance_next), take.eq(hand_off_next & ~merge_busy)]

        m.d.comb += flowing[0].eq(queue[0])
        for p in range(top):
            y, c = flowing[p], merged[p]
            win = Signal(name=f"mwin{p}")
            m.d.comb += win.eq(beats(y, c, y.index, c.index))
            if p + 1 < top:
                m.d.sync += flowing[p + 1].eq(Mux(win, c, y))
            with m.If(take):
                m.d.sync += widen(c, finals[0][p], 0)
            with m.Else():
                m.d.sync += c.eq(Mux(win, y, c))
        with m.If(take):
            for b in range(1, B):
                for p in range(top):
                    m.d.sync += widen(queue[(b - 1) * top + p], finals[b][p], b)
        with m.Else():
            m.d.sync += [queue[n].eq(queue[n + 1]) for n in range(len(queue) - 1)]
            m.d.sync += queue[len(queue) - 1].eq(0)

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(mvalid):
            with m.If(~count_zero):
                m.d.sync += count.eq(count - 1)
            with m.Elif(send):
                m.d.sync += [mvalid.eq(0), self.o.valid.eq(1), self.o.payload.err.eq(merr),
                             self.o.payload.first.eq(mfirst), self.o.payload.last.eq(mlast)]
                for p in range(top):
                    m.d.sync += [self.o.payload.index[p].eq(merged[p].index),
                                 self.o.payload.score[p].eq(merged[p].score)]
        with m.If(take):
            m.d.sync += [mvalid.eq(1), count.eq(self.merge_cycles), mfirst.eq(marks[top].first),
                         mlast.eq(marks[top].last), merr.eq(marks[top].err)]
        return m
