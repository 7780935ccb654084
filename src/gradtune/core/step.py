"""The guided training step: one look-ahead update, differentiated by the guide loss.

Per step t, with parameters θ, optimizer state S, raw guided values r (h = act(r)):

1. g = ∇θ L_train(θ; B, φ)           φ: loss-side values (label smoothing, data weights)
2. (θ', S') = Update(θ, S, g; ψ)      ψ: optimizer-side values (learning rate, b1, …)
3. F(r) = L_guide(θ'; G)              plain loss on the guide batch, no dropout
4. r ← MetaOpt(r, clean(∇r F));  θ, S ← θ', S'   (all skipped if a loss is NaN or ±inf)

θ and S are constants in ∇r F (greedy, horizon 1) and the look-ahead update is the real
update: one model update per step. ``plain_step`` is the same update with r held.

The model is anything: ``train_loss(params, batch, key, loss_values) -> (loss, aux)`` and
``guide_loss(params, batch) -> loss`` are the only contact points.

Example: SGD on a least-squares problem, where the learning-rate hypergradient has a closed
form. With θ' = θ − η·g and η = base·exp(r), dF/dr = −η·∇F(θ')·g:

>>> import jax, jax.numpy as jnp
>>> from gradtune.core import Activation, GuidedSpec, GuidedTrainer, make_optimizer, meta_optimizer
>>> def loss(theta, batch):
...     x, y = batch
...     return 0.5 * jnp.mean((x @ theta - y) ** 2)
>>> specs = (GuidedSpec("learning_rate", 1.0, Activation("exp")),)
>>> trainer = GuidedTrainer(
...     train_loss=lambda theta, batch, key, values: (loss(theta, batch), {}), guide_loss=loss,
...     optimizer=make_optimizer("sgd", {}), schedule=lambda step: 0.1, specs=specs,
...     meta_optimizer=meta_optimizer(specs, learning_rate=0.01))
>>> x, y = jnp.array([[1.0, 2.0], [3.0, 4.0]]), jnp.array([1.0, 0.0])
>>> guide = (jnp.array([[1.0, 0.0]]), jnp.array([0.5]))
>>> theta = jnp.zeros(2)
>>> _, metrics, _ = trainer.guided_step(trainer.init(theta), (x, y), guide, jax.random.key(0))
>>> g = jax.grad(loss)(theta, (x, y))
>>> closed_form = -0.1 * jax.grad(loss)(theta - 0.1 * g, guide) @ g
>>> bool(jnp.allclose(metrics["hypergrad/learning_rate"], closed_form, rtol=1e-5))
True

References:
  Lichtarge, Alberti & Kumar, 2022, "Simple and Effective Gradient-Based Tuning of
  Sequence-to-Sequence Models", AutoML: https://arxiv.org/abs/2209.04683 (the method).
  Baydin et al., 2018, "Online Learning Rate Adaptation with Hypergradient Descent",
  ICLR: https://arxiv.org/abs/1703.04782 (the one-step hypergradient of a learning rate).
  Wu, Ren, Liao & Grosse, 2018, "Understanding Short-Horizon Bias in Stochastic
  Meta-Optimization", ICLR: https://arxiv.org/abs/1803.02021 (why a greedy step prefers
  small learning rates).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtune.core.guided import GuidedSpec, Raw, clean_hypergrads, init_raw, raw_to_values
from gradtune.core.optimizers import with_hyperparams

TrainLoss = Callable[[Any, Any, jax.Array, Mapping[str, jax.Array]], tuple[jax.Array, Any]]
GuideLoss = Callable[[Any, Any], jax.Array]
MAX_LOGGED_ROWS = 64  # vector values up to this long are logged row by row
LOWER_LR_MASKS = ("hypergradient", "fresh", "step")  # GuidedTrainer.lower_lr_mask
FORWARD_RESTARTS = ("zero", "rescale")  # GuidedTrainer.forward_restart


def value_key(name: str, row: int | None = None) -> str:
    """The metric key of guided value ``name`` (of its ``row``, for a vector): ``value/NAME[/ROW]``.

    >>> value_key("learning_rate"), value_key("corpus_weights", 1)
    ('value/learning_rate', 'value/corpus_weights/1')
    """
    return f"value/{name}" if row is None else f"value/{name}/{row}"


def parse_value_key(key: str) -> tuple[str, int | None] | None:
    """``(name, row)`` of a metric key written by ``value_key``; None for any other key.

    >>> parse_value_key("value/corpus_weights/1"), parse_value_key("train_loss")
    (('corpus_weights', 1), None)
    """
    parts = key.split("/")
    if parts[0] != "value" or len(parts) not in (2, 3) or (len(parts) == 3 and not parts[2].isdigit()):
        return None
    return parts[1], int(parts[2]) if len(parts) == 3 else None


class TrainState(NamedTuple):
    step: jax.Array  # number of model updates taken
    params: Any
    opt_state: Any
    raw: Raw  # raw guided values
    meta_state: Any
    tangents: Any = ()  # forward-mode hypergradients only: d(params, opt_state)/d raw (core/forward.py)


@dataclass(frozen=True)
class GuidedTrainer:
    """Pure step functions for training with guided hyper-parameters.

    Attributes:
      train_loss: ``(params, batch, key, loss_values) -> (loss, aux)``; ``loss_values``
        holds every loss-side value (guided or fixed) by name.
      guide_loss: ``(params, batch) -> loss``, the guidance objective.
      optimizer: from ``make_optimizer`` (hyper-parameters injected in its state).
      schedule: base learning rate by step; the ``learning_rate`` value multiplies it.
      specs: the guided values.
      meta_optimizer: the optimizer of the raw values.
      fixed: values that are not guided but still set every step (the same names as
        guided ones, so that a run without guidance uses the very same code path).
      rows_present: ``batch -> {name: (n,) bool}``, the rows of each lazy guided vector
        (per-example weights) that the batch touches; needed only with lazy specs.
      forward_decay: None for the one-step (greedy) hypergradient; a decay γ in [0, 1] for
        forward-mode hypergradients, whose tangents follow the whole run (``core/forward.py``;
        scalar values only; every step, plain ones too, then carries the tangents).
      forward_bound: forward mode only: a tangent longer than this many times the parameters
        (‖dθ/dr‖ > bound · ‖θ‖) restarts from 0, as a non-finite one does; None: no bound.
      forward_restart: what the bound does to a finite tangent past it: ``"zero"`` (restart
        from 0, a horizon truncated) or ``"rescale"`` (shrunk to the bound, its direction kept).
      guide_average: forward mode only: β > 0 takes the guide loss, and its hypergradient, at
        the running average of the parameters (A' = βA + (1 − β)θ', bias-corrected) instead of
        at the last ones: a smaller step lowers the loss of the last parameters at once, by
        the noise it no longer adds, which the average has already smoothed away. 0: the last.
      forward_min_age: forward mode only: no meta step (values and meta state held) while a
        tangent has been carried through fewer than this many steps since it began or last
        restarted from 0 (with several values: while any has): a young tangent's hypergradient
        is a short horizon's, biased to a smaller step as the one-step look-ahead is. 0: none.
      forward_min_age_from: ``forward_min_age`` holds from this step on; before it a meta
        step is taken on a tangent of any age (e.g. the base warm-up, where a start far too
        high should come down at once: with the warm-up's lowering-only rule a young tangent's
        bias toward a smaller step can only lower the rate). 0: from the start.
      hold_mean_from: forward mode only: the steps after guidance (``held_step``) hold each raw
        value at its mean over the guided steps from this step on, not at its last: the last is
        one noisy point of a trajectory that may still swing by 2–3× within 50 steps. 0: the last.
      forward_bound_step: forward mode only: at a guided step where the learning rate's tangent
        passes ``forward_bound`` (or stops being finite) its raw value is lowered by this much
        (in the raw value's units: log-multiplier for the ``exp`` activation), on top of that step's
        meta step, young tangent or not; the meta optimizer's state is untouched. A tangent
        that outgrows the parameters says the update has a direction past the edge of
        stability, so the rate is too large for the steps to come — the very signal a restart
        throws away, and with ``forward_min_age`` restarts faster than that age would hold the
        value there for good. 0: no such step.
      forward_max_age: forward mode only: a tangent carried through this many steps restarts
        from 0 (as one past the bound does), so that with ``forward_min_age`` every meta step's
        hypergradient has a horizon between the two, whatever the step size; 0: no limit.
      lower_lr_only_until: before this step a meta step may only lower the learning rate (its
        negative hypergradients count as 0). In the base schedule's warm-up the rate is still
        small, so a larger multiplier looks better for the steps seen — which says nothing of
        the rate it will make at the peak — while a smaller one looking better already says
        the multiplier is too large. 0: no such rule.
      lower_lr_scale: where the rule of ``lower_lr_only_until`` holds the learning rate's
        lowering meta steps are this many times larger: being too high in the warm-up does
        damage the rest of the run does not repair, so the lowering may be fast.
      lower_lr_above: ``lower_lr_only_until`` holds only while the learning-rate multiplier
        is at least this; below it a meta step of the window is the one without the rule
        (raising or lowering, not scaled by ``lower_lr_scale``; the raising step that crosses
        it is the last): a start far below the base rate may climb toward it in the warm-up,
        one above it may only come down, fast, and not far past it. 0: the rule holds at
        every multiplier.
      lower_lr_mask: how ``lower_lr_only_until`` withholds the raisings. ``"hypergradient"``:
        the negative hypergradients count as 0, so the meta optimizer sees zeros (Adam's
        moments decay and its bias correction runs on, and after the window its steps are up
        to ~2× ``meta_learning_rate`` for some 50 steps). ``"step"``: the meta optimizer sees
        every hypergradient and only its raising steps are withheld, so its state is the one
        it would have without the rule and the steps after the window have their own size.
        ``"fresh"``: as ``"hypergradient"``, and the meta optimizer's state (of every value)
        starts anew after the window's last step (step ``lower_lr_only_until − 1``, which must
        be a guided step: the trainer does not see plain ones), so the steps after it have
        their own size.
    """

    train_loss: TrainLoss
    guide_loss: GuideLoss
    optimizer: optax.GradientTransformation
    schedule: optax.Schedule
    specs: Sequence[GuidedSpec]
    meta_optimizer: optax.GradientTransformation
    fixed: Mapping[str, float] = field(default_factory=dict)
    rows_present: Callable[[Any], Mapping[str, jax.Array]] | None = None
    forward_decay: float | None = None
    forward_bound: float | None = None
    forward_restart: str = "zero"
    guide_average: float = 0.0
    forward_min_age: int = 0
    forward_min_age_from: int = 0
    forward_max_age: int = 0
    forward_bound_step: float = 0.0
    hold_mean_from: int = 0
    lower_lr_only_until: int = 0
    lower_lr_scale: float = 1.0
    lower_lr_above: float = 0.0
    lower_lr_mask: str = "hypergradient"

    def __post_init__(self) -> None:
        if any(s.lazy for s in self.specs) and self.rows_present is None:
            raise ValueError("lazy guided values need GuidedTrainer.rows_present (the rows each batch touches)")
        if self.forward_decay is not None:
            from gradtune.core.forward import forward_names  # forward builds on this module

            forward_names(self)  # scalar values only
            if not 0.0 <= self.forward_decay <= 1.0:
                raise ValueError(f"forward_decay is {self.forward_decay}; it must be in [0, 1]")
        if self.forward_bound is not None and not self.forward_bound > 0:
            raise ValueError(f"forward_bound is {self.forward_bound}; it must be > 0 (or None: no bound)")
        if not 0 <= self.guide_average < 1 or (self.guide_average and self.forward_decay is None):
            raise ValueError(f"guide_average is {self.guide_average}; it must be in [0, 1), > 0 in forward mode only")
        if self.forward_min_age < 0 or (self.forward_min_age and self.forward_decay is None):
            raise ValueError(f"forward_min_age is {self.forward_min_age}; it must be ≥ 0, > 0 in forward mode only")
        if self.forward_min_age_from < 0 or (self.forward_min_age_from and not self.forward_min_age):
            raise ValueError(f"forward_min_age_from is {self.forward_min_age_from}; it must be ≥ 0, > 0 only "
                             "with forward_min_age")  # fmt: skip
        if self.forward_max_age < 0 or (self.forward_max_age and self.forward_decay is None):
            raise ValueError(f"forward_max_age is {self.forward_max_age}; it must be ≥ 0, > 0 in forward mode only")
        if self.forward_bound_step < 0 or (self.forward_bound_step and (
                self.forward_decay is None or self.forward_bound is None
                or "learning_rate" not in {s.name for s in self.specs})):  # fmt: skip
            raise ValueError(f"forward_bound_step is {self.forward_bound_step}; it must be ≥ 0, > 0 in forward mode "
                             "only, with a forward_bound and a guided learning rate")  # fmt: skip
        if self.hold_mean_from < 0 or (self.hold_mean_from and self.forward_decay is None):
            raise ValueError(f"hold_mean_from is {self.hold_mean_from}; it must be ≥ 0, > 0 in forward mode only")
        if self.forward_max_age and self.forward_max_age <= self.forward_min_age:
            raise ValueError(f"forward_max_age is {self.forward_max_age}; it must be 0 or > forward_min_age "
                             f"({self.forward_min_age}), or no meta step is ever taken")  # fmt: skip
        if self.forward_restart not in FORWARD_RESTARTS:
            raise ValueError(f"forward_restart is {self.forward_restart!r}; choose from {', '.join(FORWARD_RESTARTS)}")
        if not self.lower_lr_scale > 0:
            raise ValueError(f"lower_lr_scale is {self.lower_lr_scale}; it must be > 0")
        if not self.lower_lr_above >= 0:
            raise ValueError(f"lower_lr_above is {self.lower_lr_above}; it must be ≥ 0")
        if self.lower_lr_mask not in LOWER_LR_MASKS:
            raise ValueError(f"lower_lr_mask is {self.lower_lr_mask!r}; choose from {', '.join(LOWER_LR_MASKS)}")

    def init(self, params: Any, dtype: jnp.dtype = jnp.float32) -> TrainState:
        """The training state at step 0.

        Args:
          params: the model's initial parameters (any pytree).
          dtype: of the raw guided values.

        Returns:
          ``TrainState(step=0, params, optimizer state, raw values at their initial values,
          meta-optimizer state)``.
        """
        raw = init_raw(self.specs, dtype)
        state = TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            # a copy: some optimizers keep the initial parameters in their state (Prodigy, DoG),
            # and the jitted steps donate the state, which may not hold one buffer twice
            opt_state=jax.tree.map(jnp.copy, self.optimizer.init(params)),
            raw=raw,
            meta_state=jax.tree.map(jnp.copy, self.meta_optimizer.init(raw)),  # no buffer twice (donation)
        )
        if self.forward_decay is None:
            return state
        from gradtune.core.forward import init_tangents

        return state._replace(tangents=init_tangents(self, state))

    def reset(self, state: TrainState, start: Mapping[str, float] | None = None) -> TrainState:
        """``state`` with the guided values back at their initial values, meta state fresh.
        ``start``: other initial values, by name (``{"learning_rate": 2.0}``), for those named."""
        dtype = jax.tree.leaves(state.raw)[0].dtype if state.raw else jnp.float32
        unknown = set(start or ()) - {s.name for s in self.specs}
        if unknown:
            raise ValueError(f"reset: {', '.join(sorted(unknown))} not guided")
        specs = [replace(s, init=start[s.name]) if s.name in (start or ()) else s for s in self.specs]
        raw = init_raw(specs, dtype)
        state = state._replace(raw=raw, meta_state=jax.tree.map(jnp.copy, self.meta_optimizer.init(raw)))
        if self.forward_decay is None:
            return state
        from gradtune.core.forward import init_tangents

        return state._replace(tangents=init_tangents(self, state))  # the past no longer depends on them

    def lower_lr_window(self, step: jax.Array, raw: Raw | None) -> jax.Array:
        """Whether the rule of ``lower_lr_only_until`` holds at ``step`` with the raw values
        ``raw`` (before the step; needed only with ``lower_lr_above``)."""
        window = step < self.lower_lr_only_until
        if not self.lower_lr_above:
            return window
        if raw is None:
            raise ValueError("with lower_lr_above the warm-up rule needs the raw values (meta_hypergrads' raw)")
        return window & (raw_to_values(self.specs, raw)["learning_rate"] >= self.lower_lr_above)

    def meta_hypergrads(self, hypergrads: Raw, step: jax.Array, raw: Raw | None = None) -> tuple[Raw, jax.Array]:
        """The hypergradients the meta step takes: made finite (``clean_hypergrads``), and the
        learning rate's raised to 0 where the rule of ``lower_lr_only_until`` holds
        (``lower_lr_window``; ``lower_lr_mask = "hypergradient"``). ``raw``: the values before
        the step. Returns them and how many entries cleaning replaced."""
        cleaned, n_cleaned = clean_hypergrads(hypergrads)
        if self.lower_lr_only_until and self.lower_lr_mask != "step" and "learning_rate" in cleaned:
            g = cleaned["learning_rate"]
            cleaned = {**cleaned, "learning_rate": jnp.where(self.lower_lr_window(step, raw), jnp.maximum(g, 0), g)}
        return cleaned, n_cleaned

    def meta_update(self, cleaned: Raw, state: TrainState, **extra) -> tuple[Raw, Any]:
        """The raw values after one meta step on ``cleaned`` (from ``meta_hypergrads``), and
        the new meta state. In the window of ``lower_lr_only_until`` the learning rate's step
        is withheld if it raises the rate where the rule holds (``lower_lr_mask = "step"``; a
        learning rate's raw value grows with the rate) and scaled by ``lower_lr_scale`` if it
        lowers it there; after its last step the meta state starts anew (``"fresh"``)."""
        updates, meta_state = self.meta_optimizer.update(cleaned, state.meta_state, state.raw, **extra)
        if self.lower_lr_only_until and "learning_rate" in updates:
            lr = updates["learning_rate"]
            holds = self.lower_lr_window(state.step, state.raw)
            if self.lower_lr_mask == "step":
                lr = jnp.where(holds, jnp.minimum(lr, 0), lr)
            if self.lower_lr_scale != 1.0:
                lr = lr * jnp.where(holds & (lr < 0), self.lower_lr_scale, 1.0).astype(lr.dtype)
            updates = {**updates, "learning_rate": lr}
        raw = optax.apply_updates(state.raw, updates)
        if self.lower_lr_only_until and self.lower_lr_mask == "fresh":
            last = state.step == self.lower_lr_only_until - 1
            meta_state = jax.tree.map(
                lambda new, kept: jnp.where(last, new, kept), self.meta_optimizer.init(raw), meta_state
            )
        return raw, meta_state

    def values(self, raw: Raw) -> dict[str, jax.Array]:
        """Every value in use: the fixed ones overridden by the guided ones."""
        return {**{k: jnp.asarray(v) for k, v in self.fixed.items()}, **raw_to_values(self.specs, raw)}

    def _optimizer_side(self, state: TrainState, values: Mapping[str, jax.Array]):
        injected = state.opt_state.hyperparams
        side = {k: v for k, v in values.items() if k in injected}
        multiplier = side.get("learning_rate", 1.0)
        side["learning_rate"] = self.schedule(state.step) * multiplier
        return side

    def lookahead(self, raw: Raw, state: TrainState, batch: Any, key: jax.Array):
        """Steps 1–2: the real update of θ and S, as a function of the raw values."""
        values = self.values(raw)
        hyper = self._optimizer_side(state, values)
        loss_values = {k: v for k, v in values.items() if k not in state.opt_state.hyperparams}
        (loss, aux), grads = jax.value_and_grad(self.train_loss, has_aux=True)(state.params, batch, key, loss_values)
        opt_state = with_hyperparams(state.opt_state, hyper)
        updates, new_opt_state = self.optimizer.update(grads, opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
        metrics = {
            "train_loss": loss,
            "learning_rate": hyper["learning_rate"],
            "grad_norm": optax.tree.norm(grads),
            **{value_key(s.name): values[s.name] for s in self.specs if not s.shape},
            **{
                value_key(s.name, i): values[s.name][i]
                for s in self.specs
                if s.shape and not s.lazy and s.shape[0] <= MAX_LOGGED_ROWS
                for i in range(s.shape[0])
            },
        }
        return new_params, new_opt_state, metrics, aux

    def plain_step(self, state: TrainState, batch: Any, key: jax.Array):
        """One model update with the guided values held (skipped if the loss is not finite);
        in forward mode it carries the tangents, as every step does while guidance lasts.

        Args:
          state: the training state.
          batch: the training batch, as ``train_loss`` takes it.
          key: the dropout key of this step.

        Returns:
          ``(new state, metrics, aux)``: metrics are the train loss, learning rate, gradient
          norm, each guided value (``value_key``) and ``skipped``; aux is ``train_loss``'s.
        """
        if self.forward_decay is None:
            return self.held_step(state, batch, key)
        from gradtune.core.forward import propagate

        params, opt_state, tangents, metrics, aux = propagate(self, state, state.tangents, batch, key)
        new_state = state._replace(step=state.step + 1, params=params, opt_state=opt_state, tangents=tangents)
        new_state, metrics = _skip_if_not_finite(state, new_state, metrics, metrics["train_loss"])
        return new_state, metrics, aux

    def held_step(self, state: TrainState, batch: Any, key: jax.Array):
        """``plain_step`` without tangents, at a plain step's cost: the steps after guidance
        has ended (the tangents, no longer needed, are left as they are). With
        ``hold_mean_from`` the values are their mean over the guided steps (``held_values``)."""
        raw = state.raw
        if self.hold_mean_from:
            from gradtune.core.forward import held_values

            raw = held_values(self, state)
        params, opt_state, metrics, aux = self.lookahead(raw, state, batch, key)
        new_state = state._replace(step=state.step + 1, params=params, opt_state=opt_state, raw=raw)
        new_state, metrics = _skip_if_not_finite(state, new_state, metrics, metrics["train_loss"])
        return new_state, metrics, aux

    def hypergradients(self, state: TrainState, batch: Any, guide_batch: Any, key: jax.Array):
        """Steps 1–3: ``(guide loss, ∇r F, (θ', S', metrics, aux))`` — the raw hypergradients
        of every guided value, vectors included, before cleaning."""

        def guide_objective(raw):
            params, opt_state, metrics, aux = self.lookahead(raw, state, batch, key)
            return self.guide_loss(params, guide_batch), (params, opt_state, metrics, aux)

        (guide, updated), hypergrads = jax.value_and_grad(guide_objective, has_aux=True)(state.raw)
        return guide, hypergrads, updated

    def guided_step(self, state: TrainState, batch: Any, guide_batch: Any, key: jax.Array):
        """One model update plus one meta update of the raw values (steps 1–4).

        Args:
          state: the training state.
          batch: the training batch, as ``train_loss`` takes it.
          guide_batch: the guide batch, as ``guide_loss`` takes it.
          key: the dropout key of this step (the same masks in every pass of the step).

        Returns:
          ``(new state, metrics, aux)``: the plain step's metrics plus the guide loss, each
          raw hypergradient (``hypergrad/NAME``), and how many entries cleaning replaced.
        """
        if self.forward_decay is not None:
            from gradtune.core.forward import forward_step

            return forward_step(self, state, batch, guide_batch, key)
        guide, hypergrads, (params, opt_state, metrics, aux) = self.hypergradients(state, batch, guide_batch, key)
        cleaned, n_cleaned = self.meta_hypergrads(hypergrads, state.step, state.raw)
        extra = {}
        if any(s.lazy for s in self.specs):  # a mask for every value: all rows of the dense ones
            rows = self.rows_present(batch)
            extra["rows_present"] = {s.name: rows[s.name] if s.lazy else jnp.ones(s.shape, bool) for s in self.specs}
        raw, meta_state = self.meta_update(cleaned, state, **extra)
        metrics = {
            **metrics,
            "guide_loss": guide,
            "hypergrad_cleaned": n_cleaned,
            **{f"hypergrad/{k}": g for k, g in hypergrads.items() if g.ndim == 0},
        }
        new_state = state._replace(
            step=state.step + 1, params=params, opt_state=opt_state, raw=raw, meta_state=meta_state
        )
        new_state, metrics = _skip_if_not_finite(state, new_state, metrics, metrics["train_loss"] + guide)
        return new_state, metrics, aux


def _skip_if_not_finite(old: TrainState, new: TrainState, metrics: dict, loss: jax.Array):
    """``new``, or ``old`` with only the step advanced when ``loss`` is NaN or ±inf.

    A non-finite loss would poison the parameters and the optimizer's moments for good;
    the update is skipped instead and counted in ``metrics["skipped"]``.
    """
    finite = jnp.isfinite(loss)
    kept = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old._replace(step=new.step))
    return kept, {**metrics, "skipped": (~finite).astype(jnp.int32)}
