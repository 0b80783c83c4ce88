# amaranth: UnusedElaboratable=no
"""Bridge: parameter rules, every command and error in the Amaranth simulator, and a fuzz of
10,000+ random and corrupted frames against the RTL under Verilator."""

import json
import random
import time
import zlib

import pytest
from amaranth.hdl import Cat, Module, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from spikeforge.firmware import protocol as P
from spikeforge.rtl.bridge import (Bridge, MemoryWindowSignature, UARTBridge, WindowMemory,
                                   crc16_step)

LAYOUT = data.StructLayout({"x": signed(12), "first": 1})


class _Core(wiring.Component):
    """Test core: o = ~i through one register (stall-all), and a 20-bit coefficient RAM."""

    def __init__(self):
        super().__init__({"i": In(stream.Signature(LAYOUT)), "o": Out(stream.Signature(LAYOUT)),
                          "coef": In(MemoryWindowSignature(width=20, depth=10))})

    def elaborate(self, platform):
        m = Module()
        advance = self.o.ready | ~self.o.valid
        m.d.comb += self.i.ready.eq(advance)
        with m.If(advance):
            m.d.sync += [self.o.valid.eq(self.i.valid),
                         Value.cast(self.o.payload).eq(~Value.cast(self.i.payload))]
        m.submodules.ram = ram = Memory(shape=20, depth=10, init=[])
        wr, rd = ram.write_port(), ram.read_port()
        m.d.comb += [wr.addr.eq(self.coef.addr), wr.data.eq(self.coef.w_data),
                     wr.en.eq(self.coef.w_en), rd.addr.eq(self.coef.addr),
                     rd.en.eq(self.coef.r_en), self.coef.r_data.eq(rd.data)]
        return m


ROM = [0x1234, 0xBEEF, 0x7E7D, 0]


def _bridge(**kw):
    kw = {"design": "test", "params": {"k": [1, 2]}, "in_depth": 2, "out_depth": 8,
          "stall_limit": 16, "timeout": 200, **kw}
    return Bridge(_Core(), memories={
        "table": WindowMemory(width=12, depth=64, signed=True),
        "rom": WindowMemory(width=16, depth=4, writable=False, init=ROM)}, **kw)


# Memory numbers: 0 descriptor, 1 coef (the core's), 2 table, 3 rom. Streams: 0 i, 1 o.
DESC, COEF, TABLE, ROM_ = 0, 1, 2, 3
IN, OUT = 0, 1


def _mem(index, addr, count, words=b""):
    return bytes((index,)) + addr.to_bytes(4, "little") + bytes((count,)) + words


def _beat(x, first):
    return (x & 0xFFF) | (first << 12)


def _inv(raw):
    return ~raw & 0x1FFF


# ---------------------------------------------------------------- construction

def test_init():
    br = _bridge()
    assert br.signature == wiring.Signature({"rx": In(stream.Signature(8)),
                                             "tx": Out(stream.Signature(8))})
    desc = json.loads(br.descriptor)
    assert br.design_id == zlib.crc32(br.descriptor)
    assert (desc["protocol"], desc["design"], desc["params"]) == (1, "test", {"k": [1, 2]})
    assert [(s["index"], s["name"], s["dir"], s["width"], s["bytes"], s["fifo"])
            for s in desc["streams"]] == [(0, "i", "in", 13, 2, 2), (1, "o", "out", 13, 2, 8)]
    assert P.LayoutCodec(desc["streams"][0]["layout"]).pack({"x": -1, "first": 1}) == 0x1FFF
    assert [(m["index"], m["name"], m["width"], m["depth"], m["signed"], m["writable"])
            for m in desc["memories"]] == [(1, "coef", 20, 10, False, True),
                                          (2, "table", 12, 64, True, True),
                                          (3, "rom", 16, 4, False, False)]


class _Odd(wiring.Component):
    def __init__(self, members):
        super().__init__(members)

    def elaborate(self, platform):
        return Module()


