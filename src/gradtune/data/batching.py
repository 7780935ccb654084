"""Packed batches of fixed shape, and a background-thread prefetcher.

Several examples share a row: each token carries a segment id (1, 2, … within its row;
0 = padding) and its position inside its example, so attention can stay inside examples.
Every batch has the same shape ``(rows, row_len)``: one compilation for the whole run.

Batch arrays (int32): ``src``, ``src_seg``, ``src_pos``, ``tgt_in`` (BOS + target),
``tgt_out`` (target + EOS; 0 where padding), ``tgt_seg``, ``tgt_pos``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence

import numpy as np

from gradtune.data.tokenizer import BOS_ID, EOS_ID

Batch = dict[str, np.ndarray]
Encoded = tuple[np.ndarray, np.ndarray]  # (source ids + EOS, target ids + EOS)

FIELDS = ("src", "src_seg", "src_pos", "tgt_in", "tgt_out", "tgt_seg", "tgt_pos")


def encode_pairs(tokenizer, pairs: Sequence[tuple[str, str]], row_len: int) -> list[Encoded]:
    """Token ids of each pair, cut to fit one row (EOS kept)."""
    sources = tokenizer.encode([s for s, _ in pairs])
    targets = tokenizer.encode([t for _, t in pairs])
    cut = row_len - 1
    return [
        (np.array([*s[:cut], EOS_ID], np.int32), np.array([*t[:cut], EOS_ID], np.int32))
        for s, t in zip(sources, targets, strict=True)
    ]


def _empty(rows: int, row_len: int) -> Batch:
    return {name: np.zeros((rows, row_len), np.int32) for name in FIELDS}


def pack(examples: Sequence[Encoded], order: Sequence[int], rows: int, row_len: int) -> Iterator[Batch]:
    """Batches of ``examples`` taken in ``order``, first-fit into the rows of a batch.

    A batch is emitted when the next example fits in none of its rows; the last one is
    padded with empty rows, so its shape is the same as every other's.
    """
    batch = _empty(rows, row_len)
    used = np.zeros((rows, 2), np.int64)  # tokens used per row: source, target
    segments = np.zeros(rows, np.int64)
    for index in order:
        src, tgt = examples[index]
        fits = np.nonzero((used[:, 0] + len(src) <= row_len) & (used[:, 1] + len(tgt) <= row_len))[0]
        if len(fits) == 0:
            yield batch
            batch, used, segments = _empty(rows, row_len), np.zeros_like(used), np.zeros_like(segments)
            fits = [0]
        r = fits[0]
        segments[r] += 1
        s0, t0 = used[r]
        s1, t1 = s0 + len(src), t0 + len(tgt)
        batch["src"][r, s0:s1] = src
        batch["src_seg"][r, s0:s1] = segments[r]
        batch["src_pos"][r, s0:s1] = np.arange(len(src))
        batch["tgt_out"][r, t0:t1] = tgt
        batch["tgt_in"][r, t0] = BOS_ID
        batch["tgt_in"][r, t0 + 1 : t1] = tgt[:-1]
        batch["tgt_seg"][r, t0:t1] = segments[r]
        batch["tgt_pos"][r, t0:t1] = np.arange(len(tgt))
        used[r] = (s1, t1)
    if used.any():
        yield batch


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """A permutation of range(n) that depends only on (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def training_batches(
    examples: Sequence[Encoded], rows: int, row_len: int, seed: int, start: tuple[int, int] = (0, 0)
) -> Iterator[tuple[int, int, Batch]]:
    """Endless ``(epoch, index, batch)`` of packed batches, reshuffled every epoch.

    The order depends only on ``seed``, so a run resumes exactly by starting at the
    position ``(epoch, index)`` of the first batch it has not consumed.
    """
    epoch, skip = start
    while True:
        for index, batch in enumerate(pack(examples, epoch_order(len(examples), seed, epoch), rows, row_len)):
            if index >= skip:
                yield epoch, index, batch
        epoch, skip = epoch + 1, 0


def prefetch(iterator: Iterator[Batch], size: int = 4) -> Iterator[Batch]:
    """Produce items of ``iterator`` on a background thread, ``size`` ahead.

    Errors in the producer are raised in the consumer.
    """
    items: queue.Queue = queue.Queue(maxsize=size)
    done = object()

    def produce() -> None:
        try:
            for item in iterator:
                items.put(item)
        except BaseException as e:
            items.put(e)
        items.put(done)

    threading.Thread(target=produce, daemon=True).start()
    while (item := items.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item
