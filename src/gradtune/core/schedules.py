"""Base learning-rate schedules written as products of named factors.

As in the original code, a schedule is a string such as
``"constant * linear_warmup * rsqrt_decay"``; each factor is a function of the step and
the product is the base learning rate. The guided ``learning_rate`` value multiplies it.

Factors (``t`` is the 1-based step, so the first update is never taken at rate 0):

* ``constant``:               ``base``
* ``linear_warmup``:          ``min(1, t / warmup_steps)``
* ``rsqrt_decay``:            ``1 / sqrt(max(t, warmup_steps))``
* ``rsqrt_normalized_decay``: ``sqrt(warmup_steps) / sqrt(max(t, warmup_steps))`` (1 at the peak)
* ``linear_decay``:           ``max(0, 1 − t / total_steps)``
* ``cosine_decay``:           ``½ (1 + cos(π · min(t, total_steps) / total_steps))``
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import optax

FACTORS = (
    "constant",
    "linear_warmup",
    "rsqrt_decay",
    "rsqrt_normalized_decay",
    "linear_decay",
    "cosine_decay",
)


def _factor(name: str, base: float, warmup_steps: int, total_steps: int) -> Callable:
    warmup = max(warmup_steps, 1)
    total = max(total_steps, 1)
    factors = {
        "constant": lambda t: base,
        "linear_warmup": lambda t: jnp.minimum(1.0, t / warmup),
        "rsqrt_decay": lambda t: jnp.reciprocal(jnp.sqrt(jnp.maximum(t, warmup))),
        "rsqrt_normalized_decay": lambda t: jnp.sqrt(warmup / jnp.maximum(t, warmup)),
        "linear_decay": lambda t: jnp.maximum(0.0, 1.0 - t / total),
        "cosine_decay": lambda t: 0.5 * (1.0 + jnp.cos(jnp.pi * jnp.minimum(t, total) / total)),
    }
    if name not in factors:
        raise ValueError(f"unknown schedule factor {name!r}; choose from {', '.join(FACTORS)}")
    return factors[name]


def parse_schedule(spec: str, base: float, warmup_steps: int = 0, total_steps: int = 1) -> optax.Schedule:
    """The schedule ``step -> learning rate`` described by ``spec``.

    Args:
      spec: factors joined by ``*``, e.g. ``"constant * linear_warmup * rsqrt_normalized_decay"``.
      base: the ``constant`` factor.
      warmup_steps, total_steps: of the warm-up and decay factors.

    Returns:
      A function of the 0-based step.

    >>> schedule = parse_schedule("constant * linear_warmup", 1e-3, warmup_steps=10)
    >>> round(float(schedule(0)), 6), round(float(schedule(9)), 6), round(float(schedule(50)), 6)
    (0.0001, 0.001, 0.001)
    """
    names = [part.strip() for part in spec.split("*") if part.strip()]
    if not names:
        raise ValueError(f"empty learning-rate schedule {spec!r}; e.g. 'constant * linear_warmup'")
    factors = [_factor(n, base, warmup_steps, total_steps) for n in names]

    def schedule(step):
        t = jnp.asarray(step, jnp.float32) + 1.0
        value = jnp.asarray(1.0, jnp.float32)
        for f in factors:
            value = value * f(t)
        return value

    return schedule
