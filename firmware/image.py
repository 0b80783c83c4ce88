"""Memory images: the integer contents of a design's memories (weights, LUT rows, anchors).

Format (version 1): a NumPy ``.npz`` (no pickles) holding one integer array per memory, named
by the memory, plus ``meta``, a 0-d string array with a JSON object::

    {"format": "spikeforge-image", "version": 1, "core": "...", "params": {...},
     "memories": {"name": {"shape": [...], "lo": int, "hi": int}, ...}}

``lo``/``hi`` are the inclusive value range each entry must fit (e.g. -1..1 for ternary
weights). The same image can be baked into a bitstream (as memory init) or written at run time
through a core's write stream. Writes are atomic: no half-written image is ever left behind.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from spikeforge.sim.trace import atomic_path

__all__ = ["ImageError", "MemorySpec", "save_image", "load_image"]

FORMAT, VERSION = "spikeforge-image", 1


class ImageError(ValueError):
    """A memory image is missing, unreadable or does not fit the design."""


class MemorySpec(tuple):
    """``(shape, lo, hi)`` expected for one memory."""

    def __new__(cls, shape, lo, hi):
        return super().__new__(cls, (tuple(int(s) for s in shape), int(lo), int(hi)))


def _check(name, arr, spec, where):
    shape, lo, hi = spec
    if arr.dtype.kind not in "iu":
        raise ImageError(f"{where}: memory {name!r} must hold integers, not {arr.dtype}")
    if tuple(arr.shape) != shape:
        raise ImageError(f"{where}: memory {name!r} has shape {tuple(arr.shape)}, expected {shape}")
    if arr.size and (arr.min() < lo or arr.max() > hi):
        bad = arr[(arr < lo) | (arr > hi)].flat[0]
        raise ImageError(f"{where}: memory {name!r} holds {int(bad)}, outside {lo}..{hi}")


def save_image(path, *, core: str, params: dict, memories: dict, specs: dict) -> Path:
    """Validate ``memories`` ({name: int array}) against ``specs`` ({name: MemorySpec}) and write."""
    path = Path(path)
    if set(memories) != set(specs):
        raise ImageError(f"{path}: memories {sorted(memories)} do not match {sorted(specs)}")
    arrays = {}
    for name, arr in memories.items():
        arr = np.asarray(arr)
        _check(name, arr, specs[name], str(path))
        arrays[name] = arr.astype(np.int64)
    meta = {"format": FORMAT, "version": VERSION, "core": core, "params": params,
            "memories": {n: {"shape": list(specs[n][0]), "lo": specs[n][1], "hi": specs[n][2]}
                         for n in specs}}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as (_, f):
        np.savez_compressed(f, meta=np.array(json.dumps(meta)), **arrays)
    return path


def load_image(path, *, core: str | None = None, specs: dict | None = None):
    """Read an image; returns ``(meta, {name: int64 array})``.

    With ``core``/``specs``, also checks it belongs to that core and every memory has the
    expected shape and range. Every problem raises :class:`ImageError` naming file and cause.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such memory image")
    try:
        # Open the file ourselves: np.load leaks the handle when the zip is truncated.
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            files = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ImageError(f"{path}: not a readable memory image ({exc.__class__.__name__})") from None
    if "meta" not in files:
        raise ImageError(f"{path}: not a memory image (no 'meta' entry)")
    try:
        meta = json.loads(str(files.pop("meta")))
    except (json.JSONDecodeError, TypeError):
        raise ImageError(f"{path}: 'meta' is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ImageError(f"{path}: not a {FORMAT} file")
    if meta.get("version") != VERSION:
        raise ImageError(f"{path}: image version {meta.get('version')!r} is not supported (want {VERSION})")
    if core is not None and meta.get("core") != core:
        raise ImageError(f"{path}: image is for core {meta.get('core')!r}, not {core!r}")
    declared = meta.get("memories", {})
    if set(declared) != set(files):
        raise ImageError(f"{path}: memories {sorted(files)} do not match the declared {sorted(declared)}")
    for name, d in declared.items():
        _check(name, files[name], MemorySpec(d["shape"], d["lo"], d["hi"]), str(path))
    if specs is not None:
        if set(specs) != set(files):
            raise ImageError(f"{path}: memories {sorted(files)}, expected {sorted(specs)}")
        for name, spec in specs.items():
            _check(name, files[name], spec, str(path))
    return meta, {k: v.astype(np.int64) for k, v in files.items()}
