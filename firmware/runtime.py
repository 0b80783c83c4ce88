"""Host runtime: talk to a design's bridge over a serial port or a simulation, with one API.

::

    from spikeforge.firmware.runtime import Device, SerialTransport
    with Device(SerialTransport("/dev/ttyUSB0", 3_000_000)) as dev:
        info = dev.identify()                   # design name, params, streams, memories
        dev.load_image("weights.npz")           # every memory of the image, by name
        dev.send_beats("i", beats)              # dicts (the stream's layout) or raw ints
        out = dev.read_beats("o", len(beats))

The same code runs against the RTL with ``SimTransport(top)`` (cocotb/Verilator in a
subprocess, bytes over a socket). A transport is anything with ``write(data)``,
``read(max_bytes, timeout) -> bytes`` (at least one byte unless the timeout passes),
``close()`` and a ``default_timeout`` in seconds.

The protocol is stop-and-wait: one request, one response. IDENTIFY, STATUS, READ_MEM,
WRITE_MEM and LEVEL are idempotent and are resent after a timeout or a framing error;
SEND_BEATS and READ_BEATS are resent only when the bridge reports it dropped the frame (CRC,
TRUNCATED, BUSY), never after a timeout (a beat could otherwise be sent or lost twice).
"""

from __future__ import annotations

import json
import select
import time
import zlib
from dataclasses import dataclass, field

from . import protocol as P

__all__ = ["BridgeError", "DesignInfo", "Device", "DeviceError", "MemoryInfo", "SerialTransport",
           "SimTransport", "StreamInfo", "TransportError"]


class DeviceError(RuntimeError):
    """The device did not answer as the protocol says (timeout, bad descriptor, ...)."""


class BridgeError(DeviceError):
    """The bridge answered a request with an error response."""

    def __init__(self, code, cmd, message):
        super().__init__(message)
        self.code, self.cmd = code, cmd


class TransportError(DeviceError):
    """The transport could not be opened or broke."""


@dataclass(frozen=True)
class StreamInfo:
    index: int
    name: str
    dir: str            # "in" (host -> core) or "out"
    width: int          # payload bits
    bytes: int          # bytes per beat on the wire
    fifo: int           # bridge FIFO depth
    layout: dict
    codec: P.LayoutCodec = field(repr=False, compare=False)


@dataclass(frozen=True)
class MemoryInfo:
    index: int
    name: str
    width: int
    depth: int
    signed: bool
    writable: bool

    @property
    def bytes(self) -> int:
        return (self.width + 7) // 8


@dataclass(frozen=True)
class DesignInfo:
    """What IDENTIFY and the descriptor say about the design behind the bridge."""
    protocol: int
    design_id: int
    design: str
    params: dict
    streams: dict       # name -> StreamInfo
    memories: dict      # name -> MemoryInfo (without the descriptor itself)
    descriptor: bytes = field(repr=False)


_IDEMPOTENT = {P.Cmd.IDENTIFY, P.Cmd.STATUS, P.Cmd.READ_MEM, P.Cmd.WRITE_MEM, P.Cmd.LEVEL}
_DROPPED = {P.Err.CRC, P.Err.TRUNCATED, P.Err.BUSY}
_DESCRIPTOR = MemoryInfo(0, "descriptor", 8, 65535, False, False)


