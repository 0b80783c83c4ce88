# amaranth: UnusedElaboratable=no
"""Attention LUT: parameter rules, golden against a brute-force reference (sliding context
included), memory images, RTL vs golden in the Amaranth simulator and under cocotb/Verilator."""

import gc
import json
import warnings

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import UnusedElaboratable, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from spikeforge.cli import main
from spikeforge.cores import get_core
from spikeforge.firmware.image import ImageError
from spikeforge.golden.lut import lut_index, random_anchors, random_tables
from spikeforge.golden.lut_attention import (attention_positions, load_attention_image,
                                             lut_attention, save_attention_image)
from spikeforge.rtl.lut_attention import LUTAttention
from spikeforge.sim.run import simulate
from spikeforge.sim.specs import lut_attention as SPEC_MODULE

SPEC = get_core("lut_attention")
SHAPE = dict(n=8, x_width=4, n_t=2, n_c=2, p=1, ctx=4, y_dim=3, w_width=5, banks=1)


def contents(shape, seed=0):
    rng = np.random.default_rng(seed)
    D = shape["ctx"] - (0 if shape.get("causal_self") else 1)
    return (random_anchors(shape["n"], shape["n_t"], shape["n_c"], rng),
            random_tables((shape["n_t"], 2 ** (2 * shape["n_c"] + shape["p"]), shape["y_dim"]),
                          shape["w_width"], rng),
            rng.integers(0, 2 ** shape["p"], size=(shape["n_t"], D)))


def make(shape=SHAPE, **over):
    anchors, tables, pe = contents(shape)
    return LUTAttention(**{**shape, **over}, anchors=anchors, tables=tables, pe=pe)


def test_init():
    dut = make()
    assert dut.signature == wiring.Signature({
        "i": In(stream.Signature(data.StructLayout({
            "x": data.ArrayLayout(signed(4), 8), "first": 1, "last": 1}))),
        "w": In(stream.Signature(data.StructLayout({
            "kind": 2, "table": range(2), "addr": unsigned(5),
            "y": data.ArrayLayout(signed(5), 3), "a": data.ArrayLayout(range(8), 2),
            "b": data.ArrayLayout(range(8), 2), "pe": unsigned(1)}))),
        "o": Out(stream.Signature(data.StructLayout({
            "z": data.ArrayLayout(signed(8), 3), "jv": data.ArrayLayout(unsigned(2), 2),
            "first": 1, "last": 1}))),
    })
    # 2 tables * 3 keys = 6 rows at most: 5 + ceil(log2 6) = 8 bits.
    assert (dut.y_width, dut.K, dut.D, dut.index_width) == (8, 2, 3, 5)
    assert [dut.cycles(i) for i in range(6)] == [2, 4, 6, 8, 8, 8]
    selfish = make({**SHAPE, "causal_self": True})
    assert (selfish.y_width, selfish.D, selfish.cycles(0), selfish.cycles(9)) == (8, 4, 4, 10)


@pytest.mark.parametrize("name, value, exc, message", [
    ("n_c", 8, ValueError, r"^LUT attention index width 2\*n_c \+ p must be at most 16, "
                           r"not 17 \(n_c=8, p=1\)$"),
    ("p", 9, ValueError, r"^LUT attention parameter 'p' must be in 0\.\.8, not 9$"),
    ("ctx", 1, ValueError, r"^LUT attention parameter 'ctx' must be in 2\.\.1024, not 1$"),
    ("n_c", 0, ValueError, r"^LUT attention parameter 'n_c' must be in 1\.\.16, not 0$"),
    ("causal_self", 1, TypeError, r"^LUT attention parameter 'causal_self' must be a bool, "
                                  r"not 1$"),
    ("y_width", 7, ValueError, r"^LUT attention parameter 'y_width' must be at least 8 "
                               r"\(w_width \+ ceil\(log2\(6\)\)\) so the sum cannot overflow, "
                               r"not 7$"),
    ("banks", 3, ValueError, r"^LUT attention parameter 'banks' must be in 1\.\.2, not 3$"),
    ("n", 1025, ValueError, r"^LUT attention parameter 'n' must be in 2\.\.1024, not 1025$"),
])
def test_init_wrong_param(name, value, exc, message):
    anchors, tables, pe = contents(SHAPE)
    with pytest.raises(exc, match=message):
        LUTAttention(**{**SHAPE, name: value}, anchors=anchors, tables=tables, pe=pe)


