"""Golden model of the Word2Spike chain: absmean -> Poisson encoder -> rate decoder."""

from .absmean import absmean
from .poisson import DEFAULT_RATES, poisson
from .ratedecode import ratedecode

__all__ = ["w2s_chain"]


def w2s_chain(e, lengths=None, *, p, e_width, W, C, count_width, seed=0,
              rate_pos=DEFAULT_RATES[0], rate_zero=DEFAULT_RATES[1], rate_neg=DEFAULT_RATES[2],
              state=None, return_stages=False):
    """Quantise the rows of ``e``, encode them as ``W`` ticks of spikes, decode the counts.

    ``e``: integer array ``(V, D)``; ``lengths``: ``(V,)`` in 1..D (default D). The other
    parameters are those of :func:`~spikeforge.golden.absmean.absmean`,
    :func:`~spikeforge.golden.poisson.poisson` and
    :func:`~spikeforge.golden.ratedecode.ratedecode`. Returns the decoded int8 ``(V, D)``, and
    with ``return_stages`` the tuple ``(quantised, spikes, decoded)``.
    """
    q = absmean(e, lengths, e_width=e_width)
    spikes = poisson(q, lengths, p=p, W=W, seed=seed, rate_pos=rate_pos, rate_zero=rate_zero,
                     rate_neg=rate_neg, state=state)
    decoded = ratedecode(spikes, lengths, C=C, count_width=count_width)
    if return_stages:
        return q, spikes, decoded
    return decoded
