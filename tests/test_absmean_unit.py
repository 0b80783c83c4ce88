# amaranth: UnusedElaboratable=no
"""absmean: parameter rules, hand-checked golden cases (ties, zeros, d = 1), the golden model
against an exact rational reference, and RTL vs golden in the Amaranth simulator with random
valid gaps and backpressure."""

from fractions import Fraction

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spikeforge.golden.absmean import absmean
from spikeforge.golden.vectors import gather_vectors, split_vectors
from spikeforge.rtl.absmean import AbsMean, check_absmean_params
from w2s_streams import run_stream, vector_beats

BASE = dict(d_max=16, p=4, e_width=8)


def test_init():
    dut = AbsMean(**BASE)
    assert dut.signature == wiring.Signature({
        "i": In(stream.Signature(data.StructLayout({
            "e": data.ArrayLayout(signed(8), 4), "empty": unsigned(2), "first": 1, "last": 1}))),
        "o": Out(stream.Signature(data.StructLayout({
            "q": data.ArrayLayout(signed(2), 4), "empty": unsigned(2), "first": 1, "last": 1}))),
    })
    assert (dut.groups, dut.sum_latency, dut.divide_cycles, dut.overhead_cycles,
            dut.latency) == (4, 3, 7, 11, 15)
    assert dut.params == BASE
    one = AbsMean(d_max=3, p=1, e_width=2)
    assert one.i.payload.shape().size == 2 + 0 + 2      # p = 1: no `empty` bits


@pytest.mark.parametrize("name, value, exc, message", [
    ("p", 3, ValueError, r"^AbsMean parameter 'p' must be a power of two in 1\.\.64, not 3$"),
    ("p", 128, ValueError, r"^AbsMean parameter 'p' must be a power of two in 1\.\.64, not 128$"),
    ("p", 0, ValueError, r"^AbsMean parameter 'p' must be a power of two in 1\.\.64, not 0$"),
    ("p", 4.0, TypeError, r"^AbsMean parameter 'p' must be an integer, not 4\.0$"),
    ("d_max", 0, ValueError, r"^AbsMean parameter 'd_max' must be in 1\.\.65536, not 0$"),
    ("d_max", 65540, ValueError, r"^AbsMean parameter 'd_max' must be in 1\.\.65536, not 65540$"),
    ("d_max", 18, ValueError, r"^AbsMean parameter 'd_max' must be a multiple of p=4, not 18$"),
    ("d_max", True, TypeError, r"^AbsMean parameter 'd_max' must be an integer, not True$"),
    ("e_width", 1, ValueError, r"^AbsMean parameter 'e_width' must be in 2\.\.24, not 1$"),
    ("e_width", 25, ValueError, r"^AbsMean parameter 'e_width' must be in 2\.\.24, not 25$"),
    ("e_width", "8", TypeError, r"^AbsMean parameter 'e_width' must be an integer, not '8'$"),
])
def test_init_wrong_param(name, value, exc, message):
    with pytest.raises(exc, match=message):
        AbsMean(**{**BASE, name: value})
    with pytest.raises(exc, match=message):
        check_absmean_params(**{**BASE, name: value})


# Golden, hand-checked ------------------------------------------------------------------------

def test_golden_ties_go_to_zero():
    # d = 4, S = 1 + 3 + 2 + 2 = 8, S/2d = 1: |e| = 1 is exactly on the split -> 0.
    assert absmean([[1, -3, 2, -2]]).tolist() == [[0, -1, 1, -1]]
    assert absmean([[-1, 3, 2, 2]]).tolist() == [[0, 1, 1, 1]]
    # d = 2, e = [t, 3t]: S = 4t = 2*d*t, a tie on the first element for every t.
    for t in (1, 5, 31):
        assert absmean([[t, 3 * t], [-t, 3 * t]]).tolist() == [[0, 1], [0, 1]]
    # One above the split fires: S = 9, 2*d*|e| = 8*2 = 16 > 9; 8*1 = 8 < 9.
    assert absmean([[1, 2, 3, 3]]).tolist() == [[0, 1, 1, 1]]


def test_golden_zero_vector_and_single_element():
    assert absmean([[0, 0, 0]]).tolist() == [[0, 0, 0]]
    # d = 1: 2*|e| > |e| for every e != 0.
    assert absmean([[5], [-1], [0], [-128]]).tolist() == [[1], [-1], [0], [-1]]
    # Only the first element counts for lengths 1; the rest are ignored and come out 0.
    assert absmean([[-7, 100, 100]], [1]).tolist() == [[-1, 0, 0]]


