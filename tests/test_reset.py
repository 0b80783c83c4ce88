"""Reset in the middle of a stream returns every core to its documented initial state.

For each core: drive one random stream for a while (random gaps and backpressure, stopping
wherever it happens to be: mid-sequence, mid-beat, output stalled), hold the clock domain's
reset, then drive a fresh stream and compare every output beat with the golden model run on
that fresh stream from scratch. Cores whose documentation says the first beat after reset
starts a sequence whether or not ``first`` is set get that beat with ``first`` cleared (their
golden models, like the RTL after reset, start a sequence at the first beat regardless).
"""

import copy

import numpy as np
import pytest

from spikeforge.cores import get_core
from spikeforge.sim.amaranth_bench import golden_mismatches, run_stream

#: Case -> (core, parameter overrides, steps before, steps after, ports whose first beat after
#: reset has `first` cleared, whether the prelude may write memories through `w`).
#: Cores whose memories keep their contents through a reset (documented) get a prelude
#: without writes, so that the golden model's initial contents still hold after it.
RESET = {
    "lif": ("lif", {"preset": "spikelm", "n": 12, "p": 2, "rho": 1, "theta_reset": 40},
            12, 6, ("i",), True),
    "lif_binary": ("lif", {"preset": "bispikclm", "n": 4, "p": 1}, 12, 6, ("i",), True),
    "absmean": ("absmean", {"d_max": 8, "p": 2, "e_width": 8}, 30, 20, ("i",), True),
    "poisson": ("poisson", {"d_max": 4, "p": 2, "W": 4}, 12, 12, ("i",), True),
    "ratedecode": ("ratedecode", {"d_max": 4, "p": 2, "W": 6}, 18, 12, ("i",), True),
    "rankorder": ("rankorder", {"M": 6, "N": 3, "width": 6}, 8, 6, (), True),
    "assoc": ("assoc", {"K": 8, "D": 8, "banks": 2, "top_k": 2}, 8, 6, (), False),
    "lut": ("lut", {"n": 8, "n_t": 4, "n_c": 3, "y_dim": 3}, 8, 6, (), False),
    # The anchors are registers that return to their initial values: writes allowed.
    "lut_event": ("lut_event", {"n": 8, "n_t": 3, "n_c": 2, "t_width": 4}, 6, 4, (), True),
    "ternary_linear": ("ternary_linear", {"n_in": 8, "n_out": 6, "p": 2, "k": 4}, 6, 4, (),
                       False),
    "sfsa": ("sfsa", {"d": 4, "L": 4, "T": 2}, 12, 8, ("i",), True),
    "lut_attention": ("lut_attention", {"n": 6, "n_t": 2, "n_c": 2, "p": 1, "ctx": 4,
                                        "y_dim": 2, "banks": 1}, 10, 8, ("i",), False),
    "attn_block": ("attn_block", {"d_model": 4, "d": 4, "L": 3, "T": 2, "p": 2, "k": 2},
                   12, 8, ("i",), False),
    "w2s_chain": ("w2s_chain", {"d_max": 4, "p": 2, "e_width": 6, "W": 4}, 12, 8, ("i",), True),
    # Learning writes the memory, which keeps its contents through a reset: the prelude only
    # recalls (no `learn`, no `clear`), so the golden model's empty memory still holds after it.
    "seqmachine": ("seqmachine", {"S": 6, "M": 6, "N": 2, "K": 3, "W": 8, "w": 2, "a": 3},
                   8, 6, ("i",), False),
    "lm": ("lm", {"model": "random", "ctx": 3, "n": 4, "att_n_t": 1, "att_n_c": 2, "att_p": 1,
                  "ffn_n_t": 1, "ffn_n_c": 2, "out_n_t": 2, "out_n_c": 2, "w_width": 4},
           2, 2, ("i",), False),
}

#: Prelude lengths in cycles: right after the start, mid-pipeline, deep into the stream.
CUTS = (1, 4, 9, 23, 61)


def _clear_first(stimulus, ports):
    stim = copy.deepcopy(stimulus)
    phases = stim if isinstance(stim, list) else [stim]
    for port in ports:
        for phase in phases:
            if phase.get(port):
                phase[port][0]["first"] = 0
                break
    return stim


def _without_writes(stimulus):
    """The stimulus without memory writes: no `w` beats, and no learning beats."""
    phases = stimulus if isinstance(stimulus, list) else [stimulus]
    phases = [{k: v for k, v in phase.items() if k != "w"} for phase in phases]
    for phase in phases:
        for beat in phase.get("i", []):
            for flag in ("learn", "clear"):
                if flag in beat:
                    beat[flag] = 0
    return phases


@pytest.mark.parametrize("case", sorted(RESET))
def test_reset_mid_stream(case):
    core, overrides, before, after, unflag, writes = RESET[case]
    spec = get_core(core)
    params = spec.params(overrides)
    for k, cut in enumerate(CUTS):
        rng = np.random.default_rng(1000 * k + len(case))
        prelude = spec.stimulus(params, before, rng)
        if not writes:
            prelude = _without_writes(prelude)
        fresh = _clear_first(spec.stimulus(params, after, rng), unflag)
        expected = spec.golden(params, fresh)
        result = run_stream(spec.build(**params), fresh, {n: len(v) for n, v in expected.items()},
                            seed=k, prelude=prelude, prelude_cycles=cut, reset_cycles=1 + k % 2)
        problems = golden_mismatches(spec, params, fresh, result)
        assert not problems, f"{case}, reset after {cut} cycles: " + "; ".join(problems)
