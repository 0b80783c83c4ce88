"""The Spiking Manifesto's attention LUT with the V-index cache."""

import numpy as np
from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .lut import (MAX_INDEX_BITS, RowMemory, _int, add_tree, check_anchors, check_lut_params,
                  check_tables, const_lookup, pack_words)
from .ecp5_ram import replicated_register
from .stream import SkidBuffer, skid_ready_next

__all__ = ["LUTAttention", "check_lut_attention_params"]


def check_lut_attention_params(*, n, x_width, n_t, n_c, p, ctx, y_dim, w_width, y_width=None,
                               banks=1, causal_self=False):
    """Validate the attention LUT's parameters; return them normalised (``y_width`` filled in).

    The index ``J`` has ``2*n_c + p`` bits, at most :data:`MAX_INDEX_BITS`. ``y_width`` must be
    at least ``w_width + ceil(log2(n_t * keys))`` with ``keys = ctx - 1`` (``ctx`` with
    ``causal_self``), the most rows summed into one output.
    """
    who = "LUT attention"
    if not isinstance(causal_self, bool):
        raise TypeError(f"{who} parameter 'causal_self' must be a bool, not {causal_self!r}")
    p = _int(who, "p", p, 0, 8)
    ctx = _int(who, "ctx", ctx, 2, 1024)
    n_c = _int(who, "n_c", n_c, 1, MAX_INDEX_BITS)
    if 2 * n_c + p > MAX_INDEX_BITS:
        raise ValueError(f"{who} index width 2*n_c + p must be at most {MAX_INDEX_BITS}, "
                         f"not {2 * n_c + p} (n_c={n_c}, p={p})")
    n_t = _int(who, "n_t", n_t, 1, 256)
    keys = ctx if causal_self else ctx - 1
    out = check_lut_params(n=n, x_width=x_width, n_t=n_t, n_c=n_c, y_dim=y_dim,
                           w_width=w_width, y_width=y_width, banks=banks, who=who,
                           acc_terms=n_t * keys)
    out.update(p=p, ctx=ctx, causal_self=causal_self)
    return out


