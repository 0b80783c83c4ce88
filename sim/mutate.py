"""Mutation testing: how many single-point bugs in a core and its golden model do the fast
tests catch?

``python -m spikeforge.sim.mutate CORE|all [--per-file N] [--sample N] [--seed S]
[--only rtl|golden] [--jobs J]`` parses ``rtl/CORE.py`` and ``golden/CORE.py`` (read once: the
mutants are numbered and made from that snapshot), makes every single mutation of these kinds —

* arithmetic and bitwise operators: ``+ <-> -``, ``& <-> |``, ``^ -> |``, ``>> <-> <<``
  (also in augmented assignments);
* comparisons: strictness ``< <-> <=``, ``> <-> >=``, and ``== <-> !=``;
* integer constants: ``k -> k + 1`` and ``k -> k - 1``;

— and for each one (or a seeded random sample: at most ``--per-file`` of each file, at most
``--sample`` in all) runs the core's fast checks in a subprocess with the mutated source loaded
under the real module name (the repository files are never touched: the mutant lives in a
temporary directory). A mutant is *killed* when the checks fail (or time out), *survives* when
they pass. Docstrings, ``raise`` statements (their messages) and ``__all__`` are left alone.

The fast checks of a core (:func:`checks_for`) are its fuzz test, the tests of
``tests/test_CORE_unit.py``, ``tests/test_CORE_edges.py`` and ``tests/test_CORE.py`` that need
neither Verilator, yosys nor the CLI (:func:`fast_tests`), and its reset tests, in that order,
stopping at the first failure (fuzz examples are not shrunk). The checks first run once on the
unmutated sources; they must pass, and that run sets the default timeout per mutant.

The summary per core (mutants, run and killed per file, every survivor with its source line,
the checks and the command) is merged into ``benchmarks/mutation.json`` (``--out``);
``--json FILE`` also keeps every mutant's result. ``--rerun-survivors`` runs the recorded
survivors of a core again, e.g. after a test was added for them, and updates its record.
Exit status: 0 when every core's kill ratio reaches ``--target`` (default 0.9), 1 when one
does not, 2 for bad arguments or checks that fail unmutated.
"""

from __future__ import annotations

import argparse
import ast
import fcntl
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["CHECKS", "Mutant", "checks_for", "fast_tests", "find_mutants", "main",
           "mutate_source", "record", "rerun_survivors", "run_mutants", "choose"]

ROOT = Path(__file__).resolve().parent.parent

#: Core -> pytest arguments of its fast checks, where the default (:func:`checks_for`) does
#: not fit.
CHECKS: dict[str, list[str]] = {}

# A test is left out of the fast checks when its source shows it needs Verilator (the
# cocotb bench), yosys (Verilog conversion) or the CLI: one such run per mutant is too slow,
# and the Amaranth-simulator tests see the same behaviour.
_SLOW_MARKS = ("simulate(", "verilog.convert", "rtlil.convert", "main([", "cocotb")


def fast_tests(path: Path) -> list[str]:
    """Names of the test functions of ``path`` that run without Verilator, yosys or the CLI
    (``run_rtl`` counts as Verilator when the file imports it from the harness)."""
    source = Path(path).read_text()
    tree = ast.parse(source)
    marks = _SLOW_MARKS + (("run_rtl(",) if "harness import run_rtl" in source else ())
    names = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            text = ast.get_source_segment(source, node) or ""
            if not any(mark in text for mark in marks) and "slow" not in text.split(":")[0]:
                names.append(node.name)
    return names


def checks_for(core: str) -> list[str]:
    """The pytest node ids that make up ``core``'s fast checks: its fuzz test, the fast tests
    of ``tests/test_CORE_unit.py``, ``tests/test_CORE_edges.py`` and ``tests/test_CORE.py``
    (see :func:`fast_tests`), and its reset tests, in that order (the cheapest killers first)."""
    if core in CHECKS:
        return list(CHECKS[core])
    out = [f"tests/test_fuzz.py::test_fuzz[{core}]"]
    for suffix in ("_unit", "_edges", ""):
        path = ROOT / "tests" / f"test_{core}{suffix}.py"
        if path.exists():
            out += [f"tests/{path.name}::{name}" for name in fast_tests(path)]
    reset = ROOT / "tests" / "test_reset.py"
    if reset.exists():
        for case, name in re.findall(r'^\s+"(\w+)": \("(\w+)",', reset.read_text(), re.M):
            if name == core:
                out.append(f"tests/test_reset.py::test_reset_mid_stream[{case}]")
    return out


