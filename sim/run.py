"""`spikeforge sim`: random stimulus -> golden model and RTL -> two traces -> exact comparison."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from spikeforge.cores import CoreSpec

from .harness import run_rtl
from .payload import Codec
from .trace import atomic_path

__all__ = ["simulate", "write_json_atomic"]


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON so that a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as (_, f):
        f.write((json.dumps(obj, indent=2) + "\n").encode())


def _jsonable(params: dict) -> dict:
    out = {}
    for k, v in params.items():
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, (np.integer,)):
            v = int(v)
        out[k] = v
    return out


def simulate(spec: CoreSpec, params: dict, *, steps: int, seed: int, out_dir=None,
             waves: bool = False, gaps: bool = True, progress=print, core=None) -> dict:
    """Run ``spec`` with resolved ``params`` on ``steps`` random steps; return the summary.

    With ``out_dir``, writes ``golden.npz``, ``rtl.npz`` (traces) and ``summary.json`` there
    (and ``waves.fst`` with ``waves``). ``core`` is the already built component, if any.
    """
    from .compare import compare_traces
    from .trace import Trace, save_trace

    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, not {steps!r}")
    rng = np.random.default_rng(seed)
    stimulus = spec.stimulus(params, steps, rng)

    t0 = time.perf_counter()
    expected = spec.golden(params, stimulus)
    golden_seconds = time.perf_counter() - t0

    core = spec.build(**params) if core is None else core
    # A multi-cycle core states its worst case per input beat; the harness default allows 20.
    max_cycles, per_beat = None, getattr(core, "max_cycles_per_beat", None)
    if per_beat:
        n_in = sum(len(v) for phase in (stimulus if isinstance(stimulus, list) else [stimulus])
                   for v in phase.values())
        max_cycles = (20 + per_beat) * n_in + 20 * sum(map(len, expected.values())) + 10000
    result = run_rtl(core, stimulus, {k: len(v) for k, v in expected.items()}, seed=seed,
                     waves=waves, out_dir=out_dir, gaps=gaps, progress=progress,
                     max_cycles=max_cycles)

    # Beat-level equality: every payload bit of every output beat, and the beat counts.
    beat_mismatches, beats_expected, beats_got = 0, 0, 0
    for name, beats in expected.items():
        _, shape = next((n, s) for n, s in _out_shapes(core) if n == name)
        codec = Codec(shape)
        want = [codec.pack(b) for b in beats]
        got = result.raw[name]
        beats_expected += len(want)
        beats_got += len(got)
        n = min(len(want), len(got))
        beat_mismatches += sum(1 for a, b in zip(want[:n], got[:n]) if a != b) + abs(len(want) - len(got))

    dense_g, kind = spec.to_dense(params, expected)
    dense_r, _ = spec.to_dense(params, result.outputs)
    meta = dict(core=spec.name, params=_jsonable(params), seed=seed, unit=spec.step_unit, value_kind=kind)
    golden_trace = Trace.from_dense(dense_g, source="golden", **meta)
    rtl_trace = Trace.from_dense(dense_r, source="rtl", **meta)
    cmp = compare_traces(golden_trace, rtl_trace)

    first = None
    if cmp.first is not None:
        s, i, e, g = cmp.first
        first = {"step": int(s), "index": int(i), "expected": int(e), "got": int(g)}
    out_cycles = max((c[-1] for c in result.cycles.values() if c), default=0)
    summary = {
        "core": spec.name,
        "params": _jsonable(params),
        "seed": seed,
        "steps": steps,
        "unit": spec.step_unit,
        "events": int(len(golden_trace.events)),
        "grid_cells": int(dense_g.size),
        "rtl_events": int(len(rtl_trace.events)),
        "mismatches": int(cmp.mismatches),
        "first_divergence": first,
        "beats_expected": beats_expected,
        "beats_got": beats_got,
        "beat_mismatches": beat_mismatches,
        "timed_out": result.timed_out,
        "bit_exact": bool(cmp.equal and beat_mismatches == 0 and not result.timed_out),
        "cycles": out_cycles,
        "gaps": gaps,
        "golden_seconds": round(golden_seconds, 4),
        "rtl_seconds": round(result.wall_seconds, 3),
        "rtl_cycles_per_second": round(result.total_cycles / result.wall_seconds, 1) if result.wall_seconds else None,
        "build_seconds": round(result.build_seconds, 2),
        "notes": list(cmp.notes),
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        save_trace(golden_trace, out_dir / "golden.npz")
        save_trace(rtl_trace, out_dir / "rtl.npz")
        if result.waves is not None:
            summary["waves"] = str(result.waves.name)
        write_json_atomic(out_dir / "summary.json", summary)
    summary["_result"] = result
    return summary


def _out_shapes(core):
    from .harness import stream_ports
    return stream_ports(core)[1]