def test_golden_full_scale():
    lo, hi = -2 ** 23, 2 ** 23 - 1
    e = np.full((1, 65536), lo, dtype=np.int64)
    assert (absmean(e, e_width=24) == -1).all()
    # One large element among zeros: S/2d is tiny, so it alone fires.
    e = np.zeros((1, 1000), dtype=np.int64)
    e[0, 7] = hi
    q = absmean(e, e_width=24)
    assert q[0, 7] == 1 and np.count_nonzero(q) == 1


def _reference(row):
    """BitNet b1.58 with exact rationals: clip(round(e / mean|e|), -1, 1), ties to 0."""
    row = [int(v) for v in row]
    S = sum(abs(v) for v in row)
    if S == 0:
        return [0] * len(row)
    gamma = Fraction(S, len(row))
    out = []
    for v in row:
        x = Fraction(v) / gamma
        out.append(0 if abs(x) <= Fraction(1, 2) else (1 if x > 0 else -1))
    return out


def test_golden_matches_rational_reference():
    rng = np.random.default_rng(11)
    for _ in range(200):
        d = int(rng.integers(1, 40))
        scale = int(rng.choice([2, 4, 50, 2 ** 15]))
        e = rng.integers(-scale, scale, size=(1, d))
        assert absmean(e)[0].tolist() == _reference(e[0])


def test_golden_wrong_input():
    with pytest.raises(ValueError, match=r"^absmean input 'e' must be in -128\.\.127 "
                                         r"\(e_width=8\), not 128$"):
        absmean([[1, 128]], e_width=8)
    with pytest.raises(ValueError, match=r"^absmean input 'e' must have shape \(V, D\), "
                                         r"not \(3,\)$"):
        absmean([1, 2, 3])
    with pytest.raises(TypeError, match=r"^absmean input 'e' must be an integer array, "
                                        r"not float64$"):
        absmean([[1.5]])
    with pytest.raises(ValueError, match=r"^absmean input 'lengths' must be in 1\.\.2$"):
        absmean([[1, 2]], [3])
    with pytest.raises(ValueError, match=r"^absmean parameter 'e_width' must be in 2\.\.24, "
                                         r"not 30$"):
        absmean([[1]], e_width=30)


def test_framing_rules():
    # Beats (p = 2, at most 2 beats): a vector, one abandoned by `first`, one too long, one
    # started without `first` after a `last`, and one the stream never ends.
    first = [1, 0, 1, 1, 0, 1, 0, 0, 0, 0, 1]
    last = [0, 1, 0, 0, 1, 0, 0, 1, 1, 0, 0]
    empty = [0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0]
    start, n_beats, length = split_vectors(first, last, empty, p=2, max_beats=2)
    assert start.tolist() == [0, 3, 5, 8]
    assert n_beats.tolist() == [2, 2, 2, 1]
    assert length.tolist() == [3, 4, 4, 1]
    lanes = np.arange(22).reshape(11, 2)
    got = gather_vectors(lanes, start, n_beats, max_beats=2)
    assert got[2].tolist() == [10, 11, 12, 13] and got[3].tolist() == [16, 17, 0, 0]


# RTL vs golden, Amaranth simulator -----------------------------------------------------------

