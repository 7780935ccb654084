"""Which guide batch a guided step uses: the policies of ``guidance.guide_batch``.

* ``fixed``: one batch of the guide split for the whole run (the original's default);
* ``cycle``: a new batch at every guided step, cycling through the guide split;
* ``epoch``: a new batch whenever the training data starts a new epoch;
* ``train``: the current training batch itself (no held-out data).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gradtune.data.batching import Batch, Encoded, training_batches

GuideSource = Callable[[int, Batch], Batch]  # (epoch, train batch) -> guide batch


def guide_batches(policy: str, guide: Sequence[Encoded], rows: int, row_len: int, seed: int) -> GuideSource:
    if policy == "train":
        return lambda epoch, train_batch: train_batch
    stream = (batch for _, batch in training_batches(guide, rows, row_len, seed + 1))
    if policy == "cycle":
        return lambda epoch, train_batch: next(stream)
    first = next(stream)
    if policy == "fixed":
        return lambda epoch, train_batch: first
    if policy == "epoch":
        latest = {0: first}  # the guide batch of the latest epoch

        def for_epoch(epoch: int, train_batch: Batch) -> Batch:
            if epoch not in latest:
                latest.clear()
                latest[epoch] = next(stream)
            return latest[epoch]

        return for_epoch
    raise ValueError(f"unknown guide-batch policy {policy!r}")
