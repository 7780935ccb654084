"""Model optimizers whose hyper-parameters can be guided.

Each optimizer is an optax transformation wrapped by ``optax.inject_hyperparams``, so its
numeric hyper-parameters live in ``opt_state.hyperparams``. To differentiate with respect
to them, the guided step substitutes traced values into that dict (``with_hyperparams``)
inside the function being differentiated.

Hyper-parameter names are gradtune's, the same for every optimizer:
``learning_rate``, ``b1``, ``b2``, ``eps``, ``weight_decay``, ``momentum``,
``decay_rate`` (Adafactor), ``decay`` (RMSProp).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import optax

# Differentiating through sqrt(v) at v = 0 (embedding rows not yet seen) gives NaN
# second-order hypergradients; a tiny eps_root inside the root keeps them finite.
EPS_ROOT = 1e-16


def _sgd(learning_rate):
    return optax.sgd(learning_rate)


def _momentum(learning_rate, momentum, nesterov=False):
    return optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov)


def _adam(learning_rate, b1, b2, eps, weight_decay):
    # Adam with an L2 term added to the gradient (not decoupled, unlike AdamW).
    return optax.chain(
        optax.add_decayed_weights(weight_decay),
        optax.scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=EPS_ROOT),
        optax.scale_by_learning_rate(learning_rate),
    )


def _adamw(learning_rate, b1, b2, eps, weight_decay):
    return optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, eps_root=EPS_ROOT, weight_decay=weight_decay)


def _lamb(learning_rate, b1, b2, eps, weight_decay):
    return optax.lamb(learning_rate, b1=b1, b2=b2, eps=eps, eps_root=EPS_ROOT, weight_decay=weight_decay)


def _adafactor(learning_rate, decay_rate, b1, weight_decay):
    return optax.adafactor(
        learning_rate,
        decay_rate=decay_rate,
        momentum=b1,
        weight_decay_rate=weight_decay,
        dtype_momentum=jnp.float32,
    )


def _adagrad(learning_rate, eps):
    return optax.adagrad(learning_rate, eps=eps)


def _rmsprop(learning_rate, decay, eps, momentum):
    return optax.rmsprop(learning_rate, decay=decay, eps=eps, momentum=momentum)


def _prodigy(learning_rate):
    # With a warm-up in the schedule, the authors advise the safeguard (Mishchenko & Defazio, 2023).
    return optax.contrib.prodigy(learning_rate, safeguard_warmup=True)


def _schedule_free_adamw(learning_rate, warmup_steps):
    return optax.contrib.schedule_free_adamw(learning_rate, warmup_steps=warmup_steps or None)


def _dog(learning_rate):
    return optax.contrib.dog(learning_rate)


@dataclass(frozen=True)
class OptimizerDef:
    factory: Callable[..., optax.GradientTransformation]
    defaults: Mapping[str, float]  # every numeric hyper-parameter but the learning rate
    static_args: tuple[str, ...] = ()  # non-numeric arguments of the factory (not injected)
    guidable_values: bool = True  # False: held only (learning-rate-free optimizers)

    @property
    def guidable(self) -> tuple[str, ...]:
        return ("learning_rate", *self.defaults) if self.guidable_values else ()


OPTIMIZERS: dict[str, OptimizerDef] = {
    "sgd": OptimizerDef(_sgd, {}),
    "momentum": OptimizerDef(_momentum, {"momentum": 0.9}, static_args=("nesterov",)),
    "adam": OptimizerDef(_adam, {"b1": 0.9, "b2": 0.98, "eps": 1e-9, "weight_decay": 1e-4}),
    "adamw": OptimizerDef(_adamw, {"b1": 0.9, "b2": 0.98, "eps": 1e-9, "weight_decay": 1e-4}),
    "lamb": OptimizerDef(_lamb, {"b1": 0.9, "b2": 0.98, "eps": 1e-9, "weight_decay": 1e-4}),
    "adafactor": OptimizerDef(_adafactor, {"decay_rate": 0.8, "b1": 0.9, "weight_decay": 1e-4}),
    "adagrad": OptimizerDef(_adagrad, {"eps": 1e-7}),
    "rmsprop": OptimizerDef(_rmsprop, {"decay": 0.9, "eps": 1e-8, "momentum": 0.9}),
}


# Learning-rate-free optimizers from ``optax.contrib``, the alternatives to tuning a learning
# rate: trained with their values held (nothing of theirs is guided), for comparison. Their
# ``learning_rate`` is the multiplier their authors leave at 1 (schedule-free AdamW: a plain
# learning rate, with its own warm-up).
#   Prodigy: Mishchenko & Defazio, 2023, https://arxiv.org/abs/2306.06101
#   Schedule-free AdamW: Defazio et al., 2024, https://arxiv.org/abs/2405.15682
#   DoG: Ivgi, Hinder & Carmon, 2023, https://arxiv.org/abs/2302.12022
LR_FREE: dict[str, OptimizerDef] = {
    "prodigy": OptimizerDef(_prodigy, {}, guidable_values=False),
    "schedule_free_adamw": OptimizerDef(_schedule_free_adamw, {}, static_args=("warmup_steps",), guidable_values=False),
    "dog": OptimizerDef(_dog, {}, guidable_values=False),
}
ALL_OPTIMIZERS = {**OPTIMIZERS, **LR_FREE}


def optimizer_def(name: str) -> OptimizerDef:
    """The definition (factory, default hyper-parameters) of optimizer ``name``; a ``ValueError`` names the choices."""
    if name not in ALL_OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(ALL_OPTIMIZERS)}")
    return ALL_OPTIMIZERS[name]


def evaluation_params(name: str, opt_state: Any, params: Any) -> Any:
    """The parameters to evaluate a model at: ``params``, except for schedule-free AdamW,
    whose evaluation sequence x differs from the iterate y its gradients are taken at."""
    if name == "schedule_free_adamw":
        return optax.contrib.schedule_free_eval_params(opt_state.inner_state, params)
    return params


def make_optimizer(name: str, hyperparams: Mapping[str, float], **static: Any) -> optax.GradientTransformation:
    """An optax transformation with injectable hyper-parameters.

    Args:
      name: one of ``OPTIMIZERS``.
      hyperparams: initial values of the numeric hyper-parameters (gradtune names); the
        learning rate here is only a placeholder, the step sets it every update.
      **static: non-numeric options of the factory, e.g. ``nesterov=True``.

    Returns:
      ``optax.inject_hyperparams`` of the optimizer: its numeric hyper-parameters live in
      ``opt_state.hyperparams``, where ``with_hyperparams`` substitutes (traced) values.
    """
    definition = optimizer_def(name)
    values = {"learning_rate": 0.0, **definition.defaults, **hyperparams}
    unknown = set(values) - {"learning_rate", *definition.defaults}
    if unknown:
        raise ValueError(
            f"optimizer {name!r} has no hyper-parameter {', '.join(sorted(unknown))}; "
            f"it has {', '.join(['learning_rate', *definition.defaults])}"
        )
    inject = optax.inject_hyperparams(definition.factory, static_args=definition.static_args)
    return inject(**values, **static)


def with_hyperparams(opt_state: Any, values: Mapping[str, jax.Array]) -> Any:
    """``opt_state`` with some injected hyper-parameters replaced (traced values welcome).

    Args:
      opt_state: the state of an optimizer from ``make_optimizer``.
      values: hyper-parameter name → value, cast to the stored dtype.

    Returns:
      The state to pass to the optimizer's ``update``: differentiating through that update
      with respect to ``values`` gives the optimizer-side hypergradients.
    """
    hyperparams = dict(opt_state.hyperparams)
    for name, value in values.items():
        hyperparams[name] = jnp.asarray(value, hyperparams[name].dtype)
    return opt_state._replace(hyperparams=hyperparams)
