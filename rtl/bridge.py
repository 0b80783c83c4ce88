"""Host bridge: the framed byte protocol of ``docs/bridge.md`` in front of a core and memories.

:class:`Bridge` takes bytes in and gives bytes out as streams (so it is tested without a UART);
:class:`UARTBridge` puts the UART PHY of :mod:`spikeforge.rtl.uart` in front of it for boards.
The protocol constants come from :mod:`spikeforge.firmware.protocol`, the host side's reference.
"""

import json
import zlib
from numbers import Integral

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikeforge.firmware.protocol import ERROR, ESC, ESC_XOR, RESPONSE, SYNC, VERSION, Cmd, Err

from .uart import UARTRx, UARTTx

__all__ = ["Bridge", "Composite", "MemoryWindowSignature", "UARTBridge", "WindowMemory",
           "crc16_step", "describe_shape"]

#: Largest beat of a stream, in bytes: one beat must fit a SEND_BEATS frame (255 - 2).
MAX_BEAT_BYTES = 253
#: Largest memory word, in bytes: one word must fit a WRITE_MEM frame (255 - 6).
MAX_WORD_BYTES = 249


def _int(owner, name, value, lo, hi):
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"{owner} parameter {name!r} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{owner} parameter {name!r} must be in {lo}..{hi}, not {value}")
    return int(value)


def crc16_step(crc, byte):
    """CRC-16/CCITT-FALSE register after one more byte: a 16-bit XOR network (no carry chain).

    Built by running the bit-serial algorithm on sets of input bits (XOR is symmetric
    difference), so every output bit is the XOR of the inputs it depends on.
    """
    crc, byte = Value.cast(crc), Value.cast(byte)
    reg = [frozenset([("c", i)]) for i in range(16)]
    for i in range(8):
        fb = reg[15] ^ frozenset([("d", 7 - i)])
        reg = [fb] + reg[:15]
        for tap in (5, 12):
            reg[tap] = reg[tap] ^ fb
    bits = []
    for terms in reg:
        value = C(0, 1)
        for kind, k in sorted(terms):
            value = value ^ (crc[k] if kind == "c" else byte[k])
        bits.append(value)
    return Cat(*bits)


def describe_shape(shape) -> dict:
    """The JSON layout of a payload shape, as :class:`spikeforge.firmware.protocol.LayoutCodec`
    reads it: ``{"width", "signed"}``, ``{"struct": [...]}`` or ``{"array": {...}}``."""
    if isinstance(shape, data.ArrayLayout):
        return {"array": {"length": shape.length, "stride": Shape.cast(shape.elem_shape).width,
                          "shape": describe_shape(shape.elem_shape)}}
    if isinstance(shape, data.Layout):
        return {"struct": [{"name": str(name), "offset": field.offset,
                            "shape": describe_shape(field.shape)} for name, field in shape]}
    sh = Shape.cast(shape)
    return {"width": sh.width, "signed": sh.signed}


class MemoryWindowSignature(wiring.Signature):
    """A memory as the bridge sees it: one word per address, read latency one cycle.

    Members (initiator side; a memory takes ``In(MemoryWindowSignature(...))``)::

        addr: Out(range(depth))    w_data: Out(width)    w_en: Out(1)
        r_en: Out(1)               r_data: In(width)

    ``r_data`` holds the word at ``addr`` from the cycle after ``r_en``. ``signed`` tells the
    host how to read the words; ``writable=False`` makes WRITE_MEM answer READ_ONLY.
    """

    def __init__(self, *, width, depth, signed=False, writable=True):
        self.width = _int("MemoryWindowSignature", "width", width, 1, 8 * MAX_WORD_BYTES)
        self.depth = _int("MemoryWindowSignature", "depth", depth, 1, 2 ** 32)
        for name, value in (("signed", signed), ("writable", writable)):
            if not isinstance(value, bool):
                raise TypeError(f"MemoryWindowSignature parameter {name!r} must be a bool, "
                                f"not {value!r}")
        self.signed, self.writable = signed, writable
        super().__init__({"addr": Out(range(self.depth)), "w_data": Out(self.width),
                          "w_en": Out(1), "r_en": Out(1), "r_data": In(self.width)})

    def __eq__(self, other):
        return (type(other) is MemoryWindowSignature and
                (self.width, self.depth, self.signed, self.writable) ==
                (other.width, other.depth, other.signed, other.writable))

    def __hash__(self):
        return hash((self.width, self.depth, self.signed, self.writable))

    def __repr__(self):
        return (f"MemoryWindowSignature(width={self.width}, depth={self.depth}, "
                f"signed={self.signed}, writable={self.writable})")


