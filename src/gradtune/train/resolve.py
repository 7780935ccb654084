"""``resolve(cfg)``: the one place a run's configuration is completed and checked.

A pure function: it returns a checked copy with every derived value written out (the
optimizer's own defaults for the hyper-parameters left unset, ``guidance.guided`` as the
list of names it stands for, ``guidance.guide_batch = auto`` as its policy,
``guidance.horizon = auto`` as a horizon with its recipe's keys, ``_fill_horizon``) and raises a
one-line ``ConfigError`` naming the key and the fix for any value outside its choices or
range. It reads no data, so a bad setting fails before any work. What can only be checked
once the data are read (a vocabulary larger than the data allow, ``bucket_by = group``
without a group column, a corpus that cleaning empties) is checked by the data layer, and
the run directory is made only after that (``train/loop.py``).

Resolving a resolved config changes nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import optax

from gradtune.core import Activation, parse_schedule
from gradtune.core.guided import rprop
from gradtune.core.optimizers import ALL_OPTIMIZERS
from gradtune.core.step import FORWARD_RESTARTS, LOWER_LR_MASKS
from gradtune.data.hub import hub_config
from gradtune.data.sources import parse_sources
from gradtune.data.span_corruption import text_length
from gradtune.errors import ConfigError, GradtuneError
from gradtune.seq2seq.interface import model_class
from gradtune.train.config import Config
from gradtune.train.data_weights import SCORE_NAMES
from gradtune.train.guidable import GUIDABLE, SIDES, names_of
from gradtune.train.guide_batches import POLICIES
from gradtune.train.mesh import parse_mesh

OBJECTIVES = ("translation", "span_corruption")  # data.objective
DEFAULT_SENTINELS = 100  # data.sentinels = -1 with span corruption
DTYPES = ("float32", "bfloat16")  # model.dtype: of activations and matmuls (parameters stay float32)
BUCKETING = ("length", "group")  # data.bucket_by
BEST_METRICS = ("dev_loss", "dev_accuracy", "dev_bleu", "dev_chrf")  # train.best_metric
LAZY_SCALES = ("step", "row")  # guidance.lazy_scale
HORIZONS = ("auto", "one-step", "forward")  # guidance.horizon
UNIT_INTERVAL = ("b1", "b2", "momentum", "decay", "decay_rate")  # optimizer values in [0, 1)
SPEC_FIELDS = ("kind", "floor", "ceiling", "steepness", "meta_lr")

# guidance.horizon = auto with the learning rate alone guided: forward mode with the
# setting that brought guided runs from 0.1×, 1× and 10× to within 2% of the best constant on
# three pairs and two seeds (README, "The short-horizon bias, and what to do about it"). Each applies to a key left
# unset (None); a key the user set stays. Three more are derived from the run: guidance.until_step
# (UNTIL_FRACTION × train.steps), guidance.hold_mean_from (optim.warmup_steps: the mean of the
# guided values after the base warm-up) and guidance.warmup_restarts (1, or 0 where an evaluation
# or checkpoint comes before the warm-up ends, which a restart may not cross).
RECIPE = {
    "meta_learning_rate": 3e-2,
    "clip": 0.2,
    "forward_min_age": 20,
    "forward_bound_step": 0.1,
    "lower_lr_in_warmup": True,
    "lower_lr_scale": 3.0,
    "lower_lr_above": 1.0,
}
UNTIL_FRACTION = 0.4
# Every other horizon (one-step, an explicit forward): an unset key takes its neutral value, the
# mechanism alone (meta_learning_rate 3e-3 is the paper's).
NEUTRAL = {
    "meta_learning_rate": 3e-3,
    "clip": 0.0,
    "forward_min_age": 0,
    "forward_bound_step": 0.0,
    "lower_lr_in_warmup": False,
    "lower_lr_scale": 1.0,
    "lower_lr_above": 0.0,
    "warmup_restarts": 0,
    "until_step": 0,
    "hold_mean_from": 0,
}


def resolve(cfg: Config) -> Config:
    """A checked copy of ``cfg`` with every derived value filled in (see the module docstring)."""
    cfg = copy.deepcopy(cfg)
    _check_data(cfg)
    _check_model(cfg)
    _resolve_optim(cfg)
    _resolve_guidance(cfg)
    _check_train(cfg)
    return cfg


def _require(ok: bool, key: str, value: Any, must: str) -> None:
    if not ok:
        raise ConfigError(f"{key} is {value!r}; it must {must}")


def _at_least(section: Any, prefix: str, minimum: float, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        _require(value >= minimum, f"{prefix}.{name}", value, f"be at least {minimum:g}")


def _choice(key: str, value: str, choices: tuple[str, ...] | list[str]) -> None:
    _require(value in choices, key, value, f"be one of {', '.join(choices)}")


def _check_data(cfg: Config) -> None:
    d = cfg.data
    for key in ("corpus", "guide_corpus"):
        spec = getattr(d, key)
        if key == "corpus" or spec:
            try:
                for source in parse_sources(spec):
                    if source.kind == "hub":
                        hub_config(*source.location)
            except GradtuneError as e:
                raise ConfigError(f"data.{key}: {e}") from e
    _at_least(d, "data", 0, "min_tokens", "max_tokens", "max_length_ratio", "batch_tokens", "min_guide")
    _require(
        d.max_tokens == 0 or d.max_tokens >= d.min_tokens,
        "data.max_tokens",
        d.max_tokens,
        f"be 0 (no limit) or at least data.min_tokens ({d.min_tokens})",
    )
    _require(
        d.max_length_ratio == 0 or d.max_length_ratio >= 1,
        "data.max_length_ratio",
        d.max_length_ratio,
        "be 0 (no limit) or at least 1",
    )
    _require(d.vocab_size > 4, "data.vocab_size", d.vocab_size, "exceed 4 (pad, unk, BOS and EOS take ids 0-3)")
    _at_least(d, "data", 2, "row_len")
    _at_least(d, "data", 1, "batch_rows", "guide_rows", "num_buckets")
    _require(
        d.batch_tokens == 0 or d.batch_tokens >= d.row_len,
        "data.batch_tokens",
        d.batch_tokens,
        f"be 0 (fixed rows of batch_rows) or at least data.row_len ({d.row_len}), to hold one longest example",
    )
    by_score = d.bucket_by.startswith("score:")
    _choice("data.bucket_by", d.bucket_by, [*BUCKETING, *(f"score:{name}" for name in SCORE_NAMES)])
    _require(
        bool(d.scores) == by_score,
        "data.scores",
        d.scores,
        "name a scores file or run (gradtune score) when data.bucket_by is score:NAME, and be empty otherwise",
    )
    for name in ("dev_fraction", "test_fraction"):
        value = getattr(d, name)
        _require(0 < value < 0.5, f"data.{name}", value, "be in (0, 0.5)")
    _require(
        d.dev_fraction + d.test_fraction < 0.5,
        "data.dev_fraction + data.test_fraction",
        d.dev_fraction + d.test_fraction,
        "be under 0.5",
    )
    _require(0 <= d.guide_fraction < 0.5, "data.guide_fraction", d.guide_fraction, "be in [0, 0.5)")
    _choice("data.objective", d.objective, OBJECTIVES)
    span = d.objective == "span_corruption"
    if d.sentinels == -1:  # auto
        d.sentinels = DEFAULT_SENTINELS if span else 0
    _require(d.sentinels >= 0, "data.sentinels", d.sentinels, "be -1 (automatic) or at least 0")
    _require(
        d.vocab_size - d.sentinels > 4, "data.sentinels", d.sentinels, f"leave data.vocab_size ({d.vocab_size}) room"
    )
    if span:
        _require(0 < d.noise_density < 0.5, "data.noise_density", d.noise_density, "be in (0, 0.5)")
        _require(d.mean_span >= 1, "data.mean_span", d.mean_span, "be at least 1")
        _require(d.sentinels >= 1, "data.sentinels", d.sentinels, "be at least 1 for span corruption")
        try:
            text_length(d.row_len, d.noise_density, d.mean_span)
        except ValueError as e:
            raise ConfigError(f"data.row_len: {e}") from e
    else:
        _require(not d.text, "data.text", d.text, "be empty unless data.objective is span_corruption")


def model_fields(cfg: Config, vocab_size: int) -> Any:
    """The model's config: its class's preset (or its defaults) with the section's fields laid over it."""
    m = cfg.model
    cls = model_class(m.name)
    presets = getattr(cls, "presets", None) or {}
    if presets:
        _choice("model.preset", m.preset, list(presets))
    base = presets.get(m.preset) or cls.config_class(vocab_size=vocab_size)
    own = {f.name for f in dataclasses.fields(base)}
    overrides = {k: v for k, v in dataclasses.asdict(m).items() if k in own and v is not None}
    return dataclasses.replace(base, vocab_size=vocab_size, **overrides)


