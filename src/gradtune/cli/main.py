"""The ``gradtune`` command."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from gradtune.cli import prepare
from gradtune.errors import GradtuneError

EPILOG_TRAIN = """\
examples:
  gradtune train                                   # lt-en, tiny model, guided learning rate
  gradtune train --steps 200 --set corpus=es-en
  gradtune train --no-guidance                     # the same run, learning rate held
  gradtune train --set lr_multiplier=0.1 --set meta_learning_rate=1e-2
  gradtune train --config my.toml --run-dir runs/mine

--set takes a dotted key (optim.learning_rate) or, when unambiguous, the bare name
(warmup_steps is ambiguous: say optim.warmup_steps or guidance.warmup_steps).
`gradtune config` prints every key with its value.
"""


def _train(args: argparse.Namespace) -> int:
    from gradtune.train.config import load_config
    from gradtune.train.loop import train

    overrides = list(args.set)
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    if args.no_guidance:
        overrides.append("guidance.enabled=false")
    cfg = load_config(args.config, overrides)
    if cfg.train.steps < 1:
        raise GradtuneError("train.steps must be at least 1")
    label = "guided" if cfg.guidance.enabled else "baseline"
    run_dir = Path(args.run_dir or f"runs/{cfg.data.corpus.replace('/', '_')}-{label}-{time.strftime('%Y%m%d-%H%M%S')}")
    print(f"gradtune: training into {run_dir}", file=sys.stderr)
    summary = train(cfg, run_dir, progress=not args.quiet)
    print(format_summary(summary))
    return 0


def format_summary(summary: dict) -> str:
    lines = [
        f"run           {summary['run_dir']}",
        f"steps         {summary['steps']}  ({summary['train_seconds']:.0f} s training, "
        f"{summary['total_seconds']:.0f} s in all, {summary['tokens_per_second']:,.0f} target tokens/s)",
        f"data          {summary['train_pairs']} train / {summary['guide_pairs']} guide / "
        f"{summary['dev_pairs']} dev pairs",
        f"dev loss      {summary['dev_loss']:.4f}   token accuracy {summary['dev_accuracy']:.3f}",
        f"dev BLEU      {summary['dev_bleu']:.2f}   chrF {summary['dev_chrf']:.2f}   (greedy, dev subset)",
    ]
    for key, t in summary.items():
        if key.endswith("_trajectory"):
            name = key.removesuffix("_trajectory")
            lines.append(
                f"learned {name}: start {t['start']:.4g}, min {t['min']:.4g}, max {t['max']:.4g}, end {t['end']:.4g}"
            )
    return "\n".join(lines)


def _config(args: argparse.Namespace) -> int:
    from gradtune.train.config import load_config, to_dict

    print(json.dumps(to_dict(load_config(args.config, args.set)), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradtune", description="Learn hyper-parameters during training, by the gradient of a guide loss."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train",
        help="train a translation model with guided hyper-parameters",
        epilog=EPILOG_TRAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--config", help="a JSON or TOML config file (overridden by --set)")
    train.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value (repeatable)"
    )
    train.add_argument("--steps", type=int, help="training steps (same as --set train.steps=N)")
    train.add_argument(
        "--no-guidance", action="store_true", help="train the baseline: same run, values held at their initial values"
    )
    train.add_argument("--run-dir", help="where to write the run (default runs/CORPUS-guided|baseline-TIME)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=_train)

    config = commands.add_parser("config", help="print the resolved configuration (every key and its value)")
    config.add_argument("--config", help="a JSON or TOML config file")
    config.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    config.set_defaults(func=_config)

    prepare.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except GradtuneError as e:
        print(f"gradtune: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gradtune: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
