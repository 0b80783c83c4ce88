"""Golden model of the spiking sequence machine (Bose/Furber N-of-M SDM), and its benchmark.

Integer NumPy; steps are sequential, each step vectorised over neurons and decoders. Every
significance product ``alpha^a * alpha^b`` is taken in the log domain as ``alpha^(a+b)``, so
the weights are stored as exponents and the one-shot max write is a min of exponents.
"""

from numbers import Integral

import numpy as np

from .rankorder import significance

__all__ = ["SEQMACHINE_PARAMS", "DEFAULTS", "benchmark_table", "check_seqmachine_params",
           "exponent_width", "seqmachine", "seqmachine_benchmark", "seqmachine_cycles",
           "seqmachine_recall", "seqmachine_tables"]

#: Names of the sequence-machine parameters, in the order they are validated.
SEQMACHINE_PARAMS = ("S", "M", "N", "K", "W", "w", "a", "alpha", "frac", "lam", "seed")
#: Block RAM of an LFE5U-85F: 208 DP16KD of 18 Kbit.
_BRAM_BITS = 208 * 18 * 1024


def _check_int(name, value, lo, hi, rule=""):
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"seqmachine parameter {name!r} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"seqmachine parameter {name!r} must be in {lo}..{hi}{rule}, "
                         f"not {value}")
    return int(value)


def exponent_width(w, N):
    """Bits of a stored weight exponent: ``0..(w-1)+(N-1)``, plus all-ones for "none"."""
    return (w + N - 1).bit_length()


def check_seqmachine_params(**params):
    """Validate a full parameter set; return it normalised to plain ints.

    Raises :exc:`TypeError` or :exc:`ValueError` naming the parameter and the bad value.
    """
    missing = [name for name in SEQMACHINE_PARAMS if name not in params]
    if missing:
        raise TypeError(f"seqmachine parameters missing: {', '.join(missing)}")
    unknown = sorted(set(params) - set(SEQMACHINE_PARAMS))
    if unknown:
        raise TypeError(f"seqmachine has no parameter {unknown[0]!r}")
    out = {}
    out["S"] = _check_int("S", params["S"], 2, 1024)
    out["M"] = M = _check_int("M", params["M"], 2, 128)
    out["N"] = N = _check_int("N", params["N"], 1, M, f" (N <= M={M})")
    out["K"] = _check_int("K", params["K"], 1, M, f" (K <= M={M})")
    out["W"] = W = _check_int("W", params["W"], 1, 4096)
    out["w"] = w = _check_int("w", params["w"], 1, min(W, 32), f" (w <= min(W={W}, 32))")
    out["a"] = _check_int("a", params["a"], 1, M, f" (a <= M={M})")
    out["frac"] = frac = _check_int("frac", params["frac"], 1, 16)
    out["alpha"] = _check_int("alpha", params["alpha"], 1, 2 ** frac - 1,
                              f" (alpha/2^frac in (0, 1) with frac={frac})")
    out["lam"] = _check_int("lam", params["lam"], 0, 2 ** frac,
                            f" (lam/2^frac in [0, 1] with frac={frac})")
    out["seed"] = _check_int("seed", params["seed"], 0, 2 ** 32 - 1)
    bits = W * M * exponent_width(w, N)
    if bits > _BRAM_BITS:
        raise ValueError(f"seqmachine parameter 'W' is too large for the memory: {W} rows of "
                         f"{M} weights of {exponent_width(w, N)} bits need {bits} bits, more "
                         f"than the {_BRAM_BITS} bits of block RAM of an LFE5U-85F")
    return {name: out[name] for name in SEQMACHINE_PARAMS}


def seqmachine_tables(*, S, M, N, W, a, seed, **_):
    """The machine's fixed random wiring, drawn from ``seed``.

    Returns a dict of int64 arrays: ``codes`` ``(S, N)``, the N-of-M code of each symbol as
    its neuron indices in rank order (distinct within a code); ``conn`` ``(W, M)`` of 0/1,
    decoder ``i`` listening to ``a`` context neurons; ``perm`` ``(M,)``, the permutation
    through which the old context feeds back (context neuron ``j`` hears old neuron
    ``perm[j]``).
    """
    rng = np.random.default_rng([int(seed), 0x5E9])
    codes = np.argsort(rng.random((S, M)), axis=1)[:, :N]
    conn = np.zeros((W, M), dtype=np.int64)
    chosen = np.argsort(rng.random((W, M)), axis=1)[:, :a]
    np.put_along_axis(conn, chosen, 1, axis=1)
    perm = rng.permutation(M)
    return {"codes": codes.astype(np.int64), "conn": conn, "perm": perm.astype(np.int64)}


