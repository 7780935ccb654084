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

--inside: noise inside one corpus instead. 30% of es-en's training pairs are made wrong in
four ways (shuffled targets, the source copied, a German target, targets cut to a third);
the pairs are ranked by their guided example weight, by delta log-perplexity (dppl,
dppl_end), by how much their source helps (contrast), by the three together (combined), by
guided weights over combined buckets and by training loss (the baseline), each ranking's
ROC AUC given over all noise and per kind; then the default job is retrained on the kept
70% of the best ranking, on all data and on the clean pairs (the oracle), three seeds each.
About 72 minutes on a 2-core CPU. Writes results.json into --run-dir; finished runs are
kept when started again. The settings are configs/experiments/noisy_inside.toml (--config
another); --set applies to its scoring runs.
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
    parser.add_argument("--inside", action="store_true", help="noise of four kinds inside one corpus (see below)")
    parser.add_argument("--quick", action="store_true", help="the file's quick overlay (the test's): ~1 minute")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.inside:
        return run_inside(args)
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


def run_inside(args: argparse.Namespace) -> int:
    import dataclasses

    from gradtune.experiments.noisy_inside import CONFIG, format_results, read_experiment, run_experiment

    experiment = read_experiment(args.config or CONFIG, quick=args.quick)
    experiment = dataclasses.replace(experiment, set=(*experiment.set, *args.set))
    out = Path(args.run_dir or f"runs/noisy-inside-{time.strftime('%Y%m%d-%H%M%S')}")
    print(f"gradtune: noisy-inside experiment into {out}", file=sys.stderr)
    print(format_results(run_experiment(experiment, out, progress=not args.quiet)))
    return 0
