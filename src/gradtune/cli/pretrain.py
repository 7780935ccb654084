"""``gradtune pretrain``: T5-style span-corruption pre-training with guided hyper-parameters."""

from __future__ import annotations

import argparse

from gradtune.cli import train
from gradtune.cli.common import add_command

EPILOG = """\
examples:
  gradtune pretrain --set corpus=es-en --run-dir runs/pretrain       # both sides of es-en's training pairs
  gradtune pretrain --set text=news.es.xz,news.en.xz --steps 5000      # text files, a sentence per line
  gradtune train --init-from runs/pretrain --set corpus=es-en          # fine-tune on translation from it

The same encoder-decoder, guided values, checkpoints, resume and logs as `gradtune train`
(`--resume` continues a pre-training run), with data.objective = span_corruption: spans of
about data.mean_span tokens, data.noise_density of each text, are cut out and replaced by
sentinel ids at the vocabulary's end (data.sentinels); the target is each sentinel with
its span. Lines are packed into row-length texts before corruption. The dev score is the
held-out span-corruption loss (no BLEU). Guide and dev texts come from the guide and dev
pairs of data.corpus (or, with data.text, from lines split by their stable hash).
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "pretrain", run, "pre-train with T5's span corruption on monolingual text", EPILOG)
    train.add_train_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return train.run(args, objective=["data.objective=span_corruption"])
