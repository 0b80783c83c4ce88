"""Golden model of the LUT language model (:class:`spikeforge.rtl.lm.LM`): integer generation.

The model is :mod:`spikeforge.golden.lut_train`'s::

    h0 = E[byte];  h1 = h0 + lut_attention(h0);  h2 = h1 + lut(h1);  logits = lut(h2)

computed one position at a time from a cache of the attention indices ``jV`` (as the core
does), with the golden :func:`~spikeforge.golden.lut.lut` and
:func:`~spikeforge.golden.lut_attention.lut_attention_z`. The next byte is
``argmax_c (logits[c] + noise_c)``, ties to the lowest byte; ``noise_c = 0`` when greedy, and
when sampling ``noise_c = noise[x_c >> 24]`` with ``x_c`` the xorshift32 state stepped once
per candidate ``c = 0..255`` (a Gumbel-max draw through an integer table; see
:func:`noise_table`). Integers only, apart from building the noise table.

:func:`position_cycles` is the cycle model of the RTL.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import spikeforge
from spikeforge.firmware.image import ImageError

from . import lut_train
from .lut import lut, lut_index, random_anchors, random_tables
from .lut_attention import lut_attention_z

__all__ = ["LMGolden", "LMModelError", "generate", "load_lm", "model_writes", "write_beat", "noise_table",
           "position_cycles", "prompt_beats", "random_model", "request_cycles", "xorshift32",
           "default_timing", "ARGMAX_CYCLES", "DEFAULT_MODEL_DIR", "ZERO_SEED", "TARGETS"]

#: Where the trained model ships (``model.json`` and the four memory images).
DEFAULT_MODEL_DIR = Path(spikeforge.__file__).resolve().parent / "data" / "lm"

#: A zero seed is replaced by this (xorshift32 never leaves 0).
ZERO_SEED = 1

#: Cycles of the argmax per predicted byte (the RTL's ``LM.timing["argmax"]``): copying the
#: logits, one candidate per cycle for 256 cycles, a four-stage pipeline (logit and noise
#: address, noise read, add, compare) and the move to the output state.
ARGMAX_CYCLES = 260

#: ``w.target`` codes: embedder, attention, FFN, unembedder, noise table.
TARGETS = {"embed": 0, "att": 1, "ffn": 2, "out": 3, "noise": 4}


class LMModelError(ValueError):
    """A model directory is missing, incomplete or inconsistent (one-line message)."""


def load_lm(model_dir):
    """The integer model in ``model_dir`` (:func:`spikeforge.golden.lut_train.load_model`),
    with every problem turned into one :class:`LMModelError` line naming the file."""
    d = Path(model_dir)
    if not d.is_dir():
        raise LMModelError(f"no model directory at {d}")
    meta = d / "model.json"
    if not meta.is_file():
        raise LMModelError(f"{meta}: missing (a model directory holds model.json and "
                           f"embed/attention/ffn/unembed.npz)")
    try:
        config = json.loads(meta.read_text())["config"]
        lut_train.ModelConfig(**config).check()
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise LMModelError(f"{meta}: not a valid model description ({exc})") from None
    try:
        return lut_train.load_model(d)
    except ImageError as exc:
        raise LMModelError(str(exc)) from None
    except (OSError, KeyError, ValueError) as exc:
        raise LMModelError(f"{d}: cannot load the model ({exc})") from None


def random_model(config, seed: int = 0):
    """A :class:`~spikeforge.golden.lut_train.IntModel` of shape ``config`` with uniformly
    random contents (for tests and the spec when no trained model is at hand)."""
    c = config if isinstance(config, lut_train.ModelConfig) else lut_train.ModelConfig(**config)
    c.check()
    rng = np.random.default_rng(seed)
    w = c.w_width
    return lut_train.IntModel(
        config=c, embed=random_tables((256, c.n), w, rng),
        att_anchors=random_anchors(c.n, c.att_n_t, c.att_n_c, rng),
        att_tables=random_tables((c.att_n_t, 2 ** (2 * c.att_n_c + c.att_p), c.n), w, rng),
        att_pe=rng.integers(0, 2 ** c.att_p, size=(c.att_n_t, c.ctx - 1)).astype(np.int64),
        ffn_anchors=random_anchors(c.n, c.ffn_n_t, c.ffn_n_c, rng),
        ffn_tables=random_tables((c.ffn_n_t, 2 ** c.ffn_n_c, c.n), w, rng),
        out_anchors=random_anchors(c.n, c.out_n_t, c.out_n_c, rng),
        out_tables=random_tables((c.out_n_t, 2 ** c.out_n_c, 256), w, rng),
        scale=1.0, out_scale=2.0 ** (w - 3))


def write_beat(config, **fields) -> dict:
    """A complete ``w`` beat for a model of shape ``config``: ``fields`` over zeros."""
    c = config if isinstance(config, dict) else vars(config)
    ncm = max(c["att_n_c"], c["ffn_n_c"], c["out_n_c"])
    beat = {"target": 0, "kind": 0, "table": 0, "addr": 0, "y": [0] * max(c["n"], 256),
            "a": [0] * ncm, "b": [0] * ncm, "pe": 0, "noise": 0}
    beat.update(fields)
    beat["y"] = list(beat["y"]) + [0] * (max(c["n"], 256) - len(beat["y"]))
    for k in ("a", "b"):
        beat[k] = list(beat[k]) + [0] * (ncm - len(beat[k]))
    return beat


def model_writes(model) -> list:
    """``w`` beats that load every memory of ``model`` into an LM of the same shape."""
    c = vars(model.config)
    wb = lambda **f: write_beat(c, **f)
    ints = lambda row: [int(v) for v in row]
    beats = [wb(target=0, addr=b, y=ints(model.embed[b])) for b in range(256)]
    for target, anchors, tables in ((1, model.att_anchors, model.att_tables),
                                    (2, model.ffn_anchors, model.ffn_tables),
                                    (3, model.out_anchors, model.out_tables)):
        for t in range(tables.shape[0]):
            beats.append(wb(target=target, kind=1, table=t, a=ints(anchors[t, :, 0]),
                            b=ints(anchors[t, :, 1])))
            beats += [wb(target=target, kind=0, table=t, addr=r, y=ints(tables[t, r]))
                      for r in range(tables.shape[1])]
    if c["att_p"]:
        beats += [wb(target=1, kind=2, table=t, addr=d, pe=int(model.att_pe[t, d]))
                  for t in range(c["att_n_t"]) for d in range(c["ctx"] - 1)]
    return beats


def xorshift32(x: int) -> int:
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    return x


def noise_table(out_scale: float, temperature: float = 1.0, *, width: int = 16) -> np.ndarray:
    """Gumbel noise for sampling at ``temperature``: 256 signed ``width``-bit integers,
    ``round(temperature * out_scale * -ln(-ln((k + 0.5) / 256)))``, clipped to the width.

    ``out_scale`` is the integer logits' scale (``model.json``), so the noise is in logit units.
    """
    if not (isinstance(temperature, (int, float)) and temperature >= 0):
        raise ValueError(f"LM temperature must be a non-negative number, not {temperature!r}")
    u = (np.arange(256) + 0.5) / 256
    g = -np.log(-np.log(u)) * temperature * out_scale
    top = 2 ** (width - 1) - 1
    return np.clip(np.rint(g), -top - 1, top).astype(np.int64)


class LMGolden:
    """The integer model as a stream machine: :meth:`step` takes one ``i`` beat and returns the
    ``o`` beats it produces; :meth:`write` applies one ``w`` beat. Same rules as the RTL."""

    def __init__(self, model, *, noise=None):
        c = model.config
        self.cfg = {k: (c[k] if isinstance(c, dict) else getattr(c, k)) for k in
                    ("ctx", "n", "att_n_t", "att_n_c", "att_p", "ffn_n_t", "ffn_n_c",
                     "out_n_t", "out_n_c", "w_width")}
        arr = lambda a: np.array(a, dtype=np.int64)
        self.embed = arr(model.embed)
        self.att_anchors, self.att_tables, self.att_pe = (arr(model.att_anchors),
                                                          arr(model.att_tables), arr(model.att_pe))
        self.ffn_anchors, self.ffn_tables = arr(model.ffn_anchors), arr(model.ffn_tables)
        self.out_anchors, self.out_tables = arr(model.out_anchors), arr(model.out_tables)
        self.noise = np.zeros(256, dtype=np.int64) if noise is None else arr(noise)
        self.jv = np.zeros((0, self.cfg["att_n_t"]), dtype=np.int64)   # last ctx positions
        self.pos = -1
        self.rng = ZERO_SEED

    # One position ------------------------------------------------------------------------------
    def _attend(self, byte: int, first: bool):
        c = self.cfg
        h0 = self.embed[byte][None]
        jv = lut_index(h0, self.att_anchors)
        self.pos = 0 if (first or self.pos < 0) else self.pos + 1
        if self.pos == 0:
            self.jv = jv
        else:
            self.jv = np.concatenate([self.jv[-(c["ctx"] - 1):], jv])
        k = len(self.jv)
        pos = np.arange(self.pos - k + 1, self.pos + 1)
        z = lut_attention_z(self.jv, pos, self.att_tables, self.att_pe, n_c=c["att_n_c"],
                            p=c["att_p"], ctx=c["ctx"], rows=[k - 1])
        return h0 + z

    def logits(self, h1):
        y, _ = lut(h1, self.ffn_anchors, self.ffn_tables)
        h2 = h1 + y
        out, _ = lut(h2, self.out_anchors, self.out_tables)
        return out[0]

    def _choose(self, logits, sample: bool):
        if sample:
            noise = np.empty(256, dtype=np.int64)
            x = self.rng
            for cand in range(256):
                x = xorshift32(x)
                noise[cand] = self.noise[x >> 24]
            self.rng = x
            value = logits + noise
        else:
            value = logits
        return int(np.argmax(value))          # the first maximum: ties to the lowest byte

    def step(self, beat) -> list:
        """One ``i`` beat (``byte``, ``first``, ``gen``, ``sample``, ``seed``): the ``o`` beats
        ``{"byte", "logit", "last"}`` it produces."""
        byte, first, gen = int(beat["byte"]), bool(beat.get("first", 0)), int(beat.get("gen", 0))
        sample = bool(beat.get("sample", 0))
        if first:
            seed = int(beat.get("seed", 0)) & 0xFFFFFFFF
            self.rng = seed or ZERO_SEED
        out = []
        while True:
            h1 = self._attend(byte, first)
            if gen == 0:
                return out
            logits = self.logits(h1)
            nxt = self._choose(logits, sample)
            out.append({"byte": nxt, "logit": int(logits[nxt]), "last": int(gen == 1)})
            byte, first, gen = nxt, False, gen - 1

    # Writes ------------------------------------------------------------------------------------
    def write(self, beat) -> None:
        """One ``w`` beat, with the RTL's drop rules (see :class:`spikeforge.rtl.lm.LM`)."""
        c = self.cfg
        target, kind, table, addr = (int(beat.get(k, 0)) for k in ("target", "kind", "table",
                                                                     "addr"))
        y = np.asarray(beat.get("y", []), dtype=np.int64)
        a, b = np.asarray(beat.get("a", []), dtype=np.int64), np.asarray(beat.get("b", []),
                                                                           dtype=np.int64)
        n = c["n"]

        def anchors_ok(nc):
            aa, bb = a[:nc], b[:nc]
            return not ((aa == bb).any() or (aa >= n).any() or (bb >= n).any())

        if target == 0:
            if kind == 0 and addr < 256:
                self.embed[addr] = y[:n]
        elif target == 1:
            nc, p = c["att_n_c"], c["att_p"]
            if table >= c["att_n_t"] or addr >= 2 ** (2 * nc + p):
                return
            if kind == 0:
                self.att_tables[table, addr] = y[:n]
            elif kind == 1 and anchors_ok(nc):
                self.att_anchors[table, :, 0], self.att_anchors[table, :, 1] = a[:nc], b[:nc]
            elif kind == 2 and p and addr < self.att_pe.shape[1]:
                self.att_pe[table, addr] = int(beat.get("pe", 0)) & (2 ** p - 1)
        elif target in (2, 3):
            anchors, tables, nt, nc, yd = (
                (self.ffn_anchors, self.ffn_tables, c["ffn_n_t"], c["ffn_n_c"], n) if target == 2
                else (self.out_anchors, self.out_tables, c["out_n_t"], c["out_n_c"], 256))
            if table >= nt or addr >= 2 ** nc or kind >= 2:
                return
            if kind == 0:
                tables[table, addr] = y[:yd]
            elif anchors_ok(nc):
                anchors[table, :, 0], anchors[table, :, 1] = a[:nc], b[:nc]
        elif target == 4 and addr < 256:
            self.noise[addr] = int(beat.get("noise", 0))

    def run(self, stim) -> list:
        """Every ``o`` beat of a stimulus: ``{"i": [...], "w": [...]}`` or a list of such
        phases (writes of a phase before its inputs, as the harness sends them)."""
        out = []
        for phase in stim if isinstance(stim, list) else [stim]:
            for beat in phase.get("w", ()):
                self.write(beat)
            for beat in phase.get("i", ()):
                out += self.step(beat)
        return out


