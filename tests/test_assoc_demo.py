"""The Word2Spike retrieval demo on real words: golden retrieval through the encoder chain,
the RTL associative memory equal to golden on a handful of queries, bad input."""

import json

import numpy as np
import pytest

from spikeforge.assoc_demo import load_words, main, retrieve, run
from spikeforge.golden.assoc import assoc


def test_load_words_sample():
    words, e_int, e_width = load_words(n_words=5)
    assert len(words) == 5 and all(w.isalpha() for w in words)
    assert e_int.shape == (5, 384) and e_width == 16


def test_retrieve_real_words():
    _, e_int, e_width = load_words(n_words=12)
    r = retrieve(e_int, W=2000, e_width=e_width, top_k=3)
    assert r["codes"].shape == r["decoded"].shape == (12, 384)
    assert r["index"].shape == r["score"].shape == (12, 3)
    # A long window decodes nearly every element: each word finds itself, with its own score
    # at least that of any other word.
    assert r["top1"] == r["topk"] == 1.0 and r["element_errors"] < 0.01
    assert (r["index"][:, 0] == np.arange(12)).all()
    # The same answers as the golden assoc called directly.
    index, score, _ = assoc(r["codes"], r["decoded"], K=12, D=384, kind="ternary", N=1,
                            alpha=1, frac=1, banks=4, top_k=3)
    assert np.array_equal(index, r["index"]) and np.array_equal(score, r["score"])
    short = retrieve(e_int, W=5, e_width=e_width)
    assert short["element_errors"] > r["element_errors"] and short["exact"] == 0.0


def test_run_and_cli(tmp_path, capsys):
    # The RTL check: 5 noisy queries (W = 50) against the 16 first words, RTL == golden.
    res = run(n_words=16, ws=(20, 50), rtl=5)
    assert [r["W"] for r in res["rows"]] == [20, 50] and res["words"] == 16
    assert res["rtl"] == {"W": 50, "K": 16, "queries": 5, "banks": 4, "top_k": 2,
                          "equal": True}
    out = tmp_path / "r.json"
    assert main(["--words", "8", "--ws", "300", "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["rows"][0]["W"] == 300 and saved["rows"][0]["top1"] == 1.0
    assert "| 300 |" in capsys.readouterr().out


@pytest.mark.parametrize("kwargs, message", [
    ({"source": "web"}, r"^assoc_demo parameter 'source' must be 'sample' or 'cache', "
                        r"not 'web'$"),
    ({"n_words": 0}, r"^assoc_demo parameter 'n_words' must be in 1\.\.256, not 0$"),
])
def test_bad_input(kwargs, message, capsys):
    with pytest.raises(ValueError, match=message):
        load_words(**kwargs)
    argv = ["--source", kwargs["source"]] if "source" in kwargs else ["--words", "0"]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("spikeforge: error: assoc_demo parameter")
