"""``gradtune demo``: a baseline and four guided settings side by side, in one report."""

from __future__ import annotations

import argparse
from pathlib import Path

from gradtune.cli.common import add_command

DESCRIPTION = """\
The original demo notebook's comparison on the default job (embedded lt-en, tiny, AdamW,
600 steps, seed 0): the baseline with values held, a guided learning rate, a guided b1,
both, and every optimizer-side value with label smoothing. The runs go one after another
(a line per run) into --out, then report.html compares them (gradtune report). About 18
minutes on a 2-core CPU; started again, finished runs are kept. The runs are
configs/experiments/demo.toml's (--config another file).
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "demo", run, "train a baseline and four guided settings, then report them",
                         description=DESCRIPTION)  # fmt: skip
    parser.add_argument("--config", metavar="FILE", help="the demo's runs (default configs/experiments/demo.toml)")
    parser.add_argument("--out", help="where to write the runs and report.html (default runs/demo)")
    parser.add_argument("--steps", type=int, help="training steps of every run")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override in every run")
    parser.add_argument("--quick", action="store_true", help="a few steps of the tiny model (the test's version)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from gradtune.experiments.demo import CONFIG, run_demo

    out = Path(args.out or ("runs/demo-quick" if args.quick else "runs/demo"))
    overrides = (*args.set, *([f"train.steps={args.steps}"] if args.steps else []))
    report = run_demo(out, args.quick, overrides, args.config or CONFIG, progress=not args.quiet)
    print(report)
    return 0