def generate(model, prompt: bytes, n_bytes: int, *, sample: bool = False, seed: int = 0,
             noise=None) -> bytes:
    """The ``n_bytes`` bytes the model generates after ``prompt`` (one fresh sequence)."""
    if not isinstance(prompt, (bytes, bytearray)) or not prompt:
        raise ValueError(f"LM prompt must be non-empty bytes, not {prompt!r}")
    g = LMGolden(model, noise=noise)
    out = g.run({"i": prompt_beats(prompt, n_bytes, sample=sample, seed=seed)})
    return bytes(b["byte"] for b in out)


def prompt_beats(prompt: bytes, n_bytes: int, *, sample: bool = False, seed: int = 0) -> list:
    """The ``i`` beats that ask for ``n_bytes`` after ``prompt``: ``first`` on byte 0, the
    ``gen`` count on the last byte."""
    k = len(prompt)
    return [{"byte": int(b), "first": int(j == 0), "gen": n_bytes if j == k - 1 else 0,
             "sample": int(sample), "seed": int(seed) & 0xFFFFFFFF} for j, b in enumerate(prompt)]


# Cycles ------------------------------------------------------------------------------------------

def default_timing(config, *, att_banks=1, ffn_banks=1, out_banks=1) -> dict:
    """The sub-cores' timing as their docs state it: the attention takes
    ``att_k * (1 + keys) + att_extra`` cycles from handshake to output, the LUT layers
    ``ffn_latency`` and ``out_latency``, the argmax ``argmax``.
    :attr:`spikeforge.rtl.lm.LM.timing` gives the values of a built design."""
    c = config if isinstance(config, dict) else vars(config)
    tree = lambda banks: (banks - 1).bit_length()        # ceil(log2(banks))
    return {"att_k": c["att_n_t"] // att_banks, "att_extra": 12 + tree(att_banks),
            "ffn_latency": c["ffn_n_t"] // ffn_banks + 9 + tree(ffn_banks),
            "out_latency": c["out_n_t"] // out_banks + 9 + tree(out_banks),
            "argmax": ARGMAX_CYCLES}


