"""Property-based fuzzing: legal parameter sets and stimulus drawn at random, the RTL in the
Amaranth simulator (random valid gaps and backpressure) equal to the golden model, every
payload bit of every beat, for every core in the registry.

CI (``test_fuzz``) runs 20 examples per core; the ``slow`` benchmark (``test_fuzz_long``,
``pytest -m slow tests/test_fuzz.py``) runs 500 per core and records, per core, the examples
run and the failures in ``benchmarks/verification.json``. Both are reproducible: Hypothesis
is derandomized (a fixed sequence of examples per core) unless ``SPIKEFORGE_FUZZ_SEED`` gives
a seed. ``SPIKEFORGE_FUZZ_EXAMPLES`` changes the count of either test;
``SPIKEFORGE_FUZZ_SHRINK=0`` skips shrinking a failing example (mutation runs).
"""

import fcntl
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as fixed_seed
from hypothesis import strategies as st

from spikeforge.cores import all_cores, get_core
from spikeforge.sim.amaranth_bench import golden_mismatches, run_stream

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "verification.json"
_COUNT = os.environ.get("SPIKEFORGE_FUZZ_EXAMPLES")
CI_EXAMPLES = int(_COUNT or 20)
LONG_EXAMPLES = int(_COUNT or 500)
SEED = os.environ.get("SPIKEFORGE_FUZZ_SEED")
# A mutation run only needs to know that an example fails, not the smallest one.
PHASES = [p for p in Phase if os.environ.get("SPIKEFORGE_FUZZ_SHRINK") != "0" or
          p is not Phase.shrink]


