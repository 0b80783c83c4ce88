"""Spike traces: the one file format shared by the golden models, the RTL harness, the
comparator, the plotter and the VCD exporter.

A trace is a set of events ``(step, index, value)`` plus metadata. On disk it is a NumPy
``.npz`` archive (``np.savez_compressed``, no pickles) holding two arrays:

``events``
    ``int64`` array of shape ``(E, 3)``, rows ``(step, index, value)``, sorted by
    ``(step, index)`` with no duplicate ``(step, index)`` key.
``meta``
    0-d unicode array holding a JSON object with at least ``format`` (``"spikeforge-trace"``),
    ``version`` (1), ``core``, ``params`` (object), ``seed`` (integer or null), ``source``,
    ``n_steps``, ``n_index``, ``sparse``, ``unit`` and ``value_kind``
    (``"binary"``, ``"ternary"`` or ``"int"``).

A *sparse* trace lists only the cells that carry a value; every absent ``(step, index)`` cell
of the ``n_steps × n_index`` grid is 0 (spike trains). A *dense* trace (``sparse`` false)
lists every cell of the grid. See ``docs/traces.md``.
"""

import json
import os
import secrets
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "FORMAT", "VERSION", "VALUE_KINDS", "TraceError", "Trace",
    "save_trace", "load_trace", "atomic_path",
]

FORMAT = "spikeforge-trace"
VERSION = 1
VALUE_KINDS = ("binary", "ternary", "int")
REQUIRED_META = ("format", "version", "core", "params", "seed", "source",
                 "n_steps", "n_index", "sparse", "unit", "value_kind")
# Cells are addressed as step * n_index + index by the comparator; keep that inside int64.
_MAX_GRID = 2 ** 62
_VALUE_RANGE = {"binary": (0, 1), "ternary": (-1, 1)}


class TraceError(ValueError):
    """A trace (file or in-memory) violates the trace format. The message is one line."""


def _json_default(obj):
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _check_meta(meta):
    """Return the first problem with ``meta`` as a string, or None."""
    if not isinstance(meta, dict):
        return f"meta must be a JSON object, not {type(meta).__name__}"
    for key in REQUIRED_META:
        if key not in meta:
            return f"meta lacks key {key!r}"
    if meta["format"] != FORMAT:
        return f"meta 'format' is {meta['format']!r}, expected {FORMAT!r}"
    if meta["version"] != VERSION or not _is_int(meta["version"]):
        return f"unsupported trace version {meta['version']!r} (this reader knows version {VERSION})"
    for key in ("core", "source", "unit"):
        if not isinstance(meta[key], str) or not meta[key]:
            return f"meta {key!r} must be a non-empty string, not {meta[key]!r}"
    if not isinstance(meta["params"], dict):
        return f"meta 'params' must be an object, not {meta['params']!r}"
    if meta["seed"] is not None and not _is_int(meta["seed"]):
        return f"meta 'seed' must be an integer or null, not {meta['seed']!r}"
    for key in ("n_steps", "n_index"):
        if not _is_int(meta[key]) or meta[key] < 0:
            return f"meta {key!r} must be a non-negative integer, not {meta[key]!r}"
    if meta["n_steps"] * meta["n_index"] > _MAX_GRID:
        return f"grid n_steps*n_index = {meta['n_steps'] * meta['n_index']} exceeds 2**62"
    if not isinstance(meta["sparse"], bool):
        return f"meta 'sparse' must be true or false, not {meta['sparse']!r}"
    if meta["value_kind"] not in VALUE_KINDS:
        return f"meta 'value_kind' must be one of {', '.join(VALUE_KINDS)}, not {meta['value_kind']!r}"
    return None


def _check_events(events, meta):
    """Return the first problem with ``events`` (given valid ``meta``) as a string, or None."""
    if not isinstance(events, np.ndarray):
        return f"events must be a NumPy array, not {type(events).__name__}"
    if events.dtype != np.int64:
        return f"events must have dtype int64, not {events.dtype}"
    if events.ndim != 2 or events.shape[1] != 3:
        return f"events must have shape (E, 3), not {events.shape}"
    if len(events) == 0:
        return None if meta["sparse"] or meta["n_steps"] * meta["n_index"] == 0 else \
            f"dense trace (sparse=false) has 0 events, expected n_steps*n_index={meta['n_steps'] * meta['n_index']}"
    step, index, value = events[:, 0], events[:, 1], events[:, 2]
    for name, col, key in (("step", step, "n_steps"), ("index", index, "n_index")):
        bad = np.flatnonzero((col < 0) | (col >= meta[key]))
        if len(bad):
            r = bad[0]
            return (f"event {r} (step {step[r]}, index {index[r]}) has {name} out of range "
                    f"({key}={meta[key]})")
    # Lexicographic order on (step, index): step non-decreasing, and index increasing within a step.
    ds, di = np.diff(step), np.diff(index)
    bad = np.flatnonzero((ds < 0) | ((ds == 0) & (di <= 0)))
    if len(bad):
        r = bad[0] + 1
        if ds[r - 1] == 0 and di[r - 1] == 0:
            return f"duplicate event key (step {step[r]}, index {index[r]}) at row {r}"
        return f"events not sorted by (step, index) at row {r} (step {step[r]}, index {index[r]})"
    kind = meta["value_kind"]
    if kind in _VALUE_RANGE:
        lo, hi = _VALUE_RANGE[kind]
        bad = np.flatnonzero((value < lo) | (value > hi))
        if len(bad):
            r = bad[0]
            return (f"event {r} (step {step[r]}, index {index[r]}) has value {value[r]}, "
                    f"not {kind} ({lo}..{hi})")
    if not meta["sparse"] and len(events) != meta["n_steps"] * meta["n_index"]:
        return (f"dense trace (sparse=false) has {len(events)} events, "
                f"expected n_steps*n_index={meta['n_steps'] * meta['n_index']}")
    return None


