"""Word2Spike-chain edge cases that mutation testing (``python -m spikeforge.sim.mutate
w2s_chain``) showed the other tests did not pin: the chain's defaults (``seed`` and the three
rates) are the Poisson stage's, in the golden model and in the RTL. Every other test passes
them explicitly."""

import inspect

import numpy as np

from spikeforge.golden.poisson import poisson
from spikeforge.golden.w2s_chain import w2s_chain
from spikeforge.rtl.poisson import Poisson
from spikeforge.rtl.w2s_chain import W2SChain, check_w2s_chain_params

STAGE = ("seed", "rate_pos", "rate_zero", "rate_neg")


def _defaults(fn):
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()
            if name in STAGE}


def test_golden_defaults_are_the_encoders():
    rng = np.random.default_rng(4)
    e = rng.integers(-30, 31, size=(8, 8))
    kw = dict(p=2, e_width=6, W=3, C=1, count_width=2)
    stage = _defaults(poisson)
    assert sorted(stage) == sorted(STAGE)
    got = w2s_chain(e, **kw, return_stages=True)
    want = w2s_chain(e, **kw, **stage, return_stages=True)
    for a, b in zip(got, want):
        assert np.array_equal(a, b)
    # The spikes do depend on the seed and on each rate, so a changed default would show.
    q = got[0]
    assert (q == 1).any() and (q == -1).any() and (q == 0).any()
    for name, other in (("seed", 1), ("rate_pos", stage["rate_zero"]),
                        ("rate_zero", stage["rate_pos"]), ("rate_neg", stage["rate_pos"])):
        changed = w2s_chain(e, **kw, **dict(stage, **{name: other}), return_stages=True)
        assert not np.array_equal(changed[1], got[1]), name


def test_rtl_defaults_are_the_encoders():
    stage = _defaults(Poisson.__init__)
    assert sorted(stage) == sorted(STAGE)
    params = W2SChain(d_max=4, p=2, e_width=4, W=3).params
    assert {k: params[k] for k in STAGE} == stage
    params = check_w2s_chain_params(d_max=4, p=2, e_width=4, W=3)
    assert {k: params[k] for k in STAGE} == stage
