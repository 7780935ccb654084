"""From the config to a ``GuidedTrainer``: optimizer, schedule, guided values, meta-optimizer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import optax

from gradtune.core import (
    GuidedSpec,
    GuidedTrainer,
    make_optimizer,
    meta_optimizer,
    optimizer_def,
    parse_schedule,
)
from gradtune.core.data_weights import KINDS, NAMES, data_weight_spec, weight_name
from gradtune.core.defaults import default_activation
from gradtune.errors import ConfigError
from gradtune.seq2seq.objectives import make_rows_present
from gradtune.train.config import Config
from gradtune.train.guide_batches import POLICIES

LOSS_SIDE = ("label_smoothing",)


@dataclass(frozen=True)
class Setup:
    trainer: GuidedTrainer
    hyperparams: dict[str, float]  # resolved optimizer hyper-parameters
    guided: tuple[str, ...]
    meta_schedule: optax.Schedule


def guided_names(cfg: Config) -> tuple[str, ...]:
    """The guided values named in the config, checked against the optimizer's."""
    if not cfg.guidance.enabled:
        return ()
    definition = optimizer_def(cfg.optim.optimizer)
    allowed = (*definition.guidable, *LOSS_SIDE, *NAMES)
    names: list[str] = []
    for item in (s.strip() for s in cfg.guidance.guided.split(",")):
        if item in ("", "none"):
            continue
        for value in definition.guidable if item == "all" else (item,):
            if value not in allowed:
                raise ConfigError(
                    f"optimizer {cfg.optim.optimizer} has no guidable value {value!r}; "
                    f"its guidable values: {', '.join(allowed)} (or 'all')"
                )
            if value not in names:
                names.append(value)
    return tuple(names)


def parse_spec_overrides(text: str) -> dict[str, dict[str, str]]:
    """``"wd:sigmoid,ceiling=0.01; eps:exp,meta_lr=10"`` → {name: {kind, floor, …}}."""
    overrides: dict[str, dict[str, str]] = {}
    for entry in (e.strip() for e in text.split(";")):
        if not entry:
            continue
        name, sep, rest = entry.partition(":")
        parts = [p.strip() for p in rest.split(",") if p.strip()]
        fields = {"kind": parts[0]} if parts and "=" not in parts[0] else {}
        for part in parts[len(fields) :]:
            key, eq, value = part.partition("=")
            if not eq or key not in ("kind", "floor", "ceiling", "steepness", "meta_lr"):
                raise ConfigError(
                    f"guidance.specs: cannot read {part!r} in {entry!r}; "
                    "write name:kind[,floor=F][,ceiling=C][,steepness=S][,meta_lr=M]"
                )
            fields[key] = value
        if not sep or not name.strip():
            raise ConfigError(f"guidance.specs: {entry!r} lacks 'name:'; e.g. 'weight_decay:sigmoid,ceiling=0.01'")
        overrides[name.strip()] = fields
    return overrides


def make_spec(name: str, init: float, override: dict[str, str], counts: np.ndarray | None = None) -> GuidedSpec:
    """The spec of a guided value; data weights (``counts``: each row's training tokens) start at 1."""
    activation = default_activation(name, init)
    try:
        numbers = {k: float(v) for k, v in override.items() if k != "kind"}
        meta_lr = numbers.pop("meta_lr", 1.0)
        activation = replace(activation, kind=override.get("kind", activation.kind), **numbers)
        activation.inverse(init)  # fails now, not at init, on a bad initial value
        if counts is not None:
            return data_weight_spec(name.removesuffix("_weights"), counts, activation, meta_lr)
    except ValueError as e:
        raise ConfigError(f"guided {name}: {e}") from e
    return GuidedSpec(name, init, activation, meta_lr_scale=meta_lr)


def guide_policy(cfg: Config, guided: tuple[str, ...]) -> str:
    """``guidance.guide_batch`` with ``auto`` resolved: cycle when data weights are guided."""
    policy = cfg.guidance.guide_batch
    if policy == "auto":
        return "cycle" if set(guided) & set(NAMES) else "fixed"
    return policy


