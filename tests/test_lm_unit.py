# amaranth: UnusedElaboratable=no
"""Fast checks of the LUT language model: parameter and model-directory errors, the golden
generator against the trainer's integer path, the cycle model, the command line, and a short
generation in the Amaranth simulator."""

import json
import shutil

import numpy as np
import pytest
from amaranth.hdl import Shape
from amaranth.sim import Simulator

from spikeforge import lm as lm_cli
from spikeforge.golden import lut_train as lt
from spikeforge.golden.lm import (LMGolden, LMModelError, generate, load_lm, noise_table,
                                  position_cycles, prompt_beats, random_model, request_cycles,
                                  xorshift32)
from spikeforge.rtl.lm import LM, LMBridged, lm_widths
from spikeforge.rtl.lm import xorshift32 as rtl_xorshift32

SMALL = lt.ModelConfig(ctx=4, n=4, att_n_t=1, att_n_c=1, att_p=0, ffn_n_t=1, ffn_n_c=1,
                       out_n_t=1, out_n_c=2, w_width=4)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return lt.export(random_model(SMALL, 4), tmp_path_factory.mktemp("lm"))


def test_lm_parameter_errors():
    m = random_model(SMALL, 1)
    with pytest.raises(ValueError, match=r"^LM parameter 'gen_width' must be in 1\.\.24, not 0$"):
        LM.from_model(m, gen_width=0)
    with pytest.raises(TypeError, match=r"^LM parameter 'noise_width' must be an integer, "
                                        r"not 'x'$"):
        LM.from_model(m, noise_width="x")
    with pytest.raises(ValueError, match=r"^LM noise must have shape \(256,\), not \(3,\)$"):
        LM.from_model(m, noise=[1, 2, 3])
    with pytest.raises(ValueError, match=r"^LM embed value 8 at \(0, 0\) is outside -8\.\.7 "
                                         r"\(4-bit signed\)$"):
        bad = random_model(SMALL, 1)
        bad.embed[0, 0] = 8
        LM.from_model(bad)
    big = random_model(lt.ModelConfig(ctx=1024, n=4, att_n_t=256, att_n_c=1, att_p=0,
                                      ffn_n_t=1, ffn_n_c=1, out_n_t=1, out_n_c=1, w_width=8), 0)
    with pytest.raises(ValueError, match=r"^LM residual width of h1 is 27 bits, more than the "
                                         r"LUT cores take \(24\); reduce ctx, att_n_t or "
                                         r"w_width$"):
        LM.from_model(big)
    with pytest.raises(ValueError, match=r"^LM temperature must be a non-negative number, "
                                         r"not -1$"):
        noise_table(1.0, -1)


def test_stream_layouts():
    """The port layouts the host runtime packs (a seed is 32 bits: xorshift32's state)."""
    lm = LM.from_model(random_model(SMALL, 1), gen_width=5)
    i = lm.signature.members["i"].signature.members["payload"].shape
    assert {name: Shape.cast(f.shape).width for name, f in i} == \
        {"byte": 8, "first": 1, "gen": 5, "sample": 1, "seed": 32}
    o = lm.signature.members["o"].signature.members["payload"].shape
    assert {name: Shape.cast(f.shape).width for name, f in o} == \
        {"byte": 8, "logit": lm.widths["logit"], "last": 1}


def test_widths_hold_every_value():
    w = lm_widths(**vars(lt.ModelConfig()))
    assert (w["h0"], w["z"], w["h1"], w["y"], w["h2"], w["logit"]) == (8, 15, 16, 11, 17, 11)


def test_model_dir_errors(model_dir, tmp_path):
    assert np.array_equal(load_lm(model_dir).embed, lt.load_model(model_dir).embed)
    with pytest.raises(LMModelError, match=r"^no model directory at .*nowhere$"):
        load_lm(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "ffn.npz").unlink()
    with pytest.raises(LMModelError, match=r"^.*ffn\.npz: no such memory image$"):
        load_lm(broken)
    # A wrong-size image: the FFN image of a model with twice the tables.
    other = lt.export(random_model(lt.ModelConfig(**{**vars(SMALL), "ffn_n_t": 2}), 0),
                      tmp_path / "other")
    shutil.copyfile(other / "ffn.npz", broken / "ffn.npz")
    with pytest.raises(LMModelError, match=r"^.*ffn\.npz: memory '(anchors|tables)' has shape "
                                           r".*, expected .*$"):
        load_lm(broken)
    (broken / "model.json").write_text("{}")
    with pytest.raises(LMModelError, match=r"^.*model\.json: not a valid model description "
                                           r"\('config'\)$"):
        load_lm(broken)
    (broken / "model.json").unlink()
    with pytest.raises(LMModelError, match=r"^.*model\.json: missing"):
        load_lm(broken)


def test_golden_equals_trainer_predictions():
    m = random_model(lt.ModelConfig(ctx=6, n=8, att_n_t=2, att_n_c=2, att_p=1, ffn_n_t=2,
                                    ffn_n_c=2, out_n_t=2, out_n_c=3, w_width=6), 7)
    prompt = b"hello, world"
    out = generate(m, prompt, 40)
    logits = lt.predict(m, prompt + out)
    assert bytes(logits.argmax(axis=1)[len(prompt) - 1:-1].astype(np.uint8)) == out
    # Sampling is seeded: same seed, same text; zero noise is greedy.
    noise = noise_table(m.out_scale, 1.0)
    a = generate(m, prompt, 40, sample=True, seed=9, noise=noise)
    assert a == generate(m, prompt, 40, sample=True, seed=9, noise=noise)
    assert generate(m, prompt, 40, sample=True, seed=9) == out