_BINOPS = {ast.Add: [ast.Sub], ast.Sub: [ast.Add], ast.BitAnd: [ast.BitOr],
           ast.BitOr: [ast.BitAnd], ast.BitXor: [ast.BitOr], ast.RShift: [ast.LShift],
           ast.LShift: [ast.RShift]}
_CMPOPS = {ast.Lt: [ast.LtE], ast.LtE: [ast.Lt], ast.Gt: [ast.GtE], ast.GtE: [ast.Gt],
           ast.Eq: [ast.NotEq], ast.NotEq: [ast.Eq]}
_SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
           ast.RShift: ">>", ast.LShift: "<<", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">",
           ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}


@dataclass(frozen=True)
class Mutant:
    """One mutation: in ``file`` (relative to the repository), node number ``index`` of the
    walk order, described as ``what`` at ``line``."""
    file: str
    module: str
    index: int
    line: int
    what: str


def _skipped_nodes(tree):
    """Nodes never mutated: docstrings, raise statements and ``__all__``."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise):
            skip.update(id(n) for n in ast.walk(node))
        elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            skip.update(id(n) for n in ast.walk(node))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                skip.update(id(n) for n in ast.walk(body[0]))
    return skip


def _sites(tree):
    """``[(node, kind, replacement, description)]`` for every mutation of ``tree``, in a
    deterministic order (walk order, then alternative)."""
    skip = _skipped_nodes(tree)
    sites = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _BINOPS:
            for alt in _BINOPS[type(node.op)]:
                sites.append((node, "op", alt, f"{_SYMBOL[type(node.op)]} -> {_SYMBOL[alt]}"))
        elif isinstance(node, ast.Compare):
            for k, op in enumerate(node.ops):
                for alt in _CMPOPS.get(type(op), ()):
                    sites.append((node, ("cmp", k), alt, f"{_SYMBOL[type(op)]} -> {_SYMBOL[alt]}"))
        elif (isinstance(node, ast.Constant) and isinstance(node.value, int)
              and not isinstance(node.value, bool)):
            for delta in (1, -1):
                sites.append((node, "const", node.value + delta,
                              f"{node.value} -> {node.value + delta}"))
    return sites


def find_mutants(path: Path, module: str, source: str | None = None) -> list[Mutant]:
    """Every mutant of the Python file ``path`` (loaded as ``module``); ``source``, if
    given, is the text to mutate instead of the file's current contents."""
    tree = ast.parse(Path(path).read_text() if source is None else source)
    path = Path(path).resolve()
    rel = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    return [Mutant(rel, module, k, node.lineno, what)
            for k, (node, _, _, what) in enumerate(_sites(tree))]


def mutate_source(source: str, index: int) -> str:
    """``source`` with mutation number ``index`` applied (numbering as :func:`find_mutants`)."""
    tree = ast.parse(source)
    node, kind, alt, _ = _sites(tree)[index]
    if kind == "op":
        node.op = alt()
    elif kind == "const":
        node.value = alt
    else:
        node.ops[kind[1]] = alt()
    return ast.unparse(ast.fix_missing_locations(tree))


def _run_one(mutant: Mutant | None, tests: list[str], timeout: float,
             fuzz_examples: int, source: str | None = None) -> dict:
    """Run ``tests`` against ``mutant`` (None: the unmutated sources) in a subprocess;
    returns ``{"killed", "reason", "seconds"}``. ``source``: the text the mutant's numbering
    refers to (default: the file as it is now)."""
    work = Path(tempfile.mkdtemp(prefix="mutant-"))
    try:
        pytest_args = ["-q", "-x", "-p", "no:cacheprovider", "-m", "not slow", "-o", "addopts=",
                       *tests]
        if mutant is None:
            cmd = [sys.executable, "-m", "pytest", *pytest_args]
        else:
            if source is None:
                source = (ROOT / mutant.file).read_text()
            src = mutate_source(source, mutant.index)
            target = work / Path(mutant.file).name
            target.write_text(src)
            cmd = [sys.executable, "-m", "spikeforge.sim.mutate", "--run-mutant", mutant.module,
                   str(target), "--", *pytest_args]
        env = dict(os.environ, SPIKEFORGE_FUZZ_EXAMPLES=str(fuzz_examples),
                   SPIKEFORGE_FUZZ_SHRINK="0", PYTHONDONTWRITEBYTECODE="1")
        start = time.monotonic()
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"killed": True, "reason": f"timeout ({timeout:g} s)",
                    "seconds": round(time.monotonic() - start, 1)}
        seconds = round(time.monotonic() - start, 1)
        if proc.returncode == 0:
            return {"killed": False, "reason": "checks pass", "seconds": seconds}
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))]
        reason = lines[0][:160] if lines else f"exit status {proc.returncode}"
        return {"killed": True, "reason": reason, "seconds": seconds}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def choose(mutants, *, sample=None, per_file=None, seed=0, indices=None) -> list[Mutant]:
    """The mutants to run: those in ``indices`` (numbers, or ``(file, number)`` pairs) if
    given, else a seeded random
    choice of at most ``per_file`` of each file, then of at most ``sample`` in all; in file
    and number order."""
    if indices is not None:
        keys = set(indices)     # numbers (in any file) or (file, number) pairs
        return [m for m in mutants if m.index in keys or (m.file, m.index) in keys]
    rng = random.Random(seed)
    chosen = list(mutants)
    if per_file is not None:
        files = sorted({m.file for m in mutants})
        chosen = [m for f in files for m in rng.sample([m for m in mutants if m.file == f],
                                                       min(per_file, sum(m.file == f
                                                                         for m in mutants)))]
    if sample is not None and sample < len(chosen):
        chosen = rng.sample(chosen, sample)
    return sorted(chosen, key=lambda m: (m.file, m.index))


