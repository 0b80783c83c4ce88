"""The ``spikeforge`` command line. Exit status: 0 success, 1 mismatch/failed check, 2 bad input."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from spikeforge.cores import ParamError, all_cores, get_core, parse_param_value


class UsageError(Exception):
    """Bad user input: printed as one line, exit status 2."""


def _params(spec, pairs, base=None):
    """``base`` (default: the spec's defaults) overridden by ``--param K=V`` pairs, resolved."""
    overrides = dict(base or {})
    for pair in pairs or ():
        if "=" not in pair:
            raise UsageError(f"--param expects K=V, not {pair!r}")
        key, value = pair.split("=", 1)
        overrides[key.strip()] = parse_param_value(value)
    try:
        return spec.params(overrides)
    except (ParamError, ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None


def _build_core(spec, params):
    try:
        return spec.build(**params)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from None


def cmd_cores(args):
    for name, spec in all_cores().items():
        print(f"{name:<16} {spec.summary}")
    return 0


def cmd_verilog(args):
    from amaranth.back import verilog
    spec = get_core(args.core)
    params = _params(spec, args.param)
    core = _build_core(spec, params)
    text = verilog.convert(core, name=args.name or spec.name)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_text(text)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"wrote {out} ({len(text.splitlines())} lines)")
    return 0


def _print_summary(s):
    status = "bit-exact" if s["bit_exact"] else "MISMATCH"
    print(f"{s['core']}: {status}: {s['steps']} {s['unit']}s, {s['events']} golden events, "
          f"{s['beats_got']}/{s['beats_expected']} beats, {s['mismatches']} mismatching events, "
          f"{s['beat_mismatches']} mismatching beats, {s['cycles']} cycles "
          f"({s['rtl_cycles_per_second']:.0f} cycles/s under cocotb)")
    if s["first_divergence"]:
        d = s["first_divergence"]
        print(f"  first divergence at {s['unit']} {d['step']}, index {d['index']}: "
              f"expected {d['expected']}, got {d['got']}")
    if s["timed_out"]:
        print("  the RTL did not produce every expected beat before the cycle limit")
    for note in s["notes"]:
        print(f"  note: {note}")


def cmd_sim(args):
    from spikeforge.sim.run import simulate
    spec = get_core(args.core)
    params = _params(spec, args.param)
    steps = args.steps if args.steps is not None else spec.demo_steps
    if steps < 1:
        raise UsageError(f"--steps must be positive, not {steps}")
    core = _build_core(spec, params)   # validate before any long work
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)   # so is --out
    s = simulate(spec, params, steps=steps, seed=args.seed, out_dir=args.out, waves=args.waves,
                 gaps=not args.no_gaps, progress=lambda m: print(m, flush=True), core=core)
    _print_summary(s)
    if args.out:
        print(f"traces and summary.json in {args.out}")
    return 0 if s["bit_exact"] else 1


def _load(path):
    from spikeforge.sim.trace import TraceError, load_trace
    try:
        return load_trace(path)
    except TraceError as exc:
        raise UsageError(str(exc)) from None


def cmd_compare(args):
    from spikeforge.sim.compare import compare_traces, format_result
    a, b = _load(args.a), _load(args.b)
    res = compare_traces(a, b)
    print(format_result(res, args.a, args.b))
    return 0 if res.equal else 1


def cmd_plot(args):
    from spikeforge.sim.plot import plot_raster
    trace = _load(args.trace)
    other = _load(args.vs) if args.vs else None
    plot_raster(trace, args.output, vs=other, max_steps=args.max_steps)
    print(f"wrote {args.output}")
    return 0


def cmd_vcd(args):
    from spikeforge.sim.vcd import export_vcd
    trace = _load(args.trace)
    export_vcd(trace, args.output)
    print(f"wrote {args.output}")
    return 0


def cmd_boards(args):
    from spikeforge.boards.targets import list_boards
    for b in list_boards():
        print(f"{b['name']:<20} {b['device']:<14} {b['package']:<10} speed {b['speed']}  "
              f"{b['clock_mhz']:g} MHz oscillator  {b.get('description', '')}".rstrip())
    return 0


def cmd_build(args):
    from spikeforge.boards.build import BuildError, build_design, check_router
    from spikeforge.boards.targets import get_target
    try:
        target = get_target(args.board)
        check_router(args.router)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    spec = get_core(args.design)
    params = _params(spec, args.param, base=spec.build_defaults)
    core = _build_core(spec, params)
    try:
        report = build_design(core, board=args.board, design=spec.name, params=params,
                              out_dir=args.out, seed=args.seed,
                              target_mhz=(args.target_mhz if args.target_mhz is not None
                                          else spec.build_target_mhz),
                              router=args.router or spec.router_for(target.speed),
                              placer=spec.build_placer,
                              global_reset=spec.build_global_reset,
                              progress=lambda m: print(m, flush=True))
    except BuildError as exc:
        print(f"spikeforge: build failed: {exc}", file=sys.stderr)
        return 1
    r = report["resources"]
    fmax = ", ".join(f"{k} {v:.1f} MHz" for k, v in report["fmax_mhz"].items())
    print(f"{args.board} {spec.name}: LUT4 {r['LUT4']}, FF {r['FF']}, EBR {r['EBR']}, DSP {r['DSP']}; "
          f"Fmax {fmax} (target {report['target_mhz']:g} MHz, timing {'met' if report['timing_met'] else 'NOT met'})")
    print(f"bitstream and report.json in {args.out}")
    return 0


