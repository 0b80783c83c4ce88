# amaranth: UnusedElaboratable=no
"""Bridged designs on boards: the UART top elaborates for every board with a UART, picks the
divisor from the PLL's real frequency, refuses boards without a UART; a real build (slow)."""

import json

import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spikeforge.boards.targets import TARGETS
from spikeforge.boards.uart import UARTBoardTop, build_bridged, prepare_bridged
from spikeforge.rtl.bridge import Bridge, WindowMemory


class _Echo(wiring.Component):
    def __init__(self):
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        wiring.connect(m, wiring.flipped(self.i), wiring.flipped(self.o))
        return m


def _bridge():
    return Bridge(_Echo(), design="echo",
                  memories={"table": WindowMemory(width=12, depth=64, signed=True)})


UART_BOARDS = [name for name, t in TARGETS.items()
               if any(r.name == "uart" for r in t.platform_class.resources)]


def test_uart_boards_are_known():
    assert {"ulx3s-85f", "ecpix5-85f", "colorlight-5a-75b", "icesugar-pro"} <= set(UART_BOARDS)
    assert "orangecrab-r0.2-85f" not in UART_BOARDS


@pytest.mark.parametrize("board", UART_BOARDS)
def test_prepare(board):
    plan, top = prepare_bridged(_bridge(), board=board)
    assert top.divisor == 25 and top.pll.f_out_mhz == pytest.approx(75.0, rel=0.02)
    assert "top.il" in plan.files and "top.lpf" in plan.files
    # the Colorlight's LED pin is its UART's tx: no LED there
    assert top.has_led == (board != "colorlight-5a-75b")


def test_ulx3s_pins_and_divisor():
    plan, top = prepare_bridged(_bridge(), board="ulx3s-85f", baud=115200, target_mhz=50)
    assert top.divisor == 434
    lpf = plan.files["top.lpf"]
    assert '"M1"' in lpf and '"L4"' in lpf          # the FT231X's TXD and RXD


def test_refusals():
    with pytest.raises(ValueError, match=r"^board 'orangecrab-r0\.2-85f' has no UART resource "
                                         r"for the bridge$"):
        prepare_bridged(_bridge(), board="orangecrab-r0.2-85f")
    with pytest.raises(ValueError, match=r"^uart_divisor: 75 MHz / 21 = 3571429 baud is 2\.0% "
                                         r"off 3\.5e\+06 baud"):
        UARTBoardTop(_bridge(), "ulx3s-85f", 75, baud=3_500_000)
    with pytest.raises(ValueError, match=r"^unknown board 'nope'"):
        prepare_bridged(_bridge(), board="nope")


@pytest.mark.slow
def test_build_ulx3s(tmp_path):
    report = build_bridged(_bridge(), board="ulx3s-85f", out_dir=tmp_path, progress=None)
    assert report["timing_met"] and report["divisor"] == 25
    assert report["fmax_mhz"]["sync"] >= 75.0      # the PLL output's net, named as in build_design
    assert report["resources"]["DSP"] == 0
    assert (tmp_path / report["bitstream"]).stat().st_size > 100_000
    assert json.loads((tmp_path / "report.json").read_text()) == report