def test_golden_requests_continue_the_sequence():
    """A request without ``first`` continues the sequence, generated bytes included."""
    m = random_model(SMALL, 3)
    g = LMGolden(m)
    first = g.run({"i": prompt_beats(b"ab", 5)})
    more = g.run({"i": [{"byte": ord("c"), "first": 0, "gen": 3}]})
    text = b"ab" + bytes(b["byte"] for b in first) + b"c"
    assert bytes(b["byte"] for b in more) == generate(m, text, 3)


def test_xorshift_twins_and_cycle_model():
    x, v = 1, []
    for _ in range(3):
        x = xorshift32(x)
        v.append(x)
    assert v == [270369, 67634689, 2647435461]
    assert rtl_xorshift32(12345) == xorshift32(12345)
    c = vars(lt.ModelConfig(ctx=64))
    per_token = position_cycles(c, 63, predict=True)
    assert per_token == 2 + (8 * 64 + 12 + 1) + 2 * (8 + 9 + 1) + 260 + 1
    assert per_token <= 100_000                        # >= 1,000 tokens/s at 100 MHz
    assert request_cycles(c, 0, 2, 1) == (position_cycles(c, 0, predict=False)
                                          + position_cycles(c, 1, predict=True)
                                          + position_cycles(c, 2, predict=False))


def test_cli_errors(model_dir, tmp_path, capsys):
    assert lm_cli.main(["generate", "--prompt", "x", "--model", str(tmp_path / "no")]) == 2
    assert capsys.readouterr().err.strip().endswith("no model directory at "
                                                    f"{tmp_path / 'no'}")
    assert lm_cli.main(["generate", "--prompt", "x", "--bytes", "0",
                        "--model", str(model_dir)]) == 2
    assert "--bytes must be positive, not 0" in capsys.readouterr().err
    assert lm_cli.main(["eval", "--model", str(model_dir), "--text", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no training text at" in err
    from spikeforge.cli import main as cli_main
    assert cli_main(["lm", "eval", "--model", str(tmp_path / "no")]) == 2
    assert capsys.readouterr().err == f"spikeforge lm: error: no model directory at {tmp_path / 'no'}\n"
    assert lm_cli.main(["generate", "--prompt", "ab", "--bytes", "5",
                        "--model", str(model_dir)]) == 0
    out = capsys.readouterr().out.encode("utf-8", "surrogateescape")
    assert out.startswith(b"ab")


def test_amaranth_sim_generates_like_golden():
    m = random_model(SMALL, 5)
    noise = noise_table(m.out_scale, 1.0)
    core = LM.from_model(m, noise=noise)
    beats = prompt_beats(b"xyz", 3) + prompt_beats(b"q", 2, sample=True, seed=77)
    want = LMGolden(m, noise=noise).run({"i": beats})
    got = []

    async def driver(ctx):
        for beat in beats:
            ctx.set(core.i.payload, beat)
            ctx.set(core.i.valid, 1)
            await ctx.tick().until(core.i.ready)
            ctx.set(core.i.valid, 0)

    async def monitor(ctx):
        ctx.set(core.o.ready, 1)
        while len(got) < len(want):
            _, _, valid, payload = await ctx.tick().sample(core.o.valid, core.o.payload)
            if valid:
                got.append({"byte": payload.byte, "logit": payload.logit, "last": payload.last})

    sim = Simulator(core)
    sim.add_clock(1e-6)
    sim.add_testbench(monitor)
    sim.add_testbench(driver, background=True)
    sim.run()
    assert got == want


def test_staged_row_reaches_the_lm_whole():
    """In the Amaranth simulator: rows written through the ``y`` window (the second one only
    in part) reach the LM's ``w`` port whole with their beat, which waits while the row is
    copied out; the window reads back what was written."""
    from spikeforge.golden.lm import random_model
    tiny = dict(ctx=6, n=6, att_n_t=2, att_n_c=2, att_p=1, ffn_n_t=2, ffn_n_c=2, out_n_t=2,
                out_n_c=2, w_width=5)
    bridged = LMBridged(LM.from_model(random_model(tiny, seed=1)))
    lm = bridged.lm
    depth, mask = 256, (1 << tiny["w_width"]) - 1
    rng = np.random.default_rng(5)
    rows = [rng.integers(-16, 16, size=depth).tolist()]
    rows.append(rows[0][:3] + rng.integers(-16, 16, size=depth - 3).tolist())
    seen, waits = [], []

    async def tb(ctx):
        written = None
        for row in rows:
            for a, v in enumerate(row):
                if written is not None and written[a] == v:
                    continue
                ctx.set(bridged.y.addr, a)
                ctx.set(bridged.y.w_data, v & mask)
                ctx.set(bridged.y.w_en, 1)
                await ctx.tick()
            ctx.set(bridged.y.w_en, 0)
            written = row
            ctx.set(bridged.w.valid, 1)
            ctx.set(bridged.w.payload.addr, 7)
            cycles = 0
            while not ctx.get(bridged.w.ready):
                await ctx.tick()
                cycles += 1
                assert cycles < 2 * depth, "the beat was never taken"
            seen.append([int(v) for v in ctx.get(lm.w.payload.y)])
            waits.append(cycles)
            await ctx.tick()
            ctx.set(bridged.w.valid, 0)
        for a in (0, 5, 255):
            ctx.set(bridged.y.addr, a)
            ctx.set(bridged.y.r_en, 1)
            await ctx.tick()
            ctx.set(bridged.y.r_en, 0)
            assert ctx.get(bridged.y.r_data) == rows[-1][a] & mask

    sim = Simulator(bridged)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert seen == rows
    assert all(w >= depth for w in waits)