class Device:
    """A design behind a bridge, reached through ``transport``.

    ``timeout`` (seconds per request; default: the transport's) and ``retries`` (resends of a
    request that may be resent) bound every call. Errors: :class:`BridgeError` for an error
    response, :class:`DeviceError` for everything else the device does wrong.
    """

    def __init__(self, transport, *, timeout=None, retries=3):
        self.transport = transport
        self.timeout = float(timeout if timeout is not None else transport.default_timeout)
        self.retries = int(retries)
        self._decoder = P.FrameDecoder()
        self._tag = 0
        self._info = None
        self._pending = {}      # output stream name -> beats read while sending

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.transport.close()

    # ---- requests ----
    def _next_tag(self):
        self._tag = self._tag % 255 + 1
        return self._tag

    def request(self, cmd, payload=b"") -> bytes:
        """Send one request and return the payload of its successful response."""
        cmd = P.Cmd(cmd)
        resends = 0
        while True:
            tag = self._next_tag()
            self.transport.write(P.encode_frame(tag, cmd, payload))
            try:
                return self._response(tag, cmd)
            except BridgeError as exc:
                # CRC/TRUNCATED/BUSY: the bridge did not execute the frame, resending is safe.
                if exc.code not in _DROPPED or resends >= self.retries:
                    raise
            except DeviceError:
                if cmd not in _IDEMPOTENT or resends >= self.retries:
                    raise
            resends += 1

    def _response(self, tag, cmd):
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeviceError(f"{cmd.name}: no response within {self.timeout:g} s")
            data = self.transport.read(4096, left)
            for ev in self._decoder.feed(data):
                if not isinstance(ev, P.Frame) or ev.tag != tag:
                    continue        # a stale or foreign frame, or line noise
                if ev.cmd == cmd | P.RESPONSE:
                    return ev.payload
                if ev.cmd == P.ERROR and len(ev.payload) == 2 and ev.payload[1] == cmd:
                    code = ev.payload[0]
                    name = P.Err(code).name if code in P.Err._value2member_map_ else hex(code)
                    raise BridgeError(code, cmd, f"{cmd.name}: bridge error {name}")

    # ---- design ----
    def identify(self, *, refresh=False) -> DesignInfo:
        """Protocol version, design id, and the descriptor (design, params, streams, memories)."""
        if self._info is not None and not refresh:
            return self._info
        head = self.request(P.Cmd.IDENTIFY)
        if len(head) != 7:
            raise DeviceError(f"IDENTIFY answered {len(head)} bytes, not 7")
        version, design_id, length = head[0], int.from_bytes(head[1:5], "little"), \
            int.from_bytes(head[5:7], "little")
        if version != P.VERSION:
            raise DeviceError(f"bridge speaks protocol version {version}, this host {P.VERSION}")
        raw = bytes(self._read_words(_DESCRIPTOR, 0, length))
        if zlib.crc32(raw) != design_id:
            raise DeviceError("descriptor does not match the design id (CRC-32)")
        try:
            desc = json.loads(raw)
        except ValueError:
            raise DeviceError("descriptor is not valid JSON") from None
        streams = {s["name"]: StreamInfo(s["index"], s["name"], s["dir"], s["width"], s["bytes"],
                                         s["fifo"], s["layout"], P.LayoutCodec(s["layout"]))
                   for s in desc["streams"]}
        memories = {mem["name"]: MemoryInfo(mem["index"], mem["name"], mem["width"], mem["depth"],
                                            mem["signed"], mem["writable"])
                    for mem in desc["memories"]}
        self._info = DesignInfo(version, design_id, desc["design"], desc["params"], streams,
                                memories, raw)
        return self._info

    def status(self) -> dict:
        """The bridge's frame counters (16-bit, wrapping)."""
        raw = self.request(P.Cmd.STATUS)
        names = ("ok", "crc", "truncated", "busy", "rejected")
        return {n: int.from_bytes(raw[2 * k:2 * k + 2], "little") for k, n in enumerate(names)}

    def _memory(self, name) -> MemoryInfo:
        info = self.identify()
        if name == "descriptor":
            return MemoryInfo(0, "descriptor", 8, len(info.descriptor), False, False)
        if name not in info.memories:
            raise DeviceError(f"design {info.design!r} has no memory {name!r}; memories: "
                              f"{', '.join(info.memories) or '(none)'}")
        return info.memories[name]

    def _stream(self, name, direction) -> StreamInfo:
        info = self.identify()
        s = info.streams.get(name)
        if s is None or s.dir != direction:
            names = [n for n, t in info.streams.items() if t.dir == direction]
            raise DeviceError(f"design {info.design!r} has no {direction}put stream {name!r}; "
                              f"{direction}put streams: {', '.join(names) or '(none)'}")
        return s

    # ---- memories ----
    def write_memory(self, name, addr, words) -> None:
        """Write ``words`` (ints in the memory's signed or unsigned range) from ``addr`` on."""
        mem = self._memory(name)
        words = [int(w) for w in words]
        _check_span(mem, addr, len(words))
        data = P.pack_words(words, mem.width, signed=mem.signed)
        per = min(255, (P.MAX_PAYLOAD - 6) // mem.bytes)
        for k in range(0, len(words), per):
            n = min(per, len(words) - k)
            head = bytes((mem.index,)) + (addr + k).to_bytes(4, "little") + bytes((n,))
            self.request(P.Cmd.WRITE_MEM, head + data[k * mem.bytes:(k + n) * mem.bytes])

    def read_memory(self, name, addr, count) -> list[int]:
        """``count`` words from ``addr`` on (sign-extended for a signed memory)."""
        mem = self._memory(name)
        _check_span(mem, addr, count)
        return self._read_words(mem, addr, count)

    def _read_words(self, mem, addr, count):
        per = min(255, P.MAX_PAYLOAD // mem.bytes)
        out = []
        for k in range(0, count, per):
            n = min(per, count - k)
            raw = self.request(P.Cmd.READ_MEM, bytes((mem.index,)) +
                               (addr + k).to_bytes(4, "little") + bytes((n,)))
            if len(raw) != n * mem.bytes:
                raise DeviceError(f"READ_MEM answered {len(raw)} bytes, not {n * mem.bytes}")
            out += P.unpack_words(raw, mem.width, signed=mem.signed)
        return out

    def load_image(self, image, *, core=None, verify=False) -> dict:
        """Write every memory of a memory image (a path, or ``(meta, arrays)`` from
        :func:`~spikeforge.firmware.image.load_image`) into the memory of the same name,
        row-major from address 0. Returns ``{name: words written}``."""
        if not isinstance(image, tuple):
            from .image import load_image
            image = load_image(image, core=core)
        _, arrays = image
        info = self.identify()
        missing = sorted(set(arrays) - set(info.memories))
        if missing:
            raise DeviceError(f"design {info.design!r} has no memory {missing[0]!r} for the "
                              f"image; memories: {', '.join(info.memories) or '(none)'}")
        written = {}
        for name, arr in arrays.items():
            words = [int(v) for v in arr.ravel()]
            self.write_memory(name, 0, words)
            if verify and self.read_memory(name, 0, len(words)) != words:
                raise DeviceError(f"memory {name!r} reads back different from the image")
            written[name] = len(words)
        return written

    # ---- streams ----
    def send_beats(self, name, beats, *, stall_timeout=None) -> int:
        """Push ``beats`` (dicts/lists/ints per the stream's layout, or raw ints) into an input
        stream, in order, all of them.

        When the core stops taking beats (its output FIFOs are full), the outputs are read
        into a buffer that :meth:`read_beats` drains first. Raises :class:`DeviceError` if no
        beat is taken and no output appears for ``stall_timeout`` seconds (default: the
        request timeout). Returns the number of beats sent.
        """
        s = self._stream(name, "in")
        words = [s.codec.pack(b) for b in beats]
        per = min(255, (P.MAX_PAYLOAD - 2) // s.bytes)
        stall_timeout = self.timeout if stall_timeout is None else stall_timeout
        k, stuck_since = 0, None
        while k < len(words):
            chunk = words[k:k + per]
            raw = self.request(P.Cmd.SEND_BEATS, bytes((s.index, len(chunk))) +
                               P.pack_words(chunk, s.bytes * 8))
            taken = raw[0] if len(raw) == 1 else None
            if taken is None or taken > len(chunk):
                raise DeviceError(f"SEND_BEATS answered {raw!r}")
            k += taken
            if taken < len(chunk):
                if self._drain() == 0 and taken == 0:
                    stuck_since = stuck_since or time.monotonic()
                    if time.monotonic() - stuck_since > stall_timeout:
                        raise DeviceError(f"stream {name!r} takes no beats and no output "
                                          f"arrives ({k} of {len(words)} sent)")
                else:
                    stuck_since = None
        return len(words)

    def level(self, name) -> int:
        """Beats in the bridge's FIFO of stream ``name`` (input: not yet taken by the core;
        output: not yet read)."""
        s = self.identify().streams.get(name)
        if s is None:
            raise DeviceError(f"design {self.identify().design!r} has no stream {name!r}")
        raw = self.request(P.Cmd.LEVEL, bytes((s.index,)))
        if len(raw) != 2:
            raise DeviceError(f"LEVEL answered {len(raw)} bytes, not 2")
        return int.from_bytes(raw, "little")

    def wait_taken(self, name, *, timeout=None) -> None:
        """Wait until the core has taken every beat sent to input stream ``name`` (e.g. all
        weight writes before the data that must see them). Output beats that block the core
        meanwhile are read into the buffer :meth:`read_beats` drains first."""
        self._stream(name, "in")
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while self.level(name):
            if self._drain() == 0 and time.monotonic() > deadline:
                raise DeviceError(f"stream {name!r}: the core has not taken every beat")

    def _drain(self) -> int:
        got = 0
        for s in self.identify().streams.values():
            if s.dir == "out":
                beats = self._read_some(s, 255)
                self._pending.setdefault(s.name, []).extend(beats)
                got += len(beats)
        return got

    def _read_some(self, s, count):
        raw = self.request(P.Cmd.READ_BEATS, bytes((s.index, min(count, 255))))
        n = raw[0] if raw else 0
        if len(raw) != 1 + n * s.bytes:
            raise DeviceError(f"READ_BEATS answered {len(raw)} bytes for {n} beats")
        return P.unpack_words(raw[1:], s.bytes * 8)

    def read_beats(self, name, count, *, timeout=None, raw=False) -> list:
        """Read ``count`` beats from an output stream (decoded per its layout unless ``raw``).

        Waits up to ``timeout`` seconds (default: the request timeout) for beats to appear;
        raises :class:`DeviceError` with the number received if they do not.
        """
        s = self._stream(name, "out")
        pending = self._pending.setdefault(name, [])
        out, pending[:] = pending[:count], pending[count:]
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while len(out) < count:
            got = self._read_some(s, count - len(out))
            out += got
            if not got:
                if time.monotonic() > deadline:
                    raise DeviceError(f"stream {name!r}: {len(out)} of {count} beats within "
                                      f"{timeout:g} s")
                time.sleep(0.001)
        mask = (1 << s.width) - 1
        out = [w & mask for w in out]
        return out if raw else [s.codec.unpack(w) for w in out]


def _check_span(mem, addr, count):
    if isinstance(addr, bool) or not isinstance(addr, int) or addr < 0:
        raise ValueError(f"address must be a non-negative integer, not {addr!r}")
    if addr + count > mem.depth:
        raise ValueError(f"memory {mem.name!r} has {mem.depth} words; {count} from {addr} "
                         f"do not fit")


class SerialTransport:
    """A serial port (pyserial), e.g. the ULX3S's FT231X at 3 Mbaud."""

    default_timeout = 1.0

    def __init__(self, port, baudrate=3_000_000):
        try:
            import serial
        except ImportError:
            raise TransportError("SerialTransport needs pyserial, which is not installed "
                                 "(pip install pyserial)") from None
        try:
            self._port = serial.Serial(port, baudrate, bytesize=8, parity="N", stopbits=1,
                                       timeout=0, write_timeout=5)
        except (serial.SerialException, ValueError) as exc:
            raise TransportError(f"cannot open serial port {port!r}: {exc}") from None
        self._port.reset_input_buffer()

    def write(self, data):
        self._port.write(bytes(data))
        self._port.flush()

    def read(self, max_bytes, timeout):
        self._port.timeout = max(timeout, 0)
        first = self._port.read(1)
        if not first:
            return b""
        self._port.timeout = 0
        return first + self._port.read(min(max_bytes - 1, self._port.in_waiting))

    def close(self):
        self._port.close()


class SimTransport:
    """The bridge RTL under cocotb/Verilator: ``top`` is a ``UARTBridge`` (the bench drives its
    UART pins) or a ``Bridge`` (byte streams, no PHY).

    The simulation runs in a subprocess and exchanges the protocol bytes over a UNIX socket
    (:mod:`spikeforge.sim.uart_bench`); the first use of a design builds it (cached).
    """

    default_timeout = 60.0

    def __init__(self, top, *, clock_ns=10, waves=False, progress=lambda msg: None):
        from spikeforge.sim.uart_bench import start
        self._bench = start(top, clock_ns=clock_ns, waves=waves, progress=progress)
        self._sock = self._bench.sock
        self.returncode = None

    def write(self, data):
        try:
            self._sock.sendall(bytes(data))
        except OSError as exc:
            raise TransportError(f"the simulation is gone ({exc}):\n"
                                 f"{self._bench.log_tail()}") from None

    def read(self, max_bytes, timeout):
        ready, _, _ = select.select([self._sock], [], [], max(timeout, 0))
        if not ready:
            return b""
        data = self._sock.recv(max_bytes)
        if not data:
            raise TransportError(f"the simulation ended:\n{self._bench.log_tail()}")
        return data

    def close(self):
        if self.returncode is None:
            self.returncode = self._bench.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
