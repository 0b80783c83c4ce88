"""Spec of the associative memory for the generic tools."""

import numpy as np

from spikeforge.cores import CoreSpec, ParamError
from spikeforge.firmware.image import MemorySpec, load_image
from spikeforge.golden.assoc import assoc as golden_assoc
from spikeforge.golden.assoc import assoc_write
from spikeforge.rtl.assoc import ASSOC_PARAMS, Assoc, check_assoc_params

# `spikeforge sim assoc` defaults: 32 ternary codes of 32 elements, 4 banks, the best 2.
# `init_seed` draws the initial contents (None: all zero); `image` loads them from a memory
# image with one memory, "codes", instead.
DEFAULTS = {"K": 32, "D": 32, "kind": "ternary", "N": 4, "alpha": 192, "frac": 8,
            "banks": 4, "top_k": 2, "init_seed": 1, "image": None}


def resolve(params):
    out = check_assoc_params(**{k: params[k] for k in ASSOC_PARAMS})
    seed, image = params.get("init_seed"), params.get("image")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise ParamError(f"assoc parameter 'init_seed' must be a non-negative integer or "
                         f"None, not {seed!r}")
    if image is not None and not isinstance(image, str):
        raise ParamError(f"assoc parameter 'image' must be a file path, not {image!r}")
    return {**out, "init_seed": seed, "image": image}


def image_spec(params):
    """The :class:`MemorySpec` of an assoc memory image: one memory ``codes``."""
    if params["kind"] == "ternary":
        return {"codes": MemorySpec((params["K"], params["D"]), -1, 1)}
    return {"codes": MemorySpec((params["K"], params["N"]), 0, params["D"] - 1)}


def _random_codes(params, n, rng, *, illegal=0.0):
    K, D, N = params["K"], params["D"], params["N"]
    if params["kind"] == "ternary":
        codes = rng.integers(-1, 2, size=(n, D))
        codes[rng.random((n, D)) < illegal] = -2
        return codes
    return np.argsort(rng.random((n, D)), axis=1)[:, :N]


def initial_codes(params):
    """The memory contents a core starts with: from ``image``, ``init_seed`` or zeros."""
    if params["image"] is not None:
        _, mems = load_image(params["image"], core="assoc", specs=image_spec(params))
        return mems["codes"]
    shape = image_spec(params)["codes"][0]
    if params["init_seed"] is None:
        return np.zeros(shape, dtype=np.int64)
    rng = np.random.default_rng(params["init_seed"])
    # A pool smaller than K, so that some codes repeat: equal scores at different indices.
    pool = _random_codes(params, max(1, 3 * params["K"] // 4), rng)
    return pool[rng.integers(len(pool), size=params["K"])]


def build(**params):
    return Assoc(patterns=initial_codes(params), **{k: params[k] for k in ASSOC_PARAMS})


def _queries(params, memory, n, rng):
    """Copies of stored codes, noisy copies, random codes; some illegal or repeated indices."""
    D, N = params["D"], params["N"]
    out = _random_codes(params, n, rng, illegal=0.02)
    pick = rng.random(n)
    src = memory[rng.integers(len(memory), size=n)]
    if params["kind"] == "ternary":
        noise = rng.random((n, D)) < rng.choice([0.0, 0.1, 0.3], size=(n, 1))
        noisy = np.where(noise, rng.integers(-1, 2, size=(n, D)), src)
    else:
        noisy = src.copy()
        for r in range(n):
            k = int(rng.integers(N))
            noisy[r, k] = int(rng.integers(D))          # may repeat an index: invalid code
            if N > 1 and rng.random() < 0.5:
                a, b = rng.choice(N, size=2, replace=False)
                noisy[r, [a, b]] = noisy[r, [b, a]]
    out = np.where((pick < 0.6)[:, None], noisy, out)
    return np.where((pick < 0.2)[:, None], src, out)


def stimulus(params, steps, rng):
    """Phases of queries, with a few run-time writes (repeated addresses too) in between."""
    memory = initial_codes(params)
    phases = []
    done = 0
    while done < steps:
        n = min(steps - done, int(rng.integers(1, max(2, min(200, steps // 4)))))
        q = _queries(params, memory, n, rng)
        phases.append({"i": [{"q": row.tolist(), "first": int(k == 0), "last": int(k == n - 1)}
                             for k, row in enumerate(q)]})
        done += n
        if done < steps:
            m = int(rng.integers(1, 9))
            addr = rng.integers(params["K"], size=m)
            codes = np.where((rng.random(m) < 0.3)[:, None],
                             memory[rng.integers(params["K"], size=m)],
                             _random_codes(params, m, rng, illegal=0.02))
            phases.append({"w": [{"addr": int(a), "code": c.tolist()}
                                 for a, c in zip(addr, codes)]})
            memory = assoc_write(memory, addr, codes)
    return phases


def golden(params, stim):
    memory = initial_codes(params)
    kwargs = {k: params[k] for k in ASSOC_PARAMS}
    out = []
    for phase in stim if isinstance(stim, list) else [stim]:
        writes = phase.get("w", [])
        if writes:
            memory = assoc_write(memory, [b["addr"] for b in writes],
                                 [b["code"] for b in writes])
        beats = phase.get("i", [])
        if beats:
            index, score, err = golden_assoc(memory, [b["q"] for b in beats], **kwargs)
            for k, b in enumerate(beats):
                out.append({"index": index[k].tolist(), "score": score[k].tolist(),
                            "err": int(err[k]), "first": b["first"], "last": b["last"]})
    return {"o": out}


def to_dense(params, outputs):
    """One row per query: the top_k indices, the top_k scores, then err."""
    rows = [b["index"] + b["score"] + [b["err"]] for b in outputs["o"]]
    return np.array(rows, dtype=np.int64).reshape(len(rows), 2 * params["top_k"] + 1), "int"


SPECS = [CoreSpec(
    name="assoc",
    summary="associative memory: K ternary or rank-order codes, best top_k by dot product, "
            "one code per cycle per bank",
    build=build, defaults=DEFAULTS, stimulus=stimulus, golden=golden, to_dense=to_dense,
    resolve=resolve,
    build_defaults={"K": 1024, "D": 64, "kind": "ternary", "N": 4, "alpha": 192, "frac": 8,
                    "banks": 8, "top_k": 4, "init_seed": 1, "image": None},
    step_unit="lookup", demo_steps=2000,
)]
