# amaranth: UnusedElaboratable=no
"""LUT layer: parameter rules, golden hand checks, memory images, RTL vs golden in the Amaranth
simulator and under cocotb/Verilator, exact, with random valid gaps and backpressure."""

import gc
import json
import warnings

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import UnusedElaboratable
from amaranth.hdl import signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from spikeforge.cli import main
from spikeforge.cores import get_core
from spikeforge.firmware.image import ImageError
from spikeforge.golden.lut import (load_lut_image, lut, lut_index, lut_write, random_anchors,
                                   random_tables, save_lut_image)
from spikeforge.rtl.lut import LUT, check_lut_params
from spikeforge.sim.run import simulate
from spikeforge.sim.specs import lut as SPEC_MODULE

SPEC = get_core("lut")
SHAPE = dict(n=8, x_width=4, n_t=4, n_c=3, y_dim=3, w_width=6, banks=2)


def contents(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (random_anchors(shape["n"], shape["n_t"], shape["n_c"], rng),
            random_tables((shape["n_t"], 2 ** shape["n_c"], shape["y_dim"]), shape["w_width"], rng))


def make(shape=SHAPE, seed=0, **over):
    anchors, tables = contents(shape, seed)
    return LUT(**{**shape, **over}, anchors=anchors, tables=tables), anchors, tables


# Construction -----------------------------------------------------------------------------

def test_init():
    dut, _, _ = make()
    assert dut.signature == wiring.Signature({
        "i": In(stream.Signature(data.StructLayout({
            "x": data.ArrayLayout(signed(4), 8), "first": 1, "last": 1}))),
        "w": In(stream.Signature(data.StructLayout({
            "kind": 1, "table": range(4), "row": unsigned(3),
            "y": data.ArrayLayout(signed(6), 3),
            "a": data.ArrayLayout(range(8), 3), "b": data.ArrayLayout(range(8), 3)}))),
        "o": Out(stream.Signature(data.StructLayout({
            "y": data.ArrayLayout(signed(8), 3), "j": data.ArrayLayout(unsigned(3), 4),
            "first": 1, "last": 1}))),
    })
    assert (dut.y_width, dut.K, dut.latency) == (8, 2, 12)
    assert check_lut_params(n=2, x_width=2, n_t=5, n_c=1, y_dim=1, w_width=2)["y_width"] == 5
    assert check_lut_params(**SHAPE, y_width=20)["y_width"] == 20


@pytest.mark.parametrize("name, value, exc, message", [
    ("n", 1, ValueError, r"^LUT parameter 'n' must be in 2\.\.1024, not 1$"),
    ("n", 8.0, TypeError, r"^LUT parameter 'n' must be an integer, not 8\.0$"),
    ("x_width", 1, ValueError, r"^LUT parameter 'x_width' must be in 2\.\.24, not 1$"),
    ("n_t", 0, ValueError, r"^LUT parameter 'n_t' must be in 1\.\.256, not 0$"),
    ("n_c", 17, ValueError, r"^LUT parameter 'n_c' must be in 1\.\.16, not 17$"),
    ("n_c", 0, ValueError, r"^LUT parameter 'n_c' must be in 1\.\.16, not 0$"),
    ("y_dim", 0, ValueError, r"^LUT parameter 'y_dim' must be in 1\.\.1024, not 0$"),
    ("w_width", 25, ValueError, r"^LUT parameter 'w_width' must be in 2\.\.24, not 25$"),
    ("banks", 3, ValueError, r"^LUT parameter 'banks' must divide n_t=4, not 3$"),
    ("banks", 5, ValueError, r"^LUT parameter 'banks' must be in 1\.\.4, not 5$"),
    ("banks", True, TypeError, r"^LUT parameter 'banks' must be an integer, not True$"),
    ("y_width", 7, ValueError, r"^LUT parameter 'y_width' must be at least 8 \(w_width \+ "
                               r"ceil\(log2\(4\)\)\) so the sum cannot overflow, not 7$"),
])
def test_init_wrong_param(name, value, exc, message):
    anchors, tables = contents(SHAPE)
    with pytest.raises(exc, match=message):
        LUT(**{**SHAPE, name: value}, anchors=anchors, tables=tables)


def test_init_wrong_contents():
    anchors, tables = contents(SHAPE)
    bad = anchors.copy()
    bad[2, 1, 1] = 8
    with pytest.raises(ValueError, match=r"^LUT anchor b of table 2 pair 1 must be in 0\.\.7, "
                                         r"not 8$"):
        LUT(**SHAPE, anchors=bad, tables=tables)
    bad = anchors.copy()
    bad[3, 0] = [5, 5]
    with pytest.raises(ValueError, match=r"^LUT anchor pair 0 of table 3 compares neuron 5 with "
                                         r"itself \(a == b\)$"):
        LUT(**SHAPE, anchors=bad, tables=tables)
    with pytest.raises(ValueError, match=r"^LUT anchors must have shape \(n_t, n_c, 2\) = "
                                         r"\(4, 3, 2\), not \(4, 3\)$"):
        LUT(**SHAPE, anchors=anchors[..., 0], tables=tables)
    with pytest.raises(TypeError, match=r"^LUT anchors must be integers, not float64$"):
        LUT(**SHAPE, anchors=anchors * 1.0, tables=tables)
    with pytest.raises(ValueError, match=r"^LUT tables must have shape \(4, 8, 3\), "
                                         r"not \(4, 16, 3\)$"):
        LUT(**SHAPE, anchors=anchors, tables=np.zeros((4, 16, 3), int))
    bad = tables.copy()
    bad[1, 2, 0] = 32
    with pytest.raises(ValueError, match=r"^LUT tables value 32 at \(1, 2, 0\) is outside "
                                         r"-32\.\.31 \(6-bit signed\)$"):
        LUT(**SHAPE, anchors=anchors, tables=bad)


# Golden -----------------------------------------------------------------------------------

def test_golden_hand_checked():
    # Table 0 compares (x0, x1) -> bit 0 and (x2, x3) -> bit 1; table 1 compares (x1, x0), (x3, x2).
    anchors = np.array([[[0, 1], [2, 3]], [[1, 0], [3, 2]]])
    tables = np.arange(2 * 4 * 2).reshape(2, 4, 2)
    x = np.array([[5, 3, 1, 1],      # x0 > x1: bit0 = 1; tie x2 == x3: bit1 = 0 both ways
                  [0, 9, 7, -7],     # x0 < x1 -> table 0 bit0 = 0, x2 > x3 -> bit1 = 1
                  [2, 2, 2, 2]])     # all ties: every index 0
    j = lut_index(x, anchors)
    assert j.tolist() == [[1, 0], [2, 1], [0, 0]]
    y, j2 = lut(x, anchors, tables)
    assert np.array_equal(j, j2)
    assert y.tolist() == [[2 + 8, 3 + 9], [4 + 10, 5 + 11], [0 + 8, 1 + 9]]


def test_golden_extremes_and_writes():
    anchors = np.array([[[0, 1]]] * 3)
    tables = np.full((3, 2, 2), -128)
    tables[:, 1] = 127
    y, _ = lut(np.array([[0, 1], [1, 0]]), anchors, tables)
    assert y.tolist() == [[-384, -384], [381, 381]]          # fits y_width = 8 + 2
    a2, t2 = lut_write(anchors, tables, 2, kind=0, table=1, row=0, y=[5, 6], a=[0], b=[1])
    assert t2[1, 0].tolist() == [5, 6] and tables[1, 0].tolist() == [-128, -128]
    a3, _ = lut_write(anchors, tables, 2, kind=1, table=2, row=0, y=[0, 0], a=[1], b=[0])
    assert a3[2].tolist() == [[1, 0]]
    for bad in ({"table": 3, "a": [1], "b": [0]}, {"table": 0, "a": [1], "b": [1]},
                {"table": 0, "a": [2], "b": [0]}):
        a4, t4 = lut_write(anchors, tables, 2, kind=1, row=0, y=[0, 0], **bad)
        assert np.array_equal(a4, anchors) and np.array_equal(t4, tables)


def test_golden_wrong_input():
    anchors = np.array([[[0, 0]]])
    with pytest.raises(ValueError, match=r"^lut anchor pair 0 of table 0 compares a neuron "
                                         r"with itself \(a == b\)$"):
        lut_index(np.zeros((1, 2), int), anchors)
    with pytest.raises(ValueError, match=r"^lut anchors must be in 0\.\.1, not 2$"):
        lut_index(np.zeros((1, 2), int), [[[0, 2]]])
    with pytest.raises(ValueError, match=r"^lut tables must have shape \(n_t, 2\*\*n_c, y_dim\) "
                                         r"= \(1, 2, y_dim\), not \(1, 3, 1\)$"):
        lut(np.zeros((1, 2), int), [[[0, 1]]], np.zeros((1, 3, 1), int))


def test_image_round_trip_and_wrong_shape(tmp_path):
    anchors, tables = contents(SHAPE)
    path = save_lut_image(tmp_path / "l.npz", anchors=anchors, tables=tables, n=8, w_width=6)
    a, t = load_lut_image(path, n=8, n_t=4, n_c=3, y_dim=3, w_width=6)
    assert np.array_equal(a, anchors) and np.array_equal(t, tables)
    with pytest.raises(ImageError, match=r"^\S+l\.npz: memory 'anchors' has shape \(4, 3, 2\), "
                                         r"expected \(4, 4, 2\)$"):
        load_lut_image(path, n=8, n_t=4, n_c=4, y_dim=3, w_width=6)
    with pytest.raises(ImageError, match=r"memory 'tables' has shape \(4, 8, 3\), "
                                         r"expected \(4, 8, 2\)$"):
        SPEC.params({**SHAPE, "y_dim": 2, "image": str(path)})
    params = SPEC.params({**SHAPE, "image": str(path)})
    a, t = SPEC_MODULE.contents(params)
    assert np.array_equal(t, tables) and np.array_equal(a, anchors)


# RTL in the Amaranth simulator --------------------------------------------------------------

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
    dict(n=5, x_width=3, n_t=3, n_c=2, y_dim=2, w_width=4, banks=1),
    dict(n=2, x_width=2, n_t=1, n_c=1, y_dim=1, w_width=2, banks=1, y_width=5),
    dict(n=16, x_width=5, n_t=6, n_c=4, y_dim=2, w_width=7, banks=6),
    # 42-bit rows: two table columns, each with its own copy of the row address.
    dict(n=8, x_width=4, n_t=2, n_c=3, y_dim=6, w_width=7, banks=1),
])
def test_rtl_sim_with_writes(shape):
    params = SPEC.params(shape)
    dut = SPEC.build(**params)
    rng = np.random.default_rng(3)
    stim = SPEC.stimulus(params, 120, rng)
    expected = SPEC.golden(params, stim)["o"]
    out = run_streams(dut, stim, len(expected), 4)
    got = [{"y": [int(v) for v in b.y], "j": [int(v) for v in b.j], "first": int(b.first),
            "last": int(b.last)} for b in out]
    assert got == expected


