"""Golden model of the attention LUT: integer NumPy, vectorised over positions.

Also its memory images (anchors, value tables, positional codes).
"""

import numpy as np

from spikeforge.firmware.image import MemorySpec, load_image, save_image

from .lut import lut_index

__all__ = ["attention_positions", "lut_attention", "lut_attention_z", "attention_image_specs",
           "save_attention_image", "load_attention_image"]


def attention_positions(first, start=-1):
    """Position of every row within its sequence: 0 where ``first`` is set (and at row 0 when
    ``start`` is -1), else one more than the row before. ``start`` is the position of the row
    just before these (for a stream cut into pieces)."""
    first = np.asarray(first, dtype=bool).reshape(-1)
    pos = np.empty(len(first), dtype=np.int64)
    prev = start
    for k, f in enumerate(first):
        prev = 0 if (f or prev < 0) else prev + 1
        pos[k] = prev
    return pos


def _check(jv, tables, pe, n_c, p, ctx, causal_self):
    n_t = jv.shape[1]
    if tables.ndim != 3 or tables.shape[:2] != (n_t, 2 ** (2 * n_c + p)):
        raise ValueError(f"lut_attention tables must have shape (n_t, 2**(2*n_c+p), y_dim) = "
                         f"({n_t}, {2 ** (2 * n_c + p)}, y_dim), not {tables.shape}")
    D = ctx if causal_self else ctx - 1
    if pe.shape != (n_t, D):
        raise ValueError(f"lut_attention pe must have shape (n_t, D) = ({n_t}, {D}), "
                         f"not {pe.shape}")
    if pe.size and (pe.min() < 0 or pe.max() >= 2 ** p):
        raise ValueError(f"lut_attention pe codes must be in 0..{2 ** p - 1}")


def lut_attention_z(jv, pos, tables, pe, *, n_c, p, ctx, causal_self=False, rows=None):
    """``z`` (int64 ``(len(rows), y_dim)``) from cached indices ``jv`` ``(S, n_t)``.

    Row ``s`` at sequence position ``pos[s]`` attends rows ``s - d`` for
    ``d = d_min .. min(pos[s], ctx - 1)`` (``d_min`` 1, or 0 with ``causal_self``)::

        z[s] = sum_d sum_t tables[t, (jv[s,t] << (n_c+p)) | (jv[s-d,t] << p) | pe[t, d-d_min]]
    """
    jv = np.asarray(jv, dtype=np.int64)
    pos = np.asarray(pos, dtype=np.int64)
    tables = np.asarray(tables, dtype=np.int64)
    pe = np.asarray(pe, dtype=np.int64)
    _check(jv, tables, pe, n_c, p, ctx, causal_self)
    rows = np.arange(len(jv)) if rows is None else np.asarray(rows, dtype=np.int64)
    n_t = jv.shape[1]
    d_min = 0 if causal_self else 1
    z = np.zeros((len(rows), tables.shape[2]), dtype=np.int64)
    t_idx = np.arange(n_t)
    for d in range(d_min, ctx):
        ok = pos[rows] >= d
        if not ok.any():
            break
        q = rows[ok]
        J = (jv[q] << (n_c + p)) | (jv[q - d] << p) | pe[:, d - d_min]
        z[ok] += tables[t_idx, J].sum(axis=1)
    return z


def lut_attention(x, first, anchors, tables, pe, *, p, ctx, causal_self=False):
    """Attention LUT over a stream of positions: ``(z, jv)``.

    ``x``: ``(S, n)`` latency vectors, one per position; ``first``: ``(S,)``, true where a
    sequence starts (row 0 always does). ``jv = lut_index(x, anchors)`` (query and key share the
    anchors); ``z`` as in :func:`lut_attention_z`. Beyond ``ctx`` positions the window slides:
    only the ``ctx - 1`` most recent earlier positions are attended.
    """
    anchors = np.asarray(anchors)
    jv = lut_index(x, anchors)
    z = lut_attention_z(jv, attention_positions(first), tables, pe, n_c=anchors.shape[1], p=p,
                        ctx=ctx, causal_self=causal_self)
    return z, jv


def attention_image_specs(*, n, n_t, n_c, p, ctx, y_dim, w_width, causal_self=False):
    """The memories of an attention LUT image: ``anchors``, ``tables``, ``pe``."""
    D = ctx if causal_self else ctx - 1
    return {"anchors": MemorySpec((n_t, n_c, 2), 0, n - 1),
            "tables": MemorySpec((n_t, 2 ** (2 * n_c + p), y_dim), -2 ** (w_width - 1),
                                 2 ** (w_width - 1) - 1),
            "pe": MemorySpec((n_t, D), 0, 2 ** p - 1)}


def save_attention_image(path, *, anchors, tables, pe, n, p, ctx, w_width, causal_self=False,
                         params=None):
    anchors, tables = np.asarray(anchors), np.asarray(tables)
    n_t, n_c = anchors.shape[:2]
    shape = dict(n=n, n_t=n_t, n_c=n_c, p=p, ctx=ctx, y_dim=int(tables.shape[-1]),
                 w_width=w_width, causal_self=causal_self)
    return save_image(path, core="lut_attention", params=dict(params or {}, **shape),
                      memories={"anchors": anchors, "tables": tables, "pe": pe},
                      specs=attention_image_specs(**shape))


def load_attention_image(path, **shape):
    """``(anchors, tables, pe)`` of an attention image checked against ``shape`` (the keyword
    arguments of :func:`attention_image_specs`); a mismatch raises ``ImageError``."""
    _, mems = load_image(path, core="lut_attention", specs=attention_image_specs(**shape))
    if (mems["anchors"][..., 0] == mems["anchors"][..., 1]).any():
        from spikeforge.firmware.image import ImageError
        raise ImageError(f"{path}: an anchor pair compares a neuron with itself (a == b)")
    return mems["anchors"], mems["tables"], mems["pe"]
