"""The model's losses as pure functions of (params, batch), for the guided trainer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from gradtune.core import Activation
from gradtune.core.data_weights import rows_present, token_weights
from gradtune.seq2seq.loss import accuracy_counts, masked_mean, output_token_losses, token_losses


@dataclass(frozen=True)
class LossValue:
    """A guidable value that acts in the loss (not in the optimizer)."""

    config_key: str  # where its initial (or held) value is set
    activation: Callable[[float], Activation]  # its default activation, given the initial value


# The loss-side values ``train_loss`` reads. Label smoothing: a sigmoid from 0 to 4× its
# initial value (at most 0.9), so that it starts a quarter of the way up, in the live range.
LOSS_VALUES = {
    "label_smoothing": LossValue(
        "optim.label_smoothing", lambda init: Activation("sigmoid", 0.0, min(max(4.0 * init, 0.05), 0.9))
    ),
}
# The data weights: each a vector gathered per token by one id array of the batch (``tgt_<ids>``).
KINDS = ("corpus", "bucket", "example")
DATA_WEIGHTS = {f"{kind}_weights": kind for kind in KINDS}  # guided value → the ids it is gathered by
LAZY_WEIGHTS = ("example_weights",)  # one row per training example: updated lazily


def weight_name(kind: str) -> str:
    """The guided value of a kind of data weight: ``corpus`` → ``corpus_weights``."""
    return f"{kind}_weights"


def data_ids(batch) -> dict[str, jax.Array]:
    """The per-token corpus, bucket and example ids a batch carries (``tgt_<kind>``)."""
    return {kind: batch[f"tgt_{kind}"] for kind in KINDS if f"tgt_{kind}" in batch}


def make_rows_present(sizes: Mapping[str, int]):
    """``batch -> {name: bool mask}`` for the lazy weight vectors (``sizes``: name → rows)."""

    def present(batch):
        ids, mask = data_ids(batch), batch["tgt_out"] != 0
        return {name: rows_present(ids[DATA_WEIGHTS[name]], mask, size) for name, size in sizes.items()}

    return present


class Losses(NamedTuple):
    train: Callable  # (params, batch, key, values) -> (loss, {"tokens": n}): dropout, smoothing, data weights
    guide: Callable  # (params, batch) -> loss: plain cross-entropy, no dropout
    eval_counts: Callable  # (params, batch) -> [summed loss, correct tokens, tokens]


def make_losses(graphdef: nnx.GraphDef) -> Losses:
    """The train loss, guide loss and evaluation counts of a Transformer's graphdef."""

    def losses(params, batch, key=None, label_smoothing=0.0):
        """Per-token losses of the batch's targets (dropout when ``key`` is given)."""
        model = nnx.merge(graphdef, params)
        hidden = model.hidden(batch, key)
        return output_token_losses(hidden, model.output_embedding(), batch["tgt_out"], label_smoothing)

    def train_loss(params, batch, key: jax.Array, values: Mapping[str, jax.Array]):
        token_loss = losses(params, batch, key, values.get("label_smoothing", 0.0))
        weights = token_weights(values, data_ids(batch), DATA_WEIGHTS)
        # Data weights: weighted losses over the unweighted token count (see core.data_weights).
        loss, tokens = masked_mean(token_loss if weights is None else weights * token_loss, batch["tgt_out"])
        return loss, {"tokens": tokens}

    def guide_loss(params, batch):
        return masked_mean(losses(params, batch), batch["tgt_out"])[0]

    def eval_counts(params, batch):
        """Summed loss, correct tokens and token count of one batch (to aggregate)."""
        logits = nnx.merge(graphdef, params)(batch)
        losses = token_losses(logits, batch["tgt_out"])
        correct, tokens = accuracy_counts(logits, batch["tgt_out"])
        mask = batch["tgt_out"] != 0
        return jnp.stack(
            [jnp.sum(jnp.where(mask, losses, 0.0)), correct.astype(losses.dtype), tokens.astype(losses.dtype)]
        )

    return Losses(train_loss, guide_loss, eval_counts)
