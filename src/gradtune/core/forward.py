"""Forward-mode hypergradients: a horizon as long as the run, at the cost of one tangent per value.

The one-step hypergradient (``GuidedTrainer.guided_step``) sees only how the next update
depends on the raw values r: it is greedy, and a greedy step prefers small learning rates
(the short-horizon bias; Wu et al., 2018). Here each scalar guided value carries the
tangent Z = d(θ, S)/dr of the parameters and optimizer state along the run, propagated at
every step through the real update U (Franceschi et al., 2017, "Forward and Reverse
Gradient-Based Hyperparameter Optimization", ICML, https://arxiv.org/abs/1703.01785)::

    (θ', S') = U(θ, S; r)
    Z' = ∂U/∂(θ, S) · γZ + ∂U/∂r        one Jacobian-vector product of the update per value
    ∂F/∂r ≈ ∇θ' L_guide(θ'; G) · Z'_θ

With γ = 1, Z' is the exact derivative of (θ', S') with respect to a shift of r applied at
every step so far (the meta steps' own dependence on r aside), so the hypergradient is that
of the guide loss after the whole run; with γ = 0 it is exactly the one-step hypergradient.
A γ below 1 (0.99: a horizon of about 100 steps) discounts older steps; Z stays bounded only
while the update's Jacobian has no direction above 1/γ (a step size past the edge of
stability grows it), and a tangent that stops being finite, or grows longer than
``forward_bound`` times the parameters, restarts from 0 — or, with ``forward_restart =
"rescale"``, a finite one is shrunk back to that length (``tangents_reset`` in the metrics
counts either; ``tangent_ratio/NAME`` is ‖Z_θ‖ / ‖θ‖ before it).

Cost: ``jax.linearize`` of the update (a train step, kept for reuse), one forward-mode
product through it per value (about a Hessian-vector product each), and one gradient of
the guide loss; memory: a copy of the parameters and of the optimizer state's float leaves
per value. Only scalar values: a vector of data weights would need a tangent per row.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gradtune.core.step import GuidedTrainer, TrainState, _skip_if_not_finite


class Tangents(NamedTuple):
    """d(θ, S)/dr of each scalar guided value, stacked on a leading axis in ``forward_names`` order."""

    params: Any  # the parameters' pytree, each leaf (values, *shape)
    opt_state: list  # the optimizer state's float leaves, each (values, *shape)
    # with GuidedTrainer.guide_average = β > 0 (else empty): the parameters' running sum
    # A' = βA + (1 − β)θ', its tangent dA/dr (each leaf (values, *shape)), and Σ(1 − β)β^k, so
    # that θ̄ = A / weight is the bias-corrected average of the parameters since the tangents began
    average: Any = ()
    average_tangent: Any = ()
    average_weight: Any = ()
    # with GuidedTrainer.forward_min_age or forward_max_age > 0 (else empty): each tangent's age, the steps it has
    # been carried through since it began or last restarted from 0, an int32 (values,)
    age: Any = ()
    # with GuidedTrainer.hold_mean_from > 0 (else empty): the sum of each raw value over the guided
    # steps from that step on, and their count (int32): where ``held_values`` holds them afterwards
    value_sum: Any = ()
    value_count: Any = ()


def forward_names(trainer: GuidedTrainer) -> tuple[str, ...]:
    """The guided values the tangents follow: every one, and each must be a scalar."""
    vectors = [s.name for s in trainer.specs if s.shape]
    if vectors:
        raise ValueError(
            f"forward-mode hypergradients follow scalar values only; {', '.join(vectors)} "
            "is a vector (one tangent per row): guide it with the one-step hypergradient"
        )
    return tuple(s.name for s in trainer.specs)


def _split(opt_state: Any) -> tuple[list, list, Any]:
    """The optimizer state's float leaves, its other leaves (counts), and how to rebuild it."""
    leaves, treedef = jax.tree.flatten(opt_state)
    floats = [leaf for leaf in leaves if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.inexact)]
    others = [leaf for leaf in leaves if not jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.inexact)]
    return floats, others, treedef


def _join(floats: list, others: list, like: Any) -> Any:
    leaves, treedef = jax.tree.flatten(like)
    fi, oi = iter(floats), iter(others)
    merged = [next(fi) if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.inexact) else next(oi) for leaf in leaves]
    return jax.tree.unflatten(treedef, merged)


def init_tangents(trainer: GuidedTrainer, state: TrainState) -> Tangents:
    """Zero tangents: nothing so far depends on the values."""
    n = len(forward_names(trainer))
    floats, _, _ = _split(state.opt_state)

    def zeros(x):
        return jnp.zeros((n, *jnp.shape(x)), jnp.asarray(x).dtype)

    tangents = Tangents(jax.tree.map(zeros, state.params), [zeros(x) for x in floats])
    if trainer.forward_min_age or trainer.forward_max_age:
        tangents = tangents._replace(age=jnp.zeros((n,), jnp.int32))
    if trainer.hold_mean_from:
        tangents = tangents._replace(value_sum=jax.tree.map(jnp.zeros_like, state.raw),
                                     value_count=jnp.zeros((), jnp.int32))  # fmt: skip
    if not trainer.guide_average:
        return tangents
    return tangents._replace(
        average=jax.tree.map(jnp.zeros_like, state.params),
        average_tangent=jax.tree.map(zeros, state.params),
        average_weight=jnp.zeros((), jax.tree.leaves(state.params)[0].dtype),
    )