@pytest.mark.parametrize("kwargs, exc, message", [
    ({"core": 5}, TypeError,
     r"^Bridge parameter 'core' must be an amaranth\.lib\.wiring\.Component, not 5$"),
    ({"design": ""}, TypeError, r"^Bridge parameter 'design' must be a non-empty string, not ''$"),
    ({"params": [1]}, TypeError, r"^Bridge parameter 'params' must be a dict, not \[1\]$"),
    ({"params": {"a": object}}, TypeError,
     r"^Bridge parameter 'params' must be JSON-serialisable, not \{'a': <class 'object'>\}$"),
    ({"memories": [1]}, TypeError, r"^Bridge parameter 'memories' must be a dict, not \[1\]$"),
    ({"memories": {"m": 1}}, TypeError,
     r"^Bridge memory 'm' must be a component with a 'window' member "
     r"In\(MemoryWindowSignature\), not 1$"),
    ({"memories": {"descriptor": WindowMemory(width=8, depth=2)}}, ValueError,
     r"^Bridge memory name 'descriptor' is reserved or used twice$"),
    ({"memories": {"coef": WindowMemory(width=8, depth=2)}}, ValueError,
     r"^Bridge memory name 'coef' is reserved or used twice$"),
    ({"in_depth": 0}, ValueError, r"^Bridge parameter 'in_depth' must be in 1\.\.4096, not 0$"),
    ({"out_depth": 1.5}, TypeError, r"^Bridge parameter 'out_depth' must be an integer, not 1\.5$"),
    ({"stall_limit": 0}, ValueError,
     r"^Bridge parameter 'stall_limit' must be in 1\.\.16777216, not 0$"),
    ({"timeout": 1}, ValueError, r"^Bridge parameter 'timeout' must be in 2\.\.4294967296, not 1$"),
    ({"core": _Odd({"en": In(1)})}, ValueError,
     r"^Bridge core member 'en' is neither a stream nor an In\(MemoryWindowSignature\) memory$"),
    ({"core": _Odd({"s": Out(stream.Signature(8)).array(2)})}, ValueError,
     r"^Bridge core member 's' is an array of streams; attach each stream as its own member$"),
    ({"core": _Odd({"s": Out(stream.Signature(2025))})}, ValueError,
     r"^Bridge core stream 's' has 2025-bit beats; at most 2024 bits fit a frame$"),
])
def test_init_wrong(kwargs, exc, message):
    core = kwargs.pop("core", None) or _Core()
    with pytest.raises(exc, match=message):
        Bridge(core, **kwargs)


