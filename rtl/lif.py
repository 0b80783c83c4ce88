"""Ternary/binary leaky integrate-and-fire (LIF) integrator array.

One neuron model covers SpikeLM's elastic bi-spiking neuron and BiSpikCLM's LIF neuron
(see :func:`lif_preset`); the equations and the parameter rules are on :class:`LIF`.
"""

import math
from numbers import Integral, Real

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .ecp5_ram import PipelinedRAM

__all__ = ["LIF", "LIF_PARAMS", "check_lif_params", "lif_preset"]

#: Names of the LIF parameters, in the order they are validated.
LIF_PARAMS = ("n", "p", "T", "x_width", "m_width", "frac", "beta_pos", "beta_zero", "beta_neg",
              "theta_pos", "theta_neg", "theta_reset", "rho", "bipolar")


def _int(name, value, lo, hi):
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"LIF parameter {name!r} must be an integer, not {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"LIF parameter {name!r} must be in {lo}..{hi}, not {value}")
    return value


def _per_step(name, value, lo, hi, T):
    if isinstance(value, (list, tuple)):
        if len(value) != T:
            raise ValueError(f"LIF parameter {name!r} must be an integer or a list of T={T} "
                             f"integers, not a list of {len(value)}")
        return [_int(f"{name}[{k}]", v, lo, hi) for k, v in enumerate(value)]
    return _int(name, value, lo, hi)


def check_lif_params(**params):
    """Validate a full LIF parameter set; return it normalised to plain ints and lists.

    Raises :exc:`TypeError` or :exc:`ValueError` naming the parameter and the bad value.
    """
    missing = [name for name in LIF_PARAMS if name not in params]
    if missing:
        raise TypeError(f"LIF parameters missing: {', '.join(missing)}")
    unknown = sorted(set(params) - set(LIF_PARAMS))
    if unknown:
        raise TypeError(f"LIF has no parameter {unknown[0]!r}")
    out = {}
    out["n"] = n = _int("n", params["n"], 1, 65536)
    out["p"] = p = _int("p", params["p"], 1, 65536)
    if n % p:
        raise ValueError(f"LIF parameter 'p' must divide n={n}, not {p}")
    out["T"] = T = _int("T", params["T"], 1, 64)
    out["x_width"] = _int("x_width", params["x_width"], 2, 24)
    out["m_width"] = m_width = _int("m_width", params["m_width"], 2, 32)
    out["frac"] = frac = _int("frac", params["frac"], 0, 16)
    m_max = 2 ** (m_width - 1) - 1
    for name in ("beta_pos", "beta_zero", "beta_neg"):
        out[name] = _per_step(name, params[name], 0, 2 ** frac, T)
    for name in ("theta_pos", "theta_neg"):
        out[name] = _per_step(name, params[name], 1, m_max, T)
    out["theta_reset"] = _per_step("theta_reset", params["theta_reset"], 0, m_max, T)
    out["rho"] = _int("rho", params["rho"], 0, 1)
    if not isinstance(params["bipolar"], bool):
        raise TypeError(f"LIF parameter 'bipolar' must be a bool, not {params['bipolar']!r}")
    out["bipolar"] = params["bipolar"]
    return out


def _preset_real(preset, name, value, lo, hi):
    if (not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value)
            or not lo < value <= hi):
        raise ValueError(f"lif_preset {preset!r} parameter {name!r} must be a real number "
                         f"in ({lo}, {hi}], not {value!r}")
    return float(value)


