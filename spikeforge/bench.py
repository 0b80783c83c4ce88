"""Benchmarks: resources and Fmax on LFE5U-85F (speed grades 6 and 8), cycles per unit of work
measured under cocotb at full throughput, golden-model and RTL-simulation speed.

``python -m spikeforge.bench [--only CORE ...] [--no-build] [--no-sim] [--no-golden] [--grades 6,8]``
(``make bench``).
Results accumulate in ``benchmarks/results.json`` (one entry per core, parameter set and
measurement, replaced when re-measured) and ``docs/benchmarks.md`` is regenerated from it.
Every number in the docs comes from this file; nothing is typed in by hand.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import platform as pyplatform
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from spikeforge.cores import all_cores

RESULTS = Path("benchmarks/results.json")
DOC = Path("docs/benchmarks.md")
DEVICE_BOARD = "ulx3s-85f"          # LFE5U-85F; the grade-8 rows rebuild it at speed 8


def _key(entry):
    return json.dumps([entry["core"], entry["kind"], entry["params"], entry.get("grade")], sort_keys=True)


def load_results(path=RESULTS) -> list:
    if not Path(path).exists():
        return []
    return json.loads(Path(path).read_text())["results"]


def save_results(results, path=RESULTS):
    from spikeforge.sim.run import write_json_atomic
    results = sorted(results, key=_key)
    write_json_atomic(Path(path), {"machine": {"python": sys.version.split()[0],
                                               "platform": pyplatform.platform(), "cpus": _cpus()},
                                   "results": results})


def _cpus():
    import os
    return os.cpu_count()


@contextmanager
def _locked(path=RESULTS):
    """Serialise read-modify-write of the results file between concurrent bench runs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _record(results, entry):
    # Re-read under the lock so that entries another run wrote meanwhile are kept.
    k = _key(entry)
    with _locked():
        results[:] = [r for r in load_results() if _key(r) != k] + [entry]
        save_results(results)


def bench_build(spec, overrides, grade, results, out_root):
    from spikeforge.boards.build import BuildError, build_design
    params = spec.params(overrides)
    shown = {k: v for k, v in overrides.items()}
    tag = "-".join(f"{k}{v}" for k, v in sorted(shown.items())) or "default"
    out = Path(out_root) / f"{spec.name}-{tag}-g{grade}"
    entry = {"core": spec.name, "kind": "build", "params": shown, "grade": grade}
    router = spec.router_for(grade)
    if router:
        entry["router"] = router
    if spec.build_placer:
        entry["placer"] = dict(spec.build_placer)
    if spec.build_global_reset:
        entry["global_reset"] = True
    t0 = time.monotonic()
    try:
        rep = build_design(spec.build(**params), board=DEVICE_BOARD, design=spec.name, params=params,
                           out_dir=out, seed=1, speed=str(grade), target_mhz=spec.build_target_mhz,
                           router=router, placer=spec.build_placer,
                           global_reset=spec.build_global_reset,
                           progress=lambda m: print(f"    {m}", flush=True))
        entry.update(resources=rep["resources"], fmax_mhz=rep["fmax_mhz"], target_mhz=rep["target_mhz"],
                     timing_met=rep["timing_met"], device=rep["device"])
    except BuildError as exc:
        entry.update(error=str(exc).splitlines()[0])
    entry["seconds"] = round(time.monotonic() - t0, 1)
    _record(results, entry)
    return entry


#: The stream that carries spike beats (``p`` lanes each) in the cores that have one.
SPIKE_STREAMS = {"poisson": ("output", "o"), "ratedecode": ("input", "i")}