@pytest.mark.parametrize("kwargs, exc, message", [
    ({"width": 0, "depth": 4}, ValueError,
     r"^MemoryWindowSignature parameter 'width' must be in 1\.\.1992, not 0$"),
    ({"width": 8, "depth": 0}, ValueError,
     r"^MemoryWindowSignature parameter 'depth' must be in 1\.\.4294967296, not 0$"),
    ({"width": 8, "depth": 4, "signed": 1}, TypeError,
     r"^MemoryWindowSignature parameter 'signed' must be a bool, not 1$"),
    ({"width": 4, "depth": 2, "init": [1, 2, 3]}, ValueError,
     r"^WindowMemory parameter 'init' has 3 words, more than depth=2$"),
    ({"width": 4, "depth": 2, "signed": True, "init": [8]}, ValueError,
     r"^WindowMemory parameter 'init' word 0 must be an integer in -8\.\.7, not 8$"),
])
def test_window_memory_wrong(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        WindowMemory(**kwargs)


def test_uart_bridge_wrong():
    with pytest.raises(TypeError, match=r"^UARTBridge parameter 'bridge' must be a Bridge, "
                                        r"not 1$"):
        UARTBridge(1, divisor=8)
    with pytest.raises(ValueError, match=r"^UARTRx parameter 'divisor' must be in "):
        UARTBridge(_bridge(), divisor=2)


def test_crc16_step_matches_the_reference():
    crc, byte = Signal(16), Signal(8)
    out = Signal(16)
    m = Module()
    m.d.comb += out.eq(crc16_step(crc, byte))
    rng = random.Random(3)
    cases = [(0xFFFF, 0x31), (0, 0), (0x8000, 0x80)] + [
        (rng.randrange(1 << 16), rng.randrange(256)) for _ in range(100)]

    async def tb(ctx):
        for c, b in cases:
            ctx.set(Cat(crc, byte), c | b << 16)
            assert ctx.get(out) == P.crc16(bytes([b]), c), (c, b)

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()


# ---------------------------------------------------------------- Amaranth simulator sessions

def _session(bridge, script, *, seed=0):
    """Drive ``script`` into ``rx``: bytes (one per cycle, random gaps), an int (idle cycles) or
    ``None`` (wait until ``tx`` has been quiet for a while). ``tx`` sees random backpressure.
    Returns the decoded response events."""
    rng = random.Random(seed)
    out = []
    quiet_needed = 3 * bridge.stall_limit + 40

    async def tb(ctx):
        ready = 1
        ctx.set(bridge.tx.ready, 1)

        async def cycle(valid=0, byte=0):
            nonlocal ready
            if rng.random() < 0.1:
                ready ^= 1
                ctx.set(bridge.tx.ready, ready)
            if valid:
                ctx.set(Cat(bridge.rx.valid, bridge.rx.payload), 1 | byte << 1)
            sent = ready and ctx.get(bridge.tx.valid)
            if sent:
                out.append(ctx.get(bridge.tx.payload))
            await ctx.tick()
            if valid:
                ctx.set(bridge.rx.valid, 0)
            return sent

        for item in script:
            if isinstance(item, (bytes, bytearray)):
                for b in item:
                    await cycle(1, b)
                    if rng.random() < 0.2:
                        await cycle()
            elif isinstance(item, int):
                for _ in range(item):
                    await cycle()
            else:
                quiet = 0
                while quiet < quiet_needed:
                    quiet = 0 if await cycle() else quiet + 1

    sim = Simulator(bridge)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return P.FrameDecoder().feed(bytes(out))


def _ok(tag, cmd, payload=b""):
    return P.Frame(tag, cmd | P.RESPONSE, bytes(payload))


def _err(tag, cmd, code):
    return P.Frame(tag, P.ERROR, bytes((code, cmd)))


def test_commands():
    br = _bridge()
    C_ = P.Cmd
    coef = [0xFFFFF, 0x7E7E7, 1]
    table = P.pack_words([-2048, 2047, -1], 12, signed=True)
    beats = [_beat(x, x & 1) for x in (5, -7, 0x7E, 2047, -2048)]
    script = [
        P.encode_frame(1, C_.IDENTIFY), None,
        P.encode_frame(2, C_.READ_MEM, _mem(DESC, 0, 16)), None,
        P.encode_frame(3, C_.WRITE_MEM, _mem(TABLE, 61, 3, table)), None,
        P.encode_frame(4, C_.READ_MEM, _mem(TABLE, 60, 4)), None,
        P.encode_frame(5, C_.WRITE_MEM, _mem(COEF, 7, 3, P.pack_words(coef, 20))), None,
        P.encode_frame(6, C_.READ_MEM, _mem(COEF, 7, 3)), None,
        P.encode_frame(7, C_.READ_MEM, _mem(ROM_, 0, 4)), None,
        P.encode_frame(8, C_.SEND_BEATS, bytes((IN, 5)) + P.pack_words(beats, 16)), None,
        P.encode_frame(9, C_.READ_BEATS, bytes((OUT, 3))), None,
        P.encode_frame(10, C_.READ_BEATS, bytes((OUT, 9))), None,
        P.encode_frame(14, C_.LEVEL, bytes((OUT,))), None,
        P.encode_frame(15, C_.LEVEL, bytes((IN,))), None,
        P.encode_frame(11, C_.WRITE_MEM, _mem(TABLE, 0, 0)), None,
        P.encode_frame(12, C_.READ_MEM, _mem(TABLE, 0, 0)), None,
        P.encode_frame(13, C_.STATUS), None,
    ]
    ident = bytes((1,)) + br.design_id.to_bytes(4, "little") + \
        len(br.descriptor).to_bytes(2, "little")
    out = [_inv(b) for b in beats]
    assert _session(br, script) == [
        _ok(1, C_.IDENTIFY, ident),
        _ok(2, C_.READ_MEM, br.descriptor[:16]),
        _ok(3, C_.WRITE_MEM),
        _ok(4, C_.READ_MEM, bytes(2) + table),
        _ok(5, C_.WRITE_MEM),
        _ok(6, C_.READ_MEM, P.pack_words(coef, 20)),
        _ok(7, C_.READ_MEM, P.pack_words(ROM, 16)),
        _ok(8, C_.SEND_BEATS, [5]),
        _ok(9, C_.READ_BEATS, bytes([3]) + P.pack_words(out[:3], 16)),
        _ok(10, C_.READ_BEATS, bytes([2]) + P.pack_words(out[3:], 16)),
        _ok(14, C_.LEVEL, bytes(2)),
        _ok(15, C_.LEVEL, bytes(2)),
        _ok(11, C_.WRITE_MEM),
        _ok(12, C_.READ_MEM),
        _ok(13, C_.STATUS, P.pack_words([15, 0, 0, 0, 0], 16)),
    ]


def test_rejected_requests_change_nothing():
    br = _bridge()
    C_, E = P.Cmd, P.Err
    bad = [
        (0x40, b"", E.COMMAND),
        (C_.IDENTIFY, b"\x00", E.LENGTH),
        (C_.WRITE_MEM, _mem(TABLE, 0, 2, bytes(3)), E.LENGTH),      # 2 words need 4 bytes
        (C_.WRITE_MEM, _mem(TABLE, 63, 2, bytes(4)), E.RANGE),
        (C_.WRITE_MEM, _mem(TABLE, 2 ** 32 - 1, 1, bytes(2)), E.RANGE),
        (C_.WRITE_MEM, _mem(4, 0, 1, bytes(1)), E.INDEX),
        (C_.WRITE_MEM, _mem(ROM_, 0, 1, bytes(2)), E.READ_ONLY),
        (C_.WRITE_MEM, _mem(DESC, 0, 1, bytes(1)), E.READ_ONLY),
        (C_.READ_MEM, _mem(COEF, 0, 86), E.LENGTH),                 # 258 bytes do not fit
        (C_.READ_MEM, _mem(TABLE, 0, 2) + b"\x00", E.LENGTH),
        (C_.READ_MEM, b"\x02\x00\x00", E.LENGTH),
        (C_.SEND_BEATS, bytes((OUT, 1, 0, 0)), E.INDEX),                # an output stream
        (C_.SEND_BEATS, bytes((IN, 2, 0, 0)), E.LENGTH),
        (C_.SEND_BEATS, bytes((7, 0)), E.INDEX),
        (C_.READ_BEATS, bytes((IN, 1)), E.INDEX),
        (C_.READ_BEATS, bytes((OUT, 1, 0)), E.LENGTH),
        (C_.LEVEL, b"", E.LENGTH),
        (C_.LEVEL, bytes((2,)), E.INDEX),
    ]
    script = []
    for tag, (cmd, payload, _) in enumerate(bad, 1):
        script += [P.encode_frame(tag, cmd, payload), None]
    script += [P.encode_frame(99, C_.READ_MEM, _mem(TABLE, 62, 2)), None,
               P.encode_frame(98, C_.READ_MEM, _mem(ROM_, 0, 1)), None,
               P.encode_frame(97, C_.READ_BEATS, bytes((OUT, 9))), None,
               P.encode_frame(96, C_.STATUS), None]
    expected = [_err(tag, cmd, code) for tag, (cmd, _, code) in enumerate(bad, 1)] + [
        _ok(99, C_.READ_MEM, bytes(4)), _ok(98, C_.READ_MEM, P.pack_words(ROM[:1], 16)),
        _ok(97, C_.READ_BEATS, [0]),
        _ok(96, C_.STATUS, P.pack_words([len(bad) + 4, 0, 0, 0, len(bad)], 16))]
    assert _session(br, script, seed=1) == expected


def test_framing_errors_and_resynchronisation():
    br = _bridge(timeout=50)
    C_, E = P.Cmd, P.Err
    good = P.encode_frame(9, C_.STATUS)
    corrupt = bytearray(P.encode_frame(3, C_.IDENTIFY))
    corrupt[-1] ^= 0x10
    script = [
        b"\x00\x12\x7d", good, None,                          # garbage before a frame: ignored
        bytes(corrupt), good, None,                           # CRC error, then a frame
        P.encode_frame(4, C_.READ_MEM, _mem(2, 0, 1))[:6], good, None,   # cut by SYNC
        P.encode_frame(5, C_.IDENTIFY)[:3], 60, None,         # cut by the timeout
        bytes([P.SYNC]), 60, None,                            # a lone SYNC times out silently
        bytes([P.SYNC, P.SYNC]), good, None,
        bytes([P.SYNC, 1, P.ESC]), good, None,                # ESC then SYNC: still a SYNC
        P.encode_frame(6, C_.READ_MEM, _mem(2, 0, 1))[:7], 45,   # a slow frame, in time
        P.encode_frame(6, C_.READ_MEM, _mem(2, 0, 1))[7:], None,
    ]
    status = lambda ok, crc, trunc: _ok(9, C_.STATUS, P.pack_words([ok, crc, trunc, 0, 0], 16))
    assert _session(br, script, seed=2) == [
        status(1, 0, 0),
        _err(3, C_.IDENTIFY, E.CRC), status(2, 1, 0),
        _err(4, C_.READ_MEM, E.TRUNCATED), status(3, 1, 1),
        _err(5, 0, E.TRUNCATED),
        status(4, 1, 2),
        _err(0, 0, E.TRUNCATED), status(5, 1, 3),
        _ok(6, C_.READ_MEM, bytes(2)),
    ]


def test_busy_when_the_host_does_not_wait():
    """A frame arriving while the previous one still waits for the executor is dropped (BUSY)
    and changes nothing; the host can resend it."""
    br = _bridge()
    C_ = P.Cmd
    w1 = P.encode_frame(2, C_.WRITE_MEM, _mem(TABLE, 0, 1, b"\x01\x00"))
    w2 = P.encode_frame(3, C_.WRITE_MEM, _mem(TABLE, 1, 1, b"\x02\x00"))
    script = [P.encode_frame(1, C_.READ_MEM, _mem(DESC, 0, 200)) + w1 + w2, None,
              P.encode_frame(4, C_.READ_MEM, _mem(TABLE, 0, 2)), None]
    events = _session(br, script, seed=3)
    assert [(e.tag, e.cmd) for e in events] == [(1, 0x84), (3, P.ERROR), (2, 0x83), (4, 0x84)]
    assert events[1].payload == bytes((P.Err.BUSY, C_.WRITE_MEM))
    assert events[3].payload == bytes((1, 0, 0, 0))


def test_send_stops_when_the_core_stalls():
    """With nobody reading, SEND_BEATS takes what fits (FIFOs and pipeline) and says so."""
    br = _bridge()
    C_ = P.Cmd
    beats = [_beat(x, 0) for x in range(20)]
    script = [P.encode_frame(1, C_.SEND_BEATS, bytes((IN, 20)) + P.pack_words(beats, 16)), None,
              P.encode_frame(2, C_.READ_BEATS, bytes((OUT, 255))), None,
              P.encode_frame(3, C_.SEND_BEATS, bytes((IN, 1)) + P.pack_words(beats[:1], 16)),
              None]
    events = _session(br, script, seed=4)
    taken = events[0].payload[0]
    assert 8 <= taken < 20
    n = events[1].payload[0]
    assert n == 8 and events[1].payload[1:] == P.pack_words([_inv(b) for b in beats[:n]], 16)
    assert events[2] == _ok(3, C_.SEND_BEATS, [1])


# ---------------------------------------------------------------- fuzz under Verilator

class _Model:
    """What the bridge must answer, from the request alone (independent of the RTL)."""

    def __init__(self, bridge):
        self.bridge = bridge
        self.mems = {COEF: [0] * 10, TABLE: [0] * 64, ROM_: list(ROM)}
        self.widths = {DESC: 8, COEF: 20, TABLE: 12, ROM_: 16}
        self.depths = {DESC: len(bridge.descriptor), COEF: 10, TABLE: 64, ROM_: 4}
        self.queue = []         # beats the core has taken, not yet read (inverted)
        self.counts = {"ok": 0, "crc": 0, "truncated": 0, "busy": 0, "rejected": 0}

    def check(self, cmd, p):
        E, C_ = P.Err, P.Cmd
        if cmd in (C_.IDENTIFY, C_.STATUS):
            return E.LENGTH if p else 0
        if cmd in (C_.WRITE_MEM, C_.READ_MEM):
            if len(p) < 6:
                return E.LENGTH
            idx, addr, n = p[0], int.from_bytes(p[1:5], "little"), p[5]
            if idx not in self.widths:
                return E.INDEX
            nb = (self.widths[idx] + 7) // 8
            if cmd == C_.WRITE_MEM:
                if idx in (DESC, ROM_):
                    return E.READ_ONLY
                if len(p) != 6 + n * nb:
                    return E.LENGTH
            elif len(p) != 6 or n * nb > 255:
                return E.LENGTH
            return E.RANGE if addr + n > self.depths[idx] else 0
        if cmd == C_.LEVEL:
            return E.LENGTH if len(p) != 1 else E.INDEX if p[0] > OUT else 0
        if cmd in (C_.SEND_BEATS, C_.READ_BEATS):
            if len(p) < 2:
                return E.LENGTH
            if (cmd, p[0]) not in ((C_.SEND_BEATS, IN), (C_.READ_BEATS, OUT)):
                return E.INDEX
            want = 2 + 2 * p[1] if cmd == C_.SEND_BEATS else 2
            return E.LENGTH if len(p) != want else 0
        return E.COMMAND

    def answer(self, frame, response):
        """Check ``response`` to the valid ``frame``; update the model."""
        cmd, p, C_ = frame.cmd, frame.payload, P.Cmd
        self.counts["ok"] += 1
        code = self.check(cmd, p)
        if code:
            self.counts["rejected"] += 1
            assert response == _err(frame.tag, cmd, code)
            return
        assert response.tag == frame.tag and response.cmd == cmd | P.RESPONSE, response
        r = response.payload
        if cmd == C_.IDENTIFY:
            assert r[1:5] == self.bridge.design_id.to_bytes(4, "little")
        elif cmd == C_.STATUS:
            assert P.unpack_words(r, 16) == list(self.counts.values())
        elif cmd == C_.WRITE_MEM:
            idx, addr, n = p[0], int.from_bytes(p[1:5], "little"), p[5]
            words = P.unpack_words(p[6:], self.widths[idx], signed=idx == TABLE)
            self.mems[idx][addr:addr + n] = words
            assert r == b""
        elif cmd == C_.READ_MEM:
            idx, addr, n = p[0], int.from_bytes(p[1:5], "little"), p[5]
            if idx == DESC:
                assert r == self.bridge.descriptor[addr:addr + n]
            else:
                assert P.unpack_words(r, self.widths[idx], signed=idx == TABLE) == \
                    self.mems[idx][addr:addr + n]
        elif cmd == C_.SEND_BEATS:
            taken = r[0]
            assert taken <= p[1]
            self.queue += [_inv(b) for b in P.unpack_words(p[2:2 + 2 * taken], 16)]
        elif cmd == C_.LEVEL:
            level = int.from_bytes(r, "little")
            if p[0] == OUT:
                assert level == min(len(self.queue), 8)
            else:
                assert level <= 2 and (level == 0 or len(self.queue) > 8)
        elif cmd == C_.READ_BEATS:
            n = r[0]
            assert n == min(p[1], len(self.queue), 8)       # 8: the output FIFO depth
            assert P.unpack_words(r[1:], 16) == self.queue[:n]
            del self.queue[:n]


def _random_request(rng, model):
    C_ = P.Cmd
    kind = rng.random()
    if kind < 0.08:
        return rng.choice([C_.IDENTIFY, C_.STATUS]), b""
    if kind < 0.35:
        idx = rng.choice([COEF, TABLE, TABLE, TABLE])
        depth, width = model.depths[idx], model.widths[idx]
        n = rng.randint(0, min(depth, 8))
        addr = rng.randint(0, depth - n)
        signed_ = idx == TABLE
        lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed_ else (0, (1 << width) - 1)
        words = [rng.randint(lo, hi) for _ in range(n)]
        return C_.WRITE_MEM, _mem(idx, addr, n, P.pack_words(words, width, signed=signed_))
    if kind < 0.55:
        idx = rng.choice([DESC, COEF, TABLE, TABLE, ROM_])
        depth = model.depths[idx]
        n = rng.randint(0, min(depth, 12))
        return C_.READ_MEM, _mem(idx, rng.randint(0, depth - n), n)
    if kind < 0.72:
        n = rng.randint(0, 6)
        beats = [rng.randrange(1 << 13) for _ in range(n)]
        return C_.SEND_BEATS, bytes((IN, n)) + P.pack_words(beats, 16)
    if kind < 0.80:
        return C_.READ_BEATS, bytes((OUT, rng.randint(0, 10)))
    if kind < 0.85:
        return C_.LEVEL, bytes((rng.choice([IN, OUT]),))
    # A well-formed frame with a bad request: unknown command, wrong length, index, range.
    return rng.choice([
        (rng.randrange(0x08, 0x80), rng.randbytes(rng.randrange(4))),
        (C_.WRITE_MEM, _mem(rng.randrange(256), rng.randrange(80), rng.randrange(4),
                            rng.randbytes(rng.randrange(8)))),
        (C_.READ_MEM, _mem(rng.randrange(6), rng.randrange(80), rng.randrange(200))),
        (C_.SEND_BEATS, bytes((rng.randrange(3), rng.randrange(4))) + rng.randbytes(3)),
        (C_.READ_BEATS, bytes((rng.randrange(3),)) + rng.randbytes(rng.randrange(3))),
        (C_.STATUS, rng.randbytes(1 + rng.randrange(3))),
        (C_.LEVEL, rng.randbytes(rng.choice([0, 2, 3]))),
    ])


def _corrupt(rng, frame):
    """A frame damaged the ways a serial line damages it (never a frame with a good CRC)."""
    b = bytearray(frame)
    kind = rng.randrange(6)
    if kind == 0:                                   # flip bits after the SYNC
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(1, len(b))] ^= 1 << rng.randrange(8)
    elif kind == 1:                                 # cut short
        b = b[:rng.randrange(1, len(b))]
    elif kind == 2:                                 # a byte lost
        del b[rng.randrange(1, len(b))]
    elif kind == 3:                                 # a byte added
        b.insert(rng.randrange(1, len(b) + 1), rng.randrange(256))
    elif kind == 4:                                 # line noise, SYNCs included
        b = bytearray(rng.randbytes(rng.randrange(1, 30)))
    else:                                           # an escape or a SYNC in the wrong place
        b.insert(rng.randrange(1, len(b) + 1), rng.choice([P.ESC, P.SYNC]))
    return bytes(b)


