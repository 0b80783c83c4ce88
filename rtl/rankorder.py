"""N-of-M rank-order encoder: a vector in, the order of its N largest (or earliest) elements out.

The equations and the parameter rules are on :class:`RankOrder`.
"""

from numbers import Integral

from amaranth.hdl import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RankOrder", "RANKORDER_PARAMS", "check_rankorder_params", "significance_table"]

#: Names of the rank-order parameters, in the order they are validated.
RANKORDER_PARAMS = ("M", "N", "width", "order", "alpha", "frac", "outputs")

ORDERS = ("earliest", "largest")
OUTPUTS = ("both", "indices", "significance")


def _int(name, value, lo, hi, rule=None):
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"RankOrder parameter {name!r} must be an integer, not {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"RankOrder parameter {name!r} must be in {lo}..{hi}"
                         f"{rule or ''}, not {value}")
    return value


def _choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"RankOrder parameter {name!r} must be one of "
                         f"{', '.join(map(repr, choices))}, not {value!r}")
    return value


def check_rankorder_params(**params):
    """Validate a full rank-order parameter set; return it normalised to plain ints and strs.

    Raises :exc:`TypeError` or :exc:`ValueError` naming the parameter and the bad value.
    """
    missing = [name for name in RANKORDER_PARAMS if name not in params]
    if missing:
        raise TypeError(f"RankOrder parameters missing: {', '.join(missing)}")
    unknown = sorted(set(params) - set(RANKORDER_PARAMS))
    if unknown:
        raise TypeError(f"RankOrder has no parameter {unknown[0]!r}")
    out = {}
    out["M"] = M = _int("M", params["M"], 2, 64)
    out["N"] = _int("N", params["N"], 1, M, f" (N <= M={M})")
    out["width"] = _int("width", params["width"], 1, 24)
    out["order"] = _choice("order", params["order"], ORDERS)
    out["frac"] = frac = _int("frac", params["frac"], 1, 16)
    out["alpha"] = _int("alpha", params["alpha"], 1, 2 ** frac - 1,
                        f" (alpha/2^frac in (0, 1) with frac={frac})")
    out["outputs"] = _choice("outputs", params["outputs"], OUTPUTS)
    return out


def significance_table(alpha, frac, n):
    """``[floor((alpha/2^frac)^k * 2^frac) for k in range(n)]``, exact, as Python ints."""
    return [2 ** frac] + [alpha ** k >> (frac * (k - 1)) for k in range(1, n)]


def _tree_sum(terms):
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


