"""LUT index unit and LUT layer of the Spiking Manifesto.

A latency vector ``x`` (``n`` signed values) is hashed by ``n_t`` tables of ``n_c`` anchor
pairs each: bit ``r`` of table ``t`` is ``x[a] - x[b] > 0`` (a tie gives 0), the index is
``j_t = sum_r bit_r * 2**r`` (pair 0 is the least significant bit), and the layer output is the
sum of one selected row per table, ``y = sum_t S_t[j_t]`` -- additions only.

The parameter rules live in :func:`check_lut_params`, :func:`check_anchors` and
:func:`check_tables`; :mod:`spikeforge.rtl.lut_event` and :mod:`spikeforge.rtl.lut_attention`
use them too.
"""

from numbers import Integral

import numpy as np
from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["LUT", "MAX_INDEX_BITS", "check_anchors", "check_lut_params", "check_tables",
           "pack_words", "tree_sum"]

#: Widest table address (index bits) a LUT core accepts: 2**16 rows per table.
MAX_INDEX_BITS = 16


def _int(who, name, value, lo, hi):
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"{who} parameter {name!r} must be an integer, not {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"{who} parameter {name!r} must be in {lo}..{hi}, not {value}")
    return value


def check_lut_params(*, n, x_width, n_t, n_c, y_dim, w_width, y_width=None, banks=1,
                     who="LUT", acc_terms=None):
    """Validate the shape parameters shared by the LUT cores; return them as plain ints.

    ``y_width`` defaults to the smallest width that cannot overflow,
    ``w_width + ceil(log2(acc_terms))`` with ``acc_terms`` the most rows ever summed into one
    output (``n_t`` for a LUT layer). Raises :exc:`TypeError`/:exc:`ValueError` naming the
    parameter and the bad value.
    """
    out = {}
    out["n"] = n = _int(who, "n", n, 2, 1024)
    out["x_width"] = _int(who, "x_width", x_width, 2, 24)
    out["n_t"] = n_t = _int(who, "n_t", n_t, 1, 256)
    out["n_c"] = _int(who, "n_c", n_c, 1, MAX_INDEX_BITS)
    out["y_dim"] = _int(who, "y_dim", y_dim, 1, 1024)
    out["w_width"] = w_width = _int(who, "w_width", w_width, 2, 24)
    out["banks"] = banks = _int(who, "banks", banks, 1, n_t)
    if n_t % banks:
        raise ValueError(f"{who} parameter 'banks' must divide n_t={n_t}, not {banks}")
    terms = n_t if acc_terms is None else acc_terms
    need = w_width + ceil_log2(terms)
    if y_width is None:
        y_width = need
    y_width = _int(who, "y_width", y_width, 2, 48)
    if y_width < need:
        raise ValueError(f"{who} parameter 'y_width' must be at least {need} (w_width + "
                         f"ceil(log2({terms}))) so the sum cannot overflow, not {y_width}")
    out["y_width"] = y_width
    return out


def check_anchors(who, anchors, *, n, n_t, n_c):
    """``anchors`` as an int64 array ``(n_t, n_c, 2)`` of neuron pairs ``(a, b)``, ``a != b``."""
    arr = np.asarray(anchors)
    if arr.dtype.kind not in "iu" and arr.size:
        raise TypeError(f"{who} anchors must be integers, not {arr.dtype}")
    if arr.shape != (n_t, n_c, 2):
        raise ValueError(f"{who} anchors must have shape (n_t, n_c, 2) = ({n_t}, {n_c}, 2), "
                         f"not {arr.shape}")
    arr = arr.astype(np.int64)
    bad = np.argwhere((arr < 0) | (arr >= n))
    if len(bad):
        t, r, s = bad[0]
        raise ValueError(f"{who} anchor {'ab'[s]} of table {t} pair {r} must be in 0..{n - 1}, "
                         f"not {arr[t, r, s]}")
    same = np.argwhere(arr[..., 0] == arr[..., 1])
    if len(same):
        t, r = same[0]
        raise ValueError(f"{who} anchor pair {r} of table {t} compares neuron {arr[t, r, 0]} "
                         f"with itself (a == b)")
    return arr


