"""The run configuration: one typed dataclass tree with defaults.

Loaded from a JSON or TOML file (optionally with one of its ``[overlays.NAME]`` tables laid
over it), overridden by ``--set key=value`` (a full dotted path such as
``optim.learning_rate`` or, when unambiguous, the bare field name), then resolved and
checked once by the pure ``resolve`` (``train/resolve.py``) before any work starts. The
resolved config is what a run saves (``config.json``) and what every builder reads; no
builder changes it.
"""

from __future__ import annotations

import copy
import json
import tomllib
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass, make_dataclass
from pathlib import Path
from typing import Any

from gradtune.errors import ConfigError
from gradtune.seq2seq.model import ModelConfig


@dataclass
class DataConfig:
    corpus: str = "lt-en"  # sources, comma-separated [NAME=]LOCATION: lt-en, wmt19:lt-en, a.tsv, a.de+a.en
    guide_corpus: str = ""  # the guide split from these sources instead of held out of the corpus
    strict: bool = False  # a line that is not UTF-8 is an error (default: skipped and counted)
    min_tokens: int = 1  # cleaning: fewest whitespace tokens per side
    max_tokens: int = 250  # cleaning: most whitespace tokens per side (0 = no limit)
    max_length_ratio: float = 9.0  # cleaning: longer side / shorter side (0 = no limit)
    drop_copies: bool = True  # cleaning: drop pairs whose target copies the source
    drop_duplicates: bool = True  # cleaning: drop exact repeats of a pair
    vocab_size: int = 8000
    row_len: int = 64  # tokens per packed row (source and target alike)
    batch_rows: int = 32  # rows per training batch
    batch_tokens: int = 0  # > 0: token-budget batches in length buckets instead of batch_rows rows
    guide_rows: int = 32  # rows per guide batch
    bucket_by: str = "length"  # data-weight buckets: 'length' (target-length quantiles), 'group', 'score:NAME'
    num_buckets: int = 8  # buckets of bucket_by = 'length' or 'score:NAME'
    scores: str = ""  # bucket_by = 'score:NAME': a scores file (gradtune score) or a run directory holding one
    dev_fraction: float = 0.05
    test_fraction: float = 0.05
    guide_fraction: float = 0.01
    min_guide: int = 500
    tokenizer: str = ""  # a tokenizer.model file to use instead of training one (e.g. a pre-training run's)
    objective: str = "translation"  # translation, or span_corruption (T5-style pre-training; gradtune pretrain)
    text: str = ""  # span corruption: text files (comma-separated), a sentence per line; "": both sides of corpus
    noise_density: float = 0.15  # span corruption: share of a text's tokens cut out
    mean_span: float = 3.0  # span corruption: mean length of a cut-out span
    sentinels: int = -1  # ids after the tokenizer's pieces, the spans' sentinels; -1: 100 for span corruption, else 0


# The model section: the model (``model.name``: a registered one or package.module:Class, see
# seq2seq/interface.py), its preset (tiny, small, base, paper for the Transformer), then every
# field of the Transformer's config, None = the preset's value. The fields come from
# ``ModelConfig`` itself, so a field added there can be set here at once.
ModelSection = make_dataclass(
    "ModelSection",
    [
        ("name", str, field(default="transformer")),
        ("preset", str, field(default="tiny")),
        *[(f.name, f"{f.type} | None", field(default=None)) for f in fields(ModelConfig) if f.name != "vocab_size"],
    ],
)


@dataclass
class OptimConfig:
    optimizer: str = "adamw"  # sgd, momentum, adam, adamw, lamb, adafactor, adagrad, rmsprop
    learning_rate: float = 2e-3  # the 'constant' factor of the schedule
    schedule: str = "constant * linear_warmup * rsqrt_normalized_decay"
    warmup_steps: int = 100
    # Optimizer hyper-parameters; None = the optimizer's own default (written out resolved).
    b1: float | None = None
    b2: float | None = None
    eps: float | None = None
    weight_decay: float | None = None
    momentum: float | None = None
    decay_rate: float | None = None
    decay: float | None = None
    nesterov: bool = False
    label_smoothing: float = 0.1


