# amaranth: UnusedElaboratable=no
"""LIF: parameter rules, presets, hand-checked golden cases, RTL vs golden in the Amaranth
simulator with random valid gaps and backpressure."""

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from spikeforge.golden.lif import lif
from spikeforge.rtl.lif import LIF, check_lif_params, lif_preset

BASE = dict(n=8, p=2, T=2, x_width=8, m_width=10, frac=4, beta_pos=0, beta_zero=8,
            beta_neg=12, theta_pos=20, theta_neg=20, theta_reset=0, rho=0, bipolar=True)


def test_init():
    dut = LIF(**BASE)
    assert dut.signature == wiring.Signature({
        "i": In(stream.Signature(data.StructLayout({
            "x": data.ArrayLayout(signed(8), 2), "first": 1, "last": 1}))),
        "o": Out(stream.Signature(data.StructLayout({
            "q": data.ArrayLayout(signed(2), 2), "first": 1, "last": 1}))),
    })
    assert (dut.groups, dut.latency, dut.hazard_window) == (4, 5, 5)
    assert dut.params == BASE
    binary = LIF(**{**BASE, "bipolar": False, "p": 4})
    assert binary.o.payload.shape() == data.StructLayout({
        "q": data.ArrayLayout(unsigned(1), 4), "first": 1, "last": 1})


def test_init_lists_normalised():
    params = check_lif_params(**{**BASE, "beta_zero": (1, 2), "theta_pos": list(np.arange(3, 5))})
    assert params["beta_zero"] == [1, 2] and params["theta_pos"] == [3, 4]
    assert all(type(v) is int for v in params["theta_pos"])


@pytest.mark.parametrize("name, value, exc, message", [
    ("n", 0, ValueError, r"^LIF parameter 'n' must be in 1\.\.65536, not 0$"),
    ("n", 65537, ValueError, r"^LIF parameter 'n' must be in 1\.\.65536, not 65537$"),
    ("n", 8.0, TypeError, r"^LIF parameter 'n' must be an integer, not 8\.0$"),
    ("n", True, TypeError, r"^LIF parameter 'n' must be an integer, not True$"),
    ("p", 0, ValueError, r"^LIF parameter 'p' must be in 1\.\.65536, not 0$"),
    ("p", 3, ValueError, r"^LIF parameter 'p' must divide n=8, not 3$"),
    ("T", 0, ValueError, r"^LIF parameter 'T' must be in 1\.\.64, not 0$"),
    ("T", 65, ValueError, r"^LIF parameter 'T' must be in 1\.\.64, not 65$"),
    ("x_width", 1, ValueError, r"^LIF parameter 'x_width' must be in 2\.\.24, not 1$"),
    ("x_width", 25, ValueError, r"^LIF parameter 'x_width' must be in 2\.\.24, not 25$"),
    ("m_width", 1, ValueError, r"^LIF parameter 'm_width' must be in 2\.\.32, not 1$"),
    ("m_width", 33, ValueError, r"^LIF parameter 'm_width' must be in 2\.\.32, not 33$"),
    ("frac", -1, ValueError, r"^LIF parameter 'frac' must be in 0\.\.16, not -1$"),
    ("frac", 17, ValueError, r"^LIF parameter 'frac' must be in 0\.\.16, not 17$"),
    ("beta_pos", 17, ValueError, r"^LIF parameter 'beta_pos' must be in 0\.\.16, not 17$"),
    ("beta_zero", -1, ValueError, r"^LIF parameter 'beta_zero' must be in 0\.\.16, not -1$"),
    ("beta_neg", [1, 17], ValueError,
     r"^LIF parameter 'beta_neg\[1\]' must be in 0\.\.16, not 17$"),
    ("beta_neg", [1, 2, 3], ValueError,
     r"^LIF parameter 'beta_neg' must be an integer or a list of T=2 integers, not a list of 3$"),
    ("beta_pos", "1", TypeError, r"^LIF parameter 'beta_pos' must be an integer, not '1'$"),
    ("beta_zero", [1, False], TypeError,
     r"^LIF parameter 'beta_zero\[1\]' must be an integer, not False$"),
    ("theta_pos", 0, ValueError, r"^LIF parameter 'theta_pos' must be in 1\.\.511, not 0$"),
    ("theta_pos", 512, ValueError, r"^LIF parameter 'theta_pos' must be in 1\.\.511, not 512$"),
    ("theta_neg", [5], ValueError,
     r"^LIF parameter 'theta_neg' must be an integer or a list of T=2 integers, not a list of 1$"),
    ("theta_neg", 0, ValueError, r"^LIF parameter 'theta_neg' must be in 1\.\.511, not 0$"),
    ("theta_reset", -1, ValueError,
     r"^LIF parameter 'theta_reset' must be in 0\.\.511, not -1$"),
    ("theta_reset", [0, 512], ValueError,
     r"^LIF parameter 'theta_reset\[1\]' must be in 0\.\.511, not 512$"),
    ("rho", 2, ValueError, r"^LIF parameter 'rho' must be in 0\.\.1, not 2$"),
    ("rho", True, TypeError, r"^LIF parameter 'rho' must be an integer, not True$"),
    ("bipolar", 1, TypeError, r"^LIF parameter 'bipolar' must be a bool, not 1$"),
])
def test_init_wrong_param(name, value, exc, message):
    with pytest.raises(exc, match=message):
        LIF(**{**BASE, name: value})


