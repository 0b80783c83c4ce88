# amaranth: UnusedElaboratable=no
"""ternary_linear: parameter rules, golden by hand, RTL vs golden in the Amaranth simulator and
under cocotb/Verilator (exact, with gaps, backpressure and run-time weight writes), the cycle
model, memory images and the CLI."""

import json

import numpy as np
import pytest
from amaranth.back import rtlil, verilog
from amaranth.hdl import Fragment, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from spikeforge.cli import main
from spikeforge.cores import get_core
from spikeforge.firmware.image import ImageError, save_image
from spikeforge.golden.ternary_linear import (apply_weight_writes, random_ternary_weights,
                                              ternary_linear, ternary_linear_cycles)
from spikeforge.rtl.ternary_linear import TernaryLinear, weight_words
from spikeforge.sim.run import simulate
from spikeforge.sim.specs.ternary_linear import image_specs, initial_weights

SPEC = get_core("ternary_linear")
BASE = dict(n_in=8, n_out=6, p=3, k=4, spikes="ternary")


def test_init():
    dut = TernaryLinear(**BASE)
    assert dut.signature == wiring.Signature({
        "i": In(stream.Signature(data.StructLayout({
            "s": data.ArrayLayout(signed(2), 8), "first": 1, "last": 1}))),
        "o": Out(stream.Signature(data.StructLayout({
            "y": data.ArrayLayout(signed(5), 3), "err": 1, "first": 1, "last": 1}))),
        "w": In(stream.Signature(data.StructLayout({
            "addr": range(4), "w": data.ArrayLayout(data.ArrayLayout(signed(2), 4), 3)}))),
    })
    assert (dut.groups, dut.chunks, dut.depth, dut.cycles_per_vector, dut.acc_width,
            dut.latency) == (2, 2, 4, 4, 5, 7)
    assert ternary_linear_cycles(**BASE) == (dut.cycles_per_vector, dut.latency)
    binary = TernaryLinear(n_in=7, n_out=1, p=1, k=1)
    assert binary.i.payload.shape()["s"].shape == data.ArrayLayout(unsigned(1), 7)
    assert binary.acc_width == 4          # |y| <= 7 needs 3 magnitude bits and a sign


@pytest.mark.parametrize("name, value, exc, message", [
    ("n_in", 0, ValueError, r"^ternary_linear parameter 'n_in' must be in 1\.\.4096, not 0$"),
    ("n_in", 4097, ValueError,
     r"^ternary_linear parameter 'n_in' must be in 1\.\.4096, not 4097$"),
    ("n_in", 8.0, TypeError, r"^ternary_linear parameter 'n_in' must be an integer, not 8\.0$"),
    ("n_out", True, TypeError,
     r"^ternary_linear parameter 'n_out' must be an integer, not True$"),
    ("n_out", 0, ValueError, r"^ternary_linear parameter 'n_out' must be in 1\.\.4096, not 0$"),
    ("p", 4, ValueError, r"^ternary_linear parameter 'p' must divide n_out=6, not 4$"),
    ("p", 0, ValueError, r"^ternary_linear parameter 'p' must be in 1\.\.4096, not 0$"),
    ("k", 3, ValueError, r"^ternary_linear parameter 'k' must divide n_in=8, not 3$"),
    ("k", "2", TypeError, r"^ternary_linear parameter 'k' must be an integer, not '2'$"),
    ("spikes", "int", ValueError,
     r"^ternary_linear parameter 'spikes' must be 'binary' or 'ternary', not 'int'$"),
    ("weights", np.zeros((8, 6), int), ValueError,
     r"^ternary_linear parameter 'weights' must have shape \(6, 8\), not \(8, 6\)$"),
    ("weights", np.full((6, 8), 2), ValueError,
     r"^ternary_linear parameter 'weights' must hold integers in -1\.\.1$"),
    ("weights", np.zeros((6, 8)), ValueError,
     r"^ternary_linear parameter 'weights' must hold integers in -1\.\.1$"),
])
def test_init_wrong_param(name, value, exc, message):
    with pytest.raises(exc, match=message):
        TernaryLinear(**{**BASE, name: value})


