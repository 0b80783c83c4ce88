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

from .ecp5_ram import PipelinedRAM, _is_ecp5, replicated_register

__all__ = ["EBR_BITS", "LUT", "MAX_INDEX_BITS", "RowMemory", "add_tree", "check_anchors",
           "check_lut_params", "check_tables", "ebr_columns", "pack_words"]

#: Output values per copy of the accumulator's enable and clear.
ACC_GROUP = 8

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


def const_lookup(values, index):
    """``values[index]`` for a list of constants indexed by a signal."""
    if len(set(values)) == 1:
        return C(values[0], max(1, max(values).bit_length()))
    return Array(C(v, max(1, max(values).bit_length())) for v in values)[index]


#: Bits of one ECP5 DP16KD block RAM (the unit of ``EBR`` in the build reports).
EBR_BITS = 18432
#: Widest DP16KD word (512 x 36): the column width of shallow wide table memories.
EBR_COLUMN = 36


def ebr_columns(width, depth):
    """Column widths a ``depth`` x ``width`` memory is split into, one ECP5 EBR mode each.

    A memory deeper than 512 rows is cut into columns as wide as a DP16KD is at that depth
    (1024 x 18, 2048 x 9, 4096 x 4, 8192 x 2, 16384 x 1), so no column needs a read multiplexer
    between block RAMs: the read data goes straight from the EBR to a register. Shallower
    memories stay whole (Yosys packs them 512 x 36 or into LUT RAM).
    """
    if depth <= 512:
        return [width]
    col = {1024: 18, 2048: 9, 4096: 4, 8192: 2}.get(1 << ceil_log2(depth), 1)
    return [min(col, width - lo) for lo in range(0, width, col)]


