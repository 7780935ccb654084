"""The data of a run, built in memory: clean splits, tokenizer, encoded examples, data-weight ids."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm

from gradtune.data.batching import Encoded, encode_pairs
from gradtune.data.cleaning import Filters
from gradtune.data.corpora import Example, read_text_lines
from gradtune.data.prepare import Prepared, prepare_splits
from gradtune.data.span_corruption import corrupted_pairs, pack_texts, text_length
from gradtune.data.splits import split_examples
from gradtune.data.tokenizer import train_tokenizer
from gradtune.errors import DataError
from gradtune.files import write_bytes, write_json
from gradtune.train.config import Config, DataConfig
from gradtune.train.data_weights import DataTags, data_tags, one_field, write_counts

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
    tokenizer_file = tokenizer_file or given_tokenizer(cfg.data)
    if cfg.data.objective == "span_corruption":
        return load_span_data(cfg, tokenizer_file)
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


def given_tokenizer(d: DataConfig) -> Path | None:
    """``data.tokenizer``, checked to be a file; None when the run trains its own."""
    if not d.tokenizer:
        return None
    path = Path(d.tokenizer)
    if not path.is_file():
        raise DataError(f"data.tokenizer {path}: no such file; give a tokenizer.model, e.g. another run's")
    return path


def text_splits(d: DataConfig) -> tuple[dict[str, list[str]], dict]:
    """The monolingual lines of each split: of ``data.text``'s files split by the stable hash
    of each line, or both sides of ``data.corpus``'s pairs in each pair's own split (so that
    no dev, test or guide pair of the corpus is ever pre-trained on)."""
    if not d.text:
        prepared = load_splits(d)
        lines = {name: [s for e in split for s in (e.source, e.target)] for name, split in prepared.splits.items()}
        return lines, {"corpus": d.corpus, **prepared.report}
    examples, files = [], []
    for path in (p.strip() for p in d.text.split(",") if p.strip()):
        lines, invalid = read_text_lines(path, d.strict)
        files.append({"name": path, "lines": len(lines), "invalid_utf8_skipped": invalid})
        examples += [Example(line, "", line) for line in lines]
    splits = split_examples(examples, d.dev_fraction, d.test_fraction, d.guide_fraction, d.min_guide)
    return {name: [e.source for e in split] for name, split in splits.items()}, {"text": files}


def load_span_data(cfg: Config, tokenizer_file: Path | None = None) -> RunData:
    """The data of a span-corruption run: each split's lines tokenized, packed into texts that
    fill a row once corrupted, and corrupted (split ``k`` by one generator seeded by
    ``(seed, k)``, the same every epoch). The tokenizer has ``vocab_size − sentinels``
    pieces; the sentinels take the ids after them."""
    d = cfg.data
    lines, report = text_splits(d)
    if tokenizer_file is not None:
        tokenizer = spm.SentencePieceProcessor(model_file=str(tokenizer_file))
    else:
        tokenizer = train_tokenizer(lines["train"], d.vocab_size - d.sentinels)
    length = text_length(d.row_len, d.noise_density, d.mean_span)
    vocab = tokenizer.vocab_size() + d.sentinels
    splits, encoded = {}, {}
    for k, (name, split_lines) in enumerate(lines.items()):
        texts = list(pack_texts(tokenizer.encode(split_lines), length))
        encoded[name] = corrupted_pairs(texts, vocab, d.noise_density, d.mean_span, (cfg.train.seed, k))
        splits[name] = [Example(tokenizer.decode(t.tolist()), "", str(i)) for i, t in enumerate(texts)]
        if not texts:
            raise DataError(f"the {name} split has no text to corrupt; give more text (data.text or data.corpus)")
    report["splits"] = {name: len(texts) for name, texts in splits.items()}
    report["lines"] = {name: len(split_lines) for name, split_lines in lines.items()}
    tags = data_tags(d, splits["train"], encoded["train"], ["text"])
    return RunData(splits, tokenizer, encoded, tags, report)


def model_vocab_size(cfg: Config, tokenizer: spm.SentencePieceProcessor) -> int:
    """The model's vocabulary: the tokenizer's pieces, then the sentinels (``data.sentinels``)."""
    return tokenizer.vocab_size() + cfg.data.sentinels


def fingerprint(examples: Sequence[Example]) -> str:
    """A hash of the pairs, in order: ``data.json``'s ``train_sha256``, which tells whether a
    later tool rebuilt the very training split a run trained on."""
    digest = hashlib.sha256()
    for e in examples:
        digest.update(f"{one_field(e.source)}\t{one_field(e.target)}\n".encode())  # as example_weights.tsv holds them
    return digest.hexdigest()


def write_data(run_dir: Path, data: RunData) -> None:
    """The run directory's record of its data: ``tokenizer.model``, ``data.json``, ``weight_counts.json``."""
    write_bytes(run_dir / TOKENIZER, data.tokenizer.serialized_model_proto())
    write_json(run_dir / "data.json", {**data.report, "train_sha256": fingerprint(data.splits["train"])}, indent=2)
    write_counts(run_dir / WEIGHT_COUNTS, data.tags)