def test_no_multiplier():
    # Yosys maps any `*` of two >= 2-bit operands to a DSP block; there must be none.
    w = random_ternary_weights(3, 16, 32)
    text = rtlil.convert(TernaryLinear(n_in=32, n_out=16, p=4, k=8, spikes="ternary",
                                       weights=w), name="tl")
    assert "$mul" not in text
    assert "module tl" in verilog.convert(TernaryLinear(**BASE), name="tl")


# Golden, hand-checked ------------------------------------------------------------------------

def test_golden_by_hand():
    w = np.array([[1, -1, 0], [1, 1, 1], [-1, -1, -1]])
    y, err = ternary_linear([[1, 0, 1], [1, 1, 1]], w)
    assert y.tolist() == [[1, 2, -2], [0, 3, -3]] and err.tolist() == [False, False]
    y, err = ternary_linear([[1, -1, -1], [-2, 1, 0]], w, spikes="ternary")
    assert y.tolist() == [[2, -1, 1], [-1, 1, -1]]      # -2 (0b10) counts as 0 and flags
    assert err.tolist() == [False, True]
    # The accumulator bound |y| <= n_in is reached at both ends.
    w = np.array([[1] * 5, [-1] * 5])
    assert ternary_linear([[1] * 5], w)[0].tolist() == [[5, -5]]
    assert ternary_linear([[-1] * 5], w, spikes="ternary")[0].tolist() == [[-5, 5]]


def test_golden_wrong_input():
    w = np.zeros((2, 3), int)
    with pytest.raises(ValueError, match=r"^ternary_linear input 's' must be in 0\.\.1 "
                                         r"\(binary\), not -1$"):
        ternary_linear([[0, -1, 0]], w)
    with pytest.raises(ValueError, match=r"^ternary_linear input 's' must be in -2\.\.1 "
                                         r"\(ternary\), not 2$"):
        ternary_linear([[0, 2, 0]], w, spikes="ternary")
    with pytest.raises(ValueError, match=r"^ternary_linear input 's' must have shape "
                                         r"\(S, 3\), not \(3,\)$"):
        ternary_linear([0, 1, 0], w)
    with pytest.raises(TypeError, match=r"^ternary_linear input 's' must be an integer "
                                        r"array, not float64$"):
        ternary_linear([[0.5, 0, 0]], w)
    with pytest.raises(ValueError, match=r"^ternary_linear parameter 'weights' must have shape "
                                         r"\(n_out, n_in\), not \(3,\)$"):
        ternary_linear([[0, 0, 0]], [1, 0, 1])
    with pytest.raises(ValueError, match=r"^ternary_linear parameter 'spikes' must be 'binary' "
                                         r"or 'ternary', not 'x'$"):
        ternary_linear([[0, 0, 0]], w, spikes="x")


def test_weight_layout_round_trip():
    # The RTL's memory words and the golden model's write decoder are independent code.
    w = random_ternary_weights(5, 6, 8)
    words = weight_words(w, p=3, k=4)
    def code(word, l, m):
        c = (word >> (2 * (l * 4 + m))) & 3
        return c - 4 if c & 2 else c
    beats = [{"addr": a, "w": [[code(word, l, m) for m in range(4)] for l in range(3)]}
             for a, word in enumerate(words)]
    assert np.array_equal(apply_weight_writes(np.zeros((6, 8), int), beats, p=3, k=4), w)
    assert np.array_equal(random_ternary_weights(5, 6, 8), w)
    assert set(np.unique(w)) == {-1, 0, 1}


# RTL vs golden in the Amaranth simulator ------------------------------------------------------

