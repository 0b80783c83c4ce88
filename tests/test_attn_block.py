# amaranth: UnusedElaboratable=no
"""attn_block: parameter rules, the composition against the golden parts, RTL vs golden in the
Amaranth simulator (run-time weight writes) and under cocotb/Verilator (exact, with gaps,
backpressure, restarts, sequences past the cache), steady-state cycles and the CLI."""

import dataclasses
import json

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from spikeforge.cli import main
from spikeforge.cores import get_core
from spikeforge.firmware.image import ImageError, save_image
from spikeforge.golden.attn_block import attn_block, attn_block_token_cycles, random_block_weights
from spikeforge.golden.lif import lif
from spikeforge.golden.sfsa import sfsa, sfsa_positions
from spikeforge.golden.ternary_linear import apply_weight_writes, ternary_linear
from spikeforge.rtl.attn_block import AttnBlock, block_lif_params, check_attn_block_params
from spikeforge.sim.run import simulate
from spikeforge.sim.specs.attn_block import image_specs
from spikeforge.sim.specs.sfsa import sequence_stimulus

SPEC = get_core("attn_block")
BASE = dict(d_model=4, d=4, L=2, T=2, strict=False, p=4, k=2, frac=2, qkv_theta=1,
            qkv_beta=2, attn_theta=1, attn_beta=2, out_theta=1, out_beta=2, proj_theta=1,
            proj_beta=3)


def test_init():
    dut = AttnBlock(**BASE)
    bits = data.ArrayLayout(1, 4)
    members = dut.signature.members
    assert members["i"] == In(stream.Signature(data.StructLayout(
        {"x": bits, "first": 1, "last": 1})))
    assert members["o"] == Out(stream.Signature(data.StructLayout(
        {"y": bits, "first": 1, "last": 1})))
    assert members["w_qkv"] == In(stream.Signature(data.StructLayout({
        "addr": range(6), "w": data.ArrayLayout(data.ArrayLayout(signed(2), 2), 4)})))
    assert members["w_o"] == In(stream.Signature(data.StructLayout({
        "addr": range(2), "w": data.ArrayLayout(data.ArrayLayout(signed(2), 2), 4)})))
    assert dut.params == BASE
    assert (dut.qkv.n_out, dut.qkv_lif.n, dut.proj.n_in, dut.proj_lif.n) == (12, 12, 4, 4)


@pytest.mark.parametrize("name, value, exc, message", [
    ("d_model", 0, ValueError, r"^attn_block parameter 'd_model' must be in 1\.\.1024, not 0$"),
    ("d", 2000, ValueError, r"^attn_block parameter 'd' must be in 1\.\.1024, not 2000$"),
    ("T", 0, ValueError, r"^attn_block parameter 'T' must be in 1\.\.64, not 0$"),
    ("strict", "no", TypeError, r"^attn_block parameter 'strict' must be a bool, not 'no'$"),
    ("p", 3, ValueError,
     r"^attn_block parameter 'p' must divide 3\*d=12 and d_model=4, not 3$"),
    ("k", 3, ValueError, r"^attn_block parameter 'k' must divide d=4 and d_model=4, not 3$"),
    ("qkv_theta", 0, ValueError,
     r"^attn_block parameter 'qkv_theta' must be in 1\.\.65535, not 0$"),
    ("proj_beta", 5, ValueError, r"^attn_block parameter 'proj_beta' must be in 0\.\.4, not 5$"),
    ("attn_beta", 5, ValueError, r"^attn_block parameter 'attn_beta' must be in 0\.\.4, not 5$"),
    ("proj_theta", 1.0, TypeError,
     r"^attn_block parameter 'proj_theta' must be an integer, not 1\.0$"),
    ("wq", np.zeros((4, 5), int), ValueError,
     r"^attn_block parameter 'wq' must have shape \(4, 4\), not \(4, 5\)$"),
    ("wo", np.full((4, 4), -2), ValueError,
     r"^attn_block parameter 'wo' must hold integers in -1\.\.1$"),
])
def test_init_wrong_param(name, value, exc, message):
    with pytest.raises(exc, match=message):
        AttnBlock(**{**BASE, name: value})


