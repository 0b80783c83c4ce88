"""A simple dual-port RAM with a registered read, as ECP5 block RAM with its output register.

Yosys maps an Amaranth ``Memory`` read port to a ``DP16KD`` without the block RAM's output
register, so the RAM's slow clock-to-out (about 5.8 ns at speed grade 6) feeds the next logic
directly. :class:`PipelinedRAM` instantiates ``DP16KD`` itself with ``REGMODE_B = "OUTREG"``
when it is elaborated for an ECP5 platform, and is an ordinary ``Memory`` plus a register
everywhere else (simulation, Verilog export, formal), with the same cycle behaviour.
"""

import math

from amaranth.hdl import *
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["PipelinedRAM", "dp16kd_tiling", "dp16kd_initvals", "replicated_logic",
           "replicated_register"]

# DP16KD data widths up to 18 bits (true dual-port modes) and the address bits they leave:
# width -> (words, low address bits unused).
_DP16KD_MODES = {18: (1024, 4), 9: (2048, 3), 4: (4096, 2), 2: (8192, 1), 1: (16384, 0)}
# The 512 x 36 mode: one write port (A) and one read port (B), each 36 bits wide; the low
# 18 bits travel on the A data pins, the high 18 on the B pins (Yosys's PDPW16KD mapping).
_WIDE_MODE = {36: (512, 5)}
_ALL_MODES = {**_WIDE_MODE, **_DP16KD_MODES}


def _check(name, value, lo, hi):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"PipelinedRAM parameter {name!r} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"PipelinedRAM parameter {name!r} must be in {lo}..{hi}, not {value}")
    return value


def dp16kd_tiling(width, depth, wide=False):
    """``(tile_width, columns, banks)``: how :class:`PipelinedRAM` tiles ``DP16KD`` blocks.

    The widest mode whose depth holds ``depth`` words, ``columns`` tiles side by side for the
    width; more than 16384 words take ``banks`` tiles of 1 bit stacked in depth. With
    ``wide``, memories of at most 512 words use the 512 x 36 mode.
    """
    for tile_width, (words, _) in (_ALL_MODES if wide else _DP16KD_MODES).items():
        if words >= depth:
            return tile_width, math.ceil(width / tile_width), 1
    return 1, width, math.ceil(depth / 16384)


