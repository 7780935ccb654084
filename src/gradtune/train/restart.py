"""Starting a run again from step 0 when its warm-up says the learning rate is too high
(``guidance.warmup_restarts``).

A start far above the best rate does its damage in the base schedule's first steps, before a
hypergradient whose horizon is the steps seen so far can say so; what it says then — the
warm-up rule's first lowering step, at a rate the young model could no longer take — is used
to start again, undamaged, at the multiplier whose peak rate is that step's rate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import jax
import jax.numpy as jnp


@dataclass(frozen=True)
class Restart:
    """One restart: at step index ``step`` (0-based; steps 0 … step were spent) the meta step
    lowered the multiplier from ``multiplier``, at the rate ``learning_rate``; the run began
    again at ``new_multiplier``."""

    step: int
    multiplier: float
    learning_rate: float
    new_multiplier: float

    @property
    def spent(self) -> int:
        """The steps of the abandoned attempt."""
        return self.step + 1

    def to_json(self) -> dict:
        return asdict(self)


def is_turn(step: int, before: float, after: float, until: int, above: float) -> bool:
    """Whether the meta step of step ``step`` is the warm-up rule's lowering step: inside its
    window (``step < until``), where it holds (``before ≥ above``), the multiplier lowered.

    >>> is_turn(19, 10.0, 9.9, until=100, above=1.0), is_turn(19, 0.5, 0.4, until=100, above=1.0)
    (True, False)
    """
    return step < until and before >= above and after < before


def peak_rate(schedule, steps: int) -> float:
    """The base schedule's largest rate over steps 0 … ``steps`` − 1."""
    return float(jnp.max(jax.vmap(schedule)(jnp.arange(steps))))


def restart_multiplier(learning_rate: float, peak: float) -> float:
    """The multiplier whose peak rate is ``learning_rate``: a rate the warm-up rule said is
    too high at the turn is then reached only at the schedule's peak, where it was lowered.

    >>> restart_multiplier(4e-3, 2e-3)
    2.0
    """
    return learning_rate / peak


def spent_steps(restarts: list[Restart]) -> int:
    """The steps of every abandoned attempt: they come out of ``guidance.until_step``'s guided steps."""
    return sum(r.spent for r in restarts)
