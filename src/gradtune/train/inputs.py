"""The data of a run: splits, tokenizer (cached in the run directory), encoded examples."""

from __future__ import annotations

from pathlib import Path

from gradtune.data.batching import encode_pairs
from gradtune.data.corpora import Example, load_corpus
from gradtune.data.splits import split_examples
from gradtune.data.tokenizer import load_or_train
from gradtune.train.config import Config


def split_corpus(cfg: Config) -> dict[str, list[Example]]:
    """The run's train / guide / dev / test splits of its corpus (the same every time)."""
    d = cfg.data
    return split_examples(load_corpus(d.corpus), d.dev_fraction, d.test_fraction, d.guide_fraction, d.min_guide)


def prepare_data(cfg: Config, run_dir: Path):
    """Splits, tokenizer (cached in the run directory) and encoded examples."""
    d = cfg.data
    splits = split_corpus(cfg)
    train_text = (s for e in splits["train"] for s in (e.source, e.target))
    tokenizer = load_or_train(run_dir / "tokenizer.model", train_text, d.vocab_size)
    encoded = {
        name: encode_pairs(tokenizer, [(e.source, e.target) for e in split], d.row_len)
        for name, split in splits.items()
    }
    return splits, tokenizer, encoded
