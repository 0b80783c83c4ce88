"""LUT edge cases that mutation testing (``python -m spikeforge.sim.mutate lut``) showed the
other tests did not pin: the table range of an image at both ends, the block-RAM column
layout of deep memories, a memory of several columns storing whole rows, and the table check
naming the first bad value."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from spikeforge.golden.lut import random_anchors, save_lut_image
from spikeforge.rtl.lut import RowMemory, check_tables, ebr_columns


@pytest.mark.parametrize("value, ok", [(31, True), (-32, True), (32, False), (-33, False)])
def test_image_table_range(tmp_path, value, ok):
    anchors = random_anchors(8, 2, 2, np.random.default_rng(1))
    tables = np.zeros((2, 4, 1), np.int64)
    tables[1, 2, 0] = value
    if ok:
        save_lut_image(tmp_path / "l.npz", anchors=anchors, tables=tables, n=8, w_width=6)
    else:
        with pytest.raises(ValueError, match=r"tables"):
            save_lut_image(tmp_path / "l.npz", anchors=anchors, tables=tables, n=8, w_width=6)


@pytest.mark.parametrize("width, depth, cols", [
    (40, 512, [40]), (36, 1024, [18, 18]), (18, 2048, [9, 9]), (8, 4096, [4, 4]),
    (4, 8192, [2, 2]), (3, 16384, [1, 1, 1]), (20, 1000, [18, 2]),
    (36, 513, [18, 18]),  # one row past 512 already splits
])
def test_ebr_columns_as_documented(width, depth, cols):
    assert ebr_columns(width, depth) == cols


def test_row_memory_of_two_columns():
    """36 bits x 1024 rows: two 18-bit columns; a row written is read back whole."""
    m = Module()
    mem = RowMemory(m, "mem", width=36, depth=1024)
    addr, data, we, re = Signal(10), Signal(36), Signal(), Signal()
    mem.write(m, addr, data, we)
    rd = mem.read(m, addr, re)
    got = []

    async def bench(ctx):
        for row, value in ((5, 0x9_8765_4321), (700, 0x1_2345_6789)):
            ctx.set(addr, row)
            ctx.set(data, value)
            ctx.set(we, 1)
            await ctx.tick()
            ctx.set(we, 0)
        for row in (5, 700):
            ctx.set(addr, row)
            ctx.set(re, 1)
            await ctx.tick()
            ctx.set(re, 0)
            await ctx.tick()
            got.append(ctx.get(rd))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(mem.cols) == 2
    assert got == [0x9_8765_4321, 0x1_2345_6789]


def test_table_error_names_the_first_bad_value():
    """Of several out-of-range values, the message names the first in row-major order."""
    with pytest.raises(ValueError, match=r"^LUT tables value 40 at \(0, 1\) is outside "
                                         r"-32\.\.31 \(6-bit signed\)$"):
        check_tables("LUT", "tables", [[0, 40, 5], [-40, 0, 99]], (2, 3), 6)