def check_tables(who, name, tables, shape, width):
    """``tables`` as an int64 array of ``shape`` holding signed ``width``-bit values."""
    arr = np.asarray(tables)
    if arr.dtype.kind not in "iu" and arr.size:
        raise TypeError(f"{who} {name} must be integers, not {arr.dtype}")
    if arr.shape != tuple(shape):
        raise ValueError(f"{who} {name} must have shape {tuple(shape)}, not {arr.shape}")
    arr = arr.astype(np.int64)
    lo, hi = -2 ** (width - 1), 2 ** (width - 1) - 1
    bad = np.argwhere((arr < lo) | (arr > hi))
    if len(bad):
        where = tuple(int(v) for v in bad[0])
        raise ValueError(f"{who} {name} value {arr[where]} at {where} is outside {lo}..{hi} "
                         f"({width}-bit signed)")
    return arr


def pack_words(values, width):
    """Pack the last axis of an integer array into ints, element 0 in the low bits."""
    values = np.asarray(values, dtype=np.int64)
    mask = (1 << width) - 1
    words = []
    for row in values.reshape(-1, values.shape[-1]):
        word = 0
        for k, v in enumerate(row.tolist()):
            word |= (v & mask) << (k * width)
        words.append(word)
    return words


def tree_sum(terms):
    """Balanced adder tree: ceil(log2(len(terms))) adder levels."""
    terms = list(terms)
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


def const_lookup(values, index):
    """``values[index]`` for a list of constants indexed by a signal."""
    if len(set(values)) == 1:
        return C(values[0], max(1, max(values).bit_length()))
    return Array(C(v, max(1, max(values).bit_length())) for v in values)[index]