def test_init_wrong_contents():
    anchors, tables, pe = contents(SHAPE)
    with pytest.raises(ValueError, match=r"^LUT attention tables must have shape \(2, 32, 3\), "
                                         r"not \(2, 16, 3\)$"):
        LUTAttention(**SHAPE, anchors=anchors, tables=tables[:, :16], pe=pe)
    with pytest.raises(ValueError, match=r"^LUT attention pe must have shape \(2, 3\), "
                                         r"not \(2, 4\)$"):
        LUTAttention(**SHAPE, anchors=anchors, tables=tables, pe=np.zeros((2, 4), int))
    bad = pe.copy()
    bad[1, 2] = 2
    with pytest.raises(ValueError, match=r"^LUT attention pe code 2 at \(1, 2\) is outside "
                                         r"0\.\.1 \(1-bit\)$"):
        LUTAttention(**SHAPE, anchors=anchors, tables=tables, pe=bad)
    bad = anchors.copy()
    bad[0, 1] = [4, 4]
    with pytest.raises(ValueError, match=r"^LUT attention anchor pair 1 of table 0 compares "
                                         r"neuron 4 with itself \(a == b\)$"):
        LUTAttention(**SHAPE, anchors=bad, tables=tables, pe=pe)
    bad = anchors.copy()
    bad[1, 0, 0] = 8
    with pytest.raises(ValueError, match=r"^LUT attention anchor a of table 1 pair 0 must be "
                                         r"in 0\.\.7, not 8$"):
        LUTAttention(**SHAPE, anchors=bad, tables=tables, pe=pe)


# Golden -------------------------------------------------------------------------------------

def brute_force(x, first, anchors, tables, pe, *, p, ctx, causal_self):
    """Loops straight from the definition."""
    n_t, n_c = anchors.shape[:2]
    jv = [[sum(int(row[anchors[t, r, 0]] > row[anchors[t, r, 1]]) << r for r in range(n_c))
           for t in range(n_t)] for row in x]
    z, start = [], 0
    for i in range(len(x)):
        if i == 0 or first[i]:
            start = i
        acc = np.zeros(tables.shape[2], dtype=np.int64)
        for j in range(max(start, i - ctx + 1), i + 1 if causal_self else i):
            d = i - j
            for t in range(n_t):
                J = (jv[i][t] << (n_c + p)) | (jv[j][t] << p) | int(pe[t, d - (0 if causal_self else 1)])
                acc += tables[t, J]
        z.append(acc)
    return np.array(z), np.array(jv)


@pytest.mark.parametrize("causal_self", [False, True])
@pytest.mark.parametrize("p", [0, 2])
def test_golden_matches_brute_force(causal_self, p):
    rng = np.random.default_rng(p + 10 * causal_self)
    shape = dict(SHAPE, p=p, ctx=5, causal_self=causal_self)
    anchors, tables, pe = contents(shape, seed=3)
    x = rng.integers(-3, 4, size=(60, 8))
    first = rng.random(60) < 0.08                       # sequences up to ~3 contexts long
    z, jv = lut_attention(x, first, anchors, tables, pe, p=p, ctx=5, causal_self=causal_self)
    zb, jvb = brute_force(x, first, anchors, tables, pe, p=p, ctx=5, causal_self=causal_self)
    assert np.array_equal(jv, jvb) and np.array_equal(z, zb)
    assert np.array_equal(jv, lut_index(x, anchors))


def test_golden_sliding_context():
    """Beyond ctx positions only the ctx-1 most recent keys count."""
    anchors, tables, pe = contents(SHAPE, seed=1)
    rng = np.random.default_rng(2)
    x = rng.integers(-8, 8, size=(10, 8))
    first = np.zeros(10, bool)
    z, _ = lut_attention(x, first, anchors, tables, pe, p=1, ctx=4)
    x2 = x.copy()
    x2[2] = -x[2] + 1                                   # change position 2 only
    z2, jv2 = lut_attention(x2, first, anchors, tables, pe, p=1, ctx=4)
    assert not np.array_equal(lut_index(x[2:3], anchors), jv2[2:3])
    # Positions 3..5 see position 2 (distance <= 3); position 6 and later do not.
    assert np.array_equal(z[6:], z2[6:]) and np.array_equal(z[:2], z2[:2])
    assert not np.array_equal(z[2:6], z2[2:6])
    assert attention_positions([1, 0, 0, 1, 0]).tolist() == [0, 1, 2, 0, 1]
    assert attention_positions([0, 0, 1], start=6).tolist() == [7, 8, 0]


