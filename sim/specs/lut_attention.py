"""Spec of the attention LUT for the generic tools."""

import functools

import numpy as np

from spikeforge.cores import CoreSpec
from spikeforge.golden.lut import lut_index, random_anchors, random_tables
from spikeforge.golden.lut_attention import (attention_positions, load_attention_image,
                                             lut_attention_z)
from spikeforge.rtl.lut_attention import LUTAttention, check_lut_attention_params

from .lut import random_vectors

SHAPE = ("n", "x_width", "n_t", "n_c", "p", "ctx", "y_dim", "w_width", "y_width", "banks",
         "causal_self")

# `spikeforge sim lut_attention` defaults: context 8, 4 tables of 2**8 rows in 2 banks.
DEFAULTS = {"n": 16, "x_width": 6, "n_t": 4, "n_c": 3, "p": 2, "ctx": 8, "y_dim": 8,
            "w_width": 8, "y_width": None, "banks": 2, "causal_self": False, "image": "",
            "table_seed": 1}


# The attention layer of the byte-level LM: 8 tables of 2**10 rows of 16 values, context 64.
LM_ATT = {"n": 16, "x_width": 8, "n_t": 8, "n_c": 4, "p": 2, "ctx": 64, "y_dim": 16,
          "w_width": 8, "banks": 1}


def resolve(params):
    out = dict(params)
    out.update(check_lut_attention_params(**{k: params[k] for k in SHAPE}))
    if not isinstance(out["image"], str):
        raise TypeError(f"LUT attention parameter 'image' must be a path or '', "
                        f"not {out['image']!r}")
    if not isinstance(out["table_seed"], int) or isinstance(out["table_seed"], bool):
        raise TypeError(f"LUT attention parameter 'table_seed' must be an integer, "
                        f"not {out['table_seed']!r}")
    contents(out)
    return out


def _dims(params):
    return {k: params[k] for k in ("n", "n_t", "n_c", "p", "ctx", "y_dim", "w_width",
                                   "causal_self")}


@functools.lru_cache(maxsize=8)
def _contents(key, image, seed):
    dims = dict(key)
    if image:
        return load_attention_image(image, **dims)
    rng = np.random.default_rng(seed)
    n, n_t, n_c, p = dims["n"], dims["n_t"], dims["n_c"], dims["p"]
    D = dims["ctx"] - (0 if dims["causal_self"] else 1)
    return (random_anchors(n, n_t, n_c, rng),
            random_tables((n_t, 2 ** (2 * n_c + p), dims["y_dim"]), dims["w_width"], rng),
            rng.integers(0, 2 ** p, size=(n_t, D)))


def contents(params):
    """Initial ``(anchors, tables, pe)``: from ``image`` if set, else random from ``table_seed``."""
    arrays = _contents(tuple(sorted(_dims(params).items())), params["image"],
                       params["table_seed"])
    return tuple(a.copy() for a in arrays)


def build(**params):
    anchors, tables, pe = contents(params)
    return LUTAttention(**{k: params[k] for k in SHAPE}, anchors=anchors, tables=tables, pe=pe)


def random_writes(params, count, rng):
    n, n_t, n_c, p, y_dim, ww = (params[k] for k in ("n", "n_t", "n_c", "p", "y_dim", "w_width"))
    iw = 2 * n_c + p
    beats = []
    for _ in range(count):
        pairs = random_anchors(n, 1, n_c, rng)[0]
        kind = int(rng.choice([0, 0, 1, 2, 3])) if p else int(rng.choice([0, 0, 1, 3]))
        beat = {"kind": kind, "table": int(rng.integers(0, n_t)),
                "addr": int(rng.integers(0, 2 ** iw)), "y": random_tables((y_dim,), ww, rng).tolist(),
                "a": pairs[:, 0].tolist(), "b": pairs[:, 1].tolist(),
                "pe": int(rng.integers(0, 2 ** p))}
        if kind == 2 and rng.random() < 0.8:
            beat["addr"] = int(rng.integers(0, params["ctx"] - (0 if params["causal_self"] else 1)))
        if kind == 1 and rng.random() < 0.1:
            beat["b"][0] = beat["a"][0]
        beats.append(beat)
    return beats


