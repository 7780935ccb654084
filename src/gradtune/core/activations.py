"""Activations that map a raw, unconstrained guided value to the value used.

A guided value is learned as a raw real ``r``; the model sees ``h = act(r)``. Each
activation has an exact inverse so that ``r`` can be initialised from the configured
initial value ``h0``: ``r0 = act.inverse(h0)``.

* ``exp``:      h = floor + exp(s·r)                      (h > floor; log-space values)
* ``sigmoid``:  h = floor + (ceiling − floor)·σ(s·r)      (floor < h < ceiling)
* ``softplus``: h = floor + softplus(s·r)                 (h > floor)
* ``identity``: h = s·r

``s`` is the steepness: it scales how far one unit of raw movement moves the value. It is
not a learning rate (the meta learning-rate multiplier is kept apart, see ``GuidedSpec``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp

KINDS = ("exp", "sigmoid", "softplus", "identity")


@dataclass(frozen=True)
class Activation:
    """A monotone map from raw reals to the allowed range of a guided value."""

    kind: str = "exp"
    floor: float = 0.0
    ceiling: float = 1.0
    steepness: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown activation {self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.steepness <= 0:
            raise ValueError(f"activation steepness must be > 0, got {self.steepness}")
        if self.kind == "sigmoid" and not self.ceiling > self.floor:
            raise ValueError(f"sigmoid needs ceiling > floor, got [{self.floor}, {self.ceiling}]")

    def __call__(self, raw: jax.Array) -> jax.Array:
        s = self.steepness
        if self.kind == "exp":
            return self.floor + jnp.exp(s * raw)
        if self.kind == "sigmoid":
            return self.floor + (self.ceiling - self.floor) * jax.nn.sigmoid(s * raw)
        if self.kind == "softplus":
            return self.floor + jax.nn.softplus(s * raw)
        return s * raw

    def describe(self) -> str:
        """In words: ``exp above 0``, ``sigmoid in (0, 0.4)``, …"""
        steep = f", steepness {self.steepness:g}" if self.steepness != 1 else ""
        if self.kind == "sigmoid":
            return f"sigmoid in ({self.floor:g}, {self.ceiling:g}){steep}"
        return f"{self.kind} above {self.floor:g}{steep}" if self.kind != "identity" else f"identity{steep}"

    def inverse(self, value: float) -> float:
        """The raw value r with act(r) == value; a clear error outside the open range."""
        s = self.steepness
        if self.kind == "identity":
            return value / s
        if value <= self.floor or (self.kind == "sigmoid" and value >= self.ceiling):
            upper = f", {self.ceiling})" if self.kind == "sigmoid" else ", inf)"
            raise ValueError(
                f"initial value {value} is outside the range ({self.floor}{upper} of a "
                f"{self.kind} activation; change the value or the activation's bounds"
            )
        shifted = value - self.floor
        if self.kind == "exp":
            return math.log(shifted) / s
        if self.kind == "sigmoid":
            p = shifted / (self.ceiling - self.floor)
            return math.log(p / (1.0 - p)) / s
        # softplus^-1(y) = log(expm1(y)), written to stay finite for large y.
        return (shifted + math.log(-math.expm1(-shifted))) / s