class RankOrder(wiring.Component):
    """Rank-order code of an ``M``-element vector, one vector per beat.

    Element ``i`` has rank ``r_i`` = the number of elements that come before it: for
    ``order="largest"``, elements ``j`` with ``x_j > x_i``, or ``x_j == x_i`` and ``j < i``; for
    ``order="earliest"`` (spike latencies), ``x_j < x_i``, or ``x_j == x_i`` and ``j < i``. Ties
    go to the lower index, so the ranks are a permutation of ``0..M-1``. The code is::

        idx[k] = the i with r_i == k                          for k = 0..N-1
        sig[i] = floor(alpha^r_i * 2^frac) if r_i < N else 0  (alpha = alpha/2^frac)

    The significances are constants computed offline, exactly (``2^frac`` at rank 0, then
    ``alpha^k >> frac*(k-1)``); ranks deep enough may round to 0.

    Parameters
    ----------
    M : int
        Vector length, 2..64. The ranking takes ``M*(M-1)/2`` ``width``-bit comparators.
    N : int
        Code size, 1..M.
    width : int
        Element width, 1..24: signed for ``order="largest"``, unsigned for ``"earliest"`` (a
        latency; a neuron that never fired should carry the largest value, ``2^width - 1``).
    order : str
        ``"largest"`` (largest value first) or ``"earliest"`` (smallest latency first).
    alpha, frac : int
        Significance ratio ``alpha/2^frac`` in (0, 1): ``frac`` in 1..16, ``alpha`` in
        ``1..2^frac - 1``.
    outputs : str
        Output fields: ``"both"``, ``"indices"`` (``idx`` only) or ``"significance"`` (``sig``
        only).

    Members
    -------
    i : ``In(stream.Signature(StructLayout({"x": ArrayLayout(signed(width) or unsigned(width), M), "first": 1, "last": 1})))``
        One vector per beat. ``first``/``last`` only travel to the output.
    o : ``Out(stream.Signature(StructLayout({"idx": ArrayLayout(range(M), N), "sig": ArrayLayout(unsigned(frac+1), M), "first": 1, "last": 1})))``
        One code per input beat, in order (``idx`` or ``sig`` absent as ``outputs`` says).

    Latency is :attr:`latency` = 3 cycles from an input handshake to ``o.valid``; throughput is
    one vector per cycle. The pipeline stalls as a whole while ``o.valid & ~o.ready``;
    ``i.ready`` depends only on the output handshake. Reset empties the pipeline; there is no
    other state. Inputs are plain integers: there is no illegal input code.
    """

    #: Cycles from an input handshake to the output beat being valid.
    latency = 3

    def __init__(self, **params):
        params = check_rankorder_params(**params)
        self.params = params
        for key, value in params.items():
            setattr(self, key, value)
        x_shape = signed(self.width) if self.order == "largest" else unsigned(self.width)
        fields = {}
        if self.outputs in ("both", "indices"):
            fields["idx"] = data.ArrayLayout(range(self.M), self.N)
        if self.outputs in ("both", "significance"):
            fields["sig"] = data.ArrayLayout(unsigned(self.frac + 1), self.M)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "x": data.ArrayLayout(x_shape, self.M), "first": 1, "last": 1}))),
            "o": Out(stream.Signature(data.StructLayout({**fields, "first": 1, "last": 1}))),
        })

    def elaborate(self, platform):
        m = Module()
        M, N = self.M, self.N
        x = self.i.payload.x

        advance = Signal()
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready), self.i.ready.eq(advance)]

        # s1: one comparator per pair a < b; bit set means a comes before b.
        pairs = [(a, b) for a in range(M) for b in range(a + 1, M)]
        before = Signal(len(pairs))
        v1, f1, l1 = (Signal(name=n) for n in ("v1", "f1", "l1"))
        with m.If(advance):
            m.d.sync += [v1.eq(self.i.valid), f1.eq(self.i.payload.first),
                         l1.eq(self.i.payload.last)]
            for n, (a, b) in enumerate(pairs):
                m.d.sync += before[n].eq(x[a] >= x[b] if self.order == "largest"
                                         else x[a] <= x[b])

        # s2: rank of each element = how many elements come before it.
        pos = {pair: n for n, pair in enumerate(pairs)}
        ranks = [Signal(range(M), name=f"rank{i}") for i in range(M)]
        v2, f2, l2 = (Signal(name=n) for n in ("v2", "f2", "l2"))
        with m.If(advance):
            m.d.sync += [v2.eq(v1), f2.eq(f1), l2.eq(l1)]
            for i in range(M):
                beaten = ([before[pos[j, i]] for j in range(i)]
                          + [~before[pos[i, j]] for j in range(i + 1, M)])
                m.d.sync += ranks[i].eq(_tree_sum([b.as_unsigned() for b in beaten]))

        # s3, the output register: ranks are a permutation, so each idx[k] is a one-hot OR.
        table = significance_table(self.alpha, self.frac, N) + [0] * (M - N)
        with m.If(advance):
            m.d.sync += [self.o.valid.eq(v2), self.o.payload.first.eq(f2),
                         self.o.payload.last.eq(l2)]
            if self.outputs in ("both", "indices"):
                for k in range(N):
                    m.d.sync += self.o.payload.idx[k].eq(
                        _or_all([Mux(ranks[i] == k, i, 0) for i in range(M)]))
            if self.outputs in ("both", "significance"):
                lookup = Array(C(t, self.frac + 1) for t in table)
                for i in range(M):
                    m.d.sync += self.o.payload.sig[i].eq(lookup[ranks[i]])
        return m


def _or_all(terms):
    while len(terms) > 1:
        terms = [terms[i] | terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]