@dataclass
class GuidanceConfig:
    enabled: bool = True  # --no-guidance sets False: same optimizer, values held
    guided: str = "learning_rate"  # comma-separated guided values; 'all' = every optimizer-side one
    lr_multiplier: float = 1.0  # initial learning-rate multiplier (guided or held)
    # Per-value activation and meta step: "name:kind[,floor=F][,ceiling=C][,steepness=S][,meta_lr=M]; ..."
    specs: str = ""
    # the hypergradient: one-step (the greedy look-ahead of the paper) or forward (tangents of the
    # parameters and optimizer state carried along the whole run, decayed by forward_decay; scalars only);
    # auto: forward when the learning rate alone is guided, with the measured recipe below for each
    # key left unset (None), else one-step (train/resolve.py, RECIPE).
    # An explicit one-step or forward sets the mechanism alone: each unset key takes its neutral value.
    horizon: str = "auto"
    forward_decay: float = 0.99  # horizon = forward: the tangents' decay per step (1: exact over the run)
    # horizon = forward: a tangent longer than this times the parameters (‖dθ/dr‖ / ‖θ‖) restarts from 0
    forward_bound: float = 1.0
    # horizon = forward: a finite tangent past the bound restarts from 0 ('zero') or is shrunk to it ('rescale')
    forward_restart: str = "zero"
    # horizon = forward: β > 0 guides by the loss at the parameters' running average (βA + (1 − β)θ)
    guide_average: float = 0.0
    # horizon = forward: no meta step while a tangent is younger than this many steps (0: none)
    forward_min_age: int | None = None  # recipe 20; neutral 0
    # horizon = forward, with forward_min_age: that rule holds from this step on (0: from the start)
    forward_min_age_from: int = 0
    # horizon = forward: a tangent carried through this many steps restarts from 0 (0: no limit)
    forward_max_age: int = 0
    # horizon = forward: at a guided step where the learning rate's tangent passes forward_bound (the
    # edge of stability), lower its raw value (log-multiplier) by this, young tangent or not (0: never)
    forward_bound_step: float | None = None  # recipe 0.1; neutral 0
    # horizon = forward, with until_step: after guidance, hold the values at their mean over the
    # guided steps from this step on, not at their last (0: the last)
    hold_mean_from: int | None = None  # recipe optim.warmup_steps; neutral 0
    meta_optimizer: str = "adam"  # any optax optimizer taking a learning rate (adam, sgd, rmsprop, …)
    meta_learning_rate: float | None = None  # recipe 3e-2; neutral 3e-3 (the paper's)
    meta_schedule: str = "constant"  # factors as in optim.schedule, e.g. "constant * linear_decay"
    # keyword arguments of the meta optimizer, e.g. "b1=0.99" (adam) or "max_step_size=0.1" (rprop)
    meta_options: str = ""
    meta_turn_decay: float = 1.0  # each value's meta step × this at every turn of its sign (1: never)
    # clip each cleaned hypergradient to [-clip, clip] (0: none); recipe 0.2, neutral none
    clip: float | None = None
    # example weights' lazy Adam: 'step' (rows present share one scale) or 'row' (plain Adam per row)
    lazy_scale: str = "step"
    lazy_b1: float = 0.9  # example weights' lazy Adam: first-moment decay per row (0: each visit counts once)
    warmup_steps: int = 0  # plain steps before guidance starts
    # in the base schedule's warm-up (optim.warmup_steps) a meta step may only lower the learning rate
    lower_lr_in_warmup: bool | None = None  # recipe true; neutral false
    # with lower_lr_in_warmup: those lowering meta steps are this times larger; recipe 3, neutral 1
    lower_lr_scale: float | None = None
    # with lower_lr_in_warmup: the rule (and its lower_lr_scale) holds only while the multiplier is at
    # least this; below it a meta step is the free one, and may raise it up to about this (0: everywhere)
    lower_lr_above: float | None = None  # recipe 1; neutral 0
    # with lower_lr_in_warmup: 'hypergradient' (raising hypergradients count as 0) or 'step'
    # (the meta optimizer sees them all; only its raising steps are withheld) or 'fresh'
    # ('hypergradient', and the meta optimizer's state starts anew when the warm-up ends)
    lower_lr_mask: str = "hypergradient"
    # with lower_lr_in_warmup: at most this many times, the warm-up's first meta step that lowers the
    # learning rate where that rule holds starts the run again from step 0, at the multiplier whose
    # peak rate is the rate of that step (the damage of a start far too high undone; 0: never)
    warmup_restarts: int | None = None  # recipe 1 (0 if a save comes first); neutral 0
    # guidance ends here: values held after, at a plain step's cost (no tangents); 0: never;
    # recipe 0.4 × train.steps; neutral 0
    until_step: int | None = None
    guide_every: int = 1  # a guided step every k steps; plain steps in between
    reset_every: int = 0  # reset guided values (and meta state) every R steps; 0 = never
    # fixed | cycle (new each guided step) | epoch (new each epoch) | train;
    # auto: cycle when data weights are guided (one fixed batch would be overfitted), else fixed
    guide_batch: str = "auto"


@dataclass
class TrainConfig:
    steps: int = 600
    seed: int = 0
    eval_every: int = 200
    log_every: int = 10  # metrics are read back to the host only every this many steps
    bleu_examples: int = 200  # dev examples decoded for BLEU/chrF at each evaluation
    beam_size: int = 1  # beam of those translations (1 = greedy)
    length_penalty: float = 0.6  # GNMT length-penalty alpha of beam search
    checkpoint_every: int = 200  # also at every evaluation, on SIGINT/SIGTERM and at the end
    keep_checkpoints: int = 3  # the newest K, plus the best
    best_metric: str = "dev_loss"  # dev_loss, dev_bleu, dev_chrf or dev_accuracy
    max_nonfinite: int = 5  # stop after this many NaN/inf losses in a row (each update skipped)
    init_from: str = ""  # RUN[:STEP]: start from that run's parameters and tokenizer; fresh optimizer state
    mesh: str = "data:-1"  # device mesh: data:-1 (every device data-parallel) or e.g. data:2,fsdp:2


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSection = field(default_factory=ModelSection)
    optim: OptimConfig = field(default_factory=OptimConfig)
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# The experiment and run configs of a source checkout (the way README installs gradtune).
CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def flat(tree: dict) -> dict:
    """``{section: {key: value}}`` (``to_dict``'s shape) as ``{"section.key": value}``."""
    return {f"{section}.{key}": value for section, values in tree.items() for key, value in values.items()}


