"""Bad input to the ``spikeforge`` command: one line on stderr naming the problem, exit status
2, no traceback, and no output file left behind (whole or half-written)."""

import json
import re

import numpy as np
import pytest

from spikeforge.cli import main
from spikeforge.firmware.image import MemorySpec, save_image
from spikeforge.sim.trace import Trace, save_trace


@pytest.fixture
def files(tmp_path):
    """A good trace and assorted bad files, in ``tmp_path``."""
    trace = Trace.from_dense(np.eye(4, dtype=np.int64), core="lif", params={}, seed=0,
                             source="golden")
    save_trace(trace, tmp_path / "good.npz")
    raw = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(raw[:len(raw) // 2])
    (tmp_path / "garbage.npz").write_bytes(b"not a trace at all")
    (tmp_path / "empty.npz").write_bytes(b"")
    np.savez(tmp_path / "no_events.npz", meta=np.array("{}"))
    # What a failed build leaves: a report that is not a trace, and a cut-off one.
    (tmp_path / "report.json").write_text(json.dumps({"board": "ulx3s-85f", "resources": {}}))
    (tmp_path / "report_cut.json").write_text('{"board": "ulx3s-85f", "reso')
    codes = {"codes": MemorySpec((3, 3), -1, 1)}
    save_image(tmp_path / "small.npz", core="assoc", params={},
               memories={"codes": np.zeros((3, 3), dtype=np.int64)}, specs=codes)
    save_image(tmp_path / "other_core.npz", core="lut", params={},
               memories={"codes": np.zeros((32, 32), dtype=np.int64)},
               specs={"codes": MemorySpec((32, 32), -1, 1)})
    bad_range = {"codes": MemorySpec((32, 32), -2, 1)}
    save_image(tmp_path / "out_of_range.npz", core="assoc", params={},
               memories={"codes": np.full((32, 32), -2, dtype=np.int64)}, specs=bad_range)
    return tmp_path


def run(argv, capsys):
    """``main(argv)`` -> (status, the one stderr line); checks the shape of the error."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("spikeforge: error: "), lines[0]
    return status, lines[0]


def leftovers(folder, keep):
    """Files in ``folder`` that are not in ``keep`` (outputs, temporary files)."""
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


TRACES = [
    ("truncated.npz", r"truncated\.npz: truncated or corrupt npz file"),
    ("garbage.npz", r"garbage\.npz: not an npz file"),
    ("empty.npz", r"empty\.npz: not an npz file"),
    ("no_events.npz", r"no_events\.npz: missing array 'events'"),
    ("missing.npz", r"missing\.npz: no such file"),
    ("report.json", r"report\.json: not an npz file"),
    ("report_cut.json", r"report_cut\.json: not an npz file"),
]


@pytest.mark.parametrize("name, message", TRACES)
@pytest.mark.parametrize("command", ["compare", "compare-second", "plot", "plot-vs", "vcd"])
def test_bad_trace(files, capsys, command, name, message):
    before = set(p.name for p in files.iterdir())
    bad, good, out = files / name, files / "good.npz", files / "out.file"
    argv = {"compare": ["compare", bad, good], "compare-second": ["compare", good, bad],
            "plot": ["plot", bad, "-o", out], "plot-vs": ["plot", good, "--vs", bad, "-o", out],
            "vcd": ["vcd", bad, "-o", out]}[command]
    status, line = run(argv, capsys)
    assert status == 2
    assert re.search(message, line), line
    assert leftovers(files, before) == []


@pytest.mark.parametrize("image, message", [
    ("small.npz", r"small\.npz: memory 'codes' has shape \(3, 3\), expected \(32, 32\)$"),
    ("other_core.npz", r"other_core\.npz: image is for core 'lut', not 'assoc'$"),
    ("out_of_range.npz", r"out_of_range\.npz: memory 'codes' holds -2, outside -1\.\.1$"),
    ("truncated.npz", r"truncated\.npz: not a readable memory image"),
    ("good.npz", r"good\.npz: not a spikeforge-image file$"),
    ("missing.npz", r"missing\.npz: no such memory image$"),
])
@pytest.mark.parametrize("command", ["sim", "verilog"])
def test_bad_memory_image(files, capsys, command, image, message):
    before = set(p.name for p in files.iterdir())
    param = ["--param", f"image={files / image}"]
    argv = (["sim", "assoc", *param, "--steps", "2", "--out", files / "run"]
            if command == "sim" else ["verilog", "assoc", *param, "-o", files / "assoc.v"])
    status, line = run(argv, capsys)
    assert status == 2
    assert re.search(message, line), line
    assert leftovers(files, before) == []


@pytest.mark.parametrize("argv, message", [
    (["sim", "nope"], r"^spikeforge: error: unknown core 'nope'; known: .*\blif\b"),
    (["verilog", "nope", "-o", "{out}"], r"unknown core 'nope'"),
    (["build", "--design", "nope", "--out", "{dir}"], r"unknown core 'nope'"),
    (["build", "--board", "nope", "--out", "{dir}"], r"unknown board 'nope'; known boards: "),
    (["program", "--board", "nope", "x.bit"], r"unknown board 'nope'"),
    (["sim", "lif", "--param", "n=abc"], r"LIF parameter 'n' must be an integer, not 'abc'$"),
    (["sim", "lif", "--param", "n=0"], r"LIF parameter 'n' must be in 1\.\.65536, not 0$"),
    (["sim", "lif", "--param", "p=3"], r"LIF parameter 'p' must divide n=16, not 3$"),
    (["sim", "lif", "--param", "gain=2"], r"core 'lif' has no parameter 'gain'; known: "),
    (["sim", "lif", "--param", "n"], r"--param expects K=V, not 'n'$"),
    (["sim", "lif", "--param", "=3"], r"core 'lif' has no parameter ''"),
    (["sim", "lif", "--param", "theta_pos=1.5"], r"'theta_pos' must be an integer, not 1\.5$"),
    (["sim", "lif", "--param", "beta_pos=1,2"],
     r"'beta_pos' must be an integer or a list of T=4 integers, not a list of 2$"),
    (["sim", "lif", "--param", "bipolar=2"], r"'bipolar' must be a bool, not 2$"),
    (["sim", "lif", "--param", "preset=loihi"], r"unknown LIF preset 'loihi'"),
    (["sim", "lif", "--steps", "0"], r"--steps must be positive, not 0$"),
    (["verilog", "lif", "--param", "m_width=99", "-o", "{out}"],
     r"LIF parameter 'm_width' must be in 2\.\.32, not 99$"),
    (["build", "--param", "n=3", "--out", "{dir}"], r"'p' must divide n=3, not 4$"),
    (["build", "--router", "router3", "--out", "{dir}"],
     r"unknown nextpnr router 'router3': choose one of router1, router2$"),
])
def test_bad_names_and_params(tmp_path, capsys, argv, message):
    argv = [a.format(out=tmp_path / "out.v", dir=tmp_path / "build") for a in argv]
    status, line = run(argv, capsys)
    assert status == 2
    assert re.search(message, line), line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["verilog", "plot", "vcd"])
@pytest.mark.parametrize("where", ["missing_dir", "a_dir", "a_file_as_dir"])
def test_unwritable_output(files, capsys, command, where):
    (files / "a_dir").mkdir()
    (files / "a_file").write_text("x")
    before = set(p.name for p in files.iterdir())
    out = {"missing_dir": files / "a_file" / "out.x" if command == "verilog"
           else files / "no" / "out.x",
           "a_dir": files / "a_dir", "a_file_as_dir": files / "a_file" / "out.x"}[where]
    argv = {"verilog": ["verilog", "lif", "-o", out],
            "plot": ["plot", files / "good.npz", "-o", out],
            "vcd": ["vcd", files / "good.npz", "-o", out]}[command]
    status, line = run(argv, capsys)
    assert status == 2
    assert re.search(r": (No such file or directory|Is a directory|Not a directory|File exists)$",
                     line), line
    assert leftovers(files, before) == []
    assert list((files / "a_dir").iterdir()) == []


def test_sim_out_is_a_file(files, capsys):
    # Refused before the simulation starts, and the file is left as it was.
    before = (files / "report.json").read_text()
    status, line = run(["sim", "lif", "--steps", "1", "--out", files / "report.json"], capsys)
    assert status == 2
    assert line == f"spikeforge: error: {files / 'report.json'}: File exists"
    assert (files / "report.json").read_text() == before


def test_run_bad_image(files, capsys):
    # `spikeforge run` has its own front end (and prefix); the image is read before any work.
    status = main(["run", "--sim", "--image", str(files / "truncated.npz")])
    out, err = capsys.readouterr()
    assert status == 2 and "Traceback" not in out + err
    assert err.strip().splitlines() == [
        f"spikeforge run: error: {files / 'truncated.npz'}: not a readable memory image "
        "(BadZipFile)"]


def test_failed_build_leaves_no_report(tmp_path, capsys, monkeypatch):
    """A build whose place-and-route report is unreadable: one line, no report.json.
    (A failed build is a failed check, status 1, not bad input.)"""
    from spikeforge.boards import build

    def broken(core, *, out_dir, **kwargs):
        raise build.BuildError("place and route wrote no readable report (truncated JSON)")
    monkeypatch.setattr(build, "build_design", broken)
    status = main(["build", "--out", str(tmp_path / "b"), "--param", "n=8"])
    out, err = capsys.readouterr()
    assert status == 1 and "Traceback" not in out + err
    assert err.strip().splitlines() == [
        "spikeforge: build failed: place and route wrote no readable report (truncated JSON)"]
    assert not (tmp_path / "b" / "report.json").exists()


@pytest.mark.parametrize("argv, message", [
    (["formal", "nope"], r"unknown core 'nope'; known: "),
    (["formal", "lif", "--param", "n=x"], r"LIF parameter 'n' must be an integer, not 'x'$"),
    (["formal", "lif", "--param", "n"], r"--param expects K=V, not 'n'$"),
    (["formal", "lif", "--depth", "0"], r"formal depth must be an integer in 1\.\.1000, not 0$"),
    (["formal", "all", "--param", "n=4"], r"--param needs one core, not 'all'$"),
])
def test_formal_bad_input(capsys, argv, message):
    # `spikeforge formal` has its own front end (and prefix); nothing is run.
    status = main(argv)
    out, err = capsys.readouterr()
    assert status == 2 and "Traceback" not in out + err and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spikeforge formal: error: "), err
    assert re.search(message, lines[0]), lines[0]
