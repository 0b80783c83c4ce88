"""Spiking sequence machine: Bose/Furber's N-of-M sparse distributed memory, scaled to an ECP5.

It learns a stream of symbols online (one presentation) and predicts the next symbol. The
equations are on :class:`SeqMachine`.
"""

from numbers import Integral

import numpy as np
from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["SeqMachine", "SEQMACHINE_RTL_PARAMS", "check_seqmachine_rtl_params"]

#: Names of the parameters, in the order they are validated (the wiring tables come apart).
SEQMACHINE_RTL_PARAMS = ("S", "M", "N", "K", "W", "w", "alpha", "frac", "lam")
#: Block RAM of an LFE5U-85F: 208 DP16KD of 18 Kbit.
BRAM_BITS = 208 * 18 * 1024


def _int(name, value, lo, hi, rule=""):
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"SeqMachine parameter {name!r} must be an integer, not {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"SeqMachine parameter {name!r} must be in {lo}..{hi}{rule}, "
                         f"not {value}")
    return value


def _exp_bits(w, N):
    return (w + N - 1).bit_length()


def check_seqmachine_rtl_params(**params):
    """Validate a parameter set (without the tables); return it normalised to plain ints."""
    missing = [name for name in SEQMACHINE_RTL_PARAMS if name not in params]
    if missing:
        raise TypeError(f"SeqMachine parameters missing: {', '.join(missing)}")
    unknown = sorted(set(params) - set(SEQMACHINE_RTL_PARAMS))
    if unknown:
        raise TypeError(f"SeqMachine has no parameter {unknown[0]!r}")
    out = {}
    out["S"] = _int("S", params["S"], 2, 1024)
    out["M"] = M = _int("M", params["M"], 2, 128)
    out["N"] = N = _int("N", params["N"], 1, M, f" (N <= M={M})")
    out["K"] = _int("K", params["K"], 1, M, f" (K <= M={M})")
    out["W"] = W = _int("W", params["W"], 1, 4096)
    out["w"] = w = _int("w", params["w"], 1, min(W, 32), f" (w <= min(W={W}, 32))")
    out["frac"] = frac = _int("frac", params["frac"], 1, 16)
    out["alpha"] = _int("alpha", params["alpha"], 1, 2 ** frac - 1,
                        f" (alpha/2^frac in (0, 1) with frac={frac})")
    out["lam"] = _int("lam", params["lam"], 0, 2 ** frac,
                      f" (lam/2^frac in [0, 1] with frac={frac})")
    bits = W * M * _exp_bits(w, N)
    if bits > BRAM_BITS:
        raise ValueError(f"SeqMachine parameter 'W' is too large for the memory: {W} rows of "
                         f"{M} weights of {_exp_bits(w, N)} bits need {bits} bits, more than "
                         f"the {BRAM_BITS} bits of block RAM of an LFE5U-85F")
    return {name: out[name] for name in SEQMACHINE_RTL_PARAMS}


def _table(name, value, shape, lo, hi):
    arr = np.asarray(value)
    if arr.shape != shape or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(f"SeqMachine table {name!r} must be an integer array of shape "
                         f"{shape}, not {arr.dtype} {arr.shape}")
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ValueError(f"SeqMachine table {name!r} must hold values in {lo}..{hi}")
    return arr.astype(np.int64)


def _significance(alpha, frac, n):
    return [2 ** frac] + [alpha ** k >> (frac * (k - 1)) for k in range(1, n)]


def _rom(values, index):
    """``values[index]`` for constants, padded with zeros to every value the index can take."""
    index = Value.cast(index)
    values = list(values)[:2 ** len(index)]
    values += [0] * (2 ** len(index) - len(values))
    if not any(values):
        return C(0, 1)
    return Array(C(v, max(1, max(values).bit_length())) for v in values)[index]


def _tree_sum(terms):
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