class WindowMemory(wiring.Component):
    """A block of RAM behind a memory window (e.g. a table only the host reads and writes).

    Parameters
    ----------
    width, depth : int
        Word width in bits and number of words.
    signed : bool
        Words are two's complement (for the host; the RAM stores raw bits).
    writable : bool
        ``False`` gives a ROM holding ``init``.
    init : sequence of int
        Initial contents (shorter than ``depth`` is padded with zeros), each in the signed or
        unsigned ``width``-bit range.

    Members
    -------
    window : ``In(MemoryWindowSignature(width=, depth=, signed=, writable=))``, same values
    """

    def __init__(self, *, width, depth, signed=False, writable=True, init=()):
        sig = MemoryWindowSignature(width=width, depth=depth, signed=signed, writable=writable)
        init = list(init)
        if len(init) > sig.depth:
            raise ValueError(f"WindowMemory parameter 'init' has {len(init)} words, more than "
                             f"depth={sig.depth}")
        lo, hi = ((-(1 << (sig.width - 1)), (1 << (sig.width - 1)) - 1) if signed
                  else (0, (1 << sig.width) - 1))
        for k, word in enumerate(init):
            if not isinstance(word, Integral) or isinstance(word, bool) or not lo <= word <= hi:
                raise ValueError(f"WindowMemory parameter 'init' word {k} must be an integer "
                                 f"in {lo}..{hi}, not {word!r}")
        self.init = [int(w) & ((1 << sig.width) - 1) for w in init]
        super().__init__({"window": In(sig)})

    def elaborate(self, platform):
        m = Module()
        sig = self.window.signature.flip()
        m.submodules.mem = mem = Memory(shape=sig.width, depth=sig.depth, init=self.init)
        rd = mem.read_port()
        m.d.comb += [rd.addr.eq(self.window.addr), rd.en.eq(self.window.r_en),
                     self.window.r_data.eq(rd.data)]
        if sig.writable:
            wr = mem.write_port()
            m.d.comb += [wr.addr.eq(self.window.addr), wr.data.eq(self.window.w_data),
                         wr.en.eq(self.window.w_en)]
        return m


class Composite(wiring.Component):
    """Several cores side by side, so that one bridge serves them all.

    ``Composite(lif=LIF(...), ternary_linear=TernaryLinear(...))`` has a member
    ``<name>_<member>`` for every member of every core (same flow and signature), wired
    straight through: ``lif_i``, ``lif_o``, ``ternary_linear_w``, ... The cores do not talk
    to each other; each keeps its own timing.
    """

    def __init__(self, **cores):
        if not cores:
            raise ValueError("Composite needs at least one core")
        members = {}
        for name, core in cores.items():
            if not isinstance(core, wiring.Component):
                raise TypeError(f"Composite core {name!r} must be an amaranth.lib.wiring."
                                f"Component, not {core!r}")
            for member_name, member in core.signature.members.items():
                key = f"{name}_{member_name}"
                if key in members:
                    raise ValueError(f"Composite member name {key!r} is ambiguous")
                members[key] = member
        self.cores = cores
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for name, core in self.cores.items():
            m.submodules[name] = core
            for member_name in core.signature.members:
                wiring.connect(m, wiring.flipped(getattr(self, f"{name}_{member_name}")),
                               getattr(core, member_name))
        return m


