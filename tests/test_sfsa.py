# amaranth: UnusedElaboratable=no
"""sfsa: parameter rules, the golden model against a loop-by-loop reference and by hand, RTL vs
golden in the Amaranth simulator and under cocotb/Verilator (exact, with gaps, backpressure,
restarts and sequences past the cache), the cycle model and the CLI."""

import json

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from spikeforge.cli import main
from spikeforge.cores import get_core
from spikeforge.golden.sfsa import (SFSA_LATENCY, sfsa, sfsa_positions, sfsa_schedule,
                                    sfsa_token_cycles)
from spikeforge.rtl.sfsa import SFSA, check_sfsa_params, sfsa_widths
from spikeforge.sim.run import simulate
from spikeforge.sim.specs.sfsa import sequence_stimulus

SPEC = get_core("sfsa")
BASE = dict(d=4, L=3, T=2, strict=False, frac=2, attn_theta=2, attn_beta=2, out_theta=1,
            out_beta=3)


def test_init():
    dut = SFSA(**BASE)
    bits = data.ArrayLayout(1, 4)
    assert dut.signature == wiring.Signature({
        "i": In(stream.Signature(data.StructLayout({
            "q": bits, "k": bits, "v": bits, "first": 1, "last": 1}))),
        "o": Out(stream.Signature(data.StructLayout({"s": bits, "first": 1, "last": 1}))),
    })
    assert (dut.latency, dut.hazard_window) == (10, 2)
    assert (dut.attn_width, dut.out_width) == (5, 4)      # -2..8 and -1..6
    assert sfsa_widths(d=64, L=256, T=4, attn_theta=70, out_theta=9) == (10, 12)
    assert dut.params == BASE


@pytest.mark.parametrize("name, value, exc, message", [
    ("d", 0, ValueError, r"^sfsa parameter 'd' must be in 1\.\.1024, not 0$"),
    ("d", 1025, ValueError, r"^sfsa parameter 'd' must be in 1\.\.1024, not 1025$"),
    ("d", 4.0, TypeError, r"^sfsa parameter 'd' must be an integer, not 4\.0$"),
    ("L", 0, ValueError, r"^sfsa parameter 'L' must be in 1\.\.4096, not 0$"),
    ("L", True, TypeError, r"^sfsa parameter 'L' must be an integer, not True$"),
    ("T", 65, ValueError, r"^sfsa parameter 'T' must be in 1\.\.64, not 65$"),
    ("strict", 1, TypeError, r"^sfsa parameter 'strict' must be a bool, not 1$"),
    ("frac", 17, ValueError, r"^sfsa parameter 'frac' must be in 0\.\.16, not 17$"),
    ("attn_theta", 0, ValueError, r"^sfsa parameter 'attn_theta' must be in 1\.\.65535, not 0$"),
    ("out_theta", 65536, ValueError,
     r"^sfsa parameter 'out_theta' must be in 1\.\.65535, not 65536$"),
    ("attn_beta", 5, ValueError, r"^sfsa parameter 'attn_beta' must be in 0\.\.4, not 5$"),
    ("out_beta", -1, ValueError, r"^sfsa parameter 'out_beta' must be in 0\.\.4, not -1$"),
    ("out_beta", "1", TypeError, r"^sfsa parameter 'out_beta' must be an integer, not '1'$"),
])
def test_init_wrong_param(name, value, exc, message):
    with pytest.raises(exc, match=message):
        SFSA(**{**BASE, name: value})
    with pytest.raises(exc, match=message):
        sfsa(np.zeros((1, 4), int), np.zeros((1, 4), int), np.zeros((1, 4), int), [1],
             **{**BASE, name: value})


def test_init_wrong_names():
    with pytest.raises(TypeError, match=r"^sfsa parameters missing: T, strict$"):
        check_sfsa_params(**{k: v for k, v in BASE.items() if k not in ("T", "strict")})
    with pytest.raises(TypeError, match=r"^sfsa has no parameter 'heads'$"):
        SFSA(**BASE, heads=2)


def test_no_multiplier():
    text = rtlil.convert(SFSA(**{**BASE, "attn_beta": 3, "out_beta": 1, "L": 5, "T": 3}),
                         name="sfsa")
    assert "$mul" not in text


# Golden ---------------------------------------------------------------------------------------