class RowMemory:
    """A ``depth`` x ``width`` memory with one synchronous read and one write port, split into
    :func:`ebr_columns` so that each column maps to block RAM without output multiplexers.

    ``read(m, addr, en)`` returns the read data: the row at ``addr`` of the last cycle with
    ``en`` high, from the next cycle on, held while ``en`` is low (provided the row is not
    rewritten meanwhile). The block RAM itself reads every cycle, of the held address while
    ``en`` is low, so that synthesis needs no logic to emulate a read enable between the
    block RAM output and the register that takes it.

    ``write(m, addr, data, en)`` writes a whole row. With ``shared_addr`` the caller promises
    that writes only happen while no read data is needed (in the write cycle and the next):
    both ports then use one address, so synthesis maps them onto a single block RAM port and
    adds no read-during-write bypass logic either; the write itself is registered (it lands one
    cycle after ``en``), so the address multiplexer is selected by a register. Call ``read``
    before ``write``.

    ``column_width`` cuts a memory of at most 512 rows into columns that wide as well (36: one
    DP16KD each), so that with ``read(..., next_addr=)`` every block RAM has its own address
    register next to it instead of one register driving the address pins of dozens of block
    RAMs across the device. ``platform`` is the one the memory is elaborated for: on ECP5 the
    per-column copies of the address and of the write strobe are flip-flops that synthesis keeps
    apart (:func:`~spikeforge.rtl.ecp5_ram.replicated_register`); plain registers with the same
    input would be merged back into one.

    ``registered``: every column is a :class:`~spikeforge.rtl.ecp5_ram.PipelinedRAM` (on ECP5
    a block RAM read through its own output register, 512 x 36 where the depth allows), with
    ``en`` as its clock enable. ``read`` then returns the row of the address of two enabled
    cycles earlier: a row register the caller no longer needs, and no block RAM clock-to-out
    in front of the next logic. Writes go through the RAM's own write port: registered (one
    copy of the strobe and the address per column) with ``shared_addr``, whose promise the
    caller makes the same way, else at once; a read sampled at the edge of a write to the same
    row returns an undefined row (:class:`~spikeforge.rtl.ecp5_ram.PipelinedRAM`).

    ``distributed``: every column is LUT RAM (``ram_style = "distributed"``) read through the
    port's own enable: the read data register takes ``en`` as its clock enable, and the RAM's
    read address comes straight from a register (with ``next_addr``, a copy per column), so no
    held-address multiplexer sits between ``en`` and the RAM. LUT RAM has separate write
    address pins: writes are registered as with ``shared_addr`` (they land one cycle after
    ``en``, one copy of the strobe and the address per column) whatever ``shared_addr`` says,
    and the caller promises no read data is needed while one lands.
    """

    def __init__(self, m, name, *, width, depth, init=(), shared_addr=False, column_width=None,
                 platform=None, registered=False, distributed=False):
        if registered and distributed:
            raise ValueError("RowMemory cannot be both registered (block RAM) and distributed")
        self.name, self.shared, self.platform = name, shared_addr, platform
        self.registered, self.distributed = registered, distributed
        self.cols = ebr_columns(width, depth)
        if column_width is not None and len(self.cols) == 1:
            # A shallow wide memory cut into block-RAM-wide columns, each with its own address.
            self.cols = [min(column_width, width - lo) for lo in range(0, width, column_width)]
        self.rd, self.wr, self.rams = [], [], []
        lo = 0
        for c, w in enumerate(self.cols):
            mask = (1 << w) - 1
            col_init = [(v >> lo) & mask for v in init]
            sub = name if len(self.cols) == 1 else f"{name}_c{c}"
            if registered:
                ram = PipelinedRAM(width=w, depth=max(depth, 2), init=col_init, write_ce=False,
                                   wide=True)
                m.submodules[sub] = ram
                self.rams.append(ram)
            else:
                attrs = {"ram_style": "distributed"} if distributed else None
                mem = Memory(shape=unsigned(w), depth=depth, init=col_init, attrs=attrs)
                m.submodules[sub] = mem
                self.rd.append(mem.read_port())
                self.wr.append(mem.write_port())
            lo += w
        # One held address per column, each with its own initial value so that synthesis does
        # not merge them: a column's address multiplexer then sits next to its block RAM
        # instead of one multiplexer driving the address pins of every column.
        self.held = [Signal(range(depth), init=c % depth, name=f"{name}_held{c}")
                     for c in range(len(self.cols))]
        self.addr = [Signal(range(depth), name=f"{name}_addr{c}") for c in range(len(self.cols))]
        #: High in the cycle a registered write lands (``shared_addr``), and its per-column
        #: copies.
        self.w_pend = Signal(name=f"{name}_wpend")
        self.w_pend_cols = [Signal(name=f"{name}_wpend_c{c}") for c in range(len(self.cols))]
        self.replicate = _is_ecp5(platform) and len(self.cols) > 1

    def read(self, m, addr, en, *, next_addr=None):
        """``next_addr``: the value the register ``addr`` loads when ``en`` is high (the caller
        promises ``addr`` is such a register). Each column then reads through its own copy
        of ``addr``, so no single register drives the address pins of every block RAM.
        ``next_addr`` may also be a list of ``G`` such values (copies of one value, each
        placed near its columns): column ``c`` loads ``next_addr[c * G // columns]``."""
        n = len(self.cols)
        copies = [addr] * n
        if next_addr is None:
            pass
        elif self.replicate:
            groups = next_addr if isinstance(next_addr, list) else [next_addr]
            G = len(groups)
            copies = [[] for _ in range(n)]
            for g, value in enumerate(groups):
                cols = [c for c in range(n) if c * G // n == g]
                bits = [replicated_register(m, self.platform, value[i], len(cols),
                                            name=f"{self.name}_ra{g}_b{i}", enable=en)
                        for i in range(len(addr))]
                for k, c in enumerate(cols):
                    copies[c] = Cat(*[bits[i][k] for i in range(len(addr))])
        elif n > 1:
            groups = next_addr if isinstance(next_addr, list) else [next_addr]
            # Distinct initial values keep synthesis from merging the copies; they differ
            # from `addr` only until the first enabled edge, when no read data is used.
            copies = [Signal(len(addr), init=(c + 1) % (1 << len(addr)), name=f"{self.name}_ra{c}")
                      for c in range(n)]
            with m.If(en):
                m.d.sync += [copy.eq(groups[c * len(groups) // n])
                             for c, copy in enumerate(copies)]
        if self.registered:
            # The RAM's clock enable holds its address and output registers while `en` is low.
            for ram, a in zip(self.rams, copies):
                m.d.comb += [ram.ce.eq(en), ram.r_addr.eq(a)]
            return Cat(*[ram.r_data for ram in self.rams])
        if self.distributed:
            for port, a in zip(self.rd, copies):
                m.d.comb += [port.en.eq(en), port.addr.eq(a)]
            return Cat(*[port.data for port in self.rd])
        for held, r_addr, port, a, w_pend in zip(self.held, self.addr, self.rd, copies,
                                                 self.w_pend_cols):
            with m.If(en):
                m.d.sync += held.eq(a)
            m.d.comb += [r_addr.eq(Mux(en & ~w_pend, a, held) if self.shared
                                   else Mux(en, a, held)),
                         port.addr.eq(r_addr)]
        return Cat(*[port.data for port in self.rd])

    def write(self, m, addr, data, en):
        if self.registered and not self.shared:
            for ram in self.rams:
                m.d.comb += [ram.w_en.eq(en), ram.w_addr.eq(addr)]
            lo = 0
            for ram, w in zip(self.rams, self.cols):
                m.d.comb += ram.w_data.eq(data[lo:lo + w])
                lo += w
            return
        if self.registered or self.distributed:
            # Registered like a shared-address write, one copy of the strobe and the address
            # per column; the data register loads every cycle.
            w_data = Signal(sum(self.cols), name=f"{self.name}_wdata", reset_less=True)
            m.d.sync += w_data.eq(data)
            n = len(self.cols)
            pend = replicated_register(m, self.platform, en, n, name=f"{self.name}_wpend_r")
            bits = [replicated_register(m, self.platform, addr[i], n, name=f"{self.name}_wa_b{i}")
                    for i in range(len(addr))]
            ports = ([(ram.w_en, ram.w_data, ram.w_addr) for ram in self.rams] if self.registered
                     else [(port.en, port.data, port.addr) for port in self.wr])
            lo = 0
            for c, ((w_en, w_dat, w_addr), w) in enumerate(zip(ports, self.cols)):
                m.d.comb += [w_en.eq(pend[c]), w_dat.eq(w_data[lo:lo + w]),
                             w_addr.eq(Cat(*[b[c] for b in bits]))]
                lo += w
            return
        if self.shared:
            w_data = Signal(sum(self.cols), name=f"{self.name}_wdata", reset_less=True)
            # The data register loads every cycle (no enable on a row-wide register): the
            # write lands from it in the cycle after `en`, with the data of `en`'s cycle.
            m.d.sync += [self.w_pend.eq(en), w_data.eq(data)]
            if self.replicate:
                pend = replicated_register(m, self.platform, en, len(self.cols),
                                           name=f"{self.name}_wpend_r")
            else:
                pend = [self.w_pend] * len(self.cols)
            m.d.comb += [w.eq(q) for w, q in zip(self.w_pend_cols, pend)]
            with m.If(en):
                # Overrides the read side's load of `held`: the write's cycle reads nothing.
                m.d.sync += [held.eq(addr) for held in self.held]
            # The read address is `held` in this cycle; the very same signal on both ports
            # lets synthesis merge them into one block RAM port.
            addrs, data, ens = self.addr, w_data, self.w_pend_cols
        else:
            addrs, ens = [addr] * len(self.cols), [en] * len(self.cols)
        lo = 0
        for port, w, a, e in zip(self.wr, self.cols, addrs, ens):
            m.d.comb += [port.addr.eq(a), port.data.eq(data[lo:lo + w]), port.en.eq(e)]
            lo += w


def add_tree(m, terms, width, advance, name):
    """Sum ``terms`` (signed values) with a balanced adder tree, a register after every level
    (each register loads while ``advance``); returns ``(sum, levels)``: the sum of the terms
    presented ``levels = ceil(log2(len(terms)))`` advancing cycles earlier."""
    terms = list(terms)
    level = 0
    while len(terms) > 1:
        nxt = []
        for i in range(0, len(terms), 2):
            reg = Signal(signed(width), name=f"{name}_l{level}_{i // 2}")
            with m.If(advance):
                m.d.sync += reg.eq(terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i])
            nxt.append(reg)
        terms = nxt
        level += 1
    return terms[0], level


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
    throughput is one vector per ``K`` cycles; :attr:`latency`
    ``= K + 9 + ceil(log2(banks))`` cycles from the input handshake to ``o.valid`` (issue,
    anchor read, anchor register, ``x[a]``/``x[b]`` select, compare, index register, row
    address register (one copy per block RAM column), the block RAM's own address and output
    registers (``PipelinedRAM``: no block RAM clock-to-out in front of logic), a second row
    register by the adders, one registered adder level per halving of the banks, accumulate
    into the output register). Table memories deeper than 512 rows are split into columns that each fit one
    EBR at their depth (:func:`ebr_columns`), shallower ones into 36-bit columns, so no
    multiplexer follows a block RAM and each column has its own copy of the row address (on
    ECP5 flip-flops that synthesis keeps apart); the accumulator's enable and clear are
    registered once per 8 output values, so no flip-flop drives a whole wide row. Writes
    through ``w`` are registered and land one cycle after their handshake. The whole pipeline stalls while ``o.valid & ~o.ready``;
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
        self.latency = self.K + 9 + ceil_log2(self.banks)
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
        ww, yd, yw = self.w_width, self.y_dim, self.y_width

        # One anchor memory (a row = the n_c pairs of one table) and one table memory per bank;
        # the table address is Cat(j, k), so a bank's memory is exactly K * 2**n_c rows deep.
        amems, tmems = [], []
        for b in range(B):
            ts = list(range(b, self.n_t, B))
            amems.append(RowMemory(m, f"anchors{b}", width=2 * ab * n_c, depth=K,
                                   init=pack_words(self.anchors[ts].reshape(K, 2 * n_c), ab),
                                   shared_addr=True))
            tmems.append(RowMemory(m, f"tables{b}", width=ww * yd, depth=K << n_c,
                                   init=pack_words(self.tables[ts].reshape(K << n_c, yd), ww),
                                   shared_addr=True, column_width=EBR_COLUMN,
                                   platform=platform, registered=True))

        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)

        # Every stage moves one table group (K per vector) while `advance`; nothing else stalls.
        ctl = {"valid": 1, "k": range(K), "first_k": 1, "last_k": 1, "first": 1, "last": 1}
        xs = data.ArrayLayout(signed(self.x_width), n)
        jl = data.ArrayLayout(unsigned(n_c), B)
        # x[a], x[b] with the sign bit flipped: unsigned and in the same order, so that each
        # comparison is one carry chain's carry out.
        vl = data.ArrayLayout(data.ArrayLayout(unsigned(self.x_width), n_c), B)
        flip = 1 << (self.x_width - 1)
        s0 = Signal(data.StructLayout({**ctl, "x": xs}), name="s0")    # issue group k
        s1 = Signal(data.StructLayout({**ctl, "x": xs}), name="s1")    # anchors leave memory
        s2 = Signal(data.StructLayout({**ctl, "x": xs,                 # anchors registered
                                       "ab": data.ArrayLayout(unsigned(2 * ab * n_c), B)}),
                    name="s2")
        s3 = Signal(data.StructLayout({**ctl, "xa": vl, "xb": vl}), name="s3")  # x[a], x[b]
        s4 = Signal(data.StructLayout({**ctl, "j": jl}), name="s4")    # index registered
        s5 = Signal(data.StructLayout({**ctl, "j": jl}), name="s5")    # row read issued
        s6 = Signal(data.StructLayout({**ctl, "j": jl}), name="s6")    # row address sampled
        s7 = Signal(data.StructLayout({**ctl, "j": jl}), name="s7")    # rows in the RAM's
        rows = Signal(data.ArrayLayout(unsigned(ww * yd), B))          # output register
        # A second register: the first sits by its block RAM, the second by the adders.
        rows2 = Signal(data.ArrayLayout(unsigned(ww * yd), B))
        s8 = Signal.like(s7, name="s8")

        last_k = s0.k == K - 1
        m.d.comb += self.i.ready.eq(advance & (~s0.valid | last_k) & ~self.w.valid)
        accept = self.i.valid & self.i.ready

        with m.If(advance):
            with m.If(accept):
                m.d.sync += [s0.valid.eq(1), s0.k.eq(0), s0.first_k.eq(1), s0.last_k.eq(K == 1),
                             s0.x.eq(self.i.payload.x), s0.first.eq(self.i.payload.first),
                             s0.last.eq(self.i.payload.last)]
            with m.Elif(s0.valid & ~last_k):
                m.d.sync += [s0.k.eq(s0.k + 1), s0.first_k.eq(0),
                             s0.last_k.eq(s0.k == max(K - 2, 0))]
            with m.Else():
                m.d.sync += s0.valid.eq(0)
            m.d.sync += s1.eq(s0)
            for dst, src in ((s2, s1), (s3, s2), (s4, s3), (s5, s4), (s6, s5), (s7, s6)):
                m.d.sync += [getattr(dst, f).eq(getattr(src, f)) for f in ctl]
            m.d.sync += [s2.x.eq(s1.x), s5.j.eq(s4.j), s6.j.eq(s5.j), s7.j.eq(s6.j)]

        for b in range(B):
            adata = amems[b].read(m, s0.k, advance)
            bits = []
            for r in range(n_c):
                a = s2.ab[b][(2 * r) * ab:(2 * r + 1) * ab]
                c = s2.ab[b][(2 * r + 1) * ab:(2 * r + 2) * ab]
                bits.append(s3.xa[b][r] > s3.xb[b][r])
                with m.If(advance):
                    m.d.sync += [s3.xa[b][r].eq(s2.x[a].as_unsigned() ^ flip),
                                 s3.xb[b][r].eq(s2.x[c].as_unsigned() ^ flip)]
            # The row address is the registered index (s5; per column, copies of it): the
            # comparisons and the address registers' fanout are a cycle each.
            tdata = tmems[b].read(m, Cat(s5.j[b], s5.k), advance,
                                  next_addr=Cat(s4.j[b], s4.k))
            # The table rows leave the block RAMs through their output registers.
            m.d.comb += rows[b].eq(tdata)
            with m.If(advance):
                # Block RAM outputs go straight into registers (their clock-to-out is long).
                m.d.sync += [s2.ab[b].eq(adata), s4.j[b].eq(Cat(*bits))]

        # Per output value: the banks' rows through a registered adder tree, then the
        # accumulator, which is the output register itself.
        tree_levels = 0
        sums = []
        for e in range(yd):
            total, tree_levels = add_tree(
                m, [rows2[b].word_select(e, ww).as_signed() for b in range(B)], yw, advance,
                f"sum{e}")
            sums.append(total)
        with m.If(advance):
            m.d.sync += [s8.eq(s7), rows2.eq(rows)]
        stages = [s0, s1, s2, s3, s4, s5, s6, s7, s8]
        for level in range(tree_levels):
            nxt = Signal.like(s8, name=f"st{level}")
            with m.If(advance):
                m.d.sync += nxt.eq(stages[-1])
            stages.append(nxt)
        sa = stages[-1]
        # The accumulator's enable and clear, one copy of `sa.valid` and `sa.first_k` per
        # group of ACC_GROUP output values (a wide layer would otherwise drive every output
        # bit from one flip-flop each).
        groups = -(-yd // ACC_GROUP)
        acc_valid = replicated_register(m, platform, stages[-2].valid, groups,
                                        name="acc_valid", enable=advance)
        acc_clear = replicated_register(m, platform, stages[-2].first_k, groups,
                                        name="acc_clear", enable=advance)

        with m.If(advance):
            m.d.sync += self.o.valid.eq(sa.valid & sa.last_k)
            for e in range(yd):
                with m.If(acc_valid[e // ACC_GROUP]):
                    m.d.sync += self.o.payload.y[e].eq(
                        Mux(acc_clear[e // ACC_GROUP], 0, self.o.payload.y[e]) + sums[e])
            with m.If(sa.valid):
                for k in range(K):
                    with m.If(sa.k == k):
                        m.d.sync += [self.o.payload.j[k * B + b].eq(sa.j[b]) for b in range(B)]
                with m.If(sa.last_k):
                    m.d.sync += [self.o.payload.first.eq(sa.first),
                                 self.o.payload.last.eq(sa.last)]

        # Writes land only while no vector is in flight.
        idle = ~Cat(*[s.valid for s in stages]).any()
        w = self.w.payload
        m.d.comb += self.w.ready.eq(idle)
        table_ok = w.table < self.n_t if self.n_t < 2 ** len(w.table) else C(1)
        anchors_ok = Cat(*[(w.a[r] != w.b[r]) & (w.a[r] < n) & (w.b[r] < n)
                           for r in range(n_c)]).all()
        wbank = const_lookup([t % B for t in range(self.n_t)], w.table)
        wk = const_lookup([t // B for t in range(self.n_t)], w.table)
        fire = self.w.valid & idle & table_ok
        for b in range(B):
            amems[b].write(m, wk, Cat(*[Cat(w.a[r], w.b[r]) for r in range(n_c)]),
                           fire & w.kind & anchors_ok & (wbank == b))
            tmems[b].write(m, Cat(w.row, wk), w.y.as_value(), fire & ~w.kind & (wbank == b))
        return m