def test_init_wrong_names():
    with pytest.raises(TypeError, match=r"^LIF parameters missing: rho$"):
        LIF(**{k: v for k, v in BASE.items() if k != "rho"})
    with pytest.raises(TypeError, match=r"^LIF has no parameter 'gain'$"):
        LIF(**BASE, gain=1)


# Presets --------------------------------------------------------------------------------------

def test_preset_spikelm():
    params = lif_preset("spikelm")
    assert params == dict(
        n=64, p=4, T=4, x_width=12, m_width=16, frac=8,
        beta_pos=0, beta_zero=[40, 64, 56, 48], beta_neg=[80, 128, 112, 96],
        theta_pos=[129, 113, 97, 81], theta_neg=[129, 113, 97, 81], theta_reset=0, rho=0,
        bipolar=True)
    one = {**params, "n": 1, "p": 1}
    # x = 100 repeated over T: m = 100, 25+100 (fires), hard reset -> 100, 100.
    assert lif(np.full((4, 1), 100), [True, False, False, False], **one)[:, 0].tolist() \
        == [0, 1, 1, 1]
    # x = -100: m = -100, -25-100 = -125 (fires -1), floor(112*-125/256) - 100 = -155,
    # floor(96*-155/256) - 100 = -159.
    q, m = lif(np.full((4, 1), -100), np.zeros(4, bool), return_membrane=True, **one)
    assert q[:, 0].tolist() == [0, -1, -1, -1]
    assert m[:, 0].tolist() == [-100, -125, -155, -159]
    # The released code's tie |u| = a/2 gives 0: u = 0.5 at a_0 = 1.0 is m = 128.
    assert lif([[128], [0]], [True, True], **one)[:, 0].tolist() == [0, 0]
    assert lif([[129], [-129]], [True, True], **one)[:, 0].tolist() == [1, -1]


def test_preset_spikelm_overrides():
    params = lif_preset("spikelm", amplitude=[2.0, 0.5], scale=100, frac=6, n=8, p=8)
    assert (params["T"], params["frac"], params["n"], params["p"]) == (2, 6, 8, 8)
    assert params["theta_pos"] == [101, 26]
    assert params["beta_zero"] == [8, 32] and params["beta_neg"] == [16, 64]
    assert lif_preset("spikelm", theta_neg=5)["theta_neg"] == 5
    with pytest.raises(ValueError, match=r"^lif_preset 'spikelm' parameter 'amplitude' must "
                                         r"be a real number in \(0, 2\], not 2\.5$"):
        lif_preset("spikelm", amplitude=[1.0, 2.5])
    with pytest.raises(ValueError, match=r"^lif_preset 'spikelm' parameter 'amplitude' must "
                                         r"be a list of 1\.\.64 amplitudes, not \[\]$"):
        lif_preset("spikelm", amplitude=[])
    with pytest.raises(ValueError, match=r"^lif_preset 'spikelm' parameter 'scale' must be a "
                                         r"real number in \(0, inf\], not 0$"):
        lif_preset("spikelm", scale=0)
    with pytest.raises(TypeError, match=r"^LIF parameter 'frac' must be an integer, not 8\.0$"):
        lif_preset("spikelm", frac=8.0)
    # frac = 0 is legal: the leaks round to whole numbers (0.25·2 -> 0, 0.5·2 -> 1).
    params = lif_preset("spikelm", amplitude=[2.0, 2.0], frac=0)
    assert params["frac"] == 0 and params["beta_zero"] == [0, 0] and params["beta_neg"] == [1, 1]


