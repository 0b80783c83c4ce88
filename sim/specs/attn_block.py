"""Spec of the BiSpikCLM attention block for the generic tools."""

import numpy as np

from spikeforge.cores import CoreSpec
from spikeforge.firmware.image import MemorySpec, load_image
from spikeforge.golden.attn_block import attn_block as golden_attn_block, random_block_weights
from spikeforge.rtl.attn_block import ATTN_BLOCK_PARAMS, AttnBlock, check_attn_block_params

from .sfsa import sequence_stimulus

# `spikeforge sim attn_block`: d_model = d = 16, 16 keys, T = 2; 16 lanes x 16 inputs per cycle
# (Q/K/V in 3 cycles per step, the output projection in 1). `weights` is a memory-image path
# (memories wq, wk, wv, wo); without it the weights are drawn from `weights_seed`.
DEFAULTS = {"d_model": 16, "d": 16, "L": 16, "T": 2, "strict": False, "p": 16, "k": 16,
            "frac": 8, "qkv_theta": 2, "qkv_beta": 128, "attn_theta": 2, "attn_beta": 128,
            "out_theta": 2, "out_beta": 128, "proj_theta": 2, "proj_beta": 128,
            "weights_seed": 1, "weights": None}


def image_specs(d_model, d):
    """The memories of an attn_block image: ternary ``wq``, ``wk``, ``wv`` and ``wo``."""
    return {"wq": MemorySpec((d, d_model), -1, 1), "wk": MemorySpec((d, d_model), -1, 1),
            "wv": MemorySpec((d, d_model), -1, 1), "wo": MemorySpec((d_model, d), -1, 1)}


def resolve(params):
    out = check_attn_block_params(**{name: params[name] for name in ATTN_BLOCK_PARAMS})
    seed = params["weights_seed"]
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"attn_block parameter 'weights_seed' must be a non-negative "
                         f"integer, not {seed!r}")
    if params["weights"] is not None and not isinstance(params["weights"], str):
        raise TypeError(f"attn_block parameter 'weights' must be a memory-image path or None, "
                        f"not {params['weights']!r}")
    return {**out, "weights_seed": seed, "weights": params["weights"]}


def block_weights(params):
    """``{"wq", "wk", "wv", "wo"}``: from the image ``weights`` or drawn from ``weights_seed``."""
    if params.get("weights"):
        _, mems = load_image(params["weights"], core="attn_block",
                             specs=image_specs(params["d_model"], params["d"]))
        return mems
    return random_block_weights(params["weights_seed"], params["d_model"], params["d"])


def build(**params):
    return AttnBlock(**{name: params[name] for name in ATTN_BLOCK_PARAMS},
                     **block_weights(params))


def stimulus(params, steps, rng):
    """Random sequences as for ``sfsa`` (past the cache, some cut inside a token), with input
    spike densities drawn per sequence."""
    x, _, _, first = sequence_stimulus(rng, steps, d=params["d_model"], L=params["L"],
                                       T=params["T"])
    last = np.roll(first, -1)
    last[-1] = True
    return {"i": [{"x": x[s].tolist(), "first": int(first[s]), "last": int(last[s])}
                  for s in range(steps)]}


def golden(params, stim):
    beats = stim["i"]
    x = np.array([b["x"] for b in beats], dtype=np.int64).reshape(len(beats), -1)
    first = np.array([b["first"] for b in beats], dtype=bool)
    y = golden_attn_block(x, first, **{name: params[name] for name in ATTN_BLOCK_PARAMS},
                          **block_weights(params))
    return {"o": [{"y": y[j].tolist(), "first": b["first"], "last": b["last"]}
                  for j, b in enumerate(beats)]}


def to_dense(params, outputs):
    y = np.array([b["y"] for b in outputs["o"]], dtype=np.int64).reshape(-1, params["d_model"])
    return y, "binary"


# Benchmark parameters (`python -m spikeforge.bench`).
# d_model = d = 32: at 64 (17.5k TRELLIS_COMB, 15.7k FF) routing is too slow for a benchmark: after
# 23000 router iterations (about 5 minutes) 59k of 78k arcs were still unrouted.
BENCH = {"d_model": 32, "d": 32, "L": 64, "T": 4, "p": 16, "k": 16, "attn_theta": 8,
         "out_theta": 4}


SPECS = [CoreSpec(
    name="attn_block",
    summary="BiSpikCLM attention block: ternary QKV + LIF -> SFSA -> ternary projection + LIF",
    build=build, defaults=DEFAULTS, stimulus=stimulus, golden=golden, to_dense=to_dense,
    resolve=resolve, build_defaults={"d_model": 64, "d": 64, "L": 128, "T": 4, "p": 16,
                                     "k": 16, "attn_theta": 8, "out_theta": 4},
    step_unit="step", demo_steps=1000,
    # 13,000 flip-flops: the reset on a global network (ECP5PLL(global_reset=True)). With it,
    # nextpnr's default router1 routes both grades (at grade 8 it had been left congested,
    # and router2 was used there: docs/cores/attn_block.md).
    build_global_reset=True,
    # Weigh timing more in placement: at d = 64, L = 64 seed 1 gave 154.0 MHz with these
    # against 132.5 with nextpnr's defaults; on the current RTL seeds 1-3 give 151.6, 157.4
    # and 149.2 MHz (docs/cores/attn_block.md).
    build_placer={"timingweight": 30, "critexp": 4},
    bench_builds=[BENCH],
    bench_sims=[(BENCH, 200)],
)]
