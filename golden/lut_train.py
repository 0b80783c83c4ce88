"""Offline trainer (NumPy only) for a tiny byte-level language model built from LUT units.

The model, as in the Spiking Manifesto, scaled down::

    h0 = E[byte]                                  embedder LUT: 256 rows of n latencies
    h1 = h0 + lut_attention(h0)                   attention LUT over the last ctx-1 positions
    h2 = h1 + lut(h1)                             FFN LUT layer, residual
    logits = lut(h2)                              unembedder LUT layer, 256 values per row

Training uses the Manifesto's learning rule: the forward pass is the hard LUT (one row per
table); in the backward pass each table's output is smoothed only across its lowest-margin
comparison ``u`` (the one closest to flipping), blending the selected row with the row that
flipping that bit would select with weight ``U(u) = 0.5 / (1 + |u|)``. So the gradient reaching
the two anchor latencies is ``g . (S[j with bit 1] - S[j with bit 0]) * 0.5 / (1 + |u|)**2``,
and only the selected row is updated, by plain SGD on ``g``. Floats appear only here.

:func:`quantise` turns the float model into integers: the embedder, attention and FFN tables
share one scale (they all add into the residual stream, so the integer sums track the float
ones), the unembedder has its own. The integer model is what the cores run: :func:`predict`
computes it with the golden models, and :func:`export` writes the memory images the cores load.

Run ``python -m spikeforge.golden.lut_train --text FILE --out DIR`` (see ``--help``).
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from spikeforge.firmware.image import MemorySpec, load_image, save_image

from .lut import load_lut_image, lut, random_anchors, save_lut_image
from .lut_attention import load_attention_image, lut_attention, save_attention_image

__all__ = ["ModelConfig", "FloatModel", "IntModel", "LM_CONFIG", "LM_TRAIN", "LM_DIR", "train",
           "quantise", "predict", "bits_per_byte", "unigram_bits_per_byte", "export", "load_model",
           "core_params", "memory_budget", "cycles_per_token", "positional_codes", "split_text",
           "run", "main"]

DEFAULT_TEXT = Path(__file__).resolve().parents[1] / "docs" / "data" / "corpus.txt"
#: The shipped, trained language model (memory images and model.json), inside the package.
LM_DIR = Path(str(importlib.resources.files("spikeforge") / "data" / "lm"))
#: Held-out bytes (from the start of the held-out part) of the quick check in model.json.
CHECK_BYTES = 4096
#: Training bytes (the end of the training part) the quantiser calibrates its scale on.
CALIBRATE_BYTES = 8192


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the model. Residual latencies are ``n`` wide; every table value is a signed
    ``w_width``-bit integer after quantisation."""
    ctx: int = 16
    n: int = 16
    att_n_t: int = 8
    att_n_c: int = 4
    att_p: int = 2
    ffn_n_t: int = 8
    ffn_n_c: int = 5
    out_n_t: int = 8
    out_n_c: int = 6
    w_width: int = 8

    def check(self):
        for name, value in asdict(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "att_p" else 1):
                raise ValueError(f"ModelConfig {name!r} must be a positive integer, not {value!r}")
        if self.n < 2 or self.ctx < 2:
            raise ValueError(f"ModelConfig needs n >= 2 and ctx >= 2, not n={self.n}, ctx={self.ctx}")
        if 2 * self.att_n_c + self.att_p > 16:
            raise ValueError(f"ModelConfig attention index width 2*att_n_c + att_p must be at most "
                             f"16, not {2 * self.att_n_c + self.att_p}")
        return self


@dataclass
class FloatModel:
    config: ModelConfig
    embed: np.ndarray        # (256, n)
    att_anchors: np.ndarray  # (att_n_t, att_n_c, 2)
    att_tables: np.ndarray   # (att_n_t, 2**(2*att_n_c+att_p), n)
    att_pe: np.ndarray       # (att_n_t, ctx-1) ints, fixed
    ffn_anchors: np.ndarray
    ffn_tables: np.ndarray   # (ffn_n_t, 2**ffn_n_c, n)
    out_anchors: np.ndarray
    out_tables: np.ndarray   # (out_n_t, 2**out_n_c, 256)


