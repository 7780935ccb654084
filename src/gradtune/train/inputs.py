"""The data of a run: clean splits, tokenizer (cached in the run directory), encoded examples."""

from __future__ import annotations

import json
from pathlib import Path

from gradtune.data.batching import encode_pairs
from gradtune.data.cleaning import Filters
from gradtune.data.prepare import Prepared, prepare_splits
from gradtune.data.tokenizer import load_or_train
from gradtune.train.config import Config, DataConfig


def load_splits(d: DataConfig) -> Prepared:
    """The sources of ``d.corpus``, cleaned and split as ``d`` says."""
    filters = Filters(d.min_tokens, d.max_tokens, d.max_length_ratio, d.drop_copies, d.drop_duplicates)
    return prepare_splits(
        d.corpus, filters, d.strict, d.guide_corpus, d.dev_fraction, d.test_fraction, d.guide_fraction, d.min_guide
    )


def prepare_data(cfg: Config, run_dir: Path, prepared: Prepared | None = None):
    """Splits, tokenizer (cached in the run directory), encoded examples and corpus names;
    writes ``data.json``. ``prepared``: splits made by the caller instead of from ``cfg.data``
    (experiments that build their own training data)."""
    d = cfg.data
    prepared = prepared or load_splits(d)
    splits = prepared.splits
    train_text = (s for e in splits["train"] for s in (e.source, e.target))
    tokenizer = load_or_train(run_dir / "tokenizer.model", train_text, d.vocab_size)
    encoded = {
        name: encode_pairs(tokenizer, [(e.source, e.target) for e in split], d.row_len)
        for name, split in splits.items()
    }
    report = run_dir / "data.json.tmp"
    report.write_text(json.dumps(prepared.report, indent=2) + "\n")
    report.replace(run_dir / "data.json")
    return splits, tokenizer, encoded, prepared.corpora