class _Stream:
    def __init__(self, index, name, direction, shape):
        self.index, self.name, self.dir, self.shape = index, name, direction, shape
        self.width = Shape.cast(shape).width
        self.nbytes = max(1, (self.width + 7) // 8)


class _Window:
    def __init__(self, index, name, sig, target):
        self.index, self.name, self.sig, self.target = index, name, sig, target
        self.nbytes = (sig.width + 7) // 8


def _const_mul(value, k):
    # Shift-add: a constant factor must not become a DSP block.
    terms = [value << s for s in range(k.bit_length()) if k >> s & 1]
    return sum(terms[1:], terms[0]) if terms else C(0)


class Bridge(wiring.Component):
    """The host bridge: frames in on ``rx``, responses out on ``tx`` (``docs/bridge.md``).

    Parameters
    ----------
    core : wiring.Component
        The attached design. Each member is either a stream (any payload; ``In`` streams take
        the host's input beats, ``Out`` streams fill output FIFOs the host reads) or an
        ``In(MemoryWindowSignature(...))`` memory the host can read and write.
    design : str
        Name reported in the descriptor (e.g. the core's registry name).
    params : dict
        JSON-serialisable parameters reported in the descriptor (e.g. the core's parameters).
    memories : dict of str to wiring.Component
        More memories, each a component with a ``window`` member like :class:`WindowMemory`;
        they become submodules of the bridge.
    in_depth : int
        Depth of the FIFO in front of each input stream (1..4096).
    out_depth : int
        Depth of the FIFO behind each output stream (1..32768).
    stall_limit : int
        SEND_BEATS stops (and reports how many beats it took) once an input FIFO has been full
        for this many cycles (1..2**24).
    timeout : int
        A frame whose next byte does not arrive within this many cycles is dropped as
        TRUNCATED (2..2**32). Make it longer than any pause the host's serial adapter inserts
        (USB serial adapters pause up to a few ms): the default, 2**21, is 14 ms at 150 MHz.

    Members
    -------
    rx : ``In(stream.Signature(8))``
        Bytes from the host. ``rx.ready`` is always 1: the bridge takes one byte per cycle.
    tx : ``Out(stream.Signature(8))``
        Bytes to the host (registered; any backpressure is fine).

    Memories are numbered from 1 in order (the core's windows in member order, then
    ``memories``); memory 0 is the read-only descriptor, UTF-8 JSON giving the design, params,
    streams (index, name, direction, width, bytes, FIFO depth, layout) and memories; its CRC-32
    is the design id. Streams are numbered from 0 in member order.

    One frame is executed at a time; frames are parsed while the previous response is sent, so a
    host that waits for each response never loses a frame, and a frame after garbage is
    executed after the garbage's error response. A frame that completes while the previous
    frame still holds the payload buffer (only possible if the host does not wait) is answered
    BUSY. Error responses for framing errors are sent best-effort: a newer one replaces one not
    yet sent. Reset: no frame, empty FIFOs, counters zero.
    """

    def __init__(self, core, *, design="core", params=None, memories=None, in_depth=4,
                 out_depth=64, stall_limit=1024, timeout=2 ** 21):
        if not isinstance(core, wiring.Component):
            raise TypeError(f"Bridge parameter 'core' must be an amaranth.lib.wiring.Component, "
                            f"not {core!r}")
        if not isinstance(design, str) or not design:
            raise TypeError(f"Bridge parameter 'design' must be a non-empty string, not {design!r}")
        params = {} if params is None else params
        if not isinstance(params, dict):
            raise TypeError(f"Bridge parameter 'params' must be a dict, not {params!r}")
        try:
            json.dumps(params)
        except (TypeError, ValueError):
            raise TypeError(f"Bridge parameter 'params' must be JSON-serialisable, not "
                            f"{params!r}") from None
        memories = {} if memories is None else memories
        if not isinstance(memories, dict):
            raise TypeError(f"Bridge parameter 'memories' must be a dict, not {memories!r}")
        self.in_depth = _int("Bridge", "in_depth", in_depth, 1, 4096)
        self.out_depth = _int("Bridge", "out_depth", out_depth, 1, 32768)
        self.stall_limit = _int("Bridge", "stall_limit", stall_limit, 1, 2 ** 24)
        self.timeout = _int("Bridge", "timeout", timeout, 2, 2 ** 32)
        self.core, self.design, self.params = core, design, params

        self.streams, windows = [], []
        for name, member in core.signature.members.items():
            if member.is_signature and isinstance(member.signature, stream.Signature):
                if member.dimensions:
                    raise ValueError(f"Bridge core member {name!r} is an array of streams; "
                                     f"attach each stream as its own member")
                direction = "in" if member.flow == In else "out"
                s = _Stream(len(self.streams), name, direction,
                            member.signature.members["payload"].shape)
                if s.nbytes > MAX_BEAT_BYTES:
                    raise ValueError(f"Bridge core stream {name!r} has {s.width}-bit beats; "
                                     f"at most {8 * MAX_BEAT_BYTES} bits fit a frame")
                self.streams.append(s)
            elif (member.is_signature and isinstance(member.signature, MemoryWindowSignature)
                  and member.flow == In and not member.dimensions):
                windows.append((name, member.signature.flip(), getattr(core, name)))
            else:
                raise ValueError(f"Bridge core member {name!r} is neither a stream nor an "
                                 f"In(MemoryWindowSignature) memory")
        for name, comp in memories.items():
            member = (comp.signature.members.get("window")
                      if isinstance(comp, wiring.Component) else None)
            if (not isinstance(name, str) or member is None or not member.is_signature or
                    not isinstance(member.signature, MemoryWindowSignature) or member.flow != In):
                raise TypeError(f"Bridge memory {name!r} must be a component with a 'window' "
                                f"member In(MemoryWindowSignature), not {comp!r}")
            windows.append((name, member.signature.flip(), comp))
        names = [w[0] for w in windows]
        for name in names:
            if name == "descriptor" or names.count(name) > 1:
                raise ValueError(f"Bridge memory name {name!r} is reserved or used twice")
        if len(windows) > 254 or len(self.streams) > 255:
            raise ValueError("Bridge supports at most 254 memories and 255 streams")

        self.descriptor = json.dumps({
            "protocol": VERSION, "design": design, "params": params,
            "streams": [{"index": s.index, "name": s.name, "dir": s.dir, "width": s.width,
                         "bytes": s.nbytes,
                         "fifo": self.in_depth if s.dir == "in" else self.out_depth,
                         "layout": describe_shape(s.shape)} for s in self.streams],
            "memories": [{"index": k + 1, "name": name, "width": sig.width, "depth": sig.depth,
                          "signed": sig.signed, "writable": sig.writable}
                         for k, (name, sig, _) in enumerate(windows)],
        }, sort_keys=True, separators=(",", ":")).encode()
        if len(self.descriptor) > 65535:
            raise ValueError(f"Bridge descriptor is {len(self.descriptor)} bytes, more than "
                             f"65535; pass fewer or shorter params")
        #: CRC-32 (zlib) of the descriptor: equal ids mean equal designs.
        self.design_id = zlib.crc32(self.descriptor)
        desc_sig = MemoryWindowSignature(width=8, depth=len(self.descriptor), writable=False)
        self.windows = [_Window(0, "descriptor", desc_sig, None)] + [
            _Window(k + 1, name, sig, target) for k, (name, sig, target) in enumerate(windows)]
        super().__init__({"rx": In(stream.Signature(8)), "tx": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core

        # ---- memory windows (0: the descriptor ROM) ----
        ifaces = []
        for w in self.windows:
            iface = w.sig.create(path=(f"win_{w.name}",))
            if w.target is None:
                m.submodules.descriptor = rom = Memory(shape=8, depth=len(self.descriptor),
                                                       init=list(self.descriptor))
                rp = rom.read_port()
                m.d.comb += [rp.addr.eq(iface.addr), rp.en.eq(iface.r_en),
                             iface.r_data.eq(rp.data)]
            elif isinstance(w.target, wiring.Component):
                m.submodules[f"mem_{w.name}"] = w.target
                wiring.connect(m, iface, w.target.window)
            else:
                wiring.connect(m, iface, w.target)      # a memory member of the core
            ifaces.append(iface)

        # ---- stream FIFOs ----
        in_fifos, out_fifos = {}, {}
        for s in self.streams:
            port = getattr(core, s.name)
            if s.dir == "in":
                fifo = in_fifos[s.index] = SyncFIFOBuffered(width=s.width, depth=self.in_depth)
                m.submodules[f"in_{s.name}"] = fifo
                m.d.comb += [Value.cast(port.payload).eq(fifo.r_data),
                             port.valid.eq(fifo.r_rdy), fifo.r_en.eq(port.ready)]
            else:
                fifo = out_fifos[s.index] = SyncFIFOBuffered(width=s.width, depth=self.out_depth)
                m.submodules[f"out_{s.name}"] = fifo
                m.d.comb += [fifo.w_data.eq(Value.cast(port.payload)),
                             fifo.w_en.eq(port.valid), port.ready.eq(fifo.w_rdy)]

        # ---- the payload buffer: written by the parser, read by the executor ----
        m.submodules.buf = buf = Memory(shape=8, depth=256, init=[])
        buf_wr = buf.write_port()
        buf_rd = buf.read_port()

        frame_ready = Signal()      # a checked frame holds the buffer and the x_* registers
        frame_done = Signal()       # parser: set frame_ready
        release = Signal()          # executor: clear frame_ready
        x_len, x_tag, x_cmd = Signal(8), Signal(8), Signal(8)
        x_args = Signal(48)         # the first six payload bytes

        err_pending = Signal()
        err_code, err_tag, err_cmd = Signal(8), Signal(8), Signal(8)
        err_take = Signal()         # executor: takes the pending error

        counters = [Signal(16, name=f"count_{n}")
                    for n in ("ok", "crc", "truncated", "busy", "rejected")]
        c_ok, c_crc, c_trunc, c_busy, c_rejected = counters

        # ---- parser: unstuffing, framing, CRC (never stalls) ----
        P_IDLE, P_LEN, P_TAG, P_CMD, P_PAY, P_CRC1, P_CRC2 = range(7)
        p_state = Signal(range(7))
        p_esc = Signal()
        p_crc = Signal(16)
        p_len, p_tag, p_cmd, p_idx = Signal(8), Signal(8), Signal(8), Signal(8)
        p_args = Signal(48)
        p_lost = Signal()
        p_timer = Signal(range(self.timeout))
        perr, perr_code = Signal(), Signal(8)

        rx = self.rx
        m.d.comb += rx.ready.eq(1)
        is_sync = rx.valid & (rx.payload == SYNC)
        is_esc = rx.valid & (rx.payload == ESC)
        is_data = rx.valid & ~is_sync & ~is_esc
        byte = Signal(8)
        m.d.comb += byte.eq(rx.payload ^ Mux(p_esc, ESC_XOR, 0))
        crc_next = Signal(16)
        m.d.comb += crc_next.eq(crc16_step(p_crc, byte))

        with m.If(rx.valid):
            m.d.sync += [p_esc.eq(is_esc), p_timer.eq(0)]

        m.d.comb += [buf_wr.addr.eq(p_idx), buf_wr.data.eq(byte)]
        with m.If(is_sync):
            m.d.sync += [p_state.eq(P_LEN), p_crc.eq(0xFFFF)]
            with m.If(p_state > P_LEN):
                m.d.comb += [perr.eq(1), perr_code.eq(Err.TRUNCATED)]
                m.d.sync += c_trunc.eq(c_trunc + 1)
        with m.Elif(is_data & (p_state != P_IDLE)):
            m.d.sync += p_crc.eq(crc_next)
            with m.Switch(p_state):
                with m.Case(P_LEN):
                    m.d.sync += [p_len.eq(byte), p_state.eq(P_TAG)]
                with m.Case(P_TAG):
                    m.d.sync += [p_tag.eq(byte), p_state.eq(P_CMD)]
                with m.Case(P_CMD):
                    m.d.sync += [p_cmd.eq(byte), p_idx.eq(0), p_lost.eq(frame_ready),
                                 p_state.eq(Mux(p_len == 0, P_CRC1, P_PAY))]
                with m.Case(P_PAY):
                    m.d.comb += buf_wr.en.eq(~frame_ready & ~p_lost)
                    m.d.sync += [p_idx.eq(p_idx + 1), p_lost.eq(p_lost | frame_ready)]
                    for k in range(6):
                        with m.If(p_idx == k):
                            m.d.sync += p_args[8 * k:8 * k + 8].eq(byte)
                    with m.If(p_idx == p_len - 1):
                        m.d.sync += p_state.eq(P_CRC1)
                with m.Case(P_CRC1):
                    m.d.sync += p_state.eq(P_CRC2)
                with m.Case(P_CRC2):
                    m.d.sync += p_state.eq(P_IDLE)
                    with m.If(crc_next != 0):
                        m.d.comb += [perr.eq(1), perr_code.eq(Err.CRC)]
                        m.d.sync += c_crc.eq(c_crc + 1)
                    with m.Elif(p_lost | frame_ready):
                        m.d.comb += [perr.eq(1), perr_code.eq(Err.BUSY)]
                        m.d.sync += c_busy.eq(c_busy + 1)
                    with m.Else():
                        m.d.comb += frame_done.eq(1)
                        m.d.sync += [x_len.eq(p_len), x_tag.eq(p_tag), x_cmd.eq(p_cmd),
                                     x_args.eq(p_args), c_ok.eq(c_ok + 1)]
        with m.Elif(~rx.valid & (p_state != P_IDLE)):
            with m.If(p_timer == self.timeout - 1):
                m.d.sync += p_state.eq(P_IDLE)
                with m.If(p_state != P_LEN):
                    m.d.comb += [perr.eq(1), perr_code.eq(Err.TRUNCATED)]
                    m.d.sync += c_trunc.eq(c_trunc + 1)
            with m.Else():
                m.d.sync += p_timer.eq(p_timer + 1)

        with m.If(perr):
            m.d.sync += [err_pending.eq(1), err_code.eq(perr_code),
                         err_tag.eq(Mux(p_state > P_TAG, p_tag, 0)),
                         err_cmd.eq(Mux(p_state > P_CMD, p_cmd, 0))]
        with m.Elif(err_take):
            m.d.sync += err_pending.eq(0)
        with m.If(frame_done):
            m.d.sync += frame_ready.eq(1)
        with m.Elif(release):
            m.d.sync += frame_ready.eq(0)

        # ---- transmit side: byte stuffing in front of tx ----
        e_valid, e_ready, e_data = Signal(), Signal(), Signal(8)
        e_sync, e_crc_en = Signal(), Signal()
        second, second_byte = Signal(), Signal(8)
        tx = self.tx
        out_free = ~tx.valid | tx.ready
        m.d.comb += e_ready.eq(out_free & ~second)
        with m.If(out_free):
            with m.If(second):
                m.d.sync += [tx.payload.eq(second_byte), tx.valid.eq(1), second.eq(0)]
            with m.Elif(e_valid):
                m.d.sync += tx.valid.eq(1)
                with m.If(e_sync):
                    m.d.sync += tx.payload.eq(SYNC)
                with m.Elif((e_data == SYNC) | (e_data == ESC)):
                    m.d.sync += [tx.payload.eq(ESC), second.eq(1),
                                 second_byte.eq(e_data ^ ESC_XOR)]
                with m.Else():
                    m.d.sync += tx.payload.eq(e_data)
            with m.Else():
                m.d.sync += tx.valid.eq(0)

        tx_crc = Signal(16)
        with m.If(e_valid & e_ready):
            with m.If(e_sync):
                m.d.sync += tx_crc.eq(0xFFFF)
            with m.Elif(e_crc_en):
                m.d.sync += tx_crc.eq(crc16_step(tx_crc, e_data))

        # ---- executor ----
        maxb = max([w.nbytes for w in self.windows] + [s.nbytes for s in self.streams])
        shreg = Signal(8 * maxb)
        k = Signal(8)               # byte within a word/beat, or within the vector
        r_len, r_tag, r_cmd = Signal(8), Signal(8), Signal(8)
        B_VEC, B_RM, B_RB = range(3)
        r_body = Signal(range(3))
        vec = Signal(80)
        e_idx = Signal(8)
        e_addr = Signal(32)
        e_count = Signal(8)
        accepted = Signal(8)
        stall = Signal(range(self.stall_limit))
        ridx = Signal(8)

        idx = x_args[0:8]
        addr = x_args[8:40]
        mcount = x_args[40:48]
        scount = x_args[8:16]

        # Per-memory and per-stream constants, selected by the executing index.
        e_nbytes = Signal(8)
        with m.Switch(e_idx):
            for w in self.windows:
                with m.Case(w.index):
                    m.d.comb += e_nbytes.eq(w.nbytes)
        win_rdata = Signal(8 * maxb)
        win_r_en, win_w_en = Signal(), Signal()
        for w, iface in zip(self.windows, ifaces):
            sel = e_idx == w.index
            m.d.comb += [iface.addr.eq(e_addr), iface.w_data.eq(shreg),
                         iface.r_en.eq(win_r_en & sel)]
            if w.sig.writable:
                m.d.comb += iface.w_en.eq(win_w_en & sel)
            with m.If(sel):
                m.d.comb += win_rdata.eq(iface.r_data)
        s_nbytes = Signal(8)
        s_push, s_w_rdy = Signal(), Signal()
        s_pop, s_r_rdy, s_rdata = Signal(), Signal(), Signal(8 * maxb)
        for s in self.streams:
            sel = e_idx == s.index
            with m.If(sel):
                m.d.comb += s_nbytes.eq(s.nbytes)
            if s.dir == "in":
                fifo = in_fifos[s.index]
                m.d.comb += [fifo.w_data.eq(shreg), fifo.w_en.eq(s_push & sel)]
                with m.If(sel):
                    m.d.comb += s_w_rdy.eq(fifo.w_rdy)
            else:
                fifo = out_fifos[s.index]
                m.d.comb += fifo.r_en.eq(s_pop & sel)
                with m.If(sel):
                    m.d.comb += [s_r_rdy.eq(fifo.r_rdy), s_rdata.eq(fifo.r_data)]

        m.d.comb += [buf_rd.addr.eq(ridx)]
        ident = Cat(C(VERSION, 8), C(self.design_id, 32), C(len(self.descriptor), 16))
        code, code_r = Signal(8), Signal(8)
        rm_len, rb_count, level_r = Signal(8), Signal(8), Signal(16)

        def emit(value, *, crc=True):
            m.d.comb += [e_valid.eq(1), e_data.eq(value), e_crc_en.eq(crc)]

        def respond(length, body, payload=None):
            m.d.sync += [r_len.eq(length), r_body.eq(body), r_tag.eq(x_tag),
                         r_cmd.eq(x_cmd | RESPONSE)]
            if payload is not None:
                m.d.sync += vec.eq(payload)

        with m.FSM(name="executor"):
            with m.State("IDLE"):
                with m.If(err_pending):
                    m.d.comb += err_take.eq(1)
                    m.d.sync += [r_len.eq(2), r_body.eq(B_VEC), r_tag.eq(err_tag),
                                 r_cmd.eq(ERROR), vec.eq(Cat(err_code, err_cmd))]
                    m.next = "H_SYNC"
                with m.Elif(frame_ready):
                    m.next = "CHECK"

            with m.State("CHECK"):
                # Every check first, so that a rejected frame changes nothing.
                with m.Switch(x_cmd):
                    with m.Case(Cmd.IDENTIFY, Cmd.STATUS):
                        with m.If(x_len != 0):
                            m.d.comb += code.eq(Err.LENGTH)
                    with m.Case(Cmd.WRITE_MEM, Cmd.READ_MEM):
                        with m.If(x_len < 6):
                            m.d.comb += code.eq(Err.LENGTH)
                        with m.Elif(idx >= len(self.windows)):
                            m.d.comb += code.eq(Err.INDEX)
                        with m.Else():
                            with m.Switch(idx):
                                for w in self.windows:
                                    with m.Case(w.index):
                                        nbytes = _const_mul(mcount, w.nbytes)
                                        beyond = (addr + mcount) > w.sig.depth
                                        with m.If(x_cmd == Cmd.WRITE_MEM):
                                            if not w.sig.writable:
                                                m.d.comb += code.eq(Err.READ_ONLY)
                                            else:
                                                with m.If(x_len != 6 + nbytes):
                                                    m.d.comb += code.eq(Err.LENGTH)
                                                with m.Elif(beyond):
                                                    m.d.comb += code.eq(Err.RANGE)
                                        with m.Else():
                                            with m.If((x_len != 6) | (nbytes > 255)):
                                                m.d.comb += code.eq(Err.LENGTH)
                                            with m.Elif(beyond):
                                                m.d.comb += code.eq(Err.RANGE)
                    with m.Case(Cmd.LEVEL):
                        with m.If(x_len != 1):
                            m.d.comb += code.eq(Err.LENGTH)
                        with m.Elif(idx >= len(self.streams)):
                            m.d.comb += code.eq(Err.INDEX)
                    with m.Case(Cmd.SEND_BEATS, Cmd.READ_BEATS):
                        with m.If(x_len < 2):
                            m.d.comb += code.eq(Err.LENGTH)
                        with m.Else():
                            m.d.comb += code.eq(Err.INDEX)
                            with m.Switch(idx):
                                for s in self.streams:
                                    with m.Case(s.index):
                                        if s.dir == "in":
                                            with m.If(x_cmd == Cmd.SEND_BEATS):
                                                m.d.comb += code.eq(Mux(
                                                    x_len != 2 + _const_mul(scount, s.nbytes),
                                                    Err.LENGTH, 0))
                                        else:
                                            with m.If(x_cmd == Cmd.READ_BEATS):
                                                m.d.comb += code.eq(Mux(x_len != 2,
                                                                        Err.LENGTH, 0))
                    with m.Default():
                        m.d.comb += code.eq(Err.COMMAND)

                # The checks and the per-index sizes are registered here and used in DECIDE:
                # two short paths instead of one long one from x_args to every register.
                m.d.sync += [code_r.eq(code), e_idx.eq(idx), k.eq(0)]
                with m.Switch(idx):
                    for w in self.windows:
                        with m.Case(w.index):
                            m.d.sync += rm_len.eq(_const_mul(mcount, w.nbytes)[:8])
                with m.Switch(idx):     # streams and memories are numbered separately
                    for s in self.streams:
                        with m.Case(s.index):
                            fifo = (in_fifos if s.dir == "in" else out_fifos)[s.index]
                            m.d.sync += level_r.eq(fifo.level)
                            if s.dir == "out":
                                # min(requested, in the FIFO, fits a frame)
                                avail = Mux(fifo.level < scount, fifo.level, scount)
                                cap = min(254 // s.nbytes, 255)
                                m.d.sync += rb_count.eq(Mux(avail > cap, cap, avail))
                m.next = "DECIDE"

            with m.State("DECIDE"):
                with m.If(code_r != 0):
                    m.d.comb += release.eq(1)
                    m.d.sync += [r_len.eq(2), r_body.eq(B_VEC), r_tag.eq(x_tag),
                                 r_cmd.eq(ERROR), vec.eq(Cat(code_r, x_cmd)),
                                 c_rejected.eq(c_rejected + 1)]
                    m.next = "H_SYNC"
                with m.Else():
                    with m.Switch(x_cmd):
                        with m.Case(Cmd.IDENTIFY):
                            m.d.comb += release.eq(1)
                            respond(7, B_VEC, ident)
                            m.next = "H_SYNC"
                        with m.Case(Cmd.STATUS):
                            m.d.comb += release.eq(1)
                            respond(10, B_VEC, Cat(*counters))
                            m.next = "H_SYNC"
                        with m.Case(Cmd.WRITE_MEM):
                            m.d.sync += [e_addr.eq(addr), e_count.eq(mcount), ridx.eq(6)]
                            respond(0, B_VEC)
                            with m.If(mcount == 0):
                                m.d.comb += release.eq(1)
                                m.next = "H_SYNC"
                            with m.Else():
                                m.next = "WM_FETCH"
                        with m.Case(Cmd.READ_MEM):
                            m.d.comb += release.eq(1)
                            m.d.sync += [e_addr.eq(addr), e_count.eq(mcount)]
                            respond(rm_len, B_RM)
                            m.next = "H_SYNC"
                        with m.Case(Cmd.SEND_BEATS):
                            m.d.sync += [e_count.eq(scount), ridx.eq(2), accepted.eq(0),
                                         stall.eq(0)]
                            respond(1, B_VEC, 0)
                            with m.If(scount == 0):
                                m.d.comb += release.eq(1)
                                m.next = "H_SYNC"
                            with m.Else():
                                m.next = "SB_FETCH"
                        with m.Case(Cmd.LEVEL):
                            m.d.comb += release.eq(1)
                            respond(2, B_VEC, level_r)
                            m.next = "H_SYNC"
                        with m.Case(Cmd.READ_BEATS):
                            m.d.comb += release.eq(1)
                            m.d.sync += e_count.eq(rb_count)
                            with m.Switch(e_idx):
                                for s in self.streams:
                                    if s.dir == "out":
                                        with m.Case(s.index):
                                            respond((1 + _const_mul(rb_count, s.nbytes))[:8],
                                                    B_RB)
                            m.next = "H_SYNC"

            # Response header: SYNC LEN TAG CMD.
            with m.State("H_SYNC"):
                m.d.comb += e_sync.eq(1)
                emit(SYNC, crc=False)
                with m.If(e_ready):
                    m.next = "H_LEN"
            with m.State("H_LEN"):
                emit(r_len)
                with m.If(e_ready):
                    m.next = "H_TAG"
            with m.State("H_TAG"):
                emit(r_tag)
                with m.If(e_ready):
                    m.next = "H_CMD"
            with m.State("H_CMD"):
                emit(r_cmd)
                with m.If(e_ready):
                    m.d.sync += k.eq(0)
                    with m.If(r_len == 0):
                        m.next = "T_CRC1"
                    with m.Elif(r_body == B_RM):
                        m.next = "RM_FETCH"
                    with m.Elif(r_body == B_RB):
                        m.next = "RB_COUNT"
                    with m.Else():
                        m.next = "B_VEC"

            with m.State("B_VEC"):
                emit(vec[:8])
                with m.If(e_ready):
                    m.d.sync += [vec.eq(vec >> 8), k.eq(k + 1)]
                    with m.If(k == r_len - 1):
                        m.next = "T_CRC1"

            # READ_MEM body: e_count words from e_addr on.
            with m.State("RM_FETCH"):
                m.d.comb += win_r_en.eq(1)
                m.next = "RM_LATCH"
            with m.State("RM_LATCH"):
                m.d.sync += [shreg.eq(win_rdata), k.eq(0)]
                m.next = "RM_EMIT"
            with m.State("RM_EMIT"):
                emit(shreg.word_select(k, 8))
                with m.If(e_ready):
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == e_nbytes - 1):
                        m.d.sync += [e_addr.eq(e_addr + 1), e_count.eq(e_count - 1)]
                        with m.If(e_count == 1):
                            m.next = "T_CRC1"
                        with m.Else():
                            m.next = "RM_FETCH"

            # READ_BEATS body: the count, then e_count beats popped from the output FIFO.
            with m.State("RB_COUNT"):
                emit(e_count)
                with m.If(e_ready):
                    with m.If(e_count == 0):
                        m.next = "T_CRC1"
                    with m.Else():
                        m.next = "RB_FETCH"
            with m.State("RB_FETCH"):
                with m.If(s_r_rdy):
                    m.d.comb += s_pop.eq(1)
                    m.d.sync += [shreg.eq(s_rdata), k.eq(0)]
                    m.next = "RB_EMIT"
            with m.State("RB_EMIT"):
                emit(shreg.word_select(k, 8))
                with m.If(e_ready):
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == s_nbytes - 1):
                        m.d.sync += e_count.eq(e_count - 1)
                        with m.If(e_count == 1):
                            m.next = "T_CRC1"
                        with m.Else():
                            m.next = "RB_FETCH"

            # WRITE_MEM: assemble each word from the buffer, then write it.
            with m.State("WM_FETCH"):
                m.d.comb += buf_rd.en.eq(1)
                m.next = "WM_SHIFT"
            with m.State("WM_SHIFT"):
                m.d.sync += [shreg.word_select(k, 8).eq(buf_rd.data), ridx.eq(ridx + 1)]
                with m.If(k == e_nbytes - 1):
                    m.d.sync += k.eq(0)
                    m.next = "WM_WRITE"
                with m.Else():
                    m.d.sync += k.eq(k + 1)
                    m.next = "WM_FETCH"
            with m.State("WM_WRITE"):
                m.d.comb += win_w_en.eq(1)
                m.d.sync += [e_addr.eq(e_addr + 1), e_count.eq(e_count - 1)]
                with m.If(e_count == 1):
                    m.d.comb += release.eq(1)
                    m.next = "H_SYNC"
                with m.Else():
                    m.next = "WM_FETCH"

            # SEND_BEATS: assemble each beat, push it into the input FIFO (or give up).
            with m.State("SB_FETCH"):
                m.d.comb += buf_rd.en.eq(1)
                m.next = "SB_SHIFT"
            with m.State("SB_SHIFT"):
                m.d.sync += [shreg.word_select(k, 8).eq(buf_rd.data), ridx.eq(ridx + 1)]
                with m.If(k == s_nbytes - 1):
                    m.d.sync += [k.eq(0), stall.eq(0)]
                    m.next = "SB_PUSH"
                with m.Else():
                    m.d.sync += k.eq(k + 1)
                    m.next = "SB_FETCH"
            with m.State("SB_PUSH"):
                m.d.comb += s_push.eq(1)
                with m.If(s_w_rdy):
                    m.d.sync += [accepted.eq(accepted + 1), e_count.eq(e_count - 1)]
                    with m.If(e_count == 1):
                        m.next = "SB_DONE"
                    with m.Else():
                        m.next = "SB_FETCH"
                with m.Elif(stall == self.stall_limit - 1):
                    m.next = "SB_DONE"
                with m.Else():
                    m.d.sync += stall.eq(stall + 1)
            with m.State("SB_DONE"):
                m.d.comb += release.eq(1)
                m.d.sync += vec.eq(accepted)
                m.next = "H_SYNC"

            # Trailer: CRC, high byte first.
            with m.State("T_CRC1"):
                emit(tx_crc[8:], crc=False)
                with m.If(e_ready):
                    m.next = "T_CRC2"
            with m.State("T_CRC2"):
                emit(tx_crc[:8], crc=False)
                with m.If(e_ready):
                    m.next = "IDLE"
        return m


class UARTBridge(wiring.Component):
    """A :class:`Bridge` behind the 8N1 UART PHY: what a board top instantiates.

    Parameters
    ----------
    bridge : Bridge
    divisor : int
        Clock cycles per bit (see :func:`spikeforge.rtl.uart.uart_divisor`).

    Members
    -------
    rx : ``In(1)``
        Serial line from the host (idle high; synchronised inside).
    tx : ``Out(1)``
        Serial line to the host (registered, idle high).
    """

    def __init__(self, bridge, *, divisor):
        if not isinstance(bridge, Bridge):
            raise TypeError(f"UARTBridge parameter 'bridge' must be a Bridge, not {bridge!r}")
        self.bridge = bridge
        self.uart_rx = UARTRx(divisor)
        self.uart_tx = UARTTx(divisor)
        self.divisor = self.uart_rx.divisor
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = self.bridge
        m.submodules.uart_rx = self.uart_rx
        m.submodules.uart_tx = self.uart_tx
        m.d.comb += [self.uart_rx.rx.eq(self.rx), self.tx.eq(self.uart_tx.tx)]
        wiring.connect(m, self.uart_rx.o, self.bridge.rx)
        wiring.connect(m, self.bridge.tx, self.uart_tx.i)
        return m