class SeqMachine(wiring.Component):
    """A sequence machine that learns symbol sequences online and predicts the next symbol.

    Ranks below are "none" for neurons that did not fire; every selection keeps the largest
    positive values, ties to the lower index; ``s[k] = floor((alpha/2^frac)^k * 2^frac)`` and
    ``s[none] = 0``. Weights are stored as exponents ``E[i, j]`` (``alpha^E``; "none" = no
    association), so every product of significances is an addition of exponents. Per step,
    with symbol ``x``::

        if clear: E[i, j] = none for all i, j                   (W extra cycles)
        if first: the context and the previous address are empty
        in_j  = k where codes[x][k] == j                         (encoder: N-of-M code of x)
        if learn: E[i, j] = min(E[i, j], r_i + in_j)             (one-shot max write, to the
                  for each decoder i of rank r_i in the previous address and each j in x)
        c_j   = floor(lam * s[ctx[perm[j]]] / 2^frac) + s[in_j]  (context layer)
        ctx   = ranks of the top K of c
        act_i = sum_j conn[i, j] * s[ctx_j]                      (SDM address decoder)
        r     = ranks of the top w of act                        (the address, kept)
        out_j = sum_{i in address} s[r_i + E[i, j]]              (read)
        u     = ranks of the top N of out
        pred  = argmax_y sum_k s[u[codes[y][k]] + k]             (decoder: nearest symbol)

    ``pred`` is the prediction of the next symbol; ``score`` its decoder score (0: nothing
    recalled, and then ``pred = 0``).

    Parameters
    ----------
    S : int
        Symbols, 2..1024.
    M : int
        Neurons per layer (input, context, data), 2..128.
    N : int
        Code size of a symbol, 1..M.
    K : int
        Context code size, 1..M.
    W : int
        Address decoders (memory rows), 1..4096, with ``W * M * e`` bits of weights
        (``e = bits(w + N - 1)``) within the block RAM of an LFE5U-85F.
    w : int
        Active decoders per address, ``1..min(W, 32)``.
    alpha, frac : int
        Significance ratio ``alpha/2^frac`` in (0, 1), ``frac`` in 1..16.
    lam : int
        Context feedback ``lam/2^frac`` in [0, 1].
    codes, conn, perm : array-like
        The fixed random wiring: ``codes`` ``(S, N)`` neuron indices in ``0..M-1``, distinct
        per row; ``conn`` ``(W, M)`` of 0/1; ``perm`` ``(M,)`` a permutation of ``0..M-1``.

    Members
    -------
    i : ``In(stream.Signature(StructLayout({"sym": range(S), "learn": 1, "clear": 1, "first": 1, "last": 1})))``
        One symbol per beat. A symbol ``>= S`` (possible when ``S`` is not a power of two)
        has no code: no input neuron fires, and the result has ``err`` set.
    o : ``Out(stream.Signature(StructLayout({"pred": range(S), "score": unsigned(bits(N*2^frac)), "err": 1, "first": 1, "last": 1})))``
        One prediction per symbol, in order; ``first``/``last`` copied.

    Timing: one symbol at a time, multi-cycle. From the input handshake to ``o.valid`` a step
    takes ``2*M + K + W + w + N + S + 19`` cycles, plus ``W`` with ``clear`` and ``w + 2`` with
    ``learn``; the next symbol is taken once the result has left. No DSP blocks: the only
    products are constant tables and exponent additions. Block RAM: the weights (``W`` rows of
    ``M`` exponents), the symbol codes and the decoder connections. Reset empties the context
    and the address; the weights keep their contents (start with ``clear``). All sums are
    sized so they cannot overflow.
    """

    def __init__(self, *, codes, conn, perm, **params):
        params = check_seqmachine_rtl_params(**params)
        self.params = params
        for key, value in params.items():
            setattr(self, key, value)
        S, M, N, W = self.S, self.M, self.N, self.W
        self.codes = _table("codes", codes, (S, N), 0, M - 1)
        if any(len(set(row)) != N for row in self.codes.tolist()):
            raise ValueError("SeqMachine table 'codes' must hold distinct indices in each row")
        self.conn = _table("conn", conn, (W, M), 0, 1)
        self.perm = _table("perm", perm, (M,), 0, M - 1)
        if sorted(self.perm.tolist()) != list(range(M)):
            raise ValueError("SeqMachine table 'perm' must be a permutation of 0..M-1")
        self.score_shape = unsigned((N * 2 ** self.frac).bit_length())
        #: The most cycles one input beat can take (a step with both ``clear`` and ``learn``).
        self.max_cycles_per_beat = self.cycles(learn=True, clear=True) + 2
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "sym": range(S), "learn": 1, "clear": 1, "first": 1, "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({
                "pred": range(S), "score": self.score_shape, "err": 1, "first": 1,
                "last": 1}))),
        })

    def cycles(self, learn, clear):
        """Cycles from the input handshake of a step to its ``o.valid``."""
        return (2 * self.M + self.K + self.W + self.w + self.N + self.S + 19
                + self.W * bool(clear) + (self.w + 2) * bool(learn))

    def elaborate(self, platform):
        m = Module()
        S, M, N, K, W, w, F = self.S, self.M, self.N, self.K, self.W, self.w, self.frac
        rb = max(K, N, w).bit_length()          # rank width; all ones is "none"
        NONE = 2 ** rb - 1
        eb = _exp_bits(w, N)                    # exponent width; all ones is "none"
        ENONE = 2 ** eb - 1
        nsig = max(K, 2 * w + N - 2, 2 * N - 1)
        sig = _significance(self.alpha, F, nsig)
        s_ctx = [sig[k] for k in range(K)]
        l_ctx = [(self.lam * sig[k]) >> F for k in range(K)]
        s_in = [sig[k] for k in range(N)]
        C_ = max(K, w, N)
        vw = (max(2, M, w) * 2 ** F).bit_length()
        entry = data.StructLayout({"valid": 1, "val": unsigned(vw), "idx": range(max(M, W))})

        m.submodules.code_rom = code_rom = Memory(
            shape=data.ArrayLayout(range(M), N), depth=S, init=self.codes.tolist())
        m.submodules.conn_rom = conn_rom = Memory(
            shape=unsigned(M), depth=W,
            init=[int(sum(int(b) << j for j, b in enumerate(row))) for row in self.conn])
        m.submodules.weights = weights = Memory(
            shape=data.ArrayLayout(unsigned(eb), M), depth=W, init=[[ENONE] * M] * W)
        code_rd = code_rom.read_port()
        conn_rd = conn_rom.read_port()
        e_rd = weights.read_port()
        e_wr = weights.write_port()

        # The beat being processed.
        sym = Signal(range(S), name="sym")
        learn, clear, first, last, err = (Signal(name=n) for n in
                                          ("learn", "clear", "first", "last", "err"))
        ctx = Signal(data.ArrayLayout(unsigned(rb), M), init=[NONE] * M)
        inr = Signal(data.ArrayLayout(unsigned(rb), M))
        sctx = Signal(data.ArrayLayout(unsigned(F + 1), M))
        addr = Signal(data.ArrayLayout(data.StructLayout({"valid": 1, "idx": range(W)}), w))
        acc = Signal(data.ArrayLayout(unsigned((w * 2 ** F).bit_length()), M))
        u = Signal(data.ArrayLayout(unsigned(rb), M))
        # The scans count up to W + 3 and S + 3 (the read latency drains): range must hold them.
        cnt = Signal(range(max(2 * w, M, K, N, W, S) + 4))
        best, pred = Signal(self.score_shape, name="best"), Signal(range(S), name="pred")

        # The top-C sorter: candidates come in increasing index order, so a candidate goes
        # before an entry only with a strictly higher value; zero values are never kept.
        sorter = Signal(data.ArrayLayout(entry, C_))
        cand = Signal(entry)
        cand_en, cand_fresh, shift = (Signal(name=n) for n in ("cand_en", "cand_fresh", "shift"))
        old = Signal(data.ArrayLayout(entry, C_))
        m.d.comb += old.eq(Mux(cand_fresh, 0, sorter))
        gt = [(cand.val != 0) & (~old[p].valid | (cand.val > old[p].val)) for p in range(C_)]
        with m.If(cand_en):
            for p in range(C_):
                m.d.sync += sorter[p].eq(Mux(gt[p], Mux(gt[p - 1], old[p - 1], cand) if p
                                             else cand, old[p]))
        with m.If(shift):
            for p in range(C_):
                m.d.sync += sorter[p].eq(sorter[p + 1] if p + 1 < C_ else 0)
        # Not a constant: Yosys writes a lone constant comb assignment as an `always @*` block
        # with nothing to wake it, which Verilog simulators never run.
        m.d.comb += cand.valid.eq(cand_en)

        # Block RAM outputs are registered before any logic (their clock-to-out is long), so a
        # read issued in cycle t is usable in cycle t+2. The scans carry (valid, index) along
        # delay lines d1 (aligned with the read port's data), d2 (with the registered data),
        # d3; the sorter stage (stage_*) feeds the insertion network.
        code_q = Signal.like(code_rd.data)
        conn_q = Signal.like(conn_rd.data)
        e_q = Signal.like(e_rd.data)
        m.d.sync += [code_q.eq(code_rd.data), conn_q.eq(conn_rd.data), e_q.eq(e_rd.data)]
        idx_range = range(max(W, S, M, w))
        d1_v, d2_v, d3_v = (Signal(name=f"d{k}_v") for k in (1, 2, 3))
        d1_i, d2_i, d3_i = (Signal(idx_range, name=f"d{k}_i") for k in (1, 2, 3))
        stage_v = Signal(name="stage_v")
        stage_val = Signal(vw, name="stage_val")
        stage_idx = Signal(idx_range, name="stage_idx")
        groups = [range(g, min(g + 8, M)) for g in range(0, M, 8)]
        grp = Signal(data.ArrayLayout(unsigned(vw), len(groups)))
        ranks_q = Signal(data.ArrayLayout(unsigned(rb), N))
        # The scanning states below override these; everywhere else the delay lines drain.
        m.d.sync += [d1_v.eq(0), d2_v.eq(0), d3_v.eq(0), stage_v.eq(0),
                     d2_i.eq(d1_i), d3_i.eq(d2_i)]

        def issue(limit):
            """Start the scan item ``cnt`` (if below ``limit``) down the delay lines."""
            return [d1_v.eq(cnt < limit), d1_i.eq(cnt), d2_v.eq(d1_v), d3_v.eq(d2_v)]

        def insert_stage():
            return [cand_en.eq(stage_v), cand_fresh.eq(stage_idx == 0),
                    cand.val.eq(stage_val), cand.idx.eq(stage_idx)]

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(~self.o.valid)
                with m.If(self.i.valid & ~self.o.valid):
                    p = self.i.payload
                    m.d.sync += [sym.eq(p.sym), learn.eq(p.learn), clear.eq(p.clear),
                                 first.eq(p.first), last.eq(p.last), err.eq(p.sym >= S),
                                 cnt.eq(0)]
                    with m.If(p.first):
                        m.d.sync += ctx.eq(Cat(C(NONE, rb) for _ in range(M)))
                        m.d.sync += [addr[k].valid.eq(0) for k in range(w)]
                    with m.If(p.clear):
                        m.next = "CLEAR"
                    with m.Else():
                        m.next = "CODE"
            with m.State("CLEAR"):
                m.d.comb += [e_wr.en.eq(1), e_wr.addr.eq(cnt),
                             e_wr.data.eq(Cat(C(ENONE, eb) for _ in range(M)))]
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == W - 1):
                    m.d.sync += cnt.eq(0)
                    m.next = "CODE"
            with m.State("CODE"):
                m.d.comb += [code_rd.en.eq(1), code_rd.addr.eq(sym)]
                m.next = "CODE_WAIT"
            with m.State("CODE_WAIT"):
                m.next = "ENCODE"
            with m.State("ENCODE"):
                for j in range(M):
                    hits = [Mux(code_q[k] == j, k, 0) for k in range(N)]
                    hit = Cat(code_q[k] == j for k in range(N)).any()
                    m.d.sync += inr[j].eq(Mux(hit & ~err, _or_all(hits), NONE))
                m.d.sync += cnt.eq(0)
                with m.If(learn):
                    m.next = "WRITE"
                with m.Else():
                    m.next = "CTX"
            with m.State("WRITE"):
                # Read address row cnt; write back row cnt-2 (the rows are distinct).
                with m.If(cnt < w):
                    m.d.comb += [e_rd.en.eq(1), e_rd.addr.eq(Array(addr)[cnt].idx)]
                m.d.sync += issue(w)
                row = Array(addr)[d2_i]
                new = []
                for j in range(M):
                    cand_e = d2_i + inr[j]
                    new.append(Mux((inr[j] != NONE) & (cand_e < e_q[j]), cand_e, e_q[j])[:eb])
                m.d.comb += [e_wr.en.eq(d2_v & row.valid), e_wr.addr.eq(row.idx),
                             e_wr.data.eq(Cat(new))]
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == w + 1):
                    m.d.sync += cnt.eq(0)
                    m.next = "CTX"
            with m.State("CTX"):
                # Neuron cnt's activation into the stage; the one before goes to the sorter.
                old_rank = Array(ctx[int(self.perm[j])] for j in range(M))[cnt]
                in_rank = Array(inr[j] for j in range(M))[cnt]
                m.d.sync += [stage_v.eq(cnt < M), stage_idx.eq(cnt),
                             stage_val.eq(_rom(l_ctx, old_rank) + _rom(s_in, in_rank))]
                m.d.comb += insert_stage()
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == M):
                    m.d.sync += [cnt.eq(0), ctx.eq(Cat(C(NONE, rb) for _ in range(M)))]
                    m.next = "CTX_SET"
            with m.State("CTX_SET"):
                head = sorter[0]
                m.d.comb += shift.eq(1)
                with m.If(head.valid):
                    m.d.sync += Array(ctx[j] for j in range(M))[head.idx].eq(cnt)
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == K - 1):
                    m.d.sync += cnt.eq(0)
                    m.next = "SCTX"
            with m.State("SCTX"):
                for j in range(M):
                    m.d.sync += sctx[j].eq(_rom(s_ctx, ctx[j]))
                m.next = "ADDR"
            with m.State("ADDR"):
                # Read decoder cnt; at d2 sum its connections in groups of 8; at d3 add the
                # groups into the stage; insert from the stage.
                with m.If(cnt < W):
                    m.d.comb += [conn_rd.en.eq(1), conn_rd.addr.eq(cnt)]
                m.d.sync += issue(W)
                for g, js in enumerate(groups):
                    m.d.sync += grp[g].eq(_tree_sum([Mux(conn_q[j], sctx[j], 0) for j in js]))
                m.d.sync += [stage_v.eq(d3_v), stage_idx.eq(d3_i),
                             stage_val.eq(_tree_sum([grp[g] for g in range(len(groups))]))]
                m.d.comb += insert_stage()
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == W + 3):
                    m.d.sync += cnt.eq(0)
                    m.next = "ADDR_SET"
            with m.State("ADDR_SET"):
                for k in range(w):
                    m.d.sync += [addr[k].valid.eq(sorter[k].valid),
                                 addr[k].idx.eq(sorter[k].idx)]
                m.d.sync += acc.eq(0)
                m.next = "READ"
            with m.State("READ"):
                # Read address row cnt; accumulate it at d2.
                with m.If(cnt < w):
                    m.d.comb += [e_rd.en.eq(1), e_rd.addr.eq(Array(addr)[cnt].idx)]
                m.d.sync += issue(w)
                m.d.sync += d1_v.eq((cnt < w) & Array(addr)[cnt].valid)
                with m.If(d2_v):
                    for j in range(M):
                        e = e_q[j]
                        table = [sig[k] if k < nsig else 0 for k in range(w + ENONE)]
                        term = Mux(e == ENONE, 0, _rom(table, d2_i[:max(1, (w - 1).bit_length())]
                                                       + e))
                        m.d.sync += acc[j].eq(acc[j] + term)
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == w + 1):
                    m.d.sync += cnt.eq(0)
                    m.next = "TOPN"
            with m.State("TOPN"):
                m.d.sync += [stage_v.eq(cnt < M), stage_idx.eq(cnt),
                             stage_val.eq(Array(acc[j] for j in range(M))[cnt])]
                m.d.comb += insert_stage()
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == M):
                    m.d.sync += [cnt.eq(0), u.eq(Cat(C(NONE, rb) for _ in range(M)))]
                    m.next = "U_SET"
            with m.State("U_SET"):
                head = sorter[0]
                m.d.comb += shift.eq(1)
                with m.If(head.valid):
                    m.d.sync += Array(u[j] for j in range(M))[head.idx].eq(cnt)
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == N - 1):
                    m.d.sync += [cnt.eq(0), best.eq(0), pred.eq(0)]
                    m.next = "DECODE"
            with m.State("DECODE"):
                # Read the code of symbol cnt; at d2 look up its neurons' ranks; at d3 score
                # it into the stage; compare the stage with the best so far.
                with m.If(cnt < S):
                    m.d.comb += [code_rd.en.eq(1), code_rd.addr.eq(cnt)]
                m.d.sync += issue(S)
                for k in range(N):
                    m.d.sync += ranks_q[k].eq(Array(u[j] for j in range(M))[code_q[k]])
                terms = [_rom([sig[r + k] if r < N else 0 for r in range(2 ** rb)], ranks_q[k])
                         for k in range(N)]
                m.d.sync += [stage_v.eq(d3_v), stage_idx.eq(d3_i),
                             stage_val.eq(_tree_sum(terms))]
                with m.If(stage_v & (stage_val > best)):
                    m.d.sync += [best.eq(stage_val), pred.eq(stage_idx)]
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == S + 3):
                    m.d.sync += cnt.eq(0)
                    m.next = "OUT"
            with m.State("OUT"):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.pred.eq(pred),
                             self.o.payload.score.eq(best), self.o.payload.err.eq(err),
                             self.o.payload.first.eq(first), self.o.payload.last.eq(last)]
                m.next = "IDLE"
        return m


def _or_all(terms):
    while len(terms) > 1:
        terms = [terms[i] | terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]