def _check_model(cfg: Config) -> None:
    merged = model_fields(cfg, cfg.data.vocab_size)
    for name in ("d_model", "num_heads", "mlp_dim", "encoder_layers", "decoder_layers"):
        value = getattr(merged, name, 1)
        _require(value >= 1, f"model.{name}", value, "be at least 1")
    if hasattr(merged, "dtype"):
        _choice("model.dtype", merged.dtype, DTYPES)
    rate = getattr(merged, "dropout", 0.0)
    _require(0 <= rate < 1, "model.dropout", rate, "be in [0, 1)")
    if hasattr(merged, "d_model") and hasattr(merged, "num_heads"):
        _require(
            merged.d_model % merged.num_heads == 0,
            "model.d_model",
            merged.d_model,
            f"be a multiple of model.num_heads ({merged.num_heads})",
        )


def _schedule(key: str, spec: str, base: float, warmup: int, steps: int) -> None:
    try:
        parse_schedule(spec, base, warmup, steps)
    except ValueError as e:
        raise ConfigError(f"{key}: {e}") from e


def _resolve_optim(cfg: Config) -> None:
    o = cfg.optim
    _choice("optim.optimizer", o.optimizer, list(ALL_OPTIMIZERS))
    _require(o.learning_rate > 0, "optim.learning_rate", o.learning_rate, "be > 0")
    _at_least(o, "optim", 0, "warmup_steps")
    _schedule("optim.schedule", o.schedule, o.learning_rate, o.warmup_steps, cfg.train.steps)
    defaults = ALL_OPTIMIZERS[o.optimizer].defaults
    for name in ("b1", "b2", "eps", "weight_decay", "momentum", "decay_rate", "decay"):
        value = getattr(o, name)
        if name not in defaults:
            _require(
                value is None,
                f"optim.{name}",
                value,
                f"be unset: optimizer {o.optimizer} has no {name} (its values: {', '.join(defaults) or 'none'})",
            )
            continue
        value = defaults[name] if value is None else value
        setattr(o, name, value)
        if name in UNIT_INTERVAL:
            _require(0 <= value < 1, f"optim.{name}", value, "be in [0, 1)")
        else:
            _require(value >= 0, f"optim.{name}", value, "be at least 0")
    _require(
        not o.nesterov or o.optimizer == "momentum",
        "optim.nesterov",
        o.nesterov,
        "be false unless optim.optimizer is momentum",
    )
    _require(0 <= o.label_smoothing < 1, "optim.label_smoothing", o.label_smoothing, "be in [0, 1)")


