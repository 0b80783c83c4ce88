"""The Spiking Manifesto's attention LUT with the V-index cache."""

import numpy as np
from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .lut import (MAX_INDEX_BITS, _int, check_anchors, check_lut_params, check_tables,
                  const_lookup, pack_words, tree_sum)

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
    handshake of position ``i`` to its ``o.valid``: ``K * (1 + keys(i)) + 4`` cycles without
    stalls. The pipeline stalls as a whole while ``o.valid & ~o.ready``; ``i.ready`` depends on
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

    def elaborate(self, platform):
        m = Module()
        n, n_c, p, B, K, ctx = self.n, self.n_c, self.p, self.banks, self.K, self.ctx
        ab = Shape.cast(range(n)).width
        ww, yd, IW = self.w_width, self.y_dim, self.index_width
        kb = ceil_log2(K)

        # Per bank: anchors (K rows), V tables (address Cat(J, k)), the jV cache (address
        # Cat(k, slot)) and the positional codes (address Cat(k, d - d_min)).
        ard, awr, vrd, vwr, crd, cwr, prd, pwr = ([] for _ in range(8))
        for b in range(B):
            ts = list(range(b, self.n_t, B))
            amem = Memory(shape=unsigned(2 * ab * n_c), depth=K,
                          init=pack_words(self.anchors[ts].reshape(K, 2 * n_c), ab))
            vmem = Memory(shape=unsigned(ww * yd), depth=K << IW,
                          init=pack_words(self.tables[ts].reshape(K << IW, yd), ww))
            cmem = Memory(shape=unsigned(n_c), depth=ctx << kb, init=[])
            m.submodules[f"anchors{b}"] = amem
            m.submodules[f"tables{b}"] = vmem
            m.submodules[f"cache{b}"] = cmem
            ard.append(amem.read_port())
            awr.append(amem.write_port())
            vrd.append(vmem.read_port())
            vwr.append(vmem.write_port())
            crd.append(cmem.read_port())
            cwr.append(cmem.write_port())
            if p:
                init = [0] * (self.D << kb)
                for k, t in enumerate(ts):
                    for d in range(self.D):
                        init[(d << kb) | k] = int(self.pe[t, d])
                pmem = Memory(shape=unsigned(p), depth=self.D << kb, init=init)
                m.submodules[f"pe{b}"] = pmem
                prd.append(pmem.read_port())
                pwr.append(pmem.write_port())

        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)

        xs = data.ArrayLayout(signed(self.x_width), n)
        op = {"valid": 1, "attend": 1, "k": range(K), "d": range(ctx), "first": 1, "last": 1}
        common = {**op, "end": 1, "acc_first": 1}
        s0 = Signal(data.StructLayout({**op, "x": xs, "pos": range(ctx), "slot": range(ctx)}),
                    name="s0")
        s1 = Signal(data.StructLayout({**common, "x": xs, "slot": range(ctx)}), name="s1")
        jvl = data.ArrayLayout(unsigned(n_c), self.n_t)
        s2 = Signal(data.StructLayout({**common, "J": data.ArrayLayout(unsigned(IW), B),
                                       "jv": jvl}), name="s2")
        s3 = Signal(data.StructLayout({**common, "jv": jvl}), name="s3")
        jq = Signal(jvl)                    # jV of the position being hashed / attended
        acc = Signal(data.ArrayLayout(signed(self.y_width), yd))
        fresh = Signal(init=1)              # the next beat starts a sequence

        # s0: the op sequencer. A position is K hashing ops, then K ops per key distance d.
        last_k = s0.k == K - 1
        no_keys = C(0) if self.causal_self else (s0.pos == 0)
        d_max = s0.pos
        end_op = last_k & Mux(s0.attend, s0.d == d_max, no_keys)
        m.d.comb += self.i.ready.eq(advance & (~s0.valid | end_op) & ~self.w.valid)
        accept = self.i.valid & self.i.ready
        start = self.i.payload.first | fresh

        with m.If(advance):
            with m.If(accept):
                m.d.sync += [s0.valid.eq(1), s0.attend.eq(0), s0.k.eq(0), s0.d.eq(self.d_min),
                             s0.x.eq(self.i.payload.x), s0.first.eq(self.i.payload.first),
                             s0.last.eq(self.i.payload.last), fresh.eq(0)]
                with m.If(start):
                    m.d.sync += [s0.pos.eq(0), s0.slot.eq(0)]
                with m.Else():
                    m.d.sync += [s0.pos.eq(Mux(s0.pos == ctx - 1, ctx - 1, s0.pos + 1)),
                                 s0.slot.eq(Mux(s0.slot == ctx - 1, 0, s0.slot + 1))]
            with m.Elif(s0.valid & ~end_op):
                with m.If(~last_k):
                    m.d.sync += s0.k.eq(s0.k + 1)
                with m.Elif(~s0.attend):
                    m.d.sync += [s0.attend.eq(1), s0.k.eq(0)]
                with m.Else():
                    m.d.sync += [s0.k.eq(0), s0.d.eq(s0.d + 1)]
            with m.Else():
                m.d.sync += s0.valid.eq(0)
        acc_first = s0.attend & (s0.k == 0) & (s0.d == self.d_min)

        # Memory reads for the op in s0; the data arrives with it in s1.
        key_slot = Signal(range(ctx))
        m.d.comb += key_slot.eq(Mux(s0.slot >= s0.d, s0.slot - s0.d, s0.slot + ctx - s0.d))
        for b in range(B):
            m.d.comb += [ard[b].addr.eq(s0.k), ard[b].en.eq(advance),
                         crd[b].addr.eq(Cat(s0.k, key_slot) if kb else key_slot),
                         crd[b].en.eq(advance)]
            if p:
                m.d.comb += [prd[b].addr.eq(Cat(s0.k, s0.d - self.d_min) if kb
                                            else s0.d - self.d_min),
                             prd[b].en.eq(advance)]

        # s1: hash (write jq and the cache) or form the attention index J.
        jq_next = Signal(jvl)
        m.d.comb += jq_next.eq(jq)
        hash_now = advance & s1.valid & ~s1.attend
        J = []
        for b in range(B):
            bits = []
            for r in range(n_c):
                a = ard[b].data[(2 * r) * ab:(2 * r + 1) * ab]
                c = ard[b].data[(2 * r + 1) * ab:(2 * r + 2) * ab]
                bits.append(s1.x[a] > s1.x[c])
            j = Cat(*bits)
            m.d.comb += [cwr[b].addr.eq(Cat(s1.k, s1.slot) if kb else s1.slot),
                         cwr[b].data.eq(j), cwr[b].en.eq(hash_now)]
            for k in range(K):
                with m.If(hash_now & (s1.k == k)):
                    m.d.comb += jq_next[k * B + b].eq(j)
            query = Signal(n_c, name=f"query{b}")
            m.d.comb += query.eq(Array(jq[k * B + b] for k in range(K))[s1.k] if K > 1
                                 else jq[b])
            key = Mux(s1.d == 0, query, crd[b].data) if self.causal_self else crd[b].data
            J.append(Cat(prd[b].data, key, query) if p else Cat(key, query))
        m.d.sync += jq.eq(jq_next)

        with m.If(advance):
            m.d.sync += [getattr(s1, f).eq(getattr(s0, f)) for f in (*op, "x", "slot")]
            m.d.sync += [s1.end.eq(end_op), s1.acc_first.eq(acc_first)]
            m.d.sync += [getattr(s2, f).eq(getattr(s1, f)) for f in common]
            m.d.sync += [s2.J[b].eq(J[b]) for b in range(B)]
            m.d.sync += s2.jv.eq(jq_next)
            m.d.sync += [getattr(s3, f).eq(getattr(s2, f)) for f in common]
            m.d.sync += s3.jv.eq(s2.jv)
        for b in range(B):
            m.d.comb += [vrd[b].addr.eq(Cat(s2.J[b], s2.k)), vrd[b].en.eq(advance)]

        # s3: accumulate the rows of attention ops; the position's last op writes the output.
        with m.If(advance):
            m.d.sync += self.o.valid.eq(s3.valid & s3.end)
            with m.If(s3.valid & s3.end):
                m.d.sync += [self.o.payload.jv.eq(s3.jv), self.o.payload.first.eq(s3.first),
                             self.o.payload.last.eq(s3.last)]
        for e in range(yd):
            rows = tree_sum(vrd[b].data.word_select(e, ww).as_signed() for b in range(B))
            total = Mux(s3.acc_first, 0, acc[e]) + rows
            with m.If(advance & s3.valid & s3.attend):
                m.d.sync += acc[e].eq(total)
            with m.If(advance & s3.valid & s3.end):
                m.d.sync += self.o.payload.z[e].eq(Mux(s3.attend, total, 0))

        # Writes land only while no position is in flight.
        idle = ~(s0.valid | s1.valid | s2.valid | s3.valid)
        w = self.w.payload
        m.d.comb += self.w.ready.eq(idle)
        table_ok = w.table < self.n_t if self.n_t < 2 ** len(w.table) else C(1)
        anchors_ok = Cat(*[(w.a[r] != w.b[r]) & (w.a[r] < n) & (w.b[r] < n)
                           for r in range(n_c)]).all()
        wbank = const_lookup([t % B for t in range(self.n_t)], w.table)
        wk = const_lookup([t // B for t in range(self.n_t)], w.table)
        fire = self.w.valid & idle & table_ok
        for b in range(B):
            here = fire & (wbank == b)
            m.d.comb += [
                awr[b].addr.eq(wk),
                awr[b].data.eq(Cat(*[Cat(w.a[r], w.b[r]) for r in range(n_c)])),
                awr[b].en.eq(here & (w.kind == 1) & anchors_ok),
                vwr[b].addr.eq(Cat(w.addr, wk)),
                vwr[b].data.eq(w.y.as_value()),
                vwr[b].en.eq(here & (w.kind == 0)),
            ]
            if p:
                m.d.comb += [pwr[b].addr.eq(Cat(wk[:kb], w.addr) if kb else w.addr),
                             pwr[b].data.eq(w.pe),
                             pwr[b].en.eq(here & (w.kind == 2) & (w.addr < self.D))]
        return m
