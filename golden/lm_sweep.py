"""Architecture sweep for the LUT language model: held-out bits per byte against memory and
cycles per token, for a few shapes of the one-block model of :mod:`.lut_train`.

Every configuration is trained for the same number of SGD steps on the same number of
next-byte targets per step (``batch * 2 * ctx = 1024``), with the same seed, on the shipped text
(last tenth held out). Each row records float and integer bits per byte, the table bits and
DP16KD blocks (:func:`.lut_train.memory_budget`), and the estimated cycles per token at the
config's own context and at context 64 (:func:`.lut_train.cycles_per_token`).

Run ``python -m spikeforge.golden.lm_sweep [--steps N] [--only NAME ...]``; results go to
``benchmarks/lm/sweep.json`` (rewritten after every run, earlier rows of other names kept) and
the plot to ``docs/lm_sweep.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from . import lut_train as lt

__all__ = ["SWEEP", "TOKENS_PER_STEP", "sweep_one", "plot", "table", "main"]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "lm" / "sweep.json"
DEFAULT_PLOT = ROOT / "docs" / "lm_sweep.png"
TOKENS_PER_STEP = 1024
BASE = lt.ModelConfig()

#: name -> (config, positional codes). The base shape (ModelConfig()) at contexts 16, 32 and
#: 64 with random and with octave positional codes, then variations at the best context that
#: move table bits between the attention, the width of the residual stream, the FFN, the
#: unembedder and the value width (all within 2.5 Mbit).
SWEEP = {
    "base-ctx16": (BASE, "random"),
    "base-ctx32": (lt.ModelConfig(ctx=32), "random"),
    "base-ctx64": (lt.ModelConfig(ctx=64), "random"),
    "base-ctx16-log": (BASE, "log"),
    "base-ctx32-log": (lt.ModelConfig(ctx=32), "log"),
    "base-ctx64-log": (lt.ModelConfig(ctx=64), "log"),
    "n20-ctx16-log": (lt.ModelConfig(n=20), "log"),
    "ffn-big-ctx16-log": (lt.ModelConfig(ffn_n_t=16, ffn_n_c=7), "log"),
    "att-small-ffn-big-ctx16-log": (lt.ModelConfig(att_n_c=3, ffn_n_t=16, ffn_n_c=6), "log"),
    "w6-out12-ctx16-log": (lt.ModelConfig(w_width=6, out_n_t=12), "log"),
}


def sweep_one(name, config, text, *, steps, pe="random", seed=0, log=None) -> dict:
    """Train ``config`` for ``steps`` steps and measure it; one result row."""
    train_text, test_text = lt.split_text(text)
    batch = max(1, TOKENS_PER_STEP // (2 * config.ctx))
    start = time.monotonic()
    model = lt.train(train_text, config, steps=steps, batch=batch, seed=seed, pe=pe, log=log)
    seconds = time.monotonic() - start
    budget = lt.memory_budget(config)
    return {
        "name": name, "config": asdict(config), "pe": pe, "steps": steps, "batch": batch,
        "seed": seed,
        "train_seconds": round(seconds, 1),
        "unigram_bpb": round(lt.unigram_bits_per_byte(train_text, test_text), 4),
        "float_bpb": round(lt.bits_per_byte(model, test_text), 4),
        "int_bpb": round(lt.bits_per_byte(lt.quantise(model, train_text[-lt.CALIBRATE_BYTES:]),
                                          test_text), 4),
        "int_bpb_p9999": round(lt.bits_per_byte(lt.quantise(model), test_text), 4),
        "table_bits": budget["bits"], "ebr": budget["ebr"],
        "ebr_by_memory": {k: m["ebr"] for k, m in budget["memories"].items()},
        "cycles_per_token": lt.cycles_per_token(config),
        "cycles_per_token_ctx64": lt.cycles_per_token(config, 64),
    }


def plot(rows, path):
    """Integer bits per byte against table bits, one labelled point per row."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for k, r in enumerate(rows):
        x, y = r["table_bits"] / 1e6, r["int_bpb"]
        ax.scatter(x, y, color="C0")
        # Several shapes share one table size: alternate labels above and below, and put a
        # label on the left when a point just right of it has about the same bits per byte.
        left = any(0 < o["table_bits"] / 1e6 - x < 0.3 and abs(o["int_bpb"] - y) < 0.03
                   for o in rows)
        ax.annotate(r["name"], (x, y), fontsize=7, ha="right" if left else "left",
                    xytext=(-4 if left else 4, 3 if k % 2 else -10), textcoords="offset points")
    ax.set_xlabel("table bits (Mbit)")
    ax.set_ylabel("held-out bits per byte (integer model)")
    ax.set_title(f"LUT language model sweep, {rows[0]['steps']} steps of "
                 f"{TOKENS_PER_STEP} targets")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(rows) -> str:
    """The sweep as a Markdown table (for docs/lm_training.md)."""
    lines = ["| name | ctx | pe | n | att n_t/n_c/p | ffn n_t/n_c | out n_t/n_c | w | table bits "
             "| EBR | cycles/token (own ctx / ctx 64) | float bpb | integer bpb |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c = r["config"]
        lines.append(f"| {r['name']} | {c['ctx']} | {r['pe']} | {c['n']} | "
                     f"{c['att_n_t']}/{c['att_n_c']}/{c['att_p']} | "
                     f"{c['ffn_n_t']}/{c['ffn_n_c']} | "
                     f"{c['out_n_t']}/{c['out_n_c']} | {c['w_width']} | {r['table_bits']:,} | "
                     f"{r['ebr']} | {r['cycles_per_token']} / {r['cycles_per_token_ctx64']} | "
                     f"{r['float_bpb']:.3f} | {r['int_bpb']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spikeforge.golden.lm_sweep",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--text", default=str(lt.DEFAULT_TEXT))
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", choices=sorted(SWEEP), default=None)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--plot", default=str(DEFAULT_PLOT))
    parser.add_argument("--table", action="store_true",
                        help="print the stored results as a Markdown table and stop")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.table:
        print(table(json.loads(out.read_text())["runs"]))
        return 0
    path = Path(args.text)
    if not path.is_file():
        print(f"lm_sweep: error: no training text at {path}", file=sys.stderr)
        return 2
    text = path.read_bytes()
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(out.read_text())["runs"] if out.is_file() else []
    for name in args.only or SWEEP:
        config, pe = SWEEP[name]
        row = sweep_one(name, config, text, steps=args.steps, pe=pe, seed=args.seed)
        print(json.dumps(row), flush=True)
        rows = [r for r in rows if r["name"] != name] + [row]
        rows.sort(key=lambda r: list(SWEEP).index(r["name"]) if r["name"] in SWEEP else 99)
        out.write_text(json.dumps({"text": path.name, "tokens_per_step": TOKENS_PER_STEP,
                                   "runs": rows}, indent=2) + "\n")
    if args.plot and rows:
        plot(rows, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