def reference(q, k, v, first, *, d, L, T, strict, frac, attn_theta, attn_beta, out_theta,
              out_beta):
    """Loop-by-loop SFSA over an explicit circular KV cache of L slots (independent code)."""
    S = len(q)
    out = np.zeros((S, d), dtype=np.int64)
    cache_k, cache_v = {}, {}
    i = t = -1
    for s in range(S):
        if s == 0 or first[s]:
            i, t = 0, 0
            cache_k, cache_v = {}, {}
        else:
            t += 1
            if t == T:
                i, t = i + 1, 0
        if t == 0:
            u_att, a_att = {}, {}
            u_out, s_out = [0] * d, [0] * d
        if not strict:
            cache_k[(i % L, t)], cache_v[(i % L, t)] = (k[s], v[s])
        keys = range(max(0, i - L + 1), i + 1) if not strict else range(max(0, i - L), i)
        o = [0] * d
        for j in keys:
            kj, vj = cache_k[(j % L, t)], cache_v[(j % L, t)]
            x = sum(int(a) & int(b) for a, b in zip(q[s], kj))
            u = (attn_beta * u_att.get(j, 0)) // 2 ** frac + x - a_att.get(j, 0) * attn_theta
            u_att[j], a_att[j] = u, int(u >= attn_theta)
            for c in range(d):
                o[c] += a_att[j] * int(vj[c])
        for c in range(d):
            u = (out_beta * u_out[c]) // 2 ** frac + o[c] - s_out[c] * out_theta
            u_out[c], s_out[c] = u, int(u >= out_theta)
            out[s, c] = s_out[c]
        if strict:
            cache_k[(i % L, t)], cache_v[(i % L, t)] = (k[s], v[s])
    return out


@pytest.mark.parametrize("params", [
    dict(BASE),
    dict(BASE, strict=True, T=3, L=2),
    dict(BASE, d=9, L=1, T=1, attn_beta=0, out_beta=1, frac=0, attn_theta=3),
    dict(BASE, d=9, L=1, T=4, strict=True, out_beta=4, attn_beta=4, attn_theta=1),
    dict(BASE, d=16, L=5, T=4, frac=8, attn_theta=5, attn_beta=200, out_theta=3, out_beta=77),
])
def test_golden_matches_reference(params):
    rng = np.random.default_rng(params["d"] * 7 + params["L"])
    q, k, v, first = sequence_stimulus(rng, 400, d=params["d"], L=params["L"], T=params["T"])
    got, o, maps = sfsa(q, k, v, first, **params, return_internals=True)
    assert np.array_equal(got, reference(q, k, v, first, **params))
    assert got.any() and not got.all()
    # The window never holds more than L keys, and sequences run past it.
    assert max(len(js) for js, _ in maps) == params["L"]
    assert o.max() <= params["L"]


def test_golden_by_hand():
    one = dict(d=2, L=2, T=2, strict=False, frac=1, attn_theta=2, attn_beta=1, out_theta=1,
               out_beta=2)
    # Token 0: Q = K = 11 at both steps: score 2 -> U = 2 (fires), then 1 + 2 - 2 = 1.
    q = [[1, 1], [1, 1], [1, 0], [1, 0], [0, 1], [0, 1]]
    k = [[1, 1], [1, 1], [1, 0], [0, 0], [1, 1], [1, 1]]
    v = [[1, 0], [0, 1], [0, 1], [1, 1], [1, 1], [0, 0]]
    s, o, maps = sfsa(q, k, v, [1, 0, 0, 0, 0, 0], **one, return_internals=True)
    assert [js.tolist() for js, _ in maps] == [[0], [0, 1], [1, 2]]   # position 2 drops key 0
    assert maps[0][1].tolist() == [[1], [0]]
    # Token 1 step 0: scores vs K_0 = 11 -> 1, vs K_1 = 10 -> 1: no spike (theta 2).
    # Step 1: scores vs K_0 = 11 -> 1 (U = 0 + 1), vs K_1 = 00 -> 0: no spike.
    assert maps[1][1].tolist() == [[0, 0], [0, 0]]
    # Token 2 (keys 1, 2): step 0 Q = 01: vs K_1 = 10 -> 0, vs K_2 = 11 -> 1; step 1: vs
    # K_1 = 00 -> 0, vs K_2 = 11 -> 1 (U = 0 + 1): no spikes.
    assert maps[2][1].tolist() == [[0, 0], [0, 0]]
    assert o.tolist() == [[1, 0], [0, 0], [0, 0], [0, 0], [0, 0], [0, 0]]
    # Output neuron (leak 2/2 = 1): token 0 channel 0: 1 (fires), then 1 + 0 - 1 = 0.
    assert s.tolist() == [[1, 0], [0, 0], [0, 0], [0, 0], [0, 0], [0, 0]]
    strict = sfsa(q, k, v, [1, 0, 0, 0, 0, 0], **dict(one, strict=True), return_internals=True)
    assert [js.tolist() for js, _ in strict[2]] == [[], [0], [0, 1]]
    assert strict[1][:2].tolist() == [[0, 0], [0, 0]]          # position 0 attends to nothing


