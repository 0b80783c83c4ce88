"""Word2Spike retrieval on real words: quantised word codes stored in the associative memory,
queried with the codes decoded from their spike trains.

``python -m spikeforge.assoc_demo`` takes real word embeddings (all-MiniLM-L6-v2, 384
dimensions, 16-bit fixed point): by default the committed sample of
:mod:`spikeforge.word2spike` (256 frequent English words, no optional extra needed), or with
``--source cache`` the embedding cache the full Word2Spike benchmark writes (up to 12,121
words). Every word's absmean code is stored in :class:`~spikeforge.rtl.assoc.Assoc`
(``kind="ternary"``, ``D = 384``); each word is then sent through the encoder chain
(Poisson encoder, ``W`` ticks, and the maximum-likelihood spike-count decoder, exactly as the
``w2s_chain`` core runs it) and its decoded code is the query. A query is retrieved correctly
when its best match is the word's own code (or a word with an identical code). The golden
models answer every query; ``--rtl N`` also runs the first ``N`` queries through the RTL
associative memory in the Amaranth simulator and checks it equals the golden answer.

Results go to ``benchmarks/word2spike/retrieval.json`` (``--out`` elsewhere); the table is in
``docs/cores/assoc.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_WS", "RESULTS", "load_words", "retrieve", "rtl_retrieve", "run", "main"]

#: Windows swept by default (ticks per word).
DEFAULT_WS = (10, 25, 50, 100, 200, 500)
RESULTS = Path("benchmarks/word2spike/retrieval.json")
_CHUNK = 512


def load_words(source="sample", n_words=None):
    """``(words, e_int, e_width)``: real word embeddings in fixed point.

    ``source="sample"``: the committed sample (:data:`spikeforge.word2spike.SAMPLE`);
    ``"cache"``: the embedding cache of ``spikeforge word2spike`` (``$SPIKEFORGE_CACHE``),
    converted with :func:`spikeforge.word2spike.to_fixed` at 16 bits. ``n_words``: the first
    ``n_words`` words (default all).
    """
    from spikeforge.word2spike import MODEL, load_sample, to_fixed
    if source == "sample":
        words, e_int, e_width = load_sample()
    elif source == "cache":
        from spikeforge.sim.harness import cache_dir
        path = cache_dir() / "word2spike" / f"embeddings-{MODEL}.npz"
        if not path.exists():
            raise ValueError(f"assoc_demo source 'cache' needs the embedding cache {path}, "
                             f"written by `spikeforge word2spike`")
        with np.load(path, allow_pickle=False) as z:
            words, emb = z["words"].tolist(), z["embeddings"]
        e_width = 16
        e_int = to_fixed(emb, e_width)
    else:
        raise ValueError(f"assoc_demo parameter 'source' must be 'sample' or 'cache', "
                         f"not {source!r}")
    if n_words is not None:
        if isinstance(n_words, bool) or not isinstance(n_words, int) or not \
                1 <= n_words <= len(words):
            raise ValueError(f"assoc_demo parameter 'n_words' must be in 1..{len(words)}, "
                             f"not {n_words!r}")
        words, e_int = words[:n_words], e_int[:n_words]
    return list(words), np.asarray(e_int), e_width


def _best(memory, queries, top_k):
    """Golden ``assoc`` answers for a memory too large for its dense int64 product: the same
    scores (exact in float32: integers of at most ``D`` in magnitude) and the same order
    (score, then lower index), in chunks of queries."""
    mem = memory.astype(np.float32)
    index = np.zeros((len(queries), top_k), dtype=np.int64)
    score = np.zeros((len(queries), top_k), dtype=np.int64)
    for a in range(0, len(queries), _CHUNK):
        s = queries[a:a + _CHUNK].astype(np.float32) @ mem.T
        idx = np.argsort(-s, axis=1, kind="stable")[:, :top_k]
        index[a:a + _CHUNK] = idx
        score[a:a + _CHUNK] = np.rint(np.take_along_axis(s, idx, axis=1))
    return index, score


def retrieve(e_int, *, W, p=4, e_width=16, seed=1, top_k=5):
    """Store the absmean codes of ``e_int`` ``(V, D)`` and query with their decoded codes.

    The codes go through the golden ``w2s_chain`` (:func:`spikeforge.word2spike.chain_decode`,
    one stream, encoder state carried from word to word); retrieval is the golden ``assoc``
    (ternary, ``K = V``). Returns a dict: ``codes``, ``decoded``, ``index`` and ``score``
    ``(V, top_k)``, and the fractions ``element_errors``, ``exact`` (words decoded without an
    error), ``top1`` and ``topk`` (the word's own code, or an identical one, is the best
    match / among the best ``top_k``), and ``distinct`` (distinct codes among the words).
    """
    from spikeforge.golden.assoc import assoc
    from spikeforge.word2spike import chain_decode
    codes, decoded = chain_decode(e_int, W=W, p=p, e_width=e_width, seed=seed)
    codes, decoded = codes.astype(np.int64), decoded.astype(np.int64)
    V, D = codes.shape
    top_k = min(top_k, V, 16)
    if V <= 2048:
        index, score, _ = assoc(codes, decoded, K=V, D=D, kind="ternary", N=1, alpha=1,
                                frac=1, banks=1, top_k=top_k)
    else:
        index, score = _best(codes, decoded, top_k)
    hit = (codes[index] == codes[:, None, :]).all(axis=2)
    return {"codes": codes, "decoded": decoded, "index": index, "score": score,
            "element_errors": float((decoded != codes).mean()),
            "exact": float((decoded == codes).all(axis=1).mean()),
            "top1": float(hit[:, 0].mean()), "topk": float(hit.any(axis=1).mean()),
            "distinct": int(len(np.unique(codes, axis=0)))}


def rtl_retrieve(codes, queries, *, banks=4, top_k=2, seed=1):
    """The RTL :class:`~spikeforge.rtl.assoc.Assoc` holding ``codes`` ``(K, D)`` answers
    ``queries`` ``(Q, D)`` in the Amaranth simulator (random valid gaps and backpressure).
    Returns ``(index, score)``, int64 ``(Q, top_k)``; ``K`` must be a multiple of ``banks``."""
    from amaranth.sim import Simulator
    from spikeforge.rtl.assoc import Assoc
    codes, queries = np.asarray(codes), np.asarray(queries)
    K, D = codes.shape
    dut = Assoc(patterns=codes, K=K, D=D, kind="ternary", N=1, alpha=1, frac=1, banks=banks,
                top_k=top_k)
    rng = np.random.default_rng(seed)
    out = []

    async def producer(ctx):
        for n, q in enumerate(queries.tolist()):
            while rng.random() < 0.3:
                await ctx.tick()
            ctx.set(dut.i.payload, {"q": q, "first": int(n == 0),
                                    "last": int(n == len(queries) - 1)})
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        while len(out) < len(queries):
            ready = int(rng.random() >= 0.3)
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and ready:
                out.append(([int(v) for v in payload.index], [int(v) for v in payload.score]))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return (np.array([o[0] for o in out], dtype=np.int64),
            np.array([o[1] for o in out], dtype=np.int64))


def run(*, source="sample", n_words=None, ws=DEFAULT_WS, p=4, seed=1, top_k=5, rtl=0,
        rtl_window=None, progress=lambda msg: None):
    """The sweep over ``ws``; with ``rtl > 0`` also the RTL check of ``rtl`` queries (at the
    window ``rtl_window``, default the largest of ``ws``) against a memory of the first
    ``max(rtl, 16)`` words rounded up to 4 banks. Returns the results dict."""
    t0 = time.monotonic()
    words, e_int, e_width = load_words(source, n_words)
    rows = []
    for W in ws:
        r = retrieve(e_int, W=W, p=p, e_width=e_width, seed=seed, top_k=top_k)
        rows.append({"W": W, **{k: r[k] for k in ("element_errors", "exact", "top1", "topk")}})
        progress(f"W={W:5d}: element errors {100 * r['element_errors']:5.1f}%, exact "
                 f"{100 * r['exact']:5.1f}%, top-1 {100 * r['top1']:5.1f}%, top-{top_k} "
                 f"{100 * r['topk']:5.1f}%")
    res = {"source": source, "model": "all-MiniLM-L6-v2", "words": len(words),
           "D": int(e_int.shape[1]), "e_width": e_width, "p": p, "seed": seed,
           "top_k": min(top_k, len(words), 16), "distinct_codes": r["distinct"],
           "first_words": words[:10], "rows": rows}
    if rtl:
        W = rtl_window or max(ws)
        K = min(len(words) // 4 * 4, max(16, -(-rtl // 4) * 4))
        n = min(rtl, K)
        r = retrieve(e_int[:K], W=W, p=p, e_width=e_width, seed=seed, top_k=2)
        index, score = rtl_retrieve(r["codes"], r["decoded"][:n], banks=4, top_k=2, seed=seed)
        equal = bool(np.array_equal(index, r["index"][:n]) and
                     np.array_equal(score, r["score"][:n]))
        res["rtl"] = {"W": W, "K": K, "queries": n, "banks": 4, "top_k": 2, "equal": equal}
        progress(f"RTL assoc, {n} queries against {K} words at W={W}: "
                 f"{'equal to golden' if equal else 'MISMATCH'}")
    res["seconds"] = round(time.monotonic() - t0, 1)
    return res


def markdown(res):
    """The results as a Markdown table."""
    k = res["top_k"]
    lines = [f"| W (ticks) | element errors | exact codes | top-1 retrieval | top-{k} retrieval |",
             "|---|---|---|---|---|"]
    for r in res["rows"]:
        lines.append(f"| {r['W']} | {100 * r['element_errors']:.1f} % | {100 * r['exact']:.1f} % "
                     f"| {100 * r['top1']:.1f} % | {100 * r['topk']:.1f} % |")
    return "\n".join(lines)


def _ints(text):
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, not {text!r}")
    if not vals or min(vals) < 1 or max(vals) > 65535:
        raise argparse.ArgumentTypeError(f"windows must be in 1..65535, not {text!r}")
    return vals


def main(argv=None):
    """Exit status 0 on success, 1 if the RTL differs from the golden model, 2 on bad input."""
    ap = argparse.ArgumentParser(prog="python -m spikeforge.assoc_demo",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="sample", help="'sample' (committed) or 'cache'")
    ap.add_argument("--words", type=int, default=None, help="first N words (default all)")
    ap.add_argument("--ws", type=_ints, default=list(DEFAULT_WS), help="windows to sweep")
    ap.add_argument("--p", type=int, default=4, help="chain lanes (default 4)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--rtl", type=int, default=0, metavar="N",
                    help="also run N queries through the RTL assoc (Amaranth simulator)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="results JSON")
    args = ap.parse_args(argv)
    say = lambda msg: print(msg, flush=True)  # noqa: E731
    try:
        res = run(source=args.source, n_words=args.words, ws=args.ws, p=args.p, seed=args.seed,
                  top_k=args.top_k, rtl=args.rtl, progress=say)
    except (ValueError, TypeError) as exc:
        print(f"spikeforge: error: {exc}", file=sys.stderr)
        return 2
    from spikeforge.sim.run import write_json_atomic
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, res)
    say(f"{res['words']} words ({res['source']}), {res['distinct_codes']} distinct codes:")
    say(markdown(res))
    say(f"wrote {args.out}")
    return 0 if res.get("rtl", {}).get("equal", True) else 1


if __name__ == "__main__":
    sys.exit(main())
