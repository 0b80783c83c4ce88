"""Spec of the LUT layer (index unit + tables) for the generic tools."""

import functools

import numpy as np

from spikeforge.cores import CoreSpec
from spikeforge.golden.lut import (load_lut_image, lut as golden_lut, lut_write, random_anchors,
                                   random_tables)
from spikeforge.rtl.lut import LUT, check_lut_params

SHAPE = ("n", "x_width", "n_t", "n_c", "y_dim", "w_width", "y_width", "banks")

# `spikeforge sim lut` defaults: 8 tables of 16 rows in 2 banks, 4 cycles per vector.
DEFAULTS = {"n": 16, "x_width": 6, "n_t": 8, "n_c": 4, "y_dim": 8, "w_width": 8,
            "y_width": None, "banks": 2, "image": "", "table_seed": 1}


# A LUT layer of the byte-level LM: 8 tables of 2**6 rows of 16 values, one bank.
LM_FFN = {"n": 16, "x_width": 8, "n_t": 8, "n_c": 6, "y_dim": 16, "w_width": 8, "banks": 1}


def resolve(params):
    """Validate the shape, fill in ``y_width``, and check the image (if any) fits."""
    out = dict(params)
    out.update(check_lut_params(**{k: params[k] for k in SHAPE}))
    if not isinstance(out["image"], str):
        raise TypeError(f"LUT parameter 'image' must be a path or '', not {out['image']!r}")
    if not isinstance(out["table_seed"], int) or isinstance(out["table_seed"], bool):
        raise TypeError(f"LUT parameter 'table_seed' must be an integer, not {out['table_seed']!r}")
    contents(out)
    return out


def _key(params):
    return tuple(params[k] for k in ("n", "n_t", "n_c", "y_dim", "w_width", "image", "table_seed"))


@functools.lru_cache(maxsize=8)
def _contents(key):
    n, n_t, n_c, y_dim, w_width, image, seed = key
    if image:
        return load_lut_image(image, n=n, n_t=n_t, n_c=n_c, y_dim=y_dim, w_width=w_width)
    rng = np.random.default_rng(seed)
    return (random_anchors(n, n_t, n_c, rng),
            random_tables((n_t, 2 ** n_c, y_dim), w_width, rng))


def contents(params):
    """Initial ``(anchors, tables)``: from ``image`` if set, else random from ``table_seed``."""
    anchors, tables = _contents(_key(params))
    return anchors.copy(), tables.copy()


def build(**params):
    anchors, tables = contents(params)
    return LUT(**{k: params[k] for k in SHAPE}, anchors=anchors, tables=tables)


def random_vectors(params, count, rng):
    """Latency vectors: full range, narrow (many ties) and small non-negative, mixed per vector."""
    n, xw = params["n"], params["x_width"]
    lo, hi = -2 ** (xw - 1), 2 ** (xw - 1) - 1
    full = rng.integers(lo, hi + 1, size=(count, n))
    narrow = np.clip(rng.integers(-2, 3, size=(count, n)), lo, hi)
    spikes = rng.integers(0, min(hi, 7) + 1, size=(count, n))
    mode = rng.integers(0, 3, size=(count, 1))
    return np.where(mode == 0, full, np.where(mode == 1, narrow, spikes))


def random_writes(params, count, rng):
    """Write beats: table rows and anchor sets, some of them invalid (dropped by the core)."""
    n, n_t, n_c, y_dim, ww = (params[k] for k in ("n", "n_t", "n_c", "y_dim", "w_width"))
    t_span = 1 << max(0, (n_t - 1).bit_length())     # every value the 'table' field can carry
    a_span = 1 << max(0, (n - 1).bit_length())
    beats = []
    for _ in range(count):
        anchors = random_anchors(n, 1, n_c, rng)[0]
        beat = {"kind": int(rng.integers(0, 2)), "table": int(rng.integers(0, n_t)),
                "row": int(rng.integers(0, 2 ** n_c)),
                "y": random_tables((y_dim,), ww, rng).tolist(),
                "a": anchors[:, 0].tolist(), "b": anchors[:, 1].tolist()}
        roll = rng.random()
        if roll < 0.05:
            beat["b"][0] = beat["a"][0]                       # a == b: dropped
        elif roll < 0.1 and a_span > n:
            beat["a"][-1] = int(rng.integers(n, a_span))      # neuron out of range: dropped
        elif roll < 0.15 and t_span > n_t:
            beat["table"] = int(rng.integers(n_t, t_span))    # no such table: dropped
        beats.append(beat)
    return beats


def stimulus(params, steps, rng):
    """Phases: vectors, then alternately a burst of writes and more vectors."""
    chunks = 1 + min(3, steps // 50)
    bounds = np.linspace(0, steps, chunks + 1).astype(int)
    x = random_vectors(params, steps, rng)
    phases = []
    for c in range(chunks):
        if c:
            phases.append({"w": random_writes(params, int(rng.integers(1, 40)), rng)})
        phases.append({"i": [{"x": row.tolist(), "first": int(k == 0), "last": int(k == steps - 1)}
                             for k, row in zip(range(bounds[c], bounds[c + 1]),
                                               x[bounds[c]:bounds[c + 1]])]})
    return phases


def golden(params, stim):
    anchors, tables = contents(params)
    out = []
    for phase in stim if isinstance(stim, list) else [stim]:
        for beat in phase.get("w", ()):
            anchors, tables = lut_write(anchors, tables, params["n"], **beat)
        beats = phase.get("i", ())
        if beats:
            y, j = golden_lut(np.array([b["x"] for b in beats]), anchors, tables)
            out += [{"y": yy.tolist(), "j": jj.tolist(), "first": b["first"], "last": b["last"]}
                    for yy, jj, b in zip(y, j, beats)]
    return {"o": out}


def to_dense(params, outputs):
    """One trace row per vector: the ``y_dim`` outputs, then the ``n_t`` indices."""
    beats = outputs["o"]
    width = params["y_dim"] + params["n_t"]
    if not beats:
        return np.zeros((0, width), dtype=np.int64), "int"
    return np.array([b["y"] + b["j"] for b in beats], dtype=np.int64), "int"


SPECS = [CoreSpec(
    name="lut",
    summary="Manifesto LUT layer: anchor-pair index unit + table rows summed, one row per bank per cycle",
    build=build, defaults=DEFAULTS, stimulus=stimulus, golden=golden, to_dense=to_dense,
    resolve=resolve, step_unit="vector", demo_steps=2000,
    build_defaults={"n": 32, "x_width": 8, "n_t": 16, "n_c": 6, "y_dim": 32, "w_width": 8,
                    "banks": 4},
    # The size of a LUT layer of the byte-level LM (rtl/lm.py).
    bench_builds=[LM_FFN],
    bench_sims=[(LM_FFN, 200), (dict(LM_FFN, banks=4), 200)],
)]
