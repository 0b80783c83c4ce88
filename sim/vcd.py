"""Export a trace as a Value Change Dump (IEEE 1364 §18) for GTKWave or Surfer.

One variable per index: ``spike_<index>`` (1 bit) for binary traces, ``spike_<index>``
(2-bit two's complement, the wire encoding of ternary values) for ternary traces and
``value_<index>`` (32-bit ``integer``) for int traces. VCD time is the trace's step, so the
timescale only sets the label a viewer shows. A cell holds its value for exactly one step:
a lone spike at step ``s`` is a one-step pulse (up at ``s``, back to 0 at ``s + 1``), and a
value repeated on consecutive steps is one change. The dump ends with a timestamp at
``n_steps`` (where a sparse trace's last pulses fall back to 0), so the last step has its
full width.
"""

import json
import re

import numpy as np

from .trace import Trace, atomic_path

__all__ = ["export_vcd", "vcd_identifier"]

_TIMESCALE = re.compile(r"^(1|10|100) ?(s|ms|us|ns|ps|fs)$")
_CHUNK = 1 << 16  # value changes formatted per write


def vcd_identifier(n):
    """The ``n``-th VCD identifier code: ``!``..``~``, then two characters, and so on."""
    chars = []
    while True:
        chars.append(chr(33 + n % 94))
        n //= 94
        if n == 0:
            return "".join(chars)
        n -= 1  # bijective base 94, so every length is used before the next one


def _changes(trace):
    """Value changes after time 0 as rows ``(time, index, value)`` sorted by time then index,
    and the values at time 0."""
    ev = trace.events[trace.events[:, 2] != 0]  # absent and stored 0 are the same value
    n_index = trace.n_index
    initial = np.zeros(n_index, dtype=np.int64)
    first = ev[:, 0] == 0
    initial[ev[first, 1]] = ev[first, 2]
    keys = ev[:, 0] * n_index + ev[:, 1]

    def lookup(k):
        pos = np.minimum(np.searchsorted(keys, k), max(len(keys) - 1, 0))
        found = (keys[pos] == k) if len(keys) else np.zeros(len(k), dtype=bool)
        return found, ev[pos, 2] if len(keys) else np.zeros(len(k), dtype=np.int64)

    has_prev, prev_val = lookup(keys - n_index)
    rises = ev[(ev[:, 0] > 0) & ~(has_prev & (prev_val == ev[:, 2]))]
    has_next, _ = lookup(keys + n_index)
    # A dense trace's values simply stop at n_steps; a sparse trace's last pulses still end.
    falls = ev[~has_next & ((ev[:, 0] + 1 < trace.n_steps) | trace.sparse)].copy()
    falls[:, 0] += 1
    falls[:, 2] = 0
    changes = np.concatenate([rises, falls])
    return changes[np.lexsort((changes[:, 1], changes[:, 0]))], initial


def export_vcd(trace, path, *, timescale="1 us"):
    """Write ``trace`` to ``path`` as a VCD file, atomically.

    ``timescale`` is ``"1 us"``-style (1, 10 or 100 and s, ms, us, ns, ps or fs). Int traces
    must fit in 32-bit signed values. Output is written in chunks; memory grows with the
    number of events, never with the ``n_steps × n_index`` grid.
    """
    if not isinstance(trace, Trace):
        raise TypeError(f"export_vcd 'trace' must be a Trace, not {type(trace).__name__}")
    m = _TIMESCALE.match(timescale) if isinstance(timescale, str) else None
    if m is None:
        raise ValueError(f"export_vcd 'timescale' must look like '1 us' (1/10/100 and "
                         f"s/ms/us/ns/ps/fs), not {timescale!r}")
    kind = trace.value_kind
    values = trace.events[:, 2]
    if kind == "int" and len(values) and (values.min() < -2**31 or values.max() >= 2**31):
        bad = int(values[(values < -2**31) | (values >= 2**31)][0])
        raise ValueError(f"export_vcd: value {bad} does not fit a 32-bit signed integer")

    ids = [vcd_identifier(i) for i in range(trace.n_index)]
    if kind == "binary":
        decl = "$var wire 1 {id} spike_{i} $end"
        fmt = {0: "0{}", 1: "1{}"}.get
    elif kind == "ternary":
        decl = "$var wire 2 {id} spike_{i} [1:0] $end"
        fmt = {0: "b00 {}", 1: "b01 {}", -1: "b11 {}"}.get
    else:
        decl = "$var integer 32 {id} value_{i} $end"

        def fmt(v):
            return f"b{v & 0xFFFFFFFF:b} {{}}"

    scope = re.sub(r"\W", "_", trace.core)
    info = {k: trace.meta[k] for k in ("core", "source", "seed", "unit", "value_kind", "n_steps")}
    info["params"] = trace.params
    comment = json.dumps(info, sort_keys=True).replace("$end", "$ end")
    header = [
        "$version spikeforge trace export $end",
        f"$comment {comment} $end",
        f"$timescale {m.group(1)} {m.group(2)} $end",
        f"$scope module {scope} $end",
        *(decl.format(id=ids[i], i=i) for i in range(trace.n_index)),
        "$upscope $end",
        "$enddefinitions $end",
    ]
    changes, initial = _changes(trace)

    with atomic_path(path) as (_, f):
        def write(lines):
            f.write(("\n".join(lines) + "\n").encode("ascii"))

        write(header)
        write(["#0", "$dumpvars",
               *(fmt(int(v)).format(ids[i]) for i, v in enumerate(initial)), "$end"])
        last_time = 0
        for start in range(0, len(changes), _CHUNK):
            lines = []
            for t, i, v in changes[start:start + _CHUNK].tolist():
                if t != last_time:
                    lines.append(f"#{t}")
                    last_time = t
                lines.append(fmt(v).format(ids[i]))
            write(lines)
        if trace.n_steps > last_time:
            write([f"#{trace.n_steps}"])
