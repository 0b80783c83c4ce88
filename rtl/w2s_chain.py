"""The Word2Spike encoder chain: absmean quantiser -> Poisson encoder -> rate decoder."""

from amaranth.hdl import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .absmean import AbsMean, check_absmean_params
from .poisson import DEFAULT_RATES, Poisson, check_poisson_params, lutram_latency
from .ratedecode import RateDecode, check_ratedecode_params
from .vectors import vector_layout

__all__ = ["W2SChain", "check_w2s_chain_params"]


def check_w2s_chain_params(*, d_max, p, e_width, W, seed=0, rate_pos=DEFAULT_RATES[0],
                           rate_zero=DEFAULT_RATES[1], rate_neg=DEFAULT_RATES[2], C=None,
                           count_width=None):
    """Validate a chain parameter set with each stage's own rules; fill in ``C`` and
    ``count_width`` as :func:`~spikeforge.rtl.ratedecode.check_ratedecode_params` does."""
    out = check_absmean_params(d_max=d_max, p=p, e_width=e_width)
    out.update(check_poisson_params(d_max=d_max, p=p, W=W, seed=seed, rate_pos=rate_pos,
                                    rate_zero=rate_zero, rate_neg=rate_neg))
    dec = check_ratedecode_params(d_max=d_max, p=p, W=W, C=C, count_width=count_width,
                                  rate_pos=rate_pos, rate_neg=rate_neg)
    out.update(C=dec["C"], count_width=dec["count_width"])
    return out


class W2SChain(wiring.Component):
    """Quantise, encode and decode: ``e`` vectors in, their ternary reconstruction out.

    :class:`~spikeforge.rtl.absmean.AbsMean` feeds :class:`~spikeforge.rtl.poisson.Poisson`,
    which feeds :class:`~spikeforge.rtl.ratedecode.RateDecode`, stream to stream; the stages
    share ``d_max`` and ``p``, the encoder and decoder ``W`` and the rates. Parameters are those
    of the three stages (see :func:`check_w2s_chain_params`); ``i`` is the quantiser's input
    and ``o`` the decoder's output. The output equals the quantiser's output wherever every
    element's spike count falls on the right side of ``C`` (for ``W`` large enough, nearly
    always).

    Timing: the stages run concurrently (the decoder's read-out overlaps the encoder's next
    load), so in steady state a vector of ``G`` beats costs the slowest stage's time,
    :meth:`cycles_per_vector` ``= max(2*G + absmean overhead, (W + 1)*G + 2*L + 3)`` cycles,
    and its first decoded beat is valid :meth:`latency` ``= absmean latency + (W + 1)*G + 3*L
    + 7`` cycles after its last input handshake (no gaps or backpressure), with
    ``L = lutram_latency(d_max/p)`` (1 up to 16 beats, 2 up to 64, 3 up to 256, 4 up to
    1024). The stages are built in :meth:`elaborate`.
    """

    def __init__(self, *, d_max, p, e_width, W, seed=0, rate_pos=DEFAULT_RATES[0],
                 rate_zero=DEFAULT_RATES[1], rate_neg=DEFAULT_RATES[2], C=None,
                 count_width=None):
        params = check_w2s_chain_params(d_max=d_max, p=p, e_width=e_width, W=W, seed=seed,
                                        rate_pos=rate_pos, rate_zero=rate_zero,
                                        rate_neg=rate_neg, C=C, count_width=count_width)
        self.params = params
        super().__init__({
            "i": In(stream.Signature(vector_layout("e", signed(params["e_width"]), params["p"]))),
            "o": Out(stream.Signature(vector_layout("q", signed(2), params["p"]))),
        })

    def _absmean_timing(self):
        # AbsMean.sum_latency = 1 + log2(p) and divide_cycles = e_width - 1.
        core = self.params["e_width"] - 1 + 1 + (self.params["p"] - 1).bit_length()
        return core + 1, core + 5               # overhead_cycles, latency

    def cycles_per_vector(self, d):
        """Steady-state cycles per vector of ``d`` elements without gaps or backpressure."""
        G = -(-d // self.params["p"])
        L = lutram_latency(self.params["d_max"] // self.params["p"])
        return max(2 * G + self._absmean_timing()[0], (self.params["W"] + 1) * G + 2 * L + 3)

    def latency(self, d):
        """Cycles from a vector's last input handshake to its first decoded beat being valid."""
        G = -(-d // self.params["p"])
        # The quantiser's first beat, its other G-1 beats, the encoder's W*G-1 beats after its
        # own first one, and the decoder's latency.
        L = lutram_latency(self.params["d_max"] // self.params["p"])
        # Poisson.latency = 3 + L, RateDecode.latency = 2*L + 6.
        return (self._absmean_timing()[1] + G - 1 + 3 + L + self.params["W"] * G - 1
                + 2 * L + 6)

    def elaborate(self, platform):
        m = Module()
        par = self.params
        m.submodules.absmean = absmean = AbsMean(d_max=par["d_max"], p=par["p"],
                                                 e_width=par["e_width"])
        m.submodules.poisson = poisson = Poisson(
            d_max=par["d_max"], p=par["p"], W=par["W"], seed=par["seed"],
            rate_pos=par["rate_pos"], rate_zero=par["rate_zero"], rate_neg=par["rate_neg"])
        m.submodules.ratedecode = ratedecode = RateDecode(
            d_max=par["d_max"], p=par["p"], W=par["W"], C=par["C"],
            count_width=par["count_width"], rate_pos=par["rate_pos"], rate_neg=par["rate_neg"])
        wiring.connect(m, wiring.flipped(self.i), absmean.i)
        wiring.connect(m, absmean.o, poisson.i)
        wiring.connect(m, poisson.o, ratedecode.i)
        wiring.connect(m, ratedecode.o, wiring.flipped(self.o))
        return m