def test_rtl_sim_invalid_writes_dropped():
    dut, anchors, tables = make()
    # Only invalid anchor writes, then a row write: the anchors stay, the row changes.
    writes = [{"kind": 1, "table": 1, "row": 0, "y": [0, 0, 0], "a": [1, 2, 3], "b": [1, 0, 0]},
              {"kind": 0, "table": 2, "row": 5, "y": [-32, 31, 7], "a": [0] * 3, "b": [0] * 3}]
    x = np.random.default_rng(9).integers(-8, 8, size=(30, 8))
    beats = [{"x": row.tolist(), "first": 0, "last": 0} for row in x]
    out = run_streams(dut, [{"w": writes}, {"i": beats}], 30, 5)
    tables[2, 5] = [-32, 31, 7]
    y, j = lut(x, anchors, tables)
    assert [[int(v) for v in b.y] for b in out] == y.tolist()
    assert [[int(v) for v in b.j] for b in out] == j.tolist()


def test_rtl_sim_accumulator_extremes():
    shape = dict(n=4, x_width=3, n_t=5, n_c=2, y_dim=2, w_width=4, banks=1)
    anchors, _ = contents(shape)
    tables = np.full((5, 4, 2), 7)
    tables[:, 0] = -8                                 # index 0 (all ties) selects the minimum
    dut = LUT(**shape, anchors=anchors, tables=tables)
    assert dut.y_width == 7
    x = np.vstack([np.zeros((3, 4), int), np.random.default_rng(1).integers(-4, 4, (20, 4))])
    x[3] = [3, 2, 1, 0]
    anchors[:] = [[0, 1], [1, 2]]                     # x[3] sets every bit: the maximum
    dut = LUT(**shape, anchors=anchors, tables=tables)
    out = run_streams(dut, [{"i": [{"x": r.tolist(), "first": 0, "last": 0} for r in x]}], 23, 2)
    got = np.array([[int(v) for v in b.y] for b in out])
    assert np.array_equal(got, lut(x, anchors, tables)[0])
    assert got.min() == -40 and got.max() == 35


