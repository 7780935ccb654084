"""A run's compute on one axis, whatever the machine's load: XLA's flop count of each
compiled step, times the steps it ran (evaluation apart)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import jax


def compiled_flops(jitted, *args: Any) -> float:
    """XLA's flop count of ``jitted`` compiled for ``args`` (compiling it once: the call that
    follows finds it in JAX's cache)."""
    analysis = jitted.lower(*args).compile().cost_analysis()
    if isinstance(analysis, list | tuple):  # one per device in older JAX versions
        analysis = analysis[0]
    return float(analysis.get("flops", 0.0))


class ComputeMeter:
    """Counts the steps of each kind (``plain``, ``guided``, ``held``: a plain step after
    guidance has ended) and shape, with their flops; held steps count as plain ones."""

    def __init__(self) -> None:
        self.flops: dict[tuple[str, tuple], float] = {}
        self.calls: Counter[tuple[str, tuple]] = Counter()

    def count(self, kind: str, jitted, state: Any, batch: dict, *rest: Any) -> None:
        """Record one call of step ``kind`` (``jitted(state, batch, *rest)``), before it runs."""
        key = (kind, tuple(x.shape for x in jax.tree.leaves(batch)))
        if key not in self.flops:
            self.flops[key] = compiled_flops(jitted, state, batch, *rest)
        self.calls[key] += 1

    def summary(self) -> dict[str, Any]:
        """Steps and flops of each kind, and the total (the sweep's compute axis)."""
        out: dict[str, Any] = {}
        for kind in ("plain", "guided"):
            keys = [k for k in self.calls if k[0] == kind or (kind == "plain" and k[0] == "held")]
            out[f"{kind}_steps"] = sum(self.calls[k] for k in keys)
            out[f"{kind}_flops"] = sum(self.calls[k] * self.flops[k] for k in keys)
        out["train_flops"] = out["plain_flops"] + out["guided_flops"]
        return out