def guidable_names(optimizer: str) -> tuple[str, ...]:
    """Every value a run with ``optimizer`` can guide: optimizer-side, loss-side, data weights."""
    if not ALL_OPTIMIZERS[optimizer].guidable_values:
        return ()
    return tuple(name for side in SIDES for name in names_of(side, optimizer))


def expand_guided(text: str, optimizer: str) -> tuple[str, ...]:
    """The names of a ``guidance.guided`` list (``all``: every optimizer-side value), checked."""
    allowed = guidable_names(optimizer)
    names: list[str] = []
    for item in (s.strip() for s in text.split(",")):
        if item in ("", "none"):
            continue
        for value in ALL_OPTIMIZERS[optimizer].guidable if item == "all" else (item,):
            if value not in allowed:
                raise ConfigError(
                    f"guidance.guided: optimizer {optimizer} has no guidable value {value!r}; "
                    f"its guidable values: {', '.join(allowed)} (or 'all')"
                )
            if value not in names:
                names.append(value)
    return tuple(names)


def guided_names(cfg: Config) -> tuple[str, ...]:
    """The values a resolved run guides (none with guidance off: they are held)."""
    return expand_guided(cfg.guidance.guided, cfg.optim.optimizer) if cfg.guidance.enabled else ()


def parse_spec_overrides(text: str) -> dict[str, dict[str, str]]:
    """``"wd:sigmoid,ceiling=0.01; eps:exp,meta_lr=10"`` → {name: {kind, floor, …}}."""
    overrides: dict[str, dict[str, str]] = {}
    for entry in (e.strip() for e in text.split(";")):
        if not entry:
            continue
        name, sep, rest = entry.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"guidance.specs: {entry!r} lacks 'name:'; e.g. 'weight_decay:sigmoid,ceiling=0.01'")
        parts = [p.strip() for p in rest.split(",") if p.strip()]
        fields = {"kind": parts[0]} if parts and "=" not in parts[0] else {}
        for part in parts[len(fields) :]:
            key, eq, value = part.partition("=")
            if not eq or key not in SPEC_FIELDS:
                raise ConfigError(
                    f"guidance.specs: cannot read {part!r} in {entry!r}; "
                    "write name:kind[,floor=F][,ceiling=C][,steepness=S][,meta_lr=M]"
                )
            fields[key] = value
        overrides[name.strip()] = fields
    return overrides


