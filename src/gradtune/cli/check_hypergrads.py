"""``gradtune check-hypergrads``: every hypergradient against a float64 finite difference."""

from __future__ import annotations

import argparse
import time

from gradtune.cli.common import add_command
from gradtune.errors import GradtuneError


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(
        commands,
        "check-hypergrads",
        run,
        "check every optimizer's hypergradients against finite differences (float64)",
        description="For every optimizer and every guidable value, compare the hypergradient of a guided step "
        "on a small random Transformer (after 3 warm-up steps) with a central finite difference in float64; "
        "then rows of corpus, bucket and example weights (AdamW, packed rows with random ids), and the "
        "forward-mode hypergradients (guidance.horizon = forward, decay 1) of AdamW's scalar values through three "
        "held updates. "
        "Prints a table; exits 1 on any mismatch.",
    )
    parser.add_argument(
        "--optimizer",
        action="append",
        default=[],
        help="check only this optimizer, no data weights or forward mode (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from gradtune.core import OPTIMIZERS
    from gradtune.experiments.check_hypergrads import check_all, format_table

    if unknown := set(args.optimizer) - set(OPTIMIZERS):
        raise GradtuneError(f"unknown optimizer {', '.join(sorted(unknown))}; choose from {', '.join(OPTIMIZERS)}")
    start = time.time()
    every = not args.optimizer
    rows = check_all(args.optimizer or None, seed=args.seed, data_weights=every, forward=every)
    print(format_table(rows))
    print(f"({time.time() - start:.0f} s)")
    return 0 if all(r.passed for r in rows) else 1