def position_cycles(config, pos: int, *, predict: bool, timing=None) -> int:
    """Clock cycles the RTL spends on one position of a sequence, without stalls.

    Counted from the cycle after the position's byte is taken (the input handshake, or the
    output handshake of the generated byte fed back) to the cycle after the next byte is taken,
    when that next byte is already waiting. ``pos`` is the 0-based position in the sequence;
    ``predict`` says whether the position predicts a byte. ``timing`` holds the sub-cores'
    latencies (:func:`default_timing`, or ``LM.timing`` of a built design); a sub-core pass
    costs its latency plus the handshake cycle, with
    ``La = att_k * (1 + min(pos, ctx - 1)) + att_extra``::

        no prediction:  2 (embedder read) + (La + 1) + 1 (idle, next byte taken)
        prediction:     2 + (La + 1) + (Lffn + 1) + (Lout + 1) + argmax + 1 (output)

    with ``argmax`` = :data:`ARGMAX_CYCLES` unless ``timing`` says otherwise.
    """
    c = config if isinstance(config, dict) else vars(config)
    t = default_timing(c) if timing is None else timing
    la = t["att_k"] * (1 + min(pos, c["ctx"] - 1)) + t["att_extra"]
    if not predict:
        return 2 + (la + 1) + 1
    argmax = t.get("argmax", ARGMAX_CYCLES)
    return 2 + (la + 1) + (t["ffn_latency"] + 1) + (t["out_latency"] + 1) + argmax + 1


def request_cycles(config, start_pos: int, n_prompt: int, n_gen: int, **kw) -> int:
    """Cycles for ``n_prompt`` prompt bytes starting at ``start_pos`` followed by ``n_gen``
    generated bytes (the last generated byte also passes the attention), no stalls."""
    total, pos = 0, start_pos
    for j in range(n_prompt):
        total += position_cycles(config, pos, predict=(j == n_prompt - 1 and n_gen > 0), **kw)
        pos += 1
    for g in range(n_gen):
        total += position_cycles(config, pos, predict=(g < n_gen - 1), **kw)
        pos += 1
    return total
