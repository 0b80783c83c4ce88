import json
import os
import re

import numpy as np
import pytest
from vcd.reader import TokenKind, tokenize

from spikeforge.sim.compare import CompareResult, compare_traces, diff_cells, format_result
from spikeforge.sim.plot import plot_raster
from spikeforge.sim.trace import Trace, TraceError, load_trace, save_trace
from spikeforge.sim.vcd import export_vcd, vcd_identifier

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
META = dict(core="lif", params={"n": 3, "theta": 4}, seed=7)


def spikes(source="golden", events=((0, 1, 1), (1, 1, 1), (3, 0, 1), (4, 2, 1)), **kw):
    args = dict(n_steps=5, n_index=3, sparse=True, source=source, **META)
    args.update(kw)
    return Trace.from_events(list(events), **args)


def good_meta(**changes):
    meta = spikes().meta
    meta.update(changes)
    return meta


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def raw(path, events, meta):
    if not isinstance(meta, str):
        meta = json.dumps(meta)
    return write_npz(path, events=np.asarray(events, dtype=np.int64), meta=np.array(meta))


def load_error(path):
    return rf"^{re.escape(str(path))}: "


# --- construction and round trip -------------------------------------------------------------

def test_from_dense():
    arr = np.array([[0, 1, 0], [-1, 0, 1]])
    t = Trace.from_dense(arr, source="golden", **META)
    assert t.events.tolist() == [[0, 1, 1], [1, 0, -1], [1, 2, 1]]
    assert (t.core, t.params, t.seed, t.source) == ("lif", {"n": 3, "theta": 4}, 7, "golden")
    assert (t.n_steps, t.n_index, t.sparse, t.unit, t.value_kind) == (2, 3, True, "step", "ternary")
    assert t.meta["format"] == "spikeforge-trace" and t.meta["version"] == 1
    assert np.array_equal(t.to_dense(), arr)


def test_from_dense_dense_and_inferred_kinds():
    arr = np.array([[0, 5], [2, 0]])
    t = Trace.from_dense(arr, source="rtl", sparse=False, unit="tick", **META)
    assert t.n_events == 4 and not t.sparse and t.value_kind == "int" and t.unit == "tick"
    assert np.array_equal(t.to_dense(), arr)
    assert Trace.from_dense(np.array([[True, False]]), source="g", **META).value_kind == "binary"
    assert Trace.from_dense(np.zeros((4, 2), int), source="g", **META).n_events == 0


def test_from_events_sorts():
    t = spikes(events=[(4, 2, 1), (0, 1, 1), (3, 0, 1), (1, 1, 1)])
    assert t.events[:, :2].tolist() == [[0, 1], [1, 1], [3, 0], [4, 2]]


def test_numpy_params_are_normalised():
    t = Trace.from_dense(np.eye(2, dtype=int), core="lif", params={"n": np.int64(2),
                         "beta": np.array([1, 2])}, seed=np.uint32(3), source="golden")
    assert t.params == {"n": 2, "beta": [1, 2]} and type(t.seed) is int