def build_meta_optimizer(cfg: Config, specs: list[GuidedSpec]) -> tuple[optax.GradientTransformation, optax.Schedule]:
    g = cfg.guidance
    try:
        schedule = parse_schedule(g.meta_schedule, g.meta_learning_rate, 0, cfg.train.steps)
    except ValueError as e:
        raise ConfigError(f"guidance.meta_schedule: {e}") from e
    factory = getattr(optax, g.meta_optimizer, None)
    if not callable(factory) or g.meta_optimizer.startswith("_"):
        raise ConfigError(
            f"guidance.meta_optimizer: optax has no optimizer {g.meta_optimizer!r}; e.g. adam, sgd, rmsprop"
        )
    try:
        base = factory(schedule)
    except TypeError as e:
        raise ConfigError(f"guidance.meta_optimizer: optax.{g.meta_optimizer} does not take a learning rate") from e
    if g.lazy_scale not in ("step", "row"):
        raise ConfigError(f"guidance.lazy_scale is {g.lazy_scale!r}; choose step or row")
    return meta_optimizer(
        specs, learning_rate=schedule, base=base, clip=g.clip, lazy_scale=g.lazy_scale, lazy_b1=g.lazy_b1
    ), schedule


def build_trainer(cfg: Config, train_loss, guide_loss, weight_counts: Mapping[str, np.ndarray] | None = None) -> Setup:
    """The trainer of the run; also writes the resolved hyper-parameters into ``cfg.optim``
    and the resolved guide-batch policy into ``cfg.guidance``.

    ``weight_counts``: kind (corpus, bucket, example) → training tokens of each row; needed
    when data weights are guided.
    """
    optim, g = cfg.optim, cfg.guidance
    try:
        definition = optimizer_def(optim.optimizer)
    except ValueError as e:
        raise ConfigError(f"optim.optimizer: {e}") from e
    if g.guide_batch not in (*POLICIES, "auto"):
        raise ConfigError(f"guidance.guide_batch: {g.guide_batch!r}; choose one of auto, {', '.join(POLICIES)}")
    if g.guide_every < 1 or g.reset_every < 0 or g.warmup_steps < 0:
        raise ConfigError("guidance.guide_every must be ≥ 1, reset_every and warmup_steps ≥ 0")
    hyperparams = {}
    for key, default in definition.defaults.items():
        value = getattr(optim, key)
        hyperparams[key] = default if value is None else value
        setattr(optim, key, hyperparams[key])
    static = {"nesterov": optim.nesterov} if optim.optimizer == "momentum" else {}
    optimizer = make_optimizer(optim.optimizer, hyperparams, **static)
    try:
        schedule = parse_schedule(optim.schedule, optim.learning_rate, optim.warmup_steps, cfg.train.steps)
    except ValueError as e:
        raise ConfigError(f"optim.schedule: {e}") from e

    fixed = {"learning_rate": g.lr_multiplier, "label_smoothing": optim.label_smoothing, **hyperparams}
    names = guided_names(cfg)
    overrides = parse_spec_overrides(g.specs)
    unknown = set(overrides) - set(names)
    if unknown:
        raise ConfigError(
            f"guidance.specs names {', '.join(sorted(unknown))}, which is not guided ({', '.join(names) or 'none'})"
        )
    counts = {weight_name(kind): c for kind, c in (weight_counts or {}).items() if kind in KINDS}
    missing = [n for n in names if n in NAMES and n not in counts]
    if missing:
        raise ConfigError(f"guided {', '.join(missing)}: the run's data carries no such ids")
    specs = [make_spec(name, fixed.get(name, 1.0), overrides.get(name, {}), counts.get(name)) for name in names]
    g.guide_batch = guide_policy(cfg, names)
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
    )
    return Setup(trainer, hyperparams, names, meta_schedule)
