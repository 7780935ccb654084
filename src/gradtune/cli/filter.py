"""``gradtune filter``: the best-weighted fraction of a run's training data, as TSV."""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from pathlib import Path

from gradtune.cli.common import add_command
from gradtune.errors import GradtuneError

EPILOG = """\
Each training example's weight is the product of its learned corpus, bucket and example
weights (example_weights.tsv in the run directory, written when any of them is guided).

examples:
  gradtune filter --run runs/mine --keep 0.8 > clean.tsv
  gradtune filter --run runs/mine --keep 0.5 --with-weights > half.tsv
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(
        commands, "filter", run, "write the best-weighted fraction of a run's training data (source<TAB>target)", EPILOG
    )
    parser.add_argument("--run", required=True, metavar="DIR", help="a run that guided data weights")
    parser.add_argument("--keep", type=float, default=0.8, help="fraction of examples to keep, 0 < keep ≤ 1")
    parser.add_argument("--with-weights", action="store_true", help="a third column with each kept weight")


def run(args: argparse.Namespace) -> int:
    if not 0 < args.keep <= 1:
        raise GradtuneError(f"--keep is {args.keep}; give a fraction in (0, 1]")
    from gradtune.train.data_weights import read_example_weights  # imports JAX: not for --help

    rows = read_example_weights(Path(args.run))
    count = math.ceil(args.keep * len(rows))
    ranked = sorted(range(len(rows)), key=lambda i: -rows[i][1])  # stable: ties keep data order
    kept = sorted(ranked[:count])
    out = sys.stdout
    for i in kept:
        _, weight, source, target = rows[i]
        out.write(f"{source}\t{target}\t{weight:.6g}\n" if args.with_weights else f"{source}\t{target}\n")
    per_corpus, total = Counter(rows[i][0] for i in kept), Counter(r[0] for r in rows)
    threshold = rows[ranked[count - 1]][1] if count else float("nan")
    summary = ", ".join(f"{name} {per_corpus[name]:,}/{n:,}" for name, n in total.items())
    print(f"gradtune: kept {count:,} of {len(rows):,} examples (weight ≥ {threshold:.4g}): {summary}", file=sys.stderr)
    return 0