def test_round_trip(tmp_path):
    t = Trace.from_dense(np.random.default_rng(1).integers(-1, 2, (50, 7)), source="rtl",
                         value_kind="ternary", extra={"note": "x"}, **META)
    save_trace(t, tmp_path / "t.npz")
    back = load_trace(tmp_path / "t.npz")
    assert back == t and back.events.dtype == np.int64 and back.meta["note"] == "x"
    assert os.listdir(tmp_path) == ["t.npz"]
    with np.load(tmp_path / "t.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["events", "meta"]
        assert npz["meta"].ndim == 0 and npz["meta"].dtype.kind == "U"


def test_head():
    t = spikes()
    h = t.head(3)
    assert h.n_steps == 3 and h.events.tolist() == [[0, 1, 1], [1, 1, 1]]
    assert t.head(99) == t
    with pytest.raises(ValueError, match=r"^Trace\.head 'n_steps' must be a non-negative integer, not -1$"):
        t.head(-1)


def test_construction_errors():
    with pytest.raises(TypeError, match=r"^Trace 'array' must hold integers, not float64$"):
        Trace.from_dense(np.ones((2, 2)), source="g", **META)
    with pytest.raises(ValueError, match=r"^Trace 'array' must be 2-D, not shape \(3,\)$"):
        Trace.from_dense(np.ones(3, int), source="g", **META)
    with pytest.raises(ValueError, match=r"^Trace 'events' must have shape \(E, 3\), not \(1, 2\)$"):
        spikes(events=[(0, 1)])
    with pytest.raises(TraceError, match=r"^duplicate event key \(step 1, index 1\) at row 2$"):
        spikes(events=[(0, 1, 1), (1, 1, 1), (1, 1, 1)])
    with pytest.raises(TraceError, match=r"^meta 'value_kind' must be one of binary, ternary, int, not 'real'$"):
        spikes(value_kind="real")
    with pytest.raises(TraceError, match=r"^meta 'sparse' must be true or false, not 1$"):
        spikes(sparse=1)
    with pytest.raises(TraceError, match=r"^meta 'seed' must be an integer or null, not 'x'$"):
        spikes(seed="x")
    with pytest.raises(TraceError, match=r"^meta is not JSON-serialisable: .*$"):
        spikes(params={"f": float("nan")})
    with pytest.raises(TypeError, match=r"^save_trace 'trace' must be a Trace, not dict$"):
        save_trace({}, "x.npz")


# --- load errors -----------------------------------------------------------------------------

def test_load_missing_file(tmp_path):
    p = tmp_path / "nope.npz"
    with pytest.raises(TraceError, match=load_error(p) + r"no such file$"):
        load_trace(p)


def test_load_directory(tmp_path):
    with pytest.raises(TraceError, match=load_error(tmp_path) + r"cannot open: .+$"):
        load_trace(tmp_path)


@pytest.mark.parametrize("content", [b"", b"hello", b"\x93NUMPY"])
def test_load_not_npz(tmp_path, content):
    p = tmp_path / "x.npz"
    p.write_bytes(content)
    with pytest.raises(TraceError, match=load_error(p) + r"not an npz file \(no zip archive\)$"):
        load_trace(p)


def test_load_truncated(tmp_path):
    p = tmp_path / "t.npz"
    save_trace(spikes(), p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(TraceError, match=load_error(p) + r"truncated or corrupt npz file \(zip directory missing\)$"):
        load_trace(p)


def test_load_corrupt_member(tmp_path):
    p = tmp_path / "t.npz"
    save_trace(spikes(), p)
    data = bytearray(p.read_bytes())
    at = data.find(b"events.npy") + 40
    data[at:at + 8] = bytes(b ^ 0xFF for b in data[at:at + 8])
    p.write_bytes(bytes(data))
    with pytest.raises(TraceError, match=load_error(p) + r"cannot read array 'events' \(\w+: [^\n]*\)$"):
        load_trace(p)


def test_load_pickled_events(tmp_path):
    p = write_npz(tmp_path / "t.npz", events=np.array([None], dtype=object), meta=np.array("{}"))
    with pytest.raises(TraceError, match=load_error(p) + r"cannot read array 'events' \(ValueError: Object arrays cannot be loaded when allow_pickle=False\)$"):
        load_trace(p)


@pytest.mark.parametrize("missing", ["events", "meta"])
def test_load_missing_array(tmp_path, missing):
    arrays = {"events": np.zeros((0, 3), np.int64), "meta": np.array(json.dumps(good_meta()))}
    del arrays[missing]
    p = write_npz(tmp_path / "t.npz", **arrays)
    with pytest.raises(TraceError, match=load_error(p) + rf"missing array '{missing}'$"):
        load_trace(p)


@pytest.mark.parametrize("events, message", [
    (np.zeros((1, 3), np.int32), r"events must have dtype int64, not int32"),
    (np.zeros((1, 3), np.float64), r"events must have dtype int64, not float64"),
    (np.zeros((2, 2), np.int64), r"events must have shape \(E, 3\), not \(2, 2\)"),
    (np.zeros(3, np.int64), r"events must have shape \(E, 3\), not \(3,\)"),
])
def test_load_bad_events_array(tmp_path, events, message):
    p = write_npz(tmp_path / "t.npz", events=events, meta=np.array(json.dumps(good_meta())))
    with pytest.raises(TraceError, match=load_error(p) + message + "$"):
        load_trace(p)


@pytest.mark.parametrize("meta, message", [
    (np.array([json.dumps(good_meta())]), r"'meta' must be a 0-d unicode array, not <U\d+ with shape \(1,\)"),
    (np.array(b"{}"), r"'meta' must be a 0-d unicode array, not \|S2 with shape \(\)"),
    (np.array("{not json"), r"'meta' is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 \(char 1\)"),
    (np.array("[1, 2]"), r"meta must be a JSON object, not list"),
])
def test_load_bad_meta_array(tmp_path, meta, message):
    p = write_npz(tmp_path / "t.npz", events=np.zeros((0, 3), np.int64), meta=meta)
    with pytest.raises(TraceError, match=load_error(p) + message + "$"):
        load_trace(p)


@pytest.mark.parametrize("changes, drop, message", [
    ({"format": "other"}, None, r"meta 'format' is 'other', expected 'spikeforge-trace'"),
    ({"version": 2}, None, r"unsupported trace version 2 \(this reader knows version 1\)"),
    ({}, "n_steps", r"meta lacks key 'n_steps'"),
    ({"n_index": -1}, None, r"meta 'n_index' must be a non-negative integer, not -1"),
    ({"n_steps": 2.5}, None, r"meta 'n_steps' must be a non-negative integer, not 2\.5"),
    ({"params": []}, None, r"meta 'params' must be an object, not \[\]"),
    ({"core": ""}, None, r"meta 'core' must be a non-empty string, not ''"),
])
def test_load_bad_meta_content(tmp_path, changes, drop, message):
    meta = good_meta(**changes)
    if drop:
        del meta[drop]
    p = raw(tmp_path / "t.npz", spikes().events, meta)
    with pytest.raises(TraceError, match=load_error(p) + message + "$"):
        load_trace(p)


@pytest.mark.parametrize("events, changes, message", [
    ([(0, 1, 1), (5, 0, 1)], {}, r"event 1 \(step 5, index 0\) has step out of range \(n_steps=5\)"),
    ([(0, 3, 1)], {}, r"event 0 \(step 0, index 3\) has index out of range \(n_index=3\)"),
    ([(-1, 0, 1)], {}, r"event 0 \(step -1, index 0\) has step out of range \(n_steps=5\)"),
    ([(0, -2, 1)], {}, r"event 0 \(step 0, index -2\) has index out of range \(n_index=3\)"),
    ([(1, 0, 1), (0, 2, 1)], {}, r"events not sorted by \(step, index\) at row 1 \(step 0, index 2\)"),
    ([(1, 2, 1), (1, 0, 1)], {}, r"events not sorted by \(step, index\) at row 1 \(step 1, index 0\)"),
    ([(0, 0, 1), (2, 1, 1), (2, 1, 0)], {}, r"duplicate event key \(step 2, index 1\) at row 2"),
    ([(0, 0, 2)], {}, r"event 0 \(step 0, index 0\) has value 2, not binary \(0\.\.1\)"),
    ([(0, 0, -2)], {"value_kind": "ternary"}, r"event 0 \(step 0, index 0\) has value -2, not ternary \(-1\.\.1\)"),
    ([(0, 0, 1)], {"sparse": False}, r"dense trace \(sparse=false\) has 1 events, expected n_steps\*n_index=15"),
    (np.zeros((0, 3)), {"sparse": False}, r"dense trace \(sparse=false\) has 0 events, expected n_steps\*n_index=15"),
])
def test_load_bad_events(tmp_path, events, changes, message):
    p = raw(tmp_path / "t.npz", events, good_meta(**changes))
    with pytest.raises(TraceError, match=load_error(p) + message + "$"):
        load_trace(p)


# --- atomic writes ---------------------------------------------------------------------------

def test_atomic_save_failure_keeps_old_file(tmp_path, monkeypatch):
    p = tmp_path / "t.npz"
    save_trace(spikes(), p)
    before = p.read_bytes()

    def broken(file, **arrays):
        file.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(OSError, match=r"^disk full$"):
        save_trace(spikes(events=[(0, 0, 1)]), p)
    assert p.read_bytes() == before
    assert os.listdir(tmp_path) == ["t.npz"]


# --- compare ---------------------------------------------------------------------------------

def test_compare_equal():
    r = compare_traces(spikes(), spikes(source="rtl"))
    assert r == CompareResult(equal=True, mismatches=0, first=None, n_steps=(5, 5), notes=[],
                              n_events=(4, 4), unit="step")
    assert format_result(r, "golden.npz", "rtl.npz") == "EQUAL: 4 events over 5 steps (golden.npz vs rtl.npz)"


def test_compare_first_divergence_and_count():
    a = spikes()
    b = spikes(events=[(0, 1, 1), (1, 1, 0), (2, 2, 1), (3, 0, 1)], source="rtl")
    r = compare_traces(a, b)
    # (1,1) 1->0, (2,2) 0->1, (4,2) 1->absent
    assert (r.equal, r.mismatches, r.first) == (False, 3, (1, 1, 1, 0))
    assert diff_cells(a, b).tolist() == [[1, 1, 1, 0], [2, 2, 0, 1], [4, 2, 1, 0]]
    assert format_result(r, "a", "b") == ("MISMATCH: 3 differing events; first at step 1, index 1: "
                                          "expected 1, got 0 (a vs b)")
    one = compare_traces(a, spikes(events=[(0, 1, 1), (1, 1, 1), (3, 0, 1)]))
    assert format_result(one).startswith("MISMATCH: 1 differing event; first at step 4, index 2:")


def test_compare_sparse_absent_is_zero_and_dense_equivalent():
    arr = np.array([[0, 1, 0], [0, 0, 0], [1, 0, 1]])
    sparse = Trace.from_dense(arr, source="golden", **META)
    dense = Trace.from_dense(arr, source="rtl", sparse=False, **META)
    explicit_zero = spikes(events=[(0, 1, 1), (1, 2, 0), (2, 0, 1), (2, 2, 1)], n_steps=3)
    for x, y in [(sparse, dense), (dense, sparse), (sparse, explicit_zero), (explicit_zero, dense)]:
        assert compare_traces(x, y).equal
    arr[1, 1] = 1
    r = compare_traces(dense, Trace.from_dense(arr, source="rtl", **META))
    assert (r.mismatches, r.first) == (1, (1, 1, 0, 1))


def test_compare_different_n_steps():
    a = spikes()
    b = a.head(4)
    r = compare_traces(a, b)
    assert (r.equal, r.mismatches, r.first, r.n_steps) == (False, 3, (4, 0, 0, None), (5, 4))
    assert r.notes == ["n_steps differ: 5 vs 4"]
    assert format_result(r) == ("MISMATCH: 3 differing events; first at step 4, index 0: expected 0, "
                                "got nothing (outside its grid) (expected vs got)\n"
                                "  note: n_steps differ: 5 vs 4")
    r = compare_traces(b, a)
    assert (r.mismatches, r.first) == (3, (4, 0, None, 0))


def test_compare_different_n_index_and_earlier_diff():
    a = spikes()
    b = spikes(n_index=4, events=[(0, 1, 1), (1, 1, 1), (3, 0, 1), (4, 2, 1)])
    r = compare_traces(a, b)
    assert (r.mismatches, r.first, r.notes) == (5, (0, 3, None, 0), ["n_index differ: 3 vs 4"])
    c = spikes(n_steps=6, events=[(0, 1, 0), (1, 1, 1), (3, 0, 1), (4, 2, 1)])
    r = compare_traces(a, c)
    assert (r.mismatches, r.first) == (1 + 3, (0, 1, 1, 0))


def test_compare_metadata_notes_do_not_break_equality():
    a = spikes()
    b = spikes(core="lif2", params={"n": 3, "theta": 5}, seed=8, unit="tick", source="rtl")
    r = compare_traces(a, b)
    assert r.equal
    assert r.notes == ["core differs: 'lif' vs 'lif2'", "seed differs: 7 vs 8",
                       "unit differs: 'step' vs 'tick'", "params differ: theta=4 vs 5"]


def test_compare_matches_brute_force():
    rng = np.random.default_rng(5)
    for _ in range(300):
        shapes = [(int(rng.integers(0, 6)), int(rng.integers(0, 5))) for _ in range(2)]
        traces = [Trace.from_dense(rng.integers(-1, 2, s) * (rng.random(s) < 0.4), source="x",
                                   sparse=bool(rng.integers(2)), value_kind="ternary", **META)
                  for s in shapes]
        S, N = max(s[0] for s in shapes), max(s[1] for s in shapes)
        grids = []
        for t in traces:
            g = np.full((S, N), None, dtype=object)
            g[:t.n_steps, :t.n_index] = t.to_dense()
            grids.append(g)
        diff = sorted((s, i, grids[0][s, i], grids[1][s, i]) for s in range(S) for i in range(N)
                      if grids[0][s, i] != grids[1][s, i])
        r = compare_traces(*traces)
        assert r.mismatches == len(diff) and r.equal == (not diff)
        assert r.first == (diff[0] if diff else None)


def test_compare_large_is_fast():
    rng = np.random.default_rng(0)
    arr = rng.random((20000, 100)) < 0.2
    a = Trace.from_dense(arr, source="golden", **META)
    arr[19999, 99] ^= True
    r = compare_traces(a, Trace.from_dense(arr, source="rtl", **META))
    assert (r.mismatches, r.first[:2]) == (1, (19999, 99))


def test_compare_wrong_type():
    with pytest.raises(TypeError, match=r"^diff_cells 'got' must be a Trace, not NoneType$"):
        compare_traces(spikes(), None)


# --- plot ------------------------------------------------------------------------------------

def test_plot_single_and_vs(tmp_path):
    rng = np.random.default_rng(2)
    arr = rng.integers(-1, 2, (300, 12)) * (rng.random((300, 12)) < 0.2)
    a = Trace.from_dense(arr, source="golden", value_kind="ternary", **META)
    arr[5, 3] = 1 - abs(arr[5, 3])
    b = Trace.from_dense(arr, source="rtl", value_kind="ternary", **META).head(250)
    plot_raster(a, tmp_path / "a.png")
    plot_raster(a, tmp_path / "ab.png", vs=b, title="lif check", max_steps=50)
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG_MAGIC
    assert (tmp_path / "ab.png").read_bytes()[:8] == PNG_MAGIC
    assert sorted(os.listdir(tmp_path)) == ["a.png", "ab.png"]


def test_plot_int_vs(tmp_path):
    arr = np.arange(24).reshape(6, 4) - 10
    a = Trace.from_dense(arr, source="golden", sparse=False, **META)
    arr[2, 1] += 1
    plot_raster(a, tmp_path / "i.png", vs=Trace.from_dense(arr, source="rtl", **META))
    assert (tmp_path / "i.png").read_bytes()[:8] == PNG_MAGIC


def test_plot_errors(tmp_path):
    with pytest.raises(ValueError, match=r"^plot_raster 'max_steps' must be a positive integer, not 0$"):
        plot_raster(spikes(), tmp_path / "x.png", max_steps=0)
    with pytest.raises(TypeError, match=r"^plot_raster 'vs' must be a Trace, not str$"):
        plot_raster(spikes(), tmp_path / "x.png", vs="rtl.npz")
    assert os.listdir(tmp_path) == []


# --- VCD -------------------------------------------------------------------------------------

def test_vcd_tiny_binary(tmp_path):
    p = tmp_path / "t.vcd"
    export_vcd(spikes(), p)
    assert p.read_text().splitlines() == [
        "$version spikeforge trace export $end",
        '$comment {"core": "lif", "n_steps": 5, "params": {"n": 3, "theta": 4}, "seed": 7, '
        '"source": "golden", "unit": "step", "value_kind": "binary"} $end',
        "$timescale 1 us $end",
        "$scope module lif $end",
        "$var wire 1 ! spike_0 $end",
        '$var wire 1 " spike_1 $end',
        "$var wire 1 # spike_2 $end",
        "$upscope $end",
        "$enddefinitions $end",
        "#0", "$dumpvars", "0!", '1"', "0#", "$end",
        "#2", '0"',       # spike_1 held 1 for steps 0 and 1
        "#3", "1!",
        "#4", "0!", "1#",
        "#5", "0#",       # the last pulse ends at n_steps
    ]
    assert os.listdir(tmp_path) == ["t.vcd"]


def test_vcd_tiny_ternary_and_int(tmp_path):
    t = Trace.from_dense(np.array([[1, -1], [1, 1], [0, -1]]), source="rtl", value_kind="ternary", **META)
    export_vcd(t, tmp_path / "t.vcd", timescale="10ns")
    lines = (tmp_path / "t.vcd").read_text().splitlines()
    assert lines[2] == "$timescale 10 ns $end"
    assert lines[4:6] == ["$var wire 2 ! spike_0 [1:0] $end", '$var wire 2 " spike_1 [1:0] $end']
    assert lines[8:] == ["#0", "$dumpvars", "b01 !", 'b11 "', "$end",
                         "#1", 'b01 "', "#2", "b00 !", 'b11 "', "#3", 'b00 "']
    t = Trace.from_dense(np.array([[3, -2], [3, 0]]), source="rtl", sparse=False, **META)
    export_vcd(t, tmp_path / "i.vcd")
    lines = (tmp_path / "i.vcd").read_text().splitlines()
    assert lines[4:6] == ["$var integer 32 ! value_0 $end", '$var integer 32 " value_1 $end']
    # A dense trace keeps its last values at the end marker.
    assert lines[8:] == ["#0", "$dumpvars", "b11 !", 'b' + "1" * 31 + '0 "', "$end", "#1", 'b0 "', "#2"]


def _parse_vcd(path, n_steps):
    """Rebuild the (n_steps, n_index) grid from a VCD file with pyvcd's tokenizer."""
    widths, names, current, grid, time = {}, {}, {}, None, 0
    with open(path, "rb") as f:
        tokens = list(tokenize(f))
    for tok in tokens:
        if tok.kind is TokenKind.VAR:
            index = int(tok.var.reference.split("_")[1])
            widths[tok.var.id_code], names[tok.var.id_code] = tok.var.size, index
            current[index] = 0
        elif tok.kind in (TokenKind.CHANGE_TIME, TokenKind.ENDDEFINITIONS):
            if grid is None:
                grid = np.zeros((n_steps, len(names)), dtype=np.int64)
            new_time = tok.data if tok.kind is TokenKind.CHANGE_TIME else 0
            for t in range(time, min(new_time, n_steps)):
                grid[t] = [current[i] for i in range(len(names))]
            time = new_time
        elif tok.kind in (TokenKind.CHANGE_SCALAR, TokenKind.CHANGE_VECTOR):
            code, value = tok.data.id_code, int(tok.data.value)
            w = widths[code]
            current[names[code]] = value - (1 << w) if w > 1 and value >> (w - 1) else value
    assert time == n_steps
    return grid


@pytest.mark.parametrize("kind", ["binary", "ternary", "int"])
@pytest.mark.parametrize("sparse", [True, False])
def test_vcd_round_trip_random(tmp_path, kind, sparse):
    rng = np.random.default_rng({"binary": 1, "ternary": 2, "int": 3}[kind] + 10 * sparse)
    lo, hi = {"binary": (0, 2), "ternary": (-1, 2), "int": (-2**31, 2**31)}[kind]
    arr = rng.integers(lo, hi, (40, 130)) * (rng.random((40, 130)) < 0.5)
    t = Trace.from_dense(arr, source="golden", sparse=sparse, value_kind=kind, **META)
    export_vcd(t, tmp_path / "r.vcd")
    assert np.array_equal(_parse_vcd(tmp_path / "r.vcd", 40), arr)


def test_vcd_empty_and_identifiers(tmp_path):
    t = spikes(events=[], n_steps=0, n_index=0)
    export_vcd(t, tmp_path / "e.vcd")
    assert (tmp_path / "e.vcd").read_text().splitlines()[-5:] == [
        "$upscope $end", "$enddefinitions $end", "#0", "$dumpvars", "$end"]
    codes = [vcd_identifier(i) for i in range(94 + 94 * 94 + 1)]
    assert codes[:2] == ["!", '"'] and codes[93] == "~" and codes[94] == "!!"
    assert len(set(codes)) == len(codes) and len(codes[-1]) == 3


def test_vcd_errors(tmp_path):
    with pytest.raises(ValueError, match=r"^export_vcd 'timescale' must look like '1 us' \(1/10/100 and s/ms/us/ns/ps/fs\), not '2 us'$"):
        export_vcd(spikes(), tmp_path / "x.vcd", timescale="2 us")
    big = Trace.from_dense(np.array([[2**31]]), source="g", **META)
    with pytest.raises(ValueError, match=r"^export_vcd: value 2147483648 does not fit a 32-bit signed integer$"):
        export_vcd(big, tmp_path / "x.vcd")
    with pytest.raises(TypeError, match=r"^export_vcd 'trace' must be a Trace, not NoneType$"):
        export_vcd(None, tmp_path / "x.vcd")
    assert os.listdir(tmp_path) == []