def test_image_round_trip_and_wrong_shape(tmp_path):
    anchors, tables, pe = contents(SHAPE)
    path = save_attention_image(tmp_path / "a.npz", anchors=anchors, tables=tables, pe=pe, n=8,
                                p=1, ctx=4, w_width=5)
    dims = dict(n=8, n_t=2, n_c=2, p=1, ctx=4, y_dim=3, w_width=5)
    a, t, e = load_attention_image(path, **dims)
    assert np.array_equal(a, anchors) and np.array_equal(t, tables) and np.array_equal(e, pe)
    with pytest.raises(ImageError, match=r"^\S+a\.npz: memory 'pe' has shape \(2, 3\), "
                                         r"expected \(2, 4\)$"):
        load_attention_image(path, **dims, causal_self=True)
    with pytest.raises(ImageError, match=r"^\S+a\.npz: memory 'tables' has shape \(2, 32, 3\), "
                                         r"expected \(2, 64, 3\)$"):
        SPEC.params({**SHAPE, "p": 2, "image": str(path)})
    params = SPEC.params({**SHAPE, "image": str(path)})
    got = SPEC_MODULE.contents(params)
    assert all(np.array_equal(g, w) for g, w in zip(got, (anchors, tables, pe)))


# RTL in the Amaranth simulator ----------------------------------------------------------------

def run_streams(dut, phases, n_out, seed, *, gap=0.3, stall=0.3):
    """Drive phases ({port: beats}; a phase starts when the last one is accepted) with random
    valid gaps, take ``n_out`` output beats with random ready."""
    rng = np.random.default_rng(seed)
    out = []

    async def producer(ctx):
        for phase in phases:
            for name, beats in phase.items():
                port = getattr(dut, name)
                for beat in beats:
                    while rng.random() < gap:
                        await ctx.tick()
                    ctx.set(port.payload, beat)
                    ctx.set(port.valid, 1)
                    await ctx.tick().until(port.ready)
                    ctx.set(port.valid, 0)

    async def consumer(ctx):
        while len(out) < n_out:
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


@pytest.mark.parametrize("shape", [
    SHAPE,
    dict(SHAPE, causal_self=True, banks=2),
    dict(n=5, x_width=3, n_t=3, n_c=2, p=0, ctx=3, y_dim=2, w_width=4, banks=1),
    dict(n=8, x_width=4, n_t=2, n_c=1, p=1, ctx=2, y_dim=1, w_width=3, banks=2, causal_self=True),
])
def test_rtl_sim_with_writes(shape):
    params = SPEC.params(shape)
    stim = SPEC.stimulus(params, 150, np.random.default_rng(8))
    expected = SPEC.golden(params, stim)["o"]
    out = run_streams(SPEC.build(**params), stim, len(expected), 9)
    got = [{"z": [int(v) for v in b.z], "jv": [int(v) for v in b.jv], "first": int(b.first),
            "last": int(b.last)} for b in out]
    assert got == expected


def test_verilog_converts():
    params = SPEC.params(SPEC.build_defaults)
    assert "module lut_attention" in verilog.convert(SPEC.build(**params), name="lut_attention")


# RTL under cocotb/Verilator -------------------------------------------------------------------

CASES = {
    "default": ({}, 2000),
    "self_odd": ({"n": 12, "x_width": 5, "n_t": 3, "n_c": 2, "p": 3, "ctx": 5, "y_dim": 5,
                  "w_width": 6, "banks": 3, "causal_self": True, "y_width": 12,
                  "table_seed": 4}, 2000),
    "tiny": ({"n": 2, "x_width": 2, "n_t": 1, "n_c": 1, "p": 0, "ctx": 2, "y_dim": 1,
              "w_width": 2, "banks": 1}, 2000),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rtl_matches_golden(case, tmp_path):
    overrides, steps = CASES[case]
    params = SPEC.params(overrides)
    s = simulate(SPEC, params, steps=steps, seed=sum(map(ord, case)), out_dir=tmp_path,
                 progress=lambda m: None)
    assert s["beats_got"] == s["beats_expected"] == steps
    assert s["mismatches"] == 0 and s["beat_mismatches"] == 0, s["first_divergence"]
    assert s["bit_exact"] and s["events"] > 0


def test_cycles_per_position():
    """Without gaps, position i leaves K * (1 + keys(i)) cycles after position i-1."""
    params = SPEC.params({})
    s = simulate(SPEC, params, steps=40, seed=3, gaps=False, progress=lambda m: None)
    assert s["bit_exact"]
    stim = SPEC.stimulus(params, 40, np.random.default_rng(3))
    pos = attention_positions([b["first"] for b in stim[0]["i"]])
    K, ctx = params["n_t"] // params["banks"], params["ctx"]
    cycles = s["_result"].cycles["o"]
    assert [b - a for a, b in zip(cycles[:-1], cycles[1:])] == \
        [K * (1 + min(i, ctx - 1)) for i in pos[1:]]


def test_cli_sim(tmp_path):
    out = tmp_path / "ok"
    with warnings.catch_warnings():
        # The CLI builds the core once only to validate the parameters.
        warnings.simplefilter("ignore", UnusedElaboratable)
        assert main(["sim", "lut_attention", "--steps", "200", "--seed", "1", "--out",
                     str(out)]) == 0
        gc.collect()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["bit_exact"] is True and summary["mismatches"] == 0
