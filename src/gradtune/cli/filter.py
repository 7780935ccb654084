"""``gradtune filter``: the cleanest-scored fraction of a run's training data, as TSV."""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from pathlib import Path

from gradtune.cli.common import add_command
from gradtune.errors import GradtuneError

BY = ("whole", "weight", "bucket", "combined", "dppl", "dppl_end", "contrast", "loss")

EPILOG = """\
Rankings (--by; higher is kept first, but for loss, where lower is):
  whole   the product of each pair's learned corpus, bucket and example weights (default;
          example_weights.tsv, written by a run that guided any data weight)
  weight  its learned example weight           bucket  its bucket's learned weight
  combined  the worst of its quantiles under dppl, dppl_end and contrast (low: any flags it)
  dppl    delta log-perplexity: its loss under the run's model minus its loss after a short
          fine-tune on the trusted guide split (low: unlike the trusted data)
  dppl_end  the same delta of its end-of-sentence token (low: a target cut short)
  contrast  its loss given another pair's source minus given its own (low: misaligned)
  loss    its loss under the run's model (high: hard or noisy)
Every ranking but whole reads a scores file: the run's example_scores.tsv (`gradtune score
--run RUN` writes it) or --scores FILE. Ties keep the data's order.

examples:
  gradtune filter --run runs/mine --keep 0.8 > clean.tsv
  gradtune score --run runs/mine && gradtune filter --run runs/mine --by combined --keep 0.7 > kept.tsv
  gradtune filter --scores scores.tsv --by loss --keep 0.5 --with-scores > half.tsv
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(
        commands, "filter", run, "write the cleanest-scored fraction of a run's training data (source<TAB>target)",
        EPILOG,
    )  # fmt: skip
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--run", metavar="DIR", help="a run (its example_weights.tsv or example_scores.tsv)")
    where.add_argument("--scores", metavar="FILE", help="a scores file that `gradtune score` wrote")
    parser.add_argument("--by", choices=BY, default="whole", help="the ranking (default whole; see below)")
    parser.add_argument("--keep", type=float, default=0.8, help="fraction of examples to keep, 0 < keep ≤ 1")
    parser.add_argument("--with-scores", "--with-weights", action="store_true", help="a third column: each kept score")


def ranking(args: argparse.Namespace) -> tuple[list[str], list[tuple[str, str]], list[float], list[float]]:
    """Each pair's corpus, text, score and signed score (higher = cleaner)."""
    from gradtune.train.scores import CLEANER, SCORES_FILE, read_scores

    run_dir = Path(args.run) if args.run else None
    if (
        args.by == "whole"
        and run_dir
        and ((run_dir / "example_weights.tsv").is_file() or not (run_dir / SCORES_FILE).is_file())
    ):
        from gradtune.train.data_weights import read_example_weights  # imports JAX: not for --help

        rows = read_example_weights(Path(args.run))
        weights = [w for _, w, _, _ in rows]
        return [r[0] for r in rows], [(s, t) for _, _, s, t in rows], weights, weights
    scores = read_scores(args.scores or args.run)
    signed = scores.cleanliness(args.by)
    return scores.corpora, scores.pairs, (CLEANER[args.by] * signed).tolist(), signed.tolist()


def run(args: argparse.Namespace) -> int:
    if not 0 < args.keep <= 1:
        raise GradtuneError(f"--keep is {args.keep}; give a fraction in (0, 1]")
    corpora, pairs, scores, signed = ranking(args)
    count = math.ceil(args.keep * len(pairs))
    ranked = sorted(range(len(pairs)), key=lambda i: -signed[i])  # stable: ties keep data order
    kept = sorted(ranked[:count])
    out = sys.stdout
    for i in kept:
        source, target = pairs[i]
        out.write(f"{source}\t{target}\t{scores[i]:.6g}\n" if args.with_scores else f"{source}\t{target}\n")
    per_corpus, total = Counter(corpora[i] for i in kept), Counter(corpora)
    edge = scores[ranked[count - 1]] if count else float("nan")
    sign = "≤" if args.by == "loss" else "≥"
    summary = ", ".join(f"{name} {per_corpus[name]:,}/{n:,}" for name, n in total.items())
    print(
        f"gradtune: kept {count:,} of {len(pairs):,} examples ({args.by} {sign} {edge:.4g}): {summary}", file=sys.stderr
    )
    return 0