def test_fuzz_random_and_corrupted_frames():
    """10,000+ frames: corrupted ones mixed with good ones. Every good frame is answered
    exactly as the model says (memories, beats, counters), whatever came before it."""
    from spikeforge.firmware.runtime import SimTransport
    rng = random.Random(2024)
    br = _bridge(timeout=5000)
    model = _Model(br)
    frames, chunks = 0, 0
    dec = P.FrameDecoder()
    start = time.monotonic()
    with SimTransport(br) as link:
        while frames < 10_000:
            chunks += 1
            tag = chunks % 255 + 1
            req = P.Frame(tag, *_random_request(rng, model))
            good = P.encode_frame(req.tag, req.cmd, req.payload)
            junk = b""
            n_junk = rng.choice([0, 1, 2, 3, 4, 5, 6])
            for _ in range(n_junk):
                other = _random_request(rng, model)
                junk += _corrupt(rng, P.encode_frame(rng.randrange(256), *other))
            events = P.FrameDecoder().feed(junk + good)
            if any(isinstance(e, P.Frame) for e in events[:-1]) or events[-1] != req:
                continue        # the damage happened to make a valid frame: draw again
            frames += 1 + n_junk
            for e in events[:-1]:
                model.counts["crc" if e.code == P.Err.CRC else "truncated"] += 1
            expected_errors = {(e.tag, e.cmd, e.code) for e in events[:-1]}
            link.write(junk + good)
            response = None
            deadline = time.monotonic() + 20
            while response is None:
                assert time.monotonic() < deadline, f"no answer to {req}"
                for ev in dec.feed(link.read(4096, 1.0)):
                    assert isinstance(ev, P.Frame), ev      # responses are never corrupt
                    # A frame that arrived whole is never answered CRC, TRUNCATED or BUSY
                    # (the host waited): such an error with the same tag is the junk's.
                    if ev.tag == req.tag and (ev.cmd == req.cmd | P.RESPONSE or (
                            ev.cmd == P.ERROR and ev.payload[1] == req.cmd and
                            ev.payload[0] not in (P.Err.CRC, P.Err.TRUNCATED, P.Err.BUSY))):
                        response = ev
                    else:   # a best-effort error for the junk
                        assert ev.cmd == P.ERROR
                        assert (ev.tag, ev.payload[1], ev.payload[0]) in expected_errors, ev
            model.answer(req, response)
        # Nothing was written that was not asked for.
        for idx, words in model.mems.items():
            got = []
            for addr in range(0, len(words), 8):
                n = min(8, len(words) - addr)
                link.write(P.encode_frame(1, P.Cmd.READ_MEM, _mem(idx, addr, n)))
                ev = []
                while not ev:
                    ev = dec.feed(link.read(4096, 5.0))
                got += P.unpack_words(ev[0].payload, model.widths[idx], signed=idx == TABLE)
            assert got == words
    print(f"fuzz: {frames} frames in {chunks} chunks, {time.monotonic() - start:.1f} s")