def held_values(trainer: GuidedTrainer, state: TrainState) -> Any:
    """The raw values a step after guidance takes: with ``trainer.hold_mean_from``, their mean
    over the guided steps from that step on (the last values if there were none); else the last."""
    if not trainer.hold_mean_from:
        return state.raw
    count = state.tangents.value_count
    mean = jax.tree.map(lambda total: total / jnp.maximum(count, 1).astype(total.dtype), state.tangents.value_sum)
    return jax.tree.map(lambda m, last: jnp.where(count > 0, m, last), mean, state.raw)


def averaged(tangents: Tangents) -> tuple[Any, Any]:
    """``(θ̄, dθ̄/dr)``: the bias-corrected running average of the parameters and its tangents."""
    weight = jnp.maximum(tangents.average_weight, jnp.finfo(jnp.asarray(tangents.average_weight).dtype).tiny)
    return jax.tree.map(lambda a: a / weight.astype(a.dtype), (tangents.average, tangents.average_tangent))


def propagate(
    trainer: GuidedTrainer,
    state: TrainState,
    tangents: Tangents,
    batch: Any,
    key: jax.Array,
    decay: float | jax.Array | None = None,
):
    """One model update with the values held, and the tangents carried through it (decayed
    by ``decay``, by default ``trainer.forward_decay``).

    Returns ``(params', opt_state', tangents', metrics, aux)``.
    """
    decay = trainer.forward_decay if decay is None else decay
    names = forward_names(trainer)
    floats0, others, _ = _split(state.opt_state)

    def update(params, floats, raw):
        opt_state = _join(floats, others, state.opt_state)
        new_params, new_opt, metrics, aux = trainer.lookahead(raw, state._replace(opt_state=opt_state, params=params),
                                                              batch, key)  # fmt: skip
        new_floats, new_others, _ = _split(new_opt)
        return (new_params, new_floats), (new_opt, new_others, metrics, aux)

    (params, _), jvp, (opt_state, _, metrics, aux) = jax.linearize(
        update, state.params, floats0, state.raw, has_aux=True
    )
    basis = {name: jnp.eye(len(names), dtype=state.raw[name].dtype)[i] for i, name in enumerate(names)}

    def one(tangent_params, tangent_floats, raw_tangent):  # the tangents of one value (γZ, e_i)
        def scale(t):  # γ = 0 forgets the past exactly, even a non-finite one
            return jnp.where(decay == 0, jnp.zeros_like(t), t * jnp.asarray(decay, t.dtype))

        return jvp(*jax.tree.map(scale, (tangent_params, tangent_floats)), raw_tangent)

    new = Tangents(*jax.vmap(one)(tangents.params, tangents.opt_state, basis))  # the rest filled in below
    # Z grows without bound where the update's Jacobian has a direction above 1/γ (a step size
    # past the stable edge): its hypergradient is then a huge number of no reliable sign, and
    # one such number would swamp the meta optimizer's moments for the rest of the run. A
    # tangent that is no longer finite, or longer than ``trainer.forward_bound`` times the
    # parameters (a unit change of a raw value moving θ by more than θ's own length), starts
    # again from 0: a horizon truncated where the dynamics stop being predictable.
    ratio = jax.vmap(optax.tree.norm)(new.params) / jnp.maximum(optax.tree.norm(params), jnp.finfo(jnp.float32).tiny)
    finite = jnp.stack([jnp.all(jnp.isfinite(t), axis=tuple(range(1, t.ndim))) for t in jax.tree.leaves(new)]).all(0)
    # With ``trainer.forward_restart == "rescale"`` a finite tangent past the bound is shrunk to it
    # instead (parameters' and optimizer state's parts by one factor): it keeps its direction, its
    # memory of the run, where a restart would make the next hypergradients one-step, greedy ones.
    bound = jnp.inf if trainer.forward_bound is None else trainer.forward_bound
    keep = finite & (ratio <= bound)
    shrink = bound / jnp.maximum(ratio, jnp.finfo(ratio.dtype).tiny) if trainer.forward_restart == "rescale" else 0.0
    factor = jnp.where(keep, 1.0, jnp.where(finite, shrink, 0.0))
    if trainer.forward_max_age:  # a fixed horizon: a tangent carried through max_age steps starts again
        old = tangents.age >= trainer.forward_max_age
        keep, factor = keep & ~old, jnp.where(old, 0.0, factor)

    def bounded(t):
        f = factor.reshape((-1,) + (1,) * (t.ndim - 1)).astype(t.dtype)
        return jnp.where(f == 1, t, jnp.where(f == 0, jnp.zeros_like(t), t * f))  # a non-finite t · 0 is NaN

    new = jax.tree.map(bounded, new)
    if trainer.forward_min_age or trainer.forward_max_age:  # restarted from 0: new again; shrunk: as old
        new = new._replace(age=jnp.where(factor == 0, 0, tangents.age + 1).astype(jnp.int32))
    if trainer.hold_mean_from:  # the values' sums, added to by forward_step's meta steps alone
        new = new._replace(value_sum=tangents.value_sum, value_count=tangents.value_count)
    if trainer.guide_average:  # the running average and its tangent (linear in the parameters' own)
        beta = trainer.guide_average
        mix = lambda a, x: beta * a + (1 - beta) * x.astype(a.dtype)  # noqa: E731
        average_tangent = jax.tree.map(mix, tangents.average_tangent, new.params)
        average_tangent = jax.tree.map(lambda t: jnp.where(jnp.isfinite(t), t, 0.0), average_tangent)
        new = new._replace(
            average=jax.tree.map(mix, tangents.average, params),
            average_tangent=average_tangent,
            average_weight=beta * tangents.average_weight + (1 - beta),
        )
    ratios = {f"tangent_ratio/{name}": jnp.where(finite[i], ratio[i], jnp.inf) for i, name in enumerate(names)}
    metrics = {**metrics, "tangents_reset": jnp.sum(~keep).astype(jnp.int32), **ratios}
    return params, opt_state, new._replace(opt_state=list(new.opt_state)), metrics, aux


