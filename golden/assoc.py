"""Golden model of the associative memory, and the Word2Spike retrieval demo built on it.

Integer NumPy, vectorised over queries and stored codes.
"""

from numbers import Integral

import numpy as np

from .rankorder import significance

__all__ = ["assoc", "assoc_scores", "assoc_write", "synthetic_codes", "word2spike_retrieval"]

_KINDS = ("rank", "ternary")


def _check_int(name, value, lo, hi):
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"assoc parameter {name!r} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"assoc parameter {name!r} must be in {lo}..{hi}, not {value}")
    return int(value)


def _codes(name, codes, kind, D, N):
    """``codes`` as int64 ``(n, width)``, checked against the code kind's value range."""
    if kind == "ternary":
        width, lo, hi = D, -2, 1
    else:
        width, lo, hi = N, 0, (1 << max(1, (D - 1).bit_length())) - 1
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] != width:
        raise ValueError(f"assoc input {name!r} must have shape (n, {width}), not {codes.shape}")
    if codes.size and codes.dtype.kind not in "iu":
        raise TypeError(f"assoc input {name!r} must be an integer array, not {codes.dtype}")
    codes = codes.astype(np.int64)
    if codes.size and (codes.min() < lo or codes.max() > hi):
        bad = codes[(codes < lo) | (codes > hi)][0]
        raise ValueError(f"assoc input {name!r} must hold values in {lo}..{hi}, not {bad}")
    return codes


def _check(D, kind, N, alpha, frac):
    if kind not in _KINDS:
        raise ValueError(f"assoc parameter 'kind' must be 'rank' or 'ternary', not {kind!r}")
    D = _check_int("D", D, 1 if kind == "ternary" else 2, 1024)
    N = _check_int("N", N, 1, min(D, 32) if kind == "rank" else 32)
    return D, N, significance(alpha, frac, N)


def assoc_scores(memory, queries, *, D, kind, N, alpha, frac):
    """Scores of every stored code for every query: ``(scores, err)``.

    ``kind="ternary"``: ``memory`` ``(K, D)`` and ``queries`` ``(Q, D)`` hold -1, 0, +1 or -2
    (the illegal 2-bit code 0b10, counted as 0); ``scores[q, c] = sum_j q_j * m_cj`` and
    ``err[q]`` is true iff query ``q`` holds a -2. ``kind="rank"``: rows are ``N`` indices
    in rank order; ``scores[q, c] = sum_{k,l: q_k == m_cl} s_k * s_l`` with
    ``s = significance(alpha, frac, N)``, and ``err`` is all false. Returns int64 ``(Q, K)``
    and bool ``(Q,)``.
    """
    D, N, s = _check(D, kind, N, alpha, frac)
    memory = _codes("memory", memory, kind, D, N)
    queries = _codes("queries", queries, kind, D, N)
    if kind == "ternary":
        err = (queries == -2).any(axis=1)
        q = np.where(queries == -2, 0, queries)
        mem = np.where(memory == -2, 0, memory)
        return q @ mem.T, err
    # Sum the significances per index value: the double sum over equal indices is then the
    # dot product of these vectors, duplicates included.
    span = 1 << max(1, (D - 1).bit_length())

    def spread(codes):
        out = np.zeros((codes.shape[0], span), dtype=np.int64)
        rows = np.broadcast_to(np.arange(codes.shape[0])[:, None], codes.shape)
        np.add.at(out, (rows, codes), np.broadcast_to(s, codes.shape))
        return out
    return spread(queries) @ spread(memory).T, np.zeros(len(queries), dtype=bool)


def assoc(memory, queries, *, K, D, kind, N, alpha, frac, banks, top_k):
    """The ``top_k`` best stored codes per query: ``(index, score, err)``.

    ``memory``: ``(K, D)`` ternary or ``(K, N)`` indices; ``queries`` likewise ``(Q, .)``.
    Scores as in :func:`assoc_scores`; results sorted by score, highest first, equal scores by
    lower index. ``banks`` is accepted for a signature uniform with the RTL (a power of two
    dividing ``K``) and does not change the result. Returns int64 ``(Q, top_k)`` twice and
    bool ``(Q,)``.
    """
    K = _check_int("K", K, 1, 65536)
    D, N, _ = _check(D, kind, N, alpha, frac)
    banks = _check_int("banks", banks, 1, 64)
    if banks & (banks - 1) or K % banks:
        raise ValueError(f"assoc parameter 'banks' must be a power of two dividing K={K}, "
                         f"not {banks}")
    top_k = _check_int("top_k", top_k, 1, min(K, 16))
    memory = np.asarray(memory)
    if memory.ndim != 2 or memory.shape[0] != K:
        raise ValueError(f"assoc input 'memory' must hold K={K} codes, not shape "
                         f"{memory.shape}")
    scores, err = assoc_scores(memory, queries, D=D, kind=kind, N=N, alpha=alpha, frac=frac)
    # A stable sort keeps equal scores in index order: ties go to the lower index.
    index = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    return index.astype(np.int64), np.take_along_axis(scores, index, axis=1), err


