"""A generic stream bench in the Amaranth simulator: no Verilog, no build, fast to start.

:func:`run_stream` drives a core's input streams with a stimulus (``{port: [payload, ...]}``
or a list of such dicts, the phases, exactly as :func:`spikeforge.sim.harness.run_rtl` takes
it) under seeded random valid gaps, applies seeded random ready backpressure to every output
stream, and collects the output payloads. It can first run a *prelude* stimulus and assert the
clock domain's reset in the middle of it, to check that a reset returns the core to its initial
state. Payloads are packed and unpacked with :class:`~spikeforge.sim.payload.Codec`, so they are
the same Python values the specs and the cocotb bench use.

It is the bench of the property-based fuzz tests and the reset tests; the cocotb/Verilator
bench remains the reference for long runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import ResetInserter, Signal, Value
from amaranth.sim import Simulator

from .harness import stream_ports
from .payload import Codec

__all__ = ["BenchResult", "Pattern", "golden_mismatches", "run_stream"]


class Pattern:
    """A seeded on/off sequence in runs of random length, each run with its own probability
    (always, mostly, half, rarely), so both sustained rates and long stalls occur.
    ``always=True`` gives a constant 1."""

    PROBS = np.array([1.0, 0.8, 0.5, 0.15])

    def __init__(self, rng, always=False, max_run=24):
        self.rng, self.always, self.max_run = rng, always, max_run
        self.buf, self.pos = np.ones(0, dtype=bool), 0

    def next(self) -> bool:
        if self.always:
            return True
        if self.pos >= len(self.buf):
            lengths = self.rng.integers(1, self.max_run + 1, size=8)
            probs = self.rng.choice(self.PROBS, size=8, p=[0.35, 0.25, 0.25, 0.15])
            self.buf = np.concatenate([self.rng.random(n) < p for n, p in zip(lengths, probs)])
            self.pos = 0
        self.pos += 1
        return bool(self.buf[self.pos - 1])


@dataclass
class BenchResult:
    """Output payloads per stream (decoded and raw) after the last reset, the cycle of each
    transfer (counted from the end of that reset), and whether the run hit ``max_cycles``."""
    outputs: dict
    raw: dict
    cycles: dict
    input_cycles: dict
    total_cycles: int
    timed_out: bool
    codecs: dict


def _phases(core_inputs, stimulus):
    phases = stimulus if isinstance(stimulus, list) else [stimulus]
    names = {name for name, _ in core_inputs}
    for phase in phases:
        if not set(phase) <= names:
            raise ValueError(f"stimulus streams {sorted(phase)} are not all inputs of the core "
                             f"{sorted(names)}")
    return phases


def run_stream(core, stimulus, expected_counts, *, seed=0, gaps=True, max_cycles=None,
               drain=16, prelude=None, prelude_cycles=0, reset_cycles=2) -> BenchResult:
    """Simulate ``core`` on ``stimulus``; return what left its output streams.

    The run ends once every input beat was accepted and ``expected_counts[name]`` beats left
    every output, plus ``drain`` cycles with ready high so that extra beats are seen too; or at
    ``max_cycles`` (default ``40 * beats + 2000``). ``gaps=False`` keeps every valid and ready
    high. Once a valid is raised it is held, with its payload, until the transfer.

    With ``prelude`` (a stimulus like ``stimulus``), that stimulus is driven first for
    ``prelude_cycles`` cycles under the same random gaps and backpressure — stopping wherever
    it happens to be — then the domain's reset is held for ``reset_cycles`` cycles (valids
    low), and only then ``stimulus`` starts. Outputs of the prelude are discarded.
    ``reset_cycles=0`` leaves the reset out (a control: the stream just changes).
    """
    ins, outs = stream_ports(core)
    phases = _phases(ins, stimulus)
    pre_phases = _phases(ins, prelude) if prelude is not None else None
    codecs = {name: Codec(shape) for name, shape in ins + outs}
    packed = [{n: [codecs[n].pack(v) for v in ph.get(n, ())] for n, _ in ins} for ph in phases]
    pre_packed = None if pre_phases is None else \
        [{n: [codecs[n].pack(v) for v in ph.get(n, ())] for n, _ in ins} for ph in pre_phases]
    n_beats = sum(len(v) for ph in packed for v in ph.values()) + sum(expected_counts.values())
    if max_cycles is None:
        max_cycles = 40 * n_beats + 2000
    rng = np.random.default_rng(seed)

    rst = Signal(name="bench_rst")
    top = ResetInserter(rst)(core)
    in_ports = {name: getattr(core, name) for name, _ in ins}
    out_ports = {name: getattr(core, name) for name, _ in outs}
    result = {}

    async def testbench(ctx):
        in_pat = {n: Pattern(rng, not gaps) for n in in_ports}
        out_pat = {n: Pattern(rng, not gaps) for n in out_ports}

        async def drive(plan, cycles_limit, record):
            """Drive ``plan`` (packed phases); returns (outputs, cycles, input cycles, cycle,
            timed_out). Stops after ``cycles_limit`` cycles when not ``record``."""
            phase, idx = 0, {n: 0 for n in in_ports}
            raised = {n: False for n in in_ports}
            got = {n: [] for n in out_ports}
            got_cycles = {n: [] for n in out_ports}
            in_cycles = {n: [] for n in in_ports}
            left = None
            cycle = 0
            while True:
                beats = plan[phase]
                for n, port in in_ports.items():
                    if not raised[n] and idx[n] < len(beats[n]) and in_pat[n].next():
                        ctx.set(Value.cast(port.payload), beats[n][idx[n]])
                        raised[n] = True
                    ctx.set(port.valid, raised[n])
                ready = {}
                for n, port in out_ports.items():
                    ready[n] = left is not None or out_pat[n].next()
                    ctx.set(port.ready, ready[n])
                # Handshakes of this cycle, from the settled combinational values.
                for n, port in in_ports.items():
                    if raised[n] and ctx.get(port.ready):
                        raised[n] = False
                        idx[n] += 1
                        in_cycles[n].append(cycle)
                for n, port in out_ports.items():
                    if ready[n] and ctx.get(port.valid):
                        got[n].append(ctx.get(Value.cast(port.payload)))
                        got_cycles[n].append(cycle)
                await ctx.tick()
                cycle += 1
                if not record:
                    if cycle >= cycles_limit:
                        return None
                    continue
                done_in = all(idx[n] >= len(beats[n]) for n in in_ports)
                if done_in and phase + 1 < len(plan):
                    phase += 1
                    idx = {n: 0 for n in in_ports}
                    continue
                if left is None and done_in and all(
                        len(got[n]) >= expected_counts.get(n, 0) for n in out_ports):
                    left = drain
                if left is not None:
                    left -= 1
                    if left <= 0:
                        return got, got_cycles, in_cycles, cycle, False
                if cycle >= cycles_limit:
                    return got, got_cycles, in_cycles, cycle, True

        if pre_packed is not None:
            await drive(pre_packed, prelude_cycles, record=False)
            for port in in_ports.values():
                ctx.set(port.valid, 0)
            if reset_cycles:
                ctx.set(rst, 1)
                await ctx.tick().repeat(reset_cycles)
                ctx.set(rst, 0)
        result["run"] = await drive(packed, max_cycles, record=True)

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    got, got_cycles, in_cycles, cycle, timed_out = result["run"]
    return BenchResult(
        outputs={n: [codecs[n].unpack(r) for r in got[n]] for n in out_ports},
        raw=got, cycles=got_cycles, input_cycles=in_cycles, total_cycles=cycle,
        timed_out=timed_out, codecs={n: codecs[n] for n in out_ports})


def golden_mismatches(spec, params, stimulus, result, *, limit=5) -> list[str]:
    """Compare ``result`` with ``spec.golden(params, stimulus)`` beat by beat, every payload
    bit. Returns up to ``limit`` one-line descriptions of differences (empty: identical)."""
    expected = spec.golden(params, stimulus)
    problems = []
    for name, beats in expected.items():
        got = result.raw.get(name)
        if got is None:
            problems.append(f"{name}: no such output stream")
            continue
        codec = result.codecs[name]
        if len(got) != len(beats):
            problems.append(f"{name}: {len(got)} beats, expected {len(beats)}")
        for k, (want, have) in enumerate(zip(beats, got)):
            if codec.pack(want) != have and len(problems) < limit:
                problems.append(f"{name} beat {k}: expected {want}, got {codec.unpack(have)}")
    if result.timed_out:
        problems.append(f"timed out after {result.total_cycles} cycles")
    return problems[:limit]
