# amaranth: UnusedElaboratable=no
"""The LUT language-model trainer: learning, quantisation, memory images, and the integer
model's next-byte predictions on the RTL of the three LUT cores under cocotb/Verilator."""

import json

import numpy as np
import pytest

from spikeforge.cores import get_core
from spikeforge.golden import lut_train as lt
from spikeforge.sim.harness import run_rtl
from spikeforge.sim.run import simulate

TINY = lt.ModelConfig(ctx=8, n=8, att_n_t=2, att_n_c=2, att_p=1, ffn_n_t=2, ffn_n_c=3,
                      out_n_t=2, out_n_c=3, w_width=6)


def synthetic_text(size, seed=0):
    """Sentences from a tiny seeded grammar: learnable structure, made here, no licence."""
    rng = np.random.default_rng(seed)
    subj = ["the cat", "a dog", "the old man", "my sister", "the bird", "a child"]
    verb = ["sat on", "ran to", "looked at", "jumped over", "sang to", "walked past"]
    obj = ["the mat.", "the park.", "a tree.", "the river.", "the house.", "a red door."]
    out = []
    while sum(map(len, out)) < size:
        out.append(f"{subj[rng.integers(6)]} {verb[rng.integers(6)]} {obj[rng.integers(6)]}\n")
    return "".join(out).encode()[:size]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    text = synthetic_text(30000)
    train, test = lt.split_text(text)
    model = lt.train(train, TINY, steps=150, batch=16, seed=1)
    int_model = lt.quantise(model)
    out = lt.export(int_model, tmp_path_factory.mktemp("tiny"))
    return dict(model=model, int_model=int_model, dir=out, train=train, test=test)


def test_config_rules():
    with pytest.raises(ValueError, match=r"^ModelConfig attention index width 2\*att_n_c \+ "
                                         r"att_p must be at most 16, not 18$"):
        lt.ModelConfig(att_n_c=8).check()
    with pytest.raises(ValueError, match=r"^ModelConfig 'n' must be a positive integer, "
                                         r"not 0$"):
        lt.ModelConfig(n=0).check()
    with pytest.raises(ValueError, match=r"^training text must be longer than 17 bytes, "
                                         r"not 5$"):
        lt.train(b"short", TINY, steps=1)


def test_learns_below_unigram(tiny_model):
    uni = lt.unigram_bits_per_byte(tiny_model["train"], tiny_model["test"])
    bpb = lt.bits_per_byte(tiny_model["model"], tiny_model["test"])
    ibpb = lt.bits_per_byte(tiny_model["int_model"], tiny_model["test"])
    assert bpb < uni - 0.5 and ibpb < uni - 0.5, (uni, bpb, ibpb)


def test_surrogate_and_scatter():
    assert lt._surrogate(np.array([0.0, 1.0, -3.0])).tolist() == [0.5, 0.125, 0.5 / 16]
    idx = np.array([2, 0, 2])
    vals = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    expect = np.zeros((3, 2))
    np.add.at(expect, idx, vals)
    assert np.array_equal(lt._scatter((3, 2), idx, vals), expect)


def test_export_round_trip_and_integer_path(tiny_model):
    im, d = tiny_model["int_model"], tiny_model["dir"]
    back = lt.load_model(d)
    for name in ("embed", "att_anchors", "att_tables", "att_pe", "ffn_anchors", "ffn_tables",
                 "out_anchors", "out_tables"):
        assert np.array_equal(getattr(back, name), getattr(im, name)), name
    s = lt.predict(back, tiny_model["test"][:100], stages=True)
    assert np.array_equal(s["h1"], s["h0"] + s["z"]) and np.array_equal(s["h2"], s["h1"] + s["y"])
    assert np.array_equal(s["logits"], lt.predict(im, tiny_model["test"][:100]))
    # The residual widths the cores are given hold every reachable value.
    params = lt.core_params(d)
    for key, stage in (("attention", "h0"), ("ffn", "h1"), ("unembed", "h2")):
        assert np.abs(s[stage]).max() < 2 ** (params[key]["x_width"] - 1)