def _infer_value_kind(values):
    if len(values) == 0 or (values.min() >= 0 and values.max() <= 1):
        return "binary"
    if values.min() >= -1 and values.max() <= 1:
        return "ternary"
    return "int"


def _as_int_array(name, array, ndim):
    arr = np.asarray(array)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.int64)
    if arr.size == 0 and arr.dtype.kind == "f":
        arr = arr.astype(np.int64)  # np.asarray([]) is float64
    if arr.dtype.kind not in "iu":
        raise TypeError(f"Trace {name!r} must hold integers, not {arr.dtype}")
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"Trace {name!r} holds a value above the int64 range: {arr.max()}")
    if ndim == 2 and arr.size == 0 and name == "events":
        arr = arr.reshape(0, 3)
    if arr.ndim != ndim:
        raise ValueError(f"Trace {name!r} must be {ndim}-D, not shape {arr.shape}")
    return arr.astype(np.int64, copy=False)


@dataclass(eq=False)
class Trace:
    """Events ``(step, index, value)`` plus metadata; validated on construction.

    ``events`` is an ``int64`` array ``(E, 3)`` sorted by ``(step, index)`` without duplicate
    keys; ``meta`` is the JSON-able metadata dict described in the module docstring (it is
    normalised to plain JSON types, so NumPy scalars in ``params`` are fine). Raises
    ``TraceError`` naming the first problem. Build traces with :meth:`from_dense` or
    :meth:`from_events` rather than by hand.
    """

    events: np.ndarray
    meta: dict

    def __post_init__(self):
        try:
            self.meta = json.loads(json.dumps(self.meta, default=_json_default, allow_nan=False))
        except (TypeError, ValueError) as e:
            raise TraceError(f"meta is not JSON-serialisable: {e}") from None
        problem = _check_meta(self.meta) or _check_events(self.events, self.meta)
        if problem:
            raise TraceError(problem)

    @classmethod
    def from_dense(cls, array, *, core, params, seed, source, unit="step", value_kind=None,
                   sparse=True, extra=None):
        """Build a trace from a ``(n_steps, n_index)`` integer array (bools are fine).

        With ``sparse=True`` (spike trains) only nonzero cells become events; with
        ``sparse=False`` every cell does (membrane potentials, counts). ``value_kind`` is
        inferred from the values when None — pass it explicitly when a run may happen to hold
        no -1 (a ternary trace without -1 would otherwise be labelled binary). ``extra`` adds
        keys to ``meta``.
        """
        arr = _as_int_array("array", array, 2)
        n_steps, n_index = arr.shape
        if sparse:
            step, index = np.nonzero(arr)
        else:
            step, index = np.indices(arr.shape).reshape(2, -1)
        events = np.stack([step, index, arr[step, index]], axis=1).astype(np.int64, copy=False)
        return cls._build(events, n_steps=n_steps, n_index=n_index, sparse=sparse, core=core,
                          params=params, seed=seed, source=source, unit=unit,
                          value_kind=value_kind, extra=extra)

    @classmethod
    def from_events(cls, events, *, n_steps, n_index, sparse, core, params, seed, source,
                    unit="step", value_kind=None, extra=None):
        """Build a trace from ``(step, index, value)`` rows in any order.

        Rows are sorted by ``(step, index)``; a repeated key raises ``TraceError``.
        ``value_kind`` and ``extra`` are as in :meth:`from_dense`.
        """
        ev = _as_int_array("events", events, 2)
        if ev.shape[1] != 3:
            raise ValueError(f"Trace 'events' must have shape (E, 3), not {ev.shape}")
        ev = ev[np.lexsort((ev[:, 1], ev[:, 0]))]
        return cls._build(ev, n_steps=n_steps, n_index=n_index, sparse=sparse, core=core,
                          params=params, seed=seed, source=source, unit=unit,
                          value_kind=value_kind, extra=extra)

    @classmethod
    def _build(cls, events, *, n_steps, n_index, sparse, core, params, seed, source, unit,
               value_kind, extra):
        meta = dict(extra or {})
        meta.update({
            "format": FORMAT, "version": VERSION, "core": core, "params": params,
            "seed": seed, "source": source, "n_steps": n_steps, "n_index": n_index,
            "sparse": sparse, "unit": unit,
            "value_kind": _infer_value_kind(events[:, 2]) if value_kind is None else value_kind,
        })
        return cls(np.ascontiguousarray(events), meta)

    core = property(lambda self: self.meta["core"], doc="Core name.")
    params = property(lambda self: self.meta["params"], doc="Core parameters (dict).")
    seed = property(lambda self: self.meta["seed"], doc="Stimulus seed, or None.")
    source = property(lambda self: self.meta["source"], doc='"golden", "rtl", ...')
    n_steps = property(lambda self: self.meta["n_steps"], doc="Steps covered, empty ones included.")
    n_index = property(lambda self: self.meta["n_index"], doc="Index range (e.g. neurons).")
    sparse = property(lambda self: self.meta["sparse"], doc="Absent cells are 0.")
    unit = property(lambda self: self.meta["unit"], doc='"step", "tick", "token", ...')
    value_kind = property(lambda self: self.meta["value_kind"], doc='"binary", "ternary" or "int".')
    n_events = property(lambda self: len(self.events), doc="Number of stored events.")

    def to_dense(self):
        """The ``(n_steps, n_index)`` int64 grid, absent cells 0."""
        out = np.zeros((self.n_steps, self.n_index), dtype=np.int64)
        out[self.events[:, 0], self.events[:, 1]] = self.events[:, 2]
        return out

    def head(self, n_steps):
        """The trace restricted to its first ``n_steps`` steps (fewer if it is shorter)."""
        if not _is_int(n_steps) or n_steps < 0:
            raise ValueError(f"Trace.head 'n_steps' must be a non-negative integer, not {n_steps!r}")
        n = min(n_steps, self.n_steps)
        stop = np.searchsorted(self.events[:, 0], n, side="left")
        return Trace(self.events[:stop], {**self.meta, "n_steps": n})

    def __eq__(self, other):
        if not isinstance(other, Trace):
            return NotImplemented
        return self.meta == other.meta and np.array_equal(self.events, other.events)

    __hash__ = None