def stimulus(params, steps, rng):
    """Sequences (mostly up to ``ctx`` positions, some two or three times longer, so the window
    slides) with bursts of table, anchor and code rewrites between blocks, sometimes
    mid-sequence."""
    ctx = params["ctx"]
    first = np.zeros(steps, dtype=bool)
    s = 0
    while s < steps:
        first[s] = True
        s += int(rng.integers(1, ctx + 1)) if rng.random() < 0.7 else int(rng.integers(ctx, 3 * ctx + 1))
    if rng.random() < 0.3:
        first[0] = False                      # the first beat after reset starts a sequence anyway
    last = np.roll(first, -1)
    last[-1] = True
    x = random_vectors(params, steps, rng)
    chunks = 1 + min(3, steps // 50)
    bounds = np.linspace(0, steps, chunks + 1).astype(int)
    phases = []
    for c in range(chunks):
        if c:
            phases.append({"w": random_writes(params, int(rng.integers(1, 30)), rng)})
        phases.append({"i": [{"x": x[k].tolist(), "first": int(first[k]), "last": int(last[k])}
                             for k in range(bounds[c], bounds[c + 1])]})
    return phases


def apply_write(params, anchors, tables, pe, beat):
    """One ``w`` beat applied to the golden memories (in place), with the core's drop rules."""
    n, t = params["n"], beat["table"]
    if t >= params["n_t"]:
        return
    if beat["kind"] == 0:
        tables[t, beat["addr"]] = beat["y"]
    elif beat["kind"] == 1:
        a, b = np.array(beat["a"]), np.array(beat["b"])
        if not ((a == b).any() or (a >= n).any() or (b >= n).any()):
            anchors[t, :, 0], anchors[t, :, 1] = a, b
    elif beat["kind"] == 2 and beat["addr"] < pe.shape[1]:
        pe[t, beat["addr"]] = beat["pe"]


def golden(params, stim):
    anchors, tables, pe = contents(params)
    jv_all = np.zeros((0, params["n_t"]), dtype=np.int64)
    pos_all = np.zeros(0, dtype=np.int64)
    out = []
    for phase in stim if isinstance(stim, list) else [stim]:
        for beat in phase.get("w", ()):
            apply_write(params, anchors, tables, pe, beat)
        beats = phase.get("i", ())
        if not beats:
            continue
        jv = lut_index(np.array([b["x"] for b in beats]), anchors)
        pos = attention_positions([b["first"] for b in beats],
                                  start=int(pos_all[-1]) if len(pos_all) else -1)
        # Only the last ctx rows of history can be attended.
        keep = params["ctx"]
        jv_all = np.concatenate([jv_all[-keep:], jv])
        pos_all = np.concatenate([pos_all[-keep:], pos])
        rows = np.arange(len(jv_all) - len(jv), len(jv_all))
        z = lut_attention_z(jv_all, pos_all, tables, pe, n_c=params["n_c"], p=params["p"],
                            ctx=params["ctx"], causal_self=params["causal_self"], rows=rows)
        out += [{"z": zz.tolist(), "jv": jj.tolist(), "first": b["first"], "last": b["last"]}
                for zz, jj, b in zip(z, jv, beats)]
    return {"o": out}


def to_dense(params, outputs):
    """One trace row per position: the ``y_dim`` values of ``z``, then the ``n_t`` indices."""
    beats = outputs["o"]
    width = params["y_dim"] + params["n_t"]
    if not beats:
        return np.zeros((0, width), dtype=np.int64), "int"
    return np.array([b["z"] + b["jv"] for b in beats], dtype=np.int64), "int"


SPECS = [CoreSpec(
    name="lut_attention",
    summary="Manifesto attention LUT: V-index cache, relative-position codes, sliding context",
    build=build, defaults=DEFAULTS, stimulus=stimulus, golden=golden, to_dense=to_dense,
    resolve=resolve, step_unit="position", demo_steps=1500,
    build_defaults={"n": 32, "x_width": 8, "n_t": 8, "n_c": 4, "p": 2, "ctx": 16, "y_dim": 16,
                    "w_width": 8, "banks": 4},
    bench_builds=[LM_ATT],
    bench_sims=[(dict(LM_ATT, ctx=16), 100)],
)]