def lif_preset(name, **overrides):
    """A full LIF parameter dict (plain ints and lists) for a neuron from the papers.

    ``"spikelm"``: SpikeLM's released elastic bi-spiking neuron. Preset-only inputs:
    ``amplitude`` (the T per-step amplitudes a_t, default ``[1.0, 0.875, 0.75, 0.625]``; each in
    (0, 2]) and ``scale`` (membrane LSBs per real unit, default 256). Derived:
    ``theta_pos_t = theta_neg_t = floor(a_t*scale/2) + 1`` (the released code spikes iff
    |u| > a/2; ties give 0), ``beta_pos = 0`` (hard reset), ``beta_zero_t =
    round(0.25*a_{t-1}*2^frac)``, ``beta_neg_t = round(0.5*a_{t-1}*2^frac)`` (index taken mod T),
    ``rho = 0``, ``bipolar = True``; frac=8, x_width=12, m_width=16, n=64, p=4.

    ``"bispikclm"``: BiSpikCLM's ``U_t = I_t + beta*U_{t-1} - S_{t-1}*theta``,
    ``S_t = [U_t >= theta]``. Preset-only inputs: ``theta`` (default 70, i.e. 0.70 at scale 100)
    and ``beta`` (default 128, i.e. 0.5 at frac=8). Binary output, ``rho = 1``,
    ``theta_pos = theta_reset = theta``, all three leaks ``= beta``, T=4, frac=8, x_width=10,
    m_width=16, n=64, p=4, theta_neg=1 (unused).

    Any key of the result (or a preset-only input) can be overridden; the result is validated
    with :func:`check_lif_params`. Unknown names raise :exc:`ValueError`.
    """
    if name == "spikelm":
        extra = {"amplitude": [1.0, 0.875, 0.75, 0.625], "scale": 256}
    elif name == "bispikclm":
        extra = {"theta": 70, "beta": 128}
    else:
        raise ValueError(f"unknown LIF preset {name!r}; known: bispikclm, spikelm")
    for key in overrides:
        if key not in LIF_PARAMS and key not in extra:
            raise ValueError(f"lif_preset {name!r} has no parameter {key!r}; known: "
                             f"{', '.join(sorted(LIF_PARAMS + tuple(extra)))}")
    extra.update({k: v for k, v in overrides.items() if k in extra})
    frac = overrides.get("frac", 8)

    if name == "spikelm":
        amplitude = extra["amplitude"]
        if not isinstance(amplitude, (list, tuple)) or not 1 <= len(amplitude) <= 64:
            raise ValueError(f"lif_preset 'spikelm' parameter 'amplitude' must be a list of "
                             f"1..64 amplitudes, not {amplitude!r}")
        amps = [_preset_real(name, "amplitude", a, 0, 2) for a in amplitude]
        scale = _preset_real(name, "scale", extra["scale"], 0, math.inf)
        frac = _int("frac", frac, 0, 16)  # the leaks below depend on it
        T = len(amps)
        theta = [math.floor(a * scale / 2) + 1 for a in amps]
        params = dict(
            n=64, p=4, T=T, x_width=12, m_width=16, frac=frac,
            beta_pos=0,
            beta_zero=[round(0.25 * amps[t - 1] * 2 ** frac) for t in range(T)],
            beta_neg=[round(0.5 * amps[t - 1] * 2 ** frac) for t in range(T)],
            theta_pos=theta, theta_neg=list(theta), theta_reset=0, rho=0, bipolar=True)
    else:
        theta, beta = extra["theta"], extra["beta"]
        params = dict(
            n=64, p=4, T=4, x_width=10, m_width=16, frac=frac,
            beta_pos=beta, beta_zero=beta, beta_neg=beta,
            theta_pos=theta, theta_neg=1, theta_reset=theta, rho=1, bipolar=False)
    params.update({k: v for k, v in overrides.items() if k in LIF_PARAMS})
    return check_lif_params(**params)


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


def _tree_sum(terms):
    # Balanced, so a product costs ceil(log2(terms)) adder levels, not len(terms) - 1.
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


def _const_product(b, m, frac):
    """floor(b*m / 2^frac) from shifts and adds of the constant b (never a multiplier)."""
    digits = _naf(b)
    if not digits:
        return C(0, 1)
    pos = [m << k for k, d in digits if d > 0]
    neg = [m << k for k, d in digits if d < 0]
    full = _tree_sum(pos) - _tree_sum(neg) if neg else _tree_sum(pos)
    return full >> frac


def _lookup(values, index):
    """``values[index]`` for a table of constants indexed by a signal."""
    if len(set(values)) == 1:
        return C(values[0])
    return Array(C(v) for v in values)[index]