def _settings(examples):
    return settings(max_examples=examples, deadline=None, derandomize=SEED is None,
                    database=None, phases=PHASES, report_multiple_bugs=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


def check_case(core, params, steps, seed, gaps):
    """Spec stimulus of ``steps`` steps from ``seed``; the RTL (Amaranth simulator) must give
    exactly the golden model's output beats."""
    spec = get_core(core)
    params = spec.params(params)
    stim = spec.stimulus(params, steps, np.random.default_rng(seed))
    expected = spec.golden(params, stim)
    result = run_stream(spec.build(**params), stim, {k: len(v) for k, v in expected.items()},
                        seed=seed, gaps=gaps)
    problems = golden_mismatches(spec, params, stim, result)
    assert not problems, f"{core} {params} steps={steps} seed={seed}: " + "; ".join(problems)


def _per_step(T, lo, hi):
    return st.one_of(st.integers(lo, hi), st.lists(st.integers(lo, hi), min_size=T, max_size=T))


@st.composite
def lif_case(draw):
    p = draw(st.integers(1, 4))
    n = p * draw(st.integers(1, 6))
    T = draw(st.integers(1, 4))
    m_width = draw(st.integers(2, 14))
    frac = draw(st.integers(0, 6))
    m_max = 2 ** (m_width - 1) - 1
    params = {
        "n": n, "p": p, "T": T, "x_width": draw(st.integers(2, 10)), "m_width": m_width,
        "frac": frac, "rho": draw(st.integers(0, 1)), "bipolar": draw(st.booleans()),
        **{name: draw(_per_step(T, 0, 2 ** frac))
           for name in ("beta_pos", "beta_zero", "beta_neg")},
        **{name: draw(_per_step(T, 1, m_max)) for name in ("theta_pos", "theta_neg")},
        "theta_reset": draw(_per_step(T, 0, m_max)),
    }
    return params, draw(st.integers(1, 12))


# The LUT specs rewrite memories between chunks of windows only from 50 steps on.
WRITE_STEPS = st.one_of(st.integers(1, 8), st.integers(50, 100))


def _lanes(draw, most=4):
    return draw(st.sampled_from([p for p in (1, 2, 4, 8) if p <= most]))


@st.composite
def absmean_case(draw):
    p = _lanes(draw)
    d_max = p * draw(st.integers(1, 4))
    params = {"d_max": d_max, "p": p, "e_width": draw(st.integers(2, 12))}
    return params, draw(st.integers(1, 3 * d_max))


@st.composite
def poisson_case(draw):
    p = _lanes(draw)
    rates = st.one_of(st.integers(0, 65535), st.sampled_from([0, 1, 32768, 65535]))
    params = {"d_max": p * draw(st.integers(1, 3)), "p": p, "W": draw(st.integers(1, 6)),
              "seed": draw(st.integers(0, 2 ** 32 - 1)), "rate_pos": draw(rates),
              "rate_zero": draw(rates), "rate_neg": draw(rates)}
    return params, draw(st.integers(1, 3 * params["W"]))


@st.composite
def ratedecode_case(draw):
    p = _lanes(draw)
    W = draw(st.integers(1, 12))
    params = {"d_max": p * draw(st.integers(1, 3)), "p": p, "W": W}
    if draw(st.booleans()):
        rate_neg = draw(st.integers(1, 60000))
        params.update(rate_neg=rate_neg, rate_pos=draw(st.integers(rate_neg + 1, 65535)))
    else:
        cw = draw(st.integers(1, 5))
        params.update(count_width=cw, C=draw(st.integers(1, 2 ** cw - 1)))
    return params, draw(st.integers(1, 3 * W))


@st.composite
def rankorder_case(draw):
    M = draw(st.integers(2, 8))
    frac = draw(st.integers(1, 8))
    params = {"M": M, "N": draw(st.integers(1, M)), "width": draw(st.integers(1, 8)),
              "order": draw(st.sampled_from(["earliest", "largest"])), "frac": frac,
              "alpha": draw(st.integers(1, 2 ** frac - 1)),
              "outputs": draw(st.sampled_from(["both", "indices", "significance"]))}
    return params, draw(st.integers(1, 10))


@st.composite
def assoc_case(draw):
    kind = draw(st.sampled_from(["ternary", "rank"]))
    banks = draw(st.sampled_from([1, 2, 4]))
    K = banks * draw(st.integers(1, 3))
    D = draw(st.integers(1 if kind == "ternary" else 2, 8))
    frac = draw(st.integers(1, 8))
    params = {"K": K, "D": D, "kind": kind,
              "N": draw(st.integers(1, D if kind == "rank" else 8)), "frac": frac,
              "alpha": draw(st.integers(1, 2 ** frac - 1)), "banks": banks,
              "top_k": draw(st.integers(1, min(K, 4))),
              "init_seed": draw(st.one_of(st.none(), st.integers(0, 1000)))}
    return params, draw(st.integers(1, 8))


@st.composite
def lut_case(draw):
    n_t = draw(st.integers(1, 4))
    params = {"n": draw(st.integers(2, 8)), "x_width": draw(st.integers(2, 6)), "n_t": n_t,
              "n_c": draw(st.integers(1, 3)), "y_dim": draw(st.integers(1, 3)),
              "w_width": draw(st.integers(2, 6)),
              "banks": draw(st.sampled_from([b for b in range(1, n_t + 1) if n_t % b == 0])),
              "table_seed": draw(st.integers(0, 1000))}
    return params, draw(WRITE_STEPS)


@st.composite
def lut_event_case(draw):
    params = {"n": draw(st.integers(2, 8)), "n_t": draw(st.integers(1, 4)),
              "n_c": draw(st.integers(1, 3)), "t_width": draw(st.integers(1, 5)),
              "anchor_seed": draw(st.integers(0, 1000))}
    return params, draw(WRITE_STEPS)


@st.composite
def ternary_linear_case(draw):
    k, p = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    params = {"n_in": k * draw(st.integers(1, 3)), "n_out": p * draw(st.integers(1, 3)),
              "k": k, "p": p, "spikes": draw(st.sampled_from(["binary", "ternary"])),
              "weights_seed": draw(st.integers(0, 1000))}
    return params, draw(st.integers(1, 6))


@st.composite
def sfsa_case(draw):
    frac = draw(st.integers(0, 8))
    params = {"d": draw(st.integers(1, 4)), "L": draw(st.integers(1, 4)),
              "T": draw(st.integers(1, 3)), "strict": draw(st.booleans()), "frac": frac,
              "attn_theta": draw(st.integers(1, 8)), "out_theta": draw(st.integers(1, 8)),
              "attn_beta": draw(st.integers(0, 2 ** frac)),
              "out_beta": draw(st.integers(0, 2 ** frac))}
    return params, draw(st.integers(1, 10))


@st.composite
def w2s_chain_case(draw):
    p = _lanes(draw)
    W = draw(st.integers(1, 8))
    params = {"d_max": p * draw(st.integers(1, 3)), "p": p, "e_width": draw(st.integers(2, 10)),
              "W": W, "seed": draw(st.integers(0, 2 ** 32 - 1))}
    if draw(st.booleans()):
        rate_neg = draw(st.integers(1, 60000))
        params.update(rate_neg=rate_neg, rate_pos=draw(st.integers(rate_neg + 1, 65535)),
                      rate_zero=draw(st.integers(0, 65535)))
    else:
        cw = draw(st.integers(1, 5))
        params.update(count_width=cw, C=draw(st.integers(1, 2 ** cw - 1)))
    return params, draw(st.integers(1, 3 * W))


@st.composite
def attn_block_case(draw):
    frac = draw(st.integers(0, 8))
    d = draw(st.integers(1, 4))
    d_model = draw(st.integers(1, 4))
    params = {"d_model": d_model, "d": d, "L": draw(st.integers(1, 3)),
              "T": draw(st.integers(1, 2)), "strict": draw(st.booleans()), "frac": frac,
              "p": draw(st.sampled_from([p for p in range(1, 13)
                                         if (3 * d) % p == 0 and d_model % p == 0])),
              "k": draw(st.sampled_from([k for k in range(1, 5)
                                         if d % k == 0 and d_model % k == 0])),
              "weights_seed": draw(st.integers(0, 1000))}
    for stage in ("qkv", "attn", "out", "proj"):
        params[f"{stage}_theta"] = draw(st.integers(1, 6))
        params[f"{stage}_beta"] = draw(st.integers(0, 2 ** frac))
    return params, draw(st.integers(1, 8))


@st.composite
def seqmachine_case(draw):
    M = draw(st.integers(2, 10))
    W = draw(st.integers(1, 12))
    frac = draw(st.integers(1, 8))
    params = {"S": draw(st.integers(2, 12)), "M": M, "N": draw(st.integers(1, M)),
              "K": draw(st.integers(1, M)), "W": W, "w": draw(st.integers(1, min(W, 4))),
              "a": draw(st.integers(1, M)), "frac": frac,
              "alpha": draw(st.integers(1, 2 ** frac - 1)),
              "lam": draw(st.integers(0, 2 ** frac)), "seed": draw(st.integers(0, 1000))}
    return params, draw(st.integers(1, 12))


@st.composite
def lut_attention_case(draw):
    n_t = draw(st.integers(1, 3))
    params = {"n": draw(st.integers(2, 6)), "x_width": draw(st.integers(2, 5)), "n_t": n_t,
              "n_c": draw(st.integers(1, 2)), "p": draw(st.integers(0, 2)),
              "ctx": draw(st.integers(2, 5)), "y_dim": draw(st.integers(1, 2)),
              "w_width": draw(st.integers(2, 5)),
              "banks": draw(st.sampled_from([b for b in range(1, n_t + 1) if n_t % b == 0])),
              "causal_self": draw(st.booleans()), "table_seed": draw(st.integers(0, 1000))}
    return params, draw(WRITE_STEPS)


@st.composite
def lm_case(draw):
    """A small random model (the shipped one is far too slow to simulate per example)."""
    def banks(n_t):
        return draw(st.sampled_from([b for b in range(1, n_t + 1) if n_t % b == 0]))
    shape = {"ctx": draw(st.integers(2, 3)), "n": draw(st.integers(2, 4)),
             "att_n_t": draw(st.integers(1, 2)), "att_n_c": draw(st.integers(1, 2)),
             "att_p": draw(st.integers(0, 1)), "ffn_n_t": draw(st.integers(1, 2)),
             "ffn_n_c": draw(st.integers(1, 2)), "out_n_t": draw(st.integers(1, 2)),
             "out_n_c": draw(st.integers(1, 2)), "w_width": draw(st.integers(2, 6))}
    params = {"model": "random", "model_seed": draw(st.integers(0, 1000)), **shape,
              "temperature": draw(st.sampled_from([0, 0.5, 1.0, 2.0])),
              "noise_width": draw(st.integers(7, 16)), "gen_width": draw(st.integers(5, 8)),
              "att_banks": banks(shape["att_n_t"]), "ffn_banks": banks(shape["ffn_n_t"]),
              "out_banks": banks(shape["out_n_t"])}
    return params, draw(st.integers(1, 2))


#: Core name -> strategy of (parameter overrides, steps).
CASES = {
    "lif": lif_case(),
    "absmean": absmean_case(),
    "poisson": poisson_case(),
    "ratedecode": ratedecode_case(),
    "rankorder": rankorder_case(),
    "assoc": assoc_case(),
    "lut": lut_case(),
    "lut_event": lut_event_case(),
    "ternary_linear": ternary_linear_case(),
    "sfsa": sfsa_case(),
    "lut_attention": lut_attention_case(),
    "w2s_chain": w2s_chain_case(),
    "attn_block": attn_block_case(),
    "seqmachine": seqmachine_case(),
    "lm": lm_case(),
}

SEEDS = st.integers(0, 2 ** 32 - 1)
GAPS = st.sampled_from([True, True, True, False])


def _fuzz(core, examples, ran=None) -> int:
    """Run ``examples`` Hypothesis examples of ``core`` (the falsifying one, if any, is
    raised); return how many ran. ``ran``, a list, gets one item per example run."""
    ran = [] if ran is None else ran

    @_settings(examples)
    @given(case=CASES[core], seed=SEEDS, gaps=GAPS)
    def run(case, seed, gaps):
        ran.append(1)
        params, steps = case
        check_case(core, params, steps, seed, gaps)

    if SEED is not None:
        run = fixed_seed(int(SEED))(run)
    run()
    return len(ran)


def test_every_registered_core_is_fuzzed():
    assert sorted(CASES) == sorted(all_cores())


@pytest.mark.parametrize("core", sorted(CASES))
def test_fuzz(core):
    assert _fuzz(core, CI_EXAMPLES) >= min(CI_EXAMPLES, 20)


def _record(core, entry):
    """Merge ``entry`` into ``benchmarks/verification.json`` under ``fuzz`` -> ``core``,
    under a lock (runs on several workers share the file), written atomically."""
    RESULTS.parent.mkdir(exist_ok=True)
    with open(RESULTS.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        data.setdefault("fuzz", {})[core] = entry
        tmp = RESULTS.with_name(f".{RESULTS.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, RESULTS)


@pytest.mark.slow
@pytest.mark.parametrize("core", sorted(CASES))
def test_fuzz_long(core):
    start, ran = time.monotonic(), []
    entry = {"examples_requested": LONG_EXAMPLES,
             "seed": "derandomize" if SEED is None else int(SEED),
             "command": f"SPIKEFORGE_FUZZ_EXAMPLES={LONG_EXAMPLES} pytest -m slow "
                        f"'tests/test_fuzz.py::test_fuzz_long[{core}]'"
                        + ("" if SEED is None else f" (SPIKEFORGE_FUZZ_SEED={SEED})")}
    try:
        _fuzz(core, LONG_EXAMPLES, ran)
        entry.update(failures=0)
    except Exception as exc:
        entry.update(failures=1, failure=" ".join(str(exc).split())[:400])
        raise
    finally:
        entry.update(examples_run=len(ran), seconds=round(time.monotonic() - start, 1),
                     date=time.strftime("%Y-%m-%d", time.gmtime()))
        _record(core, entry)