def initial_values(cfg: Config) -> dict[str, float]:
    """The initial (or held) value of every scalar guidable value of a resolved run, read
    from each one's config key (optimizer-side: the values the run's optimizer has)."""
    o = cfg.optim
    names = (*ALL_OPTIMIZERS[o.optimizer].defaults, *names_of("loss"))
    values = {"learning_rate": cfg.guidance.lr_multiplier}
    for name in names:
        section, field = GUIDABLE[name].config_key.split(".")
        values[name] = getattr(getattr(cfg, section), field)
    return values


def value_activation(name: str, init: float, override: dict[str, str]) -> tuple[Activation, float]:
    """The activation of guided value ``name`` and its meta learning-rate scale, checked
    against the initial value ``init``."""
    try:
        numbers = {k: float(v) for k, v in override.items() if k != "kind"}
        meta_lr = numbers.pop("meta_lr", 1.0)
        activation = default_value_activation(name, init)
        activation = dataclasses.replace(activation, kind=override.get("kind", activation.kind), **numbers)
        activation.inverse(init)  # fails now, not at init, on a bad initial value
    except ValueError as e:
        raise ConfigError(f"guidance.specs, guided {name}: {e}") from e
    if not meta_lr > 0:
        raise ConfigError(f"guidance.specs, guided {name}: meta_lr is {meta_lr}; it must be > 0")
    return activation, meta_lr


def default_value_activation(name: str, init: float) -> Activation:
    """The default activation of guidable value ``name`` (``guidable.GUIDABLE``)."""
    return GUIDABLE[name].activation(init)


# meta optimizers whose learning rate is each value's first step size, adapted from there on (not a schedule)
STEP_SIZE_META_OPTIMIZERS = ("rprop",)
# ours in place of optax's of the same name (optax.rprop steps one update late: see core.guided.scale_by_rprop)
OWN_META_OPTIMIZERS = {"rprop": rprop}


def parse_meta_options(text: str) -> dict[str, float | bool]:
    """``"b1=0.99, b2=0.9999"`` → ``{"b1": 0.99, "b2": 0.9999}``: keyword arguments of the meta optimizer."""
    options: dict[str, float | bool] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, eq, value = (x.strip() for x in part.partition("="))
        if not eq or not key.isidentifier():
            raise ConfigError(
                f"guidance.meta_options: cannot read {part!r}; write key=value[, key=value], e.g. 'b1=0.99'"
            )
        if value.lower() in ("true", "false"):
            options[key] = value.lower() == "true"
            continue
        try:
            options[key] = float(value)
        except ValueError:
            raise ConfigError(f"guidance.meta_options: {key} = {value!r} is not a number (nor true/false)") from None
    return options