def bench_sim(spec, overrides, steps, results):
    from spikeforge.sim.run import simulate
    params = spec.params(overrides)
    s = simulate(spec, params, steps=steps, seed=1, gaps=False, progress=lambda m: None)
    res = s["_result"]
    in_beats = sum(len(c) for c in res.input_cycles.values())
    first_in = min((c[0] for c in res.input_cycles.values() if c), default=0)
    span = max(s["cycles"] - first_in, 1)
    dense_cells = s["events"]
    out_beats = sum(len(c) for c in res.cycles.values())
    entry = {"core": spec.name, "kind": "sim", "params": dict(overrides), "steps": steps,
             "unit": spec.step_unit, "bit_exact": s["bit_exact"], "cycles": span,
             "cycles_per_step": round(span / steps, 3), "input_beats": in_beats,
             "golden_seconds": s["golden_seconds"], "rtl_seconds": s["rtl_seconds"],
             "rtl_cycles_per_second": s["rtl_cycles_per_second"], "golden_events": dense_cells,
             "output_beats": out_beats}
    # Spike lanes per cycle: beats on the spike stream times p, over the measured cycles.
    if spec.name in SPIKE_STREAMS:
        side, name = SPIKE_STREAMS[spec.name]
        cyc = (res.cycles if side == "output" else res.input_cycles).get(name, [])
        entry["spikes_per_cycle"] = round(len(cyc) * params["p"] / span, 3)
    # Golden throughput in the trace grid's cells (e.g. neuron-steps for the LIF).
    grid = s.get("grid_cells")
    if grid and s["golden_seconds"]:
        entry["golden_cells_per_second"] = round(grid / s["golden_seconds"])
    _record(results, entry)
    return entry


def _golden_poisson(d=384, vectors=500, W=1000, p=4, repeats=3):
    """Golden Poisson encoder speed in element-ticks (one element of one tick, spike or not)
    per second of wall clock (``time.perf_counter``), best of ``repeats`` runs, on random
    ternary vectors of ``d`` elements."""
    import os

    import numpy as np

    from spikeforge.golden.poisson import poisson
    q = np.random.default_rng(1).integers(-1, 2, size=(vectors, d))
    poisson(q[:1], p=p, W=W, seed=1)                     # warm the jump tables
    best = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        poisson(q, p=p, W=W, seed=1)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    work = vectors * W * d
    return {"params": {"d": d, "vectors": vectors, "W": W, "p": p}, "work": work,
            "work_unit": "element-tick", "seconds": round(best, 3),
            "per_second": round(work / best), "target_per_second": 1e8,
            "met": work / best >= 1e8, "loadavg_1min": round(os.getloadavg()[0], 2),
            "cpus": _cpus(), "numpy": np.__version__}


#: Golden-model speed measurements, by core: a function returning the entry's fields.
GOLDEN_BENCHES = {"poisson": [_golden_poisson]}


def bench_golden(name, fn, results):
    entry = {"core": name, "kind": "golden", **fn()}
    _record(results, entry)
    return entry


def plan():
    """{core: {"builds": [overrides...], "sims": [(overrides, steps)...]}}, from each spec."""
    out = {}
    for name, spec in all_cores().items():
        out[name] = {"builds": list(spec.bench_builds or [spec.build_defaults]),
                     "sims": list(spec.bench_sims or [(spec.build_defaults, 200)])}
    return out


def _row_order(r):
    """Core order of the registry, then parameters numerically (n=64 before n=1024)."""
    names = list(all_cores())
    rank = names.index(r["core"]) if r["core"] in names else len(names)
    params = [(k, (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v)))
              for k, v in r["params"].items()]
    return rank, r["core"], params, r.get("grade") or 0


