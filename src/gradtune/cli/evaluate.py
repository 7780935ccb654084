"""``gradtune evaluate``: BLEU and chrF (sacreBLEU) of a trained run on its test or dev split, or on given files."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gradtune.cli.common import add_command
from gradtune.cli.translate import decode, decoding_arguments, load_checkpoint, read_lines
from gradtune.errors import GradtuneError
from gradtune.files import write_json

EPILOG_EVALUATE = """\
examples:
  gradtune evaluate --run runs/lt-en-guided-20250101-120000            # test split, beam 4
  gradtune evaluate --run DIR --split dev --beam 1
  gradtune evaluate --run DIR --src news.lt --ref news.en

The split is recomputed from the run's config.json, exactly as training made it. Scores go
to stdout with their sacreBLEU signatures, and to DIR/eval-SPLIT-beamK.json.
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(
        commands,
        "evaluate",
        run,
        "BLEU and chrF (sacreBLEU) of a trained run on its test or dev split, or on given files",
        EPILOG_EVALUATE,
    )
    decoding_arguments(parser)
    parser.add_argument("--split", choices=("test", "dev"), help="the run's own split (default test)")
    parser.add_argument("--src", metavar="FILE", help="source sentences, one per line (with --ref, instead of --split)")
    parser.add_argument("--ref", metavar="FILE", help="reference translations, one per line, as many as --src")


def run(args: argparse.Namespace) -> int:
    from gradtune.train.evaluate import scores_and_signatures
    from gradtune.train.inputs import load_splits

    if (args.src is None) != (args.ref is None):
        raise GradtuneError("--src and --ref go together: give both files, or neither (and --split)")
    if args.src and args.split:
        raise GradtuneError("give either --split or --src/--ref, not both")
    if args.src:  # the files are read and matched before the model loads
        name, sources, references = Path(args.src).stem, read_lines(args.src), read_lines(args.ref)
        if len(sources) != len(references):
            raise GradtuneError(
                f"{args.src} has {len(sources)} lines but {args.ref} has {len(references)}; "
                "give one reference line per source line"
            )
    cfg, tokenizer, graphdef, state = load_checkpoint(args)
    if not args.src:
        name = args.split or "test"
        examples = load_splits(cfg.data).splits[name]
        sources, references = [e.source for e in examples], [e.target for e in examples]

    start = time.time()
    hypotheses = decode(args, cfg, tokenizer, graphdef, state, sources, progress=True)
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
