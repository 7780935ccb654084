"""``gradtune train``: train a translation model with guided hyper-parameters."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from gradtune.cli.common import add_command, add_config_arguments, load
from gradtune.errors import GradtuneError

EPILOG = """\
examples:
  gradtune train                                   # lt-en, tiny model, guided learning rate
  gradtune train --steps 200 --set corpus=es-en
  gradtune train --no-guidance                     # the same run, learning rate held
  gradtune train --set lr_multiplier=0.1            # guided from a tenth of the base rate
  gradtune train --set horizon=one-step            # the paper's one-step hypergradient
  gradtune train --config my.toml --run-dir runs/mine
  gradtune train --resume runs/mine                # after Ctrl-C, kill or a crash
  gradtune train --resume runs/mine --steps 2000   # ... and train for longer
  gradtune train --set corpus=es-en,web=crawl.tsv --set guided=learning_rate,corpus_weights,example_weights

--set takes a dotted key (optim.learning_rate) or, when unambiguous, the bare name
(warmup_steps is ambiguous: say optim.warmup_steps or guidance.warmup_steps).
`gradtune config` prints every key with its value. A bad setting is one error line before
any data are read; nothing is written until the data, tokenizer and model all stand.
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "train", run, "train a translation model with guided hyper-parameters", EPILOG)
    add_train_arguments(parser)
    parser.add_argument(
        "--init-from",
        metavar="RUN[:STEP]",
        help="start from RUN's parameters (at checkpoint STEP: a number, last or best; default last) and its "
        "tokenizer, with a fresh optimizer and guided state (e.g. a gradtune pretrain run)",
    )


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """What ``train`` and ``pretrain`` share: config, steps, run directory, resume, processes."""
    add_config_arguments(parser)
    parser.add_argument("--steps", type=int, help="training steps (same as --set train.steps=N)")
    parser.add_argument(
        "--no-guidance", action="store_true", help="train the baseline: same run, values held at their initial values"
    )
    parser.add_argument("--run-dir", help="where to write the run (default runs/CORPUS-guided|baseline-TIME)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue RUN_DIR from its newest complete checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    several = parser.add_argument_group(
        "several processes (one per machine; see README, Many devices and machines)",
        "give all three on every process, or none: then a SLURM (srun) or Open MPI (mpirun) launch is "
        "detected, else the run is one process",
    )
    several.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0, the same for every process")
    several.add_argument("--num-processes", type=int, metavar="N", help="how many processes the run has")
    several.add_argument("--process-id", type=int, metavar="I", help="this process's index, 0 to N-1")
    several.add_argument(
        "--join-timeout", type=int, default=120, metavar="S", help="seconds to wait for every process (default 120)"
    )


def run(args: argparse.Namespace, objective: list[str] = ()) -> int:
    """Train as ``args`` say; ``objective``: overrides laid under ``--set`` (``pretrain``'s)."""
    from gradtune.train.distributed import initialize

    initialize(args.coordinator, args.num_processes, args.process_id, args.join_timeout)  # before any JAX work
    from gradtune.train.config import load_config
    from gradtune.train.loop import train
    from gradtune.train.resume import check_compatible

    extra = [] if args.steps is None else [f"train.steps={args.steps}"]
    if args.no_guidance:
        extra.append("guidance.enabled=false")
    if getattr(args, "init_from", None):
        if args.resume:
            raise GradtuneError("--init-from starts a new run; drop it to --resume one")
        args.set = [*init_from_settings(args.init_from), *args.set]
    args.set = [*objective, *args.set]
    if args.resume:
        run_dir = Path(args.resume)
        if args.config or args.run_dir:
            raise GradtuneError("--resume takes the run's own config and directory; drop --config and --run-dir")
        saved = run_dir / "config.json"
        if not saved.is_file():
            raise GradtuneError(f"{run_dir} holds no run to resume (no config.json)")
        cfg = load_config(saved, [*args.set, *extra])
        check_compatible(load_config(saved), cfg)
    else:
        cfg = load(args, extra)
        label = "guided" if cfg.guidance.enabled else "baseline"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path(args.run_dir or f"runs/{cfg.data.corpus.replace('/', '_')}-{label}-{stamp}")
    print(f"gradtune: training into {run_dir}", file=sys.stderr)
    summary = train(cfg, run_dir, progress=not args.quiet, resume=bool(args.resume))
    if summary:  # process 0's; the others write and print nothing
        print(format_summary(summary))
    return 0


def init_from_settings(spec: str) -> list[str]:
    """``train.init_from`` and the source run's vocabulary settings (its tokenizer is reused)."""
    import json

    from gradtune.train.setup import parse_init_from

    source = parse_init_from(spec)
    data = json.loads((source.run_dir / "config.json").read_text())["data"]
    return [f"train.init_from={spec}", f"data.vocab_size={data['vocab_size']}", f"data.sentinels={data['sentinels']}"]


def format_summary(summary: dict) -> str:
    lines = [
        f"run           {summary['run_dir']}" + ("" if summary["finished"] else "  (stopped early: resume it)"),
        f"steps         {summary['steps']}  ({summary['train_seconds']:.0f} s training, "
        f"{summary['total_seconds']:.0f} s in all, {summary['tokens_per_second']:,.0f} target tokens/s)",
        f"data          {summary['train_pairs']} train / {summary['guide_pairs']} guide / "
        f"{summary['dev_pairs']} dev pairs",
    ]
    decoding = "greedy" if summary["beam_size"] == 1 else f"beam {summary['beam_size']}"
    if "dev_loss" in summary:
        lines.append(f"dev loss      {summary['dev_loss']:.4f}   token accuracy {summary['dev_accuracy']:.3f}")
    if "dev_bleu" in summary:
        lines.append(
            f"dev BLEU      {summary['dev_bleu']:.2f}   chrF {summary['dev_chrf']:.2f}   ({decoding}, dev subset)"
        )
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
