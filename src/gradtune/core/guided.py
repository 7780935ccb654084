"""Guided values: specs, raw ↔ value maps, hypergradient cleaning and the meta-optimizer.

A guided value is described by a small, frozen ``GuidedSpec``. Its learnable state is a
raw array ``r`` (scalar or vector) kept in a dict keyed by the value's name; the value
used by the model or optimizer is ``spec.activation(r)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

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
      frequencies: for a vector of weights (data weights), each row's share of the data
        (summing to 1); the values are then normalised to mean 1 under these shares:
        ``h = act(r) / Σ_k f_k·act(r_k)``, so that weights cannot act as a second
        learning rate. ``None``: no normalisation.
      lazy: the rows of a large vector that a step does not touch (per-example weights)
        keep their raw value and meta-optimizer state; the normaliser is then held
        constant in the hypergradient (its share of one row's gradient is O(1/n)), so that
        a row's hypergradient is exactly 0 unless its example is in the batch.
    """

    name: str
    init: float
    activation: Activation = field(default_factory=Activation)
    shape: tuple[int, ...] = ()
    meta_lr_scale: float = 1.0
    frequencies: tuple[float, ...] | None = None
    lazy: bool = False

    def __post_init__(self) -> None:
        if self.frequencies is not None and (len(self.shape) != 1 or len(self.frequencies) != self.shape[0]):
            raise ValueError(f"guided {self.name}: {len(self.frequencies)} frequencies for shape {self.shape}")
        if self.lazy and len(self.shape) != 1:
            raise ValueError(f"guided {self.name}: only a vector can be updated lazily (shape {self.shape})")

    def value(self, raw: jax.Array) -> jax.Array:
        """``act(raw)``, normalised to mean 1 under ``frequencies`` when they are given."""
        h = self.activation(raw)
        if self.frequencies is None:
            return h
        mean = jnp.sum(jnp.asarray(self.frequencies, h.dtype) * h)
        return h / (jax.lax.stop_gradient(mean) if self.lazy else mean)


def init_raw(specs: Sequence[GuidedSpec], dtype: jnp.dtype = jnp.float32) -> Raw:
    """Raw values whose activations equal each spec's initial value.

    Args:
      specs: the guided values.
      dtype: of the raw arrays (float64 for exactness checks).

    Returns:
      ``{name: raw array of the spec's shape}``.
    """
    return {s.name: jnp.full(s.shape, s.activation.inverse(s.init), dtype) for s in specs}


