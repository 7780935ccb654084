"""Which guide batch a guided step uses: the policies of ``guidance.guide_batch``.

* ``fixed``: one batch of the guide split for the whole run (the original's default);
* ``cycle``: a new batch at every guided step, cycling through the guide split;
* ``epoch``: a new batch whenever the training data starts a new epoch;
* ``train``: the current training batch itself (no held-out data).
"""

from __future__ import annotations

from collections.abc import Sequence

from gradtune.data.batching import Batch, Encoded, training_batches

POLICIES = ("fixed", "cycle", "epoch", "train")


class GuideBatches:
    """The guide batch of each guided step, a pure function of (epoch, guided-step count).

    The guide split's batches form one endless, deterministic sequence (shuffled anew each
    guide epoch); ``fixed`` takes its first batch, ``cycle`` the n-th at the n-th guided
    step, ``epoch`` the e-th in training epoch e. Nothing to save for an exact resume.
    """

    def __init__(self, policy: str, guide: Sequence[Encoded], rows: int, row_len: int, seed: int):
        if policy not in POLICIES:
            raise ValueError(f"unknown guide-batch policy {policy!r}; choose one of {', '.join(POLICIES)}")
        self.policy = policy
        self._args = (guide, [(rows, row_len)], seed + 1)
        self._restart()

    def _restart(self) -> None:
        self._stream = training_batches(*self._args)
        self._index, self._batch = -1, None

    def _nth(self, n: int) -> Batch:
        if n < self._index:
            self._restart()
        while self._index < n:
            self._index += 1
            self._batch = next(self._stream)[1]
        return self._batch

    def __call__(self, epoch: int, guided_count: int, train_batch: Batch) -> Batch:
        if self.policy == "train":
            return train_batch
        return self._nth({"fixed": 0, "cycle": guided_count, "epoch": epoch}[self.policy])
