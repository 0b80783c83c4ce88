# amaranth: UnusedElaboratable=no
"""Bridge protocol in pure Python: CRC, stuffing, the reference decoder, word and beat packing."""

import random

import pytest
from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data

from spikeforge.firmware import protocol as P
from spikeforge.rtl.bridge import describe_shape
from spikeforge.sim.payload import Codec


def test_crc16_check_value_and_residue():
    assert P.crc16(b"123456789") == 0x29B1          # CRC-16/CCITT-FALSE catalogue value
    assert P.crc16(b"") == 0xFFFF
    body = bytes([3, 7, P.Cmd.READ_BEATS, 1, 2, 3])
    crc = P.crc16(body)
    assert P.crc16(body + bytes([crc >> 8, crc & 0xFF])) == 0


def test_encode_frame_layout_and_stuffing():
    frame = P.encode_frame(0x7E, P.Cmd.SEND_BEATS, bytes([0x7D, 0x00]))
    assert frame[0] == P.SYNC and P.SYNC not in frame[1:]
    # LEN=2, TAG=0x7E (escaped), CMD, payload 0x7D (escaped), 0x00, CRC
    assert frame[1:6] == bytes([2, P.ESC, 0x5E, P.Cmd.SEND_BEATS, P.ESC])
    assert P.stuff(bytes([P.SYNC, P.ESC, 1])) == bytes([P.ESC, 0x5E, P.ESC, 0x5D, 1])


@pytest.mark.parametrize("tag, cmd, payload, message", [
    (256, 1, b"", r"^frame field 'tag' must be an integer in 0\.\.255, not 256$"),
    (1, -1, b"", r"^frame field 'cmd' must be an integer in 0\.\.255, not -1$"),
    (1, 1, bytes(256), r"^frame payload must be at most 255 bytes, not 256$"),
])
def test_encode_frame_rejects(tag, cmd, payload, message):
    with pytest.raises(ValueError, match=message):
        P.encode_frame(tag, cmd, payload)


def test_decoder_round_trip_and_resync():
    rng = random.Random(1)
    frames = [P.Frame(rng.randrange(256), rng.randrange(256), rng.randbytes(rng.randrange(256)))
              for _ in range(200)]
    stream = b"".join(rng.randbytes(rng.randrange(4)).replace(bytes([P.SYNC]), b"")
                      + P.encode_frame(f.tag, f.cmd, f.payload) for f in frames)
    dec = P.FrameDecoder()
    events = []
    for k in range(0, len(stream), 7):           # fed in arbitrary pieces
        events += dec.feed(stream[k:k + 7])
    assert events == frames


def test_decoder_errors():
    dec = P.FrameDecoder()
    good = P.encode_frame(5, 1, b"ab")
    bad = bytearray(good)
    bad[-1] ^= 1
    assert dec.feed(bad) == [P.FrameError(P.Err.CRC, 5, 1)]
    # cut short by the next SYNC: tag and command known
    assert dec.feed(good[:5] + good) == [P.FrameError(P.Err.TRUNCATED, 5, 1),
                                         P.Frame(5, 1, b"ab")]
    # cut before the command: only the tag is known; SYNC SYNC is not an error
    assert dec.feed(bytes([P.SYNC, 2, 9, P.SYNC, P.SYNC]) + good) == [
        P.FrameError(P.Err.TRUNCATED, 9, 0), P.Frame(5, 1, b"ab")]
    # a timeout (reset) truncates a frame in progress, not a lone SYNC
    assert dec.feed(good[:4]) == []
    assert dec.reset() == [P.FrameError(P.Err.TRUNCATED, 5, 1)]
    assert dec.feed(bytes([P.SYNC])) == [] and dec.reset() == []
    # ESC before SYNC: the SYNC still starts a frame
    assert dec.feed(bytes([P.SYNC, 3, P.ESC]) + good) == [P.FrameError(P.Err.TRUNCATED, 0, 0),
                                                          P.Frame(5, 1, b"ab")]