def test_init_wrong_names():
    with pytest.raises(TypeError, match=r"^attn_block parameters missing: p$"):
        check_attn_block_params(**{k: v for k, v in BASE.items() if k != "p"})
    with pytest.raises(TypeError, match=r"^attn_block has no parameter 'heads'$"):
        check_attn_block_params(**BASE, heads=1)


def test_no_dsp_multiplier():
    # Yosys maps a `*` to a DSP block only when both operands have >= 2 bits. The only
    # multiplies left (inside the LIF arrays' table lookups) scale a single bit.
    text = rtlil.convert(AttnBlock(**BASE), name="blk")
    for cell in text.split("cell $mul ")[1:]:
        widths = [int(cell.split(f"parameter \\{w}_WIDTH ")[1].split()[0]) for w in "AB"]
        assert min(widths) == 1, widths


# Golden ---------------------------------------------------------------------------------------

def test_projection_neuron_restarts_each_token():
    """The RTL's LIF arrays restart at t = 0 through per-step leak and reset lists; that is the
    same as the golden model's restart at every token."""
    rng = np.random.default_rng(3)
    T, n_in = 3, 16
    y = rng.integers(-n_in, n_in + 1, size=(40, 8))
    first = np.zeros(40, bool)
    first[[0, 13, 20]] = True
    t, _ = sfsa_positions(first, T)
    per_step = lif(y, first, **block_lif_params(n=8, p=4, T=T, n_in=n_in, theta=3, beta=100,
                                                frac=7))
    per_token = lif(y, t == 0, n=8, p=1, T=1, x_width=6, m_width=8, frac=7, beta_pos=100,
                    beta_zero=100, beta_neg=100, theta_pos=3, theta_neg=1, theta_reset=3,
                    rho=1, bipolar=False)
    assert np.array_equal(per_step, per_token) and per_token.any()


def test_golden_composition():
    params = SPEC.params({})
    w = random_block_weights(2, 16, 16)
    rng = np.random.default_rng(4)
    x, _, _, first = sequence_stimulus(rng, 200, d=16, L=16, T=2)
    blk = {k: params[k] for k in BASE}
    y, internals = attn_block(x, first, **w, **blk, return_internals=True)
    t, _ = sfsa_positions(first, 2)
    q = lif(ternary_linear(x, w["wq"])[0], t == 0, n=16, p=1, T=2, x_width=6, m_width=7,
            frac=8, beta_pos=128, beta_zero=128, beta_neg=128, theta_pos=2, theta_neg=1,
            theta_reset=2, rho=1, bipolar=False)
    assert np.array_equal(internals["q"], q)
    a = sfsa(internals["q"], internals["k"], internals["v"], first, d=16, L=16, T=2,
             strict=False, frac=8, attn_theta=2, attn_beta=128, out_theta=2, out_beta=128)
    assert np.array_equal(internals["a"], a)
    for name in ("q", "k", "v", "a"):
        assert 0 < internals[name].mean() < 1
    assert 0 < y.mean() < 1


def test_random_block_weights():
    w = random_block_weights(7, 8, 4)
    assert {k: v.shape for k, v in w.items()} == {"wq": (4, 8), "wk": (4, 8), "wv": (4, 8),
                                                  "wo": (8, 4)}
    assert all(np.array_equal(w[k], random_block_weights(7, 8, 4)[k]) for k in w)
    with pytest.raises(ValueError, match=r"^attn_block parameter 'weights_seed' must be a "
                                         r"non-negative integer, not -1$"):
        random_block_weights(-1, 8, 4)