@dataclass
class IntModel:
    """The integer model the cores run, with the two scales it was quantised with."""
    config: ModelConfig
    embed: np.ndarray
    att_anchors: np.ndarray
    att_tables: np.ndarray
    att_pe: np.ndarray
    ffn_anchors: np.ndarray
    ffn_tables: np.ndarray
    out_anchors: np.ndarray
    out_tables: np.ndarray
    scale: float             # residual stream: integer = round(float * scale)
    out_scale: float         # logits: integer = round(float * out_scale)


def positional_codes(config: ModelConfig, kind: str, rng) -> np.ndarray:
    """The attention's fixed positional codes ``(att_n_t, ctx - 1)``, for distances 1..ctx-1.

    ``"random"``: uniform random ``att_p``-bit codes per table and distance. ``"log"``: the code
    is the distance's octave, ``floor(log2(d))``, saturated at ``2**att_p - 1``, with every other
    table's octaves shifted by one (so its first bucket holds distances 1..3): the nearest bytes
    get codes of their own and the far ones share one.
    """
    D = config.ctx - 1
    top = 2 ** config.att_p - 1
    if kind == "random":
        return rng.integers(0, top + 1, size=(config.att_n_t, D))
    if kind == "log":
        d = np.arange(1, D + 1)
        octave = np.floor(np.log2(d)).astype(np.int64)
        rows = [np.minimum(np.maximum(octave - (t % 2), 0), top) for t in range(config.att_n_t)]
        return np.stack(rows).astype(np.int64)
    raise ValueError(f"positional code kind must be 'random' or 'log', not {kind!r}")


def init_model(config: ModelConfig, seed: int = 0, pe: str = "random") -> FloatModel:
    c = config.check()
    rng = np.random.default_rng(seed)
    return FloatModel(
        config=c,
        embed=rng.normal(0.0, 1.0, size=(256, c.n)),
        att_anchors=random_anchors(c.n, c.att_n_t, c.att_n_c, rng),
        att_tables=np.zeros((c.att_n_t, 2 ** (2 * c.att_n_c + c.att_p), c.n)),
        att_pe=positional_codes(c, pe, rng),
        ffn_anchors=random_anchors(c.n, c.ffn_n_t, c.ffn_n_c, rng),
        ffn_tables=np.zeros((c.ffn_n_t, 2 ** c.ffn_n_c, c.n)),
        out_anchors=random_anchors(c.n, c.out_n_t, c.out_n_c, rng),
        out_tables=np.zeros((c.out_n_t, 2 ** c.out_n_c, 256)),
    )


# The language model the project ships (``spikeforge/data/lm``), chosen by the sweep in
# ``golden/lm_sweep.py`` (see docs/lm_training.md), and the exact training call that made it.
LM_CONFIG = ModelConfig(ctx=16, n=16, att_n_t=8, att_n_c=4, att_p=2, ffn_n_t=8, ffn_n_c=5,
                        out_n_t=8, out_n_c=6, w_width=8)
LM_TRAIN = dict(steps=6000, batch=32, lr=20.0, pe="log", seed=0)

# ECP5 DP16KD block RAM: 18 Kbit, as depth x width (512 x 36 is the pseudo-dual-port mode).
EBR_BITS = 18 * 1024
EBR_MODES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))