def _ranks(values, n, none):
    """Rank of each element among the ``n`` largest positive ones (ties to the lower index);
    ``none`` for the rest. Also returns the chosen indices in rank order."""
    order = np.argsort(-values, kind="stable")[:n]
    order = order[values[order] > 0]
    ranks = np.full(values.shape, none, dtype=np.int64)
    ranks[order] = np.arange(len(order))
    return ranks, order


def seqmachine(symbols, learn, first, clear, *, S, M, N, K, W, w, a, alpha, frac, lam, seed,
               tables=None):
    """Run the sequence machine over a stream of symbols; returns ``(pred, score, err)``.

    Per step, with symbol ``x`` (ranks below are "none" where a neuron did not fire, and every
    selection keeps the largest positive values, ties to the lower index)::

        if clear: every weight exponent E[i, j] = none
        if first: the context and the previous address are empty
        in_j  = k where codes[x][k] == j                         (the N-of-M code of x)
        if learn and there is a previous address:                (one-shot max write)
            E[i, j] = min(E[i, j], r_i + in_j)  for each previous decoder i of rank r_i
        c_j   = floor(lam * s[ctx[perm[j]]] / 2^frac) + s[in_j]   (old context, new input)
        ctx   = ranks of the top K of c
        act_i = sum_j conn[i, j] * s[ctx_j]                      (address decoders)
        r     = ranks of the top w of act                        (the address, kept)
        out_j = sum_{i in address} s[r_i + E[i, j]]              (read)
        u     = ranks of the top N of out
        score_y = sum_k s[u[codes[y][k]] + k]  for every symbol y
        pred  = the y of the highest score (lowest y on ties; 0 if nothing was recalled)

    with ``s[k] = floor((alpha/2^frac)^k * 2^frac)`` and ``s[none] = 0``. ``pred`` is the
    prediction of the next symbol. ``symbols``: ints in ``0..2^b-1`` with ``b`` the bits of
    ``S-1``; a symbol ``>= S`` (possible on the wire) has no code: no input neuron fires, and
    ``err`` is set for that step. ``learn``, ``first``, ``clear``: 0/1, all of length ``T``
    (step 0 always starts a sequence). ``tables``: the wiring (default
    :func:`seqmachine_tables` of ``seed``). Returns int64 ``(T,)`` three times.
    """
    p = check_seqmachine_params(S=S, M=M, N=N, K=K, W=W, w=w, a=a, alpha=alpha, frac=frac,
                                lam=lam, seed=seed)
    tab = seqmachine_tables(**p) if tables is None else tables
    codes, conn, perm = tab["codes"], tab["conn"], tab["perm"]
    symbols = np.asarray(symbols, dtype=np.int64).reshape(-1)
    T = len(symbols)
    flags = [np.asarray(f, dtype=bool).reshape(-1) for f in (learn, first, clear)]
    for name, f in zip(("learn", "first", "clear"), flags):
        if f.shape != (T,):
            raise ValueError(f"seqmachine input {name!r} must have shape ({T},), not {f.shape}")
    learn, first, clear = flags
    top = 2 ** max(1, (S - 1).bit_length()) - 1
    if T and (symbols.min() < 0 or symbols.max() > top):
        raise ValueError(f"seqmachine input 'symbols' must be in 0..{top}")

    # Significances with "none" as an index past the end: any sum with none reads 0.
    none = max(K, 2 * w + N - 2, 2 * N - 1)
    s = np.zeros(3 * none + 1, dtype=np.int64)
    s[:none] = significance(alpha, frac, none)
    s_lam = (lam * s) >> frac
    e_none = none
    E = np.full((W, M), e_none, dtype=np.int64)
    ctx = np.full(M, none, dtype=np.int64)
    addr = np.zeros(0, dtype=np.int64)
    pred = np.zeros(T, dtype=np.int64)
    score = np.zeros(T, dtype=np.int64)
    err = (symbols >= S).astype(np.int64)
    ranks_n = np.arange(N)
    for t in range(T):
        if clear[t]:
            E[:] = e_none
        if first[t] or t == 0:
            ctx[:] = none
            addr = addr[:0]
        inr = np.full(M, none, dtype=np.int64)
        if symbols[t] < S:
            inr[codes[symbols[t]]] = ranks_n
        if learn[t] and len(addr):
            fired = inr != none
            cand = np.arange(len(addr))[:, None] + inr[None, fired]
            E[np.ix_(addr, fired)] = np.minimum(E[np.ix_(addr, fired)], cand)
        c = s_lam[ctx[perm]] + s[inr]
        ctx, _ = _ranks(c, K, none)
        act = conn @ s[ctx]
        _, addr = _ranks(act, w, none)
        rows = E[addr]
        out = s[np.where(rows == e_none, none, np.arange(len(addr))[:, None] + rows)].sum(axis=0)
        u, _ = _ranks(out, N, none)
        scores = s[u[codes] + ranks_n[None, :]].sum(axis=1)
        pred[t] = np.argmax(scores)
        score[t] = scores[pred[t]]
    return pred, score, err


