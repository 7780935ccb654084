"""From the config to a ``GuidedTrainer``: optimizer, schedule, guided values, meta-optimizer."""

from __future__ import annotations

from dataclasses import dataclass

from gradtune.core import GuidedSpec, GuidedTrainer, make_optimizer, meta_optimizer, optimizer_def, parse_schedule
from gradtune.core.defaults import default_activation
from gradtune.errors import ConfigError
from gradtune.train.config import Config

LOSS_SIDE = ("label_smoothing",)


@dataclass(frozen=True)
class Setup:
    trainer: GuidedTrainer
    hyperparams: dict[str, float]  # resolved optimizer hyper-parameters
    guided: tuple[str, ...]


def guided_names(cfg: Config) -> tuple[str, ...]:
    """The guided values named in the config, checked against the optimizer's."""
    if not cfg.guidance.enabled:
        return ()
    name = cfg.optim.optimizer
    allowed = (*optimizer_def(name).guidable, *LOSS_SIDE)
    names: list[str] = []
    for item in (s.strip() for s in cfg.guidance.guided.split(",")):
        if item in ("", "none"):
            continue
        expanded = optimizer_def(name).guidable if item == "all" else (item,)
        for value in expanded:
            if value not in allowed:
                raise ConfigError(
                    f"optimizer {name} has no guidable value {value!r}; its guidable values: {', '.join(allowed)}"
                )
            if value not in names:
                names.append(value)
    return tuple(names)


def build_trainer(cfg: Config, train_loss, guide_loss) -> Setup:
    """The trainer of the run; also writes the resolved hyper-parameters into ``cfg.optim``."""
    optim = cfg.optim
    try:
        definition = optimizer_def(optim.optimizer)
    except ValueError as e:
        raise ConfigError(str(e)) from e
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

    fixed = {"learning_rate": cfg.guidance.lr_multiplier, "label_smoothing": optim.label_smoothing, **hyperparams}
    names = guided_names(cfg)
    specs = []
    for name in names:
        try:
            spec = GuidedSpec(name, fixed[name], default_activation(name, fixed[name]))
            spec.activation.inverse(spec.init)  # fails now, not at init, on a bad initial value
            specs.append(spec)
        except ValueError as e:
            raise ConfigError(f"guided {name}: {e}") from e
    trainer = GuidedTrainer(
        train_loss=train_loss,
        guide_loss=guide_loss,
        optimizer=optimizer,
        schedule=schedule,
        specs=tuple(specs),
        meta_optimizer=meta_optimizer(specs, cfg.guidance.meta_learning_rate),
        fixed=fixed,
    )
    return Setup(trainer, hyperparams, names)