class LUTAttention(wiring.Component):
    """Attention LUT: every position attends its earlier positions through one table row each.

    For position ``i`` of a sequence with latency vector ``x_i``, per table ``t``::

        jV_i[t] = sum_r [x_i[a_tr] - x_i[b_tr] > 0] * 2**r         (hashed once, cached)
        z_i     = sum_{j in keys(i)} sum_t V_t[(jV_i[t] << (n_c+p)) | (jV_j[t] << p) | jPE_t[i-j]]

    ``keys(i)`` are the earlier positions of the same sequence, ``j < i`` (``j <= i`` with
    ``causal_self``), **limited to the ``ctx - 1`` most recent** (``i - j <= ctx - 1``): beyond
    the context length the attention slides, the oldest key dropping out as each new position
    arrives. Query and key share the anchors; ``jPE_t[d]`` is a ``p``-bit code per table and
    relative distance ``d`` (``d = 1..ctx-1``, or ``0..ctx-1`` with ``causal_self``).
    Integers only; ``z`` is exact (``y_width >= w_width + ceil(log2(n_t * keys))`` is enforced,
    ``keys = ctx - 1``, or ``ctx`` with ``causal_self``).

    Parameters
    ----------
    n, x_width, n_t, n_c, y_dim, w_width, banks :
        As for :class:`~spikeforge.rtl.lut.LUT`.
    p : int
        Positional code bits per table, 0..8; ``2*n_c + p <= 16``.
    ctx : int
        Context length, 2..1024: the cache holds ``ctx`` positions.
    y_width : int or None
        Signed output width; default (and minimum) ``w_width + ceil(log2(n_t * keys))``.
    causal_self : bool
        Attend ``j <= i`` (the query attends itself at distance 0) instead of ``j < i``.
    anchors : int array ``(n_t, n_c, 2)``
        Initial anchor pairs, shared by queries and keys.
    tables : int array ``(n_t, 2**(2*n_c+p), y_dim)``
        Initial value tables ``V_t``, signed ``w_width``-bit.
    pe : int array ``(n_t, D)``
        Initial positional codes, ``0..2**p-1``; column ``d - d_min`` is distance ``d``
        (``D = ctx - 1``, ``d_min = 1``; with ``causal_self`` ``D = ctx``, ``d_min = 0``).

    Members
    -------
    i : ``In(stream.Signature(StructLayout({"x": ArrayLayout(signed(x_width), n), "first": 1, "last": 1})))``
        One position per beat. ``first`` starts a sequence (position 0; the first beat after
        reset always does); ``last`` only travels to the output.
    w : ``In(stream.Signature(StructLayout({"kind": 2, "table": range(n_t), "addr": unsigned(2*n_c+p), "y": ArrayLayout(signed(w_width), y_dim), "a": ArrayLayout(range(n), n_c), "b": ArrayLayout(range(n), n_c), "pe": unsigned(p)})))``
        Run-time rewrites: ``kind`` 0 writes ``V_table[addr] = y``; 1 writes the anchors of
        ``table``; 2 writes ``jPE_table[addr] = pe`` (``addr = d - d_min``). Dropped whole:
        ``kind`` 3, a table ``>= n_t``, anchors with ``a[r] == b[r]`` or an index ``>= n``, a
        code ``addr >= D``. ``w.ready`` is high only while no position is in flight, and a
        pending write holds ``i.ready`` low, so a write affects exactly the positions accepted
        after it. Cached ``jV`` of earlier positions are not recomputed by an anchor write.
    o : ``Out(stream.Signature(StructLayout({"z": ArrayLayout(signed(y_width), y_dim), "jv": ArrayLayout(unsigned(n_c), n_t), "first": 1, "last": 1})))``
        One beat per position, in order: ``z_i`` and the position's own ``jV_i``.

    Timing: per position ``K = n_t/banks`` hashing cycles then ``K`` cycles per key, i.e.
    ``K * (1 + keys(i))`` cycles, ``keys(i) = min(i, ctx-1)`` (``min(i, ctx-1) + 1`` with
    ``causal_self``); each bank reads and accumulates one ``V`` row per cycle. Latency from the
    handshake of position ``i`` to its ``o.valid``: ``K * (1 + keys(i)) + 12 + ceil(log2(banks))``
    cycles without stalls (every block RAM output is registered before any logic; the adder
    tree over the banks has a register per level; the output leaves through a two-entry skid
    buffer, so the pipeline's enable is a flip-flop). A write beat is taken into a register
    and lands two cycles after its handshake; no input is taken meanwhile. The pipeline stalls
    as a whole while its skid buffer is full (``o`` held by backpressure); ``i.ready`` depends on
    neither ``i.valid`` nor the payload; results never depend on gaps or backpressure.

    Reset: the pipeline empties and the next beat starts a sequence. Memories keep their
    contents (initially ``anchors``, ``tables``, ``pe``).
    """

    def __init__(self, *, n, x_width, n_t, n_c, p, ctx, y_dim, w_width, y_width=None, banks=1,
                 causal_self=False, anchors, tables, pe):
        params = check_lut_attention_params(
            n=n, x_width=x_width, n_t=n_t, n_c=n_c, p=p, ctx=ctx, y_dim=y_dim, w_width=w_width,
            y_width=y_width, banks=banks, causal_self=causal_self)
        self.params = params
        for key, value in params.items():
            setattr(self, key, value)
        who = "LUT attention"
        self.anchors = check_anchors(who, anchors, n=n, n_t=n_t, n_c=n_c)
        self.index_width = 2 * n_c + p
        self.tables = check_tables(who, "tables", tables,
                                   (n_t, 2 ** self.index_width, y_dim), w_width)
        self.d_min = 0 if causal_self else 1
        self.D = ctx - self.d_min
        self.pe = check_tables(who, "pe", pe, (n_t, self.D), 25)
        bad = np.argwhere((self.pe < 0) | (self.pe >= 2 ** p))
        if len(bad):
            where = tuple(int(v) for v in bad[0])
            raise ValueError(f"{who} pe code {self.pe[where]} at {where} is outside "
                             f"0..{2 ** p - 1} ({p}-bit)")
        self.K = n_t // self.banks
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "x": data.ArrayLayout(signed(x_width), n), "first": 1, "last": 1}))),
            "w": In(stream.Signature(data.StructLayout({
                "kind": 2, "table": range(n_t), "addr": unsigned(self.index_width),
                "y": data.ArrayLayout(signed(w_width), y_dim),
                "a": data.ArrayLayout(range(n), n_c), "b": data.ArrayLayout(range(n), n_c),
                "pe": unsigned(p)}))),
            "o": Out(stream.Signature(data.StructLayout({
                "z": data.ArrayLayout(signed(self.y_width), y_dim),
                "jv": data.ArrayLayout(unsigned(n_c), n_t), "first": 1, "last": 1}))),
        })

    def cycles(self, i):
        """Cycles the core spends on position ``i`` (0-based within its sequence)."""
        return self.K * (1 + min(i, self.ctx - 1) + (1 if self.causal_self else 0))

    def latency(self, i):
        """Cycles from the input handshake of position ``i`` to its ``o.valid``, no stalls."""
        return self.cycles(i) + 12 + ceil_log2(self.banks)

    def elaborate(self, platform):
        m = Module()
        n, n_c, p, B, K, ctx = self.n, self.n_c, self.p, self.banks, self.K, self.ctx
        ab = Shape.cast(range(n)).width
        ww, yd, IW = self.w_width, self.y_dim, self.index_width
        kb = ceil_log2(K)

        # Per bank: anchors (K rows), V tables (address Cat(J, k)), the jV cache (address
        # Cat(k, slot)) and the positional codes (address Cat(k, d - d_min)).
        amems, vmems, cmems, pmems = [], [], [], []
        for b in range(B):
            ts = list(range(b, self.n_t, B))
            amems.append(RowMemory(m, f"anchors{b}", width=2 * ab * n_c, depth=K,
                                   init=pack_words(self.anchors[ts].reshape(K, 2 * n_c), ab),
                                   shared_addr=True))
            vmems.append(RowMemory(m, f"tables{b}", width=ww * yd, depth=K << IW,
                                   init=pack_words(self.tables[ts].reshape(K << IW, yd), ww),
                                   shared_addr=True, platform=platform, registered=True))
            cmems.append(RowMemory(m, f"cache{b}", width=n_c, depth=ctx << kb,
                                   registered=True, platform=platform))
            if p:
                init = [0] * (self.D << kb)
                for k, t in enumerate(ts):
                    for d in range(self.D):
                        init[(d << kb) | k] = int(self.pe[t, d])
                pmems.append(RowMemory(m, f"pe{b}", width=p, depth=self.D << kb, init=init,
                                       shared_addr=True, registered=True, platform=platform))

        # The output leaves through a skid buffer, so the whole-pipeline enable `advance`
        # (`~oi.valid | skid.i.ready`) can be a flip-flop loaded a cycle ahead (below).
        m.submodules.skid = skid = SkidBuffer(self.o.payload.shape())
        wiring.connect(m, skid.o, wiring.flipped(self.o))
        oi = skid.i
        advance = Signal(init=1)

        # Every stage moves one op while `advance`: a position is K hashing ops (one table
        # group per bank each), then K ops per key distance d, each reading one V row per bank.
        xs = data.ArrayLayout(signed(self.x_width), n)
        jl = data.ArrayLayout(unsigned(n_c), B)
        # x[a], x[b] with the sign bit flipped: unsigned and in the same order, so that each
        # comparison is one carry chain's carry out.
        vl = data.ArrayLayout(data.ArrayLayout(unsigned(self.x_width), n_c), B)
        flip = 1 << (self.x_width - 1)
        ctl = {"valid": 1, "attend": 1, "k": range(K), "d0": 1, "end": 1, "acc_first": 1,
               "first": 1, "last": 1}
        s0 = Signal(data.StructLayout({"valid": 1, "attend": 1, "k": range(K), "d": range(ctx),
                                       "dd": range(ctx), "pos": range(ctx), "slot": range(ctx),
                                       "kslot": range(ctx), "first": 1, "last": 1, "x": xs}),
                    name="s0")
        addr = {"slot": range(ctx), "kslot": range(ctx), "dd": range(ctx)}
        s1 = Signal(data.StructLayout({**ctl, **addr, "x": xs}), name="s1")   # anchors out
        s2 = Signal(data.StructLayout({**ctl, **addr, "x": xs,                # anchors reg
                                       "ab": data.ArrayLayout(unsigned(2 * ab * n_c), B)}),
                    name="s2")
        s3 = Signal(data.StructLayout({**ctl, **addr, "xa": vl, "xb": vl}),   # cache/pe read
                    name="s3")
        s4 = Signal(data.StructLayout({**ctl, "slot": range(ctx), "j": jl}), name="s4")
        s5 = Signal(data.StructLayout({**ctl, "j": jl, "query": jl}),         # cache, codes out
                    name="s5")
        Jl = data.ArrayLayout(unsigned(IW), B)
        s6 = Signal(data.StructLayout({**ctl, "j": jl, "J": Jl}), name="s6")  # V address reg
        s7 = Signal(data.StructLayout({**ctl, "j": jl, "J": Jl}), name="s7")  # per-column copies
        s8 = Signal(data.StructLayout({**ctl, "j": jl}), name="s8")           # address sampled
        s9 = Signal(data.StructLayout({**ctl, "j": jl}), name="s9")           # rows in the RAM's
        rows = Signal(data.ArrayLayout(unsigned(ww * yd), B))                 # output register
        # A second register: the first sits by its block RAM, the second by the adders.
        rows2 = Signal(data.ArrayLayout(unsigned(ww * yd), B))
        s10 = Signal.like(s9, name="s10")
        jq = Signal(data.ArrayLayout(unsigned(n_c), self.n_t))  # jV of the current position
        fresh = Signal(init=1)              # the next beat starts a sequence
        wq_valid = Signal()                 # a write beat waits in `wq` (see the end)

        # s0: the op sequencer.
        # `d_last` is `s0.d == s0.pos` and `pos0` is `s0.pos == 0`, kept as flip-flops (set
        # with d and pos below) so that no comparison sits in front of `i.ready`.
        d_last, pos0 = Signal(init=1), Signal(init=1)
        last_k = s0.k == K - 1
        no_keys = C(0) if self.causal_self else pos0
        end_op = last_k & Mux(s0.attend, d_last, no_keys)
        m.d.comb += self.i.ready.eq(advance & (~s0.valid | end_op) & ~self.w.valid & ~wq_valid)
        accept = self.i.valid & self.i.ready
        start = self.i.payload.first | fresh

        with m.If(advance):
            with m.If(accept):
                m.d.sync += [s0.valid.eq(1), s0.attend.eq(0), s0.k.eq(0), s0.d.eq(self.d_min),
                             s0.dd.eq(0), s0.x.eq(self.i.payload.x),
                             s0.first.eq(self.i.payload.first), s0.last.eq(self.i.payload.last),
                             fresh.eq(0)]
                # kslot: the cache slot of the key at distance d, (slot - d) mod ctx.
                with m.If(start):
                    m.d.sync += [s0.pos.eq(0), s0.slot.eq(0), s0.kslot.eq(ctx - self.d_min),
                                 d_last.eq(self.d_min == 0), pos0.eq(1)]
                with m.Else():
                    wrap = s0.slot == ctx - 1
                    full = s0.pos == ctx - 1
                    m.d.sync += [s0.pos.eq(Mux(full, ctx - 1, s0.pos + 1)),
                                 s0.slot.eq(Mux(wrap, 0, s0.slot + 1)),
                                 d_last.eq(Mux(full, ctx - 1 == self.d_min,
                                               s0.pos == self.d_min - 1 if self.d_min else 0)),
                                 pos0.eq(0)]
                    if self.d_min:
                        m.d.sync += s0.kslot.eq(s0.slot)
                    else:
                        m.d.sync += s0.kslot.eq(Mux(wrap, 0, s0.slot + 1))
            with m.Elif(s0.valid & ~end_op):
                with m.If(~last_k):
                    m.d.sync += s0.k.eq(s0.k + 1)
                with m.Elif(~s0.attend):
                    m.d.sync += [s0.attend.eq(1), s0.k.eq(0)]
                with m.Else():
                    m.d.sync += [s0.k.eq(0), s0.d.eq(s0.d + 1), s0.dd.eq(s0.dd + 1),
                                 s0.kslot.eq(Mux(s0.kslot == 0, ctx - 1, s0.kslot - 1)),
                                 d_last.eq(s0.d + 1 == s0.pos)]
            with m.Else():
                m.d.sync += s0.valid.eq(0)

            m.d.sync += [s1.valid.eq(s0.valid), s1.attend.eq(s0.attend), s1.k.eq(s0.k),
                         s1.d0.eq(s0.d == 0), s1.end.eq(end_op),
                         s1.acc_first.eq(s0.attend & (s0.k == 0) & (s0.d == self.d_min)),
                         s1.first.eq(s0.first), s1.last.eq(s0.last), s1.x.eq(s0.x),
                         s1.slot.eq(s0.slot), s1.kslot.eq(s0.kslot), s1.dd.eq(s0.dd)]
            for dst, src in ((s2, s1), (s3, s2), (s4, s3), (s5, s4), (s6, s5), (s7, s6),
                             (s8, s7), (s9, s8)):
                m.d.sync += [getattr(dst, f).eq(getattr(src, f)) for f in ctl]
            m.d.sync += [s2.x.eq(s1.x), s2.slot.eq(s1.slot), s2.kslot.eq(s1.kslot),
                         s2.dd.eq(s1.dd), s3.slot.eq(s2.slot), s3.kslot.eq(s2.kslot),
                         s3.dd.eq(s2.dd), s4.slot.eq(s3.slot), s5.j.eq(s4.j), s6.j.eq(s5.j),
                         s7.j.eq(s6.j), s8.j.eq(s7.j), s9.j.eq(s8.j), s7.J.eq(s6.J)]

        for b in range(B):
            adata = amems[b].read(m, s0.k, advance)
            # The keys' jV and the codes are read at s3 (through the memories' output
            # registers, at s5): a hash written to the cache at s4 is read back by the next
            # position no earlier than 2K - 1 cycles later.
            cdata = cmems[b].read(m, Cat(s3.k, s3.kslot) if kb else s3.kslot, advance)
            pdata = (pmems[b].read(m, Cat(s3.k, s3.dd) if kb else s3.dd, advance)
                     if p else C(0, 1))
            bits = []
            for r in range(n_c):
                a = s2.ab[b][(2 * r) * ab:(2 * r + 1) * ab]
                c = s2.ab[b][(2 * r + 1) * ab:(2 * r + 2) * ab]
                bits.append(s3.xa[b][r] > s3.xb[b][r])
                with m.If(advance):
                    m.d.sync += [s3.xa[b][r].eq(s2.x[a].as_unsigned() ^ flip),
                                 s3.xb[b][r].eq(s2.x[c].as_unsigned() ^ flip)]
            hash_now = advance & s4.valid & ~s4.attend
            cmems[b].write(m, Cat(s4.k, s4.slot) if kb else s4.slot, s4.j[b], hash_now)
            for k in range(K):
                with m.If(hash_now & (s4.k == k)):
                    m.d.sync += jq[k * B + b].eq(s4.j[b])
            query = Array(jq[k * B + b] for k in range(K))[s4.k] if K > 1 else jq[b]
            key = Mux(s5.d0, s5.query[b], cdata) if self.causal_self else cdata
            J = Cat(pdata[:p], key, s5.query[b]) if p else Cat(key, s5.query[b])
            # The V address is registered in s6, with one copy per 8 block RAM columns of the
            # tables, and from those in s7 with one copy per column: the columns span the
            # device, and no single register drives them all.
            groups = -(-len(vmems[b].cols) // 8)
            va_next = Cat(J, s5.k)
            gbits = [replicated_register(m, platform, va_next[i], groups, name=f"va{b}_b{i}",
                                         enable=advance) for i in range(len(va_next))]
            gaddr = [Cat(*[gbits[i][g] for i in range(len(va_next))]) for g in range(groups)]
            vdata = vmems[b].read(m, Cat(s7.J[b], s7.k), advance, next_addr=gaddr)
            with m.If(advance):
                # Block RAM outputs go straight into registers (their clock-to-out is long).
                m.d.sync += [s2.ab[b].eq(adata), s4.j[b].eq(Cat(*bits)),
                             s5.query[b].eq(query), s6.J[b].eq(J)]
            # The V rows leave the block RAMs through their output registers.
            m.d.comb += rows[b].eq(vdata)

        # Per output value: the banks' rows through a registered adder tree, then the
        # accumulator, which is the output register itself.
        tree_levels = 0
        sums = []
        for e in range(yd):
            total, tree_levels = add_tree(
                m, [rows2[b].word_select(e, ww).as_signed() for b in range(B)], self.y_width,
                advance, f"sum{e}")
            sums.append(total)
        with m.If(advance):
            m.d.sync += [s10.eq(s9), rows2.eq(rows)]
        stages = [s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10]
        for level in range(tree_levels):
            nxt = Signal.like(s10, name=f"st{level}")
            with m.If(advance):
                m.d.sync += nxt.eq(stages[-1])
            stages.append(nxt)
        sa = stages[-1]

        oi_valid_next = Mux(advance, sa.valid & sa.end, oi.valid)
        m.d.sync += advance.eq(~oi_valid_next | skid_ready_next(skid))
        with m.If(advance):
            m.d.sync += oi.valid.eq(sa.valid & sa.end)
            with m.If(sa.valid & ~sa.attend):
                for k in range(K):
                    with m.If(sa.k == k):
                        m.d.sync += [oi.payload.jv[k * B + b].eq(sa.j[b]) for b in range(B)]
            for e in range(yd):
                with m.If(sa.valid & sa.attend):
                    m.d.sync += oi.payload.z[e].eq(
                        Mux(sa.acc_first, 0, oi.payload.z[e]) + sums[e])
                with m.Elif(sa.valid & sa.end):
                    m.d.sync += oi.payload.z[e].eq(0)       # a position without keys
            with m.If(sa.valid & sa.end):
                m.d.sync += [oi.payload.first.eq(sa.first), oi.payload.last.eq(sa.last)]

        # Writes land only while no position is in flight.
        # `idle` (no op in any stage) is a flip-flop loaded with its next value: while
        # `advance`, every stage takes the one before it and s0 is busy after an accept, so
        # nothing is left exactly when s0..s(N-1) are empty and no beat is taken.
        idle = Signal(init=1)
        busy_now = Cat(*[s.valid for s in stages]).any()
        busy_next = Mux(advance, Cat(*[s.valid for s in stages[:-1]], accept).any(), busy_now)
        m.d.sync += idle.eq(~busy_next)
        # A write beat is taken into `wq` and issued from there in the next cycle (no input is
        # taken meanwhile), so no decode logic sits between the `w` port and the memories'
        # write registers.
        wq = Signal.like(self.w.payload, name="wq")
        m.d.comb += self.w.ready.eq(idle & ~wq_valid)
        m.d.sync += wq_valid.eq(self.w.valid & self.w.ready)
        with m.If(self.w.ready):
            m.d.sync += wq.eq(self.w.payload)
        w = wq
        table_ok = w.table < self.n_t if self.n_t < 2 ** len(w.table) else C(1)
        anchors_ok = Cat(*[(w.a[r] != w.b[r]) & (w.a[r] < n) & (w.b[r] < n)
                           for r in range(n_c)]).all()
        wbank = const_lookup([t % B for t in range(self.n_t)], w.table)
        wk = const_lookup([t // B for t in range(self.n_t)], w.table)
        fire = wq_valid & table_ok
        pe_ok = w.addr < self.D
        for b in range(B):
            here = fire & (wbank == b)
            amems[b].write(m, wk, Cat(*[Cat(w.a[r], w.b[r]) for r in range(n_c)]),
                           here & (w.kind == 1) & anchors_ok)
            vmems[b].write(m, Cat(w.addr, wk), w.y.as_value(), here & (w.kind == 0))
            if p:
                pmems[b].write(m, Cat(wk[:kb], w.addr) if kb else w.addr, w.pe,
                               here & (w.kind == 2) & pe_ok)
        return m
