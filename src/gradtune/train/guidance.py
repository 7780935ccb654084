"""From a resolved config to a ``GuidedTrainer``: optimizer, schedule, guided values, meta-optimizer.

The config is resolved and checked before it gets here (``train/resolve.py``); nothing in
this module changes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import optax

from gradtune.core import GuidedSpec, GuidedTrainer, make_optimizer, meta_optimizer, optimizer_def, parse_schedule
from gradtune.core.data_weights import data_weight_spec
from gradtune.core.guided import scale_by_turns
from gradtune.errors import ConfigError
from gradtune.seq2seq.objectives import KINDS, LAZY_WEIGHTS, make_rows_present, weight_name
from gradtune.train.config import Config
from gradtune.train.guidable import GUIDABLE
from gradtune.train.resolve import (
    STEP_SIZE_META_OPTIMIZERS,
    guided_names,
    initial_values,
    meta_factory,
    parse_spec_overrides,
    resolve,
    value_activation,
)


@dataclass(frozen=True)
class Setup:
    trainer: GuidedTrainer
    hyperparams: dict[str, float]  # resolved optimizer hyper-parameters
    guided: tuple[str, ...]
    meta_schedule: optax.Schedule


def make_spec(name: str, init: float, override: dict[str, str], counts: np.ndarray | None = None) -> GuidedSpec:
    """The spec of a guided value; data weights (``counts``: each row's training tokens) start at 1."""
    activation, meta_lr = value_activation(name, init, override)
    if counts is not None:
        return data_weight_spec(name, counts, activation, meta_lr, lazy=name in LAZY_WEIGHTS)
    return GuidedSpec(name, init, activation, meta_lr_scale=meta_lr)


def build_meta_optimizer(cfg: Config, specs: list[GuidedSpec]) -> tuple[optax.GradientTransformation, optax.Schedule]:
    g = cfg.guidance
    schedule = parse_schedule(g.meta_schedule, g.meta_learning_rate, 0, g.until_step or cfg.train.steps)
    # rprop's learning rate is each value's first step size (a number), which it then adapts
    first = g.meta_learning_rate if g.meta_optimizer in STEP_SIZE_META_OPTIMIZERS else schedule
    base = meta_factory(g.meta_optimizer, g.meta_options)(first)
    if g.meta_turn_decay < 1:
        base = optax.chain(base, scale_by_turns(g.meta_turn_decay))
    return meta_optimizer(
        specs, learning_rate=schedule, base=base, clip=g.clip, lazy_scale=g.lazy_scale, lazy_b1=g.lazy_b1
    ), schedule


def build_trainer(cfg: Config, train_loss, guide_loss, weight_counts: Mapping[str, np.ndarray] | None = None) -> Setup:
    """The trainer of a resolved run.

    ``weight_counts``: kind (corpus, bucket, example) → training tokens of each row; needed
    when data weights are guided.
    """
    cfg = resolve(cfg)  # a no-op on a resolved config; never changes the caller's
    optim, g = cfg.optim, cfg.guidance
    fixed = initial_values(cfg)
    hyperparams = {k: v for k, v in fixed.items() if GUIDABLE[k].side == "optimizer" and k != "learning_rate"}
    static = {name: getattr(optim, name) for name in optimizer_def(optim.optimizer).static_args}
    optimizer = make_optimizer(optim.optimizer, hyperparams, **static)
    schedule = parse_schedule(optim.schedule, optim.learning_rate, optim.warmup_steps, cfg.train.steps)

    names = guided_names(cfg)
    overrides = parse_spec_overrides(cfg.guidance.specs)
    counts = {weight_name(kind): c for kind, c in (weight_counts or {}).items() if kind in KINDS}
    if missing := [n for n in names if GUIDABLE[n].side == "data" and n not in counts]:
        raise ConfigError(f"guided {', '.join(missing)}: the run's data carries no such ids")
    specs = [make_spec(name, fixed.get(name, 1.0), overrides.get(name, {}), counts.get(name)) for name in names]
    meta, meta_schedule = build_meta_optimizer(cfg, specs)
    lazy = {s.name: s.shape[0] for s in specs if s.lazy}
    trainer = GuidedTrainer(
        train_loss=train_loss,
        guide_loss=guide_loss,
        optimizer=optimizer,
        schedule=schedule,
        specs=tuple(specs),
        meta_optimizer=meta,
        fixed=fixed,
        rows_present=make_rows_present(lazy) if lazy else None,
        forward_decay=g.forward_decay if g.horizon == "forward" and g.enabled and names else None,
        forward_bound=g.forward_bound,
        forward_restart=g.forward_restart,
        guide_average=g.guide_average if g.horizon == "forward" and g.enabled and names else 0.0,
        forward_min_age=g.forward_min_age if g.horizon == "forward" and g.enabled and names else 0,
        forward_min_age_from=g.forward_min_age_from if g.horizon == "forward" and g.enabled and names else 0,
        forward_max_age=g.forward_max_age if g.horizon == "forward" and g.enabled and names else 0,
        forward_bound_step=g.forward_bound_step if g.horizon == "forward" and g.enabled and names else 0.0,
        hold_mean_from=g.hold_mean_from if g.horizon == "forward" and g.enabled and names else 0,
        lower_lr_only_until=optim.warmup_steps if g.lower_lr_in_warmup else 0,
        lower_lr_scale=g.lower_lr_scale,
        lower_lr_above=g.lower_lr_above,
        lower_lr_mask=g.lower_lr_mask,
    )
    return Setup(trainer, hyperparams, names, meta_schedule)
