"""Sequence-machine edge cases that mutation testing (``python -m spikeforge.sim.mutate
seqmachine``) showed the other tests did not pin: a learning step that starts a sequence writes
nothing, a ``clear`` after something was learnt empties the RTL's memory, and the defaults the
core's page documents are the code's."""

import inspect
import re
from pathlib import Path

import numpy as np

from spikeforge.cores import get_core
from spikeforge.golden.seqmachine import DEFAULTS, seqmachine, seqmachine_benchmark
from spikeforge.sim.amaranth_bench import golden_mismatches, run_stream

DOC = Path(__file__).resolve().parent.parent / "docs" / "cores" / "seqmachine.md"
SMALL = dict(DEFAULTS, S=10, M=16, N=3, K=6, W=32, w=4, a=6)


def _doc_assignments(text):
    return {k: int(v) for k, v in re.findall(r"\b(\w+)=(\d+)\b", text)}


def test_learning_on_a_first_step_writes_nothing():
    """``first`` empties the previous address, so ``learn`` on that step has nothing to write
    from: the whole run is the same with learn off there (no clear in between, so a stray write
    into the memory learnt from the first sequence would show in its recall)."""
    a, b = [3, 1, 4, 0, 5, 9, 2], [2, 6, 8, 7, 1]
    symbols = a + b + b + a                     # learn a, learn b, recall b, recall a
    first = [1, 0, 0, 0, 0, 0, 0] + [1, 0, 0, 0, 0] * 2 + [1, 0, 0, 0, 0, 0, 0]
    clear = [1] + [0] * (len(symbols) - 1)
    learn = [1] * 12 + [0] * 12
    pred, _, _ = seqmachine(symbols, learn, first, clear, **SMALL)
    # Both sequences are recalled (so a stray write would have something to spoil).
    assert pred[12:16].tolist() == b[1:] and pred[17:23].tolist() == a[1:]
    for k in (7, 12, 17):       # every later `first` step
        runs = []
        for bit in (0, 1):
            flags = list(learn)
            flags[k] = bit
            runs.append([x.tolist() for x in seqmachine(symbols, flags, first, clear, **SMALL)])
        assert runs[0] == runs[1]


def test_documented_defaults():
    text = DOC.read_text()
    line = re.search(r"Defaults \(`spikeforge sim seqmachine`\): (.*?)\. Errors", text, re.S)
    assert _doc_assignments(line.group(1)) == DEFAULTS
    sig = re.search(r"`seqmachine_benchmark\(lengths, Ws, (.*?), \*\*params\)`", text)
    documented = _doc_assignments(sig.group(1))
    defaults = {name: p.default for name, p in
                inspect.signature(seqmachine_benchmark).parameters.items()
                if name in documented}
    assert defaults == documented == {"trials": 20, "seed": 0}


def test_benchmark_default_trials():
    """The default draws 20 sequences per cell (the docs' table): the same as asking for 20."""
    small = dict(S=8, M=8, N=2, K=3, W=4, w=2, a=3)
    assert seqmachine_benchmark(lengths=(12,), Ws=(4,), **small) == \
        seqmachine_benchmark(lengths=(12,), Ws=(4,), trials=20, **small)
    assert seqmachine_benchmark(lengths=(12,), Ws=(4,), **small) != \
        seqmachine_benchmark(lengths=(12,), Ws=(4,), trials=21, **small)
    assert np.isfinite(list(seqmachine_benchmark(lengths=(12,), Ws=(4,), **small).values())).all()


def test_rtl_clear_empties_a_learnt_memory():
    """The spec's stimulus rarely clears a memory that holds anything (a clear mostly comes
    first); here a sequence is learnt and recalled, the memory cleared, and recalled again:
    RTL equal to the golden model, which recalls nothing after the clear."""
    spec = get_core("seqmachine")
    params = spec.params(dict(S=6, M=6, N=2, K=3, W=4, w=2, a=3))
    seq = [3, 1, 4, 0, 5]

    def beats(learn, clear):
        return [{"sym": x, "learn": learn, "clear": int(clear and t == 0), "first": int(t == 0),
                 "last": int(t == len(seq) - 1)} for t, x in enumerate(seq)]
    stim = {"i": beats(1, True) + beats(0, False) + beats(0, True) + beats(0, False)}
    expected = spec.golden(params, stim)["o"]
    scores = [b["score"] for b in expected]
    assert any(scores[5:10]) and not any(scores[10:])
    result = run_stream(spec.build(**params), stim, {"o": len(expected)}, seed=1)
    assert golden_mismatches(spec, params, stim, result) == []