def test_pack_words():
    assert P.pack_words([-1, 5], 12, signed=True) == bytes([0xFF, 0x0F, 5, 0])
    assert P.unpack_words(bytes([0xFF, 0x0F, 5, 0]), 12, signed=True) == [-1, 5]
    assert P.unpack_words(bytes([0xFF, 0xFF]), 12) == [0xFFF]
    assert P.pack_words([1, 0, -1], 2, signed=True) == bytes([1, 0, 3])
    assert P.unpack_words(bytes([1, 0, 3]), 2, signed=True) == [1, 0, -1]
    with pytest.raises(ValueError, match=r"^word 2 does not fit 2 bits signed \(-2\.\.1\)$"):
        P.pack_words([2], 2, signed=True)
    with pytest.raises(ValueError, match=r"^word -1 does not fit 8 bits unsigned \(0\.\.255\)$"):
        P.pack_words([-1], 8)
    with pytest.raises(ValueError, match=r"^word width must be a positive integer, not 0$"):
        P.pack_words([], 0)
    with pytest.raises(ValueError, match=r"^3 bytes are not a whole number of 2-byte words$"):
        P.unpack_words(b"abc", 16)


LAYOUTS = [
    unsigned(5),
    signed(7),
    data.StructLayout({"x": data.ArrayLayout(signed(12), 4), "first": 1, "last": 1}),
    data.StructLayout({"q": data.ArrayLayout(signed(2), 3), "s": data.StructLayout(
        {"a": unsigned(3), "b": signed(9)})}),
    data.ArrayLayout(data.StructLayout({"v": signed(4), "ok": 1}), 5),
]


def _random_value(shape, rng):
    if isinstance(shape, data.ArrayLayout):
        return [_random_value(shape.elem_shape, rng) for _ in range(shape.length)]
    if isinstance(shape, data.StructLayout):
        return {name: _random_value(f.shape, rng) for name, f in shape}
    sh = Shape.cast(shape)
    lo, hi = (-(1 << (sh.width - 1)), (1 << (sh.width - 1)) - 1) if sh.signed \
        else (0, (1 << sh.width) - 1)
    return rng.randint(lo, hi)


@pytest.mark.parametrize("k", range(len(LAYOUTS)))
def test_layout_codec_agrees_with_the_sim_codec(k):
    """The host's layout codec (descriptor JSON, no Amaranth) against the bench's codec."""
    shape = LAYOUTS[k]
    host, ref = P.LayoutCodec(describe_shape(shape)), Codec(shape)
    assert host.width == ref.width
    rng = random.Random(k)
    for _ in range(200):
        value = _random_value(shape, rng)
        raw = ref.pack(value)
        assert host.pack(value) == raw
        assert host.unpack(raw) == ref.unpack(raw) == value


def test_layout_codec_rejects():
    codec = P.LayoutCodec(describe_shape(LAYOUTS[2]))
    with pytest.raises(ValueError, match=r"^payload is missing field\(s\) \['last'\]$"):
        codec.pack({"x": [0] * 4, "first": 0})
    with pytest.raises(ValueError, match=r"^payload has unknown field\(s\) \['y'\]$"):
        codec.pack({"x": [0] * 4, "first": 0, "last": 0, "y": 1})
    with pytest.raises(ValueError, match=r"^payload array needs 4 elements, not 3$"):
        codec.pack({"x": [0] * 3, "first": 0, "last": 0})
    with pytest.raises(ValueError, match=r"^payload value 2048 does not fit 12 bits signed$"):
        codec.pack({"x": [2048, 0, 0, 0], "first": 0, "last": 0})
    with pytest.raises(ValueError, match=r"^raw payload 1024 does not fit 10 bits$"):
        P.LayoutCodec(describe_shape(data.StructLayout({"a": 10}))).pack(1024)
    assert codec.pack(5) == 5       # raw bits pass through


def test_beats_per_second():
    # 7-byte beats in: 36 per frame, 8 + 252 bytes (+ escapes) per frame at 300 kB/s.
    rate = P.beats_per_second(7)
    assert rate == pytest.approx(36 / ((8 + 252 * (1 + 2 / 256)) * 10 / 3e6))
    assert P.beats_per_second(7, turnaround_s=1e-3) < rate / 2
    assert P.beats_per_second(2, direction="out") > P.beats_per_second(2)
    with pytest.raises(ValueError, match=r"^a 254-byte beat does not fit a frame$"):
        P.beats_per_second(254)
    with pytest.raises(ValueError, match=r"^direction must be 'in' or 'out', not 'up'$"):
        P.beats_per_second(1, direction="up")
