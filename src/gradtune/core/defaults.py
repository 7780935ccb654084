"""Sensible activations for the usual hyper-parameters.

* ``learning_rate`` (a multiplier) and ``eps``: log space, ``exp``.
* ``b1``, ``b2``, ``momentum``, ``decay``, ``decay_rate``: ``sigmoid`` in (0, 1).
* data weights (``corpus_weights``, …): ``exp``; as ``sigmoid``, in (0, 2) unless bounded.
* ``weight_decay``, ``label_smoothing``: ``sigmoid`` from 0 to a ceiling of 4× the
  initial value (label smoothing: at most 0.9), so they start a quarter of the way up, in
  the sigmoid's live range, never saturated at 0. An initial value of 0 cannot be
  guided this way: the error says so.
"""

from __future__ import annotations

from gradtune.core.activations import Activation

UNIT_INTERVAL = ("b1", "b2", "momentum", "decay", "decay_rate")


def default_activation(name: str, init: float) -> Activation:
    if name in ("learning_rate", "eps"):
        return Activation("exp")
    if name.endswith("_weights"):
        return Activation("exp", 0.0, 2.0)  # the ceiling matters only if switched to sigmoid
    if name in UNIT_INTERVAL:
        return Activation("sigmoid", 0.0, 1.0)
    if name == "weight_decay":
        return Activation("sigmoid", 0.0, 4.0 * init)
    if name == "label_smoothing":
        return Activation("sigmoid", 0.0, min(max(4.0 * init, 0.05), 0.9))
    return Activation("softplus")