def test_verilog_converts():
    params = SPEC.params(SPEC.build_defaults)
    assert "module lut" in verilog.convert(SPEC.build(**params), name="lut")


# RTL under cocotb/Verilator ---------------------------------------------------------------

CASES = {
    "default": ({}, 3000),
    "odd_sizes": ({"n": 13, "x_width": 5, "n_t": 6, "n_c": 5, "y_dim": 3, "w_width": 9,
                   "banks": 3, "y_width": 14}, 3000),
    "one_bank_wide": ({"n": 32, "x_width": 8, "n_t": 4, "n_c": 6, "y_dim": 16, "w_width": 4,
                       "banks": 1, "table_seed": 5}, 1500),
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


def test_full_throughput_cycles():
    """Without gaps a vector leaves every K = n_t/banks cycles."""
    params = SPEC.params({})
    s = simulate(SPEC, params, steps=40, seed=7, gaps=False, progress=lambda m: None)
    cycles = s["_result"].cycles["o"]
    assert s["bit_exact"]
    K = params["n_t"] // params["banks"]
    assert all(b - a == K for a, b in zip(cycles[:-1], cycles[1:]))


def test_cli_sim_and_bad_param(tmp_path, capsys):
    out = tmp_path / "ok"
    with warnings.catch_warnings():
        # The CLI builds the core once only to validate the parameters.
        warnings.simplefilter("ignore", UnusedElaboratable)
        assert main(["sim", "lut", "--steps", "300", "--seed", "1", "--out", str(out)]) == 0
        gc.collect()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["bit_exact"] is True and summary["mismatches"] == 0
    capsys.readouterr()
    assert main(["sim", "lut", "--param", "banks=3"]) == 2
    assert capsys.readouterr().err.startswith(
        "spikeforge: error: LUT parameter 'banks' must divide n_t=8, not 3")