def run_rtl(dut, phases, n_out_beats, seed, *, gap=0.3, stall=0.3):
    """Drive phases ({"i": [...], "w": [...]}) in order with random valid gaps; random ready."""
    rng = np.random.default_rng(seed)
    out = []

    async def producer(ctx):
        for phase in phases:
            for port, beats in phase.items():
                stream_ = getattr(dut, port)
                for beat in beats:
                    while rng.random() < gap:
                        await ctx.tick()
                    ctx.set(stream_.payload, beat)
                    ctx.set(stream_.valid, 1)
                    await ctx.tick().until(stream_.ready)
                    ctx.set(stream_.valid, 0)

    async def consumer(ctx):
        while len(out) < n_out_beats:
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
    dict(n_in=8, n_out=6, p=3, k=4, spikes="ternary"),
    dict(n_in=5, n_out=4, p=4, k=1, spikes="binary"),
    dict(n_in=6, n_out=3, p=1, k=6, spikes="ternary"),
    # A 72-bit word: three memory columns, each with its own read address (32, 32, 8 bits).
    dict(n_in=18, n_out=8, p=4, k=9, spikes="ternary"),
    # One weight word: every issue is the vector's last (depth 1).
    dict(n_in=4, n_out=2, p=2, k=4, spikes="binary"),
    # 72 words, more than DIST_DEPTH: the memory with a held read address (block RAM).
    dict(n_in=36, n_out=4, p=2, k=1, spikes="ternary"),
])
def test_rtl_matches_golden(params):
    rng = np.random.default_rng(params["n_in"])
    w0 = random_ternary_weights(params["n_in"], params["n_out"], params["n_in"])
    dut = TernaryLinear(**params, weights=w0)
    lo = -2 if params["spikes"] == "ternary" else 0
    s = [rng.integers(lo, 2, size=(12, params["n_in"])) for _ in range(2)]
    depth = dut.depth
    writes = [{"addr": int(rng.integers(0, 1 << (depth - 1).bit_length())),
               "w": rng.integers(-2, 2, size=(params["p"], params["k"])).tolist()}
              for _ in range(depth + 2)]
    vec = [[{"s": row.tolist(), "first": int(j == 0), "last": int(j == 11)}
            for j, row in enumerate(block)] for block in s]
    groups = dut.groups
    out = run_rtl(dut, [{"i": vec[0]}, {"w": writes}, {"i": vec[1]}], 24 * groups, 7)
    w1 = apply_weight_writes(w0, writes, p=params["p"], k=params["k"])
    for block, (sv, wv) in enumerate([(s[0], w0), (s[1], w1)]):
        y, err = ternary_linear(sv, wv, spikes=params["spikes"])
        beats = out[block * 12 * groups:(block + 1) * 12 * groups]
        got = np.array([[int(b.y[l]) for l in range(params["p"])] for b in beats])
        assert np.array_equal(got.reshape(12, params["n_out"]), y)
        assert [int(b.err) for b in beats] == np.repeat(err, groups).astype(int).tolist()
        flags = [(int(b.first), int(b.last)) for b in beats]
        assert flags[0] == (1, 0) and flags[-1] == (0, 1)
        assert sum(f for f, _ in flags) == sum(la for _, la in flags) == 1


# Memory images --------------------------------------------------------------------------------

def test_image_loads_and_wrong_shape_fails(tmp_path):
    params = SPEC.params({"n_in": 8, "n_out": 6, "p": 3, "k": 4})
    w = random_ternary_weights(9, 6, 8)
    good = save_image(tmp_path / "w.npz", core="ternary_linear", params={},
                      memories={"w": w}, specs=image_specs(6, 8))
    loaded = SPEC.params({**params, "weights": str(good)})
    assert np.array_equal(initial_weights(loaded), w)
    dut = SPEC.build(**loaded)
    Fragment.get(dut, None)
    assert np.array_equal(dut.weights, w)

    bad = save_image(tmp_path / "bad.npz", core="ternary_linear", params={},
                     memories={"w": w[:, :4]}, specs=image_specs(6, 4))
    with pytest.raises(ImageError, match=r"^.*bad\.npz: memory 'w' has shape \(6, 4\), "
                                         r"expected \(6, 8\)$"):
        SPEC.build(**SPEC.params({**params, "weights": str(bad)}))
    other = save_image(tmp_path / "other.npz", core="lif", params={},
                       memories={"w": w}, specs=image_specs(6, 8))
    with pytest.raises(ImageError, match=r"^.*other\.npz: image is for core 'lif', "
                                         r"not 'ternary_linear'$"):
        SPEC.build(**SPEC.params({**params, "weights": str(other)}))


