"""The ``gradtune`` command: one module per subcommand, each registered the same way."""

from __future__ import annotations

import argparse
import os
import sys

from gradtune.cli import (
    check_hypergrads,
    config,
    demo,
    evaluate,
    noisy_corpus,
    prepare,
    pretrain,
    report,
    score,
    sweep,
    train,
    translate,
)
from gradtune.cli import filter as filter_command
from gradtune.cli import pretraining_experiment as pretraining
from gradtune.errors import GradtuneError

SUBCOMMANDS = (
    train, pretrain, config, prepare, translate, evaluate, score, filter_command, sweep, check_hypergrads, noisy_corpus,
    pretraining, report, demo,
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradtune", description="Learn hyper-parameters during training, by the gradient of a guide loss."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except GradtuneError as e:
        print(f"gradtune: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gradtune: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader stopped early (gradtune filter … | head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