def forward_hypergradients(trainer: GuidedTrainer, params: Any, tangents: Tangents, guide_batch: Any):
    """``(guide loss at params, {name: ∇θ L_guide · Z_θ})``; with ``trainer.guide_average``, at the
    parameters' running average instead: ``(L_guide(θ̄), ∇θ̄ L_guide · dθ̄/dr)``."""
    z = tangents.params
    if trainer.guide_average:
        params, z = averaged(tangents)
    guide, grads = jax.value_and_grad(trainer.guide_loss)(params, guide_batch)

    def dot(t):
        return sum(
            jnp.tensordot(t_leaf, g_leaf.astype(t_leaf.dtype), axes=g_leaf.ndim)
            for t_leaf, g_leaf in zip(jax.tree.leaves(t), jax.tree.leaves(grads), strict=True)
        )

    per_value = jax.vmap(dot)(z)
    return guide, {name: per_value[i] for i, name in enumerate(forward_names(trainer))}


def forward_step(trainer: GuidedTrainer, state: TrainState, batch: Any, guide_batch: Any, key: jax.Array):
    """One model update plus one meta update by the forward-mode hypergradient, the tangents
    (``state.tangents``) carried along: ``GuidedTrainer.guided_step`` when
    ``trainer.forward_decay`` is set (the same metrics; skipped as a whole when a loss is not
    finite). Returns ``(state', metrics, aux)``.
    """
    params, opt_state, new_tangents, metrics, aux = propagate(trainer, state, state.tangents, batch, key)
    guide, hypergrads = forward_hypergradients(trainer, params, new_tangents, guide_batch)
    cleaned, n_cleaned = trainer.meta_hypergrads(hypergrads, state.step, state.raw)
    raw, meta_state = trainer.meta_update(cleaned, state)
    metrics = {**metrics, "guide_loss": guide, "hypergrad_cleaned": n_cleaned,
               **{f"hypergrad/{k}": g for k, g in hypergrads.items()}}  # fmt: skip
    if trainer.forward_min_age:  # a young tangent's hypergradient is a short horizon's: no meta step on it
        young = jnp.any(new_tangents.age < trainer.forward_min_age) & (state.step >= trainer.forward_min_age_from)
        raw, meta_state = jax.tree.map(lambda new, old: jnp.where(young, old, new), (raw, meta_state),
                                       (state.raw, state.meta_state))  # fmt: skip
        metrics = {**metrics, "meta_step_withheld": young.astype(jnp.int32)}
    if trainer.forward_bound_step:  # the learning rate's tangent past the bound: the edge of stability, lower
        past = ~(metrics["tangent_ratio/learning_rate"] <= trainer.forward_bound)  # inf where not finite
        lowering = jnp.where(past, trainer.forward_bound_step, 0.0).astype(raw["learning_rate"].dtype)
        raw = {**raw, "learning_rate": raw["learning_rate"] - lowering}
        metrics = {**metrics, "bound_step": past.astype(jnp.int32)}
    if trainer.hold_mean_from:  # the values taken at this guided step count toward the held mean
        counted = state.step >= trainer.hold_mean_from
        new_tangents = new_tangents._replace(
            value_sum=jax.tree.map(lambda total, r: total + jnp.where(counted, r, 0), new_tangents.value_sum, raw),
            value_count=new_tangents.value_count + counted.astype(jnp.int32),
        )
    new_state = TrainState(state.step + 1, params, opt_state, raw, meta_state, new_tangents)
    new_state, metrics = _skip_if_not_finite(state, new_state, metrics, metrics["train_loss"] + guide)
    return new_state, metrics, aux
