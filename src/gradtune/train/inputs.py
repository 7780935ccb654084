"""The data of a run, built in memory: clean splits, tokenizer, encoded examples, data-weight ids."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm

from gradtune.data.batching import Encoded, encode_pairs
from gradtune.data.cleaning import Filters
from gradtune.data.corpora import Example
from gradtune.data.prepare import Prepared, prepare_splits
from gradtune.data.tokenizer import train_tokenizer
from gradtune.files import write_bytes, write_json
from gradtune.train.config import Config, DataConfig
from gradtune.train.data_weights import DataTags, data_tags, write_counts

TOKENIZER = "tokenizer.model"
WEIGHT_COUNTS = "weight_counts.json"  # training tokens per corpus, bucket and example


@dataclass(frozen=True)
class RunData:
    splits: dict[str, list[Example]]
    tokenizer: spm.SentencePieceProcessor
    encoded: dict[str, list[Encoded]]  # split name → token ids of each pair
    tags: DataTags  # the training split's corpus, bucket and example ids
    report: dict  # pairs read, removed by each filter, split sizes (data.json)


def load_splits(d: DataConfig) -> Prepared:
    """The sources of ``d.corpus``, cleaned and split as ``d`` says."""
    filters = Filters(d.min_tokens, d.max_tokens, d.max_length_ratio, d.drop_copies, d.drop_duplicates)
    return prepare_splits(
        d.corpus, filters, d.strict, d.guide_corpus, d.dev_fraction, d.test_fraction, d.guide_fraction, d.min_guide
    )


def load_data(cfg: Config, prepared: Prepared | None = None, tokenizer_file: Path | None = None) -> RunData:
    """Splits, tokenizer (trained on the training split, or read from ``tokenizer_file``),
    encoded examples and data-weight ids; nothing is written. ``prepared``: splits made by
    the caller instead of from ``cfg.data`` (experiments that build their own data)."""
    d = cfg.data
    prepared = prepared or load_splits(d)
    splits = prepared.splits
    if tokenizer_file is not None:
        tokenizer = spm.SentencePieceProcessor(model_file=str(tokenizer_file))
    else:
        tokenizer = train_tokenizer((s for e in splits["train"] for s in (e.source, e.target)), d.vocab_size)
    encoded = {
        name: encode_pairs(tokenizer, [(e.source, e.target) for e in split], d.row_len)
        for name, split in splits.items()
    }
    tags = data_tags(d, splits["train"], encoded["train"], prepared.corpora)
    return RunData(splits, tokenizer, encoded, tags, prepared.report)


def write_data(run_dir: Path, data: RunData) -> None:
    """The run directory's record of its data: ``tokenizer.model``, ``data.json``, ``weight_counts.json``."""
    write_bytes(run_dir / TOKENIZER, data.tokenizer.serialized_model_proto())
    write_json(run_dir / "data.json", data.report, indent=2)
    write_counts(run_dir / WEIGHT_COUNTS, data.tags)
