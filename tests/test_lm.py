# amaranth: UnusedElaboratable=no
"""The whole LUT language model on the RTL (cocotb/Verilator) against its golden model:
generation from prompts, memory reload through ``w``, random models of several shapes, and the
cycle model."""

import numpy as np
import pytest

from spikeforge.cores import get_core
from spikeforge.golden import lut_train as lt
from spikeforge.golden.lm import (LMGolden, generate, model_writes, noise_table,
                                  position_cycles, prompt_beats, write_beat)
from spikeforge.sim.harness import run_rtl
from spikeforge.sim.run import simulate

SPEC = get_core("lm")
TINY = dict(ctx=8, n=8, att_n_t=2, att_n_c=2, att_p=1, ffn_n_t=2, ffn_n_c=3, out_n_t=2,
            out_n_c=3, w_width=6)
# Three shapes: the tiny trained shape; no positional code and single tables; several banks.
SHAPES = {
    "tiny": TINY,
    "p0": dict(ctx=4, n=4, att_n_t=1, att_n_c=1, att_p=0, ffn_n_t=1, ffn_n_c=1, out_n_t=1,
               out_n_c=2, w_width=4),
    "banks": dict(ctx=6, n=12, att_n_t=4, att_n_c=2, att_p=2, ffn_n_t=4, ffn_n_c=2, out_n_t=4,
                  out_n_c=2, w_width=5, att_banks=2, ffn_banks=2, out_banks=4),
}


def params(shape, **kw):
    return SPEC.params({"model": "random", **SHAPES[shape], **kw})


def synthetic_text(size, seed=0):
    """Sentences from a tiny seeded grammar (learnable structure, made here)."""
    rng = np.random.default_rng(seed)
    words = [["the cat", "a dog", "the old man", "my sister"], ["sat on", "ran to", "looked at"],
             ["the mat.", "the park.", "a tree.", "the river."]]
    out = []
    while sum(map(len, out)) < size:
        out.append(" ".join(w[rng.integers(len(w))] for w in words) + "\n")
    return "".join(out).encode()[:size]


@pytest.fixture(scope="module")
def trained():
    train, _ = lt.split_text(synthetic_text(20000))
    return lt.quantise(lt.train(train, lt.ModelConfig(**TINY), steps=120, batch=16, seed=2))


# The banked shape's Verilator build is the slowest; the fuzzing covers banks in CI.
@pytest.mark.parametrize("shape", [pytest.param(s, marks=pytest.mark.slow) if s == "banks"
                                   else s for s in sorted(SHAPES)])
def test_rtl_equals_golden_random_models(shape):
    """Random models, random requests (greedy and sampled, continued sequences), bursts of
    memory rewrites of every target, random valid gaps and backpressure."""
    s = simulate(SPEC, params(shape), steps=40, seed=3, progress=lambda m: None)
    assert s["bit_exact"] and s["beat_mismatches"] == 0, s


def test_reload_then_generate_two_prompts(trained):
    """Every memory of a trained model written through ``w`` into a design built with a random
    model; then 2 prompts x 64 bytes (greedy, then sampled) equal the golden model's text."""
    p = params("tiny")
    core = SPEC.build(**p)
    noise = noise_table(trained.out_scale, 1.0)
    writes = model_writes(trained) + [write_beat(TINY, target=4, addr=k, noise=int(v))
                                      for k, v in enumerate(noise)]
    prompts = [(b"the cat ", False, 0), (b"a dog ran", True, 12345)]
    beats = [b for text, sample, seed in prompts
             for b in prompt_beats(text, 64, sample=sample, seed=seed)]
    stim = [{"w": writes}, {"i": beats}]
    want = LMGolden(trained, noise=noise).run(stim)
    res = run_rtl(core, stim, {"o": len(want)}, seed=5, max_cycles=400_000)
    assert res.outputs["o"] == want
    texts = [bytes(b["byte"] for b in want[:64]), bytes(b["byte"] for b in want[64:])]
    assert texts[0] == generate(trained, b"the cat ", 64)
    assert texts[1] == generate(trained, b"a dog ran", 64, sample=True, seed=12345, noise=noise)
    assert [b["last"] for b in want].count(1) == 2


@pytest.mark.parametrize("shape", ["tiny", pytest.param("banks", marks=pytest.mark.slow)])
def test_cycles_match_model(shape):
    """Without stalls, the cycles between outputs (and between prompt bytes) are exactly the
    golden cycle model's, across the point where the attention window starts to slide.

    The LUT layers declare their latency (``LUT.latency``); the attention's constant part is
    taken from the prompt bytes (which cost ``La + 4`` cycles each) unless the core declares
    it, so the model stays exact while the sub-cores' pipelines change."""
    p = params(shape)
    core = SPEC.build(**p)
    cfg = {k: p[k] for k in TINY}
    prompt = b"abcd"
    n_gen = p["ctx"] + 4
    res = run_rtl(core, {"i": prompt_beats(prompt, n_gen)}, {"o": n_gen}, gaps=False,
                  max_cycles=200_000)
    got_in = np.diff(res.input_cycles["i"]).tolist()
    k_att = core.timing["att_k"]
    extra = {d - 4 - k_att * (1 + min(k, p["ctx"] - 1)) for k, d in enumerate(got_in)}
    assert len(extra) == 1, got_in
    timing = {**core.timing, "att_extra": extra.pop()}
    if callable(getattr(core.att, "latency", None)):
        assert timing == core.timing
    want_in = [position_cycles(cfg, k, predict=False, timing=timing)
               for k in range(len(prompt) - 1)]
    assert got_in == want_in
    got = np.diff(res.cycles["o"]).tolist()
    want = [position_cycles(cfg, len(prompt) + k, predict=True, timing=timing)
            for k in range(n_gen - 1)]
    assert got == want, (got, want)
