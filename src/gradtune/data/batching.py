"""Packed batches of a few fixed shapes, in a resumable order, made on a background thread.

Several examples share a row: each token carries a segment id (1, 2, … within its row;
0 = padding) and its position inside its example, so attention stays inside examples,
and padding (token 0, segment 0) is masked out of attention and of every loss.

Batches come in a short, fixed list of shapes ``(rows, row_len)``, so a jitted step
compiles once per shape:

* fixed rows (``batch_tokens = 0``): one shape, ``(batch_rows, row_len)``;
* a token budget with length buckets (``batch_tokens > 0``): row lengths 8, 16, 32, …
  doubling up to ``row_len``, each with ``batch_tokens // length`` rows (4 shapes for
  ``row_len = 64``). An example goes to the shortest bucket that holds its longer side,
  so short examples are not padded to ``row_len``.

Within a shape, examples are placed first fit into the rows of the batch being filled; a
batch is emitted when the next example of its shape fits in none of its rows.

Batch arrays (int32): ``src``, ``src_seg``, ``src_pos``, ``tgt_in`` (BOS + target),
``tgt_out`` (target + EOS; 0 where padding), ``tgt_seg``, ``tgt_pos``; with ``tags``
(per-example integer ids by name, e.g. corpus, bucket, example), also ``tgt_<name>``: each
target token's id (0 where padding), for data weights.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np

from gradtune.data.tokenizer import BOS_ID, EOS_ID
from gradtune.errors import DataError

Batch = dict[str, np.ndarray]
Encoded = tuple[np.ndarray, np.ndarray]  # (source ids + EOS, target ids + EOS)
Shape = tuple[int, int]  # (rows, row_len)
Placement = tuple[int, int, int, int, int]  # example index, row, source start, target start, segment id
Plan = tuple[int, list[Placement]]  # (index of the batch's shape, where each of its examples goes)
Tags = dict[str, np.ndarray]  # name -> one integer id per example

FIELDS = ("src", "src_seg", "src_pos", "tgt_in", "tgt_out", "tgt_seg", "tgt_pos")
MIN_BUCKET = 8  # shortest row of the token-budget layout


def encode_pairs(tokenizer, pairs: Sequence[tuple[str, str]], row_len: int) -> list[Encoded]:
    """Token ids of each pair, cut to fit one row (EOS kept)."""
    sources = tokenizer.encode([s for s, _ in pairs])
    targets = tokenizer.encode([t for _, t in pairs])
    cut = row_len - 1
    return [
        (np.array([*s[:cut], EOS_ID], np.int32), np.array([*t[:cut], EOS_ID], np.int32))
        for s, t in zip(sources, targets, strict=True)
    ]


def batch_shapes(row_len: int, batch_rows: int, batch_tokens: int = 0) -> list[Shape]:
    """The shapes of a run's training batches, shortest rows first (see the module's docstring)."""
    if row_len < 2 or batch_rows < 1:
        raise DataError(f"data.row_len ({row_len}) must be at least 2 and data.batch_rows ({batch_rows}) at least 1")
    if batch_tokens <= 0:
        return [(batch_rows, row_len)]
    if batch_tokens < row_len:
        raise DataError(
            f"data.batch_tokens ({batch_tokens}) is below data.row_len ({row_len}): a batch must hold one "
            "longest example; raise batch_tokens, or set it to 0 for fixed rows of batch_rows"
        )
    lengths = [MIN_BUCKET << i for i in range(row_len.bit_length()) if MIN_BUCKET << i < row_len]
    return [(batch_tokens // length, length) for length in [*lengths, row_len]]


def example_lengths(examples: Sequence[Encoded]) -> np.ndarray:
    """(n, 2) array of source and target lengths."""
    return np.array([(len(src), len(tgt)) for src, tgt in examples], np.int64).reshape(-1, 2)


def check_fit(examples: Sequence[Encoded], shapes: Sequence[Shape]) -> np.ndarray:
    """The examples' lengths, once it is sure that there are some and each fits a row."""
    if not examples:
        raise DataError("no training examples to batch; use a bigger corpus or relax the cleaning filters")
    lengths = example_lengths(examples)
    longest, row_len = int(lengths.max()), max(length for _, length in shapes)
    if longest > row_len:
        raise DataError(f"an example of {longest} tokens does not fit rows of {row_len}; raise data.row_len")
    return lengths


class _Filling:
    """First-fit placement into the rows of one batch being filled."""

    def __init__(self, rows: int, row_len: int):
        self.row_len = row_len
        self.used = np.zeros((rows, 2), np.int64)  # tokens used per row: source, target
        self.segments = np.zeros(rows, np.int64)
        self.placed: list[Placement] = []

    def place(self, index: int, src_len: int, tgt_len: int) -> bool:
        """Put the example in the first row with room for both sides; False if none has."""
        room = (self.used[:, 0] + src_len <= self.row_len) & (self.used[:, 1] + tgt_len <= self.row_len)
        fits = np.flatnonzero(room)
        if len(fits) == 0:
            return False
        row = int(fits[0])
        self.segments[row] += 1
        self.placed.append((index, row, int(self.used[row, 0]), int(self.used[row, 1]), int(self.segments[row])))
        self.used[row] += (src_len, tgt_len)
        return True


