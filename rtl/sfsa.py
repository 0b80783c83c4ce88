"""Softmax-free spiking attention (SFSA, BiSpikCLM) with a KV cache and a binary causal mask.

The equations, the state, the cache policy and the timing are on :class:`SFSA`.
"""

from numbers import Integral

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .ecp5_ram import PipelinedRAM, replicated_register
from .ternary_linear import _tree_sum, popcount

__all__ = ["SFSA", "SFSA_PARAMS", "check_sfsa_params", "sfsa_widths"]

#: Names of the SFSA parameters, in the order they are validated.
SFSA_PARAMS = ("d", "L", "T", "strict", "frac", "attn_theta", "attn_beta", "out_theta",
               "out_beta")


def _int(name, value, lo, hi):
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"sfsa parameter {name!r} must be an integer, not {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"sfsa parameter {name!r} must be in {lo}..{hi}, not {value}")
    return value


def check_sfsa_params(**params):
    """Validate a full SFSA parameter set; return it normalised to plain ints and bools.

    Raises :exc:`TypeError` or :exc:`ValueError` naming the parameter and the bad value.
    """
    missing = [name for name in SFSA_PARAMS if name not in params]
    if missing:
        raise TypeError(f"sfsa parameters missing: {', '.join(missing)}")
    unknown = sorted(set(params) - set(SFSA_PARAMS))
    if unknown:
        raise TypeError(f"sfsa has no parameter {unknown[0]!r}")
    out = {"d": _int("d", params["d"], 1, 1024), "L": _int("L", params["L"], 1, 4096),
           "T": _int("T", params["T"], 1, 64)}
    if not isinstance(params["strict"], bool):
        raise TypeError(f"sfsa parameter 'strict' must be a bool, not {params['strict']!r}")
    out["strict"] = params["strict"]
    out["frac"] = frac = _int("frac", params["frac"], 0, 16)
    for name in ("attn_theta", "out_theta"):
        out[name] = _int(name, params[name], 1, 65535)
    for name in ("attn_beta", "out_beta"):
        out[name] = _int(name, params[name], 0, 2 ** frac)
    return out


def sfsa_widths(*, d, L, T, attn_theta, out_theta, **_):
    """Signed membrane widths ``(attn, out)`` that can hold every reachable membrane.

    An attention membrane stays in ``-attn_theta..T*d`` and an output membrane in
    ``-out_theta..T*L`` (leak factors are at most 1, inputs are non-negative, and a spike
    subtracts theta only from a membrane at or above theta), so neither ever saturates.
    """
    return (max(T * d, attn_theta).bit_length() + 1, max(T * L, out_theta).bit_length() + 1)


def _naf(b):
    """Non-adjacent form of b >= 0: ``[(shift, +1 or -1), ...]`` with b = sum(sign << shift)."""
    digits, k = [], 0
    while b:
        if b & 1:
            d = 2 - (b & 3)
            digits.append((k, d))
            b -= d
        b >>= 1
        k += 1
    return digits


def _leak(beta, value, frac):
    """floor(beta*value / 2^frac) from shifts and adds of the constant beta (no multiplier)."""
    digits = _naf(beta)
    if not digits:
        return C(0, 1)
    pos = [value << shift for shift, sign in digits if sign > 0]
    neg = [value << shift for shift, sign in digits if sign < 0]
    total = sum(pos[1:], pos[0])
    for term in neg:
        total = total - term
    return total >> frac