def test_preset_bispikclm():
    params = lif_preset("bispikclm")
    assert params == dict(
        n=64, p=4, T=4, x_width=10, m_width=16, frac=8, beta_pos=128, beta_zero=128,
        beta_neg=128, theta_pos=70, theta_neg=1, theta_reset=70, rho=1, bipolar=False)
    # I = 50: U = 50, 25+50 = 75 (fires), 37+50-70 = 17, 8+50 = 58.
    q, m = lif(np.full((4, 1), 50), [True, False, False, False], return_membrane=True,
               **{**params, "n": 1, "p": 1})
    assert q[:, 0].tolist() == [0, 1, 0, 0]
    assert m[:, 0].tolist() == [50, 75, 17, 58]
    assert lif_preset("bispikclm", theta=50, beta=64, T=2)["theta_reset"] == 50
    assert lif_preset("bispikclm", beta=64)["beta_neg"] == 64


def test_preset_wrong():
    with pytest.raises(ValueError, match=r"^unknown LIF preset 'loihi'; known: bispikclm, "
                                         r"spikelm$"):
        lif_preset("loihi")
    with pytest.raises(ValueError, match=r"^lif_preset 'bispikclm' has no parameter "
                                         r"'amplitude'; known: .*$"):
        lif_preset("bispikclm", amplitude=[1.0])
    with pytest.raises(ValueError, match=r"^LIF parameter 'p' must divide n=10, not 4$"):
        lif_preset("spikelm", n=10)


# Golden, hand-checked ------------------------------------------------------------------------

ONE = dict(n=1, p=1, T=1, x_width=8, m_width=10, frac=8, beta_pos=128, beta_zero=128,
           beta_neg=128, theta_pos=500, theta_neg=500, theta_reset=0, rho=0, bipolar=True)


def test_golden_leak_floor_negative():
    # floor(0.5 * -3) = -2, floor(0.5 * 3) = 1, floor(0.5 * -1) = -1.
    _, m = lif([[-3], [0], [3], [0], [-1], [0]], [1, 0, 1, 0, 1, 0], return_membrane=True, **ONE)
    assert m[:, 0].tolist() == [-3, -2, 3, 1, -1, -1]


def test_golden_saturation():
    params = dict(ONE, n=2, x_width=4, m_width=4, beta_pos=256, beta_zero=256, beta_neg=256,
                  theta_pos=7, theta_neg=7)
    q, m = lif([[7, -8], [7, -8], [-1, 2]], [1, 0, 0], return_membrane=True, **params)
    assert m.tolist() == [[7, -8], [7, -8], [6, -6]]
    assert q.tolist() == [[1, -1], [1, -1], [0, 0]]


def test_golden_ties_and_reset():
    params = dict(ONE, n=3, beta_pos=256, beta_zero=256, beta_neg=256, theta_pos=10,
                  theta_neg=12, theta_reset=10, rho=1)
    q, m = lif([[10, -12, 9], [0, 0, 0], [-12, 1, 0]], [1, 0, 0], return_membrane=True,
               **params)
    # Ties fire; the subtractive reset pulls a +1 down by 10 and a -1 up by 10.
    assert q.tolist() == [[1, -1, 0], [0, 0, 0], [-1, 0, 0]]
    assert m.tolist() == [[10, -12, 9], [0, -2, 9], [-12, -1, 9]]
    binary = lif([[-12]], [1], **dict(params, n=1, bipolar=False))
    assert binary.tolist() == [[0]]


def test_golden_restart_and_step_cycle():
    params = dict(ONE, T=2, beta_pos=[0, 256], beta_zero=[0, 256], theta_pos=[100, 5])
    x = [[3], [3], [3], [3], [3], [3]]
    q, m = lif(x, [1, 0, 0, 0, 1, 0], return_membrane=True, **params)
    # Step index 0, 1, 0, 1, then restart: 0, 1. A leak of 0 at t=0 clears, 256 at t=1 keeps.
    assert m[:, 0].tolist() == [3, 6, 3, 6, 3, 6]
    assert q[:, 0].tolist() == [0, 1, 0, 1, 0, 1]


