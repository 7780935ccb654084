"""``gradtune score``: how clean each training pair of a run looks, by every measure it has."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gradtune.cli.common import add_command

FINETUNE_STEPS, FINETUNE_LR = 600, 1e-2  # the trusted fine-tune's defaults: configs/experiments/noisy_inside.toml's

EPILOG = """\
Writes example_scores.tsv (corpus, index, one column per score, source, target; in the
order of the training split) into the run directory, or to --out. The scores:
  loss    the pair's mean token loss under the run's model
  dppl    delta log-perplexity: that loss minus the pair's loss under the model fine-tuned
          for --finetune-steps steps (Adam, --finetune-lr) on the run's trusted guide split;
          low for pairs unlike the trusted data
  dppl_end  the same delta of the end-of-sentence token alone: low for a target cut short
  contrast  the target's loss given another pair's source minus given its own: near 0 for
          a target unrelated to its source
  combined  the worst of the pair's quantiles under dppl, dppl_end and contrast: low when
          any of them flags it (these four: not measured with --finetune-steps 0)
  weight, bucket, whole   the learned example weight, bucket weight and their product with
          the corpus weight, where the run guided them
`gradtune filter --by NAME` ranks by any of them; data.bucket_by = "score:NAME" with
data.scores = FILE|RUN buckets a later run's data by one.

examples:
  gradtune score --run runs/mine
  gradtune score --run runs/mine --finetune-steps 1000 --finetune-lr 3e-3 --out scores.tsv
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(
        commands, "score", run, "score every training pair of a run (loss, dppl, contrast, learned weights)", EPILOG
    )
    parser.add_argument("--run", required=True, metavar="DIR", help="a run that `gradtune train` wrote")
    parser.add_argument("--checkpoint", default="last", help="last (default), best, or a step")
    parser.add_argument(
        "--finetune-steps",
        type=int,
        default=FINETUNE_STEPS,
        help=f"steps of the trusted fine-tune (default {FINETUNE_STEPS})",
    )
    parser.add_argument(
        "--finetune-lr", type=float, default=FINETUNE_LR, help=f"its learning rate (default {FINETUNE_LR:g})"
    )
    parser.add_argument("--out", metavar="FILE", help="where to write (default RUN/example_scores.tsv)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import time

    from gradtune.train.scores import SCORES_FILE, score_run, write_scores

    start = time.time()
    run_dir = Path(args.run)
    scores = score_run(run_dir, args.finetune_steps, args.finetune_lr, args.checkpoint, progress=not args.quiet)
    out = Path(args.out) if args.out else run_dir / SCORES_FILE
    write_scores(out, scores)
    names, seconds = ", ".join(scores.values), time.time() - start
    print(f"gradtune: scored {len(scores.pairs):,} pairs ({names}) in {seconds:.0f} s: {out}", file=sys.stderr)
    return 0
