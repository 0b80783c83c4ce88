"""The bridge protocol: frames, CRC, byte stuffing and payload packing, in pure Python.

Shared by the host runtime (:mod:`spikeforge.firmware.runtime`), the RTL bridge (which takes
its constants from here) and the tests (which use :class:`FrameDecoder` as the reference
parser). ``docs/bridge.md`` is the specification; in short::

    frame   = SYNC  stuffed( LEN TAG CMD PAYLOAD[LEN] CRC_HI CRC_LO )
    SYNC    = 0x7E; inside a frame 0x7E and 0x7D are sent as 0x7D, byte ^ 0x20
    CRC     = CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR)
              over LEN TAG CMD PAYLOAD, sent high byte first

Byte stuffing keeps SYNC out of every frame body, so a SYNC always starts a new frame: a frame
cut short or corrupted can never swallow the frame after it. Multi-byte fields are
little-endian, except the CRC (high byte first, so that running the CRC over a whole frame
body including its CRC leaves 0).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

__all__ = [
    "VERSION", "SYNC", "ESC", "ESC_XOR", "MAX_PAYLOAD", "RESPONSE", "ERROR", "Cmd", "Err",
    "Frame", "FrameError", "FrameDecoder", "LayoutCodec", "crc16", "stuff", "encode_frame",
    "pack_words", "unpack_words", "beats_per_second",
]

#: Protocol version reported by IDENTIFY.
VERSION = 1
SYNC = 0x7E
ESC = 0x7D
ESC_XOR = 0x20
#: LEN is one byte: at most 255 payload bytes in a frame, either direction.
MAX_PAYLOAD = 255
#: A successful response carries the request's command with this bit set.
RESPONSE = 0x80
#: Command byte of an error response; its payload is ``[code, request command]``.
ERROR = 0xFF


class Cmd(enum.IntEnum):
    """Request commands (payload layouts in ``docs/bridge.md``)."""
    IDENTIFY = 0x01     # -> version, design id (4), descriptor length (2)
    STATUS = 0x02       # -> five 16-bit counters
    WRITE_MEM = 0x03    # memory, address (4), count, count words -> (empty)
    READ_MEM = 0x04     # memory, address (4), count -> count words
    SEND_BEATS = 0x05   # stream, count, count beats -> accepted count
    READ_BEATS = 0x06   # stream, max count -> count, count beats
    LEVEL = 0x07        # stream -> beats in its FIFO (2)


class Err(enum.IntEnum):
    """Error codes, the first payload byte of an :data:`ERROR` response."""
    CRC = 0x01          # frame complete, CRC wrong
    TRUNCATED = 0x02    # SYNC or inter-byte timeout before the frame's last byte
    BUSY = 0x03         # a frame arrived while the previous one still held the buffer
    COMMAND = 0x04      # unknown command
    LENGTH = 0x05       # payload length does not fit the command (or the reply would not fit)
    INDEX = 0x06        # no such memory or stream (or wrong direction)
    RANGE = 0x07        # address + count beyond the memory's depth
    READ_ONLY = 0x08    # write to a read-only memory (the descriptor)


def crc16(data, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (check value: ``crc16(b"123456789") == 0x29B1``)."""
    for byte in bytes(data):
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def stuff(data) -> bytes:
    """Escape SYNC and ESC in a frame body."""
    out = bytearray()
    for byte in bytes(data):
        if byte in (SYNC, ESC):
            out += bytes((ESC, byte ^ ESC_XOR))
        else:
            out.append(byte)
    return bytes(out)


def _byte(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise ValueError(f"frame field {name!r} must be an integer in 0..255, not {value!r}")
    return value


def encode_frame(tag: int, cmd: int, payload=b"") -> bytes:
    """The bytes on the wire for one frame (SYNC, then the stuffed body)."""
    payload = bytes(payload)
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"frame payload must be at most {MAX_PAYLOAD} bytes, not {len(payload)}")
    body = bytes((len(payload), _byte("tag", tag), _byte("cmd", cmd))) + payload
    crc = crc16(body)
    return bytes((SYNC,)) + stuff(body + bytes((crc >> 8, crc & 0xFF)))


@dataclass(frozen=True)
class Frame:
    """A frame whose CRC checked out."""
    tag: int
    cmd: int
    payload: bytes