@contextmanager
def atomic_path(path):
    """Yield ``(tmp_path, file)``: a new file beside ``path`` opened for binary writing.

    On normal exit the file is flushed, synced and renamed over ``path`` (``os.replace``);
    on an exception it is removed. Readers therefore see the old file or the whole new one,
    never a partial write. The file gets the usual permissions (0666 minus umask).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            yield tmp, f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_trace(trace, path):
    """Write ``trace`` to ``path`` (conventionally ``*.npz``) atomically."""
    if not isinstance(trace, Trace):
        raise TypeError(f"save_trace 'trace' must be a Trace, not {type(trace).__name__}")
    meta = np.array(json.dumps(trace.meta, sort_keys=True))
    with atomic_path(path) as (_, f):
        np.savez_compressed(f, events=trace.events, meta=meta)


def _oneline(text):
    return " ".join(str(text).split())


def load_trace(path):
    """Read and validate a trace file.

    Raises ``TraceError`` with the one-line message ``"<path>: <problem>"`` for a missing or
    unreadable file, a file that is not an npz (zip) archive or is truncated, a missing or
    malformed ``events``/``meta`` array, bad JSON, a wrong format or version, and events that
    are out of range, unsorted, duplicated or not of the declared ``value_kind``.
    """
    path = Path(path)

    def fail(problem):
        return TraceError(f"{path}: {_oneline(problem)}")

    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise fail("no such file") from None
    except OSError as e:
        raise fail(f"cannot open: {e.strerror or e}") from None
    if not zipfile.is_zipfile(path):
        if magic == b"PK\x03\x04":
            raise fail("truncated or corrupt npz file (zip directory missing)")
        raise fail("not an npz file (no zip archive)")
    read_errors = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)
    arrays = {}
    try:
        npz = np.load(path, allow_pickle=False)
    except read_errors as e:
        raise fail(f"corrupt npz file ({type(e).__name__}: {e})") from None
    with npz:
        for name in ("events", "meta"):
            if name not in npz.files:
                raise fail(f"missing array {name!r}")
            try:
                arrays[name] = npz[name]
            except read_errors as e:
                raise fail(f"cannot read array {name!r} ({type(e).__name__}: {e})") from None
    meta_arr = arrays["meta"]
    if meta_arr.ndim != 0 or meta_arr.dtype.kind != "U":
        raise fail(f"'meta' must be a 0-d unicode array, not {meta_arr.dtype} with shape {meta_arr.shape}")
    try:
        meta = json.loads(meta_arr.item())
    except json.JSONDecodeError as e:
        raise fail(f"'meta' is not valid JSON: {e}") from None
    try:
        return Trace(arrays["events"], meta)
    except TraceError as e:
        raise fail(e) from None
