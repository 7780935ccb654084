"""Sensible activations for the usual hyper-parameters.

* ``learning_rate`` (a multiplier) and ``eps``: log space, ``exp``.
* ``b1``, ``b2``, ``momentum``, ``decay``, ``decay_rate``: ``sigmoid`` in (0, 1).
* ``weight_decay``: ``sigmoid`` from 0 to a ceiling of 4× the initial value, so that it
  starts a quarter of the way up, in the sigmoid's live range, never saturated at 0. An
  initial value of 0 cannot be guided this way: the error says so.
* anything else: ``softplus`` (> 0). An application declares its own values' activations
  (gradtune's loss-side ones: ``seq2seq.objectives.LOSS_VALUES``).
"""

from __future__ import annotations

from gradtune.core.activations import Activation

UNIT_INTERVAL = ("b1", "b2", "momentum", "decay", "decay_rate")


def default_activation(name: str, init: float) -> Activation:
    if name in ("learning_rate", "eps"):
        return Activation("exp")
    if name in UNIT_INTERVAL:
        return Activation("sigmoid", 0.0, 1.0)
    if name == "weight_decay":
        return Activation("sigmoid", 0.0, 4.0 * init)
    return Activation("softplus")