def cmd_program(args):
    import shutil
    import subprocess
    from spikeforge.firmware.cli import program_command
    try:
        cmd = program_command(args.board, args.bitstream, flash=args.flash, cable=args.cable)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not Path(args.bitstream).is_file():
        raise UsageError(f"no bitstream at {args.bitstream}")
    print(" ".join(cmd))
    if shutil.which(cmd[0]) is None:
        print(f"({cmd[0]} is not installed: run the command above where it is)")
        return 0
    return subprocess.call(cmd)


def cmd_demo(args):
    from spikeforge.demo import run_demo
    return run_demo(out=args.out, build=not args.no_build, seed=args.seed)


def _os_path(exc):
    """The user's path behind an OSError: an atomic writer's ``.NAME[.xxxx].tmp`` is NAME."""
    path = Path(str(exc.filename2 or exc.filename or "?"))
    tmp = re.fullmatch(r"\.(.+?)(\.[0-9a-f]+)?\.tmp", path.name)
    return path.with_name(tmp.group(1)) if tmp else path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="spikeforge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("cores", help="list the cores").set_defaults(fn=cmd_cores)

    p = sub.add_parser("verilog", help="emit Verilog for a core")
    p.add_argument("core")
    p.add_argument("--param", action="append", metavar="K=V")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--name", help="Verilog top module name (default: the core name)")
    p.set_defaults(fn=cmd_verilog)

    p = sub.add_parser("sim", help="simulate a core under cocotb/Verilator and compare with its golden model")
    p.add_argument("core")
    p.add_argument("--param", action="append", metavar="K=V")
    p.add_argument("--steps", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--waves", action="store_true", help="also write waves.fst")
    p.add_argument("--no-gaps", action="store_true", help="full throughput: no valid gaps, no backpressure")
    p.add_argument("--out")
    p.set_defaults(fn=cmd_sim)

    p = sub.add_parser("compare", help="compare two traces")
    p.add_argument("a")
    p.add_argument("b")
    p.set_defaults(fn=cmd_compare)

    p = sub.add_parser("plot", help="spike raster of a trace, mismatches marked")
    p.add_argument("trace")
    p.add_argument("--vs")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(fn=cmd_plot)

    p = sub.add_parser("vcd", help="export a trace as VCD (GTKWave, Surfer)")
    p.add_argument("trace")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(fn=cmd_vcd)

    sub.add_parser("boards", help="list board targets").set_defaults(fn=cmd_boards)

    p = sub.add_parser("build", help="bitstream and report.json for a board")
    p.add_argument("--board", default="ulx3s-85f")
    p.add_argument("--design", default="lif")
    p.add_argument("--param", action="append", metavar="K=V")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--target-mhz", type=float, default=None)
    p.add_argument("--router", default=None, metavar="{router1,router2}",
                   help="nextpnr router (default: the design's choice, else nextpnr's router1)")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_build)

    # `run` and `word2spike` have their own parsers; listed here for --help, dispatched below.
    sub.add_parser("run", help="run a core behind the UART bridge (board or simulation)")
    sub.add_parser("word2spike", help="the Word2Spike paper's table on real word embeddings")
    sub.add_parser("formal", help="SymbiYosys proofs of a core's stream and range properties")
    sub.add_parser("lm", help="train, run (golden or RTL) and evaluate the LUT language model")

    p = sub.add_parser("program", help="load a bitstream with openFPGALoader (prints the command)")
    p.add_argument("--board", default="ulx3s-85f")
    p.add_argument("bitstream")
    p.add_argument("--flash", action="store_true", help="write the SPI flash instead of SRAM")
    p.add_argument("--cable", help="openFPGALoader cable for boards without an on-board programmer")
    p.set_defaults(fn=cmd_program)

    p = sub.add_parser("demo", help="every core simulated and compared, the default design built")
    p.add_argument("--out", default="demo-out")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-build", action="store_true", help="skip the bitstream build")
    p.set_defaults(fn=cmd_demo)

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["run"]:
        from spikeforge.firmware.cli import run_main
        return run_main(argv[1:])
    if argv[:1] == ["formal"]:
        from spikeforge.sim.formal import formal_main
        return formal_main(argv[1:])
    if argv[:1] == ["lm"]:
        from spikeforge.lm import main as lm_main
        return lm_main(argv[1:])
    if argv[:1] == ["word2spike"]:
        from spikeforge.word2spike import main as w2s_main
        return w2s_main(argv[1:])
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except (UsageError, ParamError) as exc:
        print(f"spikeforge: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # A path that cannot be read or written (missing folder, a directory, no permission).
        print(f"spikeforge: error: {_os_path(exc)}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