def plan_batches(lengths: np.ndarray, order: Sequence[int], shapes: Sequence[Shape]) -> Iterator[Plan]:
    """Where the examples of ``order`` go: batches of ``shapes`` (rows ascending in length).

    Planning needs only the lengths, so skipping to a position costs no array writes.
    """
    row_lens = np.array([row_len for _, row_len in shapes])
    buckets = np.searchsorted(row_lens, lengths.max(axis=1))  # the shortest row that holds each example
    filling = [_Filling(*shape) for shape in shapes]
    for index in order:
        k = int(buckets[index])
        src_len, tgt_len = int(lengths[index, 0]), int(lengths[index, 1])
        if not filling[k].place(int(index), src_len, tgt_len):
            yield k, filling[k].placed
            filling[k] = _Filling(*shapes[k])
            filling[k].place(int(index), src_len, tgt_len)
    for k, batch in enumerate(filling):
        if batch.placed:
            yield k, batch.placed


def build_batch(
    examples: Sequence[Encoded], placed: Sequence[Placement], shape: Shape, tags: Tags | None = None
) -> Batch:
    """The arrays of one planned batch; everything not written stays 0 (padding)."""
    tags = tags or {}
    batch = {name: np.zeros(shape, np.int32) for name in (*FIELDS, *(f"tgt_{k}" for k in tags))}
    for index, row, s0, t0, segment in placed:
        src, tgt = examples[index]
        s1, t1 = s0 + len(src), t0 + len(tgt)
        batch["src"][row, s0:s1] = src
        batch["src_seg"][row, s0:s1] = segment
        batch["src_pos"][row, s0:s1] = np.arange(len(src))
        batch["tgt_out"][row, t0:t1] = tgt
        batch["tgt_in"][row, t0] = BOS_ID
        batch["tgt_in"][row, t0 + 1 : t1] = tgt[:-1]
        batch["tgt_seg"][row, t0:t1] = segment
        batch["tgt_pos"][row, t0:t1] = np.arange(len(tgt))
        for name, ids in tags.items():
            batch[f"tgt_{name}"][row, t0:t1] = ids[index]
    return batch


def pack(
    examples: Sequence[Encoded], order: Sequence[int], rows: int, row_len: int, tags: Tags | None = None
) -> Iterator[Batch]:
    """Batches of shape ``(rows, row_len)`` of ``examples`` taken in ``order``, first fit."""
    shape = (rows, row_len)
    for _, placed in plan_batches(example_lengths(examples), order, [shape]):
        yield build_batch(examples, placed, shape, tags)


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """A permutation of range(n) that depends only on (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


class StreamState(NamedTuple):
    """Where a training stream stands: the next batch is batch ``position`` of epoch ``epoch``."""

    epoch: int
    position: int


START = StreamState(0, 0)


def training_batches(
    examples: Sequence[Encoded],
    shapes: Sequence[Shape],
    seed: int,
    start: StreamState = START,
    tags: Tags | None = None,
) -> Iterator[tuple[StreamState, Batch]]:
    """Endless batches from ``start``, each with the state that follows it; reshuffled every epoch.

    The order depends only on (examples, shapes, seed): resuming from a state gives the same
    batches as going on. Skipped batches are planned, not built.
    """
    lengths = check_fit(examples, shapes)
    epoch, skip = start
    while True:
        plans = plan_batches(lengths, epoch_order(len(examples), seed, epoch), shapes)
        upcoming = next(plans, None)
        position = 0
        while upcoming is not None:
            (k, placed), upcoming = upcoming, next(plans, None)
            if position >= skip:
                after = StreamState(epoch, position + 1) if upcoming is not None else StreamState(epoch + 1, 0)
                yield after, build_batch(examples, placed, shapes[k], tags)
            position += 1
        epoch, skip = epoch + 1, 0


def visit_counts(examples: Sequence[Encoded], shapes: Sequence[Shape], seed: int, batches: int) -> np.ndarray:
    """How many times each example is in the first ``batches`` batches of ``training_batches``."""
    lengths, counts = check_fit(examples, shapes), np.zeros(len(examples), np.int64)
    epoch = 0
    while batches > 0:
        for _, placed in plan_batches(lengths, epoch_order(len(examples), seed, epoch), shapes):
            counts[[index for index, *_ in placed]] += 1
            batches -= 1
            if batches == 0:
                break
        epoch += 1
    return counts


class BatchStream:
    """``training_batches`` made ``prefetch`` ahead on a background thread, so the step never waits.

    ``next(stream)`` is the next batch; ``stream.state()`` is the position of the batch after
    the last one returned, to store in a checkpoint; ``BatchStream(..., start=state)``
    resumes there. Errors of the producer are raised by ``next``.
    """

    def __init__(
        self,
        examples: Sequence[Encoded],
        shapes: Sequence[Shape],
        seed: int,
        start: StreamState = START,
        prefetch: int = 4,
        tags: Tags | None = None,
    ):
        check_fit(examples, shapes)
        self._state = StreamState(*start)
        self._queue: queue.Queue = queue.Queue(maxsize=prefetch)
        self._stop = threading.Event()
        batches = training_batches(examples, shapes, seed, self._state, tags)
        threading.Thread(target=self._produce, args=(batches,), daemon=True).start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, batches: Iterator[tuple[StreamState, Batch]]) -> None:
        try:
            for item in batches:
                if not self._put(item):
                    return
        except BaseException as e:
            self._put(e)

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> Batch:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        self._state, batch = item
        return batch

    def state(self) -> StreamState:
        """(epoch, position) of the next batch ``next`` returns."""
        return self._state

    def close(self) -> None:
        """Stop the producer thread."""
        self._stop.set()
