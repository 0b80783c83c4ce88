# amaranth: UnusedElaboratable=no
"""w2s_chain: parameter rules (each stage's own messages), the composed golden model and its
reconstruction accuracy, and RTL vs golden in the Amaranth simulator with random valid gaps and
backpressure."""

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spikeforge.golden.absmean import absmean
from spikeforge.golden.poisson import poisson
from spikeforge.golden.ratedecode import ratedecode
from spikeforge.golden.w2s_chain import w2s_chain
from spikeforge.rtl.w2s_chain import W2SChain, check_w2s_chain_params
from w2s_streams import run_stream, vector_beats

BASE = dict(d_max=8, p=4, e_width=8, W=4, seed=1, rate_pos=30000, rate_zero=0,
            rate_neg=12000, C=2)


def test_init():
    dut = W2SChain(**BASE)
    assert dut.signature == wiring.Signature({
        "i": In(stream.Signature(data.StructLayout({
            "e": data.ArrayLayout(signed(8), 4), "empty": unsigned(2), "first": 1, "last": 1}))),
        "o": Out(stream.Signature(data.StructLayout({
            "q": data.ArrayLayout(signed(2), 4), "empty": unsigned(2), "first": 1, "last": 1}))),
    })
    assert dut.params == dict(BASE, count_width=3)
    assert W2SChain(d_max=4, p=4, e_width=16, W=1000).params["C"] == 72


@pytest.mark.parametrize("name, value, exc, message", [
    ("e_width", 1, ValueError, r"^AbsMean parameter 'e_width' must be in 2\.\.24, not 1$"),
    ("p", 3, ValueError, r"^AbsMean parameter 'p' must be a power of two in 1\.\.64, not 3$"),
    ("W", 0, ValueError, r"^Poisson parameter 'W' must be in 1\.\.65535, not 0$"),
    ("seed", -1, ValueError, r"^Poisson parameter 'seed' must be in 0\.\.4294967295, not -1$"),
    ("C", 9, ValueError, r"^RateDecode parameter 'C' must be in 1\.\.7, not 9$"),
    ("count_width", 0, ValueError,
     r"^RateDecode parameter 'count_width' must be in 1\.\.16, not 0$"),
])
def test_init_wrong_param(name, value, exc, message):
    with pytest.raises(exc, match=message):
        W2SChain(**{**BASE, name: value})
    with pytest.raises(exc, match=message):
        check_w2s_chain_params(**{**BASE, name: value})


def _golden_kwargs(params):
    return {k: v for k, v in params.items() if k != "d_max"}


def test_golden_is_the_composition():
    rng = np.random.default_rng(3)
    e = rng.integers(-100, 100, size=(20, 8))
    lengths = rng.integers(1, 9, size=20)
    params = check_w2s_chain_params(**BASE)
    q, spikes, decoded = w2s_chain(e, lengths, return_stages=True, **_golden_kwargs(params))
    assert np.array_equal(q, absmean(e, lengths, e_width=8))
    assert np.array_equal(spikes, poisson(q, lengths, p=4, W=4, seed=1, rate_pos=30000,
                                          rate_zero=0, rate_neg=12000))
    assert np.array_equal(decoded, ratedecode(spikes, lengths, C=2, count_width=3))


def test_golden_reconstruction_one_second_window():
    """100 / 0 / 50 Hz over W = 1000 ticks of 1 ms, C = 72: zeros are always recovered and
    +-1 nearly always (a +1 needs fewer than 72 of ~100 expected spikes to fail)."""
    rng = np.random.default_rng(5)
    e = rng.normal(0, 1000, size=(40, 384)).round().astype(np.int64)
    params = check_w2s_chain_params(d_max=384, p=4, e_width=16, W=1000, seed=9)
    q, _, decoded = w2s_chain(e, return_stages=True, **_golden_kwargs(params))
    assert params["C"] == 72
    assert (decoded[q == 0] == 0).all()
    assert (decoded == q).mean() > 0.99


def check_rtl(params, V, seed):
    rng = np.random.default_rng(seed)
    D, ew = params["d_max"], params["e_width"]
    e = rng.integers(-2 ** (ew - 1), 2 ** (ew - 1), size=(V, D))
    e[::6] = 0
    lengths = rng.integers(1, D + 1, size=V)
    lengths[:2] = [1, D]
    params = check_w2s_chain_params(**params)
    decoded = w2s_chain(e, lengths, **_golden_kwargs(params))
    want = vector_beats(decoded, lengths, params["p"], "q")
    out, _, _ = run_stream(W2SChain(**params), vector_beats(e, lengths, params["p"], "e"),
                           len(want), seed=seed)
    assert out == want
    return decoded


def test_rtl_base():
    decoded = check_rtl(BASE, 20, 1)
    assert (decoded == 1).any() and (decoded == -1).any()


def test_rtl_cycles():
    """No gaps: the slowest stage sets the period; latency = absmean latency + (W+1)*G + 7."""
    from spikeforge.rtl.absmean import AbsMean
    ab = AbsMean(d_max=16, p=4, e_width=8)
    assert (ab.overhead_cycles, ab.latency) == W2SChain(**dict(BASE, d_max=16))._absmean_timing()
    for d, W in ((8, 4), (16, 6), (3, 5)):
        dut = W2SChain(**dict(BASE, d_max=16, W=W))
        G = -(-d // 4)
        beats = vector_beats(np.tile(np.arange(16), (6, 1)), [d] * 6, 4, "e")
        out, cin, cout = run_stream(dut, beats, 6 * G, seed=0, gap=0, stall=0)
        assert (np.diff(cout[::G]) == dut.cycles_per_vector(d)).all()
        assert cout[0] - cin[G - 1] == dut.latency(d)


def test_rtl_one_lane():
    check_rtl(dict(d_max=3, p=1, e_width=4, W=2, seed=4, rate_pos=50000, rate_zero=100,
                   rate_neg=20000, C=1), 25, 2)