def test_spec_wrong_param():
    with pytest.raises(ValueError, match=r"^ternary_linear parameter 'weights_seed' must be a "
                                         r"non-negative integer, not -1$"):
        SPEC.params({"weights_seed": -1})
    with pytest.raises(TypeError, match=r"^ternary_linear parameter 'weights' must be a "
                                        r"memory-image path or None, not 3$"):
        SPEC.params({"weights": 3})


# cocotb / Verilator ---------------------------------------------------------------------------

# (overrides, vectors): the CLI default (ternary, 8 lanes x 16 inputs, illegal codes); binary
# with one input per cycle and all outputs in one beat; one chunk per group and a 3-word memory
# whose 2-bit address field reaches past it (ignored writes).
CASES = {
    "default": ({}, 1500),
    "binary_k1": ({"spikes": "binary", "n_in": 16, "n_out": 16, "p": 16, "k": 1}, 1500),
    "one_chunk": ({"n_in": 12, "n_out": 9, "p": 3, "k": 12, "weights_seed": 4}, 3000),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cocotb_matches_golden(case, tmp_path):
    overrides, steps = CASES[case]
    params = SPEC.params(overrides)
    s = simulate(SPEC, params, steps=steps, seed=sum(map(ord, case)), out_dir=tmp_path,
                 progress=lambda m: None)
    assert s["beats_got"] == s["beats_expected"] == steps * params["n_out"] // params["p"]
    assert s["mismatches"] == 0 and s["beat_mismatches"] == 0, s["first_divergence"]
    assert s["bit_exact"] and not s["timed_out"]
    assert s["events"] > 0


def test_cycle_model_full_throughput():
    params = SPEC.params({})
    s = simulate(SPEC, params, steps=40, seed=5, gaps=False, progress=lambda m: None)
    assert s["bit_exact"]
    res = s["_result"]
    per_vector, latency = ternary_linear_cycles(**params)
    chunks, groups = params["n_in"] // params["k"], params["n_out"] // params["p"]
    accepted = res.input_cycles["i"]
    out = np.array(res.cycles["o"]).reshape(-1, groups)
    # Phase 0 (20 vectors) streams back to back: one vector per `per_vector` cycles.
    assert np.diff(accepted[:20]).tolist() == [per_vector] * 19
    expected = np.array(accepted)[:, None] + (np.arange(groups)[None, :] + 1) * chunks + latency
    assert np.array_equal(out, expected)


def test_cli_sim_and_bad_param(tmp_path, capsys):
    out = tmp_path / "ok"
    assert main(["sim", "ternary_linear", "--steps", "300", "--seed", "1", "--out",
                 str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["bit_exact"] is True and summary["unit"] == "vector"
    capsys.readouterr()
    assert main(["sim", "ternary_linear", "--param", "k=5"]) == 2
    assert capsys.readouterr().err.startswith(
        "spikeforge: error: ternary_linear parameter 'k' must divide n_in=64, not 5")
    bad = save_image(tmp_path / "bad.npz", core="ternary_linear", params={},
                     memories={"w": np.zeros((2, 2), int)}, specs=image_specs(2, 2))
    assert main(["sim", "ternary_linear", "--param", f"weights={bad}"]) == 2
    assert "memory 'w' has shape (2, 2), expected (32, 64)" in capsys.readouterr().err