def meta_factory(name: str, options: str = "") -> Callable[..., optax.GradientTransformation]:
    """optax's optimizer ``name`` with the keyword arguments ``options`` (``parse_meta_options``),
    checked to take a learning rate and those arguments."""
    factory = OWN_META_OPTIMIZERS.get(name) or getattr(optax, name, None)
    if not callable(factory) or name.startswith("_") or isinstance(factory, type):
        raise ConfigError(f"guidance.meta_optimizer is {name!r}: optax has no such optimizer; e.g. adam, sgd, rmsprop")
    kwargs = parse_meta_options(options)
    try:
        transformation = factory(1e-3)
    except Exception as e:  # anything but an optimizer factory fails in its own way (TypeError, AttributeError…)
        raise ConfigError(f"guidance.meta_optimizer is {name!r}: optax.{name} does not take a learning rate") from e
    if not isinstance(transformation, optax.GradientTransformation):
        raise ConfigError(f"guidance.meta_optimizer is {name!r}: optax.{name} is not an optimizer; e.g. adam, sgd")
    try:
        factory(1e-3, **kwargs)
    except TypeError as e:
        raise ConfigError(f"guidance.meta_options = {options!r}: {name} does not take them ({e})") from None
    return functools.partial(factory, **kwargs)


def _resolve_guidance(cfg: Config) -> None:
    g = cfg.guidance
    if not ALL_OPTIMIZERS[cfg.optim.optimizer].guidable_values:
        _require(
            not g.enabled,
            "guidance.enabled",
            g.enabled,
            f"be false: optimizer {cfg.optim.optimizer} is learning-rate-free and trains with its values held "
            "(--no-guidance)",
        )
        g.guided = ""  # nothing is guided
    names = expand_guided(g.guided, cfg.optim.optimizer)
    g.guided = ",".join(names)
    _choice("guidance.horizon", g.horizon, HORIZONS)
    _fill_horizon(cfg, names)
    _require(g.lr_multiplier > 0, "guidance.lr_multiplier", g.lr_multiplier, "be > 0")
    overrides = parse_spec_overrides(g.specs)
    if unknown := sorted(set(overrides) - set(names)):
        raise ConfigError(f"guidance.specs names {', '.join(unknown)}, which is not guided ({g.guided or 'none'})")
    initial = initial_values(cfg)
    for name in names:
        value_activation(name, initial.get(name, 1.0), overrides.get(name, {}))
    meta_factory(g.meta_optimizer, g.meta_options)
    _require(g.meta_learning_rate > 0, "guidance.meta_learning_rate", g.meta_learning_rate, "be > 0")
    _require(0 < g.meta_turn_decay <= 1, "guidance.meta_turn_decay", g.meta_turn_decay, "be in (0, 1]")
    _require(g.meta_optimizer not in STEP_SIZE_META_OPTIMIZERS or g.meta_schedule == "constant",
             "guidance.meta_schedule", g.meta_schedule, f"be 'constant' with meta_optimizer {g.meta_optimizer}, "
             "which adapts its own step sizes from meta_learning_rate")  # fmt: skip
    _schedule("guidance.meta_schedule", g.meta_schedule, g.meta_learning_rate, 0, g.until_step or cfg.train.steps)
    _require(g.clip is None or g.clip > 0, "guidance.clip", g.clip, "be ≥ 0 (0: none)")
    _choice("guidance.lazy_scale", g.lazy_scale, LAZY_SCALES)
    _require(0 <= g.lazy_b1 < 1, "guidance.lazy_b1", g.lazy_b1, "be in [0, 1)")
    _at_least(g, "guidance", 0, "warmup_steps", "reset_every")
    _at_least(g, "guidance", 1, "guide_every")
    _choice("guidance.guide_batch", g.guide_batch, ("auto", *POLICIES))
    _require(0 <= g.forward_decay <= 1, "guidance.forward_decay", g.forward_decay, "be in [0, 1]")
    _require(g.forward_bound > 0, "guidance.forward_bound", g.forward_bound, "be > 0")
    _choice("guidance.forward_restart", g.forward_restart, FORWARD_RESTARTS)
    _require(0 <= g.guide_average < 1, "guidance.guide_average", g.guide_average, "be in [0, 1)")
    _require(g.guide_average == 0 or g.horizon == "forward", "guidance.guide_average", g.guide_average,
             "be 0 with horizon one-step (the average is carried with forward mode's tangents)")  # fmt: skip
    _require(g.forward_min_age >= 0, "guidance.forward_min_age", g.forward_min_age, "be ≥ 0")
    _require(g.forward_min_age == 0 or g.horizon == "forward", "guidance.forward_min_age", g.forward_min_age,
             "be 0 with horizon one-step (the age is a forward-mode tangent's)")  # fmt: skip
    _require(g.forward_max_age >= 0, "guidance.forward_max_age", g.forward_max_age, "be ≥ 0")
    _require(g.forward_min_age_from >= 0, "guidance.forward_min_age_from", g.forward_min_age_from, "be ≥ 0")
    _require(g.forward_min_age_from == 0 or g.forward_min_age > 0, "guidance.forward_min_age_from",
             g.forward_min_age_from, "be 0 unless guidance.forward_min_age > 0 (it starts that rule)")  # fmt: skip
    _require(g.forward_max_age == 0 or g.horizon == "forward", "guidance.forward_max_age", g.forward_max_age,
             "be 0 with horizon one-step (the age is a forward-mode tangent's)")  # fmt: skip
    _require(g.forward_max_age == 0 or g.forward_max_age > g.forward_min_age, "guidance.forward_max_age",
             g.forward_max_age, f"be 0 or > guidance.forward_min_age = {g.forward_min_age} "
             "(else no meta step is taken)")  # fmt: skip
    _require(g.forward_bound_step >= 0, "guidance.forward_bound_step", g.forward_bound_step, "be ≥ 0")
    _require(g.forward_bound_step == 0 or (g.horizon == "forward" and "learning_rate" in names),
             "guidance.forward_bound_step", g.forward_bound_step,
             "be 0 unless horizon = forward guides the learning rate (it lowers the rate at the bound)")  # fmt: skip
    _require(g.hold_mean_from >= 0, "guidance.hold_mean_from", g.hold_mean_from, "be ≥ 0")
    _require(g.hold_mean_from == 0 or g.horizon == "forward", "guidance.hold_mean_from", g.hold_mean_from,
             "be 0 with horizon one-step (the mean is carried with forward mode's tangents)")  # fmt: skip
    _require(g.hold_mean_from == 0 or g.hold_mean_from < g.until_step, "guidance.hold_mean_from", g.hold_mean_from,
             f"be 0 or below guidance.until_step = {g.until_step} (the values are held from there)")  # fmt: skip
    _require(g.until_step == 0 or g.warmup_steps < g.until_step <= cfg.train.steps, "guidance.until_step",
             g.until_step, f"be 0 (guidance to the end) or in (guidance.warmup_steps, train.steps] = "
             f"({g.warmup_steps}, {cfg.train.steps}]")  # fmt: skip
    _require(g.lower_lr_scale > 0, "guidance.lower_lr_scale", g.lower_lr_scale, "be > 0")
    _require(g.lower_lr_scale == 1 or g.lower_lr_in_warmup, "guidance.lower_lr_scale", g.lower_lr_scale,
             "be 1 unless guidance.lower_lr_in_warmup = true (it scales those lowering steps)")  # fmt: skip
    _require(g.lower_lr_above >= 0, "guidance.lower_lr_above", g.lower_lr_above, "be ≥ 0")
    _require(g.lower_lr_above == 0 or g.lower_lr_in_warmup, "guidance.lower_lr_above", g.lower_lr_above,
             "be 0 unless guidance.lower_lr_in_warmup = true (it says where that rule holds)")  # fmt: skip
    _require(g.lower_lr_mask in LOWER_LR_MASKS, "guidance.lower_lr_mask", g.lower_lr_mask,
             f"be one of {', '.join(LOWER_LR_MASKS)}")  # fmt: skip
    _require(g.lower_lr_mask == "hypergradient" or g.lower_lr_in_warmup, "guidance.lower_lr_mask", g.lower_lr_mask,
             "be 'hypergradient' unless guidance.lower_lr_in_warmup = true (it says how that rule acts)")  # fmt: skip
    _require(g.warmup_restarts >= 0, "guidance.warmup_restarts", g.warmup_restarts, "be ≥ 0")
    _require(g.warmup_restarts == 0 or (g.lower_lr_in_warmup and "learning_rate" in names and g.enabled),
             "guidance.warmup_restarts", g.warmup_restarts, "be 0 unless the learning rate is guided with "
             "guidance.lower_lr_in_warmup = true (a restart follows that rule's first lowering step)")  # fmt: skip
    first_save = min(cfg.train.eval_every, cfg.train.checkpoint_every)
    _require(g.warmup_restarts == 0 or cfg.optim.warmup_steps <= first_save, "guidance.warmup_restarts",
             g.warmup_restarts, f"be 0 unless optim.warmup_steps = {cfg.optim.warmup_steps} ≤ train.eval_every "
             f"and train.checkpoint_every (now {first_save}): a restart comes before any evaluation or "
             "checkpoint")  # fmt: skip
    _require(g.lower_lr_mask != "fresh" or g.guide_every == 1, "guidance.lower_lr_mask", g.lower_lr_mask,
             "not be 'fresh' unless guidance.guide_every = 1 (it restarts at the warm-up's end)")  # fmt: skip
    if g.horizon == "forward" and (vectors := [n for n in names if GUIDABLE[n].side == "data"]):
        raise ConfigError(
            f"guidance.horizon = forward follows scalar values only; {', '.join(vectors)} has a value per row: "
            "guide it with guidance.horizon = one-step"
        )
    if g.guide_batch == "auto":  # one fixed batch would be overfitted by data weights
        g.guide_batch = "cycle" if set(names) & set(names_of("data")) else "fixed"


