"""LM edge cases that mutation testing (``python -m spikeforge.sim.mutate lm``) showed the
fast tests did not pin: the ``w`` beats of :func:`model_writes` load every memory of a model,
the RTL takes ``w`` beats at all (the fuzz test's one or two bytes seldom bring a write; the
tests that reload the RTL run under Verilator, outside the mutation checks), and the lower end
of ``att_p``."""

from types import SimpleNamespace

import numpy as np
import pytest

from spikeforge.cores import get_core
from spikeforge.golden.lm import (LMGolden, model_writes, prompt_beats, random_model,
                                  write_beat)
from spikeforge.rtl.lm import LM
from spikeforge.sim.amaranth_bench import golden_mismatches, run_stream

SHAPE = dict(ctx=4, n=4, att_n_t=2, att_n_c=2, att_p=2, ffn_n_t=2, ffn_n_c=2, out_n_t=2,
             out_n_c=1, w_width=4)
MEMORIES = ("embed", "att_anchors", "att_tables", "att_pe", "ffn_anchors", "ffn_tables",
            "out_anchors", "out_tables")


@pytest.mark.parametrize("att_p", [0, 2])
def test_model_writes_load_every_memory(att_p):
    shape = dict(SHAPE, att_p=att_p)
    model, other = random_model(shape, seed=1), random_model(shape, seed=2)
    gold = LMGolden(other)
    differ = [k for k in MEMORIES if not np.array_equal(getattr(gold, k), getattr(model, k))]
    assert len(differ) == len(MEMORIES) - (att_p == 0)      # att_pe is empty without att_p
    for beat in model_writes(model):
        gold.write(beat)
    for k in MEMORIES:
        assert np.array_equal(getattr(gold, k), np.asarray(getattr(model, k))), k


def test_write_beat_defaults_are_zero():
    beat = write_beat(SHAPE)
    assert {k: v for k, v in beat.items() if not isinstance(v, list)} == \
        {"target": 0, "kind": 0, "table": 0, "addr": 0, "pe": 0, "noise": 0}
    assert beat["y"] == [0] * 256 and beat["a"] == [0, 0] and beat["b"] == [0, 0]


def test_rtl_reloaded_through_w_generates_like_golden():
    """A design built with one random model, every memory rewritten with another through
    ``w``, then a request: RTL (Amaranth simulator, random gaps and backpressure) equal to
    the golden model, whose answer is the second model's, not the first's."""
    spec = get_core("lm")
    shape = dict(ctx=2, n=3, att_n_t=1, att_n_c=1, att_p=1, ffn_n_t=1, ffn_n_c=2, out_n_t=1,
                 out_n_c=2, w_width=4)
    params = spec.params({"model": "random", "model_seed": 3, **shape, "noise_width": 8,
                          "gen_width": 6})
    beats = prompt_beats(b"ab", 3)
    stim = [{"w": model_writes(random_model(shape, 4))}, {"i": beats}]
    expected = spec.golden(params, stim)
    assert expected != spec.golden(params, {"i": beats})
    result = run_stream(spec.build(**params), stim, {k: len(v) for k, v in expected.items()},
                        seed=2)
    assert golden_mismatches(spec, params, stim, result) == []


def test_rtl_att_p_lower_end():
    model = random_model(dict(SHAPE, att_p=0), seed=1)
    LM.from_model(model)
    bad = SimpleNamespace(**{k: getattr(model, k) for k in MEMORIES},
                          config=dict(vars(model.config), att_p=-1))
    with pytest.raises(ValueError, match=r"^LM parameter 'att_p' must be in 0\.\.65536, "
                                         r"not -1$"):
        LM.from_model(bad)
