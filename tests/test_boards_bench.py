"""The board benchmark's bookkeeping: which boards it builds, and the table it writes
(no tools run: the build is replaced by a stand-in)."""

import json

import pytest

from spikeforge.boards import bench
from spikeforge.boards.targets import TARGETS


def _entry(fmax):
    return {"device": "LFE5U-85F", "package": "CABGA381", "speed": "6", "params": {},
            "resources": {"LUT4": 10, "FF": 20, "EBR": 1, "DSP": 0},
            "fmax_mhz": {"sync": fmax}, "target_mhz": 150.0, "clock_mhz": 150.0,
            "timing_met": fmax >= 150.0, "seconds": 1.0}


def test_to_build_skips_recorded_boards():
    names = ["a", "b", "c"]
    boards = {"a": _entry(160.0), "c": {"error": "place and route failed"}}
    assert bench.to_build(names, boards) == ["b", "c"]
    assert bench.to_build(names, boards, rebuild=True) == names
    assert bench.to_build(names, {}) == names


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "boards.md").write_text(f"# Boards\n\n{bench.BEGIN}\n{bench.END}\n")
    built = []

    def fake_bench_board(name, out_root):
        built.append(name)
        return _entry(170.0)

    monkeypatch.setattr(bench, "bench_board", fake_bench_board)
    return tmp_path, built


def test_main_skips_recorded_unless_rebuild(workdir):
    tmp_path, built = workdir
    first, second = bench.board_order()[:2]
    bench._record(first, _entry(160.0))
    assert bench.main(["--only", first, second, "--out", str(tmp_path / "out")]) == 0
    assert built == [second]
    boards = json.loads((tmp_path / "benchmarks" / "boards.json").read_text())["boards"]
    assert boards[first]["fmax_mhz"]["sync"] == 160.0      # kept, not rebuilt
    assert boards[second]["fmax_mhz"]["sync"] == 170.0
    built.clear()
    assert bench.main(["--only", first, second, "--rebuild", "--out", str(tmp_path / "out")]) == 0
    assert built == [first, second]
    table = (tmp_path / "docs" / "boards.md").read_text()
    assert f"| {first} | LFE5U-85F | 6 | 10 | 20 | 1 | 170.0 | 150 | yes |" in table
    assert table.count("not built") == len(TARGETS) - 2


def test_main_unknown_board(workdir, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--only", "no-such-board"])
    assert "unknown board 'no-such-board'" in capsys.readouterr().err
