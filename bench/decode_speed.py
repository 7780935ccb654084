"""Decoding speed: sentences per second of greedy decoding and beam search.

    python bench/decode_speed.py                    # the default tiny model, random weights
    python bench/decode_speed.py --run runs/DIR     # a trained run, on its test split
    python bench/decode_speed.py --json bench/results/decode.json

Random weights rarely emit EOS, so every translation runs to its length limit
(min(64, 2·n + 10) tokens for n source tokens): the worst case, and the same work for every
beam size. A trained run stops where its translations end. Each beam size is timed
``--repeats`` times, interleaved with the others (``bench/harness.py``), after a compiling
warm-up; the table gives medians.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

import numpy as np
from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

from gradtune.data.tokenizer import BOS_ID, EOS_ID
from gradtune.seq2seq.decode import translate_ids
from gradtune.seq2seq.model import Transformer, preset
from gradtune.train import evaluate
from gradtune.train.inputs import load_splits
from gradtune.train.setup import load_run


def random_model_decoder(sentences: int, batch_size: int, row_len: int = 64, seed: int = 0):
    """decode(beam_size) over random sources of 4 to 24 tokens, with the tiny preset at random weights."""
    graphdef, params = nnx.split(Transformer(preset("tiny", dropout=0.0), nnx.Rngs(seed)))
    rng = np.random.default_rng(seed)
    lengths = np.sort(rng.integers(4, 25, sentences))  # sorted, as translate batches them
    src = np.zeros((-(-sentences // batch_size) * batch_size, row_len), np.int32)
    for row, n in enumerate(lengths):
        src[row, : n - 1], src[row, n - 1] = rng.integers(4, 8000, n - 1), EOS_ID
    batches = src.reshape(-1, batch_size, row_len)

    def decode(beam_size: int) -> None:
        for batch in batches:
            out = translate_ids(graphdef, params, batch, beam_size=beam_size, alpha=0.6, bos_id=BOS_ID, eos_id=EOS_ID)
        out.block_until_ready()

    return decode, "tiny preset, random weights, random sources of 4-24 tokens"


def run_decoder(run_dir: Path, sentences: int, batch_size: int):
    """decode(beam_size) of the first test sentences of a trained run."""
    cfg, tokenizer, graphdef, state = load_run(run_dir)
    sources = [e.source for e in load_splits(cfg.data).splits["test"][:sentences]]

    def decode(beam_size: int) -> None:
        evaluate.translate(
            tokenizer, graphdef, state.params, sources, cfg.data.row_len, beam_size=beam_size, batch_size=batch_size
        )

    return decode, f"{run_dir}, first {len(sources)} test sentences"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a trained run (default: the tiny preset at random weights)")
    parser.add_argument("--beams", default="1,4", help="beam sizes to time (default 1,4)")
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    beams = [int(b) for b in args.beams.split(",")]
    before = harness.machine_state()
    if args.run:
        decode, what = run_decoder(args.run, args.sentences, args.batch_size)
    else:
        decode, what = random_model_decoder(args.sentences, args.batch_size)
    candidates = {beam: partial(decode, beam) for beam in beams}
    seconds = harness.interleaved(candidates, args.repeats, warmup=1)  # the warm-up compiles
    results = [
        {
            "beam_size": beam,
            "sentences_per_second": args.sentences / harness.median(seconds[beam]),
            "seconds": seconds[beam],
        }
        for beam in beams
    ]

    print(
        f"{what}; {args.sentences} sentences, batches of {args.batch_size}, medians of {args.repeats} interleaved runs"
    )
    print(f"Machine: {harness.describe_machine(before)}")
    rows = [
        ["greedy" if r["beam_size"] == 1 else f"beam {r['beam_size']}", f"{r['sentences_per_second']:.1f}"]
        for r in results
    ]
    print(harness.markdown_table(["decoding", "sentences/s"], rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"what": what, "machine": before, "sentences": args.sentences, "batch_size": args.batch_size}
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(json.dumps({**payload, "results": results}, indent=2) + "\n")
        tmp.replace(args.json)


if __name__ == "__main__":
    main()