class LUT(wiring.Component):
    """LUT layer: ``n_t`` anchor-pair index units and their tables, one row per table summed.

    For every input vector ``x``::

        j_t = sum_r [x[a_tr] - x[b_tr] > 0] * 2**r        (t < n_t, r < n_c; a tie gives 0)
        y   = sum_t S_t[j_t]                              (elementwise over y_dim values)

    Integers only. ``y`` is exact: ``y_width >= w_width + ceil(log2(n_t))`` is enforced, which
    bounds ``|y| <= n_t * 2**(w_width-1) <= 2**(y_width-1)``, so the sum never overflows and
    never saturates.

    Parameters
    ----------
    n : int
        Latency vector length, 2..1024.
    x_width : int
        Signed latency width, 2..24.
    n_t : int
        Number of tables, 1..256.
    n_c : int
        Anchor pairs per table (index bits), 1..:data:`MAX_INDEX_BITS`; each table has
        ``2**n_c`` rows.
    y_dim : int
        Values per table row (output width in values), 1..1024.
    w_width : int
        Signed table value width, 2..24.
    y_width : int or None
        Signed output width; default (and minimum) ``w_width + ceil(log2(n_t))``.
    banks : int
        Table memories read in parallel, dividing ``n_t``. Bank ``b`` holds tables
        ``t = k*banks + b`` for ``k < n_t/banks``; each bank reads and accumulates one row
        (``y_dim`` values) per cycle.
    anchors : int array ``(n_t, n_c, 2)``
        Initial anchor pairs ``(a, b)``, both in ``0..n-1``, ``a != b``.
    tables : int array ``(n_t, 2**n_c, y_dim)``
        Initial table rows, signed ``w_width``-bit values.

    Members
    -------
    i : ``In(stream.Signature(StructLayout({"x": ArrayLayout(signed(x_width), n), "first": 1, "last": 1})))``
        One latency vector per beat. ``first``/``last`` only travel to the output.
    w : ``In(stream.Signature(StructLayout({"kind": 1, "table": range(n_t), "row": unsigned(n_c), "y": ArrayLayout(signed(w_width), y_dim), "a": ArrayLayout(range(n), n_c), "b": ArrayLayout(range(n), n_c)})))``
        Run-time rewrites. ``kind = 0`` writes row ``row`` of table ``table`` with ``y``;
        ``kind = 1`` writes all ``n_c`` anchor pairs ``(a[r], b[r])`` of table ``table``. A
        write naming a table ``>= n_t``, or anchors with ``a[r] == b[r]`` or an index ``>= n``,
        is dropped whole (the memories keep their contents). ``w.ready`` is high only while no
        vector is in flight, and a pending write (``w.valid``) holds ``i.ready`` low, so a write
        affects exactly the vectors accepted after it.
    o : ``Out(stream.Signature(StructLayout({"y": ArrayLayout(signed(y_width), y_dim), "j": ArrayLayout(unsigned(n_c), n_t), "first": 1, "last": 1})))``
        One beat per input vector, in order: the layer output ``y`` and every table's index
        ``j``; ``first``/``last`` copied.

    Timing: a vector takes ``K = n_t/banks`` cycles (one table per bank per cycle), so the
    throughput is one vector per ``K`` cycles; :attr:`latency` ``= K + 4`` cycles from the
    input handshake to ``o.valid``. The whole pipeline stalls while ``o.valid & ~o.ready``;
    ``o.valid`` never depends on ``o.ready``; ``i.ready`` depends on neither ``i.valid`` nor the
    payload. Results never depend on gaps or backpressure.

    Reset: the pipeline empties; the memories keep their contents (their initial contents are
    ``anchors`` and ``tables``, rewritten only through ``w``).
    """

    def __init__(self, *, n, x_width, n_t, n_c, y_dim, w_width, y_width=None, banks=1,
                 anchors, tables):
        params = check_lut_params(n=n, x_width=x_width, n_t=n_t, n_c=n_c, y_dim=y_dim,
                                  w_width=w_width, y_width=y_width, banks=banks)
        self.params = params
        for key, value in params.items():
            setattr(self, key, value)
        self.anchors = check_anchors("LUT", anchors, n=n, n_t=n_t, n_c=n_c)
        self.tables = check_tables("LUT", "tables", tables, (n_t, 2 ** n_c, y_dim), w_width)
        self.K = n_t // self.banks
        #: Cycles from an input handshake to ``o.valid`` without stalls.
        self.latency = self.K + 4
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "x": data.ArrayLayout(signed(x_width), n), "first": 1, "last": 1}))),
            "w": In(stream.Signature(data.StructLayout({
                "kind": 1, "table": range(n_t), "row": unsigned(n_c),
                "y": data.ArrayLayout(signed(w_width), y_dim),
                "a": data.ArrayLayout(range(n), n_c), "b": data.ArrayLayout(range(n), n_c)}))),
            "o": Out(stream.Signature(data.StructLayout({
                "y": data.ArrayLayout(signed(self.y_width), y_dim),
                "j": data.ArrayLayout(unsigned(n_c), n_t), "first": 1, "last": 1}))),
        })

    def elaborate(self, platform):
        m = Module()
        n, n_c, B, K = self.n, self.n_c, self.banks, self.K
        ab = Shape.cast(range(n)).width
        ww, yd = self.w_width, self.y_dim

        # One anchor memory (a row = the n_c pairs of one table) and one table memory per bank;
        # the table address is Cat(j, k), so a bank's memory is exactly K * 2**n_c rows deep.
        amems, tmems = [], []
        for b in range(B):
            ts = range(b, self.n_t, B)
            pairs = self.anchors[list(ts)].reshape(K, 2 * n_c)
            amem = Memory(shape=unsigned(2 * ab * n_c), depth=K, init=pack_words(pairs, ab))
            tmem = Memory(shape=unsigned(ww * yd), depth=K << n_c,
                          init=pack_words(self.tables[list(ts)].reshape(K << n_c, yd), ww))
            m.submodules[f"anchors{b}"] = amem
            m.submodules[f"tables{b}"] = tmem
            amems.append(amem)
            tmems.append(tmem)
        ard = [mem.read_port() for mem in amems]
        awr = [mem.write_port() for mem in amems]
        trd = [mem.read_port() for mem in tmems]
        twr = [mem.write_port() for mem in tmems]

        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)

        def stage(name, **fields):
            return Signal(data.StructLayout({"valid": 1, "k": range(K), "first": 1, "last": 1,
                                             **fields}), name=name)

        xs = data.ArrayLayout(signed(self.x_width), n)
        s0 = stage("s0", x=xs)             # the vector being issued, table group k
        s1 = stage("s1", x=xs)             # anchors of group k arrive from memory
        s2 = stage("s2", j=data.ArrayLayout(unsigned(n_c), B))   # indices, table read issued
        s3 = stage("s3")                   # rows arrive from memory and are accumulated
        acc = Signal(data.ArrayLayout(signed(self.y_width), yd))
        jall = Signal(data.ArrayLayout(unsigned(n_c), self.n_t))

        last_k = s0.k == K - 1
        m.d.comb += self.i.ready.eq(advance & (~s0.valid | last_k) & ~self.w.valid)
        accept = self.i.valid & self.i.ready

        with m.If(advance):
            with m.If(accept):
                m.d.sync += [s0.valid.eq(1), s0.k.eq(0), s0.x.eq(self.i.payload.x),
                             s0.first.eq(self.i.payload.first), s0.last.eq(self.i.payload.last)]
            with m.Elif(s0.valid & ~last_k):
                m.d.sync += s0.k.eq(s0.k + 1)
            with m.Else():
                m.d.sync += s0.valid.eq(0)
            m.d.sync += s1.eq(s0)
            m.d.sync += [s2.valid.eq(s1.valid), s2.k.eq(s1.k), s2.first.eq(s1.first),
                         s2.last.eq(s1.last)]
            m.d.sync += [s3.valid.eq(s2.valid), s3.k.eq(s2.k), s3.first.eq(s2.first),
                         s3.last.eq(s2.last)]

        for b in range(B):
            m.d.comb += [ard[b].addr.eq(s0.k), ard[b].en.eq(advance)]
            bits = []
            for r in range(n_c):
                a = ard[b].data[(2 * r) * ab:(2 * r + 1) * ab]
                c = ard[b].data[(2 * r + 1) * ab:(2 * r + 2) * ab]
                bits.append(s1.x[a] > s1.x[c])
            with m.If(advance):
                m.d.sync += s2.j[b].eq(Cat(*bits))
            m.d.comb += [trd[b].addr.eq(Cat(s2.j[b], s2.k)), trd[b].en.eq(advance)]

        # Every table's index, collected for the output as its group leaves s2.
        with m.If(advance & s2.valid):
            for k in range(K):
                with m.If(s2.k == k):
                    m.d.sync += [jall[k * B + b].eq(s2.j[b]) for b in range(B)]

        done = s3.k == K - 1
        with m.If(advance):
            m.d.sync += [self.o.valid.eq(s3.valid & done)]
            with m.If(s3.valid & done):
                m.d.sync += [self.o.payload.j.eq(jall), self.o.payload.first.eq(s3.first),
                             self.o.payload.last.eq(s3.last)]
        for e in range(yd):
            rows = tree_sum(trd[b].data.word_select(e, ww).as_signed() for b in range(B))
            total = Mux(s3.k == 0, 0, acc[e]) + rows
            with m.If(advance & s3.valid):
                m.d.sync += acc[e].eq(total)
                with m.If(done):
                    m.d.sync += self.o.payload.y[e].eq(total)

        # Writes land only while no vector is in flight.
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
            m.d.comb += [
                awr[b].addr.eq(wk),
                awr[b].data.eq(Cat(*[Cat(w.a[r], w.b[r]) for r in range(n_c)])),
                awr[b].en.eq(fire & w.kind & anchors_ok & (wbank == b)),
                twr[b].addr.eq(Cat(w.row, wk)),
                twr[b].data.eq(w.y.as_value()),
                twr[b].en.eq(fire & ~w.kind & (wbank == b)),
            ]
        return m