def dp16kd_initvals(words, tile_width):
    """The ``INITVAL_00`` .. ``INITVAL_3F`` parameters of one ``DP16KD`` holding ``words``.

    ``words`` are ``tile_width``-bit integers at addresses 0, 1, ... in that data width. The
    block is 1024 rows of 18 bits, two 9-bit bytes; ``INITVAL_xx`` holds rows ``16*xx`` to
    ``16*xx+15``, row ``k`` at bits ``20*k`` up (18 bits, then 2 unused). In the 9- and
    18-bit modes word ``a`` fills bits ``a*w`` up of the 18432-bit row-major array; in the
    1-, 2- and 4-bit modes the ninth bit of each byte is unused, and word ``a`` fills data
    bits ``a*w`` up, 8 to a byte; the 36-bit mode is the 9- and 18-bit layout with word ``a``
    at bit ``a*36``. This is the layout of Yosys's own ECP5 block RAM mapping.
    Returns ``{"INITVAL_00": int, ...}``, 320-bit values; rows without data are zero.
    """
    if tile_width not in _ALL_MODES:
        raise ValueError(f"DP16KD data width must be one of {sorted(_ALL_MODES)}, "
                         f"not {tile_width}")
    capacity = _ALL_MODES[tile_width][0]
    if len(words) > capacity:
        raise ValueError(f"{len(words)} words do not fit a DP16KD of {capacity} words of "
                         f"{tile_width} bits")
    mask = (1 << tile_width) - 1
    linear = 0                                  # the 18432-bit row-major contents
    for a, word in enumerate(words):
        word = int(word) & mask
        if not word:
            continue
        if tile_width >= 9:
            linear |= word << (a * tile_width)
        else:
            for bit in range(tile_width):
                if word >> bit & 1:
                    i = a * tile_width + bit
                    linear |= 1 << ((i // 8) * 9 + i % 8)
    out = {}
    for k in range(0x40):
        value = 0
        for r in range(16):
            value |= (linear >> ((k * 16 + r) * 18) & 0x3FFFF) << (r * 20)
        out[f"INITVAL_{k:02X}"] = value
    return out


def _is_ecp5(platform):
    return getattr(platform, "family", None) == "ecp5"


def replicated_register(m, platform, d, copies, *, name, enable=C(1), init=0):
    """``copies`` registers that each load the 1-bit ``d`` at every ``sync`` edge with
    ``enable`` high (reset and initial value ``init``); returns them as a list.

    Synthesis merges flip-flops with the same input, so plain copies of a register would
    become one flip-flop again; a copy of a high-fanout control signal per group of its loads
    only helps if it stays. On ECP5 every copy is a ``TRELLIS_FF`` instance, which Yosys does
    not merge; elsewhere (simulation, Verilog export) the copies are ordinary registers, with
    the same cycle behaviour.
    """
    if init not in (0, 1):
        raise ValueError(f"replicated_register init must be 0 or 1, not {init!r}")
    regs = [Signal(init=init, name=f"{name}_{k}") for k in range(copies)]
    for k, q in enumerate(regs):
        if _is_ecp5(platform):
            m.submodules[f"{name}_ff{k}"] = Instance(
                "TRELLIS_FF", p_GSR="DISABLED", p_CEMUX="CE", p_CLKMUX="CLK", p_LSRMUX="LSR",
                p_SRMODE="LSR_OVER_CE", p_REGSET="SET" if init else "RESET",
                i_CLK=ClockSignal(), i_LSR=ResetSignal(), i_CE=enable, i_DI=d, o_Q=q)
        else:
            with m.If(enable):
                m.d.sync += q.eq(d)
    return regs


def replicated_logic(m, platform, fn, inputs, copies, *, name):
    """``copies`` 1-bit signals that each equal ``fn(*inputs)`` (up to four 1-bit inputs,
    ``fn`` built from ``&``, ``|``, ``^`` and ``~``); returns them as a list.

    Synthesis merges identical logic, so a high-fanout control signal computed once reaches
    all its loads through one long net. Each copy drives a group of the loads instead. On
    ECP5 every copy is a ``LUT4`` instance, which Yosys does not merge; elsewhere the copies
    are ordinary combinational signals.
    """
    if not 1 <= len(inputs) <= 4:
        raise ValueError(f"replicated_logic takes 1..4 inputs, not {len(inputs)}")
    outs = [Signal(name=f"{name}_{k}") for k in range(copies)]
    if _is_ecp5(platform):
        init = 0
        for idx in range(16):
            bits = [(idx >> b) & 1 for b in range(len(inputs))]
            init |= (fn(*bits) & 1) << idx if not idx >> len(inputs) else 0
        pins = dict(zip("ABCD", inputs))
        for k, z in enumerate(outs):
            m.submodules[f"{name}_lut{k}"] = Instance(
                "LUT4", a_keep=1, p_INIT=C(init, 16),
                **{f"i_{pin}": pins.get(pin, C(0, 1)) for pin in "ABCD"}, o_Z=z)
    else:
        for z in outs:
            m.d.comb += z.eq(fn(*inputs))
    return outs


class PipelinedRAM(wiring.Component):
    """``depth`` words of ``width`` bits; one write port, one read port with read latency 2.

    Parameters
    ----------
    width : int
        Word width, 1..4096.
    depth : int
        Number of words, 2..65536.
    block_ram : bool or None
        On ECP5, use ``DP16KD`` blocks (``True``) or leave the memory to synthesis (``False``:
        distributed RAM or flip-flops, plus a register). ``None`` (default): block RAM when
        ``depth > 16``. Ignored on other platforms.
    write_ce : bool
        ``True`` (default): ``ce`` gates the write port too. ``False``: writes happen whenever
        ``w_en`` is high, whatever ``ce``; ``ce`` then only holds the read side.
    init : sequence of int or None
        Initial contents, at most ``depth`` words (each ``0 <= word < 2**width``), the rest
        zero; ``None``: all zero. On ECP5 with block RAM they become the ``DP16KD`` blocks'
        ``INITVAL`` parameters (:func:`dp16kd_initvals`).
    wide : bool
        On ECP5 with block RAM, a memory of at most 512 words uses the ``DP16KD``'s 512 x 36
        mode (one write and one read port) instead of 18-bit tiles: half the block RAMs.
        Default ``False``.

    Members
    -------
    ce : ``In(1, init=1)``
        Clock enable of the whole RAM: with ``ce`` low no write happens (unless ``write_ce``
        is ``False``), the read address is not sampled and ``r_data`` holds.
    w_en, w_addr, w_data : ``In(1)``, ``In(range(depth))``, ``In(width)``
        Write ``w_data`` to ``w_addr`` at an enabled edge where ``w_en`` is high.
    r_addr : ``In(range(depth))``
        Read address, sampled at every enabled edge.
    r_data : ``Out(width)``
        The word at the ``r_addr`` sampled two enabled edges earlier (an address register, then
        the output register). A read sampled at the same edge as a write to the same address
        returns an undefined word (this model returns the old one); a write one enabled edge or
        more before the read is seen. Contents start as ``init`` (zero where not given).

    On ECP5 with block RAM: ``DP16KD`` in modes up to 18 bits wide, or 36 with ``wide`` (see
    :func:`dp16kd_tiling`), port A writing, port B reading through its output register; the
    ``r_addr`` to ``r_data`` path then holds no logic except, beyond 16384 words, a bank
    select after the output registers.
    """

    #: Enabled edges from ``r_addr`` to ``r_data``.
    latency = 2

    def __init__(self, *, width, depth, block_ram=None, init=None, write_ce=True, wide=False):
        self.width = _check("width", width, 1, 4096)
        self.depth = _check("depth", depth, 2, 65536)
        init = [] if init is None else list(init)
        if len(init) > depth:
            raise ValueError(f"PipelinedRAM parameter 'init' has {len(init)} words, more than "
                             f"depth={depth}")
        for a, word in enumerate(init):
            if (not isinstance(word, int) or isinstance(word, bool)
                    or not 0 <= word < 1 << width):
                raise ValueError(f"PipelinedRAM parameter 'init' word {a} must be an integer in "
                                 f"0..{(1 << width) - 1}, not {word!r}")
        self.init = init
        if not isinstance(write_ce, bool):
            raise TypeError(f"PipelinedRAM parameter 'write_ce' must be a bool, not "
                            f"{write_ce!r}")
        self.write_ce = write_ce
        if not isinstance(wide, bool):
            raise TypeError(f"PipelinedRAM parameter 'wide' must be a bool, not {wide!r}")
        self.wide = wide
        if block_ram is not None and not isinstance(block_ram, bool):
            raise TypeError(f"PipelinedRAM parameter 'block_ram' must be a bool or None, not "
                            f"{block_ram!r}")
        self.block_ram = depth > 16 if block_ram is None else block_ram
        super().__init__({
            "ce": In(1, init=1),
            "w_en": In(1), "w_addr": In(range(depth)), "w_data": In(width),
            "r_addr": In(range(depth)), "r_data": Out(width),
        })

    def elaborate(self, platform):
        if self.block_ram and _is_ecp5(platform):
            return self._elaborate_dp16kd()
        m = Module()
        m.submodules.mem = mem = Memory(shape=self.width, depth=self.depth, init=self.init)
        wr = mem.write_port()
        rd = mem.read_port(transparent_for=())
        m.d.comb += [wr.en.eq(self.w_en & (self.ce if self.write_ce else 1)),
                     wr.addr.eq(self.w_addr),
                     wr.data.eq(self.w_data), rd.en.eq(self.ce), rd.addr.eq(self.r_addr)]
        with m.If(self.ce):
            m.d.sync += self.r_data.eq(rd.data)
        return m

    def _elaborate_dp16kd(self):
        m = Module()
        tile_width, columns, banks = dp16kd_tiling(self.width, self.depth, self.wide)
        shift = _ALL_MODES[tile_width][1]
        wide = tile_width == 36
        bank_bits = max(banks - 1, 0).bit_length()
        words = []
        for bank in range(banks):
            w_sel = self.w_en & ((self.w_addr >> 14) == bank if banks > 1 else 1)
            data = []
            for col in range(columns):
                lo = col * tile_width
                hi = min(lo + tile_width, self.width)
                din = Signal(tile_width, name=f"din_{bank}_{col}")
                dout = Signal(tile_width, name=f"dout_{bank}_{col}")
                m.d.comb += din.eq(self.w_data[lo:hi])
                # Port A writes; with 18-bit words its two low address pins are byte enables.
                # In the 36-bit mode its four low address pins are the byte enables and the
                # write enable (as Yosys maps PDPW16KD), and the data is split over the A and
                # B data pins, both read through their output registers.
                if wide:
                    ada = Cat(w_sel.replicate(4), C(0, 1), self.w_addr[:14 - shift])
                else:
                    ada = Cat(Const(0b11 if tile_width == 18 else 0, shift),
                              self.w_addr[:14 - shift])
                adb = Cat(Const(0, shift), self.r_addr[:14 - shift])
                ports = {
                    "i_CLKA": ClockSignal(), "i_CEA": self.ce if self.write_ce else C(1),
                    "i_OCEA": self.ce,
                    "i_WEA": C(1) if wide else w_sel, "i_RSTA": C(0), "i_CLKB": ClockSignal(),
                    "i_CEB": self.ce, "i_OCEB": self.ce, "i_WEB": C(0), "i_RSTB": C(0),
                }
                for k in range(3):
                    ports[f"i_CSA{k}"] = C(0)
                    ports[f"i_CSB{k}"] = C(0)
                for k in range(14):
                    ports[f"i_ADA{k}"] = ada[k] if k < len(ada) else C(0)
                    ports[f"i_ADB{k}"] = adb[k] if k < len(adb) else C(0)
                for k in range(18):
                    ports[f"i_DIA{k}"] = din[k] if k < tile_width else C(0)
                    ports[f"i_DIB{k}"] = din[18 + k] if wide else C(0)
                if wide:
                    for k in range(18):
                        ports[f"o_DOA{k}"] = dout[k]
                        ports[f"o_DOB{k}"] = dout[18 + k]
                else:
                    for k in range(tile_width):
                        ports[f"o_DOB{k}"] = dout[k]
                tile_init = [(w >> lo) & ((1 << (hi - lo)) - 1)
                             for w in self.init[bank * 16384:(bank + 1) * 16384]]
                initvals = {f"p_{name}": Const(value, 320) for name, value
                            in dp16kd_initvals(tile_init, tile_width).items() if value}
                m.submodules[f"ram_{bank}_{col}"] = Instance(
                    "DP16KD", **initvals,
                    p_DATA_WIDTH_A=tile_width, p_DATA_WIDTH_B=tile_width,
                    p_REGMODE_A="OUTREG" if wide else "NOREG", p_REGMODE_B="OUTREG",
                    p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
                    p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
                    p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED",
                    **ports)
                data.append(dout[:hi - lo])
            words.append(Cat(*data))
        if banks == 1:
            m.d.comb += self.r_data.eq(words[0])
        else:
            # The bank number follows the address through both of the RAM's registers.
            sel1 = Signal(bank_bits)
            sel2 = Signal(bank_bits)
            with m.If(self.ce):
                m.d.sync += [sel1.eq(self.r_addr >> 14), sel2.eq(sel1)]
            m.d.comb += self.r_data.eq(Array(words)[sel2])
        return m