def _vectors(rng, n, d_max, ew):
    lo, hi = -2 ** (ew - 1), 2 ** (ew - 1) - 1
    lengths = rng.integers(1, d_max + 1, size=n)
    lengths[::5] = 1
    lengths[1::5] = d_max
    e = rng.integers(lo, hi + 1, size=(n, d_max))
    e[2::7] = 0                                           # all-zero vectors
    e[3::7] = np.clip(rng.integers(-2, 3, size=e[3::7].shape), lo, hi)   # many ties
    e[4::7] = np.where(rng.random(e[4::7].shape) < 0.5, lo, hi)
    for v in range(5, n, 7):                              # d = 2: e = [t, 3t] is a tie
        t = int(rng.integers(1, max(2, hi // 3)))
        lengths[v] = 2 if d_max >= 2 else 1
        e[v, :2] = [t, min(3 * t, hi)] if hi >= 3 else [1, 1]
    e[np.arange(d_max)[None, :] >= lengths[:, None]] = 0
    return e, lengths


def check_rtl(params, n, seed, *, first=True):
    rng = np.random.default_rng(seed)
    e, lengths = _vectors(rng, n, params["d_max"], params["e_width"])
    q = absmean(e, lengths, e_width=params["e_width"])
    beats = vector_beats(e, lengths, params["p"], "e", first=first)
    want = vector_beats(q, lengths, params["p"], "q")
    out, _, _ = run_stream(AbsMean(**params), beats, len(want), seed=seed + 1)
    assert out == want
    return q


def test_rtl_small_lanes():
    q = check_rtl(dict(d_max=16, p=4, e_width=8), 60, 1)
    assert (q == 1).any() and (q == -1).any() and (q == 0).any()


def test_rtl_one_lane_two_bit():
    check_rtl(dict(d_max=5, p=1, e_width=2), 80, 2, first=False)


def test_rtl_wide():
    check_rtl(dict(d_max=48, p=16, e_width=24), 25, 3)


def test_rtl_ties_exact():
    params = dict(d_max=8, p=2, e_width=8)
    # Each row has S = 2*d*t exactly and elements at +-t: those give 0, the rest +-1.
    e = np.array([[3, 9, 0, 0, 0, 0, 0, 0],          # d=2, S=12, t=3
                  [-5, 5, -5, 5, 20, 0, 0, 0],       # d=5, S=40 = 2*5*4: |5| > 4 fires
                  [4, -4, 4, -4, 4, -4, 4, -4],      # d=8, S=32 = 2*8*2: all fire
                  [2, 2, 2, 2, 2, 2, 2, 18]],        # d=8, S=32, t=2: the 2s are ties -> 0
                 dtype=np.int64)
    lengths = np.array([2, 5, 8, 8])
    q = absmean(e, lengths)
    assert q.tolist() == [[0, 1, 0, 0, 0, 0, 0, 0], [-1, 1, -1, 1, 1, 0, 0, 0],
                          [1, -1, 1, -1, 1, -1, 1, -1], [0, 0, 0, 0, 0, 0, 0, 1]]
    want = vector_beats(q, lengths, 2, "q")
    out, _, _ = run_stream(AbsMean(**params), vector_beats(e, lengths, 2, "e"), len(want), seed=4)
    assert out == want


def test_rtl_malformed_framing():
    """A `first` abandons a vector; beats past d_max/p are dropped (length d_max)."""
    params = dict(d_max=4, p=2, e_width=8)
    beats = [{"e": [9, 9], "empty": 0, "first": 1, "last": 0},          # abandoned
             {"e": [1, -6], "empty": 0, "first": 1, "last": 0},
             {"e": [2, 0], "empty": 1, "first": 0, "last": 1},          # [1, -6, 2]
             {"e": [7, 1], "empty": 0, "first": 0, "last": 0},          # too long: [7, 1, 1, 1]
             {"e": [1, 1], "empty": 0, "first": 0, "last": 0},
             {"e": [50, 50], "empty": 1, "first": 0, "last": 1},        # dropped
             {"e": [0, 3], "empty": 1, "first": 0, "last": 1}]          # [0] (empty=1)
    lanes = np.array([b["e"] for b in beats])
    start, n_beats, lengths = split_vectors([b["first"] for b in beats],
                                            [b["last"] for b in beats],
                                            [b["empty"] for b in beats], p=2, max_beats=2)
    e = gather_vectors(lanes, start, n_beats, max_beats=2)
    e[np.arange(4)[None, :] >= lengths[:, None]] = 0
    assert lengths.tolist() == [3, 4, 1]
    q = absmean(e, lengths)
    assert q.tolist() == [[0, -1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    want = vector_beats(q, lengths, 2, "q")
    out, _, _ = run_stream(AbsMean(**params), beats, len(want), seed=5)
    assert out == want


def test_rtl_cycles_per_vector():
    """No gaps: a vector of G beats takes 2*G + overhead_cycles cycles, first beat to first beat."""
    for params, d in ((dict(d_max=16, p=4, e_width=8), 16), (dict(d_max=8, p=1, e_width=4), 3),
                      (dict(d_max=64, p=16, e_width=16), 40)):
        dut = AbsMean(**params)
        G = -(-d // params["p"])
        beats = vector_beats(np.ones((3, params["d_max"]), np.int64), [d] * 3, params["p"], "e")
        out, cin, cout = run_stream(dut, beats, len(beats), seed=0, gap=0, stall=0)
        assert cin[G] - cin[0] == cin[2 * G] - cin[G] == 2 * G + dut.overhead_cycles
        assert cout[0] - cin[G - 1] == dut.latency
        assert cout[G - 1] - cout[0] == G - 1


def test_verilog_has_no_multiplier():
    text = verilog.convert(AbsMean(d_max=3072, p=4, e_width=16), name="absmean")
    assert "module absmean" in text
    assert " * " not in text