def test_golden_wrong_input():
    with pytest.raises(ValueError, match=r"^lif input 'x' must be in -128\.\.127 "
                                         r"\(x_width=8\), not 128$"):
        lif([[128]], [1], **ONE)
    with pytest.raises(ValueError, match=r"^lif input 'x' must have shape \(S, 1\), "
                                         r"not \(2,\)$"):
        lif([1, 2], [1, 0], **ONE)
    with pytest.raises(ValueError, match=r"^lif input 'first' must have shape \(1,\), "
                                         r"not \(2,\)$"):
        lif([[1]], [1, 0], **ONE)
    with pytest.raises(TypeError, match=r"^lif input 'x' must be an integer array, "
                                        r"not float64$"):
        lif([[1.5]], [1], **ONE)
    with pytest.raises(ValueError, match=r"^lif parameter 'theta_pos' must be an integer or a "
                                         r"list of T=1 integers, not a list of 2$"):
        lif([[1]], [1], **dict(ONE, theta_pos=[1, 2]))
    assert lif(np.zeros((0, 1), np.int64), [], **ONE).shape == (0, 1)


# RTL vs golden -------------------------------------------------------------------------------

def run_rtl(params, beats, seed, *, gap=0.3, stall=0.3):
    """Drive ``beats`` (dicts) with random valid gaps, take the output with random ready."""
    dut = LIF(**params)
    rng = np.random.default_rng(seed)
    out = []

    async def producer(ctx):
        for beat in beats:
            while rng.random() < gap:
                await ctx.tick()
            ctx.set(dut.i.payload, beat)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        while len(out) < len(beats):
            ready = int(rng.random() >= stall)
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and ready:
                out.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return out