@dataclass(frozen=True)
class FrameError:
    """A frame the decoder had to drop: ``code`` is :attr:`Err.CRC` or :attr:`Err.TRUNCATED`.

    ``tag``/``cmd`` are what arrived (0 if they did not).
    """
    code: int
    tag: int
    cmd: int


class FrameDecoder:
    """Byte-at-a-time frame parser with the bridge's exact rules.

    Bytes before a SYNC are ignored; a SYNC directly after a SYNC is ignored (an empty frame is
    not an error); a SYNC inside a frame ends it as :attr:`Err.TRUNCATED` and starts the next
    one; ``ESC x`` stands for ``x ^ 0x20`` (any ``x`` but SYNC). :meth:`reset` is the
    inter-byte timeout: a frame in progress becomes :attr:`Err.TRUNCATED`.
    """

    _IDLE, _LEN, _TAG, _CMD, _PAY, _CRC1, _CRC2 = range(7)

    def __init__(self):
        self._state = self._IDLE
        self._esc = False
        self._start()

    def _start(self):
        self._crc = 0xFFFF
        self._len = self._tag = self._cmd = 0
        self._payload = bytearray()

    def _truncated(self):
        tag = self._tag if self._state > self._TAG else 0
        cmd = self._cmd if self._state > self._CMD else 0
        return FrameError(Err.TRUNCATED, tag, cmd)

    def reset(self) -> list:
        """Abandon the frame in progress (the inter-byte timeout); returns its error, if any."""
        out = [self._truncated()] if self._state > self._LEN else []
        self._state, self._esc = self._IDLE, False
        self._start()
        return out

    def feed(self, data) -> list:
        """Parse ``data``; return the :class:`Frame` and :class:`FrameError` events it completes."""
        events = []
        for byte in bytes(data):
            if byte == SYNC:
                self._esc = False
                if self._state > self._LEN:
                    events.append(self._truncated())
                self._state = self._LEN
                self._start()
                continue
            if byte == ESC:
                self._esc = True
                continue
            if self._esc:
                byte ^= ESC_XOR
                self._esc = False
            event = self._data(byte)
            if event is not None:
                events.append(event)
        return events

    def _data(self, byte):
        state = self._state
        if state == self._IDLE:
            return None
        self._crc = crc16((byte,), self._crc)
        if state == self._LEN:
            self._len, self._state = byte, self._TAG
        elif state == self._TAG:
            self._tag, self._state = byte, self._CMD
        elif state == self._CMD:
            self._cmd = byte
            self._state = self._PAY if self._len else self._CRC1
        elif state == self._PAY:
            self._payload.append(byte)
            if len(self._payload) == self._len:
                self._state = self._CRC1
        elif state == self._CRC1:
            self._state = self._CRC2
        else:
            self._state = self._IDLE
            if self._crc == 0:
                return Frame(self._tag, self._cmd, bytes(self._payload))
            return FrameError(Err.CRC, self._tag, self._cmd)
        return None


def _check_width(width):
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"word width must be a positive integer, not {width!r}")
    return (width + 7) // 8


def pack_words(words, width: int, *, signed: bool = False) -> bytes:
    """Words of ``width`` bits as ``ceil(width/8)`` little-endian bytes each.

    Signed words are stored two's complement. Raises :exc:`ValueError` for a word that does not
    fit (with ``signed``, ``-2**(width-1) .. 2**(width-1)-1``, else ``0 .. 2**width-1``).
    """
    nbytes = _check_width(width)
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    mask = (1 << width) - 1
    out = bytearray()
    for word in words:
        word = int(word)
        if not lo <= word <= hi:
            kind = "signed" if signed else "unsigned"
            raise ValueError(f"word {word} does not fit {width} bits {kind} ({lo}..{hi})")
        out += (word & mask).to_bytes(nbytes, "little")
    return bytes(out)


def unpack_words(data, width: int, *, signed: bool = False) -> list[int]:
    """Inverse of :func:`pack_words` (bits above ``width`` are ignored)."""
    nbytes = _check_width(width)
    data = bytes(data)
    if len(data) % nbytes:
        raise ValueError(f"{len(data)} bytes are not a whole number of {nbytes}-byte words")
    mask, sign = (1 << width) - 1, 1 << (width - 1)
    words = []
    for k in range(0, len(data), nbytes):
        word = int.from_bytes(data[k:k + nbytes], "little") & mask
        if signed and word & sign:
            word -= 1 << width
        words.append(word)
    return words


