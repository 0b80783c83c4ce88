"""Associative memory: ``K`` stored codes in block RAM, best matches by integer dot product.

The equations and the parameter rules are on :class:`Assoc`.
"""

from numbers import Integral

import numpy as np
from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .ecp5_ram import PipelinedRAM

__all__ = ["Assoc", "ASSOC_PARAMS", "BRAM_BITS", "check_assoc_params", "assoc_pair_table"]

#: Names of the associative-memory parameters, in the order they are validated.
ASSOC_PARAMS = ("K", "D", "kind", "N", "alpha", "frac", "banks", "top_k")
KINDS = ("rank", "ternary")
#: Block RAM of the largest target, an LFE5U-85F: 208 DP16KD of 18 Kbit.
BRAM_BITS = 208 * 18 * 1024
#: Ternary elements summed per first-level adder group.
GROUP = 16


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

    Timing: a query scans ``R = K/banks`` rows, one per cycle, through a 6-stage pipeline; then
    the per-bank best lists are merged in ``(banks-1)*top_k`` cycles while the next query is
    already being scanned. Sustained, a query takes :attr:`interval` =
    ``max(R, (banks-1)*top_k + 2)`` cycles; its result is valid :attr:`latency` =
    ``R + 8 + (banks-1)*top_k`` cycles after the query handshake when nothing stalls.
    The pipeline stalls as a whole while the merge or the output are full; ``o.valid`` never
    depends on ``o.ready``. Reset empties the pipeline and keeps the memory contents.
    """

    def __init__(self, *, patterns=None, **params):
        params = check_assoc_params(**params)
        self.params = params
        for key, value in params.items():
            setattr(self, key, value)
        self.rows = self.K // self.banks
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
        self.latency = self.rows + 8 + (self.banks - 1) * self.top_k
        #: Cycles per query, sustained.
        self.interval = max(self.rows, (self.banks - 1) * self.top_k + 2)
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
        B, R, K, top = self.banks, self.rows, self.K, self.top_k
        bank_bits = (B - 1).bit_length()
        ternary = self.kind == "ternary"
        entry = data.StructLayout({"valid": 1, "score": self.score_shape, "index": range(K)})

        # The pipeline's enable, ~(hand_off & mvalid) below, is registered: computed a cycle
        # ahead from the next values of those registers, so its large fanout starts at a
        # flip-flop.
        advance = Signal(init=1)

        # S0: the scanner. It holds the query and walks the rows, one read per cycle.
        busy = Signal()
        row = Signal(range(R))
        q0 = Signal(self.code_layout)
        f0, l0 = Signal(name="f0"), Signal(name="l0")
        last_row = Signal()
        m.d.comb += last_row.eq(row == R - 1)
        m.d.comb += self.i.ready.eq(advance & (~busy | last_row))
        m.d.comb += self.w.ready.eq(~busy & advance)
        with m.If(advance & busy):
            m.d.sync += row.eq(row + 1)
            with m.If(last_row):
                m.d.sync += [busy.eq(0), row.eq(0)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [busy.eq(1), row.eq(0), q0.eq(self.i.payload.q),
                         f0.eq(self.i.payload.first), l0.eq(self.i.payload.last)]

        # A write to addr >= K (possible on the wire when K is not a power of two) is
        # accepted and dropped: it must not alias onto a stored pattern.
        in_range = self.w.payload.addr < self.K
        width = Shape.cast(self.code_layout).width
        reads = []
        for b in range(B):
            init = [self.code_layout.const(self.patterns[r * B + b].tolist()).as_value().value
                    for r in range(R)]
            # Block RAM with its output register (on ECP5): the row address is sampled at one
            # enabled edge, the code appears after the next (`reads`). The RAM is enabled with
            # the pipeline; writes only happen while no query is scanned (`w.ready` above
            # includes `advance`, so no write meets a disabled RAM), and a read sampled with
            # a write is a pipeline bubble, so read-during-write never matters.
            ram = PipelinedRAM(width=width, depth=max(R, 2), init=init)
            m.submodules[f"bank{b}"] = ram
            m.d.comb += [
                ram.ce.eq(advance),
                ram.w_en.eq(self.w.valid & self.w.ready & in_range
                            & (self.w.payload.addr[:bank_bits] == b if B > 1 else 1)),
                ram.w_addr.eq(self.w.payload.addr[bank_bits:]),
                ram.w_data.eq(self.w.payload.code),
                ram.r_addr.eq(row),
            ]
            reads.append(data.View(self.code_layout, ram.r_data))

        def meta(name, **extra):
            return Signal(data.StructLayout({"valid": 1, "row": range(R), "first_row": 1,
                                             "last_row": 1, "first": 1, "last": 1, **extra}),
                          name=name)

        # S1: the rows arrive from memory during this stage; S1b registers them.
        s0 = meta("s0", q=self.code_layout)
        s1 = meta("s1", q=self.code_layout)
        with m.If(advance):
            m.d.sync += [s0.valid.eq(busy), s0.row.eq(row), s0.first_row.eq(row == 0),
                         s0.last_row.eq(last_row), s0.first.eq(f0), s0.last.eq(l0),
                         s0.q.eq(q0), s1.eq(s0)]

        def copy(dst, src):
            return [dst.valid.eq(src.valid), dst.row.eq(src.row), dst.first_row.eq(src.first_row),
                    dst.last_row.eq(src.last_row), dst.first.eq(src.first), dst.last.eq(src.last)]

        # S2: element products as match bits; S3: partial sums; S4: one score per bank.
        if ternary:
            D = self.D
            groups = [range(g, min(g + GROUP, D)) for g in range(0, D, GROUP)]
            part_shape = signed(GROUP.bit_length() + 1)
            s2 = meta("s2", err=1, pos=data.ArrayLayout(unsigned(D), B),
                      neg=data.ArrayLayout(unsigned(D), B))
            parts = data.ArrayLayout(part_shape, len(groups))
            s3 = meta("s3", err=1, part=data.ArrayLayout(parts, B))
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
                m.d.sync += copy(s3, s2)
                m.d.sync += s3.err.eq(s2.err)
                for b in range(B):
                    for g, js in enumerate(groups):
                        m.d.sync += s3.part[b][g].eq(
                            _tree_sum([s2.pos[b][j].as_unsigned() for j in js])
                            - _tree_sum([s2.neg[b][j].as_unsigned() for j in js]))
            sums = [_tree_sum([s3.part[b][g] for g in range(len(groups))]) for b in range(B)]
            err3 = s3.err
        else:
            N = self.N
            table = assoc_pair_table(self.alpha, self.frac, N)
            row_shape = unsigned(max(1, sum(table[0]).bit_length()))
            s2 = meta("s2", match=data.ArrayLayout(unsigned(N * N), B))
            s3 = meta("s3", part=data.ArrayLayout(data.ArrayLayout(row_shape, N), B))
            with m.If(advance):
                m.d.sync += copy(s2, s1)
                for b in range(B):
                    for k in range(N):
                        for l in range(N):
                            m.d.sync += s2.match[b][k * N + l].eq(s1.q[k] == reads[b][l])
                m.d.sync += copy(s3, s2)
                for b in range(B):
                    for k in range(N):
                        m.d.sync += s3.part[b][k].eq(_tree_sum(
                            [Mux(s2.match[b][k * N + l], table[k][l], 0) for l in range(N)]))
            sums = [_tree_sum([s3.part[b][k] for k in range(N)]) for b in range(B)]
            err3 = C(0)

        s4 = meta("s4", err=1, score=data.ArrayLayout(self.score_shape, B))
        with m.If(advance):
            m.d.sync += copy(s4, s3)
            m.d.sync += s4.err.eq(err3)
            for b in range(B):
                m.d.sync += s4.score[b].eq(sums[b])

        # Per-bank best lists, sorted. Candidates of a bank come in increasing index order,
        # so a candidate goes before an entry only with a strictly higher score. A query's
        # last row moves the finished list to `final` and empties the list for the next
        # query, so a first row needs no select: the list is already empty.
        lists = [Signal(data.ArrayLayout(entry, top), name=f"list{b}") for b in range(B)]
        finals = [Signal(data.ArrayLayout(entry, top), name=f"final{b}") for b in range(B)]
        for b in range(B):
            cand = Signal(entry, name=f"cand{b}")
            m.d.comb += [cand.valid.eq(1), cand.score.eq(s4.score[b]),
                         cand.index.eq(Cat(C(b, bank_bits), s4.row))]
            old = lists[b]
            new = Signal(data.ArrayLayout(entry, top), name=f"new{b}")
            gt = [~old[p].valid | (cand.score > old[p].score) for p in range(top)]
            for p in range(top):
                below = old[p - 1] if p else cand
                m.d.comb += new[p].eq(Mux(gt[p], Mux(gt[p - 1], below, cand) if p else cand,
                                          old[p]))
            with m.If(advance & s4.valid):
                with m.If(s4.last_row):
                    m.d.sync += [lists[b].eq(0), finals[b].eq(new)]
                with m.Else():
                    m.d.sync += lists[b].eq(new)

        # S5: the finished lists wait in `final` for the merge unit.
        s5 = Signal(data.StructLayout({"valid": 1, "first": 1, "last": 1, "err": 1}), name="s5")
        with m.If(advance):
            m.d.sync += [s5.valid.eq(s4.valid & s4.last_row), s5.first.eq(s4.first),
                         s5.last.eq(s4.last), s5.err.eq(s4.err)]

        # Merge: the final list of bank 0, then every entry of the other banks inserted one per
        # cycle from a shift queue, with the full order (score, then lower index).
        merged = Signal(data.ArrayLayout(entry, top))
        queue = Signal(data.ArrayLayout(entry, max(1, (B - 1) * top)))
        count = Signal(range((B - 1) * top + 1))
        mvalid, mfirst, mlast, merr = (Signal(name=n) for n in
                                       ("mvalid", "mfirst", "mlast", "merr"))
        hand_off = s5.valid
        o_free = ~self.o.valid | self.o.ready
        hand_off_next = Mux(advance, s4.valid & s4.last_row, hand_off)
        mvalid_next = Mux(advance & hand_off, 1,
                          Mux(mvalid & (count == 0) & o_free, 0, mvalid))
        m.d.sync += advance.eq(~(hand_off_next & mvalid_next))

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(mvalid):
            with m.If(count != 0):
                head = queue[0]
                gt = [head.valid & (~merged[p].valid | (head.score > merged[p].score)
                                    | ((head.score == merged[p].score)
                                       & (head.index < merged[p].index)))
                      for p in range(top)]
                for p in range(top):
                    below = merged[p - 1] if p else head
                    m.d.sync += merged[p].eq(Mux(gt[p], Mux(gt[p - 1], below, head) if p
                                                 else head, merged[p]))
                for n in range(len(queue) - 1):
                    m.d.sync += queue[n].eq(queue[n + 1])
                m.d.sync += count.eq(count - 1)
            with m.Elif(o_free):
                m.d.sync += [mvalid.eq(0), self.o.valid.eq(1), self.o.payload.err.eq(merr),
                             self.o.payload.first.eq(mfirst), self.o.payload.last.eq(mlast)]
                for p in range(top):
                    m.d.sync += [self.o.payload.index[p].eq(merged[p].index),
                                 self.o.payload.score[p].eq(merged[p].score)]
        with m.If(advance & hand_off):
            m.d.sync += [mvalid.eq(1), merged.eq(finals[0]), count.eq((B - 1) * top),
                         mfirst.eq(s5.first), mlast.eq(s5.last), merr.eq(s5.err)]
            for b in range(1, B):
                for p in range(top):
                    m.d.sync += queue[(b - 1) * top + p].eq(finals[b][p])
        return m