def random_case(params, steps, seed, *, extremes=False, wire_first0=True):
    """Random steps with random restarts, as golden arrays and as RTL beats."""
    rng = np.random.default_rng(seed)
    n, p = params["n"], params["p"]
    lo, hi = -2 ** (params["x_width"] - 1), 2 ** (params["x_width"] - 1) - 1
    x = rng.integers(lo, hi + 1, size=(steps, n))
    if extremes:
        x = np.where(rng.random((steps, n)) < 0.7, rng.choice([lo, hi], size=(steps, n)), x)
    first = rng.random(steps) < 0.1
    first[0] = True
    beats = []
    for s in range(steps):
        for g in range(n // p):
            beats.append({
                "x": x[s, g * p:(g + 1) * p].tolist(),
                "first": int(first[s] and g == 0 and (s > 0 or wire_first0)),
                "last": int(g == n // p - 1 and (s == steps - 1 or first[s + 1]))})
    return x, first, beats


def check_rtl(params, steps, seed, **kwargs):
    x, first, beats = random_case(params, steps, seed, **kwargs)
    expected = lif(x, first, **params)
    out = run_rtl(params, beats, seed + 1)
    got = np.array([[int(beat.q[k]) for k in range(params["p"])] for beat in out])
    assert np.array_equal(got.reshape(steps, params["n"]), expected)
    assert [(b.first, b.last) for b in out] == [(bt["first"], bt["last"]) for bt in beats]
    return expected


def test_rtl_spikelm():
    q = check_rtl(lif_preset("spikelm"), 16, 1)
    assert (q == 1).any() and (q == -1).any()


def test_rtl_bispikclm():
    q = check_rtl(lif_preset("bispikclm", n=32, x_width=8), 24, 2, wire_first0=False)
    assert (q == 1).any() and (q == 0).any()


def test_rtl_hazard_single_neuron():
    check_rtl(lif_preset("spikelm", n=1, p=1, amplitude=[1.0, 0.5, 1.5]), 120, 3)


def test_rtl_per_step_subtractive_bipolar():
    # n/p = 3 is inside the hazard window; T = 3 lists cycle over longer sequences.
    params = dict(n=12, p=4, T=3, x_width=8, m_width=10, frac=5, beta_pos=[32, 7, 0],
                  beta_zero=[29, 16, 31], beta_neg=[3, 32, 17], theta_pos=[90, 40, 200],
                  theta_neg=[60, 150, 35], theta_reset=[50, 0, 300], rho=1, bipolar=True)
    q = check_rtl(params, 40, 4, wire_first0=False)
    assert (q == 1).any() and (q == -1).any()


def test_rtl_saturation_extremes():
    params = dict(n=8, p=8, T=2, x_width=8, m_width=6, frac=3, beta_pos=[8, 5],
                  beta_zero=[8, 0], beta_neg=[7, 8], theta_pos=[31, 1], theta_neg=[31, 2],
                  theta_reset=[31, 17], rho=1, bipolar=True)
    check_rtl(params, 40, 5, extremes=True)
    check_rtl(dict(params, n=6, p=2, m_width=2, x_width=2, frac=0, beta_pos=1, beta_zero=[0, 1],
                   beta_neg=1, theta_pos=1, theta_neg=1, theta_reset=[1, 0], T=2), 30, 6,
              extremes=True)


def test_rtl_resync_mid_step():
    params = lif_preset("spikelm", n=8, p=2)
    rng = np.random.default_rng(7)
    xa, xb = rng.integers(-300, 300, size=(3, 8)), rng.integers(-300, 300, size=(3, 8))
    qa, qb = lif(xa, [1, 0, 0], **params), lif(xb, [1, 0, 0], **params)
    # Sequence A is cut after two of the four beats of its third step; B restarts at group 0.
    beats = [{"x": xa[s, 2 * g:2 * g + 2].tolist(), "first": int(s == g == 0), "last": 0}
             for s in range(3) for g in range(4)][:10]
    beats += [{"x": xb[s, 2 * g:2 * g + 2].tolist(), "first": int(s == g == 0), "last": 0}
              for s in range(3) for g in range(4)]
    out = run_rtl(params, beats, 8)
    got = np.array([[int(b.q[0]), int(b.q[1])] for b in out]).reshape(-1)
    assert np.array_equal(got[:20], qa.reshape(-1)[:20])
    assert np.array_equal(got[20:], qb.reshape(-1))


def handshake_cycles(params, beats):
    """Cycle numbers of every input and output handshake with valid always high, ready always."""
    dut = LIF(**params)
    times = {"in": [], "out": []}

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        cycle = 0
        while len(times["out"]) < beats:
            ctx.set(dut.i.valid, len(times["in"]) < beats)
            _, _, i_ok, o_ok = await ctx.tick().sample(dut.i.valid & dut.i.ready, dut.o.valid)
            if i_ok:
                times["in"].append(cycle)
            if o_ok:
                times["out"].append(cycle)
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return times


@pytest.mark.parametrize("n, p, interval", [(20, 4, 1), (5, 1, 1), (4, 1, 5 / 4), (1, 1, 5)])
def test_latency_throughput(n, p, interval):
    params = lif_preset("spikelm", n=n, p=p)
    beats = 8 * (n // p)
    times = handshake_cycles(params, beats)
    assert [o - i for i, o in zip(times["in"], times["out"])] == [LIF.latency] * beats
    # The first step reads no state, so it streams at full rate; later steps wait for it.
    later = np.diff(times["in"][n // p:])
    assert later.mean() == pytest.approx(interval, abs=0.1)


def test_handshake_rules():
    dut = LIF(**lif_preset("bispikclm", n=8, p=8))

    async def tb(ctx):
        # Ready before valid; under backpressure nothing moves and i.ready falls.
        assert ctx.get(dut.i.ready) == 1
        ctx.set(dut.i.payload, {"x": [0] * 8, "first": 1, "last": 0})
        ctx.set(dut.i.valid, 1)
        for _ in range(5):
            await ctx.tick()
        ctx.set(dut.i.payload.first, 0)
        assert ctx.get(dut.o.valid) == 1 and ctx.get(dut.i.ready) == 0
        ctx.set(dut.i.valid, 0)
        assert ctx.get(dut.i.ready) == 0
        await ctx.tick()
        assert ctx.get(dut.o.valid) == 1 and ctx.get(dut.o.payload.first) == 1
        ctx.set(dut.o.ready, 1)
        assert ctx.get(dut.o.valid) == 1 and ctx.get(dut.i.ready) == 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()


def test_verilog_converts():
    text = verilog.convert(LIF(**lif_preset("spikelm")), name="lif")
    assert "module lif" in text


@pytest.mark.parametrize("groups", [4, 5, 6, 7, 8])
@pytest.mark.parametrize("gap, stall", [(0.0, 0.0), (0.3, 0.3)])
def test_rtl_hazard_and_bypass_boundaries(groups, gap, stall):
    # n/p = 4 needs the hazard stall, 5 the write-back bypass, 6 and more neither (the
    # RTL leaves them out); back to back is the case that needs them most.
    params = lif_preset("spikelm", n=2 * groups, p=2)
    x, first, beats = random_case(params, 30, 10 + groups)
    out = run_rtl(params, beats, 11, gap=gap, stall=stall)
    got = np.array([[int(b.q[0]), int(b.q[1])] for b in out])
    assert np.array_equal(got.reshape(30, params["n"]), lif(x, first, **params))
