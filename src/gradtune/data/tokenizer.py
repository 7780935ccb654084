"""A SentencePiece tokenizer shared by source and target, trained in memory.

Ids: 0 = padding (masked out of every loss and metric), 1 = unknown, 2 = BOS, 3 = EOS.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm

from gradtune.errors import DataError

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


def train_tokenizer(sentences: Iterable[str], vocab_size: int = 8000) -> spm.SentencePieceProcessor:
    """Train a unigram model on ``sentences``; returns the loaded processor."""
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            vocab_size=vocab_size,
            model_type="unigram",
            character_coverage=1.0,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            hard_vocab_limit=False,
            num_threads=2,
            minloglevel=2,
        )
    except RuntimeError as e:
        raise DataError(f"could not train a {vocab_size}-piece tokenizer: {e}; lower vocab_size") from e
    return spm.SentencePieceProcessor(model_proto=model.getvalue())


def load_or_train(path: Path, sentences: Iterable[str], vocab_size: int) -> spm.SentencePieceProcessor:
    """The tokenizer cached at ``path``, trained and written there first if missing."""
    if path.exists():
        return spm.SentencePieceProcessor(model_file=str(path))
    tokenizer = train_tokenizer(sentences, vocab_size)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(tokenizer.serialized_model_proto())
    tmp.replace(path)
    return tokenizer
