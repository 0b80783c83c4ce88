"""The LUT language model as one design: embedder, attention LUT, FFN LUT, unembedder, argmax.

Per position of a byte sequence::

    h0     = E[byte]                      embedder memory, 256 rows of n values
    h1     = h0 + z                       z from LUTAttention(h0) (sliding window of ctx)
    h2     = h1 + y                       y from LUT(h1), the FFN
    logits = LUT(h2)                      the unembedder, 256 values
    next   = argmax_c (logits[c] + noise_c)   ties to the lowest byte; noise_c = 0 when greedy

The sub-cores are :class:`~spikeforge.rtl.lut_attention.LUTAttention` and
:class:`~spikeforge.rtl.lut.LUT` (twice), joined only through their streams. The golden twin is
:mod:`spikeforge.golden.lm`.
"""

from numbers import Integral

import numpy as np
from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .ecp5_ram import replicated_register
from .lut import LUT, check_tables, pack_words
from .lut_attention import LUTAttention

__all__ = ["LM", "LMBridged", "ARGMAX_CYCLES", "CONFIG_KEYS", "lm_widths", "xorshift32"]

#: The model shape, as in ``model.json``'s ``config``.
CONFIG_KEYS = ("ctx", "n", "att_n_t", "att_n_c", "att_p", "ffn_n_t", "ffn_n_c", "out_n_t",
               "out_n_c", "w_width")

#: ``w.target`` values.
TARGET_EMBED, TARGET_ATT, TARGET_FFN, TARGET_OUT, TARGET_NOISE = range(5)

#: Replaces a zero sampling seed (xorshift32 never leaves 0).
ZERO_SEED = 1

#: The attention core's documented latency beyond its busy cycles, used unless the core
#: declares ``latency(i)`` itself.
ATT_EXTRA = 4

#: Cycles of the argmax per predicted byte: the unembedder's output handshake (1), one
#: candidate per cycle (256; the first straight from the unembedder's output while the others
#: are copied into the scan register), the four-stage compare pipeline drained (3) -- counted
#: from the unembedder's output handshake to the output state.
ARGMAX_CYCLES = 260

#: Logits per copy of the argmax register's load select.
LG_GROUP = 8

#: Bits of the write register `wq` per copy of its load enable.
WQ_GROUP = 64

#: Widest residual value a LUT core accepts as input.
MAX_X_WIDTH = 24


def _int(name, value, lo, hi):
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"LM parameter {name!r} must be an integer, not {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"LM parameter {name!r} must be in {lo}..{hi}, not {value}")
    return value


def lm_widths(*, ctx, n_att_terms=None, att_n_t, ffn_n_t, out_n_t, w_width, **_):
    """Signed widths of the residual stream and the logits, sized so nothing can overflow.

    ``h0`` holds embedder values (``w_width``); ``z`` sums ``att_n_t * (ctx - 1)`` rows, ``y``
    ``ffn_n_t`` rows and a logit ``out_n_t`` rows, each ``w_width`` bits; each residual add
    takes one more bit than the wider operand.
    """
    keys = ctx - 1
    z = w_width + ceil_log2(att_n_t * keys)
    y = w_width + ceil_log2(ffn_n_t)
    h0 = w_width
    h1 = max(h0, z) + 1
    h2 = max(h1, y) + 1
    return {"h0": h0, "z": z, "h1": h1, "y": y, "h2": h2,
            "logit": w_width + ceil_log2(out_n_t)}


def xorshift32(x):
    """One step of the xorshift32 generator (13, 17, 5) on a Python int or an Amaranth value."""
    if isinstance(x, int):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        return x
    a = x ^ (x << 13)[:32]
    b = a ^ (a >> 17)
    return b ^ (b << 5)[:32]


