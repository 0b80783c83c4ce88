"""Golden model of the event-driven LUT index unit, and latency vectors as spike events."""

import numpy as np

from spikeforge.firmware.image import ImageError, load_image

__all__ = ["lut_event", "latencies_to_events", "load_anchors"]


def _anchors(anchors, n):
    arr = np.asarray(anchors)
    if arr.ndim != 3 or arr.shape[2] != 2 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(f"lut_event anchors must be an integer array (n_t, n_c, 2), not "
                         f"{arr.dtype} {arr.shape}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ValueError(f"lut_event anchors must be in 0..{n - 1}, not "
                         f"{arr[(arr < 0) | (arr >= n)][0]}")
    if (arr[..., 0] == arr[..., 1]).any():
        t, r = np.argwhere(arr[..., 0] == arr[..., 1])[0]
        raise ValueError(f"lut_event anchor pair {r} of table {t} compares a neuron with "
                         f"itself (a == b)")
    return arr


def lut_event(neuron, time, spike, first, last, anchors, *, n):
    """Indices of every completed window of an event stream: int64 ``(W, n_t)``.

    The five arrays are the beats' fields, in stream order. A window runs from a ``first`` beat
    (or the beat after a ``last``) to the next ``last`` beat; a ``first`` inside an open window
    discards it. Within a window, a neuron's latency is the time of its first spike, where an
    event's time is the running maximum of the times seen so far (time never goes back);
    beats with ``spike = 0`` or ``neuron >= n`` carry no event; a neuron without an event has
    the latest latency of all. Then ``j_t = sum_r [lat[b_tr] < lat[a_tr]] * 2**r``.
    """
    anchors = _anchors(anchors, n)
    neuron, time, spike, first, last = (np.asarray(v, dtype=np.int64).reshape(-1)
                                        for v in (neuron, time, spike, first, last))
    if not len(neuron) == len(time) == len(spike) == len(first) == len(last):
        raise ValueError("lut_event inputs 'neuron', 'time', 'spike', 'first', 'last' must "
                         "have one length")
    never = np.iinfo(np.int64).max
    out = []
    start = 0
    for k in range(len(neuron)):
        if first[k]:
            start = k
        if not last[k]:
            continue
        sel = slice(start, k + 1)
        ok = (spike[sel] != 0) & (neuron[sel] < n)
        when = np.maximum.accumulate(np.where(ok, time[sel], 0)) if ok.any() else time[sel]
        lat = np.full(n, never)
        np.minimum.at(lat, neuron[sel][ok], when[ok])
        bits = lat[anchors[..., 1]] < lat[anchors[..., 0]]
        out.append((bits.astype(np.int64) << np.arange(anchors.shape[1])).sum(axis=-1))
        start = k + 1
    return np.array(out, dtype=np.int64).reshape(len(out), anchors.shape[0])


def latencies_to_events(x, *, rng=None, silent_latest=False):
    """Spike events of one latency vector ``x``: arrays ``(neuron, time)`` in firing order.

    Neuron ``u`` fires at ``x[u] - min(x)``; simultaneous spikes come in a random order (from
    ``rng``, else by neuron). With ``silent_latest``, the neurons of latency ``max(x)`` stay
    silent instead, which gives the same indices (a silent neuron fires after every other one
    and ties with the other silent ones), unless every neuron shares one latency.
    """
    x = np.asarray(x, dtype=np.int64)
    t = x - x.min()
    keep = np.ones(len(x), dtype=bool)
    if silent_latest and t.max() > 0:
        keep = t < t.max()
    order = rng.permutation(len(x)) if rng is not None else np.arange(len(x))
    order = order[keep[order]]
    order = order[np.argsort(t[order], kind="stable")]
    return order, t[order]


def load_anchors(path, *, n, n_t, n_c):
    """The ``anchors`` memory of any image that has one (e.g. a LUT layer image), checked."""
    _, mems = load_image(path)
    arr = mems.get("anchors")
    if arr is None:
        raise ImageError(f"{path}: image has no 'anchors' memory")
    if arr.shape != (n_t, n_c, 2):
        raise ImageError(f"{path}: memory 'anchors' has shape {tuple(arr.shape)}, "
                         f"expected {(n_t, n_c, 2)}")
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ImageError(f"{path}: memory 'anchors' holds {int(arr.max())}, outside 0..{n - 1}")
    return _anchors(arr, n)
