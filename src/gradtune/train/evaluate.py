"""Evaluation during and after training: loss, token accuracy, BLEU and chrF."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import numpy as np
import sacrebleu

from gradtune.data.batching import Batch
from gradtune.data.tokenizer import BOS_ID, EOS_ID
from gradtune.seq2seq.decode import greedy_decode


def loss_and_accuracy(eval_counts: Callable, params, batches: Sequence[Batch]) -> dict[str, float]:
    """Token-level loss and accuracy over ``batches`` (padding excluded)."""
    totals = sum(eval_counts(params, b) for b in batches)
    loss_sum, correct, tokens = (float(x) for x in jax.device_get(totals))
    return {"loss": loss_sum / max(tokens, 1.0), "accuracy": correct / max(tokens, 1.0)}


def translate(tokenizer, graphdef, params, sources: Sequence[str], row_len: int, batch_size: int = 64) -> list[str]:
    """Greedy translations of ``sources`` (fixed shapes: the last batch is padded)."""
    out: list[str] = []
    for start in range(0, len(sources), batch_size):
        chunk = list(sources[start : start + batch_size])
        ids = np.zeros((batch_size, row_len), np.int32)
        for i, piece_ids in enumerate(tokenizer.encode(chunk)):
            row = [*piece_ids[: row_len - 1], EOS_ID]
            ids[i, : len(row)] = row
        tokens = np.asarray(greedy_decode(graphdef, params, ids, max_len=row_len, bos_id=BOS_ID, eos_id=EOS_ID))
        for row in tokens[: len(chunk)]:
            row = row.tolist()
            out.append(tokenizer.decode(row[: row.index(EOS_ID)] if EOS_ID in row else row))
    return out


def bleu_chrf(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    return {
        "bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
        "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
    }