class LM(wiring.Component):
    """A byte-level LUT language model that generates text by itself.

    The host sends prompt bytes; a beat asking for ``gen > 0`` bytes makes the design predict
    the next byte, emit it, feed it back as the next position, and so on ``gen`` times. Every
    byte of the sequence, prompt or generated, passes through the attention (whose cache is the
    context); only positions that predict run the FFN, the unembedder and the argmax.

    Parameters
    ----------
    ctx, n, att_n_t, att_n_c, att_p, ffn_n_t, ffn_n_c, out_n_t, out_n_c, w_width : int
        The model shape (``model.json``'s ``config``); the sub-cores validate their parts.
    embed : int array ``(256, n)``
        Embedder rows, signed ``w_width``-bit.
    att_anchors, att_tables, att_pe, ffn_anchors, ffn_tables, out_anchors, out_tables :
        Initial contents of the three LUT cores (see their docs).
    noise : int array ``(256,)`` or None
        Sampling noise table, signed ``noise_width``-bit (default all zeros).
    noise_width : int
        2..24.
    gen_width : int
        Bits of the ``gen`` count, 1..24.
    att_banks, ffn_banks, out_banks : int
        ``banks`` of the three sub-cores.

    Members
    -------
    i : ``In(stream.Signature(StructLayout({"byte": 8, "first": 1, "gen": gen_width, "sample": 1, "seed": 32})))``
        One byte of the sequence per beat. ``first`` starts a sequence (the first beat after
        reset always does) and loads the sampler state with ``seed`` (0 is taken as 1).
        ``gen`` asks for that many generated bytes after this one; ``sample`` picks Gumbel-max
        sampling for them instead of greedy argmax. ``i.ready`` is low while a request is
        being served and while ``w.valid`` is high.
    w : ``In(stream.Signature(StructLayout({"target": 3, "kind": 2, "table": 8, "addr": 16, "y": ArrayLayout(signed(w_width), max(n, 256)), "a": ArrayLayout(range(n), n_cmax), "b": ArrayLayout(range(n), n_cmax), "pe": max(att_p, 1), "noise": signed(noise_width)})))``
        Run-time rewrites, taken only between requests. ``target`` 0: embedder row ``addr`` =
        ``y[:n]`` (``kind`` 0 only); 1: attention (``kind``, ``table``, ``addr``, ``y[:n]``,
        ``a``/``b[:att_n_c]``, ``pe`` as its ``w``); 2: FFN and 3: unembedder (``kind`` 0 row
        ``addr`` of ``table`` = ``y[:y_dim]``, 1 anchors ``a``/``b[:n_c]``); 4: noise entry
        ``addr`` = ``noise``. Dropped whole: a ``target`` above 4, a ``table`` or ``addr``
        beyond the target's memory, a ``kind`` the target does not have, and whatever the
        sub-core itself drops.
    o : ``Out(stream.Signature(StructLayout({"byte": 8, "logit": signed(logit_width), "last": 1})))``
        One beat per generated byte: the byte, its (noise-free) logit, and ``last`` on the
        request's final byte.

    Timing (no stalls): see :func:`spikeforge.golden.lm.position_cycles`. A generated byte at
    sequence position ``pos`` costs the attention's latency for ``pos``, the two LUT
    latencies, the argmax's :data:`ARGMAX_CYCLES` and a few handshake cycles.

    Reset: an empty pipeline; the next beat starts a sequence. Memories keep their contents.
    """

    def __init__(self, *, ctx, n, att_n_t, att_n_c, att_p, ffn_n_t, ffn_n_c, out_n_t, out_n_c,
                 w_width, embed, att_anchors, att_tables, att_pe, ffn_anchors, ffn_tables,
                 out_anchors, out_tables, noise=None, noise_width=16, gen_width=16,
                 att_banks=1, ffn_banks=1, out_banks=1):
        self.config = {k: v for k, v in zip(CONFIG_KEYS, (ctx, n, att_n_t, att_n_c, att_p,
                                                          ffn_n_t, ffn_n_c, out_n_t, out_n_c,
                                                          w_width))}
        for name, value in self.config.items():
            _int(name, value, 0 if name == "att_p" else 1, 1 << 16)
        self.gen_width = _int("gen_width", gen_width, 1, 24)
        self.noise_width = _int("noise_width", noise_width, 2, 24)
        self.widths = w = lm_widths(**self.config)
        for key in ("h1", "h2"):
            if w[key] > MAX_X_WIDTH:
                raise ValueError(f"LM residual width of {key} is {w[key]} bits, more than the "
                                 f"LUT cores take ({MAX_X_WIDTH}); reduce ctx, att_n_t or w_width")
        self.embed = check_tables("LM", "embed", embed, (256, n), w_width)
        self.noise = check_tables("LM", "noise", np.zeros(256, dtype=np.int64)
                                  if noise is None else noise, (256,), self.noise_width)
        self.att = LUTAttention(n=n, x_width=w["h0"], n_t=att_n_t, n_c=att_n_c, p=att_p,
                                ctx=ctx, y_dim=n, w_width=w_width, y_width=w["z"],
                                banks=att_banks, anchors=att_anchors, tables=att_tables,
                                pe=att_pe)
        self.ffn = LUT(n=n, x_width=w["h1"], n_t=ffn_n_t, n_c=ffn_n_c, y_dim=n,
                       w_width=w_width, y_width=w["y"], banks=ffn_banks, anchors=ffn_anchors,
                       tables=ffn_tables)
        self.out = LUT(n=n, x_width=w["h2"], n_t=out_n_t, n_c=out_n_c, y_dim=256,
                       w_width=w_width, y_width=w["logit"], banks=out_banks,
                       anchors=out_anchors, tables=out_tables)
        self.n_cmax = max(att_n_c, ffn_n_c, out_n_c)
        #: The sub-cores' latencies (handshake to output, no stalls), as they declare them:
        #: the attention takes ``att_k * (1 + keys) + att_extra`` cycles.
        self.timing = {"att_k": self.att.K, "att_extra": self._att_extra(),
                       "ffn_latency": self.ffn.latency, "out_latency": self.out.latency,
                       "argmax": ARGMAX_CYCLES}
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "byte": 8, "first": 1, "gen": unsigned(self.gen_width), "sample": 1,
                "seed": 32}))),
            "w": In(stream.Signature(data.StructLayout({
                "target": 3, "kind": 2, "table": 8, "addr": 16,
                "y": data.ArrayLayout(signed(w_width), max(n, 256)),
                "a": data.ArrayLayout(range(n), self.n_cmax),
                "b": data.ArrayLayout(range(n), self.n_cmax),
                "pe": max(att_p, 1), "noise": signed(self.noise_width)}))),
            "o": Out(stream.Signature(data.StructLayout({
                "byte": 8, "logit": signed(w["logit"]), "last": 1}))),
        })

    def _att_extra(self):
        latency = getattr(self.att, "latency", None)
        if callable(latency):
            return latency(0) - self.att.cycles(0)
        return ATT_EXTRA

    def bridged(self):
        """This design as the host bridge serves it: :class:`LMBridged`."""
        return LMBridged(self)

    @classmethod
    def from_model(cls, model, **kwargs):
        """An LM holding ``model`` (anything with ``config`` and the arrays of
        :class:`spikeforge.golden.lut_train.IntModel`)."""
        c = model.config
        shape = {k: getattr(c, k) if not isinstance(c, dict) else c[k] for k in CONFIG_KEYS}
        arrays = {k: getattr(model, k) for k in ("embed", "att_anchors", "att_tables", "att_pe",
                                                 "ffn_anchors", "ffn_tables", "out_anchors",
                                                 "out_tables")}
        return cls(**shape, **arrays, **kwargs)

    def elaborate(self, platform):
        m = Module()
        c, wd = self.config, self.widths
        n, ww = c["n"], c["w_width"]
        m.submodules.att = att = self.att
        m.submodules.ffn = ffn = self.ffn
        m.submodules.out = out = self.out

        emem = Memory(shape=unsigned(n * ww), depth=256, init=pack_words(self.embed, ww))
        nmem = Memory(shape=signed(self.noise_width), depth=256,
                      init=[int(v) for v in self.noise])
        m.submodules.embed = emem
        m.submodules.noise = nmem
        erd, ewr = emem.read_port(), emem.write_port()
        nrd, nwr = nmem.read_port(), nmem.write_port()

        # The position being processed.
        cur = Signal(data.StructLayout({"byte": 8, "first": 1, "gen": unsigned(self.gen_width),
                                        "sample": 1}))
        h0 = Signal(data.ArrayLayout(signed(wd["h0"]), n))
        h1 = Signal(data.ArrayLayout(signed(wd["h1"]), n))
        h2 = Signal(data.ArrayLayout(signed(wd["h2"]), n))
        rng = Signal(32, init=ZERO_SEED)

        logits = out.o.payload.y.as_value()
        m.d.comb += [
            erd.addr.eq(cur.byte), erd.en.eq(1),
            att.i.payload.x.eq(h0), att.i.payload.first.eq(cur.first),
            ffn.i.payload.x.eq(h1),
            out.i.payload.x.eq(h2),
        ]

        # Argmax scan. The 256 logits are copied from the unembedder's output into a shift
        # register after it offers them (acknowledging it at once), so the scan reads one
        # fixed word per cycle instead of a 256-way multiplexer. Four stages per candidate:
        # A takes logit `idx` and addresses the noise entry (from the stepped generator), B
        # registers the noise read, C adds it, D keeps the strictly greater value, so ties go
        # to the lowest byte.
        lw = wd["logit"]
        vw = max(lw, self.noise_width) + 1
        lg = Signal(256 * lw)
        idx = Signal(9)
        a_valid, b_valid, c_valid = Signal(), Signal(), Signal()
        a_idx, b_idx, c_idx = Signal(8), Signal(8), Signal(8)
        a_logit, b_logit, c_logit = (Signal(signed(lw), name=f"{s}_logit") for s in "abc")
        b_noise = Signal(signed(self.noise_width))
        c_value = Signal(signed(vw))
        best = Signal(signed(vw))
        best_idx = Signal(8)
        best_logit = Signal(signed(lw))
        d_first = Signal()
        scan = Signal()
        # The sub-cores' outputs are always ready: a sub-core produces an output only for an
        # input the state machine gave it, and from that handshake on the state machine waits
        # in the state that takes the output (ATT_OUT, FFN_OUT, OUT_WAIT). So no sub-core ever
        # stalls, and synthesis removes their pipeline-wide stall logic.
        rng_next = xorshift32(rng)
        m.d.comb += [nrd.addr.eq(rng_next[24:32]), nrd.en.eq(1), att.o.ready.eq(1),
                     ffn.o.ready.eq(1), out.o.ready.eq(1)]
        m.d.sync += [a_valid.eq(0), b_valid.eq(a_valid), c_valid.eq(b_valid),
                     b_idx.eq(a_idx), b_logit.eq(a_logit),
                     b_noise.eq(Mux(cur.sample, nrd.data, 0)),
                     c_idx.eq(b_idx), c_logit.eq(b_logit), c_value.eq(b_logit + b_noise)]
        # The copy is staged: the cycle after the unembedder offers its logits (they stay on
        # its output until its next input), `load` loads logits 1..255 into `lg` while stage A
        # takes logit 0 straight from the output; in every other cycle `lg` shifts down one
        # logit (harmless outside the scan). `load` is one register per group of `LG_GROUP`
        # logits, so no single net selects all of the register's bits.
        groups = -(-256 // LG_GROUP)
        load = replicated_register(m, platform, out.o.valid, groups, name="lg_load")
        for g in range(groups):
            lo, hi = g * LG_GROUP * lw, min(256, (g + 1) * LG_GROUP) * lw
            m.d.sync += lg[lo:hi].eq(Mux(load[g], (logits >> lw)[lo:hi], (lg >> lw)[lo:hi]))
        with m.If(scan & ~idx[8]):
            m.d.sync += [a_valid.eq(1), a_idx.eq(idx[:8]),
                         a_logit.eq(Mux(load[0], logits[:lw], lg[:lw])), idx.eq(idx + 1)]
            with m.If(cur.sample):
                m.d.sync += rng.eq(rng_next)
        with m.If(c_valid):
            m.d.sync += d_first.eq(0)
            with m.If(d_first | (c_value > best)):
                m.d.sync += [best.eq(c_value), best_idx.eq(c_idx), best_logit.eq(c_logit)]

        idle = Signal()
        wq_valid = Signal()       # a write beat waits in `wq` (see below)
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [idle.eq(1), self.i.ready.eq(~self.w.valid & ~wq_valid)]
                with m.If(self.i.valid & ~self.w.valid & ~wq_valid):
                    p = self.i.payload
                    m.d.sync += [cur.byte.eq(p.byte), cur.first.eq(p.first), cur.gen.eq(p.gen),
                                 cur.sample.eq(p.sample)]
                    with m.If(p.first):
                        m.d.sync += rng.eq(Mux(p.seed == 0, ZERO_SEED, p.seed))
                    m.next = "EMBED"
            with m.State("EMBED"):
                m.next = "H0"        # the embedder row of cur.byte is read in this cycle
            with m.State("H0"):
                m.d.sync += h0.eq(erd.data)
                m.next = "ATT_IN"
            with m.State("ATT_IN"):
                m.d.comb += att.i.valid.eq(1)
                with m.If(att.i.ready):
                    m.next = "ATT_OUT"
            with m.State("ATT_OUT"):
                with m.If(att.o.valid):
                    m.d.sync += [h1[e].eq(h0[e] + att.o.payload.z[e]) for e in range(n)]
                    with m.If(cur.gen == 0):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "FFN_IN"
            with m.State("FFN_IN"):
                m.d.comb += ffn.i.valid.eq(1)
                with m.If(ffn.i.ready):
                    m.next = "FFN_OUT"
            with m.State("FFN_OUT"):
                with m.If(ffn.o.valid):
                    m.d.sync += [h2[e].eq(h1[e] + ffn.o.payload.y[e]) for e in range(n)]
                    m.next = "OUT_IN"
            with m.State("OUT_IN"):
                m.d.comb += out.i.valid.eq(1)
                with m.If(out.i.ready):
                    m.next = "OUT_WAIT"
            with m.State("OUT_WAIT"):
                # The unembedder's output is always ready; its logits are copied in the next
                # cycle (see the argmax scan above).
                with m.If(out.o.valid):
                    m.d.sync += [idx.eq(0), scan.eq(1), d_first.eq(1)]
                    m.next = "SCAN"
            with m.State("SCAN"):
                with m.If(idx[8]):
                    m.d.sync += scan.eq(0)
                with m.If(~scan & ~a_valid & ~b_valid & ~c_valid):
                    m.next = "EMIT"
            with m.State("EMIT"):
                m.d.comb += self.o.valid.eq(1)
                with m.If(self.o.ready):
                    m.d.sync += [cur.byte.eq(best_idx), cur.first.eq(0), cur.gen.eq(cur.gen - 1)]
                    m.next = "EMBED"
        m.d.comb += [self.o.payload.byte.eq(best_idx), self.o.payload.logit.eq(best_logit),
                     self.o.payload.last.eq(cur.gen == 1)]

        # Writes land only between requests. A beat is taken into a register (`wq`) with its
        # destination already decoded, and issued to its memory or sub-core from there.
        p = self.w.payload
        wq = Signal.like(p, name="wq")
        dest = {k: Signal(name=f"wq_{k}") for k in ("embed", "noise", "att", "ffn", "out")}
        m.d.comb += self.w.ready.eq(idle & ~wq_valid)

        def fits(value, limit):
            return value < limit if limit < 2 ** len(value) else C(1)

        ok = {
            "embed": (p.target == TARGET_EMBED) & (p.kind == 0) & (p.addr < 256),
            "noise": (p.target == TARGET_NOISE) & (p.addr < 256),
            "att": ((p.target == TARGET_ATT) & fits(p.table, c["att_n_t"]) &
                    fits(p.addr, 2 ** (2 * c["att_n_c"] + c["att_p"]))),
            "ffn": ((p.target == TARGET_FFN) & fits(p.table, c["ffn_n_t"]) &
                    fits(p.addr, 2 ** c["ffn_n_c"]) & (p.kind < 2)),
            "out": ((p.target == TARGET_OUT) & fits(p.table, c["out_n_t"]) &
                    fits(p.addr, 2 ** c["out_n_c"]) & (p.kind < 2)),
        }
        # At most one destination is set; the beat leaves when it has been taken.
        done = Cat(~dest["att"] | att.w.ready, ~dest["ffn"] | ffn.w.ready,
                   ~dest["out"] | out.w.ready).all()
        wq_valid_next = Signal()
        m.d.comb += wq_valid_next.eq(Mux(wq_valid, ~done, self.w.valid & idle))
        m.d.sync += wq_valid.eq(wq_valid_next)
        with m.If(~wq_valid):
            m.d.sync += [dest[k].eq(ok[k]) for k in dest]
        # `wq` loads while empty. Its enable is one register per WQ_GROUP bits, each a copy of
        # ~wq_valid (one flip-flop had driven the enable of all 2,300 bits, the most congested
        # net of the routed design).
        wq_bits, p_bits = wq.as_value(), p.as_value()
        groups = -(-len(wq_bits) // WQ_GROUP)
        load = replicated_register(m, platform, ~wq_valid_next, groups, name="wq_load", init=1)
        for g in range(groups):
            lo, hi = g * WQ_GROUP, min(len(wq_bits), (g + 1) * WQ_GROUP)
            with m.If(load[g]):
                m.d.sync += wq_bits[lo:hi].eq(p_bits[lo:hi])

        w = wq
        m.d.comb += [
            ewr.addr.eq(w.addr[:8]), ewr.data.eq(w.y.as_value()[:n * ww]),
            ewr.en.eq(wq_valid & dest["embed"]),
            nwr.addr.eq(w.addr[:8]), nwr.data.eq(w.noise),
            nwr.en.eq(wq_valid & dest["noise"]),
        ]
        m.d.comb += [
            att.w.valid.eq(wq_valid & dest["att"]),
            att.w.payload.kind.eq(w.kind), att.w.payload.table.eq(w.table),
            att.w.payload.addr.eq(w.addr), att.w.payload.y.eq(w.y.as_value()[:n * ww]),
            att.w.payload.a.eq(w.a.as_value()[:len(att.w.payload.a.as_value())]),
            att.w.payload.b.eq(w.b.as_value()[:len(att.w.payload.b.as_value())]),
        ]
        if c["att_p"]:
            m.d.comb += att.w.payload.pe.eq(w.pe)
        for core, key, y_dim in ((ffn, "ffn", n), (out, "out", 256)):
            m.d.comb += [
                core.w.valid.eq(wq_valid & dest[key]),
                core.w.payload.kind.eq(w.kind[0]), core.w.payload.table.eq(w.table),
                core.w.payload.row.eq(w.addr), core.w.payload.y.eq(w.y.as_value()[:y_dim * ww]),
                core.w.payload.a.eq(w.a.as_value()[:len(core.w.payload.a.as_value())]),
                core.w.payload.b.eq(w.b.as_value()[:len(core.w.payload.b.as_value())]),
            ]
        return m


class LMBridged(wiring.Component):
    """:class:`LM` as the host bridge serves it (``spikeforge run``, the board design).

    A ``w`` beat of the LM carries a whole row (``max(n, 256)`` values), more than a bridge
    frame holds, so here the row travels separately: the host writes it into the ``y`` staging
    memory (a bridge memory window, one value per address, WRITE_MEM), then sends the rest of
    the beat on ``w``; the beat reaches the LM with ``y`` = the staging memory's contents,
    copied out one value a cycle after the beat arrives (``max(n, 256) + 1`` cycles before the
    LM sees it). The host must not rewrite ``y`` until the core has taken the beat (the bridge
    reports the input FIFO's level; :func:`spikeforge.firmware.lm.write_beats` waits for it).
    ``i`` and ``o`` are the LM's own.

    Members
    -------
    i, o : as :class:`LM`
    w : ``In(stream.Signature(StructLayout(...)))``
        The LM's ``w`` layout without ``y``.
    y : ``In(MemoryWindowSignature(width=w_width, depth=max(n, 256), signed=True))``
        The staging row (block RAM; read latency one cycle).
    """

    def __init__(self, lm):
        from .bridge import MemoryWindowSignature
        if not isinstance(lm, LM):
            raise TypeError(f"LMBridged needs an LM, not {lm!r}")
        self.lm = lm
        members = lm.signature.members
        w_layout = members["w"].signature.members["payload"].shape
        self.y_shape = w_layout["y"].shape
        fields = {name: f.shape for name, f in w_layout if name != "y"}
        super().__init__({
            "i": In(stream.Signature(members["i"].signature.members["payload"].shape)),
            "w": In(stream.Signature(data.StructLayout(fields))),
            "y": In(MemoryWindowSignature(width=lm.config["w_width"],
                                          depth=self.y_shape.length, signed=True)),
            "o": Out(stream.Signature(members["o"].signature.members["payload"].shape)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.lm = lm = self.lm
        # The staging row lives in block RAM (the host's window). A `w` beat is held until the
        # row has been copied out, one value a cycle, into a shift register that the LM reads
        # whole: no write decoder and no read multiplexer over 2,048 row registers, only a
        # chain from one RAM port (the decoder and multiplexer had left the board design
        # unroutable).
        depth, width = self.y_shape.length, len(self.y.w_data)
        m.submodules.ymem = ymem = Memory(shape=width, depth=depth, init=[])
        wr = ymem.write_port()
        host_rd = ymem.read_port(transparent_for=())
        seq_rd = ymem.read_port(transparent_for=())
        m.d.comb += [wr.addr.eq(self.y.addr), wr.data.eq(self.y.w_data), wr.en.eq(self.y.w_en),
                     host_rd.addr.eq(self.y.addr), host_rd.en.eq(self.y.r_en),
                     self.y.r_data.eq(host_rd.data)]
        ybuf = Signal(depth * width)
        issued = Signal(range(depth + 1))   # rows read so far
        got = Signal(range(depth + 1))      # rows shifted in so far
        loaded = Signal()
        reading = Signal()
        m.d.comb += [seq_rd.addr.eq(issued), reading.eq(self.w.valid & ~loaded & (issued < depth))]
        # A row read in one cycle is shifted in at the next.
        shift = Signal()
        m.d.sync += shift.eq(reading)
        with m.If(reading):
            m.d.sync += issued.eq(issued + 1)
        groups = -(-len(ybuf) // 64)
        shift_en = replicated_register(m, platform, reading, groups, name="y_shift")
        shifted = Cat(ybuf[width:], seq_rd.data)
        for g in range(groups):
            lo, hi = g * 64, min(len(ybuf), (g + 1) * 64)
            with m.If(shift_en[g]):
                m.d.sync += ybuf[lo:hi].eq(shifted[lo:hi])
        with m.If(shift):
            m.d.sync += got.eq(got + 1)
            with m.If(got == depth - 1):
                m.d.sync += loaded.eq(1)
        with m.If(lm.w.valid & lm.w.ready):
            m.d.sync += [loaded.eq(0), issued.eq(0), got.eq(0)]
        wiring.connect(m, wiring.flipped(self.i), lm.i)
        wiring.connect(m, lm.o, wiring.flipped(self.o))
        m.d.comb += [lm.w.valid.eq(self.w.valid & loaded), self.w.ready.eq(lm.w.ready & loaded),
                     lm.w.payload.y.eq(ybuf)]
        for name, _ in self.w.payload.shape():
            m.d.comb += getattr(lm.w.payload, name).eq(getattr(self.w.payload, name))
        return m