def raw_to_values(specs: Sequence[GuidedSpec], raw: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """The values the model and optimizer use.

    Args:
      specs: the guided values.
      raw: their raw arrays by name.

    Returns:
      ``{name: spec.value(raw[name])}``: ``act(r)``, normalised for weight vectors.
    """
    return {s.name: s.value(raw[s.name]) for s in specs}


def clean_hypergrads(grads: Raw, inf_value: float = 10.0) -> tuple[Raw, jax.Array]:
    """Hypergradients made finite before the meta step (the original's cleaning).

    Args:
      grads: hypergradients by name.
      inf_value: what ±inf becomes (with its sign).

    Returns:
      The grads with NaN → 0 and ±inf → ±inf_value, and how many entries were replaced.
    """
    bad = sum(jnp.sum(~jnp.isfinite(g)) for g in jax.tree.leaves(grads))
    cleaned = jax.tree.map(lambda g: jnp.nan_to_num(g, nan=0.0, posinf=inf_value, neginf=-inf_value), grads)
    return cleaned, jnp.asarray(bad, jnp.int32)


def meta_optimizer(
    specs: Sequence[GuidedSpec],
    learning_rate: float | optax.Schedule = 3e-3,
    base: optax.GradientTransformation | None = None,
    clip: float | None = None,
    lazy_scale: str = "step",
    lazy_b1: float = 0.9,
) -> optax.GradientTransformation:
    """The optimizer of the raw guided values (default: Adam at ``learning_rate``).

    Composed of optax pieces: ``chain(clip, partition({dense: base, lazy: lazy_adam}),
    scale by name)``; without lazy specs, simply ``chain(clip, base, scale by name)``.

    Args:
      specs: the guided values; each one's ``meta_lr_scale`` multiplies its step after the
        base optimizer, so it really scales the step even for scale-invariant optimizers
        such as Adam.
      learning_rate: the meta step (a schedule of the step count, or a number).
      base: any optax optimizer of the dense values (default ``optax.adam(learning_rate)``).
      clip: bounds each (cleaned) hypergradient to [−clip, clip] before the optimizer.
      lazy_scale, lazy_b1: of ``lazy_adam``, which steps the lazy specs (per-row vectors)
        at ``learning_rate`` instead of ``base``; ``update`` then needs ``rows_present``,
        a bool mask for every value (``True`` for the dense ones; ``GuidedTrainer``
        fills those in).

    Returns:
      An optax transformation of the raw values' hypergradients.
    """
    if base is None:
        base = optax.adam(learning_rate)
    lazy = {s.name for s in specs if s.lazy}
    if lazy:
        labels = {s.name: "lazy" if s.name in lazy else "dense" for s in specs}
        rows = lazy_adam(learning_rate, b1=lazy_b1, scale=lazy_scale)
        base = optax.partition({"dense": base, "lazy": rows}, labels, mask_compatible_extra_args=True)
    return optax.chain(
        *([optax.clip(clip)] if clip else []),
        base,
        scale_by_name({s.name: s.meta_lr_scale for s in specs}),
    )


class ScaleByTurnsState(NamedTuple):
    last_sign: optax.Updates  # the sign of each value's last non-zero step (0: none yet)
    scale: optax.Updates  # turn_decay ** (turns so far)


def scale_by_turns(turn_decay: float) -> optax.GradientTransformation:
    """Multiplies each value's step by ``turn_decay`` once more every time its sign turns.

    Chained after a meta optimizer (e.g. Adam) it leaves a start far from the optimum its full
    step until the value first overshoots and turns back, and damps each swing after that, so
    that a value which oscillates (a lagging hypergradient, as forward mode's is) settles. A
    step of exactly 0 neither turns nor erases the last sign.
    """
    if not 0 < turn_decay <= 1:
        raise ValueError(f"turn_decay is {turn_decay}; it must be in (0, 1]")

    def init_fn(params):
        return ScaleByTurnsState(optax.tree.zeros_like(params), optax.tree.ones_like(params))

    def update_fn(updates, state, params=None):
        del params
        signs = jax.tree.map(jnp.sign, updates)
        turned = jax.tree.map(lambda s, last: s * last < 0, signs, state.last_sign)
        scale = jax.tree.map(lambda t, k: jnp.where(t, k * turn_decay, k), turned, state.scale)
        last = jax.tree.map(lambda s, last: jnp.where(s != 0, s, last), signs, state.last_sign)
        return jax.tree.map(lambda u, k: u * k, updates, scale), ScaleByTurnsState(last, scale)

    return optax.GradientTransformation(init_fn, update_fn)


def scale_by_rprop(
    learning_rate: float, eta_minus: float = 0.5, eta_plus: float = 1.2,
    min_step_size: float = 1e-6, max_step_size: float = 50.0,
) -> optax.GradientTransformation:  # fmt: skip
    """iRprop− (Igel & Hüsken, 2000), the rule of ``torch.optim.Rprop``: each value's step
    size grows by ``eta_plus`` while its hypergradient keeps its sign and shrinks by
    ``eta_minus`` when the sign turns; the step is ``step_size · sign(g)``, and none is
    taken at a turn (that hypergradient then counts as 0 for the next comparison).

    Written here because ``optax.scale_by_rprop`` (0.2.8) returns each step one update late,
    and nothing at the first (optax pull request #1725, open). Same state as optax's.
    """

    def init_fn(params):
        return optax.ScaleByRpropState(
            step_sizes=optax.tree.full_like(params, learning_rate), prev_updates=optax.tree.zeros_like(params)
        )

    def update_fn(updates, state, params=None):
        del params
        agree = jax.tree.map(lambda g, prev: jnp.sign(g) * jnp.sign(prev), updates, state.prev_updates)
        factor = lambda a: jnp.where(a > 0, eta_plus, jnp.where(a < 0, eta_minus, 1.0))  # noqa: E731
        sizes = jax.tree.map(
            lambda a, size: jnp.clip(size * factor(a), min_step_size, max_step_size), agree, state.step_sizes
        )
        steps = jax.tree.map(lambda a, g, size: jnp.where(a < 0, 0.0, size * jnp.sign(g)), agree, updates, sizes)
        return steps, optax.ScaleByRpropState(step_sizes=sizes, prev_updates=steps)

    return optax.GradientTransformation(init_fn, update_fn)


def rprop(learning_rate: float, **options) -> optax.GradientTransformation:
    """The iRprop− optimizer (``scale_by_rprop``, descending); ``learning_rate`` is the first step size."""
    return optax.chain(scale_by_rprop(learning_rate, **options), optax.scale(-1.0))


def scale_by_name(scales: Mapping[str, float]) -> optax.GradientTransformation:
    """Multiplies the update of each value in a dict by ``scales[name]``."""
    return optax.stateless(lambda updates, params=None: {k: scales[k] * u for k, u in updates.items()})


class LazyAdamState(NamedTuple):
    row_count: optax.Updates  # meta steps taken by each row (for its bias correction)
    mu: optax.Updates
    nu: optax.Updates


def scale_by_lazy_adam(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-12, scale: str = "row"
) -> optax.GradientTransformationExtraArgs:
    """Adam's rescaling on the rows of each vector present in a step; the others do not move.

    ``update(updates, state, params=None, *, rows_present)``: ``rows_present`` is a tree of
    bool masks shaped like ``updates``. Each row keeps its own moments and step count.
    ``eps`` is small because per-example hypergradients are small (one example's share of
    a batch's loss).

    Args:
      b1, b2, eps: as in ``optax.scale_by_adam``.
      scale: what divides a row's (bias-corrected) first moment.

        * ``"row"``: its own second moment — plain Adam: a row's updates are exactly Adam's
          on the subsequence of steps it took part in. A row seen a few times then moves by
          about ±lr per visit whatever its hypergradient's size (Adam's first step is the
          sign).
        * ``"step"``: the root mean square of this step's hypergradients over the rows
          present — one scale shared by the step's rows, so a row whose hypergradient is
          ten times its neighbours' moves ten times as far, and every step moves the rows
          by the same total (early steps, whose hypergradients are large and say little, do
          not outweigh later ones). For per-example weights, whose rows are seen a handful
          of times, the size of a hypergradient carries most of the information.

    Returns:
      An optax transformation; absent rows' updates are exactly 0.
    """
    if scale not in ("row", "step"):
        raise ValueError(f"lazy_adam scale is {scale!r}; choose 'row' or 'step'")

    def init(params: optax.Params) -> LazyAdamState:
        counts = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.int32), params)
        return LazyAdamState(counts, optax.tree.zeros_like(params), optax.tree.zeros_like(params))  # apart: donated

    def update_row(g, present, row_count, mu, nu):
        mu = jnp.where(present, b1 * mu + (1 - b1) * g, mu)
        nu = jnp.where(present, b2 * nu + (1 - b2) * g**2, nu)
        row_count = row_count + present.astype(jnp.int32)
        k = jnp.maximum(row_count, 1).astype(g.dtype)
        second = nu / (1 - b2**k)
        if scale == "step":  # this step's mean square over the rows present
            second = jnp.sum(jnp.where(present, g**2, 0.0)) / jnp.maximum(jnp.sum(present), 1)
        step = (mu / (1 - b1**k)) / (jnp.sqrt(second) + eps)
        return jnp.where(present, step, 0.0), row_count, mu, nu

    def update(updates, state, params=None, *, rows_present):
        del params
        out = jax.tree.map(update_row, updates, rows_present, state.row_count, state.mu, state.nu)
        step, row_count, mu, nu = jax.tree.transpose(jax.tree.structure(updates), jax.tree.structure((0,) * 4), out)
        return step, LazyAdamState(row_count, mu, nu)

    return optax.GradientTransformationExtraArgs(init, update)


def lazy_adam(
    learning_rate: float | optax.Schedule,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-12,
    scale: str = "row",
) -> optax.GradientTransformationExtraArgs:
    """Adam that moves only the rows present in a step: ``scale_by_lazy_adam`` then the
    learning rate, as ``optax.adam`` is ``scale_by_adam`` then the learning rate.

    Args:
      learning_rate: a number or a schedule of the meta step count (which counts every
        meta step, not a row's).
      b1, b2, eps, scale: of ``scale_by_lazy_adam``.

    Returns:
      An optax transformation whose ``update`` needs ``rows_present``.
    """
    return optax.chain(scale_by_lazy_adam(b1, b2, eps, scale), optax.scale_by_learning_rate(learning_rate))