def run_mutants(core: str, *, only=None, sample=None, per_file=None, seed=0, indices=None,
                jobs=1, timeout=None, fuzz_examples=20, progress=print) -> dict:
    """Mutate ``rtl/CORE.py`` and ``golden/CORE.py`` (or ``only`` one of "rtl", "golden"),
    run the fast checks on each mutant (a random ``sample`` of them, at most ``per_file`` of
    each file, or those whose number is in ``indices``, if given) and return
    ``{"core", "tests", "files": {file: {"mutants", "run", "killed", "score"}},
    "survivors": [...], "results": [...]}``.

    The checks first run on the unmutated sources: they must pass (else every mutant would
    look killed), and ``timeout`` (seconds per mutant; a mutant that hangs, e.g. a loop that
    no longer ends, counts as killed) defaults to ten times that run, at least 120 s."""
    files = []
    for kind in ("rtl", "golden"):
        if only in (None, kind):
            path = ROOT / kind / f"{core}.py"
            if not path.exists():
                raise FileNotFoundError(f"no {kind} source for core {core!r}: {path.name}")
            files.append((path, f"spikeforge.{kind}.{core}"))
    # One snapshot of each file: mutants are numbered on it and made from it, so that an
    # edit of the file during a long run cannot shift the numbering.
    sources = {str(path.relative_to(ROOT)): path.read_text() for path, _ in files}
    mutants = [m for path, module in files
               for m in find_mutants(path, module, sources[str(path.relative_to(ROOT))])]
    total = {f: sum(1 for m in mutants if m.file == f) for f in {m.file for m in mutants}}
    chosen = choose(mutants, sample=sample, per_file=per_file, seed=seed, indices=indices)
    tests = checks_for(core)
    progress(f"mutate {core}: {len(chosen)} of {len(mutants)} mutants, checks: {' '.join(tests)}")
    base = _run_one(None, tests, timeout or 3600.0, fuzz_examples)
    if base["killed"]:
        raise RuntimeError(f"the checks of {core} fail without any mutation: {base['reason']}")
    timeout = timeout or max(120.0, 10 * base["seconds"])
    progress(f"  unmutated: checks pass in {base['seconds']} s; timeout {timeout:g} s per mutant")
    results = []

    def job(m):
        res = _run_one(m, tests, timeout, fuzz_examples, sources[m.file])
        progress(f"  {'killed ' if res['killed'] else 'SURVIVED'} {m.file}:{m.line} {m.what} "
                 f"({res['seconds']} s)")
        return {**asdict(m), **res}

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(job, chosen))
    files_report = {}
    for f in sorted(total):
        run = [r for r in results if r["file"] == f]
        killed = sum(r["killed"] for r in run)
        files_report[f] = {"sha256": hashlib.sha256(sources[f].encode()).hexdigest()[:16],
                           "mutants": total[f], "run": len(run), "killed": killed,
                       "score": round(killed / len(run), 4) if run else None}
    source_lines = {f: sources[f].splitlines() for f in total}
    survivors = [{"file": r["file"], "line": r["line"], "what": r["what"], "index": r["index"],
                  "source": source_lines[r["file"]][r["line"] - 1].strip()}
                 for r in results if not r["killed"]]
    killed = sum(r["killed"] for r in results)
    return {"core": core, "tests": tests, "files": files_report, "run": len(results),
            "killed": killed, "score": round(killed / len(results), 4) if results else None,
            "survivors": survivors, "results": results}


