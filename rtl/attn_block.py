"""BiSpikCLM attention block: ternary Q/K/V projections, LIF, SFSA, ternary output projection,
LIF — one streaming component built from the ``ternary_linear``, ``lif`` and ``sfsa`` cores.

The data flow and the parameters are on :class:`AttnBlock`.
"""

from numbers import Integral

import numpy as np
from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .ecp5_ram import replicated_logic
from .lif import LIF
from .stream import SkidBuffer
from .sfsa import SFSA, check_sfsa_params
from .ternary_linear import TernaryLinear

__all__ = ["AttnBlock", "ATTN_BLOCK_PARAMS", "check_attn_block_params", "block_lif_params"]

#: Names of the block's parameters (besides the weights), in the order they are validated.
ATTN_BLOCK_PARAMS = ("d_model", "d", "L", "T", "strict", "p", "k", "frac", "qkv_theta",
                     "qkv_beta", "attn_theta", "attn_beta", "out_theta", "out_beta",
                     "proj_theta", "proj_beta")


def _int(name, value, lo, hi):
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"attn_block parameter {name!r} must be an integer, not {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"attn_block parameter {name!r} must be in {lo}..{hi}, not {value}")
    return value


def check_attn_block_params(**params):
    """Validate the block's parameters (without weights); return them normalised.

    Raises :exc:`TypeError` or :exc:`ValueError` naming the parameter and the bad value.
    """
    missing = [name for name in ATTN_BLOCK_PARAMS if name not in params]
    if missing:
        raise TypeError(f"attn_block parameters missing: {', '.join(missing)}")
    unknown = sorted(set(params) - set(ATTN_BLOCK_PARAMS))
    if unknown:
        raise TypeError(f"attn_block has no parameter {unknown[0]!r}")
    out = {"d_model": _int("d_model", params["d_model"], 1, 1024)}
    sfsa = {name: params[name] for name in ("d", "L", "T", "strict", "frac", "attn_theta",
                                            "attn_beta", "out_theta", "out_beta")}
    try:
        sfsa = check_sfsa_params(**sfsa)
    except (TypeError, ValueError) as exc:
        raise type(exc)(str(exc).replace("sfsa parameter", "attn_block parameter")) from None
    out.update(sfsa)
    d, d_model = out["d"], out["d_model"]
    out["p"] = p = _int("p", params["p"], 1, 4096)
    if (3 * d) % p or d_model % p:
        raise ValueError(f"attn_block parameter 'p' must divide 3*d={3 * d} and "
                         f"d_model={d_model}, not {p}")
    out["k"] = k = _int("k", params["k"], 1, 4096)
    if d % k or d_model % k:
        raise ValueError(f"attn_block parameter 'k' must divide d={d} and d_model={d_model}, "
                         f"not {k}")
    for name in ("qkv_theta", "proj_theta"):
        out[name] = _int(name, params[name], 1, 65535)
    for name in ("qkv_beta", "proj_beta"):
        out[name] = _int(name, params[name], 0, 2 ** out["frac"])
    return {name: out[name] for name in ATTN_BLOCK_PARAMS}


def block_lif_params(*, n, p, T, n_in, theta, beta, frac):
    """LIF parameters of a projection neuron array: the ``bispikclm`` neuron restarted at
    ``t = 0`` of every token (leak and reset both 0 at step 0 of the period ``T``), sized so
    that the membrane (``-theta..T*n_in``) never saturates."""
    return dict(n=n, p=p, T=T, x_width=n_in.bit_length() + 1,
                m_width=max(T * n_in, theta).bit_length() + 1, frac=frac,
                beta_pos=[0] + [beta] * (T - 1), beta_zero=[0] + [beta] * (T - 1),
                beta_neg=[0] + [beta] * (T - 1), theta_pos=theta, theta_neg=1,
                theta_reset=[0] + [theta] * (T - 1), rho=1, bipolar=False)