class SFSA(wiring.Component):
    """One head of softmax-free spiking attention, streaming token by token.

    A token at position ``i`` (counted from the sequence start) arrives as ``T`` step beats
    ``t = 0..T-1``, each with binary ``Q_i,t``, ``K_i,t``, ``V_i,t`` of ``d`` bits. For each
    step::

        window  W_i = {j : max(0, i-L+1) <= j <= i}      (strict: max(0, i-L) <= j <= i-1)
        score   x_ij,t = popcount(Q_i,t AND K_j,t)         for j in W_i
        attn    U_ij,t = floor(attn_beta*U_ij,t-1 / 2^frac) + x_ij,t - A_ij,t-1*attn_theta
                A_ij,t = [U_ij,t >= attn_theta]
        value   O_i,t[c] = sum_{j in W_i} A_ij,t * V_j,t[c]
        output  M_i,t[c] = floor(out_beta*M_i,t-1[c] / 2^frac) + O_i,t[c] - S_i,t-1[c]*out_theta
                S_i,t[c] = [M_i,t[c] >= out_theta]

    with ``U_ij,-1 = A_ij,-1 = M_i,-1 = S_i,-1 = 0``: the BiSpikCLM neuron (the LIF's
    ``bispikclm`` preset: binary, subtractive reset by theta, one leak) on every attention pair
    ``(i, j)`` and every output channel ``(i, c)``, each carrying its membrane across the ``T``
    steps of token ``i`` only. ``S_i,t`` is the output beat of step ``(i, t)``.

    KV cache: ``K_i,t``, ``V_i,t`` are stored at slot ``i mod L`` of a block-RAM cache of
    ``L*T`` entries. From position ``L`` on (``L+1`` strict) the window slides: the oldest key
    drops out, so a token always attends to at most ``L`` keys (the last ``L`` positions up to
    and including ``i``, or strictly before ``i``). With ``strict`` the token at position 0
    attends to nothing (``O = 0``).

    Parameters
    ----------
    d : int
        Head dimension, 1..1024.
    L : int
        Keys attended at most (cache slots), 1..4096.
    T : int
        Time steps per token, 1..64.
    strict : bool
        Mask ``j < i`` instead of ``j <= i``.
    frac : int
        Fraction bits F of both leaks, 0..16.
    attn_theta, out_theta : int
        Thresholds of the attention and output neurons, 1..65535. The paper has no scale before
        the attention neuron; ``attn_theta`` plays that role.
    attn_beta, out_beta : int
        Leak numerators in ``0..2^frac`` (``beta / 2^frac``).

    Members
    -------
    i : ``In(stream.Signature(StructLayout({"q": ArrayLayout(1, d), "k": ArrayLayout(1, d), "v": ArrayLayout(1, d), "first": 1, "last": 1})))``
        One beat per step, steps of a token in order ``t = 0..T-1``, tokens in order. ``first``
        starts a sequence (position 0, step 0, whatever came before: the cache is emptied).
        ``last`` only travels to the output.
    o : ``Out(stream.Signature(StructLayout({"s": ArrayLayout(1, d), "first": 1, "last": 1})))``
        One beat per input beat, in order: the output spikes ``S_i,t``; ``first``/``last``
        copied.

    Widths: scores ``0..d``; counts ``0..L``; membranes sized by :func:`sfsa_widths`, so
    nothing saturates or wraps.

    Timing: a step with ``n`` keys in its window occupies the key pipeline for
    ``max(n, hazard_window)`` cycles (:attr:`hazard_window` = 2: a pair's membrane is written
    back 2 cycles after it is read) and the next step is accepted in the last of them. At full
    throughput a token at position ``i`` therefore costs ``T * max(n_i, 2)`` cycles with
    ``n_i = min(i+1, L)`` (strict: ``min(i, L)``); ``d`` does not enter (one key per cycle, the
    ``d``-bit AND and popcount in parallel). Step ``(i, t)`` leaves :attr:`latency` = 10 cycles
    after its last key cycle (cache address, cache output register, AND, slice popcounts,
    group sums, score and state read, leak, attention spike and write-back, the spike's fan-out
    to the columns, accumulation, output neurons). The pipeline never stalls: a beat the output
    cannot take waits in a queue of :attr:`capacity` - 1 beats, and ``i.ready`` is withheld
    while :attr:`capacity` steps are accepted and not yet delivered (credits), so backpressure
    on ``o`` reaches ``i`` only through that count. ``o.valid`` never depends on ``o.ready``; ``i.ready`` depends on
    neither ``i.valid`` nor the payload, nor on ``o.ready`` in the same cycle.

    Reset: the first beat after reset starts a sequence whether or not ``first`` is set. The
    memories need no clearing: nothing outside the current sequence's window is ever read.
    """

    #: Cycles from the last key cycle of a step to its output beat being valid.
    latency = 10
    #: Minimum cycles per step: a pair's membrane is written back 2 cycles after it is read.
    hazard_window = 2
    #: Steps held at most between acceptance and delivery (in the pipeline, the output
    #: queue and the output register). At full throughput at most 6 are, so the credits never
    #: hold a step back unless ``o`` does.
    capacity = 9

    def __init__(self, **params):
        params = check_sfsa_params(**params)
        self.params = params
        for key, value in params.items():
            setattr(self, key, value)
        self.attn_width, self.out_width = sfsa_widths(**params)
        bits = data.ArrayLayout(1, self.d)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "q": bits, "k": bits, "v": bits, "first": 1, "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({"s": bits, "first": 1, "last": 1}))),
        })

    def elaborate(self, platform):
        m = Module()
        d, L, T, H, F = self.d, self.L, self.T, self.hazard_window, self.frac
        aw, ow = self.attn_width, self.out_width
        cw = L.bit_length()          # counts 0..L

        # The KV cache reads through the block RAM's own output register (read latency 2). A
        # key overwritten in the cycle it is read must still be read as the old one (the
        # sliding window relies on it, see the write timing below), but the block RAM leaves a
        # read and a write of one address at one edge undefined. So every write is held in
        # `pend` and made one edge later, and a read at that edge of that address takes
        # `pend`'s data instead of the RAM's: a read sees exactly the writes made before its
        # own edge.
        m.submodules.kv = kv = PipelinedRAM(width=2 * d, depth=max(L * T, 2))
        kv_wr = Signal(data.StructLayout({"en": 1, "addr": range(L * T), "data": 2 * d}))
        pend = Signal.like(kv_wr)
        pair = data.StructLayout({"u": signed(aw), "a": 1})
        m.submodules.mem = mem = Memory(shape=pair, depth=L, init=[])
        mem_wr = mem.write_port()
        mem_rd = mem.read_port(domain="comb")

        m.d.comb += [kv.w_en.eq(pend.en), kv.w_addr.eq(pend.addr), kv.w_data.eq(pend.data)]
        hit1, hit2 = Signal(), Signal()
        byp1, byp2 = Signal(2 * d), Signal(2 * d)
        m.d.sync += [pend.eq(kv_wr),
                     hit1.eq(pend.en & (pend.addr == kv.r_addr)), byp1.eq(pend.data),
                     hit2.eq(hit1), byp2.eq(byp1)]
        kv_data = Signal(2 * d)
        m.d.comb += kv_data.eq(Mux(hit2, byp2, kv.r_data))

        # Sequence position of the next beat; after reset it starts a sequence.
        t_next = Signal(range(T))
        slot_next = Signal(range(L))
        pos_next = Signal(range(L + 1))      # min(i, L)
        start_next = Signal(init=1)
        beat_t, beat_slot, beat_pos = Signal.like(t_next), Signal.like(slot_next), \
            Signal.like(pos_next)
        restart = Signal()
        m.d.comb += restart.eq(self.i.payload.first | start_next)
        m.d.comb += [beat_t.eq(Mux(restart, 0, t_next)), beat_slot.eq(Mux(restart, 0, slot_next)),
                     beat_pos.eq(Mux(restart, 0, pos_next))]
        # Keys in the beat's window: computed from the registered position for a beat that
        # continues the sequence, a constant for one that restarts it, and only then selected
        # by `restart`, so the payload's `first` meets no adder or comparator on its way.
        if self.strict:
            cont_n, restart_n = pos_next, 0
        else:
            cont_n, restart_n = Mux(pos_next == L, L, pos_next + 1), 1
        base_of = Array(C(t * L, range(L * T)) for t in range(T))
        # For a beat that continues the sequence, its window length, issue count, first slot
        # and first cache address are precomputed into registers from the registered position
        # (valid from the cycle after an accept: two accepts are at least H cycles apart).
        # The first slot and address are those of the first issue cycle, negative (wrapped)
        # when the window is padded to H cycles: both count up once per cycle and reach slot 0
        # on the window's first key.
        raw = len(Signal(range(L * T)))
        nxt_n = Signal(range(L + 1))
        nxt_cnt = Signal(range(max(L, H) + 1))
        nxt_slot = Signal(range(L))
        nxt_addr = Signal(raw)
        # The padding (min(n - H, 0), nonzero only near a sequence's start) is decoded from the
        # position with comparisons to constants, so no adder feeds another.
        nxt_pad = Signal(range(-H, 1))
        m.d.comb += nxt_pad.eq(0)
        for p in range(L + 1):
            pad = min((p if self.strict else min(p + 1, L)) - H, 0)
            if pad:
                with m.If(pos_next == p):
                    m.d.comb += nxt_pad.eq(pad)
        m.d.sync += [nxt_n.eq(cont_n), nxt_cnt.eq(Mux(nxt_pad != 0, H, cont_n)),
                     nxt_slot.eq(nxt_pad), nxt_addr.eq(base_of[t_next] + nxt_pad)]
        beat_n = Mux(restart, restart_n, nxt_n)
        beat_cnt = Mux(restart, max(restart_n, H), nxt_cnt)
        restart_pad = restart_n - max(restart_n, H)
        beat_slot0 = Mux(restart, C(restart_pad % (1 << len(nxt_slot)), len(nxt_slot)), nxt_slot)
        beat_addr0 = Mux(restart, C(restart_pad % (1 << raw), raw), nxt_addr)

        # Issue stage: one cycle per key of the window, padded to H cycles.
        busy = Signal()
        cnt = Signal(range(max(L, H) + 1))
        n = Signal(range(L + 1))
        base = Signal(range(L * T))
        cur = Signal(data.StructLayout({"q": d, "fresh": 1, "first": 1, "last": 1,
                                        "wslot": range(L), "kv": 2 * d}))
        last_issue = Signal()
        cnt_is_1 = Signal()      # cnt == 1, kept in a register of its own (beat_cnt >= H > 1)
        m.d.comb += last_issue.eq(busy & cnt_is_1)
        # Credits: a step is accepted only while the output side can hold every step in
        # flight (accepted and not yet delivered: `issued - done`), so the pipeline never has
        # to stop. `room` is a register that leaves out this cycle's accept: in the cycle
        # after an accept `i.ready` is low anyway (the step is busy for >= H > 1 cycles), and
        # otherwise it is exact. So i.ready comes from flip-flops, and the accept only
        # enables the `issued` counter.
        cap = self.capacity
        wrap = 1 << cap.bit_length()
        issued = Signal(range(wrap))
        done = Signal(range(wrap))
        room = Signal(init=1)
        m.d.comb += self.i.ready.eq(room & (~busy | last_issue))
        accept = Signal()
        m.d.comb += accept.eq(self.i.valid & self.i.ready)
        delivered = Signal()
        m.d.comb += delivered.eq(self.o.valid & self.o.ready)
        with m.If(accept):
            m.d.sync += issued.eq(issued + 1)
        with m.If(delivered):
            m.d.sync += done.eq(done + 1)
        m.d.sync += room.eq((issued - done - delivered)[:len(issued)] < cap)

        # The slot (n - cnt) and its cache address (base + slot) are counters of their own, so
        # the cache's read address and its write-collision check come from flip-flops.
        key = Signal()
        slot = Signal(range(L))
        raddr = Signal(raw)
        m.d.comb += [key.eq(busy & (cnt <= n) & (n != 0)), kv.r_addr.eq(raddr)]

        payload_kv = Cat(Value.cast(self.i.payload.k), Value.cast(self.i.payload.v))
        if self.strict:
            # K_i,t joins the cache after its own step has read the window (the slot it takes
            # holds K_{i-L},t, read in that same cycle as the old value).
            m.d.comb += [kv_wr.en.eq(last_issue),
                         kv_wr.addr.eq(base + cur.wslot), kv_wr.data.eq(cur.kv)]
        else:
            # K_i,t joins before its step reads the window; a previous step still reading the
            # slot in this cycle gets the old key.
            m.d.comb += [kv_wr.en.eq(accept), kv_wr.addr.eq(base_of[beat_t] + beat_slot),
                         kv_wr.data.eq(payload_kv)]

        # Every stage carries the step's flags along.
        flags = {"valid": 1, "key": 1, "end": 1, "slot": range(L), "fresh": 1, "first": 1,
                 "last": 1}

        def stage(name, **fields):
            return Signal(data.StructLayout({**flags, **fields}), name=name)

        def follow(dst, src):
            return [getattr(dst, f).eq(getattr(src, f)) for f in flags]

        p0 = stage("p0", q=d)
        m.d.sync += [p0.valid.eq(key | (last_issue & (n == 0))), p0.key.eq(key),
                     p0.end.eq(last_issue), p0.slot.eq(slot), p0.q.eq(cur.q),
                     p0.fresh.eq(cur.fresh), p0.first.eq(cur.first), p0.last.eq(cur.last)]
        with m.If(busy):
            m.d.sync += [cnt.eq(cnt - 1), cnt_is_1.eq(cnt == 2),
                         slot.eq(slot + 1), raddr.eq(raddr + 1)]
            with m.If(last_issue):
                m.d.sync += busy.eq(0)
        with m.If(accept):
            m.d.sync += [
                busy.eq(1), n.eq(beat_n), cnt.eq(beat_cnt), cnt_is_1.eq(0),
                slot.eq(beat_slot0), raddr.eq(beat_addr0),
                base.eq(base_of[beat_t]),
                cur.q.eq(self.i.payload.q), cur.fresh.eq(beat_t == 0),
                cur.first.eq(self.i.payload.first), cur.last.eq(self.i.payload.last),
                cur.wslot.eq(beat_slot), cur.kv.eq(payload_kv),
                start_next.eq(0),
            ]
            with m.If(beat_t == T - 1):
                m.d.sync += [t_next.eq(0),
                             slot_next.eq(Mux(beat_slot == L - 1, 0, beat_slot + 1)),
                             pos_next.eq(Mux(beat_pos == L, L, beat_pos + 1))]
            with m.Else():
                m.d.sync += [t_next.eq(beat_t + 1), slot_next.eq(beat_slot),
                             pos_next.eq(beat_pos)]

        # p0: the cache's address register holds the read.
        p1 = stage("p1", q=d)
        m.d.sync += follow(p1, p0) + [p1.q.eq(p0.q)]

        # p1: the key and value arrive from the cache's output register.
        p2 = stage("p2", qk=d, v=d)
        m.d.sync += follow(p2, p1) + [p2.qk.eq(p1.q & kv_data[:d]),
                                      p2.v.eq(Mux(p1.key, kv_data[d:], 0))]

        # p2: popcounts of 8-bit slices of Q AND K.
        slices = [p2.qk[j:j + 8] for j in range(0, d, 8)]
        ps = stage("ps", parts=data.ArrayLayout(4, len(slices)), v=d)
        m.d.sync += follow(ps, p2) + [ps.v.eq(p2.v)]
        for j, part in enumerate(slices):
            m.d.sync += ps.parts[j].eq(popcount(part))

        # ps: sums of up to four slice counts each (the score's first two adder levels). The
        # pair's state is read here (distributed RAM, read without a clock) into a register
        # of p3; it is written back from p5's registers, three cycles after the read. Steps
        # use a slot at most every H = 2 cycles, so two writes can be missed by a read:
        # the one made at this very edge (three cycles ahead), taken here from the write
        # port, and the one from the step now in p4 (two cycles ahead), taken in p3 from p5
        # (`hit`), where that step has gone.
        groups = [list(range(len(slices)))[j:j + 4] for j in range(0, len(slices), 4)]
        p3 = stage("p3", sums=data.ArrayLayout(6, len(groups)), v=d)
        read, hit = Signal(pair), Signal()
        p4 = stage("p4", score=range(d + 1), upart=signed(aw + 1), umt=signed(aw + 2), v=d)
        m.d.comb += mem_rd.addr.eq(ps.slot)
        m.d.sync += [read.eq(Mux(mem_wr.en & (mem_wr.addr == ps.slot), mem_wr.data,
                                 mem_rd.data)),
                     hit.eq(p4.valid & p4.key & (p4.slot == ps.slot))]
        m.d.sync += follow(p3, ps) + [p3.v.eq(ps.v)]
        for g, group in enumerate(groups):
            m.d.sync += p3.sums[g].eq(_tree_sum([ps.parts[j] for j in group]))

        # p3: the score; leak and reset of the pair's membrane (zero at t = 0), and the same
        # minus theta, so that p4 fires on a sign instead of a second comparison.
        # Each is one adder after the leak.
        prev = Signal(pair)
        p5 = stage("p5", a=1, u=signed(aw), v=d)
        m.d.comb += prev.eq(Mux(hit, Cat(p5.u, p5.a), read))
        leak = _leak(self.attn_beta, prev.u, F)
        theta = self.attn_theta
        upart = Mux(p3.fresh, 0, leak + Mux(prev.a, -theta, 0))
        umt = Mux(p3.fresh, -theta, leak + Mux(prev.a, -2 * theta, -theta))
        m.d.sync += follow(p4, p3) + [
            p4.score.eq(_tree_sum([p3.sums[g] for g in range(len(groups))])),
            p4.upart.eq(upart), p4.umt.eq(umt), p4.v.eq(p3.v)]

        # p4: the attention spike (written back from p5).
        u = Signal(signed(aw + 2))
        a = Signal()
        m.d.comb += [u.eq(p4.upart + p4.score), a.eq(p4.key & (p4.umt + p4.score >= 0))]
        m.d.sync += follow(p5, p4) + [p5.a.eq(a), p5.u.eq(u), p5.v.eq(p4.v)]
        m.d.comb += [mem_wr.en.eq(p5.valid & p5.key), mem_wr.addr.eq(p5.slot),
                     mem_wr.data.u.eq(p5.u), mem_wr.data.a.eq(p5.a)]

        # p5: the attention spike and `end` fan out to every column: one register copy of each
        # per 8 columns, loaded from p5's own flip-flops (a cycle of its own, so that the
        # spike's adder and its route to the columns are not one path).
        groups8 = -(-d // 8)
        pa = stage("pa", v=d)
        pa_a = replicated_register(m, platform, p5.a, groups8, name="pa_a")
        pa_end = replicated_register(m, platform, p5.end, groups8, name="pa_end")
        m.d.sync += follow(pa, p5) + [pa.v.eq(p5.v)]

        # pa: O accumulated over the window; the step's total goes on at its last key. No
        # enable: outside a step's keys the spike is 0 (it needs `key`), and `end` comes only
        # with a valid beat, so the sum holds between keys by itself.
        acc = Signal(data.ArrayLayout(cw, d))
        p6 = Signal(data.StructLayout({"valid": 1, "o": data.ArrayLayout(cw, d), "first": 1,
                                       "last": 1}))
        m.d.sync += [p6.valid.eq(pa.valid & pa.end), p6.first.eq(pa.first),
                     p6.last.eq(pa.last)]
        for c in range(d):
            total = acc[c] + (pa_a[c // 8] & pa.v[c])
            m.d.sync += [acc[c].eq(Mux(pa_end[c // 8], 0, total)), p6.o[c].eq(total)]

        # p6: the output neurons. Their state changes at most once per step (>= H cycles
        # apart), so leak, reset and the step's `fresh` choice are precomputed into registers
        # of their own, loaded every cycle (from copies of p5's `fresh`, one per 8 neurons):
        # the output adders start from flip-flops. The state loads on copies of p6's `valid`.
        mo = Signal(data.ArrayLayout(signed(ow), d))
        so = Signal(d)
        opart = Signal(data.ArrayLayout(signed(ow + 1), d))
        omt = Signal(data.ArrayLayout(signed(ow + 2), d))
        fresh = replicated_register(m, platform, p5.fresh, groups8, name="pa_fresh")
        p6_valid = replicated_register(m, platform, pa.valid & pa.end, groups8, name="p6_valid")
        spike = Signal(d)
        for c in range(d):
            leak = _leak(self.out_beta, mo[c], F)
            f = fresh[c // 8]
            m.d.sync += [
                opart[c].eq(Mux(f, 0, leak + Mux(so[c], -self.out_theta, 0))),
                omt[c].eq(Mux(f, -self.out_theta,
                              leak + Mux(so[c], -2 * self.out_theta, -self.out_theta)))]
            m.d.comb += spike[c].eq(omt[c] + p6.o[c] >= 0)
            with m.If(p6_valid[c // 8]):
                m.d.sync += [mo[c].eq(opart[c] + p6.o[c]), so[c].eq(spike[c])]

        # Output: the beat goes straight to the output register when that is free and
        # nothing is queued before it, into the queue otherwise; the credits above keep the
        # queue from ever being full when a beat arrives.
        m.submodules.obuf = obuf = SyncFIFO(width=d + 2, depth=self.capacity - 1)
        beat = Cat(spike, p6.first, p6.last)
        take = Signal()
        m.d.comb += [take.eq(~self.o.valid | self.o.ready),
                     obuf.w_data.eq(beat), obuf.w_en.eq(p6.valid & (obuf.r_rdy | ~take)),
                     obuf.r_en.eq(take)]
        with m.If(take):
            m.d.sync += [self.o.valid.eq(obuf.r_rdy | p6.valid),
                         Value.cast(self.o.payload).eq(Mux(obuf.r_rdy, obuf.r_data, beat))]
        return m