def assoc_write(memory, addr, codes):
    """A copy of ``memory`` after writing ``codes[n]`` to ``addr[n]`` in order (later wins)."""
    memory = np.array(memory, dtype=np.int64)
    addr = np.asarray(addr, dtype=np.int64).reshape(-1)
    codes = np.asarray(codes, dtype=np.int64).reshape(len(addr), *memory.shape[1:])
    if addr.size and (addr.min() < 0 or addr.max() >= len(memory)):
        raise ValueError(f"assoc write 'addr' must be in 0..{len(memory) - 1}")
    # Fancy assignment with repeated indices keeps the last one: the sequential semantics.
    memory[addr] = codes
    return memory


# The Word2Spike retrieval demo --------------------------------------------------------------

def synthetic_codes(V, D, *, seed=0, e_width=8):
    """``V`` ternary codes of dimension ``D``: absmean-quantised random integer embeddings.

    Stand-ins for quantised word embeddings (Gaussian elements, ``e_width``-bit signed),
    int8 ``(V, D)``.
    """
    from .absmean import absmean
    rng = np.random.default_rng(seed)
    hi = 2 ** (e_width - 1) - 1
    e = np.clip(np.rint(rng.normal(0, hi / 3, size=(V, D))), -hi - 1, hi).astype(np.int64)
    return absmean(e, e_width=e_width)


def word2spike_retrieval(codes, *, W, seed=0, p=8, rates=None, banks=1, top_k=1,
                         channel=None):
    """Store ternary ``codes`` in the associative memory; query it with their noisy copies.

    Each code is sent through a spike channel and decoded back to a ternary code, which is the
    query; retrieval is correct when the best match is the code itself. The default channel is
    Word2Spike's: the Poisson rate encoder (:func:`spikeforge.golden.poisson.poisson`, ``W``
    ticks, ``p`` lanes, ``seed``, per-tick thresholds ``rates`` = (+1, 0, -1), default 100 Hz,
    0 Hz, 50 Hz at 1 ms) and the spike-count decoder
    (:func:`spikeforge.golden.ratedecode.ratedecode`) at the maximum-likelihood split.
    ``channel(codes) -> decoded`` replaces it (e.g. for real spike data).

    ``codes``: int array ``(V, D)`` of -1, 0, +1. Returns a dict: ``decoded`` (the queries),
    ``index`` and ``score`` (``(V, top_k)``), ``exact`` (fraction of queries decoded without
    an element error), ``element_errors`` (fraction of wrong elements), ``accuracy`` (fraction
    whose best match is the stored code itself, or an identical stored code) and
    ``top_k_accuracy``.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.size == 0:
        raise ValueError(f"word2spike_retrieval 'codes' must be a non-empty (V, D) array, "
                         f"not shape {codes.shape}")
    if codes.dtype.kind not in "iu" or codes.min() < -1 or codes.max() > 1:
        raise ValueError("word2spike_retrieval 'codes' must hold -1, 0, +1")
    codes = codes.astype(np.int64)
    V, D = codes.shape
    if channel is None:
        from .poisson import DEFAULT_RATES, poisson
        from .ratedecode import ml_threshold, ratedecode
        r_pos, r_zero, r_neg = DEFAULT_RATES if rates is None else rates
        spikes = poisson(codes, p=p, W=W, seed=seed, rate_pos=r_pos, rate_zero=r_zero,
                         rate_neg=r_neg)
        C = ml_threshold(W, r_pos, r_neg)
        decoded = ratedecode(spikes, C=C, count_width=max(1, W.bit_length()))
    else:
        decoded = channel(codes)
    decoded = np.asarray(decoded).astype(np.int64)
    if decoded.shape != codes.shape:
        raise ValueError(f"word2spike_retrieval channel must return shape {codes.shape}, "
                         f"not {decoded.shape}")
    K = V
    while K % banks:
        banks //= 2
    index, score, _ = assoc(codes, decoded, K=K, D=D, kind="ternary", N=1, alpha=1, frac=1,
                            banks=banks, top_k=min(top_k, V, 16))
    hit = (codes[index] == codes[:, None, :]).all(axis=2)
    return {
        "decoded": decoded, "index": index, "score": score,
        "exact": float((decoded == codes).all(axis=1).mean()),
        "element_errors": float((decoded != codes).mean()),
        "accuracy": float(hit[:, 0].mean()),
        "top_k_accuracy": float(hit.any(axis=1).mean()),
    }