class _Gather(wiring.Component):
    """``n/p`` beats of ``p`` spikes -> one beat of ``n`` spikes (``first`` from the first
    beat, ``last`` from the last).

    The beats shift into one register that is the output itself: a whole vector is offered
    on ``o`` straight from it, and the first beat of the next vector may shift in at the edge
    the vector is taken. So every bit loads on the accept alone, one LUT of flip-flops
    (``i.valid``, ``full`` and the consumer's ``o.ready``, a flip-flop of the skid buffer that
    follows), kept in one copy per 16 bits."""

    def __init__(self, n, p, fields):
        self.n, self.p, self.fields = n, p, fields
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "q": data.ArrayLayout(1, p), "first": 1, "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({
                **{name: data.ArrayLayout(1, width) for name, width in fields},
                "first": 1, "last": 1}))),
        })

    def elaborate(self, platform):
        m = Module()
        n, p = self.n, self.p
        G = n // p
        buf = Signal(n)
        g = Signal(range(G))
        full = Signal()
        b_first, b_last = Signal(), Signal()
        m.d.comb += [self.o.valid.eq(full),
                     Value.cast(self.o.payload).eq(Cat(buf, b_first, b_last)),
                     self.i.ready.eq(~full | self.o.ready)]

        # The accept drives every bit of `buf`: one copy of it per 16 bits.
        shifted = Cat(buf[p:], Value.cast(self.i.payload.q)) if G > 1 \
            else Value.cast(self.i.payload.q)
        takes = replicated_logic(m, platform, lambda v, f, r: v & (~f | r),
                                 [self.i.valid, full, self.o.ready], -(-n // 16), name="take")
        for c, take in enumerate(takes):
            with m.If(take):
                m.d.sync += buf[16 * c:16 * (c + 1)].eq(shifted[16 * c:16 * (c + 1)])

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += full.eq(0)
        with m.If(self.i.valid & self.i.ready):
            # After the G beats of a vector the first is at the bottom. A `first` beat always
            # starts a vector, resynchronising a malformed stream.
            here = Mux(self.i.payload.first, 0, g)
            with m.If(here == 0):
                m.d.sync += b_first.eq(self.i.payload.first)
            with m.If(here == G - 1):
                m.d.sync += [g.eq(0), full.eq(1), b_last.eq(self.i.payload.last)]
            with m.Else():
                m.d.sync += g.eq(here + 1)
        return m


class AttnBlock(wiring.Component):
    """One BiSpikCLM attention block (single head) on binary spikes, streaming step by step.

    For each step ``(i, t)`` (token ``i``, time step ``t = 0..T-1``) of input spikes ``X``::

        Q, K, V = SN_qkv(Wq·X), SN_qkv(Wk·X), SN_qkv(Wv·X)      ternary_linear + lif
        A       = SFSA(Q, K, V)                                  sfsa
        Y       = SN_proj(Wo·A)                                  ternary_linear + lif

    ``SN`` is the ``bispikclm`` neuron (binary, subtractive reset by theta, one leak) over the
    ``T`` steps of each token, restarted at ``t = 0`` (per-step leak and reset 0 at step 0, see
    :func:`block_lif_params`). Wq, Wk, Wv (``d x d_model``) are stacked into one
    ``ternary_linear`` of ``3d`` outputs feeding one LIF array of ``3d`` neurons; SFSA is as in
    :class:`~spikeforge.rtl.sfsa.SFSA`; Wo is ``d_model x d``.

    Parameters
    ----------
    d_model : int
        Input and output width, 1..1024.
    d, L, T, strict, frac, attn_theta, attn_beta, out_theta, out_beta
        The SFSA head (see :class:`~spikeforge.rtl.sfsa.SFSA`); ``frac`` is shared by all
        neurons.
    p : int
        Lanes of both projections and LIF arrays; divides ``3*d`` and ``d_model``.
    k : int
        Inputs per cycle of both projections; divides ``d`` and ``d_model``.
    qkv_theta, qkv_beta, proj_theta, proj_beta : int
        Thresholds (1..65535) and leaks (0..2^frac) of the Q/K/V and output neurons.
    wq, wk, wv : array ``(d, d_model)``; wo : array ``(d_model, d)``
        Ternary weights (None: zeros).

    Members
    -------
    i : ``In(stream.Signature(StructLayout({"x": ArrayLayout(1, d_model), "first": 1, "last": 1})))``
        One beat per step; ``first`` starts a sequence (SFSA's cache and every neuron restart).
    o : ``Out(stream.Signature(StructLayout({"y": ArrayLayout(1, d_model), "first": 1, "last": 1})))``
        One beat per input beat, in order, flags copied.
    w_qkv, w_o : the ``w`` write streams of the two ``ternary_linear`` cores (run-time weight
        writes; rows ``0..d-1`` of ``w_qkv`` are Wq, then Wk, then Wv).

    Throughput: the stages run concurrently, so a step costs about the slowest stage:
    ``(3d/p)*(d_model/k)`` cycles (Q/K/V projection), ``max(3d/p, 5)`` (its LIF array),
    ``max(n_i, 2)`` (SFSA, ``n_i`` keys in the window), ``(d_model/p)*(d/k)`` (output
    projection) and ``max(d_model/p, 5)`` (its LIF array). Results never depend on gaps or
    backpressure.

    Reset: as the parts (the first beat after reset starts a sequence; weights keep their
    initial or last written contents).
    """

    def __init__(self, *, wq=None, wk=None, wv=None, wo=None, **params):
        params = check_attn_block_params(**params)
        self.params = params
        for key, value in params.items():
            setattr(self, key, value)
        d, d_model = self.d, self.d_model
        shapes = {"wq": (d, d_model), "wk": (d, d_model), "wv": (d, d_model), "wo": (d_model, d)}
        weights = {}
        for name, w in (("wq", wq), ("wk", wk), ("wv", wv), ("wo", wo)):
            w = np.zeros(shapes[name], dtype=np.int64) if w is None else np.asarray(w)
            if w.shape != shapes[name]:
                raise ValueError(f"attn_block parameter {name!r} must have shape "
                                 f"{shapes[name]}, not {w.shape}")
            if w.size and (w.dtype.kind not in "iu" or w.min() < -1 or w.max() > 1):
                raise ValueError(f"attn_block parameter {name!r} must hold integers in -1..1")
            weights[name] = w.astype(np.int64)
        self.weights = weights

        T, p, k, frac = self.T, self.p, self.k, self.frac
        self.qkv = TernaryLinear(n_in=d_model, n_out=3 * d, p=p, k=k, spikes="binary",
                                 weights=np.vstack([weights["wq"], weights["wk"], weights["wv"]]))
        self.qkv_lif = LIF(**block_lif_params(n=3 * d, p=p, T=T, n_in=d_model,
                                               theta=self.qkv_theta, beta=self.qkv_beta,
                                               frac=frac))
        self.gather_qkv = _Gather(3 * d, p, [("q", d), ("k", d), ("v", d)])
        self.sfsa = SFSA(**{name: params[name] for name in (
            "d", "L", "T", "strict", "frac", "attn_theta", "attn_beta", "out_theta",
            "out_beta")})
        self.proj = TernaryLinear(n_in=d, n_out=d_model, p=p, k=k, spikes="binary",
                                  weights=weights["wo"])
        self.proj_lif = LIF(**block_lif_params(n=d_model, p=p, T=T, n_in=d,
                                                theta=self.proj_theta, beta=self.proj_beta,
                                                frac=frac))
        self.gather_out = _Gather(d_model, p, [("y", d_model)])

        bits = data.ArrayLayout(1, d_model)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"x": bits, "first": 1, "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({"y": bits, "first": 1, "last": 1}))),
            "w_qkv": In(stream.Signature(self.qkv.w.payload.shape())),
            "w_o": In(stream.Signature(self.proj.w.payload.shape())),
        })

    def elaborate(self, platform):
        m = Module()
        for name in ("qkv", "qkv_lif", "gather_qkv", "sfsa", "proj", "proj_lif", "gather_out"):
            m.submodules[name] = getattr(self, name)

        def link(src, dst, fields):
            """src.o -> dst.i, payload fields renamed ``{dst_field: src_field}``."""
            m.d.comb += [dst.valid.eq(src.valid), src.ready.eq(dst.ready)]
            for dst_field, src_field in fields.items():
                m.d.comb += getattr(dst.payload, dst_field).eq(getattr(src.payload, src_field))

        link(self.i, self.qkv.i, {"s": "x", "first": "first", "last": "last"})
        wiring.connect(m, wiring.flipped(self.w_qkv), self.qkv.w)
        # The projection's `err` cannot be set: its input spikes are binary.
        link(self.qkv.o, self.qkv_lif.i, {"x": "y", "first": "first", "last": "last"})
        # A skid buffer between the LIF array and the gather: the gather's handshake logic
        # (its `i.ready` comes from the Q/K/V skid buffer below) then ends at registers next
        # to it, not inside the LIF array's pipeline.
        m.submodules.lif_skid = lif_skid = SkidBuffer(self.qkv_lif.o.payload.shape())
        wiring.connect(m, self.qkv_lif.o, lif_skid.i)
        wiring.connect(m, lif_skid.o, self.gather_qkv.i)
        # Skid buffers cut the block's backpressure into short pieces, each starting from a
        # flip-flop: between the gathered Q/K/V vector and the SFSA (the SFSA's `i.ready` then
        # drives only its two entries, instead of one combinational chain from the SFSA
        # through the gather into the LIF array's pipeline),
        m.submodules.qkv_skid = qkv_skid = SkidBuffer(self.gather_qkv.o.payload.shape())
        wiring.connect(m, self.gather_qkv.o, qkv_skid.i)
        wiring.connect(m, qkv_skid.o, self.sfsa.i)
        # and between the SFSA and the output projection, whose `i.ready` comes from its
        # issue state.
        m.submodules.attn_skid = attn_skid = SkidBuffer(self.sfsa.o.payload.shape())
        wiring.connect(m, self.sfsa.o, attn_skid.i)
        wiring.connect(m, attn_skid.o, self.proj.i)
        wiring.connect(m, wiring.flipped(self.w_o), self.proj.w)
        link(self.proj.o, self.proj_lif.i, {"x": "y", "first": "first", "last": "last"})
        wiring.connect(m, self.proj_lif.o, self.gather_out.i)
        wiring.connect(m, self.gather_out.o, wiring.flipped(self.o))
        return m