def _install_mutant(module: str, path: str) -> None:
    """Load ``path`` as ``module`` so that every later import of ``module`` gets the mutant."""
    import importlib
    import importlib.util
    parent, _, leaf = module.rpartition(".")
    package = importlib.import_module(parent)
    spec = importlib.util.spec_from_file_location(module, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module] = mod
    spec.loader.exec_module(mod)
    setattr(package, leaf, mod)


RESULTS = ROOT / "benchmarks" / "mutation.json"


def record(report: dict, path: Path = RESULTS, command: str = "") -> None:
    """Merge the summary of ``report`` (everything but the per-mutant results) into
    ``path`` under its core, under a lock and atomically (several runs may share the file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {k: v for k, v in report.items() if k not in ("results", "core")}
    entry.update(command=command, date=time.strftime("%Y-%m-%d", time.gmtime()))
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text()) if path.exists() else {}
        data[report["core"]] = entry
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(dict(sorted(data.items())), indent=2) + "\n")
        os.replace(tmp, path)


def rerun_survivors(core: str, path: Path = RESULTS, *, command: str = "", **options) -> dict:
    """Run the survivors recorded for ``core`` in ``path`` again (with the checks as they
    are now, e.g. after adding tests for them) and update that record in place: the mutant
    set stays the one first run, survivors now killed count as killed. If a file changed
    since, a survivor is found again by its mutation and source line (``remapped``; one not
    found uniquely stays a survivor). ``options`` go to :func:`run_mutants`. Returns the
    updated record."""
    path = Path(path)
    data = json.loads(path.read_text()) if path.exists() else {}
    if core not in data:
        raise RuntimeError(f"no mutation results for {core!r} in {path.name}: run it first")
    # A file edited since the run: find each survivor again by its mutation and source line
    # (unique matches only; the others stay survivors, not rerun).
    where, remapped = {}, 0
    for sv in data[core]["survivors"]:
        key = (sv["file"], sv["index"])
        st = data[core]["files"][sv["file"]]
        text = (ROOT / sv["file"]).read_text()
        if hashlib.sha256(text.encode()).hexdigest()[:16] == st.get("sha256"):
            where[key] = key
            continue
        lines = text.splitlines()
        module = f"spikeforge.{sv['file'].split('/')[0]}.{core}"
        found = [m for m in find_mutants(ROOT / sv["file"], module, text)
                 if m.what == sv["what"] and lines[m.line - 1].strip() == sv["source"]]
        if len(found) == 1:
            where[key] = (sv["file"], found[0].index)
            remapped += 1
    if not where:
        return data[core]
    report = run_mutants(core, indices=list(where.values()), **options)
    killed_now = {(r["file"], r["index"]) for r in report["results"] if r["killed"]}
    now_killed = {old for old, new in where.items() if new in killed_now}
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text())
        entry = data[core]
        for f, st in entry["files"].items():
            st["killed"] += sum(1 for k in now_killed if k[0] == f)
            st["score"] = round(st["killed"] / st["run"], 4) if st["run"] else None
        entry["killed"] += len(now_killed)
        entry["score"] = round(entry["killed"] / entry["run"], 4) if entry["run"] else None
        entry["survivors"] = [s for s in entry["survivors"]
                              if (s["file"], s["index"]) not in now_killed]
        entry["tests"] = report["tests"]
        entry.setdefault("reruns", []).append({
            "command": command, "date": time.strftime("%Y-%m-%d", time.gmtime()),
            "rerun": len(where), "remapped": remapped, "now_killed": len(now_killed)})
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(dict(sorted(data.items())), indent=2) + "\n")
        os.replace(tmp, path)
    return entry


def _error(message: str) -> int:
    print(f"mutate: error: {message}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--run-mutant"]:
        # Internal: `--run-mutant MODULE PATH -- PYTEST ARGS`, run in the subprocess.
        module, path, sep, *pytest_args = argv[1:]
        _install_mutant(module, path)
        import pytest
        return int(pytest.main(pytest_args))
    parser = argparse.ArgumentParser(prog="python -m spikeforge.sim.mutate",
                                     description="Mutation score of a core's fast checks.")
    parser.add_argument("core", help="a core of the registry, or 'all'")
    parser.add_argument("--only", choices=("rtl", "golden"), help="mutate one file only")
    parser.add_argument("--sample", type=int, help="run a random sample of this many mutants")
    parser.add_argument("--per-file", type=int,
                        help="run a random sample of at most this many mutants of each file")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples")
    parser.add_argument("--index", type=int, action="append",
                        help="run only the mutant with this number (see --list); repeatable")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run in parallel")
    parser.add_argument("--timeout", type=float,
                        help="seconds per mutant (default: 10x the unmutated run, at least 120)")
    parser.add_argument("--fuzz-examples", type=int, default=20,
                        help="fuzz examples per mutant (SPIKEFORGE_FUZZ_EXAMPLES)")
    parser.add_argument("--target", type=float, default=0.9, help="kill ratio to reach")
    parser.add_argument("--out", metavar="FILE", default=str(RESULTS),
                        help="summary per core, merged into this file "
                             "(default: benchmarks/mutation.json)")
    parser.add_argument("--json", metavar="FILE", help="also write the full report here")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--rerun-survivors", action="store_true",
                        help="run the survivors recorded in --out again and update that record")
    args = parser.parse_args(argv)
    from spikeforge.cores import ParamError, all_cores, get_core
    if args.core == "all":
        cores = sorted(all_cores())
    else:
        try:
            get_core(args.core)
        except ParamError as exc:
            return _error(str(exc))
        cores = [args.core]
    for name, value in (("--sample", args.sample), ("--per-file", args.per_file),
                        ("--jobs", args.jobs)):
        if value is not None and value < 1:
            return _error(f"{name} must be positive, not {value}")
    if args.list:
        for core in cores:
            for kind in ("rtl", "golden"):
                if args.only in (None, kind):
                    path, module = ROOT / kind / f"{core}.py", f"spikeforge.{kind}.{core}"
                    for m in find_mutants(path, module):
                        print(f"{m.file}:{m.line} #{m.index} {m.what}", flush=True)
        return 0
    if args.rerun_survivors:
        failed = errors = False
        for core in cores:
            try:
                entry = rerun_survivors(
                    core, Path(args.out), jobs=args.jobs, timeout=args.timeout,
                    fuzz_examples=args.fuzz_examples, progress=lambda m: print(m, flush=True),
                    command=f"python -m spikeforge.sim.mutate {core} --rerun-survivors")
            except (FileNotFoundError, RuntimeError) as exc:
                _error(str(exc))
                errors = True
                continue
            print(f"mutation score of {core}: {entry['killed']}/{entry['run']} killed "
                  f"({100 * (entry['score'] or 0):.1f}%)", flush=True)
            for sv in entry["survivors"]:
                print(f"  survivor {sv['file']}:{sv['line']} #{sv['index']} {sv['what']}: "
                      f"{sv['source']}")
            failed |= (entry["score"] or 0) < args.target
        return 2 if errors else 1 if failed else 0
    reports, failed, errors = [], False, False
    for core in cores:
        start = time.monotonic()
        try:
            report = run_mutants(core, only=args.only, sample=args.sample,
                                 per_file=args.per_file, seed=args.seed, indices=args.index,
                                 jobs=args.jobs, timeout=args.timeout,
                                 fuzz_examples=args.fuzz_examples,
                                 progress=lambda m: print(m, flush=True))
        except (FileNotFoundError, RuntimeError) as exc:
            _error(str(exc))
            errors = True
            continue
        report["seconds"] = round(time.monotonic() - start, 1)
        # The options that choose the mutants and the checks (not where reports go).
        options, skip = [], False
        for a in argv:
            if skip or a == args.core or a.split("=")[0] in ("--out", "--json"):
                skip = not skip and "=" not in a and a in ("--out", "--json")
                continue
            options.append(a)
        record(report, Path(args.out),
               command=" ".join(["python -m spikeforge.sim.mutate", core, *options]))
        reports.append(report)
        print(f"mutation score of {core}: {report['killed']}/{report['run']} killed "
              f"({100 * (report['score'] or 0):.1f}%) in {report['seconds']} s", flush=True)
        for f, st in report["files"].items():
            print(f"  {f}: {st['killed']}/{st['run']} killed of {st['mutants']} mutants")
        for sv in report["survivors"]:
            print(f"  survivor {sv['file']}:{sv['line']} #{sv['index']} {sv['what']}: "
                  f"{sv['source']}")
        failed |= (report["score"] or 0) < args.target
    if args.json:
        full = reports[0] if len(reports) == 1 else reports
        Path(args.json).write_text(json.dumps(full, indent=2) + "\n")
    return 2 if errors else 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
