"""Guided values: specs, raw ↔ value maps, hypergradient cleaning and the meta-optimizer.

A guided value is described by a small, frozen ``GuidedSpec``. Its learnable state is a
raw array ``r`` (scalar or vector) kept in a dict keyed by the value's name; the value
used by the model or optimizer is ``spec.activation(r)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import optax

from gradtune.core.activations import Activation

Raw = dict[str, jax.Array]


@dataclass(frozen=True)
class GuidedSpec:
    """One guided value.

    Attributes:
      name: the hyper-parameter it sets, e.g. ``learning_rate`` or ``label_smoothing``.
      init: the value used at step 0 (``act(r0) == init`` exactly).
      activation: maps the raw value to the allowed range.
      shape: ``()`` for a scalar, ``(n,)`` for one value per corpus, bucket or example.
      meta_lr_scale: multiplies this value's meta-optimizer step (not its steepness).
    """

    name: str
    init: float
    activation: Activation = field(default_factory=Activation)
    shape: tuple[int, ...] = ()
    meta_lr_scale: float = 1.0


def init_raw(specs: Sequence[GuidedSpec], dtype: jnp.dtype = jnp.float32) -> Raw:
    """Raw values whose activations equal each spec's initial value."""
    return {s.name: jnp.full(s.shape, s.activation.inverse(s.init), dtype) for s in specs}


def raw_to_values(specs: Sequence[GuidedSpec], raw: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """The values the model and optimizer use: ``act(r)`` for each spec."""
    return {s.name: s.activation(raw[s.name]) for s in specs}


def clean_hypergrads(grads: Raw, inf_value: float = 10.0) -> tuple[Raw, jax.Array]:
    """NaN → 0 and ±inf → ±inf_value; returns the cleaned grads and how many were replaced."""
    bad = sum(jnp.sum(~jnp.isfinite(g)) for g in jax.tree.leaves(grads))
    cleaned = jax.tree.map(lambda g: jnp.nan_to_num(g, nan=0.0, posinf=inf_value, neginf=-inf_value), grads)
    return cleaned, jnp.asarray(bad, jnp.int32)


def meta_optimizer(
    specs: Sequence[GuidedSpec],
    learning_rate: float | optax.Schedule = 3e-3,
    base: optax.GradientTransformation | None = None,
    clip: float | None = None,
) -> optax.GradientTransformation:
    """The optimizer of the raw guided values (default: Adam at ``learning_rate``).

    ``clip`` bounds each (cleaned) hypergradient to [−clip, clip] before ``base``.
    Per-value ``meta_lr_scale`` multiplies each value's step after the base optimizer, so
    it really scales the step even for scale-invariant optimizers such as Adam.
    """
    if base is None:
        base = optax.adam(learning_rate)
    scales = {s.name: s.meta_lr_scale for s in specs}
    parts = [optax.clip(clip)] if clip else []
    parts += [
        base,
        optax.stateless(lambda updates, params=None: {k: scales[k] * u for k, u in updates.items()}),
    ]
    return optax.chain(*parts)
