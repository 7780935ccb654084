#!/usr/bin/env python3
"""Does the data loader keep up? Batches per second it makes vs what the model's training step eats.

For each batch layout (fixed rows; a token budget in length buckets) it times the
background-thread ``BatchStream`` alone (nothing else running), then one jitted plain
training step of the model on a batch of each of the layout's shapes (compilation
excluded; a layout's step rate weights its shapes by how often the loader makes them).
The ratio (loader rate / step rate) is how many times faster than needed the loader is.

The corpus is ``data/bench-de-en.tsv.gz`` when ``scripts/build_bench_corpus.py`` has
built it, else the embedded de-en corpus.

Usage::

    python bench/data_throughput.py [--corpus SOURCES] [--preset small] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import Counter
from pathlib import Path

import jax

from gradtune.data.batching import Batch, BatchStream, Encoded, Shape, batch_shapes, encode_pairs
from gradtune.data.prepare import prepare_splits
from gradtune.data.tokenizer import train_tokenizer
from gradtune.train.config import Config
from gradtune.train.setup import build_state
from gradtune.train.steps import make_steps

BENCH_CORPUS = Path(__file__).resolve().parent.parent / "data" / "bench-de-en.tsv.gz"


def loader_rate(encoded: list[Encoded], shapes: list[Shape], batches: int) -> tuple[float, Counter, dict]:
    """Batches per second of a ``BatchStream`` (after a short warm-up), the shapes it made, one batch per shape."""
    stream = BatchStream(encoded, shapes, seed=0)
    samples: dict[Shape, Batch] = {}
    for _ in range(20):
        batch = next(stream)
        samples.setdefault(batch["src"].shape, batch)
    made: Counter = Counter()
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(stream)
        made[batch["src"].shape] += 1
        samples.setdefault(batch["src"].shape, batch)
    seconds = time.perf_counter() - start
    stream.close()
    return batches / seconds, made, samples


def step_seconds(preset: str, vocab_size: int, samples: dict[Shape, Batch], repeats: int) -> dict[Shape, float]:
    """Seconds per jitted plain training step of the model, per batch shape (after compiling)."""
    cfg = Config()
    cfg.model.preset = preset
    cfg.guidance.enabled = False
    _, _, setup, state = build_state(cfg, vocab_size)
    step = make_steps(setup, seed=0).plain  # jitted exactly as a run jits it
    seconds = {}
    for shape, batch in samples.items():
        batch = jax.device_put(batch)
        state, metrics, _ = step(state, batch)  # compile
        jax.block_until_ready(metrics)
        start = time.perf_counter()
        for _ in range(repeats):
            state, metrics, _ = step(state, batch)
        jax.block_until_ready(metrics)
        seconds[shape] = (time.perf_counter() - start) / repeats
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_corpus = str(BENCH_CORPUS) if BENCH_CORPUS.exists() else "de-en"
    parser.add_argument("--corpus", default=default_corpus, help="sources, as data.corpus (default: %(default)s)")
    parser.add_argument("--preset", default="small", help="model preset whose step is timed (default: %(default)s)")
    parser.add_argument("--row-len", type=int, default=64)
    parser.add_argument("--batch-rows", type=int, default=32)
    parser.add_argument("--batch-tokens", type=int, default=2048, help="token budget of the bucketed layout")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--batches", type=int, default=400, help="batches timed per layout")
    parser.add_argument("--steps", type=int, default=5, help="training steps timed per shape")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    train = prepare_splits(args.corpus).splits["train"]
    tokenizer = train_tokenizer((s for e in train for s in (e.source, e.target)), args.vocab_size)
    encoded = encode_pairs(tokenizer, [(e.source, e.target) for e in train], args.row_len)
    print(f"{len(encoded):,} training pairs of {args.corpus}, ready in {time.perf_counter() - start:.0f} s")

    layouts = {
        f"fixed rows {args.batch_rows}x{args.row_len}": batch_shapes(args.row_len, args.batch_rows),
        f"token budget {args.batch_tokens}": batch_shapes(args.row_len, args.batch_rows, args.batch_tokens),
    }
    rows = []
    for name, shapes in layouts.items():
        rate, made, samples = loader_rate(encoded, shapes, args.batches)
        seconds = step_seconds(args.preset, tokenizer.vocab_size(), samples, args.steps)
        mean_step = sum(seconds[shape] * n for shape, n in made.items()) / sum(made.values())
        tokens = sum(int((b["tgt_out"] > 0).sum()) for b in samples.values()) / len(samples)
        rows.append(
            {
                "layout": name,
                "shapes": [list(s) for s in shapes],
                "loader_batches_per_s": rate,
                "step_batches_per_s": 1 / mean_step,
                "ratio": rate * mean_step,
                "target_tokens_per_batch": tokens,
                "step_seconds_by_shape": {f"{r}x{c}": s for (r, c), s in seconds.items()},
            }
        )

    device = jax.devices()[0]
    print(f"\n{args.preset} model, plain step, on {device.device_kind} ({device.platform}); {platform.processor()}")
    print(f"{'layout':24s} {'shapes':>6s} {'loader batches/s':>17s} {'step batches/s':>15s} {'loader/step':>12s}")
    for r in rows:
        print(
            f"{r['layout']:24s} {len(r['shapes']):6d} {r['loader_batches_per_s']:17.1f} "
            f"{r['step_batches_per_s']:15.2f} {r['ratio']:11.1f}x"
        )
    if args.json:
        result = {
            "corpus": args.corpus,
            "train_pairs": len(encoded),
            "preset": args.preset,
            "device": f"{device.device_kind} ({device.platform})",
            "cpu_count": os.cpu_count(),
            "layouts": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
