"""``gradtune noisy-corpus``: do learned data weights find a corpus of wrong translations?"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from gradtune.cli.common import add_command, add_config_arguments

DESCRIPTION = """\
Train on the embedded es-en corpus's training split (verses of at most 15 words) plus a
noisy copy of it whose targets are shuffled among its examples, guiding corpus and
per-example weights by the clean guide split. Reports the corpus weights over time, the
ROC AUC of the example weights as a detector of noisy examples beside a training-loss
baseline, the batch shape and the visits per example; writes noisy_corpus.json into the
run directory. 7-9 minutes on a 2-core CPU.

The settings are configs/noisy_corpus.toml (--config another file); --quick lays its
[overlays.quick] table over them (about a minute); --set overrides any key.
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(
        commands,
        "noisy-corpus",
        run,
        "experiment: learn corpus and example weights on a corpus plus a copy with shuffled targets",
        description=DESCRIPTION,
    )
    add_config_arguments(parser, "the experiment's settings (default configs/noisy_corpus.toml)")
    parser.add_argument("--run-dir", help="where to write the run (default runs/noisy-corpus-TIME)")
    parser.add_argument("--quick", action="store_true", help="the file's quick overlay (the test's): ~1 minute")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from gradtune.cli.common import load
    from gradtune.experiments.noisy_corpus import CONFIG, format_report
    from gradtune.experiments.noisy_corpus import run as run_experiment

    args.config = args.config or CONFIG
    cfg = load(args, overlay="quick" if args.quick else None)
    run_dir = Path(args.run_dir or f"runs/noisy-corpus-{time.strftime('%Y%m%d-%H%M%S')}")
    print(f"gradtune: noisy-corpus experiment into {run_dir}", file=sys.stderr)
    report = run_experiment(run_dir, cfg, progress=not args.quiet)
    print(format_report(report))
    return 0