def test_golden_positions_and_cut_tokens():
    t, i = sfsa_positions([1, 0, 0, 0, 0, 1, 0, 1], 2)
    assert t.tolist() == [0, 1, 0, 1, 0, 0, 1, 0] and i.tolist() == [0, 0, 1, 1, 2, 0, 0, 0]
    # A sequence cut inside a token is fine: the later sequence starts from an empty cache.
    rng = np.random.default_rng(1)
    q, k, v = (rng.integers(0, 2, size=(7, 3)) for _ in range(3))
    params = dict(BASE, d=3)
    a = sfsa(q, k, v, [1, 0, 0, 1, 0, 0, 0], **params)
    b = sfsa(q[3:], k[3:], v[3:], [1, 0, 0, 0], **params)
    assert np.array_equal(a[3:], b)


def test_golden_wrong_input():
    z = np.zeros((2, 4), int)
    with pytest.raises(ValueError, match=r"^sfsa input 'k' must have shape \(S, 4\), "
                                         r"not \(2, 3\)$"):
        sfsa(z, z[:, :3], z, [1, 0], **BASE)
    with pytest.raises(ValueError, match=r"^sfsa input 'v' must hold binary spikes 0/1$"):
        sfsa(z, z, z + 2, [1, 0], **BASE)
    with pytest.raises(ValueError, match=r"^sfsa inputs 'q', 'k', 'v' must have the same "
                                         r"length, not 2, 1, 2$"):
        sfsa(z, z[:1], z, [1, 0], **BASE)
    with pytest.raises(ValueError, match=r"^sfsa input 'first' must have shape \(2,\), "
                                         r"not \(3,\)$"):
        sfsa(z, z, z, [1, 0, 0], **BASE)


def test_cycle_model_values():
    params = dict(d=64, L=4, T=2, strict=False)
    assert sfsa_token_cycles([0, 1, 2, 3, 4, 9], **params).tolist() == [4, 4, 6, 8, 8, 8]
    assert sfsa_token_cycles([0, 2, 3, 4, 5], **dict(params, strict=True)).tolist() == \
        [4, 4, 6, 8, 8]
    assert sfsa_token_cycles(100, **dict(params, L=64, T=4)) == 4 * 64
    # Step b leaves after the cycles of steps 0..b plus the latency.
    assert sfsa_schedule([1, 0, 0, 0, 0, 0, 1, 0], **dict(params, L=3)).tolist() == \
        (np.cumsum([2, 2, 2, 2, 3, 3, 2, 2]) + SFSA_LATENCY).tolist()
    assert SFSA_LATENCY == SFSA(**BASE).latency


# RTL vs golden in the Amaranth simulator ------------------------------------------------------

def run_rtl(params, beats, seed, *, gap=0.3, stall=0.3):
    dut = SFSA(**params)
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


@pytest.mark.parametrize("params", [
    dict(BASE),
    dict(BASE, strict=True, T=1),
    dict(BASE, L=1, T=3, attn_theta=1),
    dict(BASE, strict=True, L=4, T=2, attn_beta=4, out_beta=0),
    dict(BASE, strict=True, L=1, T=1, d=1, attn_theta=1),
    dict(BASE, T=3, attn_theta=1, out_beta=1),
])
def test_rtl_matches_golden(params):
    rng = np.random.default_rng(params["L"] + 10 * params["T"])
    q, k, v, first = sequence_stimulus(rng, 90, d=params["d"], L=params["L"], T=params["T"])
    # Restart sequences mid-token too, and leave the first beat's flag clear: reset starts one.
    first[rng.integers(1, 90, size=3)] = True
    wire_first = first.copy()
    wire_first[0] = False
    beats = [{"q": q[s].tolist(), "k": k[s].tolist(), "v": v[s].tolist(),
              "first": int(wire_first[s]), "last": int(s == 89)} for s in range(90)]
    out = run_rtl(params, beats, 3)
    got = np.array([[int(b.s[c]) for c in range(params["d"])] for b in out])
    expected = sfsa(q, k, v, first, **params)
    assert np.array_equal(got, expected)
    assert expected.any()
    assert [(int(b.first), int(b.last)) for b in out] == \
        [(bt["first"], bt["last"]) for bt in beats]