def test_cli(tmp_path, capsys):
    assert lt.main(["--text", str(tmp_path / "none.txt"), "--out", str(tmp_path / "o")]) == 2
    assert "no training text" in capsys.readouterr().err
    (tmp_path / "t.txt").write_bytes(synthetic_text(5000))
    assert lt.main(["--text", str(tmp_path / "t.txt"), "--out", str(tmp_path / "o"),
                    "--steps", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"unigram_bpb", "float_bpb", "int_bpb", "train_seconds"}
    assert json.loads((tmp_path / "o" / "model.json").read_text())["report"] == report


def rtl_predictions(model_dir, text):
    """The integer model on the RTL: the attention, FFN and unembedder cores under Verilator,
    joined by the residual additions (host-side integer adds)."""
    im = lt.load_model(model_dir)
    params = lt.core_params(model_dir)
    X = np.frombuffer(text, dtype=np.uint8).astype(np.int64)
    P = len(X)
    h0 = im.embed[X]
    att_spec, lut_spec = get_core("lut_attention"), get_core("lut")
    att = run_rtl(att_spec.build(**att_spec.params(params["attention"])),
                  {"i": [{"x": r.tolist(), "first": int(k == 0), "last": int(k == P - 1)}
                         for k, r in enumerate(h0)]}, {"o": P}, seed=1)
    z = np.array([b["z"] for b in att.outputs["o"]])
    h1 = h0 + z

    def layer(p, x, seed):
        res = run_rtl(lut_spec.build(**lut_spec.params(p)),
                      {"i": [{"x": r.tolist(), "first": 0, "last": 0} for r in x]},
                      {"o": len(x)}, seed=seed)
        return np.array([b["y"] for b in res.outputs["o"]])

    h2 = h1 + layer(params["ffn"], h1, 2)
    logits = layer(params["unembed"], h2, 3)
    return dict(z=z, jv=np.array([b["jv"] for b in att.outputs["o"]]), logits=logits,
                prediction=logits.argmax(axis=1))


def test_rtl_predictions_equal_golden(tiny_model):
    text = tiny_model["test"][:240]
    golden = lt.predict(tiny_model["int_model"], text, stages=True)
    rtl = rtl_predictions(tiny_model["dir"], text)
    for key in ("z", "jv", "logits", "prediction"):
        assert np.array_equal(rtl[key], golden[key]), key
    assert len(rtl["prediction"]) >= 200


@pytest.mark.parametrize("core, key", [("lut_attention", "attention"), ("lut", "ffn"),
                                       ("lut", "unembed")])
def test_trained_tables_random_stimulus(tiny_model, core, key, tmp_path):
    spec = get_core(core)
    params = spec.params(lt.core_params(tiny_model["dir"])[key])
    s = simulate(spec, params, steps=600, seed=5, out_dir=tmp_path, progress=lambda m: None)
    assert s["bit_exact"] and s["beat_mismatches"] == 0


@pytest.mark.slow
def test_default_model_rtl_predictions(tmp_path):
    """The default model size, trained briefly on the shipped text: 256 positions on the RTL."""
    if not lt.DEFAULT_TEXT.is_file():
        pytest.skip(f"no training text at {lt.DEFAULT_TEXT}")
    train, test = lt.split_text(lt.DEFAULT_TEXT.read_bytes())
    int_model = lt.quantise(lt.train(train, lt.ModelConfig(), steps=200))
    lt.export(int_model, tmp_path)
    text = test[:256]
    golden = lt.predict(int_model, text, stages=True)
    rtl = rtl_predictions(tmp_path, text)
    for key in ("z", "jv", "logits", "prediction"):
        assert np.array_equal(rtl[key], golden[key]), key


def test_memory_budget_and_cycles():
    b = lt.memory_budget(lt.ModelConfig())
    assert {k: m["bits"] for k, m in b["memories"].items()} == {
        "embed": 256 * 16 * 8, "attention": 8 * 2 ** 10 * 16 * 8, "ffn": 8 * 32 * 16 * 8,
        "unembed": 8 * 64 * 256 * 8}
    # 8192 x 128 bits: 4 x 15 blocks of 2048 x 9; 512 x 2048 bits: 57 blocks of 512 x 36.
    assert b["memories"]["attention"]["ebr"] == 60 and b["memories"]["unembed"]["ebr"] == 57
    assert lt.cycles_per_token(lt.ModelConfig(), 64) == 1 + 8 * 64 + 4 + 12 + 12 + 256


def test_shipped_language_model():
    """The committed model loads, fits the LFE5U-85F budget, and its integer bits per byte on
    the start of the held-out text is what model.json states."""
    meta = json.loads((lt.LM_DIR / "model.json").read_text())
    im = lt.load_model(lt.LM_DIR)
    assert im.config == lt.LM_CONFIG
    assert meta["train"] == {**lt.LM_TRAIN, "seconds": None}
    budget = lt.memory_budget(im.config)
    # <= 80 % of the 85F's 208 DP16KD blocks; <= 100,000 cycles a token (1,000 tokens/s at
    # 100 MHz) at context 64.
    assert budget["bits"] <= 2_500_000 and budget["ebr"] <= 166, budget
    assert lt.cycles_per_token(im.config, 64) <= 100_000
    assert sum(f.stat().st_size for f in lt.LM_DIR.iterdir()) < 400_000
    report = meta["report"]
    assert report["int_bpb"] <= 2.5 < report["unigram_bpb"]
    train, test = lt.split_text(lt.DEFAULT_TEXT.read_bytes())
    assert report["unigram_bpb"] == round(lt.unigram_bits_per_byte(train, test), 4)
    check = test[:report["check_bytes"]]
    assert round(lt.bits_per_byte(im, check), 6) == report["check_int_bpb"]


def test_positional_codes():
    c = lt.ModelConfig(ctx=16, att_n_t=2, att_p=2)
    assert lt.positional_codes(c, "log", None).tolist() == [[0, 1, 1] + [2] * 4 + [3] * 8,
                                                            [0, 0, 0] + [1] * 4 + [2] * 8]
    pe = lt.positional_codes(c, "random", np.random.default_rng(0))
    assert pe.shape == (2, 15) and 0 <= pe.min() and pe.max() <= 3
    with pytest.raises(ValueError, match=r"^positional code kind must be 'random' or 'log', "
                                         r"not 'x'$"):
        lt.positional_codes(c, "x", None)


def test_calibrated_quantise(tiny_model):
    m, train = tiny_model["model"], tiny_model["train"]
    best = lt.quantise(m, train[-2000:])
    tried = [lt.bits_per_byte(lt.quantise(m, percentile=q), train[-2000:])
             for q in lt.QUANT_PERCENTILES]
    assert lt.bits_per_byte(best, train[-2000:]) == min(tried)
