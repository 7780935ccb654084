"""``gradtune translate`` and ``gradtune evaluate``: a trained run's translations, and their BLEU and chrF."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from gradtune.errors import GradtuneError
from gradtune.files import write_json

EPILOG_TRANSLATE = """\
examples:
  gradtune translate --run runs/lt-en-guided-20250101-120000 < sources.lt > translations.en
  echo "Atidaryti failą" | gradtune translate --run DIR --beam 1     # greedy
  gradtune translate --run DIR --checkpoint best sources.lt
"""

EPILOG_EVALUATE = """\
examples:
  gradtune evaluate --run runs/lt-en-guided-20250101-120000            # test split, beam 4
  gradtune evaluate --run DIR --split dev --beam 1
  gradtune evaluate --run DIR --src news.lt --ref news.en

The split is recomputed from the run's config.json, exactly as training made it. Scores go
to stdout with their sacreBLEU signatures, and to DIR/eval-SPLIT-beamK.json.
"""


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Register ``translate`` and ``evaluate`` with the ``gradtune`` parser's subcommands."""
    translate = commands.add_parser(
        "translate",
        help="translate source lines (a file or stdin) with a trained run",
        epilog=EPILOG_TRANSLATE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _decoding_arguments(translate)
    translate.add_argument("file", nargs="?", help="source sentences, one per line (default: stdin)")
    translate.set_defaults(func=_translate)

    evaluate = commands.add_parser(
        "evaluate",
        help="BLEU and chrF (sacreBLEU) of a trained run on its test or dev split, or on given files",
        epilog=EPILOG_EVALUATE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _decoding_arguments(evaluate)
    evaluate.add_argument("--split", choices=("test", "dev"), help="the run's own split (default test)")
    evaluate.add_argument(
        "--src", metavar="FILE", help="source sentences, one per line (with --ref, instead of --split)"
    )
    evaluate.add_argument("--ref", metavar="FILE", help="reference translations, one per line, as many as --src")
    evaluate.set_defaults(func=_evaluate)


def _decoding_arguments(parser: argparse.ArgumentParser) -> None:
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


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]
    except OSError as e:
        raise GradtuneError(f"{path}: cannot read it ({e.strerror}); pass a text file, one sentence per line") from None
    except UnicodeDecodeError as e:
        raise GradtuneError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _load(args: argparse.Namespace):
    """The run's config, tokenizer, graphdef and state at the asked checkpoint, arguments checked first."""
    from gradtune.train.setup import load_run

    if args.beam < 1 or args.batch_size < 1:
        raise GradtuneError("--beam and --batch-size must be at least 1")
    if not Path(args.run).is_dir():
        raise GradtuneError(f"{args.run}: no such run directory; pass one that `gradtune train` wrote (runs/...)")
    return load_run(Path(args.run), args.checkpoint)


def _translate(args: argparse.Namespace) -> int:
    cfg, tokenizer, graphdef, state = _load(args)
    sources = _read_lines(args.file) if args.file else [line.rstrip("\n") for line in sys.stdin]
    translations = _decode(args, cfg, tokenizer, graphdef, state, sources, progress=args.file is not None)
    sys.stdout.writelines(f"{line}\n" for line in translations)
    return 0


def _decode(args: argparse.Namespace, cfg, tokenizer, graphdef, state, sources: list[str], progress: bool) -> list[str]:
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


def _evaluate(args: argparse.Namespace) -> int:
    from gradtune.train.evaluate import scores_and_signatures
    from gradtune.train.inputs import load_splits

    if (args.src is None) != (args.ref is None):
        raise GradtuneError("--src and --ref go together: give both files, or neither (and --split)")
    if args.src and args.split:
        raise GradtuneError("give either --split or --src/--ref, not both")
    cfg, tokenizer, graphdef, state = _load(args)
    if args.src:
        name, sources, references = Path(args.src).stem, _read_lines(args.src), _read_lines(args.ref)
        if len(sources) != len(references):
            raise GradtuneError(f"{args.src} has {len(sources)} lines but {args.ref} has {len(references)}")
    else:
        name = args.split or "test"
        examples = load_splits(cfg.data).splits[name]
        sources, references = [e.source for e in examples], [e.target for e in examples]

    start = time.time()
    hypotheses = _decode(args, cfg, tokenizer, graphdef, state, sources, progress=True)
    seconds = time.time() - start
    scores = scores_and_signatures(hypotheses, references)
    result = {
        "data": name,
        "sentences": len(sources),
        "checkpoint": args.checkpoint,
        "step": int(state.step),
        "beam_size": args.beam,
        "length_penalty": args.alpha,
        "bleu": scores["bleu"][0],
        "chrf": scores["chrf"][0],
        "bleu_signature": scores["bleu"][1],
        "chrf_signature": scores["chrf"][1],
        "seconds": seconds,
        "sentences_per_second": len(sources) / max(seconds, 1e-9),
    }
    checkpoint = "" if args.checkpoint == "last" else f"-{args.checkpoint}"
    path = Path(args.run) / f"eval-{name}-beam{args.beam}{checkpoint}.json"
    write_json(path, result, indent=2)

    print(f"{name}: {len(sources)} sentences, beam {args.beam}, alpha {args.alpha}, step {result['step']}")
    print(f"BLEU  {result['bleu']:.2f}   {result['bleu_signature']}")
    print(f"chrF  {result['chrf']:.2f}   {result['chrf_signature']}")
    print(f"wrote {path}")
    return 0
