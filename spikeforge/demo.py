"""`spikeforge demo`: every core simulated against its golden model, the default design built."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from spikeforge.cores import all_cores

DEFAULT_BOARD = "ulx3s-85f"
DEFAULT_DESIGN = "lif"


def run_demo(out="demo-out", build=True, seed=1) -> int:
    from spikeforge.sim.run import simulate
    out = Path(out)
    rows, ok = [], True
    cores = all_cores()
    print(f"spikeforge demo: {len(cores)} core(s) under cocotb/Verilator vs golden, "
          f"then a {DEFAULT_DESIGN} bitstream for {DEFAULT_BOARD}", flush=True)
    for name, spec in cores.items():
        params = spec.params()
        t0 = time.monotonic()
        s = simulate(spec, params, steps=spec.demo_steps, seed=seed, out_dir=out / name,
                     progress=lambda m: print(f"  [{name}] {m}", flush=True))
        ok &= s["bit_exact"]
        rows.append((name, f"{s['steps']} {s['unit']}s", str(s["events"]), str(s["mismatches"]),
                     "yes" if s["bit_exact"] else "NO", f"{time.monotonic() - t0:.1f} s"))
        print(f"  [{name}] {'bit-exact' if s['bit_exact'] else 'MISMATCH'}", flush=True)
    report = None
    if build:
        from spikeforge.boards.build import BuildError, build_design
        spec = cores[DEFAULT_DESIGN]
        params = spec.params(spec.build_defaults)
        try:
            report = build_design(spec.build(**params), board=DEFAULT_BOARD, design=DEFAULT_DESIGN,
                                  params=params, out_dir=out / f"build-{DEFAULT_BOARD}", seed=seed,
                                  progress=lambda m: print(f"  [build] {m}", flush=True))
        except BuildError as exc:
            print(f"  [build] failed: {exc}", file=sys.stderr)
            ok = False

    print()
    print(_table(("core", "stimulus", "golden events", "mismatches", "bit-exact", "time"), rows))
    if report is not None:
        r = report["resources"]
        fmax = ", ".join(f"{v:.1f}" for v in report["fmax_mhz"].values())
        print()
        print(_table(("board", "design", "LUT4", "FF", "EBR", "DSP", "Fmax MHz", "target MHz", "timing met"),
                     [(report["board"], report["design"], str(r["LUT4"]), str(r["FF"]), str(r["EBR"]),
                       str(r["DSP"]), fmax, f"{report['target_mhz']:g}",
                       "yes" if report["timing_met"] else "NO")]))
    print(f"\ntraces, summaries and the build report are in {out}/")
    return 0 if ok else 1


def _table(head, rows):
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(r) for r in rows)])
