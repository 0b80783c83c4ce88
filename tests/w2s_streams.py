"""Amaranth-simulator stream driver shared by the Word2Spike unit tests (absmean, poisson,
ratedecode, w2s_chain): random valid gaps on the input, random ready on the output."""

import numpy as np
from amaranth.hdl import Value
from amaranth.sim import Simulator

from spikeforge.sim.payload import Codec


def run_stream(dut, beats, n_out, *, seed, gap=0.3, stall=0.3, tail=40):
    """Send ``beats`` (payload dicts) into ``dut.i``; collect ``dut.o`` beats.

    Returns ``(outputs, in_cycles, out_cycles)``: the output payloads as dicts and the cycle of
    every input and output transfer. Runs until ``n_out`` outputs arrived and the inputs are
    done, then ``tail`` cycles more with ready high, so extra output beats show up too.
    """
    rng = np.random.default_rng(seed)
    cin = Codec(dut.i.payload.shape())
    cout = Codec(dut.o.payload.shape())
    packed = [cin.pack(b) for b in beats]
    out, in_cycles, out_cycles = [], [], []
    state = {"cycle": 0, "inputs_done": not beats}

    async def producer(ctx):
        cycle = 0                               # cycles are counted from 0 by both benches
        for word in packed:
            while rng.random() < gap:
                await ctx.tick()
                cycle += 1
            ctx.set(Value.cast(dut.i.payload), word)
            ctx.set(dut.i.valid, 1)
            while True:
                _, _, ready = await ctx.tick().sample(dut.i.ready)
                cycle += 1
                if ready:
                    break
            in_cycles.append(cycle - 1)
            ctx.set(dut.i.valid, 0)
        state["inputs_done"] = True

    async def consumer(ctx):
        extra = None
        while extra is None or extra > 0:
            ready = 1 if extra is not None else int(rng.random() >= stall)
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid,
                                                            Value.cast(dut.o.payload))
            state["cycle"] += 1
            if valid and ready:
                out.append(cout.unpack(payload))
                out_cycles.append(state["cycle"] - 1)
            if extra is None and len(out) >= n_out and state["inputs_done"]:
                extra = tail
            elif extra is not None:
                extra -= 1
            if state["cycle"] > 200_000:
                raise AssertionError("stream simulation did not finish")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return out, in_cycles, out_cycles


def vector_beats(values, lengths, p, field, *, first=True):
    """Beats of vectors ``values`` (V, D) of lengths ``lengths``; ``first`` flags set or not."""
    beats = []
    for row, d in zip(np.asarray(values), lengths):
        G = -(-int(d) // p)
        padded = np.zeros(G * p, dtype=np.int64)
        padded[:d] = row[:d]
        for g in range(G):
            beats.append({field: padded[g * p:(g + 1) * p].tolist(),
                          "empty": (G * p - int(d)) if g == G - 1 else 0,
                          "first": int(first and g == 0), "last": int(g == G - 1)})
    return beats