def test_image_loads_and_wrong_shape_fails(tmp_path):
    w = random_block_weights(5, 16, 16)
    good = save_image(tmp_path / "blk.npz", core="attn_block", params={}, memories=w,
                      specs=image_specs(16, 16))
    params = SPEC.params({"weights": str(good)})
    dut = SPEC.build(**params)
    assert all(np.array_equal(dut.weights[k], w[k]) for k in w)
    rtlil.convert(dut, name="blk")
    bad_w = dict(w, wo=w["wo"][:8])
    bad = save_image(tmp_path / "bad.npz", core="attn_block", params={}, memories=bad_w,
                     specs={**image_specs(16, 16), "wo": image_specs(16, 8)["wv"]})
    with pytest.raises(ImageError, match=r"^.*bad\.npz: memory 'wo' has shape \(8, 16\), "
                                         r"expected \(16, 16\)$"):
        SPEC.build(**SPEC.params({"weights": str(bad)}))


# RTL vs golden in the Amaranth simulator, weights written at run time ------------------------

def test_rtl_runtime_weights_matches_golden():
    params = dict(BASE)
    dut = AttnBlock(**params)           # all-zero weights until written
    rng = np.random.default_rng(8)
    w = random_block_weights(9, 4, 4)
    stacked = np.vstack([w["wq"], w["wk"], w["wv"]])

    def words(matrix, depth, p, k):
        n_in = matrix.shape[1]
        beats = []
        for addr in range(depth):
            g, c = divmod(addr, n_in // k)
            beats.append({"addr": addr, "w": matrix[g * p:(g + 1) * p,
                                                    c * k:(c + 1) * k].tolist()})
        return beats
    w_qkv = words(stacked, dut.qkv.depth, 4, 2)
    w_o = words(w["wo"], dut.proj.depth, 4, 2)
    assert np.array_equal(apply_weight_writes(np.zeros((12, 4), int), w_qkv, p=4, k=2), stacked)
    x, _, _, first = sequence_stimulus(rng, 60, d=4, L=2, T=2)
    beats = [{"x": x[s].tolist(), "first": int(first[s]), "last": int(s == 59)}
             for s in range(60)]
    out = []

    async def producer(ctx):
        for port, seq in (("w_qkv", w_qkv), ("w_o", w_o), ("i", beats)):
            st = getattr(dut, port)
            for beat in seq:
                while rng.random() < 0.3:
                    await ctx.tick()
                ctx.set(st.payload, beat)
                ctx.set(st.valid, 1)
                await ctx.tick().until(st.ready)
                ctx.set(st.valid, 0)

    async def consumer(ctx):
        while len(out) < len(beats):
            ready = int(rng.random() >= 0.3)
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and ready:
                out.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    got = np.array([[int(b.y[c]) for c in range(4)] for b in out])
    expected = attn_block(x, first, **w, **params)
    assert np.array_equal(got, expected) and expected.any()
    assert [(int(b.first), int(b.last)) for b in out] == \
        [(b["first"], b["last"]) for b in beats]


# cocotb / Verilator ---------------------------------------------------------------------------

# (overrides, steps): the CLI default (d = 16, T = 2, inclusive, SFSA-bound); d = 64 with
# d_model = 32, T = 4, strict (Q/K/V-projection-bound); T = 1, 8 wide, 4-key cache, 4 lanes x 2
# inputs per cycle.
CASES = {
    "default": ({}, 800),
    "d64_strict_T4": ({"d_model": 32, "d": 64, "L": 8, "T": 4, "strict": True,
                       "qkv_theta": 3, "attn_theta": 3, "out_theta": 2, "proj_theta": 2,
                       "attn_beta": 192, "proj_beta": 64, "weights_seed": 3}, 320),
    "d8_T1": ({"d_model": 8, "d": 8, "L": 4, "T": 1, "p": 4, "k": 2, "frac": 4,
               "qkv_theta": 1, "qkv_beta": 8, "attn_theta": 2, "attn_beta": 8, "out_theta": 1,
               "out_beta": 8, "proj_theta": 1, "proj_beta": 12}, 1000),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cocotb_matches_golden(case, tmp_path):
    overrides, steps = CASES[case]
    params = SPEC.params(overrides)
    s = simulate(SPEC, params, steps=steps, seed=sum(map(ord, case)), out_dir=tmp_path,
                 progress=lambda m: None)
    assert s["beats_got"] == s["beats_expected"] == steps
    assert s["mismatches"] == 0 and s["beat_mismatches"] == 0, s["first_divergence"]
    assert s["bit_exact"] and not s["timed_out"]
    assert 0 < s["events"] < steps * params["d_model"]


@pytest.mark.parametrize("case", ["default", "d64_strict_T4"])
def test_steady_state_cycles_per_token(case):
    """Once a sequence's window is full, every token costs exactly the slowest stage."""
    overrides, _ = CASES[case]
    params = SPEC.params(overrides)
    steps = 400
    s = simulate(SPEC, params, steps=steps, seed=12, gaps=False, progress=lambda m: None)
    assert s["bit_exact"]
    got = np.array(s["_result"].cycles["o"])
    stim = SPEC.stimulus(params, steps, np.random.default_rng(12))
    first = np.array([b["first"] for b in stim["i"]], dtype=bool)
    T, L = params["T"], params["L"]
    t, pos = sfsa_positions(first, T)
    ends = np.flatnonzero(t == T - 1)
    steady = ends[pos[ends] >= L + 2]
    assert len(steady) > 10
    measured = got[steady] - got[steady - T]
    assert np.array_equal(measured, attn_block_token_cycles(pos[steady], **params))


def test_bench_router_per_grade():
    """Both grades use nextpnr's default router (with the reset on a global network, router1
    routes the grade-8 build too); a dict chooses per grade, a plain string applies to every
    grade."""
    assert (SPEC.router_for("8"), SPEC.router_for("6")) == (None, None)
    assert SPEC.build_global_reset is True
    per_grade = dataclasses.replace(SPEC, build_router={"8": "router2"})
    assert (per_grade.router_for("8"), per_grade.router_for(8), per_grade.router_for("6")) == \
        ("router2", "router2", None)
    assert dataclasses.replace(SPEC, build_router="router2").router_for("6") == "router2"


def test_cli_sim_and_bad_param(tmp_path, capsys):
    out = tmp_path / "ok"
    assert main(["sim", "attn_block", "--steps", "300", "--seed", "1", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["bit_exact"] is True and summary["unit"] == "step"
    capsys.readouterr()
    assert main(["sim", "attn_block", "--param", "p=5"]) == 2
    assert capsys.readouterr().err.startswith(
        "spikeforge: error: attn_block parameter 'p' must divide 3*d=48 and d_model=16, not 5")


@pytest.mark.parametrize("n, p", [(48, 4), (40, 8), (16, 16)])
def test_gather_vectors(n, p):
    """The gather (Amaranth simulator): beats of p spikes become vectors of n, the first beat
    at the bottom, over several 16-bit load groups; a `first` beat restarts a vector; random
    gaps and backpressure lose nothing."""
    from spikeforge.rtl.attn_block import _Gather
    G = n // p
    dut = _Gather(n, p, [("y", n)])
    rng = np.random.default_rng(n + p)
    beats, expected, part = [], [], []
    for _ in range(60 * G):
        first = not part or rng.random() < 0.02
        if first:
            part = []
        q = rng.integers(0, 2, p)
        beats.append({"q": q.tolist(), "first": int(first), "last": int(rng.random() < 0.5)})
        part.append(beats[-1])
        if len(part) == G:
            expected.append((np.concatenate([b["q"] for b in part]).tolist(),
                             part[0]["first"], part[-1]["last"]))
            part = []
    got = []

    async def producer(ctx):
        for beat in beats:
            while rng.random() < 0.3:
                await ctx.tick()
            ctx.set(dut.i.payload, beat)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        cycles = 0
        while len(got) < len(expected) and cycles < 40 * len(beats):
            ready = int(rng.random() >= 0.4)
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and ready:
                got.append(([int(payload.y[c]) for c in range(n)], int(payload.first),
                            int(payload.last)))
            cycles += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert got == expected
