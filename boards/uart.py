"""Bridged designs on a board: oscillator -> PLL -> ``sync``; the board's UART -> a UARTBridge.

This is the bitstream ``spikeforge run --port`` talks to (``docs/bridge.md``), where
:func:`~spikeforge.boards.build.build_design` builds the benchmarking top. The board wrapper
holds no logic: the PLL, two pin buffers and an LED that shows the PLL has locked.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

from amaranth.build.dsl import DiffPairs, Pins
from amaranth.hdl import ClockDomain, Elaboratable, Module
from amaranth.lib import io

from .build import BuildError, NAME, NEXTPNR_REPORT, YOSYS_AFTER_READ, nextpnr_options, tool_env
from .pll import ECP5PLL, pll_params
from .targets import check_speed, get_target

__all__ = ["UARTBoardTop", "build_bridged", "prepare_bridged"]

#: Default core clock of a bridged design: 3 Mbaud is exactly 25 clock cycles per bit.
DEFAULT_MHZ = 75.0
#: The PLL may miss the requested clock by this much; the UART divisor follows the real one.
PLL_TOLERANCE = 0.05
_TOOLS = {"yosys": "synthesis", "nextpnr-ecp5": "pnr", "ecppack": "pack"}


def _resource(platform_class, name, number=0):
    return next((r for r in platform_class.resources
                 if r.name == name and r.number == number), None)


def _pins(io) -> set:
    """Physical pin names of a resource, subsignal, ``Pins`` or ``DiffPairs``."""
    if isinstance(io, Pins):
        return set(io.names)
    if isinstance(io, DiffPairs):
        return set(io.p.names) | set(io.n.names)
    return set().union(*(_pins(sub) for sub in io.ios))


class UARTBoardTop(Elaboratable):
    """``bridge`` (a :class:`~spikeforge.rtl.bridge.Bridge`) on ``target``'s UART at ``baud``.

    The PLL makes ``sync`` within 5% of ``f_out_mhz`` (some oscillators cannot make every
    frequency); the UART divisor is chosen for the frequency the PLL actually makes
    (:func:`~spikeforge.rtl.uart.uart_divisor` refuses a baud rate more than 2% off). The
    board's LED lights once the PLL has locked, unless it shares a pin with the UART (the
    Colorlight 5A-75B's does).
    """

    def __init__(self, bridge, target, f_out_mhz, *, baud=3_000_000, global_reset=False):
        from spikeforge.rtl.bridge import UARTBridge
        from spikeforge.rtl.uart import uart_divisor
        try:
            self.target = get_target(target)
            uart = _resource(self.target.platform_class, "uart")
            if uart is None:
                raise ValueError(f"board {self.target.name!r} has no UART resource for the "
                                 f"bridge")
            params = pll_params(self.target.clock_mhz, f_out_mhz, tolerance=PLL_TOLERANCE)
            self.divisor = uart_divisor(params.f_out_mhz * 1e6, baud)
            led = _resource(self.target.platform_class, *self.target.led[:2])
            self.has_led = led is not None and not (_pins(led) & _pins(uart))
        except (TypeError, ValueError):
            self._MustUse__silence = True       # never elaborated: no "unused" warning
            raise
        self.baud = baud
        self.uart = UARTBridge(bridge, divisor=self.divisor)
        self.pll = ECP5PLL(self.target.clock_mhz, f_out_mhz, tolerance=PLL_TOLERANCE,
                           global_reset=global_reset)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain()
        clk_port = platform.request(self.target.clock_name, 0, dir="-")
        m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_port)
        m.submodules.pll = self.pll
        m.d.comb += self.pll.clk_in.eq(clk_buf.i)

        pins = platform.request("uart", 0, dir="-")
        m.submodules.rx_buf = rx_buf = io.Buffer("i", pins.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", pins.tx)
        m.submodules.uart = self.uart
        m.d.comb += [self.uart.rx.eq(rx_buf.i), tx_buf.o.eq(self.uart.tx)]

        if not self.has_led:
            return m
        resource, number, *sub = self.target.led
        led = platform.request(resource, number, dir="-")
        for name in sub:
            led = getattr(led, name)
        m.submodules.led_buf = led_buf = io.Buffer("o", led[0])
        m.d.comb += led_buf.o.eq(self.pll.locked)
        return m


def prepare_bridged(bridge, *, board, baud=3_000_000, target_mhz=None, speed=None,
                    nextpnr_opts=(), global_reset=False):
    """Elaborate ``bridge`` for ``board`` without running a tool: ``(BuildPlan, UARTBoardTop)``.
    ``global_reset``: the reset on a global network (:class:`ECP5PLL`)."""
    target = get_target(board)
    grade = target.speed if speed is None else check_speed(speed, target.device)
    top = UARTBoardTop(bridge, target, DEFAULT_MHZ if target_mhz is None else target_mhz,
                       baud=baud, global_reset=global_reset)
    kwargs = {"script_after_read": YOSYS_AFTER_READ}
    if nextpnr_opts:
        kwargs["nextpnr_opts"] = list(nextpnr_opts)
    return target.platform(speed=grade).prepare(top, name=NAME, **kwargs), top


def build_bridged(bridge, *, board, out_dir, baud=3_000_000, target_mhz=None, seed=0,
                  router=None, global_reset=False, progress=print) -> dict:
    """Bitstream of ``bridge`` on ``board``'s UART; writes and returns ``OUT/report.json``.

    The report has ``board``, ``design``, ``baud``, ``divisor``, ``clock_mhz``, ``resources``
    (LUT4, FF, EBR, DSP), ``fmax_mhz``, ``timing_met`` and ``bitstream``. ``router`` and
    ``global_reset`` are as for :func:`~spikeforge.boards.build.build_design`. Raises
    :class:`~spikeforge.boards.build.BuildError` when a tool fails.
    """
    progress = progress or (lambda line: None)
    start = time.monotonic()
    plan, top = prepare_bridged(bridge, board=board, baud=baud, target_mhz=target_mhz,
                                nextpnr_opts=nextpnr_options(seed, router),
                                global_reset=global_reset)
    out = Path(out_dir)
    build_dir = out / "build"
    if build_dir.exists():
        shutil.rmtree(build_dir)
    plan.extract(str(build_dir))
    env = tool_env()
    commands = json.loads((build_dir / f"build_{NAME}.json").read_text())["commands"]
    for argv in commands:
        stem = _TOOLS.get(argv[0])
        if stem is None:
            continue            # board programming helpers (e.g. dfu-suffix)
        exe = shutil.which(env.get(argv[0].upper().replace("-", "_"), argv[0]),
                           path=env["PATH"])
        if exe is None:
            raise BuildError(f"{stem}: tool {argv[0]!r} not found on PATH")
        progress(f"[{bridge.design} @ {top.target.name}] {stem} ...")
        log = build_dir / f"{stem}.log"
        with open(log, "wb") as f:
            rc = subprocess.call([exe, *argv[1:]], cwd=build_dir, env=env, stdout=f,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if rc:
            raise BuildError(f"{stem} failed with status {rc}; log: {log}")
    pnr = json.loads((build_dir / NEXTPNR_REPORT).read_text())
    used = {cell: int(v.get("used", 0)) for cell, v in pnr.get("utilization", {}).items()}
    # TRELLIS_COMB over-counts LUT4s (pass-through cells); nextpnr's log line is exact.
    tim = build_dir / f"{NAME}.tim"
    lut4 = re.findall(r"Total LUT4s:\s*(\d+)\s*/", tim.read_text(errors="replace")) \
        if tim.exists() else []
    f_out = top.pll.f_out_mhz
    # The core clock is the net constrained to the PLL output ("sync", as in build_design; with
    # the reset on a global network Yosys may name that net after a reset-synchroniser pin).
    fmax = {("sync" if abs(float(e.get("constraint", 0)) - f_out) <= 0.005 * f_out
             else net.removeprefix("$glbnet$")): round(float(e["achieved"]), 2)
            for net, e in pnr.get("fmax", {}).items()}
    core = [v for net, v in pnr.get("fmax", {}).items()
            if abs(float(v.get("constraint", 0)) - f_out) <= 0.005 * f_out]
    report = {
        "board": top.target.name, "design": bridge.design, "params": bridge.params,
        "design_id": f"{bridge.design_id:08x}", "baud": baud, "divisor": top.divisor,
        "clock_mhz": round(f_out, 4), "router": router or "router1",
        "global_reset": global_reset,
        "resources": {"LUT4": int(lut4[-1]) if lut4 else used.get("TRELLIS_COMB", 0),
                      "FF": used.get("TRELLIS_FF", 0),
                      "EBR": used.get("DP16KD", 0), "DSP": used.get("MULT18X18D", 0)},
        "fmax_mhz": fmax,
        "timing_met": bool(core) and float(core[0]["achieved"]) >= f_out,
        "bitstream": f"build/{NAME}.bit",
        "seconds": round(time.monotonic() - start, 2),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report
