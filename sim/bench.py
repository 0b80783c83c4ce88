"""The generic cocotb stream bench, run inside the simulator by :func:`spikeforge.sim.harness.run_rtl`.

It reads a job file (``$SPIKEFORGE_JOB``): payload ints per input stream, in phases, and the
number of beats expected per output stream. A phase starts only once every input beat of the
phase before has been accepted (e.g. weight writes, then data). One coroutine does all the work,
one ``FallingEdge`` per cycle: it reads the registered ``*_fire`` flags of :class:`~spikeforge.sim.harness.HarnessTop` to learn
which transfers happened on the last rising edge, then drives the next valid/payload/ready.

Valid gaps and ready backpressure are seeded and come in phases of random length, each phase
with its own probability (1.0, 0.9, 0.5 or 0.1), so both sustained throughput and long stalls
are exercised. Once asserted, a valid is held with its payload until the transfer happens.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge

_PHASE_P = np.array([1.0, 0.9, 0.5, 0.1])


class _Pattern:
    """Seeded on/off pattern in phases; ``always=True`` gives a constant 1."""

    def __init__(self, rng, always):
        self.rng, self.always = rng, always
        self.buf, self.pos = np.ones(0, dtype=bool), 0

    def next(self):
        if self.always:
            return True
        if self.pos >= len(self.buf):
            lengths = self.rng.integers(1, 200, size=16)
            probs = self.rng.choice(_PHASE_P, size=16, p=[0.4, 0.2, 0.25, 0.15])
            self.buf = np.concatenate([self.rng.random(n) < p for n, p in zip(lengths, probs)])
            self.pos = 0
        self.pos += 1
        return bool(self.buf[self.pos - 1])


@cocotb.test()
async def run_streams(dut):
    with open(os.environ["SPIKEFORGE_JOB"]) as f:
        job = json.load(f)
    rng = np.random.default_rng(job["seed"])
    steady = not job["gaps"]
    phases = job["phases"]
    ins = []
    for name in phases[0]:
        ins.append({"beats": phases[0][name], "idx": 0, "driven": False,
                    "payload": getattr(dut, f"{name}_payload"), "valid": getattr(dut, f"{name}_valid"),
                    "fire": getattr(dut, f"{name}_fire"), "pat": _Pattern(rng, steady),
                    "cycles": [], "name": name})
    outs = []
    for name, count in job["expected"].items():
        outs.append({"expected": count, "got": [], "cycles": [], "name": name,
                     "ready": getattr(dut, f"{name}_ready"), "fire": getattr(dut, f"{name}_fire"),
                     "data": getattr(dut, f"{name}_data"), "pat": _Pattern(rng, steady)})

    for s in ins:
        s["valid"].value = 0
        s["payload"].value = 0
    for o in outs:
        o["ready"].value = 0
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for _ in range(4):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    max_cycles = job["max_cycles"]
    phase = 0
    drain = None
    timed_out = False
    cycle = 0
    while True:
        await FallingEdge(dut.clk)
        cycle += 1
        # Transfers that happened on the rising edge just past.
        for s in ins:
            if s["driven"] and s["fire"].value:
                s["cycles"].append(cycle - 1)
                s["idx"] += 1
                s["driven"] = False
        for o in outs:
            if o["fire"].value:
                o["got"].append(int(o["data"].value))
                o["cycles"].append(cycle - 1)
        # Drive the next cycle.
        for s in ins:
            if not s["driven"]:
                if s["idx"] < len(s["beats"]) and s["pat"].next():
                    s["payload"].value = s["beats"][s["idx"]]
                    s["valid"].value = 1
                    s["driven"] = True
                else:
                    s["valid"].value = 0
        all_in = all(s["idx"] >= len(s["beats"]) and not s["driven"] for s in ins)
        if all_in and phase + 1 < len(phases):
            # Every beat of this phase was accepted: the next phase starts on the next cycle.
            phase += 1
            for s in ins:
                s["beats"], s["idx"] = phases[phase][s["name"]], 0
            all_in = False
        all_out = all(len(o["got"]) >= o["expected"] for o in outs)
        if drain is None and all_in and all_out:
            drain = 64          # keep going a little: extra output beats must be seen too
        for o in outs:
            o["ready"].value = 1 if drain is not None else int(o["pat"].next())
        if drain is not None:
            drain -= 1
            if drain <= 0:
                break
        if cycle >= max_cycles:
            timed_out = True
            break

    with open(job["result"], "w") as f:
        json.dump({"outputs": {o["name"]: o["got"] for o in outs},
                   "cycles": {o["name"]: o["cycles"] for o in outs},
                   "input_cycles": {s["name"]: s["cycles"] for s in ins},
                   "total_cycles": cycle, "timed_out": timed_out}, f)
