"""A SentencePiece tokenizer shared by source and target, trained in memory.

Ids: 0 = padding (masked out of every loss and metric), 1 = unknown, 2 = BOS, 3 = EOS.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable

import sentencepiece as spm

from gradtune.errors import DataError

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


def _vocab_error(error: RuntimeError, vocab_size: int) -> DataError:
    """SentencePiece's multi-part message as one line naming data.vocab_size and the fix."""
    text = str(error)
    if found := re.search(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)", text):
        return DataError(
            f"data.vocab_size {found[1]} is larger than the training data allows ({found[2]} pieces at most); "
            f"set data.vocab_size to {found[2]} or less, or use a bigger corpus"
        )
    if found := re.search(r"smaller than required_chars\. (\d+) vs (\d+)", text):
        return DataError(
            f"data.vocab_size {found[1]} is smaller than the {found[2]} distinct characters of the training data "
            f"need; set data.vocab_size to more than {found[2]}"
        )
    detail = text.splitlines()[0] if text else type(error).__name__
    return DataError(f"could not train a {vocab_size}-piece tokenizer ({detail}); change data.vocab_size")


def train_tokenizer(sentences: Iterable[str], vocab_size: int = 8000) -> spm.SentencePieceProcessor:
    """Train a unigram model of exactly ``vocab_size`` pieces on ``sentences``; returns the processor."""
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
            num_threads=2,
            minloglevel=2,
        )
    except RuntimeError as e:
        raise _vocab_error(e, vocab_size) from e
    return spm.SentencePieceProcessor(model_proto=model.getvalue())
