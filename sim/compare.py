"""Cell-by-cell comparison of two spike traces (vectorised; fine for millions of events).

A *cell* is one ``(step, index)`` of a trace's ``n_steps × n_index`` grid. Absent cells of a
sparse trace are 0; a dense trace has no absent cells, so one rule covers both. Two traces
are equal when their grids have the same shape and every cell holds the same value; how the
cells are stored (sparse or dense) does not matter. Metadata differences (core, parameters,
seed, unit, value kind) are reported as notes but do not make traces unequal.
"""

from dataclasses import dataclass, field

import numpy as np

from .trace import Trace

__all__ = ["CompareResult", "compare_traces", "diff_cells", "format_result"]


@dataclass(frozen=True)
class CompareResult:
    """Outcome of :func:`compare_traces`.

    ``mismatches`` counts the cells of the common grid whose values differ, plus every cell
    that lies in one trace's grid but outside the other's. ``first`` is the smallest
    ``(step, index)`` among them as ``(step, index, expected, got)``; ``expected`` or ``got``
    is None when the cell is outside that trace's grid. ``n_steps`` and ``n_events`` are
    ``(expected, got)`` pairs; ``unit`` is the expected trace's unit.
    """

    equal: bool
    mismatches: int
    first: tuple | None
    n_steps: tuple
    notes: list = field(default_factory=list)
    n_events: tuple = (0, 0)
    unit: str = "step"


def _common_cells(trace, n_steps, n_index):
    """Keys ``step * n_index + index`` and values of the events inside the given grid."""
    ev = trace.events
    if trace.n_steps > n_steps or trace.n_index > n_index:
        ev = ev[(ev[:, 0] < n_steps) & (ev[:, 1] < n_index)]
    return ev[:, 0] * n_index + ev[:, 1], ev[:, 2]


def diff_cells(expected, got):
    """Differing cells of the common grid, as an int64 array of rows
    ``(step, index, expected, got)`` sorted by ``(step, index)``.

    The common grid is ``min(n_steps) × min(n_index)``; absent cells count as 0.
    """
    for name, t in (("expected", expected), ("got", got)):
        if not isinstance(t, Trace):
            raise TypeError(f"diff_cells {name!r} must be a Trace, not {type(t).__name__}")
    n_steps = min(expected.n_steps, got.n_steps)
    n_index = min(expected.n_index, got.n_index)
    if n_steps == 0 or n_index == 0:
        return np.zeros((0, 4), dtype=np.int64)
    ka, va = _common_cells(expected, n_steps, n_index)
    kb, vb = _common_cells(got, n_steps, n_index)
    # Keys are sorted because events are sorted by (step, index) and index < n_index.
    if len(kb):
        pos = np.minimum(np.searchsorted(kb, ka), len(kb) - 1)
        in_b = kb[pos] == ka
    else:
        pos = np.zeros(len(ka), dtype=np.intp)
        in_b = np.zeros(len(ka), dtype=bool)
    got_at_a = np.where(in_b, vb[pos] if len(kb) else 0, 0)
    diff_a = va != got_at_a
    matched = np.zeros(len(kb), dtype=bool)
    matched[pos[in_b]] = True
    diff_b = ~matched & (vb != 0)  # cells only `got` stores; `expected` holds 0 there
    keys = np.concatenate([ka[diff_a], kb[diff_b]])
    exp = np.concatenate([va[diff_a], np.zeros(diff_b.sum(), dtype=np.int64)])
    gotv = np.concatenate([got_at_a[diff_a], vb[diff_b]])
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    return np.stack([keys // n_index, keys % n_index, exp[order], gotv[order]], axis=1)


def _value_at(trace, step, index):
    if step >= trace.n_steps or index >= trace.n_index:
        return None
    ev = trace.events
    lo = np.searchsorted(ev[:, 0], step, side="left")
    hi = np.searchsorted(ev[:, 0], step, side="right")
    j = lo + np.searchsorted(ev[lo:hi, 1], index)
    return int(ev[j, 2]) if j < hi and ev[j, 1] == index else 0


def _first_outside(trace, n_steps, n_index):
    """Smallest cell of ``trace``'s grid outside ``n_steps × n_index``, or None."""
    if trace.n_steps == 0 or trace.n_index == 0:
        return None
    if n_steps == 0 or n_index == 0:
        return (0, 0)
    if trace.n_index > n_index:
        return (0, n_index)
    if trace.n_steps > n_steps:
        return (n_steps, 0)
    return None


def _meta_notes(a, b):
    notes = []
    if a.n_steps != b.n_steps:
        notes.append(f"n_steps differ: {a.n_steps} vs {b.n_steps}")
    if a.n_index != b.n_index:
        notes.append(f"n_index differ: {a.n_index} vs {b.n_index}")
    for key in ("core", "seed", "unit", "value_kind"):
        if a.meta[key] != b.meta[key]:
            notes.append(f"{key} differs: {a.meta[key]!r} vs {b.meta[key]!r}")
    if a.params != b.params:
        keys = sorted(k for k in a.params.keys() | b.params.keys()
                      if a.params.get(k, "<absent>") != b.params.get(k, "<absent>"))
        notes.append("params differ: " + ", ".join(
            f"{k}={a.params.get(k, '<absent>')!r} vs {b.params.get(k, '<absent>')!r}" for k in keys))
    return notes


def compare_traces(expected, got):
    """Compare two traces cell by cell; see :class:`CompareResult`."""
    cells = diff_cells(expected, got)
    n_steps = min(expected.n_steps, got.n_steps)
    n_index = min(expected.n_index, got.n_index)
    common = n_steps * n_index
    outside = (expected.n_steps * expected.n_index - common) + (got.n_steps * got.n_index - common)
    candidates = [tuple(int(x) for x in cells[0])] if len(cells) else []
    for t in (expected, got):
        cell = _first_outside(t, n_steps, n_index)
        if cell is not None:
            candidates.append((*cell, _value_at(expected, *cell), _value_at(got, *cell)))
    first = min(candidates, key=lambda c: c[:2]) if candidates else None
    mismatches = int(len(cells)) + outside
    return CompareResult(
        equal=mismatches == 0, mismatches=mismatches, first=first,
        n_steps=(expected.n_steps, got.n_steps), notes=_meta_notes(expected, got),
        n_events=(expected.n_events, got.n_events), unit=expected.unit)


def _plural(n, word):
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def format_result(result, name_a="expected", name_b="got"):
    """A short human summary: one verdict line, then one indented line per note.

    ``MISMATCH: 17 differing events; first at step 12, index 3: expected 1, got 0 (a vs b)``
    or ``EQUAL: 12345 events over 1000 steps (a vs b)``.
    """
    names = f"({name_a} vs {name_b})"
    if result.equal:
        line = (f"EQUAL: {_plural(result.n_events[0], 'event')} over "
                f"{_plural(result.n_steps[0], result.unit)} {names}")
    else:
        step, index, exp, got = result.first
        def show(v):
            return "nothing (outside its grid)" if v is None else str(v)
        line = (f"MISMATCH: {result.mismatches} differing event{'' if result.mismatches == 1 else 's'}; "
                f"first at {result.unit} {step}, index {index}: expected {show(exp)}, "
                f"got {show(got)} {names}")
    return "\n".join([line] + [f"  note: {n}" for n in result.notes])
