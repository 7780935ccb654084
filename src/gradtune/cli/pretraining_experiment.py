"""``gradtune pretraining-experiment``: does guided span-corruption pre-training help downstream?"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gradtune.cli.common import add_command

DESCRIPTION = """\
Pre-train `tiny` with T5's span corruption on both sides of the es-en corpus's training
pairs, guided (learning rate, b1, weight decay) and held; fine-tune each on es->en, held;
train es->en from scratch with the same tokenizer; two seeds. Prints and writes
results.json: each pre-training's held-out span loss, each translation run's dev loss and
dev BLEU and chrF (beam 4, whole dev split). About 1½ hours on a 2-core CPU; started again,
finished runs are kept and a run cut short resumes from its checkpoint.

The settings are configs/experiments/pretraining.toml (--config another file); --quick lays
its [overlays.quick] over them (a minute or two).
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(
        commands,
        "pretraining-experiment",
        run,
        "experiment: guided vs held span-corruption pre-training, judged by fine-tuning on translation",
        description=DESCRIPTION,
    )
    parser.add_argument(
        "--config", metavar="FILE", help="the experiment (default configs/experiments/pretraining.toml)"
    )
    parser.add_argument("--out", help="where to write the runs and results.json (default runs/pretraining)")
    parser.add_argument("--quick", action="store_true", help="the file's quick overlay (the test's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from gradtune.experiments.pretraining import CONFIG, format_results, read_experiment, run_experiment

    experiment = read_experiment(args.config or CONFIG, quick=args.quick)
    out = Path(args.out or ("runs/pretraining-quick" if args.quick else "runs/pretraining"))
    print(f"gradtune: pre-training experiment into {out}", file=sys.stderr)
    results = run_experiment(experiment, out, progress=not args.quiet)
    print(format_results(results))
    return 0
