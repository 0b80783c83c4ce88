"""The mutation tool itself, on tiny examples: which mutations it makes, that each changes one
thing, that it never touches docstrings or error messages, which tests make up a core's fast
checks, how mutants are sampled and results merged, that a mutant is loaded under the real
module name without touching the repository, and that a mutant the checks see is killed while
one they do not see survives (the runs on real cores are long and not part of CI)."""

import ast
import json
import re
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

from spikeforge.sim.mutate import (ROOT, Mutant, _run_one, checks_for, choose, fast_tests,
                                   find_mutants, main, mutate_source, record)

SOURCE = textwrap.dedent('''
    """Module docstring 1 + 2."""

    def f(a, b):
        """Docstring with 3 < 4."""
        if a < 0:
            raise ValueError(f"a must be >= 0, not {a - 1}")
        b >>= 1
        return (a + b) & 7 == 2
''')


def test_mutations_of_a_small_source(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(SOURCE)
    mutants = find_mutants(path, "m")
    whats = sorted(m.what for m in mutants)
    assert whats == sorted(["< -> <=", "0 -> 1", "0 -> -1", ">> -> <<", "1 -> 2", "1 -> 0",
                            "+ -> -", "& -> |", "7 -> 8", "7 -> 6", "== -> !=", "2 -> 3",
                            "2 -> 1"])
    assert [m.index for m in mutants] == list(range(len(mutants)))
    for m in mutants:
        mutated = mutate_source(SOURCE, m.index)
        assert mutated != ast.unparse(ast.parse(SOURCE))
        # Docstrings and the raise statement are left alone.
        assert '"""Docstring with 3 < 4."""' in mutated or "'Docstring with 3 < 4.'" in mutated
        assert "a must be >= 0, not {a - 1}" in mutated


def test_mutants_of_the_lif_files():
    rtl = find_mutants(ROOT / "rtl" / "lif.py", "spikeforge.rtl.lif")
    golden = find_mutants(ROOT / "golden" / "lif.py", "spikeforge.golden.lif")
    assert len(rtl) > 200 and len(golden) > 80
    assert {m.file for m in rtl} == {"rtl/lif.py"}
    source = (ROOT / "golden" / "lif.py").read_text()
    for m in golden[:5]:
        compile(mutate_source(source, m.index), "mutant", "exec")


def test_run_mutant_loads_under_the_real_name(tmp_path):
    """`--run-mutant` installs the mutant before pytest imports anything."""
    source = (ROOT / "golden" / "lif.py").read_text()
    (tmp_path / "lif.py").write_text(source.replace('__all__ = ["lif"]',
                                                    '__all__ = ["lif"]\nMUTANT = True'))
    probe = tmp_path / "test_probe.py"
    probe.write_text("def test_probe():\n"
                     "    from spikeforge.golden import lif\n"
                     "    import spikeforge.golden.lif as m\n"
                     "    assert m.MUTANT and lif.MUTANT\n")
    proc = subprocess.run(
        [sys.executable, "-m", "spikeforge.sim.mutate", "--run-mutant", "spikeforge.golden.lif",
         str(tmp_path / "lif.py"), "--", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
         str(probe)], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MUTANT" not in source


def test_fast_tests_leave_out_verilator_yosys_and_cli(tmp_path):
    path = tmp_path / "test_x.py"
    path.write_text(textwrap.dedent('''
        from spikeforge.sim.harness import run_rtl

        def test_golden():
            pass

        def test_cocotb(tmp_path):
            simulate(SPEC, {}, steps=3)

        def test_verilog():
            verilog.convert(core)

        def test_harness():
            run_rtl(core, {}, {})

        def test_cli():
            main(["sim", "x"])

        def helper():
            pass
    '''))
    assert fast_tests(path) == ["test_golden"]
    # Without the harness import, run_rtl is a local Amaranth-simulator helper: fast.
    path.write_text(path.read_text().replace("from spikeforge.sim.harness import run_rtl", ""))
    assert fast_tests(path) == ["test_golden", "test_harness"]


def test_checks_of_lif():
    checks = checks_for("lif")
    assert checks[0] == "tests/test_fuzz.py::test_fuzz[lif]"
    assert "tests/test_lif_edges.py::test_golden_and_rtl_accept_the_same" in checks
    assert checks[-2:] == ["tests/test_reset.py::test_reset_mid_stream[lif]",
                           "tests/test_reset.py::test_reset_mid_stream[lif_binary]"]
    assert not any("cocotb" in c or "verilog" in c for c in checks)


def test_choose_samples_per_file_reproducibly():
    mutants = [Mutant(f, "m", k, 1, "x") for f in ("a.py", "b.py") for k in range(10)]
    one = choose(mutants, per_file=3, seed=5)
    assert one == choose(mutants, per_file=3, seed=5)
    assert [m.file for m in one] == ["a.py"] * 3 + ["b.py"] * 3
    assert len(choose(mutants, per_file=3, sample=4)) == 4
    assert choose(mutants, indices=[2, 12]) == [mutants[2], mutants[12]]
    assert choose(mutants) == mutants


def test_record_merges_per_core(tmp_path):
    out = tmp_path / "mutation.json"
    record({"core": "a", "run": 2, "killed": 2, "results": [1, 2]}, out, command="c a")
    record({"core": "b", "run": 1, "killed": 0, "results": [1]}, out, command="c b")
    record({"core": "a", "run": 3, "killed": 3, "results": []}, out, command="c a")
    data = json.loads(out.read_text())
    assert sorted(data) == ["a", "b"]
    assert data["a"]["run"] == 3 and data["a"]["command"] == "c a"
    assert "results" not in data["a"]


@pytest.mark.parametrize("argv, message", [
    (["nope"], r"^mutate: error: unknown core 'nope'; known: .*$"),
    (["lif", "--per-file", "0"], r"^mutate: error: --per-file must be positive, not 0$"),
    (["lif", "--sample", "-1"], r"^mutate: error: --sample must be positive, not -1$"),
])
def test_bad_arguments(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.match(message, err[0])


PROBE_MODULE = textwrap.dedent('''
    def f(a, b):
        if a < 0:
            return 0
        return a + b
''')
PROBE_TEST = ("def test_f():\n"
              "    from spikeforge.sim import _mutate_probe as m\n"
              "    assert m.f(3, 4) == 7\n")


def test_a_mutant_is_killed_or_survives(tmp_path):
    """End to end on a tiny module: `+ -> -` changes f(3, 4), the check fails (killed);
    `< -> <=` only changes f(0, b), which the check never calls (survives)."""
    module = tmp_path / "_mutate_probe.py"
    module.write_text(PROBE_MODULE)
    (tmp_path / "test_probe.py").write_text(PROBE_TEST)
    mutants = {m.what: m for m in find_mutants(module, "spikeforge.sim._mutate_probe")}
    tests = [str(tmp_path / "test_probe.py")]
    with ThreadPoolExecutor(2) as pool:
        killed, survived = pool.map(lambda m: _run_one(m, tests, timeout=60, fuzz_examples=1),
                                    [mutants["+ -> -"], mutants["< -> <="]])
    assert killed["killed"] and "test_f" in killed["reason"]
    assert not survived["killed"] and survived["reason"] == "checks pass"


def test_rerun_survivors_updates_the_record(tmp_path, monkeypatch):
    """Only the recorded survivors run again; those now killed move to the killed count. A
    file edited since is searched for the survivor's mutation and source line."""
    import hashlib

    import spikeforge.sim.mutate as mutate
    monkeypatch.setattr(mutate, "ROOT", tmp_path)
    (tmp_path / "rtl").mkdir()
    (tmp_path / "golden").mkdir()
    (tmp_path / "rtl" / "x.py").write_text("a = 3 + 4\n")
    (tmp_path / "golden" / "x.py").write_text("b = 1\n")
    sha = {f: hashlib.sha256((tmp_path / f).read_bytes()).hexdigest()[:16]
           for f in ("rtl/x.py", "golden/x.py")}
    (tmp_path / "golden" / "x.py").write_text("c = 7\nb = 1\n")     # edited since
    survivors = [{"file": "rtl/x.py", "line": 1, "what": "+ -> -", "index": 0,
                  "source": "a = 3 + 4"},
                 {"file": "golden/x.py", "line": 1, "what": "1 -> 2", "index": 0,
                  "source": "b = 1"}]
    out = tmp_path / "mutation.json"
    record({"core": "x", "run": 10, "killed": 8, "score": 0.8, "survivors": survivors,
            "files": {"rtl/x.py": {"sha256": sha["rtl/x.py"], "mutants": 5, "run": 5,
                                   "killed": 4, "score": 0.8},
                      "golden/x.py": {"sha256": sha["golden/x.py"], "mutants": 2, "run": 5,
                                      "killed": 4, "score": 0.8}}}, out)
    seen = {}

    def fake_run(core, *, indices, **options):
        seen["indices"] = indices
        return {"tests": ["t"], "results": [{"file": "rtl/x.py", "index": 0, "killed": True},
                                            {"file": "golden/x.py", "index": 2,
                                             "killed": False}]}
    monkeypatch.setattr(mutate, "run_mutants", fake_run)
    entry = mutate.rerun_survivors("x", out, command="again")
    # In the edited file `b = 1`'s `1 -> 2` is mutant 2 (after `7 -> 8` and `7 -> 6`).
    assert seen["indices"] == [("rtl/x.py", 0), ("golden/x.py", 2)]
    assert json.loads(out.read_text())["x"] == entry
    assert entry["killed"] == 9 and entry["score"] == 0.9
    assert entry["files"]["rtl/x.py"]["killed"] == 5
    assert entry["files"]["golden/x.py"]["killed"] == 4
    assert [s["file"] for s in entry["survivors"]] == ["golden/x.py"]
    assert entry["reruns"] == [{"command": "again", "date": entry["reruns"][0]["date"],
                                "rerun": 2, "remapped": 1, "now_killed": 1}]