class _AddressRegisteredRAM(wiring.Component):
    """The ports and the read latency (2) of :class:`~spikeforge.rtl.ecp5_ram.PipelinedRAM`,
    with the first register on the address instead of the data: the address register, an
    asynchronous read (ECP5 distributed RAM), then the output register.

    So the address leaves a flip-flop and only then fans out to every cell of a wide word,
    and a read sees the write made at the edge that sampled its address (PipelinedRAM's
    word is undefined there).
    """

    def __init__(self, *, width, depth):
        self.width, self.depth = width, depth
        super().__init__({
            "ce": In(1, init=1),
            "w_en": In(1), "w_addr": In(range(depth)), "w_data": In(width),
            "r_addr": In(range(depth)), "r_data": Out(width),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=self.width, depth=self.depth, init=[])
        wr = mem.write_port()
        rd = mem.read_port(domain="comb")
        addr = Signal.like(self.r_addr, name="r_addr_q")
        m.d.comb += [wr.en.eq(self.w_en & self.ce), wr.addr.eq(self.w_addr),
                     wr.data.eq(self.w_data), rd.addr.eq(addr)]
        with m.If(self.ce):
            m.d.sync += [addr.eq(self.r_addr), self.r_data.eq(rd.data)]
        return m


class LIF(wiring.Component):
    """Array of ``n`` LIF neurons updated ``p`` per beat, with ternary or binary spike output.

    For each neuron, at step index ``t`` within a sequence (per-step parameters are indexed by
    ``t mod T``)::

        m_t = sat(floor(beta[q_{t-1}]_t * m_{t-1} / 2^frac) + x_t - rho * q_{t-1} * theta_reset_t)
        q_t = +1 if m_t >= theta_pos_t; -1 if bipolar and m_t <= -theta_neg_t; else 0

    with ``beta[+1] = beta_pos``, ``beta[0] = beta_zero``, ``beta[-1] = beta_neg``, ``sat()``
    saturating to ``[-2^(m_width-1), 2^(m_width-1)-1]``, the floor exact for negative ``m``, and
    ``m_{-1} = q_{-1} = 0`` at the start of every sequence. Integers only; no multipliers (each
    distinct leak constant is a shift-and-add network).

    Parameters
    ----------
    n : int
        Neurons, 1..65536.
    p : int
        Lanes per beat, >= 1, divides ``n``. A step is ``n/p`` beats.
    T : int
        Period of the per-step parameters, 1..64.
    x_width : int
        Signed input width, 2..24.
    m_width : int
        Signed membrane width, 2..32.
    frac : int
        Fraction bits F of the leak constants, 0..16 (``beta = b / 2^F``).
    beta_pos, beta_zero, beta_neg : int or list of T ints
        Leak numerators in ``0..2^frac`` after a +1, 0 and -1 spike (0 is a hard reset).
    theta_pos, theta_neg : int or list of T ints
        Firing thresholds in ``1..2^(m_width-1)-1`` (``theta_neg`` unused unless bipolar).
    theta_reset : int or list of T ints
        Subtractive reset amount in ``0..2^(m_width-1)-1``.
    rho : int
        1 for subtractive reset, 0 for none.
    bipolar : bool
        Ternary {-1, 0, +1} output if true, else binary {0, 1}.

    Members
    -------
    i : ``In(stream.Signature(StructLayout(...)))``
        Payload ``{"x": ArrayLayout(signed(x_width), p), "first": 1, "last": 1}``.
        Step inputs. Lane ``k`` of beat ``g`` of a step is neuron ``g*p + k``. ``first`` marks
        the first beat of a sequence (it always restarts at group 0, step 0, resynchronising a
        malformed stream); ``last`` marks its last beat and only travels to the output.
    o : ``Out(stream.Signature(StructLayout(...)))``
        Payload ``{"q": ArrayLayout(signed(2) if bipolar else unsigned(1), p), "first": 1,
        "last": 1}``.
        Spikes, one beat per input beat, in order, ``first``/``last`` copied. Ternary spikes are
        2-bit two's complement (+1 = 0b01, 0 = 0b00, -1 = 0b11); 0b10 is never produced.

    Latency is :attr:`latency` = 5 cycles from an input handshake to ``o.valid`` (registered
    output). The pipeline stalls as a whole while ``o.valid & ~o.ready``; ``o.valid`` never
    depends on ``o.ready``, and ``i.ready`` depends on neither ``i.valid`` nor the payload.
    Neuron state (membrane and last spike) lives in a memory of depth ``n/p`` and width
    ``p*(m_width+2)`` (``p*(m_width+1)`` when binary), read with latency 2: when ``n/p > 16`` a
    :class:`~spikeforge.rtl.ecp5_ram.PipelinedRAM` (on ECP5, block RAM with its output
    register), otherwise an address register, distributed RAM and an output register.
    A beat whose group was accepted fewer than :attr:`hazard_window` = 5 beats earlier waits for
    its state, so throughput is ``p`` neuron updates per cycle when ``n/p >= 5`` and
    ``p*(n/p)/5`` otherwise; results never depend on gaps or backpressure. The stall logic
    exists only when ``n/p < 5`` and the write-back bypass only when ``n/p <= 5``: with more
    groups neither can ever act, and leaving them out takes the group comparisons off the
    ready and read-address paths.

    Reset: the first beat after reset starts a sequence whether or not ``first`` is set. State
    memory needs no clearing: the first step of every sequence ignores it.
    """

    #: Cycles from an input handshake to the output beat being valid.
    latency = 5
    #: A beat whose group was accepted fewer than this many beats earlier waits.
    hazard_window = 5

    def __init__(self, **params):
        params = check_lif_params(**params)
        self.params = params
        for key, value in params.items():
            setattr(self, key, value)
        self.groups = self.n // self.p
        q_shape = signed(2) if self.bipolar else unsigned(1)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "x": data.ArrayLayout(signed(self.x_width), self.p), "first": 1, "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({
                "q": data.ArrayLayout(q_shape, self.p), "first": 1, "last": 1}))),
        })

    def _steps(self, name):
        value = self.params[name]
        return list(value) if isinstance(value, list) else [value] * self.T

    def elaborate(self, platform):
        m = Module()
        p, G, T, F, mw = self.p, self.groups, self.T, self.frac, self.m_width
        lanes = range(p)

        # Leak constants: one product network per distinct value actually reachable.
        kinds = ["beta_pos", "beta_zero"] + (["beta_neg"] if self.bipolar else [])
        betas = sorted({b for kind in kinds for b in self._steps(kind)})
        bidx = {kind: [betas.index(b) for b in self._steps(kind)] for kind in kinds}
        if not self.bipolar:
            bidx["beta_neg"] = bidx["beta_zero"]
        theta_reset = self._steps("theta_reset")
        use_reset = self.rho == 1 and any(theta_reset)

        # A binary spike is stored in one bit: a constant bit in the memory's word would waste
        # block RAM.
        q_shape = signed(2) if self.bipolar else unsigned(1)
        state = data.StructLayout({"m": signed(mw), "q": q_shape})
        states = data.ArrayLayout(state, p)
        # Read latency 2. Block RAM (n/p > 16): its address register, then its own output
        # register, so its slow clock-to-out ends in a register. Distributed RAM: a register
        # on the address, so the address computed below (from i.valid) stops at a flip-flop
        # before it fans out to the p*(m_width+2)/4 RAM cells; such a read also sees the write
        # made at the edge that sampled its address. See "prefetch" below.
        width, depth = Shape.cast(states).width, max(G, 2)
        block_ram = depth > 16
        if block_ram:
            m.submodules.ram = ram = PipelinedRAM(width=width, depth=depth, block_ram=True)
        else:
            m.submodules.ram = ram = _AddressRegisteredRAM(width=width, depth=depth)

        advance = Signal()
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready), ram.ce.eq(advance)]

        # One beat per stage: a valid bit (reset) and a payload register without reset, which
        # needs none and so leaves the flip-flops' reset input free for logic. The whole
        # pipeline, the RAM included, moves only on `advance`.
        def stage(name, payload):
            layout = data.StructLayout({"first": 1, "last": 1, "g": range(G), **payload})
            return Signal(name=f"{name}_valid"), Signal(layout, name=name, reset_less=True)

        wide = max(self.x_width, mw) + 2  # holds x - reset term
        nb = len(betas)
        consts = {"th_pos": unsigned(mw), "minus_th_neg": signed(mw + 1)}
        xs = data.ArrayLayout(signed(self.x_width), p)
        # x minus the reset term after a +1, 0 and -1 spike
        xo_all = data.ArrayLayout(data.ArrayLayout(signed(wide), 3), p) if use_reset else xs
        lims = ("pos", "neg", "hi", "lo")  # fire +1, fire -1, saturate up, saturate down
        v1, s1 = stage("s1", {"fresh": 1, "hit": 1, "byp": states, "x": xs, "tr": unsigned(mw),
                              "bp": range(nb), "bz": range(nb), "bn": range(nb), **consts})
        v2, s2 = stage("s2", {"xo": xo_all, "q": data.ArrayLayout(q_shape, p),
                              "sel": data.ArrayLayout(range(nb), p),
                              "prod": data.ArrayLayout(data.ArrayLayout(signed(mw), nb), p),
                              **consts})
        v3, s3 = stage("s3", {"prod": data.ArrayLayout(signed(mw), p),
                              "xo": data.ArrayLayout(signed(wide), p),
                              **{f"lim_{name}": data.ArrayLayout(signed(wide + 1), p)
                                 for name in lims}})
        v4, s4 = stage("s4", {"total": data.ArrayLayout(signed(mw), p),
                              **{f"{name}": data.ArrayLayout(1, p) for name in lims}})
        v5, s5 = stage("s5", {"state": states})
        with m.If(advance):
            m.d.sync += Cat(v1, v2, v3, v4, v5).eq(Cat(self.i.valid & self.i.ready, v1, v2, v3, v4))

        # Sequence position of the next beat; after reset it starts a sequence.
        g_next = Signal(range(G))
        t_next = Signal(range(T))
        fresh_next = Signal(init=1)
        beat_g, beat_t, beat_fresh = Signal.like(g_next), Signal.like(t_next), Signal()
        with m.If(self.i.payload.first):
            m.d.comb += [beat_g.eq(0), beat_t.eq(0), beat_fresh.eq(1)]
        with m.Else():
            m.d.comb += [beat_g.eq(g_next), beat_t.eq(t_next), beat_fresh.eq(fresh_next)]

        # The state of a group is written back at the edge that moves its beat out of s5, so
        # the same group must not sit in s1..s4 (the two writes that may still be missing
        # from what the RAM read take the bypass below). This uses the counter's group, not
        # the payload's `first`, so that i.ready never depends on the payload; a `first` beat
        # (which reads no state) may wait needlessly, never wrongly. The hazard is computed a
        # cycle ahead, so that neither i.ready nor the RAM address below waits for a comparison.
        def inc(g):
            return Mux(g == G - 1, 0, g + 1)

        accept = Signal()
        g_inc = Signal.like(g_next, init=1 % G)  # always inc(g_next)
        inc_beat = Signal.like(g_next)
        m.d.comb += [accept.eq(self.i.valid & self.i.ready),
                     inc_beat.eq(Mux(self.i.payload.first, 1 % G, g_inc))]
        # The hazard for the next cycle, from what the registers will hold after this edge.
        hazard = Signal()
        m.d.comb += self.i.ready.eq(advance & ~hazard)
        # `accept` without o.ready: what the registers updated under `advance` select on.
        take = Signal()
        m.d.comb += take.eq(self.i.valid & ~hazard)
        stages = ((v1, s1), (v2, s2), (v3, s3))
        last_of_step = beat_g == G - 1
        # s.g == inc_beat, with both comparisons made from registers before `first` picks one.
        hz_accept = ~Mux(last_of_step, 0, beat_fresh) & ((G == 1) | Mux(
            self.i.payload.first, Cat(v & (s.g == 1 % G) for v, s in stages).any(),
            Cat(v & (s.g == g_inc) for v, s in stages).any()))
        hz_idle = ~fresh_next & Cat(v & (s.g == g_next) for v, s in stages).any()
        # With n/p >= hazard_window the hazard never occurs: a beat that reads state is at
        # least the n/p-th beat since its sequence's `first` (or since reset), so the beats
        # in s1..s4 are the ones just before it in the same sequence, and their groups are
        # the n/p - 1 >= 4 groups below its own (mod n/p), never its own. The register then
        # stays 0 and synthesis removes the comparisons.
        if G < self.hazard_window:
            with m.If(advance):
                m.d.sync += hazard.eq(Mux(take, hz_accept, hz_idle))

        # Prefetch: the RAM samples, at every edge, the address g_next will hold after it:
        # the group of the next beat unless that beat starts a sequence (and then it needs no
        # state). So a beat's state is in the RAM's output register while the beat is in s1.
        # The address ignores o.ready: when the pipeline stalls, the RAM does too.
        g_after = Signal.like(g_next)
        m.d.comb += g_after.eq(Mux(take, inc_beat, g_next))
        with m.If(accept):
            # From beat_g, not g_inc, so that g_next < n/p holds by construction.
            m.d.sync += [g_next.eq(inc(beat_g)),
                         g_inc.eq(Mux(self.i.payload.first, 2 % G, inc(g_inc)))]
            with m.If(last_of_step):
                m.d.sync += [t_next.eq(Mux(beat_t == T - 1, 0, beat_t + 1)), fresh_next.eq(0)]
            with m.Else():
                m.d.sync += [t_next.eq(beat_t), fresh_next.eq(beat_fresh)]

        # Write-back from s5 (the RAM writes only on `advance`). The read a beat uses was
        # sampled one edge before the beat was accepted: it misses the write made at the
        # acceptance edge (still in s5). The write made at the edge that sampled the read is
        # seen, by the distributed RAM through its address register (below).
        m.d.comb += [ram.r_addr.eq(g_after),
                     ram.w_en.eq(v5), ram.w_addr.eq(s5.g), ram.w_data.eq(s5.state)]
        # Whether s5's group equals g_next, computed a cycle ahead like the hazard.
        eq_s5 = Signal()
        # By the argument above, the previous beat of a state-reading beat's group was
        # accepted n/p beats before it, and so left s5 (its write) at least n/p - 5 edges
        # before the beat's acceptance: with n/p >= 6 that is one edge or more, the edge that
        # sampled the read at the latest, and the bypass never hits. The register then stays
        # 0. Block RAM (n/p > 16) would miss that write too, but there it is many edges back.
        if G <= self.latency:
            with m.If(advance):
                m.d.sync += eq_s5.eq(Mux(take, s4.g == inc_beat, s4.g == g_next))
        hit_s5 = Signal()
        m.d.comb += hit_s5.eq(v5 & eq_s5)

        prev = Signal(states)
        m.d.comb += prev.eq(Mux(s1.fresh, 0, Mux(s1.hit, s1.byp, ram.r_data)))

        with m.If(advance):
            # s1: the accepted beat, its step's constants and the bypassed state, if any.
            m.d.sync += [
                s1.first.eq(self.i.payload.first), s1.last.eq(self.i.payload.last),
                s1.g.eq(beat_g), s1.fresh.eq(beat_fresh), s1.x.eq(self.i.payload.x),
                s1.hit.eq(hit_s5),
                s1.byp.eq(s5.state),
                s1.tr.eq(_lookup(theta_reset, beat_t)),
                s1.bp.eq(_lookup(bidx["beta_pos"], beat_t)),
                s1.bz.eq(_lookup(bidx["beta_zero"], beat_t)),
                s1.bn.eq(_lookup(bidx["beta_neg"], beat_t)),
                s1.th_pos.eq(_lookup(self._steps("theta_pos"), beat_t)),
                s1.minus_th_neg.eq(_lookup([-v for v in self._steps("theta_neg")], beat_t)),
            ]
            # s2: the previous state (zero at the first step of a sequence): every leak
            # product of its membrane, and the leak its spike selects; x minus each possible
            # reset term.
            m.d.sync += [s2.first.eq(s1.first), s2.last.eq(s1.last), s2.g.eq(s1.g)]
            m.d.sync += [getattr(s2, k).eq(getattr(s1, k)) for k in consts]
            for k in lanes:
                q = prev[k].q
                m.d.sync += [s2.q[k].eq(q),
                             s2.sel[k].eq(Mux(q == 1, s1.bp, Mux(q == -1, s1.bn, s1.bz)))]
                for d, b in enumerate(betas):
                    m.d.sync += s2.prod[k][d].eq(_const_product(b, prev[k].m, F))
                if use_reset:
                    m.d.sync += [s2.xo[k][0].eq(s1.x[k] - s1.tr), s2.xo[k][1].eq(s1.x[k]),
                                 s2.xo[k][2].eq(s1.x[k] + s1.tr)]
                else:
                    m.d.sync += s2.xo[k].eq(s1.x[k])
            # s3: the selected leak product; x minus the reset term; each limit moved to the
            # product's side (prod + xo >= lim  <=>  prod >= lim - xo), so that s4 compares
            # with one carry chain each, in parallel with the sum.
            m_lo, m_hi = -2 ** (mw - 1), 2 ** (mw - 1) - 1
            m.d.sync += [s3.first.eq(s2.first), s3.last.eq(s2.last), s3.g.eq(s2.g)]
            for k in lanes:
                q = s2.q[k]
                if use_reset:
                    xo_all_k = s2.xo[k]
                    xo = Mux(q == 1, xo_all_k[0], Mux(q == -1, xo_all_k[2], xo_all_k[1]))
                else:
                    xo = s2.xo[k]
                m.d.sync += [
                    s3.prod[k].eq(s2.prod[k][0] if nb == 1 else s2.prod[k][s2.sel[k]]),
                    s3.xo[k].eq(xo),
                    s3.lim_pos[k].eq(s2.th_pos - xo),
                    s3.lim_neg[k].eq(s2.minus_th_neg - xo),
                    s3.lim_hi[k].eq(m_hi + 1 - xo),
                    s3.lim_lo[k].eq(m_lo - xo),
                ]
            # s4: the sum (its low m_width bits) and the four comparisons.
            m.d.sync += [s4.first.eq(s3.first), s4.last.eq(s3.last), s4.g.eq(s3.g)]
            for k in lanes:
                prod = s3.prod[k]
                m.d.sync += [
                    s4.total[k].eq(prod + s3.xo[k]),
                    s4.pos[k].eq(prod >= s3.lim_pos[k]),
                    s4.neg[k].eq(prod <= s3.lim_neg[k] if self.bipolar else 0),
                    s4.hi[k].eq(prod >= s3.lim_hi[k]),
                    s4.lo[k].eq(prod < s3.lim_lo[k]),
                ]
            # s5 (the output register): saturated membrane and spike, written back from here.
            # Thresholds lie inside the membrane range, so firing on the unsaturated sum equals
            # firing on the saturated membrane.
            m.d.sync += [s5.first.eq(s4.first), s5.last.eq(s4.last), s5.g.eq(s4.g)]
            for k in lanes:
                m.d.sync += [
                    s5.state[k].m.eq(Mux(s4.hi[k], m_hi, Mux(s4.lo[k], m_lo, s4.total[k]))),
                    s5.state[k].q.eq(Mux(s4.pos[k], 1, Mux(s4.neg[k], -1, 0))),
                ]

        m.d.comb += [self.o.valid.eq(v5), self.o.payload.first.eq(s5.first),
                     self.o.payload.last.eq(s5.last)]
        for k in lanes:
            m.d.comb += self.o.payload.q[k].eq(s5.state[k].q)
        return m
