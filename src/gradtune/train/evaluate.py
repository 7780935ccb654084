"""Evaluation during and after training: loss, token accuracy, BLEU and chrF."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import jax
import numpy as np
import sacrebleu
from tqdm import tqdm

from gradtune.data.batching import Batch
from gradtune.data.tokenizer import BOS_ID, EOS_ID
from gradtune.seq2seq.decode import translate_ids


def loss_and_accuracy(eval_counts: Callable, params, batches: Sequence[Batch]) -> dict[str, float]:
    """Token-level loss and accuracy over ``batches`` (padding excluded)."""
    totals = 0
    for batch in batches:  # one at a time: independent programs with collectives, dispatched
        # together, can deadlock XLA's CPU devices (each device may start a different one)
        totals = jax.block_until_ready(totals + eval_counts(params, batch))
    loss_sum, correct, tokens = (float(x) for x in jax.device_get(totals))
    return {"loss": loss_sum / max(tokens, 1.0), "accuracy": correct / max(tokens, 1.0)}


def translate(
    tokenizer,
    graphdef,
    params,
    sources: Sequence[str],
    row_len: int,
    *,
    beam_size: int = 1,
    alpha: float = 0.6,
    batch_size: int = 64,
    progress: bool = False,
) -> list[str]:
    """Translations of ``sources``, in order, by beam search (beam_size 1: greedy) with GNMT
    length penalty ``alpha``. Sources longer than a row are cut to ``row_len`` tokens.

    Sources are batched by length, so a batch stops decoding when its longest translation
    ends; every batch has the same shape (the last is padded): one compilation.
    """
    encoded = tokenizer.encode(list(sources))
    by_length = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    out = [""] * len(encoded)
    with tqdm(total=len(encoded), disable=not progress, unit="sentence", file=sys.stderr, dynamic_ncols=True) as bar:
        for start in range(0, len(by_length), batch_size):
            chunk = by_length[start : start + batch_size]
            ids = np.zeros((batch_size, row_len), np.int32)
            for row, i in enumerate(chunk):
                piece_ids = [*encoded[i][: row_len - 1], EOS_ID]
                ids[row, : len(piece_ids)] = piece_ids
            tokens = translate_ids(
                graphdef, params, ids, beam_size=beam_size, alpha=alpha, bos_id=BOS_ID, eos_id=EOS_ID,
                pieces=tokenizer.vocab_size(),
            )  # fmt: skip
            for i, row in zip(chunk, np.asarray(tokens).tolist(), strict=False):
                out[i] = tokenizer.decode(row[: row.index(EOS_ID)] if EOS_ID in row else row)
            bar.update(len(chunk))
    return out


def scores_and_signatures(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, tuple[float, str]]:
    """Corpus BLEU and chrF of ``hypotheses`` against one reference each (sacreBLEU's defaults),
    each with its sacreBLEU signature (settings and version), to report beside the score."""
    out = {}
    for name, metric in (("bleu", sacrebleu.metrics.BLEU()), ("chrf", sacrebleu.metrics.CHRF())):
        score = metric.corpus_score(list(hypotheses), [list(references)]).score
        out[name] = (score, str(metric.get_signature()))
    return out


def bleu_chrf(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    return {name: score for name, (score, _) in scores_and_signatures(hypotheses, references).items()}
