# amaranth: UnusedElaboratable=no
"""ratedecode: parameter rules, the ML split, hand-checked golden cases (saturation, malformed
windows), and RTL vs golden in the Amaranth simulator with random valid gaps and
backpressure."""

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spikeforge.golden.ratedecode import ml_threshold, ratedecode, ratedecode_beats
from spikeforge.rtl.ratedecode import RateDecode, check_ratedecode_params
from spikeforge.rtl.ratedecode import ml_threshold as rtl_ml_threshold
from w2s_streams import run_stream, vector_beats

BASE = dict(d_max=8, p=4, W=6, C=2)


def test_init():
    dut = RateDecode(**BASE)
    assert dut.signature == wiring.Signature({
        "i": In(stream.Signature(data.StructLayout({
            "s": data.ArrayLayout(unsigned(1), 4), "empty": unsigned(2), "first": 1, "last": 1,
            "tick_last": 1}))),
        "o": Out(stream.Signature(data.StructLayout({
            "q": data.ArrayLayout(signed(2), 4), "empty": unsigned(2), "first": 1, "last": 1}))),
    })
    assert dut.params == dict(BASE, count_width=3, rate_pos=6554, rate_neg=3277)
    assert (dut.groups, dut.latency, dut.cycles_per_window(6, 5)) == (2, 8, 19)
    assert RateDecode(d_max=4, p=4, W=1000).C == 72


def test_ml_threshold():
    # 100 Hz vs 50 Hz over one second: 50 / ln 2 = 72.1 spikes (the "about 72" split).
    assert ml_threshold(1000, 6554, 3277) == rtl_ml_threshold(1000, 6554, 3277) == 72
    for W in (1, 7, 32, 64, 500, 65535):
        for pos, neg in ((6554, 3277), (60000, 10), (2, 1), (65535, 65534)):
            assert ml_threshold(W, pos, neg) == rtl_ml_threshold(W, pos, neg)
    assert ml_threshold(10, 6554, 0) == 1
    assert ml_threshold(1, 6554, 3277) == 1                 # clamped up from 0
    assert ml_threshold(3, 65535, 65534) == 3               # clamped down to W
    with pytest.raises(ValueError, match=r"^ratedecode parameter 'rate_neg' must be below "
                                         r"rate_pos=5 for a count split, not 5$"):
        ml_threshold(10, 5, 5)


@pytest.mark.parametrize("name, value, exc, message", [
    ("p", 5, ValueError, r"^RateDecode parameter 'p' must be a power of two in 1\.\.64, not 5$"),
    ("d_max", 10, ValueError, r"^RateDecode parameter 'd_max' must be a multiple of p=4, "
                              r"not 10$"),
    ("W", 0, ValueError, r"^RateDecode parameter 'W' must be in 1\.\.65535, not 0$"),
    ("C", 0, ValueError, r"^RateDecode parameter 'C' must be in 1\.\.7, not 0$"),
    ("C", 8, ValueError, r"^RateDecode parameter 'C' must be in 1\.\.7, not 8$"),
    ("C", 2.5, TypeError, r"^RateDecode parameter 'C' must be an integer, not 2\.5$"),
    ("count_width", 0, ValueError, r"^RateDecode parameter 'count_width' must be in 1\.\.16, "
                                   r"not 0$"),
    ("count_width", 17, ValueError, r"^RateDecode parameter 'count_width' must be in 1\.\.16, "
                                    r"not 17$"),
    ("rate_pos", -1, ValueError, r"^RateDecode parameter 'rate_pos' must be in 0\.\.65535, "
                                 r"not -1$"),
])
def test_init_wrong_param(name, value, exc, message):
    with pytest.raises(exc, match=message):
        RateDecode(**{**BASE, name: value})
    with pytest.raises(exc, match=message):
        check_ratedecode_params(**{**BASE, name: value})


def test_init_default_c_needs_ordered_rates():
    with pytest.raises(ValueError, match=r"^RateDecode parameter 'rate_neg' must be below "
                                         r"rate_pos=100 to derive C, not 200$"):
        RateDecode(d_max=4, p=4, W=10, rate_pos=100, rate_neg=200)
    assert RateDecode(d_max=4, p=4, W=10, rate_pos=100, rate_neg=200, C=3).C == 3
    # A derived C never exceeds the counter: W = 1000 with 4-bit counters gives C = 15.
    assert RateDecode(d_max=4, p=4, W=1000, count_width=4).C == 15


# Golden, hand-checked ------------------------------------------------------------------------

