"""Spec of the spiking sequence machine for the generic tools."""

import numpy as np

from spikeforge.cores import CoreSpec
from spikeforge.golden.seqmachine import DEFAULTS, check_seqmachine_params
from spikeforge.golden.seqmachine import seqmachine as golden_seqmachine
from spikeforge.golden.seqmachine import seqmachine_tables
from spikeforge.rtl.seqmachine import SEQMACHINE_RTL_PARAMS, SeqMachine


def resolve(params):
    return check_seqmachine_params(**params)


def build(**params):
    """The RTL with the wiring tables drawn from ``seed`` (the golden model draws the same)."""
    return SeqMachine(**{k: params[k] for k in SEQMACHINE_RTL_PARAMS},
                      **seqmachine_tables(**params))


def stimulus(params, steps, rng):
    """Random sequences, each learnt online (one or two presentations) and then recalled.

    A sequence's first learning beat usually clears the memory (so each is learnt alone);
    sometimes it does not, and sequences interfere. Symbols are uniform, repeats included;
    when ``S`` is not a power of two, a few symbols past ``S - 1`` (no code) appear.
    """
    S = params["S"]
    top = 2 ** max(1, (S - 1).bit_length()) - 1
    beats = []
    while len(beats) < steps:
        L = int(rng.integers(2, 25))
        seq = rng.integers(S, size=L)
        if top >= S and rng.random() < 0.2:
            seq[rng.integers(L)] = int(rng.integers(S, top + 1))
        clear = rng.random() < 0.8
        learn_passes = 2 if rng.random() < 0.15 else 1
        for n in range(learn_passes + 1):
            for t, x in enumerate(seq):
                beats.append({"sym": int(x), "learn": int(n < learn_passes),
                              "clear": int(clear and n == 0 and t == 0),
                              "first": int(t == 0), "last": int(t == L - 1)})
    return {"i": beats[:steps]}


def golden(params, stim):
    beats = stim["i"]
    cols = {k: [b[k] for b in beats] for k in ("sym", "learn", "first", "clear")}
    pred, score, err = golden_seqmachine(cols["sym"], cols["learn"], cols["first"],
                                         cols["clear"], **params)
    return {"o": [{"pred": int(pred[k]), "score": int(score[k]), "err": int(err[k]),
                   "first": b["first"], "last": b["last"]} for k, b in enumerate(beats)]}


def to_dense(params, outputs):
    """One row per symbol: the predicted next symbol, its decoder score, err."""
    rows = [[b["pred"], b["score"], b["err"]] for b in outputs["o"]]
    return np.array(rows, dtype=np.int64).reshape(len(rows), 3), "int"


SPECS = [CoreSpec(
    name="seqmachine",
    summary="spiking sequence machine (N-of-M SDM): learns symbol sequences online, "
            "predicts the next symbol",
    build=build, defaults=dict(DEFAULTS), stimulus=stimulus, golden=golden, to_dense=to_dense,
    resolve=resolve,
    build_defaults=dict(DEFAULTS, S=64, M=64, N=6, K=12, W=1024, w=6, a=12),
    step_unit="symbol", demo_steps=300,
)]