class LayoutCodec:
    """Packs stream beats described by the bridge descriptor's ``layout`` (no Amaranth needed).

    A layout is ``{"width": w, "signed": bool}`` for a plain value, ``{"struct": [{"name": n,
    "offset": o, "shape": layout}, ...]}`` for a struct (or union) and ``{"array": {"length": n,
    "stride": s, "shape": layout}}`` for an array. Beat values mirror it: ints, dicts, lists.
    A plain int is accepted for any layout as the raw payload bits.
    """

    def __init__(self, layout: dict):
        self.layout = layout
        self.width = self._width(layout)

    @classmethod
    def _width(cls, layout):
        if "struct" in layout:
            return max((f["offset"] + cls._width(f["shape"]) for f in layout["struct"]), default=0)
        if "array" in layout:
            a = layout["array"]
            return a["length"] * a["stride"]
        return layout["width"]

    def pack(self, value) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and "width" not in self.layout:
            if not 0 <= value < (1 << self.width):
                raise ValueError(f"raw payload {value} does not fit {self.width} bits")
            return value
        return self._pack(self.layout, value, 0)

    def _pack(self, layout, value, offset):
        if "struct" in layout:
            if not isinstance(value, dict):
                raise TypeError(f"payload struct value must be a dict, not {value!r}")
            names = [f["name"] for f in layout["struct"]]
            missing = [n for n in names if n not in value]
            if missing:
                raise ValueError(f"payload is missing field(s) {missing}")
            extra = sorted(set(value) - set(names))
            if extra:
                raise ValueError(f"payload has unknown field(s) {extra}")
            return sum(self._pack(f["shape"], value[f["name"]], offset + f["offset"])
                       for f in layout["struct"])
        if "array" in layout:
            a = layout["array"]
            if len(value) != a["length"]:
                raise ValueError(f"payload array needs {a['length']} elements, not {len(value)}")
            return sum(self._pack(a["shape"], v, offset + k * a["stride"])
                       for k, v in enumerate(value))
        width, signed = layout["width"], layout["signed"]
        value = int(value)
        lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
        if not lo <= value <= hi:
            raise ValueError(f"payload value {value} does not fit {width} bits "
                             f"{'signed' if signed else 'unsigned'}")
        return (value & ((1 << width) - 1)) << offset

    def unpack(self, raw: int):
        return self._unpack(self.layout, int(raw), 0)

    def _unpack(self, layout, raw, offset):
        if "struct" in layout:
            return {f["name"]: self._unpack(f["shape"], raw, offset + f["offset"])
                    for f in layout["struct"]}
        if "array" in layout:
            a = layout["array"]
            return [self._unpack(a["shape"], raw, offset + k * a["stride"])
                    for k in range(a["length"])]
        width, signed = layout["width"], layout["signed"]
        value = (raw >> offset) & ((1 << width) - 1)
        if signed and width and value >> (width - 1):
            value -= 1 << width
        return value


#: Bytes a SEND_BEATS request adds to its beats: SYNC LEN TAG CMD stream count CRC(2).
SEND_OVERHEAD = 8
#: Bytes a READ_BEATS response adds to its beats: SYNC LEN TAG CMD count CRC(2).
READ_OVERHEAD = 7


def beats_per_second(beat_bytes: int, *, baud: float = 3e6, turnaround_s: float = 0.0,
                     direction: str = "in") -> float:
    """Sustained beats per second through the bridge for beats of ``beat_bytes`` bytes.

    Full frames (``floor(253/B)`` beats in, ``floor(254/B)`` out), 10 line bits per byte (8N1),
    escapes at the rate of random data (2 of 256 byte values), plus ``turnaround_s`` per frame
    for the host to see the response before sending the next request (USB latency).
    """
    if direction not in ("in", "out"):
        raise ValueError(f"direction must be 'in' or 'out', not {direction!r}")
    room, overhead = (253, SEND_OVERHEAD) if direction == "in" else (254, READ_OVERHEAD)
    per_frame = room // beat_bytes
    if per_frame < 1:
        raise ValueError(f"a {beat_bytes}-byte beat does not fit a frame")
    wire_bytes = overhead + per_frame * beat_bytes * (1 + 2 / 256)
    seconds = wire_bytes * 10 / baud + turnaround_s
    return per_frame / seconds if math.isfinite(seconds) else 0.0