def test_golden_decode_rule():
    spikes = np.zeros((1, 5, 4), dtype=np.uint8)
    spikes[0, :1, 1] = 1            # 1 spike  -> -1
    spikes[0, :2, 2] = 1            # 2 spikes -> +1 (ties at C go to +1)
    spikes[0, :, 3] = 1             # 5 spikes -> +1
    assert ratedecode(spikes, C=2, count_width=3).tolist() == [[0, -1, 1, 1]]
    assert ratedecode(spikes, [2], C=2, count_width=3).tolist() == [[0, -1, 0, 0]]
    # Saturation: 5 spikes in a 2-bit counter count as 3 (not 5 mod 4 = 1, which is -1).
    assert ratedecode(spikes, C=3, count_width=2).tolist() == [[0, -1, -1, 1]]
    with pytest.raises(ValueError, match=r"^ratedecode parameter 'C' must be in 1\.\.3, "
                                         r"not 4$"):
        ratedecode(spikes, C=4, count_width=2)


def _beats(rows):
    """(s, first, last, tick_last, empty) arrays from rows of (s, first, last, tick_last, empty)."""
    s = np.array([r[0] for r in rows])
    return (s, *(np.array([r[k] for r in rows]) for k in range(1, 5)))


def test_golden_malformed_windows():
    p, d_max = 2, 4
    rows = [
        # Window A: abandoned by the `first` below.
        ([1, 1], 1, 0, 1, 0),
        # Window B: tick 0 = 2 beats, length 3; tick 1 has an extra beat (dropped);
        # tick 2 ends early with `last` after one beat.
        ([1, 0], 1, 0, 0, 0), ([1, 1], 0, 0, 1, 1),
        ([1, 0], 0, 0, 0, 0), ([0, 1], 0, 0, 0, 0), ([1, 1], 0, 0, 1, 0),
        ([1, 1], 0, 1, 0, 0),
        # Window C (no `first`, after `last`): tick 0 has 3 beats, past d_max/p = 2.
        ([1, 0], 0, 0, 0, 0), ([0, 0], 0, 0, 0, 0), ([1, 1], 0, 0, 1, 1),
        ([1, 0], 0, 1, 1, 0),
        # Window D: never ends.
        ([1, 1], 1, 0, 1, 0),
    ]
    q, lengths = ratedecode_beats(*_beats(rows), p=p, d_max=d_max, C=3, count_width=2)
    assert lengths.tolist() == [3, 4]
    # B: element 0 = 1+1+1 = 3 -> +1; element 1 = 0+0+1 -> -1; element 2 = 1+0 -> -1;
    # element 3 is past the length. C: element 0 = 1+1 -> -1; the rest 0.
    assert q.tolist() == [[1, -1, -1, 0], [-1, 0, 0, 0]]


