"""The one table of every value a run can guide: where it acts, its config key, its activation.

Three sides, each declared where it lives and gathered here:

* optimizer-side: the hyper-parameters of the optimizer table (``core.OPTIMIZERS``), set in
  the optimizer's state each step;
* loss-side: the values the objective's train loss reads (``seq2seq.objectives.LOSS_VALUES``);
* data weights: vectors gathered per token by an id array of the batch
  (``seq2seq.objectives.DATA_WEIGHTS``).

The config checks (``resolve``), ``guided = all`` (every optimizer-side value of the chosen
optimizer), ``check-hypergrads`` and the README's table (``markdown_table``, compared by a
test) all read ``GUIDABLE``. A new loss-side value is one entry in ``LOSS_VALUES`` plus the
code of the loss that reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from gradtune.core import OPTIMIZERS, Activation
from gradtune.core.defaults import default_activation
from gradtune.seq2seq.objectives import DATA_WEIGHTS, LAZY_WEIGHTS, LOSS_VALUES
from gradtune.train.config import Config

SIDES = ("optimizer", "loss", "data")


@dataclass(frozen=True)
class Guidable:
    """A value a run can guide.

    Attributes:
      name: its name in ``guidance.guided`` and in the metrics (``value/NAME``).
      side: ``optimizer``, ``loss`` or ``data`` (where it acts).
      config_key: the key of its initial (or held) value; empty for data weights, which
        start at 1.
      activation: its default activation, given the initial value (``guidance.specs``
        overrides it).
      optimizers: for an optimizer-side value, the optimizers that have it.
      gathered_by: for a data weight, the per-token ids that pick its rows.
    """

    name: str
    side: str
    config_key: str
    activation: Callable[[float], Activation]
    optimizers: tuple[str, ...] = ()
    gathered_by: str = ""

    def acts(self) -> str:
        """Where it acts, in words (the README table's column)."""
        if self.side == "optimizer":
            return "optimizer: " + ", ".join(self.optimizers)
        if self.side == "loss":
            return "train loss"
        lazy = "; updated lazily (rows in the batch)" if self.name in LAZY_WEIGHTS else ""
        return f"train loss, one weight per {self.gathered_by} (normalised to mean 1){lazy}"


def _optimizer_side() -> list[Guidable]:
    names = list(dict.fromkeys(n for d in OPTIMIZERS.values() for n in d.guidable))
    return [
        Guidable(
            name,
            "optimizer",
            "guidance.lr_multiplier" if name == "learning_rate" else f"optim.{name}",
            partial(default_activation, name),
            optimizers=tuple(o for o, d in OPTIMIZERS.items() if name in d.guidable),
        )
        for name in names
    ]


def _data_weight(init: float) -> Activation:
    return Activation("exp", 0.0, 2.0)  # (0, 2) if made a sigmoid


GUIDABLE: dict[str, Guidable] = {
    g.name: g
    for g in (
        *_optimizer_side(),
        *(Guidable(name, "loss", v.config_key, v.activation) for name, v in LOSS_VALUES.items()),
        *(Guidable(name, "data", "", _data_weight, gathered_by=ids) for name, ids in DATA_WEIGHTS.items()),
    )
}


def names_of(side: str, optimizer: str | None = None) -> tuple[str, ...]:
    """The guidable values acting on ``side`` (optimizer-side: those ``optimizer`` has)."""
    return tuple(
        g.name
        for g in GUIDABLE.values()
        if g.side == side and (optimizer is None or side != "optimizer" or optimizer in g.optimizers)
    )


def default_initial(g: Guidable) -> float:
    """The initial value of ``g`` in the default config (optimizer-side: the default of the
    default optimizer if it has the value, else of the first optimizer that does)."""
    if not g.config_key:
        return 1.0
    if g.side == "optimizer" and g.name != "learning_rate":
        optimizer = Config().optim.optimizer
        return OPTIMIZERS[optimizer if optimizer in g.optimizers else g.optimizers[0]].defaults[g.name]
    section, key = g.config_key.split(".")
    return getattr(getattr(Config(), section), key)


def markdown_table() -> str:
    """The README's table of guidable values (``gradtune config --guidable`` prints it)."""
    rows = [
        "| value | acts in | initial value from | default activation (at the default initial value) |",
        "|---|---|---|---|",
    ]
    for g in GUIDABLE.values():
        key = f"`{g.config_key}`" if g.config_key else "1 (every row)"
        init = default_initial(g)
        rows.append(f"| `{g.name}` | {g.acts()} | {key} | {g.activation(init).describe()} (at {init:g}) |")
    return "\n".join(rows) + "\n"
