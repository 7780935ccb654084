"""``gradtune translate``: a trained run's translations of source lines (a file or stdin)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gradtune.cli.common import add_command
from gradtune.errors import GradtuneError

EPILOG_TRANSLATE = """\
examples:
  gradtune translate --run runs/lt-en-guided-20250101-120000 < sources.lt > translations.en
  echo "Atidaryti failą" | gradtune translate --run DIR --beam 1     # greedy
  gradtune translate --run DIR --checkpoint best sources.lt
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "translate", run, "translate source lines (a file or stdin) with a trained run",
                         EPILOG_TRANSLATE)  # fmt: skip
    decoding_arguments(parser)
    parser.add_argument("file", nargs="?", help="source sentences, one per line (default: stdin)")


def decoding_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, metavar="DIR", help="a run directory that `gradtune train` wrote")
    parser.add_argument(
        "--checkpoint",
        default="last",
        metavar="best|last|STEP",
        help="last (default), best, or a step number: which checkpoint to use",
    )
    parser.add_argument("--beam", type=int, default=4, metavar="K", help="beam size (1 = greedy; default 4)")
    parser.add_argument("--alpha", type=float, default=0.6, help="GNMT length-penalty alpha (default 0.6)")
    parser.add_argument(
        "--batch-size", type=int, default=64, metavar="N", help="sentences decoded together (default 64)"
    )


def read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]
    except OSError as e:
        raise GradtuneError(f"{path}: cannot read it ({e.strerror}); pass a text file, one sentence per line") from None
    except UnicodeDecodeError as e:
        raise GradtuneError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def load_checkpoint(args: argparse.Namespace):
    """The run's config, tokenizer, graphdef and state at the asked checkpoint, arguments checked first."""
    from gradtune.train.setup import load_run

    if args.beam < 1 or args.batch_size < 1:
        raise GradtuneError("--beam and --batch-size must be at least 1")
    if not Path(args.run).is_dir():
        raise GradtuneError(f"{args.run}: no such run directory; pass one that `gradtune train` wrote (runs/...)")
    return load_run(Path(args.run), args.checkpoint)


def run(args: argparse.Namespace) -> int:
    sources = read_lines(args.file) if args.file else None  # a bad file fails before the model loads
    cfg, tokenizer, graphdef, state = load_checkpoint(args)
    if sources is None:
        sources = [line.rstrip("\n") for line in sys.stdin]
    translations = decode(args, cfg, tokenizer, graphdef, state, sources, progress=args.file is not None)
    sys.stdout.writelines(f"{line}\n" for line in translations)
    return 0


def decode(args: argparse.Namespace, cfg, tokenizer, graphdef, state, sources: list[str], progress: bool) -> list[str]:
    """Translations of ``sources`` with the decoding options of the command line."""
    from gradtune.train.evaluate import translate

    return translate(
        tokenizer,
        graphdef,
        state.params,
        sources,
        cfg.data.row_len,
        beam_size=args.beam,
        alpha=args.alpha,
        batch_size=args.batch_size,
        progress=progress,
    )
