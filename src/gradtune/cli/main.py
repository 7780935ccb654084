"""The ``gradtune`` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from gradtune.cli import filter as filter_command
from gradtune.cli import prepare
from gradtune.cli.translate import add_commands as add_translate_commands
from gradtune.errors import GradtuneError

EPILOG_TRAIN = """\
examples:
  gradtune train                                   # lt-en, tiny model, guided learning rate
  gradtune train --steps 200 --set corpus=es-en
  gradtune train --no-guidance                     # the same run, learning rate held
  gradtune train --set lr_multiplier=0.1 --set meta_learning_rate=1e-2
  gradtune train --config my.toml --run-dir runs/mine
  gradtune train --resume runs/mine                # after Ctrl-C, kill or a crash
  gradtune train --resume runs/mine --steps 2000   # ... and train for longer
  gradtune train --set corpus=es-en,web=crawl.tsv --set guided=learning_rate,corpus_weights,example_weights

--set takes a dotted key (optim.learning_rate) or, when unambiguous, the bare name
(warmup_steps is ambiguous: say optim.warmup_steps or guidance.warmup_steps).
`gradtune config` prints every key with its value.
"""


def _train(args: argparse.Namespace) -> int:
    from gradtune.train.config import load_config
    from gradtune.train.loop import train
    from gradtune.train.resume import check_compatible

    overrides = list(args.set)
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    if args.no_guidance:
        overrides.append("guidance.enabled=false")
    if args.resume:
        run_dir = Path(args.resume)
        if args.config or args.run_dir:
            raise GradtuneError("--resume takes the run's own config and directory; drop --config and --run-dir")
        saved = run_dir / "config.json"
        if not saved.is_file():
            raise GradtuneError(f"{run_dir} holds no run to resume (no config.json)")
        cfg = load_config(saved, overrides)
        check_compatible(load_config(saved), cfg)
    else:
        cfg = load_config(args.config, overrides)
        label = "guided" if cfg.guidance.enabled else "baseline"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path(args.run_dir or f"runs/{cfg.data.corpus.replace('/', '_')}-{label}-{stamp}")
    if cfg.train.steps < 1:
        raise GradtuneError("train.steps must be at least 1")
    print(f"gradtune: training into {run_dir}", file=sys.stderr)
    summary = train(cfg, run_dir, progress=not args.quiet, resume=bool(args.resume))
    print(format_summary(summary))
    return 0


def format_summary(summary: dict) -> str:
    lines = [
        f"run           {summary['run_dir']}" + ("" if summary["finished"] else "  (stopped early: resume it)"),
        f"steps         {summary['steps']}  ({summary['train_seconds']:.0f} s training, "
        f"{summary['total_seconds']:.0f} s in all, {summary['tokens_per_second']:,.0f} target tokens/s)",
        f"data          {summary['train_pairs']} train / {summary['guide_pairs']} guide / "
        f"{summary['dev_pairs']} dev pairs",
    ]
    if "dev_loss" in summary:
        decoding = "greedy" if summary["beam_size"] == 1 else f"beam {summary['beam_size']}"
        lines += [
            f"dev loss      {summary['dev_loss']:.4f}   token accuracy {summary['dev_accuracy']:.3f}",
            f"dev BLEU      {summary['dev_bleu']:.2f}   chrF {summary['dev_chrf']:.2f}   ({decoding}, dev subset)",
        ]
    for key, t in summary.items():
        if key.endswith("_trajectory"):
            name = key.removesuffix("_trajectory")
            lines.append(
                f"learned {name}: start {t['start']:.4g}, min {t['min']:.4g}, max {t['max']:.4g}, end {t['end']:.4g}"
            )
    for name in ("corpus_weights", "bucket_weights"):
        if name in summary:
            pairs = ", ".join(f"{row} {w:.3g}" for row, w in summary[name].items())
            lines.append(f"learned {name.replace('_', ' ')}: {pairs}")
    if "example_weight_quantiles" in summary:
        q = summary["example_weight_quantiles"]
        lines.append(
            f"example weights: min {q['min']:.3g}, 10% {q['q10']:.3g}, median {q['median']:.3g}, "
            f"90% {q['q90']:.3g}, max {q['max']:.3g}  (example_weights.tsv; gradtune filter)"
        )
    return "\n".join(lines)


def _config(args: argparse.Namespace) -> int:
    from gradtune.train.config import load_config, to_dict

    print(json.dumps(to_dict(load_config(args.config, args.set)), indent=2))
    return 0


def _check_hypergrads(args: argparse.Namespace) -> int:
    from gradtune.core import OPTIMIZERS
    from gradtune.experiments.check_hypergrads import check_all, format_table

    unknown = set(args.optimizer) - set(OPTIMIZERS)
    if unknown:
        raise GradtuneError(f"unknown optimizer {', '.join(sorted(unknown))}; choose from {', '.join(OPTIMIZERS)}")
    start = time.time()
    rows = check_all(args.optimizer or None, seed=args.seed, data_weights=not args.optimizer)
    print(format_table(rows))
    print(f"({time.time() - start:.0f} s)")
    return 0 if all(r.passed for r in rows) else 1


def _noisy_corpus(args: argparse.Namespace) -> int:
    from gradtune.experiments.noisy_corpus import format_report, run
    from gradtune.train.config import load_config  # only to check the --set keys early

    overrides = dict(item.partition("=")[::2] for item in args.set)
    load_config(None, args.set)
    run_dir = Path(args.run_dir or f"runs/noisy-corpus-{time.strftime('%Y%m%d-%H%M%S')}")
    print(f"gradtune: noisy-corpus experiment into {run_dir}", file=sys.stderr)
    report = run(run_dir, overrides, quick=args.quick, progress=not args.quiet)
    print(format_report(report))
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
    train.add_argument("--resume", metavar="RUN_DIR", help="continue RUN_DIR from its newest complete checkpoint")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=_train)

    config = commands.add_parser("config", help="print the resolved configuration (every key and its value)")
    config.add_argument("--config", help="a JSON or TOML config file")
    config.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    config.set_defaults(func=_config)

    check = commands.add_parser(
        "check-hypergrads",
        help="check every optimizer's hypergradients against finite differences (float64)",
        description="For every optimizer and every guidable value, compare the hypergradient of a guided step "
        "on a small random Transformer (after 3 warm-up steps) with a central finite difference in float64; "
        "then rows of corpus, bucket and example weights (AdamW, packed rows with random ids). "
        "Prints a table; exits 1 on any mismatch.",
    )
    check.add_argument(
        "--optimizer", action="append", default=[], help="check only this optimizer, no data weights (repeatable)"
    )
    check.add_argument("--seed", type=int, default=0)
    check.set_defaults(func=_check_hypergrads)

    noisy = commands.add_parser(
        "noisy-corpus",
        help="experiment: learn corpus and example weights on a corpus plus a copy with shuffled targets",
        description="Train on the embedded es-en corpus's training split (verses of at most 15 words) plus a "
        "noisy copy of it whose targets are shuffled among its examples, guiding corpus and per-example weights "
        "by the clean guide split. Reports the corpus weights over time, the ROC AUC of the example weights as a "
        "detector of noisy examples beside a training-loss baseline, the batch shape and the visits per example; "
        "writes noisy_corpus.json into the run directory. 7–9 minutes on a 2-core CPU.",
    )
    noisy.add_argument("--run-dir", help="where to write the run (default runs/noisy-corpus-TIME)")
    noisy.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a setting (repeatable)"
    )
    noisy.add_argument("--quick", action="store_true", help="a small version (the test's): ~1 minute")
    noisy.add_argument("--quiet", action="store_true", help="no progress bar")
    noisy.set_defaults(func=_noisy_corpus)

    prepare.add_parser(commands)
    filter_command.add_parser(commands)

    add_translate_commands(commands)
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
    except BrokenPipeError:  # the reader stopped early (gradtune filter … | head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
