"""``spikeforge lm``: train, run and evaluate the LUT language model.

    spikeforge lm train    [--text FILE] [--out DIR] [--minutes M | --steps N] [--seed S]
    spikeforge lm generate --prompt TEXT --bytes N [--backend golden|rtl] [--model DIR]
                           [--seed S] [--temperature T]
    spikeforge lm eval     [--model DIR] [--text FILE]

``generate`` is greedy unless ``--seed`` is given (then Gumbel-max sampling from the integer
logits with the seeded generator the RTL implements). ``--backend rtl`` runs the ``LM`` design
under cocotb/Verilator (built once per model, cached). Exit status: 0 success, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

__all__ = ["main", "generate_rtl"]


class _Usage(Exception):
    pass


def _model(path):
    from spikeforge.golden.lm import DEFAULT_MODEL_DIR, LMModelError, load_lm
    d = Path(path) if path else DEFAULT_MODEL_DIR
    if not path and not (d / "model.json").is_file():
        raise _Usage(f"no shipped model at {d}; train one with `spikeforge lm train --out DIR` "
                     f"and pass --model DIR")
    try:
        return load_lm(d), d
    except LMModelError as exc:
        raise _Usage(str(exc)) from None


def generate_rtl(model, prompt: bytes, n_bytes: int, *, sample=False, seed=0, noise=None,
                 gaps=False, progress=lambda m: None) -> bytes:
    """The bytes the ``LM`` RTL generates under Verilator after ``prompt``."""
    from spikeforge.golden.lm import position_cycles, prompt_beats
    from spikeforge.rtl.lm import LM
    from spikeforge.sim.harness import run_rtl
    core = LM.from_model(model, noise=noise)
    c = asdict(model.config)
    worst = position_cycles(c, c["ctx"], predict=True, timing=core.timing)
    beats = prompt_beats(prompt, n_bytes, sample=sample, seed=seed)
    res = run_rtl(core, {"i": beats}, {"o": n_bytes}, gaps=gaps, progress=progress,
                  max_cycles=worst * (len(prompt) + n_bytes + 2) * 3 + 10000)
    if res.timed_out or len(res.outputs["o"]) != n_bytes:
        raise RuntimeError(f"the RTL produced {len(res.outputs['o'])} of {n_bytes} bytes")
    return bytes(b["byte"] for b in res.outputs["o"])


def _text(args):
    from spikeforge.golden.lut_train import DEFAULT_TEXT
    path = Path(args.text) if args.text else DEFAULT_TEXT
    if not path.is_file():
        raise _Usage(f"no training text at {path}")
    return path.read_bytes()


def cmd_train(args):
    from spikeforge.golden import lut_train
    from spikeforge.golden.lm import DEFAULT_MODEL_DIR
    if args.minutes is not None and args.minutes <= 0:
        raise _Usage(f"--minutes must be positive, not {args.minutes}")
    if args.steps is not None and args.steps < 1:
        raise _Usage(f"--steps must be positive, not {args.steps}")
    # The shipped model's shape, when there is one.
    shipped = DEFAULT_MODEL_DIR / "model.json"
    config = (lut_train.ModelConfig(**json.loads(shipped.read_text())["config"])
              if shipped.is_file() else lut_train.ModelConfig())
    report = lut_train.run(_text(args), args.out, config=config,
                           seconds=(args.minutes or 8.0) * 60, steps=args.steps, seed=args.seed,
                           log=lambda m: print(m, flush=True))
    print(json.dumps(report, indent=2))
    print(f"model in {args.out}")
    return 0


def cmd_generate(args):
    from spikeforge.golden.lm import generate, noise_table
    if args.bytes < 1:
        raise _Usage(f"--bytes must be positive, not {args.bytes}")
    prompt = args.prompt.encode()
    if not prompt:
        raise _Usage("--prompt must not be empty")
    if args.temperature < 0:
        raise _Usage(f"--temperature must be non-negative, not {args.temperature}")
    model, _ = _model(args.model)
    sample = args.seed is not None
    seed = args.seed if sample else 0
    noise = noise_table(model.out_scale, args.temperature) if sample else None
    if args.backend == "golden":
        out = generate(model, prompt, args.bytes, sample=sample, seed=seed, noise=noise)
    else:
        out = generate_rtl(model, prompt, args.bytes, sample=sample, seed=seed, noise=noise,
                           progress=lambda m: print(m, file=sys.stderr, flush=True))
    sys.stdout.buffer.write(prompt + out + b"\n")
    sys.stdout.flush()
    return 0


def cmd_eval(args):
    from spikeforge.golden import lut_train
    model, d = _model(args.model)
    train_text, test_text = lut_train.split_text(_text(args))
    bpb = lut_train.bits_per_byte(model, test_text)
    uni = lut_train.unigram_bits_per_byte(train_text, test_text)
    print(f"model {d}: held-out {len(test_text)} bytes: integer model {bpb:.4f} bits/byte, "
          f"unigram {uni:.4f} bits/byte")
    report = json.loads((d / "model.json").read_text()).get("report", {})
    if "float_bpb" in report:
        print(f"trained: float model {report['float_bpb']} bits/byte "
              f"(as stored in model.json)")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="spikeforge lm", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train, quantise and export a model")
    p.add_argument("--text", help="training text (default: the shipped corpus)")
    p.add_argument("--out", default="lm-out", help="model directory to write")
    p.add_argument("--minutes", type=float, default=None, help="time budget (default 8)")
    p.add_argument("--steps", type=int, default=None, help="SGD steps instead of a time budget")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(fn=cmd_train)
    p = sub.add_parser("generate", help="generate text after a prompt")
    p.add_argument("--prompt", required=True)
    p.add_argument("--bytes", type=int, default=64)
    p.add_argument("--backend", choices=("golden", "rtl"), default="golden")
    p.add_argument("--model", help="model directory (default: the shipped model)")
    p.add_argument("--seed", type=int, default=None, help="sample with this seed (default greedy)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    p.set_defaults(fn=cmd_generate)
    p = sub.add_parser("eval", help="held-out bits per byte against a unigram model")
    p.add_argument("--model", help="model directory (default: the shipped model)")
    p.add_argument("--text", help="text whose last tenth is held out (default: the corpus)")
    p.set_defaults(fn=cmd_eval)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except _Usage as exc:
        print(f"spikeforge lm: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"spikeforge lm: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
