"""Token-level cross-entropy with label smoothing; padding (id 0) never counts."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def token_losses(logits: jax.Array, targets: jax.Array, label_smoothing: jax.Array | float = 0.0) -> jax.Array:
    """Per-token loss ``(1 − ε)·(−log p_y) + ε·mean_v(−log p_v)`` (ε = label smoothing).

    Written as ``logsumexp(z) − (1 − ε)·z_y − ε·mean(z)`` so that no (tokens × vocab) array
    of log-probabilities is materialised. Linear in ε, so its exact hypergradient is the
    derivative of ``z_y − mean(z)`` along the look-ahead's direction (a tangent pass over
    the batch; ``output_token_losses`` keeps that pass out of the output projection).
    """
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))  # bfloat16 logits: the loss in float32
    lse = jax.nn.logsumexp(logits, axis=-1)
    target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    if isinstance(label_smoothing, float) and label_smoothing == 0.0:
        return lse - target_logit
    return lse - (1.0 - label_smoothing) * target_logit - label_smoothing * jnp.mean(logits, axis=-1)


def output_token_losses(
    hidden: jax.Array, embedding: jax.Array, targets: jax.Array, label_smoothing: jax.Array | float = 0.0
) -> jax.Array:
    """``token_losses`` of the logits ``hidden · embeddingᵀ`` (a tied output embedding).

    Written ``logsumexp(z) − z_y + ε·(z_y − mean(z))`` with the label-smoothing term taken
    from the states: ``z_y − mean(z) = h·(E[y] − mean(E))``. Same values and gradients (to
    round-off), but the derivative in ε of the gradient no longer passes through the
    (tokens × vocab) logits, so the tangent pass that the exact label-smoothing
    hypergradient needs skips the output projection (measured by ``bench/hypergrad_overhead.py``,
    variant (c); numbers in ``bench/results/``). ``z_y`` itself is still read off
    the logits: its gradient then joins the softmax's in one (tokens × vocab) array, which
    keeps the plain step as fast as before.
    """
    shape = targets.shape
    hidden, targets = hidden.reshape(-1, hidden.shape[-1]), targets.reshape(-1)  # 2-D products: see model.Linear
    if hidden.dtype == embedding.dtype:
        logits = hidden @ embedding.T
    else:  # bfloat16 states: the product in bfloat16, accumulated and returned in float32
        logits = jnp.matmul(hidden, embedding.T.astype(hidden.dtype), preferred_element_type=embedding.dtype)
        hidden = hidden.astype(embedding.dtype)
    nll = jax.nn.logsumexp(logits, axis=-1) - jnp.take_along_axis(logits, targets[:, None], axis=-1)[:, 0]
    if isinstance(label_smoothing, float) and label_smoothing == 0.0:
        return nll.reshape(shape)
    smoothing = jnp.sum(hidden * (embedding[targets] - jnp.mean(embedding, axis=0)), axis=-1)  # z_y − mean(z)
    return (nll + label_smoothing * smoothing).reshape(shape)


def masked_mean(values: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean over non-padding tokens, and their count."""
    weights = (targets != 0).astype(values.dtype)
    count = jnp.sum(weights)
    return jnp.sum(values * weights) / jnp.maximum(count, 1.0), count


def accuracy_counts(logits: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Correct argmax predictions and non-padding tokens."""
    mask = targets != 0
    return jnp.sum((jnp.argmax(logits, -1) == targets) & mask), jnp.sum(mask)