def render(results) -> str:
    results = sorted(results, key=_row_order)
    lines = ["# Benchmarks", "",
             "Generated by `make bench` (`python -m spikeforge.bench`) from `benchmarks/results.json`;",
             "do not edit by hand. Resources and Fmax: the core inside the registered bench top",
             "(`docs/build.md`) on LFE5U-85F (CABGA381), nextpnr seed 1, target 150 MHz at speed",
             "grade 6 and 200 MHz at grade 8. LUT4 is nextpnr's exact \"Total LUT4s\" count.",
             "Cycles: measured under cocotb/Verilator at full throughput (no valid gaps, ready",
             "always high), first input transfer to last output transfer. Spikes per cycle",
             "(encoder, decoder): beats on the spike stream times the lanes p, over those cycles;",
             "the bench stimulus has vectors of random length, so some beats are part empty.",
             "nextpnr's default router (router1) unless the parameters say `router=router2`;",
             "the reset routed through the fabric unless they say `global_reset` (a global",
             "network, `docs/build.md`); nextpnr's placer settings unless they say `placer`.", ""]
    builds = [r for r in results if r["kind"] == "build"]
    if builds:
        lines += ["## Resources and Fmax", "",
                  "| core | parameters | grade | LUT4 | FF | EBR | DSP | Fmax (MHz) | target | met |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in builds:
            p = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "defaults"
            if r.get("router"):
                p += f", router={r['router']}"
            if r.get("global_reset"):
                p += ", global_reset"
            if r.get("placer"):
                p += ", placer " + " ".join(f"{k}={v}" for k, v in sorted(r["placer"].items()))
            if "error" in r:
                lines.append(f"| {r['core']} | {p} | {r['grade']} | build failed: {r['error']} |||||||")
                continue
            res = r["resources"]
            fmax = " / ".join(f"{v:.1f}" for v in r["fmax_mhz"].values())
            lines.append(f"| {r['core']} | {p} | {r['grade']} | {res['LUT4']} | {res['FF']} | {res['EBR']} | "
                         f"{res['DSP']} | {fmax} | {r['target_mhz']:g} | {'yes' if r['timing_met'] else 'no'} |")
        lines.append("")
    sims = [r for r in results if r["kind"] == "sim"]
    if sims:
        lines += ["## Throughput", "",
                  "| core | parameters | work | cycles | cycles per unit | spikes per cycle | golden s | "
                  "RTL sim cycles/s | golden cells/s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in sims:
            p = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "defaults"
            lines.append(f"| {r['core']} | {p} | {r['steps']} {r['unit']}s | {r['cycles']} | "
                         f"{r['cycles_per_step']} | {r.get('spikes_per_cycle', '')} | {r['golden_seconds']} | "
                         f"{r['rtl_cycles_per_second']:.0f} | "
                         f"{r.get('golden_cells_per_second', '')} |")
        lines.append("")
    golds = [r for r in results if r["kind"] == "golden"]
    if golds:
        lines += ["## Golden model speed", "",
                  "Wall clock (`time.perf_counter`), best of 3, single process, vectorised NumPy;",
                  "`python -m spikeforge.bench --only poisson --no-build --no-sim`. The load",
                  "average is the machine's at the end of the run: other jobs share the cores.", "",
                  "| core | parameters | work | seconds | per second | target | met | load (1 min) / cpus |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in golds:
            p = ", ".join(f"{k}={v}" for k, v in r["params"].items())
            lines.append(f"| {r['core']} | {p} | {r['work']:.3g} {r['work_unit']}s | {r['seconds']} | "
                         f"{r['per_second']:.3g} | {r['target_per_second']:.0e} | "
                         f"{'yes' if r['met'] else 'no'} | {r['loadavg_1min']} / {r['cpus']} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m spikeforge.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", help="core name (repeatable)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--no-sim", action="store_true")
    ap.add_argument("--no-golden", action="store_true", help="skip the golden-model speed runs")
    ap.add_argument("--grades", default="6,8")
    ap.add_argument("--out", default="build-out/bench")
    ap.add_argument("--render-only", action="store_true")
    args = ap.parse_args(argv)
    results = load_results()
    if not args.render_only:
        cores = all_cores()
        for name, work in plan().items():
            if args.only and name not in args.only:
                continue
            spec = cores[name]
            if not args.no_golden:
                for fn in GOLDEN_BENCHES.get(name, []):
                    print(f"[{name}] golden speed ({fn.__name__})", flush=True)
                    e = bench_golden(name, fn, results)
                    print(f"    {e['per_second']:.3g} {e['work_unit']}s/s in {e['seconds']} s", flush=True)
            if not args.no_sim:
                for overrides, steps in work["sims"]:
                    print(f"[{name}] sim {overrides} x {steps} {spec.step_unit}s", flush=True)
                    e = bench_sim(spec, overrides, steps, results)
                    print(f"    {e['cycles_per_step']} cycles/{spec.step_unit}, bit_exact={e['bit_exact']}", flush=True)
            if not args.no_build:
                for overrides in work["builds"]:
                    for grade in [int(g) for g in args.grades.split(",")]:
                        print(f"[{name}] build {overrides} grade {grade}", flush=True)
                        e = bench_build(spec, overrides, grade, results, args.out)
                        print(f"    {e.get('resources')} {e.get('fmax_mhz')} {e.get('error', '')}", flush=True)
    DOC.parent.mkdir(parents=True, exist_ok=True)
    with _locked():
        DOC.write_text(render(load_results()))
    print(f"wrote {RESULTS} and {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