def test_rtl_backpressure_fills_the_output_queue():
    """A slow consumer: the output queue fills, credits hold the input back, nothing is lost.

    The steps held inside (accepted, not delivered) reach ``capacity`` and never pass it.
    """
    params = dict(BASE, L=4, T=2)
    dut = SFSA(**params)
    rng = np.random.default_rng(5)
    q, k, v, first = sequence_stimulus(rng, 120, d=params["d"], L=params["L"], T=params["T"])
    beats = [{"q": q[s].tolist(), "k": k[s].tolist(), "v": v[s].tolist(),
              "first": int(first[s]), "last": 0} for s in range(len(q))]
    out, held = [], []

    async def bench(ctx):
        sent, cycle = 0, 0
        while len(out) < len(beats) and cycle < 40 * len(beats):
            # Long stretches with o.ready low, then a few cycles of draining.
            ready = int(cycle % 40 >= 30)
            ctx.set(dut.o.ready, ready)
            if sent < len(beats):
                ctx.set(dut.i.payload, beats[sent])
            ctx.set(dut.i.valid, sent < len(beats))
            _, _, i_ready, valid, payload = await ctx.tick().sample(
                dut.i.ready, dut.o.valid, dut.o.payload)
            if i_ready and sent < len(beats):
                sent += 1
            if valid and ready:
                out.append(payload)
            held.append(sent - len(out))
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    got = np.array([[int(b.s[c]) for c in range(params["d"])] for b in out])
    assert np.array_equal(got, sfsa(q, k, v, first, **params))
    assert max(held) == dut.capacity


# cocotb / Verilator ---------------------------------------------------------------------------

# (overrides, steps): the CLI default (d = 16, T = 2, inclusive); d = 64, T = 4, strict mask,
# leaks other than 1/2; T = 1 with an inclusive mask and a 3-key cache (a token's key is
# written in the cycle the previous token reads the slot it replaces).
CASES = {
    "default": ({}, 1200),
    "d64_strict_T4": ({"d": 64, "L": 8, "T": 4, "strict": True, "attn_theta": 12,
                       "attn_beta": 200, "out_theta": 2, "out_beta": 64}, 800),
    "d7_T1_L3": ({"d": 7, "L": 3, "T": 1, "frac": 2, "attn_theta": 2, "attn_beta": 0,
                  "out_theta": 1, "out_beta": 4}, 1600),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cocotb_matches_golden(case, tmp_path):
    overrides, steps = CASES[case]
    params = SPEC.params(overrides)
    s = simulate(SPEC, params, steps=steps, seed=sum(map(ord, case)), out_dir=tmp_path,
                 progress=lambda m: None)
    assert s["beats_got"] == s["beats_expected"] == steps
    assert s["mismatches"] == 0 and s["beat_mismatches"] == 0, s["first_divergence"]
    assert s["bit_exact"] and not s["timed_out"]
    assert 0 < s["events"] < steps * params["d"]


@pytest.mark.parametrize("case", ["default", "d64_strict_T4"])
def test_cycles_per_token_match_model(case):
    """At full throughput the measured output cycles are exactly the golden cycle model's."""
    overrides, _ = CASES[case]
    params = SPEC.params(overrides)
    steps = 400
    s = simulate(SPEC, params, steps=steps, seed=11, gaps=False, progress=lambda m: None)
    assert s["bit_exact"]
    res = s["_result"]
    stim = SPEC.stimulus(params, steps, np.random.default_rng(11))
    first = np.array([b["first"] for b in stim["i"]], dtype=bool)
    got = np.array(res.cycles["o"])
    assert np.array_equal(got, res.input_cycles["i"][0] + sfsa_schedule(first, **params))
    # Cycles per token: from the last output beat of one token to that of the next.
    t, pos = sfsa_positions(first, params["T"])
    ends = np.flatnonzero(t == params["T"] - 1)
    ends = ends[1:][pos[ends[1:]] > 0]            # tokens with a predecessor in the sequence
    measured = got[ends] - got[ends - params["T"]]
    assert np.array_equal(measured, sfsa_token_cycles(pos[ends], **params))
    assert pos[ends].max() > params["L"]          # full cache included


def test_cli_sim_and_bad_param(tmp_path, capsys):
    out = tmp_path / "ok"
    assert main(["sim", "sfsa", "--steps", "400", "--seed", "1", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["bit_exact"] is True and summary["unit"] == "step"
    capsys.readouterr()
    assert main(["sim", "sfsa", "--param", "attn_beta=300"]) == 2
    assert capsys.readouterr().err.startswith(
        "spikeforge: error: sfsa parameter 'attn_beta' must be in 0..256, not 300")