def _ebr_blocks(depth, width):
    """DP16KD blocks for one ``depth x width`` memory: the cheapest single mode, tiled."""
    return min(-(-depth // d) * -(-width // w) for d, w in EBR_MODES)


def memory_budget(config: ModelConfig) -> dict:
    """Table bits and DP16KD blocks of each memory of the model, as the cores store them (one
    memory per layer, ``n_t * rows`` deep and ``y_dim * w_width`` wide, one bank).

    Returns ``{"memories": {name: {"depth", "width", "bits", "ebr"}}, "bits", "ebr"}``. Anchors,
    positional codes and the attention's index cache are a few hundred bits and not counted.
    """
    c = config.check()
    w = c.w_width
    mems = {"embed": (256, c.n * w),
            "attention": (c.att_n_t << (2 * c.att_n_c + c.att_p), c.n * w),
            "ffn": (c.ffn_n_t << c.ffn_n_c, c.n * w),
            "unembed": (c.out_n_t << c.out_n_c, 256 * w)}
    out = {k: {"depth": d, "width": wd, "bits": d * wd, "ebr": _ebr_blocks(d, wd)}
           for k, (d, wd) in mems.items()}
    return {"memories": out, "bits": sum(m["bits"] for m in out.values()),
            "ebr": sum(m["ebr"] for m in out.values())}


def cycles_per_token(config: ModelConfig, ctx: int | None = None) -> int:
    """Estimated cycles to produce one byte with a full window of ``ctx`` (default the
    config's): the attention reads ``n_t`` rows for the query and each of the ``ctx - 1`` keys
    (``lut_attention.cycles``), the FFN and the unembedder ``n_t`` rows each plus a 4-cycle
    pipeline, and a serial argmax over the 256 logits. One bank per core, one row per cycle."""
    c = config.check()
    ctx = c.ctx if ctx is None else ctx
    return 1 + c.att_n_t * ctx + 4 + (c.ffn_n_t + 4) + (c.out_n_t + 4) + 256


# The LUT layer and its surrogate backward pass --------------------------------------------------

def _index(h, anchors):
    """Margins ``u`` (..., n_t, n_c) and indices ``j`` (..., n_t) of latency vectors ``h``."""
    u = h[..., anchors[..., 0]] - h[..., anchors[..., 1]]
    j = ((u > 0).astype(np.int64) << np.arange(anchors.shape[1])).sum(axis=-1)
    return u, j


def _surrogate(u):
    """d/du of the blend ``U(u) = 0.5 / (1 + |u|)`` across the decision boundary."""
    return 0.5 / (1.0 + np.abs(u)) ** 2


def _scatter(shape, idx, vals):
    """Dense ``(R, Y)`` sum of the rows ``vals`` (M, Y) at row indices ``idx`` (M,); a fast
    ``np.add.at``."""
    R, Y = shape
    flat = (idx.reshape(-1, 1) * Y + np.arange(Y)).reshape(-1)
    return np.bincount(flat, weights=vals.reshape(-1), minlength=R * Y).reshape(R, Y)


def _layer_backward(h, u, j, tables, anchors, g, lr, dh):
    """Row-only SGD on ``tables`` and the lowest-margin input gradient, added into ``dh``.

    ``h``: (N, n), ``u``: (N, n_t, n_c), ``j``: (N, n_t), ``g``: (N, y_dim) = dL/dy.
    """
    N, n_t = j.shape
    t_idx = np.arange(n_t)
    r = np.abs(u).argmin(axis=-1)                                   # (N, n_t)
    um = np.take_along_axis(u, r[..., None], axis=-1)[..., 0]
    bit = (1 << r)
    diff = tables[t_idx, j | bit] - tables[t_idx, j & ~bit]          # (N, n_t, y_dim)
    du = np.einsum("nty,ny->nt", diff, g) * _surrogate(um)
    a = anchors[t_idx, r, 0]
    b = anchors[t_idx, r, 1]
    n = dh.shape[1]
    rows = np.arange(N)[:, None] * n
    dh += np.bincount(np.concatenate([(rows + a).reshape(-1), (rows + b).reshape(-1)]),
                      weights=np.concatenate([du.reshape(-1), -du.reshape(-1)]),
                      minlength=N * n).reshape(N, n)
    R = n_t * tables.shape[1]
    tables -= lr * _scatter((R, tables.shape[2]), (t_idx * tables.shape[1] + j).reshape(-1),
                            np.repeat(g, n_t, axis=0)).reshape(tables.shape)


def _forward(model: FloatModel, X):
    """Float forward pass on byte sequences ``X`` (B, T); every intermediate for backward."""
    c = model.config
    B, T = X.shape
    h0 = model.embed[X]                                             # (B, T, n)
    uq, jq = _index(h0, model.att_anchors)                         # (B,T,t,c), (B,T,t)
    z = np.zeros_like(h0)
    t_idx = np.arange(c.att_n_t)
    shift_q, shift_k = c.att_n_c + c.att_p, c.att_p
    for d in range(1, min(c.ctx, T)):
        J = (jq[:, d:] << shift_q) | (jq[:, :-d] << shift_k) | model.att_pe[:, d - 1]
        z[:, d:] += model.att_tables[t_idx, J].sum(axis=2)
    h1 = h0 + z
    uf, jf = _index(h1, model.ffn_anchors)
    h2 = h1 + model.ffn_tables[np.arange(c.ffn_n_t), jf].sum(axis=2)
    uo, jo = _index(h2, model.out_anchors)
    logits = model.out_tables[np.arange(c.out_n_t), jo].sum(axis=2)
    return dict(h0=h0, uq=uq, jq=jq, h1=h1, uf=uf, jf=jf, h2=h2, uo=uo, jo=jo, logits=logits)


def _log_softmax(logits):
    m = logits.max(axis=-1, keepdims=True)
    return logits - m - np.log(np.exp(logits - m).sum(axis=-1, keepdims=True))


def _step(model: FloatModel, X, Y, lr):
    """One SGD step on inputs ``X`` and next bytes ``Y`` (both (B, T)); returns the mean loss
    in nats."""
    c = model.config
    B, T = X.shape
    N = B * T
    f = _forward(model, X)
    logp = _log_softmax(f["logits"]).reshape(N, 256)
    y = Y.reshape(N)
    loss = -logp[np.arange(N), y].mean()
    g = np.exp(logp)
    g[np.arange(N), y] -= 1.0
    g /= N

    dh2 = np.zeros((N, c.n))
    _layer_backward(f["h2"].reshape(N, -1), f["uo"].reshape(N, c.out_n_t, -1),
                    f["jo"].reshape(N, -1), model.out_tables, model.out_anchors, g, lr["out"], dh2)
    dh1 = dh2.copy()
    _layer_backward(f["h1"].reshape(N, -1), f["uf"].reshape(N, c.ffn_n_t, -1),
                    f["jf"].reshape(N, -1), model.ffn_tables, model.ffn_anchors, dh2, lr["ffn"], dh1)

    # Attention: every (query i, key i-d, table t) term is one LUT row; the lowest margin is
    # taken over the query's and the key's comparisons together.
    dh0 = dh1.copy().reshape(B, T, c.n)
    scatter_idx, scatter_val = [], []
    gz = dh1.reshape(B, T, c.n)
    uq, jq = f["uq"], f["jq"]
    n_t, n_c, p = c.att_n_t, c.att_n_c, c.att_p
    t_idx = np.arange(n_t)
    rows_per_table = model.att_tables.shape[1]
    flat = model.att_tables.reshape(-1, c.n)
    updates_idx, updates_val = [], []
    for d in range(1, min(c.ctx, T)):
        J = (jq[:, d:] << (n_c + p)) | (jq[:, :-d] << p) | model.att_pe[:, d - 1]   # (B,T-d,t)
        u = np.concatenate([uq[:, d:], uq[:, :-d]], axis=-1)                        # (B,T-d,t,2c)
        r = np.abs(u).argmin(axis=-1)
        um = np.take_along_axis(u, r[..., None], axis=-1)[..., 0]
        is_q = r < n_c
        shift = np.where(is_q, n_c + p + r, p + r - n_c)
        bit = 1 << shift
        g_d = gz[:, d:]                                                              # (B,T-d,n)
        diff = model.att_tables[t_idx, J | bit] - model.att_tables[t_idx, J & ~bit]
        du = np.einsum("bity,biy->bit", diff, g_d) * _surrogate(um)
        rr = np.where(is_q, r, r - n_c)
        a = model.att_anchors[t_idx, rr, 0]
        bb = model.att_anchors[t_idx, rr, 1]
        bi = np.broadcast_to(np.arange(B)[:, None, None], is_q.shape)
        ii = np.broadcast_to(np.arange(d, T)[None, :, None], is_q.shape) - np.where(is_q, 0, d)
        base = (bi * T + ii) * c.n
        scatter_idx += [(base + a).reshape(-1), (base + bb).reshape(-1)]
        scatter_val += [du.reshape(-1), -du.reshape(-1)]
        updates_idx.append((t_idx * rows_per_table + J).reshape(-1))
        updates_val.append(np.repeat(g_d.reshape(-1, c.n), n_t, axis=0))
    if updates_idx:
        flat -= lr["att"] * _scatter(flat.shape, np.concatenate(updates_idx),
                                     np.concatenate(updates_val))
        # Each position is a query or a key of up to 2 (ctx - 1) terms; the surrogate gradient
        # they send into the embedder is scaled back to that of context 16, as the step is.
        dh0 += _att_scale(c) * np.bincount(np.concatenate(scatter_idx),
                                           weights=np.concatenate(scatter_val),
                                           minlength=N * c.n).reshape(B, T, c.n)
    model.embed -= lr["embed"] * _scatter(model.embed.shape, X.reshape(-1), dh0.reshape(N, c.n))
    return float(loss)


def _att_scale(c: ModelConfig) -> float:
    """Every position sums ``ctx - 1`` attention rows and each takes the full gradient, so past
    context 16 the attention's step and its input gradient are scaled by ``15 / (ctx - 1)``."""
    return min(1.0, 15 / (c.ctx - 1))


def split_text(data: bytes, held_out: float = 0.1):
    """Train and held-out parts: the last ``held_out`` fraction is held out."""
    cut = int(len(data) * (1 - held_out))
    return data[:cut], data[cut:]


def train(text: bytes, config: ModelConfig = ModelConfig(), *, seed: int = 0,
          seconds: float = 480.0, steps: int | None = None, batch: int = 32, lr: float = 20.0,
          pe: str = "random", log=None) -> FloatModel:
    """Train on ``text`` for ``steps`` SGD steps (or until ``seconds`` have passed).

    ``pe`` picks the attention's fixed positional codes (:func:`positional_codes`).

    Each step takes ``batch`` random windows of ``2 * ctx`` bytes (so the attention's sliding
    window is trained as it runs on the core); every position predicts the next byte.
    """
    config.check()
    data = np.frombuffer(text, dtype=np.uint8).astype(np.int64)
    T = 2 * config.ctx
    if len(data) < T + 2:
        raise ValueError(f"training text must be longer than {T + 1} bytes, not {len(data)}")
    rng = np.random.default_rng(seed + 1)
    model = init_model(config, seed, pe)
    rates = {"out": lr, "ffn": lr, "att": lr * _att_scale(config), "embed": lr * 4.0}
    start = time.monotonic()
    step, avg = 0, None
    while (steps is None or step < steps) and (steps is not None or time.monotonic() - start < seconds):
        frac = step / steps if steps else (time.monotonic() - start) / seconds
        decay = 1.0 if frac < 0.6 else max(0.1, 1.0 - (frac - 0.6) / 0.45)
        starts = rng.integers(0, len(data) - T - 1, size=batch)
        idx = starts[:, None] + np.arange(T + 1)
        win = data[idx]
        loss = _step(model, win[:, :-1], win[:, 1:], {k: v * decay for k, v in rates.items()})
        avg = loss if avg is None else 0.98 * avg + 0.02 * loss
        step += 1
        if log and step % 200 == 0:
            log(f"step {step}: loss {avg / math.log(2):.3f} bits/byte "
                f"({time.monotonic() - start:.0f} s)")
    return model


# Integers ---------------------------------------------------------------------------------------

#: Residual-scale percentiles :func:`quantise` tries when it is given calibration text.
QUANT_PERCENTILES = (99.0, 99.5, 99.9, 99.99, 100.0)


def quantise(model: FloatModel, calibrate: bytes | None = None,
             percentile: float = 99.99) -> IntModel:
    """Round every table to signed ``w_width``-bit integers (see the module docstring).

    The residual scale maps the ``percentile`` of the residual tables' magnitudes to the
    largest integer (larger values clip). With ``calibrate`` (training text, never the held-out
    part), every percentile of :data:`QUANT_PERCENTILES` is tried and the integer model with the
    lowest bits per byte on that text is returned.
    """
    if calibrate is not None:
        return min((quantise(model, percentile=q) for q in QUANT_PERCENTILES),
                   key=lambda m: bits_per_byte(m, calibrate))
    c = model.config
    top = 2 ** (c.w_width - 1) - 1
    resid = np.concatenate([np.abs(a).reshape(-1) for a in
                            (model.embed, model.att_tables, model.ffn_tables)])
    # A high percentile, not the maximum: a few outliers would cost every other value its bits.
    bound = max(np.percentile(resid, percentile), 1e-9)
    scale = top / bound
    out_bound = max(np.abs(model.out_tables).max(), 1e-9)
    out_scale = top / out_bound
    q = lambda a, s: np.clip(np.rint(a * s), -top - 1, top).astype(np.int64)
    return IntModel(config=c, embed=q(model.embed, scale), att_anchors=model.att_anchors.copy(),
                    att_tables=q(model.att_tables, scale), att_pe=model.att_pe.copy(),
                    ffn_anchors=model.ffn_anchors.copy(), ffn_tables=q(model.ffn_tables, scale),
                    out_anchors=model.out_anchors.copy(), out_tables=q(model.out_tables, out_scale),
                    scale=float(scale), out_scale=float(out_scale))


def predict(model: IntModel, text: bytes, *, stages=False):
    """Integer logits ``(len(text), 256)`` of the integer model on one stream of ``text`` (one
    sequence; the attention window slides), computed with the golden models. Position ``i``
    predicts byte ``i + 1``. With ``stages``, returns a dict of every intermediate too."""
    c = model.config
    X = np.frombuffer(text, dtype=np.uint8).astype(np.int64)
    h0 = model.embed[X]
    first = np.zeros(len(X), dtype=bool)
    first[:1] = True
    z, jv = lut_attention(h0, first, model.att_anchors, model.att_tables, model.att_pe,
                          p=c.att_p, ctx=c.ctx)
    h1 = h0 + z
    y, _ = lut(h1, model.ffn_anchors, model.ffn_tables)
    h2 = h1 + y
    logits, _ = lut(h2, model.out_anchors, model.out_tables)
    if stages:
        return dict(h0=h0, z=z, jv=jv, h1=h1, y=y, h2=h2, logits=logits,
                    prediction=logits.argmax(axis=1))
    return logits


def bits_per_byte(model, text: bytes) -> float:
    """Cross entropy of the next byte in bits, over ``text`` as one stream (float or integer
    model; the integer logits are divided by ``out_scale``)."""
    if isinstance(model, IntModel):
        logits = predict(model, text).astype(np.float64) / model.out_scale
    else:
        X = np.frombuffer(text, dtype=np.uint8).astype(np.int64)[None]
        logits = _forward(model, X)["logits"][0]
    y = np.frombuffer(text, dtype=np.uint8).astype(np.int64)[1:]
    logp = _log_softmax(logits[:-1])
    return float(-logp[np.arange(len(y)), y].mean() / math.log(2))


def unigram_bits_per_byte(train_text: bytes, test_text: bytes) -> float:
    """The baseline: byte frequencies of ``train_text`` (add-one smoothed) on ``test_text``."""
    counts = np.bincount(np.frombuffer(train_text, dtype=np.uint8), minlength=256) + 1.0
    p = counts / counts.sum()
    y = np.frombuffer(test_text, dtype=np.uint8)[1:]
    return float(-np.log2(p[y]).mean())


# Memory images ----------------------------------------------------------------------------------

def _widths(c: ModelConfig):
    """Signed widths of the residual stream at each core's input, from the table bounds."""
    top = 2 ** (c.w_width - 1)
    h0 = top
    h1 = h0 + c.att_n_t * (c.ctx - 1) * top
    h2 = h1 + c.ffn_n_t * top
    width = lambda bound: max(2, math.ceil(math.log2(bound + 1)) + 1)
    return {"att": width(h0), "ffn": width(h1), "out": width(h2)}


def core_params(model_dir) -> dict:
    """``spikeforge sim`` parameters of the three cores of an exported model (image paths
    included): ``{"attention": {...}, "ffn": {...}, "unembed": {...}}``."""
    model_dir = Path(model_dir)
    c = ModelConfig(**json.loads((model_dir / "model.json").read_text())["config"])
    w = _widths(c)
    return {
        "attention": dict(n=c.n, x_width=w["att"], n_t=c.att_n_t, n_c=c.att_n_c, p=c.att_p,
                          ctx=c.ctx, y_dim=c.n, w_width=c.w_width, image=str(model_dir / "attention.npz")),
        "ffn": dict(n=c.n, x_width=w["ffn"], n_t=c.ffn_n_t, n_c=c.ffn_n_c, y_dim=c.n,
                    w_width=c.w_width, image=str(model_dir / "ffn.npz")),
        "unembed": dict(n=c.n, x_width=w["out"], n_t=c.out_n_t, n_c=c.out_n_c, y_dim=256,
                        w_width=c.w_width, image=str(model_dir / "unembed.npz")),
    }


def export(model: IntModel, out_dir, *, extra=None) -> Path:
    """Write ``embed.npz``, ``attention.npz``, ``ffn.npz``, ``unembed.npz`` and ``model.json``."""
    c = model.config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    top = 2 ** (c.w_width - 1)
    save_image(out / "embed.npz", core="lut_model", params={"n": c.n, "w_width": c.w_width},
               memories={"embed": model.embed},
               specs={"embed": MemorySpec((256, c.n), -top, top - 1)})
    save_attention_image(out / "attention.npz", anchors=model.att_anchors,
                         tables=model.att_tables, pe=model.att_pe, n=c.n, p=c.att_p, ctx=c.ctx,
                         w_width=c.w_width)
    save_lut_image(out / "ffn.npz", anchors=model.ffn_anchors, tables=model.ffn_tables, n=c.n,
                   w_width=c.w_width)
    save_lut_image(out / "unembed.npz", anchors=model.out_anchors, tables=model.out_tables,
                   n=c.n, w_width=c.w_width)
    meta = {"config": asdict(c), "scale": model.scale, "out_scale": model.out_scale,
            **(extra or {})}
    (out / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def load_model(model_dir) -> IntModel:
    """The integer model exported by :func:`export`; every image is checked against the config."""
    d = Path(model_dir)
    meta = json.loads((d / "model.json").read_text())
    c = ModelConfig(**meta["config"]).check()
    top = 2 ** (c.w_width - 1)
    _, emb = load_image(d / "embed.npz", core="lut_model",
                        specs={"embed": MemorySpec((256, c.n), -top, top - 1)})
    aa, at, ap = load_attention_image(d / "attention.npz", n=c.n, n_t=c.att_n_t, n_c=c.att_n_c,
                                      p=c.att_p, ctx=c.ctx, y_dim=c.n, w_width=c.w_width)
    fa, ft = load_lut_image(d / "ffn.npz", n=c.n, n_t=c.ffn_n_t, n_c=c.ffn_n_c, y_dim=c.n,
                            w_width=c.w_width)
    oa, ot = load_lut_image(d / "unembed.npz", n=c.n, n_t=c.out_n_t, n_c=c.out_n_c, y_dim=256,
                            w_width=c.w_width)
    return IntModel(config=c, embed=emb["embed"], att_anchors=aa, att_tables=at, att_pe=ap,
                    ffn_anchors=fa, ffn_tables=ft, out_anchors=oa, out_tables=ot,
                    scale=meta["scale"], out_scale=meta["out_scale"])


def run(text: bytes, out_dir, *, config=ModelConfig(), seconds=480.0, steps=None, seed=0,
        batch=32, lr=20.0, pe="random", log=print, extra=None) -> dict:
    """Train, quantise, export and report bits per byte on the held-out tenth of ``text``.

    With ``steps`` the run is deterministic (same text, config, steps, batch, lr and seed give
    the same images); otherwise it trains for ``seconds``. ``extra`` is stored in
    ``model.json`` next to the config, the scales and the report.
    """
    train_text, test_text = split_text(text)
    start = time.monotonic()
    model = train(train_text, config, seed=seed, seconds=seconds, steps=steps, batch=batch,
                  lr=lr, pe=pe, log=log)
    seconds_used = time.monotonic() - start
    int_model = quantise(model, train_text[-CALIBRATE_BYTES:])
    report = {
        "train_bytes": len(train_text), "held_out_bytes": len(test_text),
        "train_seconds": round(seconds_used, 1),
        "unigram_bpb": round(unigram_bits_per_byte(train_text, test_text), 4),
        "float_bpb": round(bits_per_byte(model, test_text), 4),
        "int_bpb": round(bits_per_byte(int_model, test_text), 4),
        "check_bytes": min(CHECK_BYTES, len(test_text)),
        "check_int_bpb": round(bits_per_byte(int_model, test_text[:CHECK_BYTES]), 6),
    }
    train_args = {"steps": steps, "seconds": None if steps else seconds, "batch": batch,
                  "lr": lr, "pe": pe, "seed": seed}
    export(int_model, out_dir, extra={"report": report, "train": train_args, **(extra or {})})
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spikeforge.golden.lut_train",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--text", default=str(DEFAULT_TEXT), help="training text (UTF-8 bytes)")
    parser.add_argument("--out", required=True, help="directory for the memory images")
    parser.add_argument("--minutes", type=float, default=8.0, help="training time budget")
    parser.add_argument("--steps", type=int, default=None, help="SGD steps (overrides --minutes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lm", action="store_true",
                        help="the shipped language model: LM_CONFIG trained with LM_TRAIN "
                             "(ignores --minutes, --steps and --seed)")
    args = parser.parse_args(argv)
    path = Path(args.text)
    if not path.is_file():
        print(f"lut_train: error: no training text at {path}", file=sys.stderr)
        return 2
    if args.lm:
        report = run(path.read_bytes(), args.out, config=LM_CONFIG, **LM_TRAIN,
                     extra={"command": "python -m spikeforge.golden.lut_train --lm --out DIR"})
    else:
        report = run(path.read_bytes(), args.out, seconds=args.minutes * 60, steps=args.steps,
                     seed=args.seed)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
