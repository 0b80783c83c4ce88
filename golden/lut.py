"""Golden model of the LUT index unit and LUT layer: integer NumPy, vectorised over vectors.

Also the memory images of a LUT layer (anchors and tables, :mod:`spikeforge.firmware.image`)
and random initial contents.
"""

from numbers import Integral

import numpy as np

from spikeforge.firmware.image import MemorySpec, load_image, save_image

__all__ = ["lut", "lut_index", "lut_write", "lut_image_specs", "save_lut_image",
           "load_lut_image", "random_anchors", "random_tables"]


def _shape_int(name, value, lo, hi):
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"lut parameter {name!r} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"lut parameter {name!r} must be in {lo}..{hi}, not {value}")
    return int(value)


def _anchors(anchors, n=None):
    arr = np.asarray(anchors)
    if arr.ndim != 3 or arr.shape[2] != 2 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(f"lut anchors must be an integer array (n_t, n_c, 2), not "
                         f"{arr.dtype} {arr.shape}")
    arr = arr.astype(np.int64)
    if n is not None and arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ValueError(f"lut anchors must be in 0..{n - 1}, not {arr[(arr < 0) | (arr >= n)][0]}")
    if (arr[..., 0] == arr[..., 1]).any():
        t, r = np.argwhere(arr[..., 0] == arr[..., 1])[0]
        raise ValueError(f"lut anchor pair {r} of table {t} compares a neuron with itself (a == b)")
    return arr


def lut_index(x, anchors):
    """Indices ``j`` (int64 ``(V, n_t)``) of latency vectors ``x`` (``(V, n)`` integers).

    ``j_t = sum_r [x[a_tr] - x[b_tr] > 0] * 2**r``: strict comparison, a tie gives 0, pair 0
    is the least significant bit.
    """
    x = np.asarray(x)
    if x.ndim != 2 or (x.size and x.dtype.kind not in "iu"):
        raise ValueError(f"lut input 'x' must be an integer array (V, n), not {x.dtype} {x.shape}")
    anchors = _anchors(anchors, x.shape[1])
    x = x.astype(np.int64)
    bits = x[:, anchors[..., 0]] > x[:, anchors[..., 1]]          # (V, n_t, n_c)
    return (bits.astype(np.int64) << np.arange(anchors.shape[1])).sum(axis=-1)


def lut(x, anchors, tables):
    """LUT layer: ``(y, j)`` with ``y = sum_t tables[t, j_t]`` (int64 ``(V, y_dim)``).

    ``tables`` is ``(n_t, 2**n_c, y_dim)``; ``j`` is :func:`lut_index` of ``x``.
    """
    anchors = _anchors(anchors)
    tables = np.asarray(tables)
    n_t, n_c = anchors.shape[:2]
    if tables.ndim != 3 or tables.shape[:2] != (n_t, 2 ** n_c):
        raise ValueError(f"lut tables must have shape (n_t, 2**n_c, y_dim) = ({n_t}, {2 ** n_c}, "
                         f"y_dim), not {tables.shape}")
    j = lut_index(x, anchors)
    y = tables.astype(np.int64)[np.arange(n_t), j].sum(axis=1)
    return y, j


def lut_write(anchors, tables, n, *, kind, table, row, y, a, b):
    """Apply one beat of the LUT cores' ``w`` stream; return new ``(anchors, tables)`` copies.

    ``kind`` 0 writes ``y`` into row ``row`` of table ``table``; ``kind`` 1 writes the anchor
    pairs ``(a[r], b[r])`` of table ``table``. A write naming a table ``>= n_t``, or anchors
    with ``a[r] == b[r]`` or an index ``>= n``, is dropped whole, as in the RTL.
    """
    anchors, tables = np.array(anchors, dtype=np.int64), np.array(tables, dtype=np.int64)
    if not 0 <= table < anchors.shape[0]:
        return anchors, tables
    if kind:
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        if (a == b).any() or (a >= n).any() or (b >= n).any():
            return anchors, tables
        anchors[table, :, 0], anchors[table, :, 1] = a, b
    else:
        tables[table, row] = y
    return anchors, tables


def random_anchors(n, n_t, n_c, rng):
    """``(n_t, n_c, 2)`` random anchor pairs, ``a != b``, from ``rng`` (a NumPy Generator)."""
    a = rng.integers(0, n, size=(n_t, n_c))
    b = (a + rng.integers(1, n, size=(n_t, n_c))) % n
    return np.stack([a, b], axis=-1).astype(np.int64)


def random_tables(shape, width, rng):
    """Uniform random signed ``width``-bit values of ``shape``."""
    return rng.integers(-2 ** (width - 1), 2 ** (width - 1), size=shape).astype(np.int64)


def lut_image_specs(*, n, n_t, n_c, y_dim, w_width):
    """The memories of a LUT layer image: ``anchors`` and ``tables``."""
    n = _shape_int("n", n, 2, 1024)
    w_width = _shape_int("w_width", w_width, 2, 24)
    return {"anchors": MemorySpec((n_t, n_c, 2), 0, n - 1),
            "tables": MemorySpec((n_t, 2 ** n_c, y_dim), -2 ** (w_width - 1),
                                 2 ** (w_width - 1) - 1)}


def save_lut_image(path, *, anchors, tables, n, w_width, core="lut", params=None):
    """Write a LUT layer image (``anchors``, ``tables``) after checking shapes and ranges."""
    anchors = _anchors(anchors, n)
    tables = np.asarray(tables)
    n_t, n_c = anchors.shape[:2]
    specs = lut_image_specs(n=n, n_t=n_t, n_c=n_c, y_dim=tables.shape[-1], w_width=w_width)
    return save_image(path, core=core, params=dict(params or {}, n=n, n_t=n_t, n_c=n_c,
                                                   y_dim=int(tables.shape[-1]), w_width=w_width),
                      memories={"anchors": anchors, "tables": tables}, specs=specs)


def load_lut_image(path, *, n, n_t, n_c, y_dim, w_width, core="lut"):
    """Read a LUT layer image and check it fits these parameters; returns ``(anchors, tables)``.

    A missing file, another core's image, a wrong shape or an out-of-range value raises
    :class:`~spikeforge.firmware.image.ImageError` (a :exc:`ValueError`).
    """
    specs = lut_image_specs(n=n, n_t=n_t, n_c=n_c, y_dim=y_dim, w_width=w_width)
    _, mems = load_image(path, core=core, specs=specs)
    return _anchors(mems["anchors"], n), mems["tables"]
