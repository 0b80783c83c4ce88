"""Spec of the event-driven LUT index unit for the generic tools."""

import functools

import numpy as np

from spikeforge.cores import CoreSpec
from spikeforge.golden.lut import random_anchors
from spikeforge.golden.lut_event import latencies_to_events, load_anchors, lut_event as golden_lut_event
from spikeforge.rtl.lut_event import LUTEvent, check_lut_event_params

SHAPE = ("n", "n_t", "n_c", "t_width")

# `spikeforge sim lut_event` defaults: 16 neurons, 8 tables of 4 pairs, 5-bit spike times.
DEFAULTS = {"n": 16, "n_t": 8, "n_c": 4, "t_width": 5, "image": "", "anchor_seed": 1}


def resolve(params):
    out = dict(params)
    out.update(check_lut_event_params(**{k: params[k] for k in SHAPE}))
    if not isinstance(out["image"], str):
        raise TypeError(f"LUT event parameter 'image' must be a path or '', not {out['image']!r}")
    if not isinstance(out["anchor_seed"], int) or isinstance(out["anchor_seed"], bool):
        raise TypeError(f"LUT event parameter 'anchor_seed' must be an integer, "
                        f"not {out['anchor_seed']!r}")
    anchors(out)
    return out


@functools.lru_cache(maxsize=8)
def _anchors(n, n_t, n_c, image, seed):
    if image:
        return load_anchors(image, n=n, n_t=n_t, n_c=n_c)
    return random_anchors(n, n_t, n_c, np.random.default_rng(seed))


def anchors(params):
    """Initial anchors: from ``image`` (any image with an ``anchors`` memory) or random."""
    return _anchors(params["n"], params["n_t"], params["n_c"], params["image"],
                    params["anchor_seed"]).copy()


def build(**params):
    return LUTEvent(**{k: params[k] for k in SHAPE}, anchors=anchors(params))


def _window(params, rng):
    """Beats of one window, now and then with the malformed cases the core defines."""
    n, tw = params["n"], params["t_width"]
    tmax = 2 ** tw - 1
    span = int(rng.choice([1, 3, 8, tmax]))
    x = rng.integers(0, min(span, tmax) + 1, size=n)
    neuron, time = latencies_to_events(x, rng=rng, silent_latest=rng.random() < 0.3)
    if rng.random() < 0.2:                                   # shift: windows need not start at 0
        time = time + int(rng.integers(0, tmax - (time.max() if len(time) else 0) + 1))
    ev = [[int(u), int(t), 1] for u, t in zip(neuron, time)]
    if rng.random() < 0.1:
        ev = ev[:int(rng.integers(0, len(ev) + 1))]          # a window ends early: silent rest
    if ev and rng.random() < 0.1:                            # a second spike: ignored
        k = int(rng.integers(0, len(ev)))
        pos = int(rng.integers(k + 1, len(ev) + 1))
        ev.insert(pos, [ev[k][0], ev[pos - 1][1], 1])
    if ev and rng.random() < 0.05:                           # time goes back: latest time counts
        k = int(rng.integers(0, len(ev)))
        ev[k][1] = int(rng.integers(0, ev[k][1] + 1))
    wide = 1 << max(1, (n - 1).bit_length())
    if wide > n and rng.random() < 0.1:                      # no such neuron: ignored
        ev.insert(int(rng.integers(0, len(ev) + 1)), [int(rng.integers(n, wide)), 0, 1])
    while rng.random() < 0.05 or not ev:                     # framing-only beats
        ev.insert(int(rng.integers(0, len(ev) + 1)),
                  [int(rng.integers(0, n)), int(rng.integers(0, tmax + 1)), 0])
    beats = [{"neuron": u, "time": t, "spike": s, "first": 0, "last": 0} for u, t, s in ev]
    beats[0]["first"] = int(rng.random() < 0.9)
    beats[-1]["last"] = 1
    return beats


def stimulus(params, steps, rng):
    """Phases of windows, with bursts of anchor rewrites (some invalid) between them."""
    n, n_t, n_c = params["n"], params["n_t"], params["n_c"]
    chunks = 1 + min(3, steps // 50)
    bounds = np.linspace(0, steps, chunks + 1).astype(int)
    phases = []
    for c in range(chunks):
        if c:
            writes = []
            for _ in range(int(rng.integers(1, 10))):
                pairs = random_anchors(n, 1, n_c, rng)[0]
                beat = {"table": int(rng.integers(0, n_t)), "a": pairs[:, 0].tolist(),
                        "b": pairs[:, 1].tolist()}
                if rng.random() < 0.1:
                    beat["b"][0] = beat["a"][0]
                writes.append(beat)
            phases.append({"w": writes})
        beats = []
        for _ in range(bounds[c], bounds[c + 1]):
            if beats and rng.random() < 0.02:                # an aborted window: dropped
                aborted = _window(params, rng)
                aborted[-1]["last"] = 0
                beats += aborted
                window = _window(params, rng)
                window[0]["first"] = 1
                beats += window
            else:
                beats += _window(params, rng)
        phases.append({"i": beats})
    return phases


def golden(params, stim):
    n = params["n"]
    anc = anchors(params)
    out = []
    for phase in stim if isinstance(stim, list) else [stim]:
        for w in phase.get("w", ()):
            a, b = np.array(w["a"]), np.array(w["b"])
            if w["table"] < params["n_t"] and not ((a == b).any() or (a >= n).any()
                                                   or (b >= n).any()):
                anc[w["table"], :, 0], anc[w["table"], :, 1] = a, b
        beats = phase.get("i", ())
        if beats:
            fields = {k: [b[k] for b in beats] for k in ("neuron", "time", "spike", "first", "last")}
            j = golden_lut_event(**fields, anchors=anc, n=n)
            out += [{"j": row.tolist()} for row in j]
    return {"o": out}


def to_dense(params, outputs):
    """One trace row per window: the ``n_t`` indices."""
    beats = outputs["o"]
    return np.array([b["j"] for b in beats], dtype=np.int64).reshape(len(beats), params["n_t"]), "int"


SPECS = [CoreSpec(
    name="lut_event",
    summary="event-driven LUT index unit: spike events in firing order -> anchor-pair indices",
    build=build, defaults=DEFAULTS, stimulus=stimulus, golden=golden, to_dense=to_dense,
    resolve=resolve, step_unit="window", demo_steps=500,
    build_defaults={"n": 32, "n_t": 16, "n_c": 6, "t_width": 8},
    bench_builds=[{"n": 32, "n_t": 16, "n_c": 6, "t_width": 8}],
    bench_sims=[({"n": 32, "n_t": 16, "n_c": 6, "t_width": 8}, 500)],
)]
