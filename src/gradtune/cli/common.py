"""What every ``gradtune`` subcommand shares: its registration, ``--config`` and ``--set``.

Each subcommand is a module with ``register(commands)``, which adds its parser, and
``run(args) -> int``, which does the work (heavy imports inside, so ``--help`` is fast).
"""

from __future__ import annotations

import argparse

CONFIG_HELP = "a TOML or JSON config file, or the name of one in configs/ (e.g. noisy_corpus)"


def add_command(
    commands: argparse._SubParsersAction, name: str, run, help: str, epilog: str | None = None, **kwargs
) -> argparse.ArgumentParser:
    """A subcommand's parser, with ``run`` as its handler and the epilog printed as written."""
    parser = commands.add_parser(
        name, help=help, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs
    )
    parser.set_defaults(func=run)
    return parser


def add_config_arguments(parser: argparse.ArgumentParser, config_help: str = CONFIG_HELP) -> None:
    """``--config FILE`` and repeatable ``--set KEY=VALUE``."""
    parser.add_argument("--config", metavar="FILE", help=config_help)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value: a dotted key (optim.learning_rate) or an unambiguous bare one (repeatable)",
    )


def load(args: argparse.Namespace, extra: list[str] = (), overlay: str | None = None):
    """The resolved config of ``--config``, its ``overlay``, ``--set`` and then ``extra`` overrides."""
    from gradtune.train.config import load_config

    return load_config(args.config, [*args.set, *extra], overlay)