def seqmachine_cycles(learn, clear, *, S, M, N, K, W, w, **_):
    """Clock cycles the RTL spends on each step, from its input handshake to its result.

    ``2*M + K + W + w + N + S + 19``, plus ``W`` for a step with ``clear`` and ``w + 2`` for
    a step with ``learn``. Returns int64 ``(T,)``.
    """
    learn = np.asarray(learn, dtype=np.int64)
    clear = np.asarray(clear, dtype=np.int64)
    return 2 * M + K + W + w + N + S + 19 + W * clear + (w + 2) * learn


def seqmachine_recall(sequences, *, presentations=1, **params):
    """Learn each sequence online (``presentations`` passes), then recall it.

    For each sequence the memory is cleared, the sequence is presented with learning on, then
    presented again with learning off; recall step ``t`` is correct when the prediction made
    after symbol ``t`` is symbol ``t+1``. Returns the fraction of correct recall steps per
    sequence, float ``(len(sequences),)``.
    """
    tables = seqmachine_tables(**check_seqmachine_params(**params))
    acc = []
    for seq in sequences:
        seq = np.asarray(seq, dtype=np.int64)
        L = len(seq)
        symbols = np.tile(seq, presentations + 1)
        learn = np.repeat([1] * presentations + [0], L)
        first = np.tile(np.arange(L) == 0, presentations + 1)
        clear = np.arange(len(symbols)) == 0
        pred, _, _ = seqmachine(symbols, learn, first, clear, tables=tables, **params)
        recall = pred[-L:-1]
        acc.append(float((recall == seq[1:]).mean()) if L > 1 else 1.0)
    return np.array(acc)


def seqmachine_benchmark(lengths=(8, 16, 32, 64), Ws=(64, 128, 256, 512), *, trials=20,
                         seed=0, **params):
    """Mean recall accuracy of random sequences, by sequence length and memory size ``W``.

    Sequences are uniform random symbols (repeats included, so later symbols need their
    context). ``params`` override the machine (defaults: those of ``spikeforge sim
    seqmachine``); ``W`` and ``w`` are capped to fit. Returns ``{(length, W): accuracy}``.
    """
    base = dict(DEFAULTS, **params)
    rng = np.random.default_rng(seed)
    table = {}
    for W in Ws:
        p = dict(base, W=W, w=min(base["w"], W))
        for L in lengths:
            seqs = [rng.integers(p["S"], size=L) for _ in range(trials)]
            table[L, W] = float(seqmachine_recall(seqs, **p).mean())
    return table


def benchmark_table(table):
    """A :func:`seqmachine_benchmark` result as a Markdown table (rows: lengths, columns: W)."""
    lengths = sorted({L for L, _ in table})
    Ws = sorted({W for _, W in table})
    lines = ["| length \\ W | " + " | ".join(map(str, Ws)) + " |",
             "|---|" + "---|" * len(Ws)]
    lines += [f"| {L} | " + " | ".join(f"{100 * table[L, W]:.1f} %" for W in Ws) + " |"
              for L in lengths]
    return "\n".join(lines)


#: The parameters of ``spikeforge sim seqmachine``.
DEFAULTS = dict(S=16, M=32, N=4, K=8, W=128, w=4, a=8, alpha=230, frac=8, lam=240, seed=1)


if __name__ == "__main__":      # python -m spikeforge.golden.seqmachine: the docs' table
    print(benchmark_table(seqmachine_benchmark(lengths=(8, 16, 32, 64, 128),
                                               Ws=(32, 64, 128, 256, 512, 1024), trials=20)))