def _fill_horizon(cfg: Config, names: list[str]) -> None:
    """``guidance.horizon = auto`` as ``forward`` (the learning rate alone guided) or
    ``one-step``, and every unset (None) key of the recipe with its value: ``RECIPE``'s where
    auto chose forward, else ``NEUTRAL``'s. A recipe key that depends on another (the warm-up rule's
    scale, bound and restart; the mean held after guidance) follows what that one became, so that
    setting one key never makes the recipe's others invalid. ``clip = 0`` is written out as None."""
    g = cfg.guidance
    recipe = False
    if g.horizon == "auto":  # the recipe was measured on the learning rate alone
        g.horizon = "forward" if g.enabled and list(names) == ["learning_rate"] else "one-step"
        recipe = g.horizon == "forward"

    def fill(key: str, value: Any) -> None:
        if getattr(g, key) is None:
            setattr(g, key, value if recipe else NEUTRAL[key])

    for key, value in RECIPE.items():
        if key not in ("lower_lr_scale", "lower_lr_above"):
            fill(key, value)
    until = round(UNTIL_FRACTION * cfg.train.steps)
    fill("until_step", until if until > g.warmup_steps else 0)
    warmup = cfg.optim.warmup_steps
    fill("hold_mean_from", warmup if 0 < warmup < g.until_step else 0)
    rule = bool(g.lower_lr_in_warmup)  # the warm-up rule's keys only where it holds
    fill("lower_lr_scale", RECIPE["lower_lr_scale"] if rule else NEUTRAL["lower_lr_scale"])
    fill("lower_lr_above", RECIPE["lower_lr_above"] if rule else NEUTRAL["lower_lr_above"])
    first_save = min(cfg.train.eval_every, cfg.train.checkpoint_every)
    fill("warmup_restarts", 1 if rule and warmup <= first_save else 0)
    if g.clip == 0:
        g.clip = None


def _check_train(cfg: Config) -> None:
    t = cfg.train
    _at_least(
        t,
        "train",
        1,
        "steps",
        "eval_every",
        "log_every",
        "checkpoint_every",
        "keep_checkpoints",
        "max_nonfinite",
        "beam_size",
    )
    _at_least(t, "train", 0, "bleu_examples", "length_penalty", "seed")
    _choice("train.best_metric", t.best_metric, BEST_METRICS)
    if cfg.data.objective != "translation":
        _choice("train.best_metric", t.best_metric, ("dev_loss", "dev_accuracy"))  # no BLEU without translation
    parse_mesh(t.mesh)  # its sizes are checked against the devices when the run starts