def test_golden_beats_equals_arrays():
    rng = np.random.default_rng(4)
    spikes = (rng.random((7, 5, 12)) < 0.4).astype(np.uint8)
    lengths = rng.integers(1, 13, size=7)
    rows = []
    for v in range(7):
        G = -(-lengths[v] // 4)
        for t in range(5):
            row = np.zeros(G * 4, dtype=np.int64)
            row[:lengths[v]] = spikes[v, t, :lengths[v]]
            for g in range(G):
                end = g == G - 1
                rows.append((row[4 * g:4 * g + 4].tolist(), int(t == g == 0),
                             int(end and t == 4), int(end), G * 4 - lengths[v] if end else 0))
    q, got_len = ratedecode_beats(*_beats(rows), p=4, d_max=12, C=2, count_width=3)
    assert got_len.tolist() == lengths.tolist()
    assert np.array_equal(q, ratedecode(spikes, lengths, C=2, count_width=3))


# RTL vs golden, Amaranth simulator -----------------------------------------------------------

def _random_windows(rng, n, d_max, p, W, odd=0.0):
    """Beats of n windows with random spike densities; with probability ``odd`` a window has a
    later tick a beat short or long, or a tick 0 past d_max."""
    rows = []
    for _ in range(n):
        d = int(rng.integers(1, d_max + 1))
        if rng.random() < odd / 3:
            d = d_max + int(rng.integers(1, p + 1))
        G = -(-d // p)
        shape = np.full(W, G)
        if rng.random() < odd and W > 1:
            t = int(rng.integers(1, W))
            shape[t] = max(1, shape[t] + int(rng.choice([-1, 1])))
        dens = rng.random(d)
        first = int(rng.random() < 0.7)
        for t in range(W):
            row = np.zeros(max(G, shape[t]) * p, dtype=np.int64)
            row[:d] = rng.random(d) < dens
            for g in range(shape[t]):
                end = g == shape[t] - 1
                rows.append({"s": row[g * p:(g + 1) * p].tolist(),
                             "empty": G * p - d if end else 0,
                             "first": first if t == g == 0 else 0,
                             "last": int(end and t == W - 1), "tick_last": int(end)})
    return rows


def check_rtl(params, n, seed, odd=0.0, extra=()):
    rng = np.random.default_rng(seed)
    dut = RateDecode(**params)
    beats = list(extra) + _random_windows(rng, n, params["d_max"], params["p"], params["W"], odd)
    arrays = _beats([(b["s"], b["first"], b["last"], b["tick_last"], b["empty"])
                     for b in beats])
    q, lengths = ratedecode_beats(*arrays, p=params["p"], d_max=params["d_max"], C=dut.C,
                                  count_width=dut.count_width)
    want = vector_beats(q, lengths, params["p"], "q")
    out, _, _ = run_stream(dut, beats, len(want), seed=seed + 1)
    assert out == want
    return q


def test_rtl_base():
    q = check_rtl(BASE, 30, 1)
    assert (q == 1).any() and (q == -1).any() and (q == 0).any()


def test_rtl_one_lane_single_tick():
    check_rtl(dict(d_max=3, p=1, W=1, C=1), 40, 2)


def test_rtl_saturation_and_malformed_ticks():
    # 2-bit counters over 9 ticks saturate at 3; C = 3 then means "3 or more".
    q = check_rtl(dict(d_max=16, p=8, W=9, C=3, count_width=2), 30, 3, odd=0.5)
    assert (q == 1).any()


@pytest.mark.parametrize("d_max, read_latency", [(40, 2), (544, 4)])
def test_rtl_deep_counter_memory(d_max, read_latency):
    """Deeper counter memories read through more pipeline stages; short and malformed windows
    then update the same counters within the read's latency, which forwarding covers."""
    dut = RateDecode(d_max=d_max, p=2, W=4, C=2)
    assert dut.read_latency == read_latency and dut.latency == 2 * read_latency + 6
    short = _random_windows(np.random.default_rng(9), 20, 14, 2, 4, odd=0.3)  # <= 7 beats
    check_rtl(dict(d_max=d_max, p=2, W=4, C=2), 6, 6, odd=0.3, extra=short)


def test_rtl_abandoned_and_overlong_windows():
    params = dict(d_max=4, p=2, W=3, C=2, count_width=2)
    extra = [
        {"s": [1, 1], "empty": 0, "first": 1, "last": 0, "tick_last": 1},     # abandoned
        {"s": [1, 1], "empty": 0, "first": 0, "last": 0, "tick_last": 0},
        {"s": [1, 0], "empty": 0, "first": 1, "last": 0, "tick_last": 0},     # tick 0: 3 beats
        {"s": [1, 1], "empty": 0, "first": 0, "last": 0, "tick_last": 0},
        {"s": [1, 1], "empty": 1, "first": 0, "last": 0, "tick_last": 1},     # dropped
        {"s": [1, 1], "empty": 0, "first": 0, "last": 1, "tick_last": 0},     # `last` mid-tick
    ]
    check_rtl(params, 10, 4, odd=0.3, extra=extra)


def test_rtl_cycles_per_window():
    """No gaps: (T+1)*G + 2*L + 3 cycles per window; the first output 2*L + 6 cycles after
    the last input (L = 1, the read latency of up to 16 beats)."""
    params = dict(d_max=16, p=4, W=5, C=2)
    for d in (16, 7, 1):
        dut = RateDecode(**params)
        G = -(-d // 4)
        beats = []
        for _ in range(3):
            for t in range(5):
                for g in range(G):
                    end = g == G - 1
                    beats.append({"s": [1, 0, 1, 0], "empty": 4 * G - d if end else 0,
                                  "first": int(t == g == 0), "last": int(end and t == 4),
                                  "tick_last": int(end)})
        out, cin, cout = run_stream(dut, beats, 3 * G, seed=0, gap=0, stall=0)
        assert cin[5 * G] - cin[0] == cin[10 * G] - cin[5 * G] == dut.cycles_per_window(5, d)
        assert cout[0] - cin[5 * G - 1] == dut.latency
        assert cout[G - 1] - cout[0] == G - 1


def test_verilog_has_no_multiplier():
    text = verilog.convert(RateDecode(d_max=3072, p=4, W=1000), name="ratedecode")
    assert "module ratedecode" in text and " * " not in text