def config_file(name: str | Path, folder: Path = CONFIGS) -> Path:
    """The config file ``name``: a path, or the name of a file in ``folder`` (``configs/``;
    ``.toml`` implied)."""
    path = Path(name)
    if path.exists() or path.parent != Path("."):
        return path
    for candidate in (folder / path, folder / f"{path}.toml"):
        if candidate.is_file():
            return candidate
    return path


def _leaves(obj: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """Dotted path → (section object, field) for every leaf of the tree."""
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value):
            out.update(_leaves(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = (obj, f)
    return out


def valid_keys(cfg: Config | None = None) -> list[str]:
    return sorted(_leaves(cfg or Config()))


def _resolve_key(leaves: dict, key: str) -> str:
    if key in leaves:
        return key
    matches = [path for path in leaves if path.rsplit(".", 1)[-1] == key]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ConfigError(f"config key {key!r} is ambiguous: say {' or '.join(matches)}")
    raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(sorted(leaves))}")


def _convert(value: Any, annotation: Any, key: str) -> Any:
    """Coerce a string (from --set) or a file value to the field's declared type.

    A string is parsed (``"true"``, ``"1e-3"``, ``"none"``); a value from a file must
    already have the field's type (an int stands for a float), so that ``steps = true``
    or ``optimizer = 5`` in a file is an error rather than a silent 1 or ``"5"``.
    """
    hint = eval(annotation, vars(typing)) if isinstance(annotation, str) else annotation
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if type(None) in options and (value is None or (isinstance(value, str) and value.lower() in ("none", "null", ""))):
        return None
    for kind in (o for o in options if o is not type(None)):
        if isinstance(value, str):
            parsed = _parse_text(value, kind)
            if parsed is not None:
                return parsed
        elif isinstance(value, bool):
            if kind is bool:
                return value
        elif kind is int and isinstance(value, int):
            return value
        elif kind is float and isinstance(value, int | float):
            return float(value)
    names = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise ConfigError(f"config key {key}: {value!r} is not a valid {names}")


def _parse_text(text: str, kind: type) -> Any:
    """``text`` as a ``kind``, or None if it is not one."""
    if kind is str:
        return text
    if kind is bool:
        return {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False,
                "off": False}.get(text.lower())  # fmt: skip
    try:
        number = float(text)
    except ValueError:
        return None
    if kind is int:
        return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else None
    return number


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """A copy of ``cfg`` with ``overrides`` (dotted or bare key → value) set; not yet resolved."""
    cfg = copy.deepcopy(cfg)
    leaves = _leaves(cfg)
    for key, value in overrides.items():
        path = _resolve_key(leaves, key)
        section, f = leaves[path]
        setattr(section, f.name, _convert(value, f.type, path))
    return cfg


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def read_config_file(path: str | Path, overlay: str | None = None) -> dict[str, Any]:
    """The flat ``key → value`` settings of a JSON or TOML file, with overlay ``overlay``
    (its ``[overlays.NAME]`` table) laid over them."""
    path = config_file(path)
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in CONFIGS.glob("*.toml"))) or "none"
        raise ConfigError(
            f"{path}: "
            + ("a directory, not a config file" if path.exists() else "no such config file")
            + f"; give a TOML or JSON file, or the name of one in configs/ ({names})"
        )
    try:
        text = path.read_text(encoding="utf-8")
        tree = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {e}") from e
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: a config file holds one table (an object) of sections; found {type(tree).__name__}")
    overlays = tree.pop("overlays", {})
    if not isinstance(overlays, dict):
        raise ConfigError(f"{path}: 'overlays' must be a table of named overlays, e.g. [overlays.quick.train]")
    settings = _flatten(tree)
    if overlay is not None:
        if overlay not in overlays:
            raise ConfigError(f"{path} has no overlay {overlay!r}; it has: {', '.join(overlays) or 'none'}")
        settings.update(_flatten(overlays[overlay]))
    return settings


def parse_set(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["key=value", ...]`` (from ``--set``) as a dict; a malformed item is an error."""
    parsed = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        parsed[key.strip()] = value.strip()
    return parsed


def load_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), overlay: str | None = None
) -> Config:
    """Defaults, then the file (JSON or TOML, and its overlay ``overlay``), then ``key=value``
    overrides; resolved and checked (``resolve``)."""
    from gradtune.train.resolve import resolve

    settings = read_config_file(path, overlay) if path is not None else {}
    return resolve(apply_overrides(Config(), {**settings, **parse_set(overrides)}))


def to_dict(cfg: Config) -> dict[str, Any]:
    return asdict(cfg)
