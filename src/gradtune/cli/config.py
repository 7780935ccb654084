"""``gradtune config``: the resolved configuration, every key with its value."""

from __future__ import annotations

import argparse
import json

from gradtune.cli.common import add_command, add_config_arguments, load


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "config", run, "print the resolved configuration (every key and its value)")
    add_config_arguments(parser)
    parser.add_argument("--overlay", metavar="NAME", help="lay the config file's [overlays.NAME] table over it")
    parser.add_argument(
        "--guidable", action="store_true", help="print the table of every guidable value instead (Markdown)"
    )


def run(args: argparse.Namespace) -> int:
    from gradtune.train.config import to_dict

    if args.guidable:
        from gradtune.train.guidable import markdown_table

        print(markdown_table(), end="")
        return 0
    print(json.dumps(to_dict(load(args, overlay=args.overlay)), indent=2))
    return 0
