"""Sweeps: guided runs against a grid, Optuna and learning-rate-free optimizers, on one compute axis.

A sweep file (``configs/sweeps/*.toml``) names one base run (a run config and ``set``
overrides: data, model, steps, seed) and the methods to compare on it:

* ``grid``: held constants (``--no-guidance``) at the listed or log-spaced points of one
  or more keys (their product);
* ``guided``: guided runs from several starting values;
* ``lr-free``: learning-rate-free optimizers of ``optax.contrib`` at their authors'
  recommended settings (``LR_FREE_SETTINGS``), values held;
* ``optuna``: an Optuna sampler (TPE by default, few start-up trials) over a range of the
  same keys, optionally pruned by the dev loss at each evaluation, stopped once a trial
  matches a target (the best guided run);
* ``seeds``: the spread between seeds, the best grid point and one guided start on more seeds.

Every trial is an ordinary run directory (``OUT/trials/…``). The sweep's state is an
Optuna study per method in one storage (SQLite ``OUT/sweep.db`` by default; any Optuna
storage URL for several machines): trials of the fixed methods are queued once and taken
atomically by whichever worker is free; a killed worker's trial is found by its stale
heartbeat, failed, and queued again, so a restarted sweep keeps its finished trials and
continues the unfinished one from its newest complete checkpoint (exact, as ``train --resume``;
from the start when it has none, or when its run folder ran another config). Each trial
records its steps, training seconds and XLA's flop count of its compiled steps times the
steps it ran (``train/compute.py``): the axis on which methods are compared, whatever the
machine's load.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gradtune.core.step import value_key
from gradtune.errors import GradtuneError
from gradtune.files import write_json

METHODS = ("grid", "guided", "lr-free", "optuna", "seeds")  # the order a worker runs them in
FIXED = ("grid", "guided", "lr-free", "seeds")  # methods whose trials are a list, queued once
HEARTBEAT_SECONDS = 2  # a running trial's worker writes a heartbeat this often ...
GRACE_SECONDS = 10  # ... and a trial without one for this long is taken for dead and redone

# What a user picks instead of tuning the learning rate, each at its authors' recommendation
# (held: nothing of theirs is guided). The report repeats these settings.
LR_FREE_SETTINGS: dict[str, dict[str, Any]] = {
    "prodigy": {  # Mishchenko & Defazio 2023: lr 1 with a linear decay to 0 after a 0-20% warm-up
        "optim.optimizer": "prodigy",
        "optim.learning_rate": 1.0,
        "optim.schedule": "constant * linear_warmup * linear_decay",
    },
    "schedule_free_adamw": {  # Defazio et al. 2024: its own warm-up, no decay; evaluated at x
        "optim.optimizer": "schedule_free_adamw",
        "optim.learning_rate": 2.5e-3,
        "optim.schedule": "constant",
    },
    "dog": {  # Ivgi et al. 2023: lr 1, no schedule
        "optim.optimizer": "dog",
        "optim.learning_rate": 1.0,
        "optim.schedule": "constant",
    },
}
LR_FREE_NOTES = {
    "prodigy": "Prodigy, lr 1.0, linear warm-up (optim.warmup_steps) then linear decay to 0, safeguard_warmup",
    "schedule_free_adamw": "schedule-free AdamW, lr 2.5e-3, its own linear warm-up (optim.warmup_steps), "
    "no decay, b2 0.999; evaluated at its x sequence",
    "dog": "DoG, lr 1.0, constant (no iterate averaging)",
}


class SweepError(GradtuneError):
    """A malformed sweep file or an unusable sweep storage (names the key or URL and the fix)."""


# ---------------------------------------------------------------------------------------------
# The sweep file


@dataclass(frozen=True)
class OptunaSpec:
    space: dict[str, tuple[float, float, bool]]  # key -> (low, high, log)
    trials: int = 27
    startup_trials: int = 3
    sampler: str = "TPESampler"
    pruner: str = "none"  # none, median or halving
    stop_at: str = "guided"  # "guided" (the best guided run's dev loss), a number, or "none"
    seed: int = 0


@dataclass(frozen=True)
class Sweep:
    name: str
    config: str | None  # the base run's config file (a path or a name in configs/)
    base_set: tuple[str, ...]  # the base run's --set overrides
    methods: tuple[str, ...]
    grid: dict[str, list[float]] = field(default_factory=dict)
    grid_set: tuple[str, ...] = ()
    guided: dict[str, list[float]] = field(default_factory=dict)
    guided_set: tuple[str, ...] = ()
    lr_free: tuple[str, ...] = ()
    optuna: OptunaSpec | None = None
    seeds: tuple[int, ...] = ()
    seeds_guided_start: dict[str, float] = field(default_factory=dict)
    test_sentences: int = 0  # of the test split, for the best trials' BLEU and chrF (0 = all)
    beam: int = 4


def _points(key: str, spec: Any, where: str) -> list[float]:
    """A list of values, or ``{low, high, points, log}`` spaced evenly (log-evenly)."""
    if isinstance(spec, list) and spec and all(isinstance(v, int | float) for v in spec):
        return [float(v) for v in spec]
    if isinstance(spec, dict) and {"low", "high", "points"} <= set(spec):
        low, high, n = float(spec["low"]), float(spec["high"]), int(spec["points"])
        if spec.get("log", False):
            return [float(v) for v in np.geomspace(low, high, n)]
        return [float(v) for v in np.linspace(low, high, n)]
    raise SweepError(f"{where}.{key}: give a list of numbers or {{low, high, points, log}}, not {spec!r}")


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SweepError(f"{where}: give a list of strings, not {value!r}")
    return tuple(value)


def merge(tree: dict, over: dict) -> dict:
    """``tree`` with ``over`` laid over it, table by table."""
    out = dict(tree)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _set_dotted(tree: dict, key: str, text: str) -> None:
    """``--set grid.space.guidance.lr_multiplier=[0.1,1]``-style overrides of the sweep file."""
    section, _, rest = key.partition(".")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    target = tree.setdefault(section, {})
    if section in ("grid", "guided", "optuna") and rest.startswith("space."):
        target.setdefault("space", {})[rest.removeprefix("space.")] = value
    else:
        target[rest] = value


def read_sweep(path: str | Path, overlay: str | None = None, overrides: tuple[str, ...] = ()) -> Sweep:
    """The sweep of a TOML file, its ``overlay`` laid over it, then ``overrides``: ``KEY=VALUE``
    where a key under a sweep section (``sweep.``, ``grid.``, ``optuna.``, …) changes the
    sweep and any other key is a ``--set`` of the base run."""
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"{path}: no such sweep file; give a TOML file such as configs/sweeps/lt-en.toml")
    try:
        tree = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SweepError(f"{path}: not valid TOML: {e}") from e
    overlays = tree.pop("overlays", {})
    if overlay is not None:
        if overlay not in overlays:
            raise SweepError(f"{path} has no overlay {overlay!r}; it has: {', '.join(overlays) or 'none'}")
        tree = merge(tree, overlays[overlay])
    run_set = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SweepError(f"--set expects key=value, got {item!r}")
        if key.split(".")[0] in ("sweep", "grid", "guided", "optuna", "lr-free", "seeds", "report"):
            _set_dotted(tree, key.strip(), value.strip())
        else:
            run_set.append(item)
    unknown = set(tree) - {"sweep", "grid", "guided", "optuna", "lr-free", "seeds", "report"}
    if unknown:
        raise SweepError(
            f"{path}: unknown section(s) {', '.join(sorted(unknown))}; sections: sweep, {', '.join(METHODS)}"
        )
    return _parse(path, tree, tuple(run_set))


def _parse(path: Path, tree: dict, run_set: tuple[str, ...]) -> Sweep:
    head = tree.get("sweep", {})
    methods = _strings(head.get("methods", [m for m in METHODS if m in tree]), "sweep.methods")
    if bad := [m for m in methods if m not in METHODS]:
        raise SweepError(f"sweep.methods: unknown method(s) {', '.join(bad)}; choose from {', '.join(METHODS)}")
    if missing := [m for m in methods if m != "seeds" and m not in tree]:
        raise SweepError(f"{path}: sweep.methods names {', '.join(missing)} but the file has no such section")

    def space(section: str) -> dict[str, list[float]]:
        values = tree.get(section, {}).get("space", {})
        if not isinstance(values, dict) or (section in methods and not values):
            raise SweepError(f'{section}.space: give one or more keys, e.g. "guidance.lr_multiplier" = [0.1, 1, 10]')
        return {key: _points(key, spec, f"{section}.space") for key, spec in values.items()}

    optuna_spec = None
    if "optuna" in methods:
        o = tree["optuna"]
        ranges = {}
        for key, spec in o.get("space", {}).items():
            if not (isinstance(spec, dict) and {"low", "high"} <= set(spec)):
                raise SweepError(f"optuna.space.{key}: give {{low, high, log}}, not {spec!r}")
            ranges[key] = (float(spec["low"]), float(spec["high"]), bool(spec.get("log", False)))
        if not ranges:
            raise SweepError('optuna.space: give one or more keys, e.g. "guidance.lr_multiplier" = {low = 0.1, ...}')
        known = {f.name for f in dataclasses.fields(OptunaSpec)} - {"space"}
        if extra := set(o) - known - {"space"}:
            raise SweepError(
                f"optuna: unknown key(s) {', '.join(sorted(extra))}; keys: space, {', '.join(sorted(known))}"
            )
        optuna_spec = OptunaSpec(ranges, **{k: o[k] for k in known if k in o})
        if optuna_spec.pruner not in ("none", "median", "halving"):
            raise SweepError(f"optuna.pruner is {optuna_spec.pruner!r}; choose none, median or halving")
    lr_free = _strings(tree.get("lr-free", {}).get("optimizers", []), "lr-free.optimizers")
    if bad := [o for o in lr_free if o not in LR_FREE_SETTINGS]:
        raise SweepError(f"lr-free.optimizers: unknown {', '.join(bad)}; choose from {', '.join(LR_FREE_SETTINGS)}")
    if "lr-free" in methods and not lr_free:
        raise SweepError('lr-free.optimizers: name at least one, e.g. ["prodigy", "schedule_free_adamw", "dog"]')
    seeds = tree.get("seeds", {})
    report = tree.get("report", {})
    return Sweep(
        name=str(head.get("name", path.stem)),
        config=head.get("config"),
        base_set=(*_strings(head.get("set", []), "sweep.set"), *run_set),
        methods=methods,
        grid=space("grid") if "grid" in tree else {},
        grid_set=_strings(tree.get("grid", {}).get("set", []), "grid.set"),
        guided=space("guided") if "guided" in tree else {},
        guided_set=_strings(tree.get("guided", {}).get("set", []), "guided.set"),
        lr_free=lr_free,
        optuna=optuna_spec,
        seeds=tuple(int(s) for s in seeds.get("seeds", [])),
        seeds_guided_start={k: float(v) for k, v in seeds.get("guided_start", {}).items()},
        test_sentences=int(report.get("test_sentences", 0)),
        beam=int(report.get("beam", 4)),
    )


# ---------------------------------------------------------------------------------------------
# Trials


@dataclass(frozen=True)
class Point:
    """One trial of a fixed method: its label and the --set overrides that make it."""

    label: str
    overrides: tuple[str, ...]


def _label(values: dict[str, float]) -> str:
    return ",".join(f"{k.rsplit('.', 1)[-1]}={v:.4g}" for k, v in values.items())


def _product(space: dict[str, list[float]]) -> list[dict[str, float]]:
    keys = list(space)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*space.values())]


HELD = ("guidance.enabled=false",)


def fixed_points(sweep: Sweep, method: str, trials: dict[str, list[dict]] | None = None) -> list[Point]:
    """The trials of ``grid``, ``guided`` and ``lr-free``; of ``seeds`` once the grid is done
    (``trials``: each method's finished trials, from which the best grid point is taken)."""
    if method == "grid":
        return [Point(_label(v), (*HELD, *sweep.grid_set, *_sets(v))) for v in _product(sweep.grid)]
    if method == "guided":
        return [Point(_label(v), (*sweep.guided_set, *_sets(v))) for v in _product(sweep.guided)]
    if method == "lr-free":
        return [Point(name, (*HELD, "guidance.guided=none", *_sets(LR_FREE_SETTINGS[name]))) for name in sweep.lr_free]
    if method == "seeds":
        grid = [t for t in (trials or {}).get("grid", []) if t.get("dev_loss") is not None]
        points = []
        if grid:
            best = min(grid, key=lambda t: t["dev_loss"])
            points += [
                Point(f"grid {best['label']},seed={s}", (*best["overrides"], f"train.seed={s}")) for s in sweep.seeds
            ]
        if sweep.seeds_guided_start:
            start = (*sweep.guided_set, *_sets(sweep.seeds_guided_start))
            label = _label(sweep.seeds_guided_start)
            points += [Point(f"guided {label},seed={s}", (*start, f"train.seed={s}")) for s in sweep.seeds]
        return points
    raise ValueError(method)


def _sets(values: dict[str, Any]) -> list[str]:
    return [f"{k}={v}" for k, v in values.items()]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")


# ---------------------------------------------------------------------------------------------
# Running


def open_storage(url: str):
    """The Optuna storage of ``url`` with heartbeats (dead workers' trials are redone)."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        return RDBStorage(
            url,
            engine_kwargs=engine,
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=GRACE_SECONDS,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
        )
    except Exception as e:  # SQLAlchemy's errors for a bad URL or an unreachable server
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SweepError(
            f"cannot open the sweep storage {url}: {detail}; check the URL and that it is reachable"
        ) from e
    finally:
        optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study(storage, sweep: Sweep, method: str):
    import optuna

    if method == "optuna":
        spec = sweep.optuna
        sampler_class = getattr(optuna.samplers, spec.sampler, None)
        if sampler_class is None:
            raise SweepError(f"optuna.sampler: optuna has no sampler {spec.sampler!r}; e.g. TPESampler, RandomSampler")
        kwargs = {"seed": spec.seed}
        if spec.sampler == "TPESampler":
            kwargs["n_startup_trials"] = spec.startup_trials
        sampler = sampler_class(**kwargs)
        pruner = {
            "none": optuna.pruners.NopPruner(),
            "median": optuna.pruners.MedianPruner(n_startup_trials=spec.startup_trials),
            "halving": optuna.pruners.SuccessiveHalvingPruner(),
        }[spec.pruner]
    else:
        sampler, pruner = optuna.samplers.RandomSampler(seed=0), optuna.pruners.NopPruner()
    return optuna.create_study(
        storage=storage, study_name=f"{sweep.name}/{method}", sampler=sampler, pruner=pruner, load_if_exists=True
    )


def _key(attrs: dict, base: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What a trial ran: the sweep's config and ``set`` list, and its point's overrides (a trial
    queued before they were recorded counts as run with ``base``)."""
    return tuple(attrs.get("base", base)), tuple(attrs.get("overrides", ()))


def _queue(study, points: list[Point], base: tuple[str, ...]) -> None:
    """Queue every point that no trial holds yet (waiting, running or finished; not failed).
    A point is what it runs (``_key``), so a trial queued by another version of the sweep
    file (other values or other ``set`` lists) holds none of this one's."""
    from optuna.trial import TrialState

    held = {
        _key(t.user_attrs, base)
        for t in study.get_trials(deepcopy=False)
        if t.state != TrialState.FAIL and not t.user_attrs.get("skipped")
    }
    for i, point in enumerate(points):
        if (tuple(base), tuple(point.overrides)) not in held:
            attrs = {"label": point.label, "overrides": list(point.overrides), "base": list(base)}
            study.enqueue_trial({"point": i}, user_attrs=attrs)


def _resumable(run_dir: Path, cfg) -> bool:
    """Whether ``run_dir`` holds a run of ``cfg`` (resolved) with a complete checkpoint to go on from."""
    from gradtune.errors import GradtuneError
    from gradtune.train.checkpoint import complete_steps
    from gradtune.train.config import load_config

    if not (run_dir / "config.json").is_file() or not complete_steps(run_dir):
        return False
    try:
        return load_config(run_dir / "config.json") == cfg
    except GradtuneError:  # a config this version of gradtune cannot read: start anew
        return False


def finished_trials(study) -> list[dict]:
    """The study's finished trials as records, in the order they finished."""
    from optuna.trial import TrialState

    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if t.user_attrs.get("skipped"):
            continue
        rows.append(
            {
                "number": t.number,
                "label": t.user_attrs.get("label", f"trial {t.number}"),
                "overrides": t.user_attrs.get("overrides", []),
                "state": "pruned" if t.state == TrialState.PRUNED else "complete",
                "dev_loss": t.value if t.state == TrialState.COMPLETE else t.user_attrs.get("dev_loss"),
                **{k: v for k, v in t.user_attrs.items() if k not in ("label", "overrides", "dev_loss")},
                "finished_at": t.datetime_complete.timestamp() if t.datetime_complete else 0.0,
            }
        )
    return sorted(rows, key=lambda r: r["finished_at"])


class Runner:
    """Runs the trials of one sweep in this process, one at a time."""

    def __init__(self, sweep: Sweep, out: Path, storage, progress: Callable[[str], None] | None = None):
        self.sweep, self.out, self.storage = sweep, out, storage
        self.say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
        self.studies = {m: _study(storage, sweep, m) for m in sweep.methods}
        self.base = (f"config={sweep.config}", *sweep.base_set)  # what every trial runs besides its point's
        self.start = time.time()
        self.done = 0

    def all_trials(self) -> dict[str, list[dict]]:
        """Each method's finished trials that belong to this version of the sweep file."""
        return {m: self._finished(m) for m in self.studies}

    def _points(self, method: str) -> set | None:
        """What ``method``'s points in this sweep file run (``_key``; None: Optuna's, sampled)."""
        if method not in FIXED:
            return None
        grid = {"grid": self._finished("grid")} if method == "seeds" and "grid" in self.studies else None
        return {(tuple(self.base), tuple(p.overrides)) for p in fixed_points(self.sweep, method, grid)}

    def _finished(self, method: str) -> list[dict]:
        rows, points = finished_trials(self.studies[method]), self._points(method)
        return rows if points is None else [r for r in rows if _key(r, self.base) in points]

    def queue_fixed(self) -> None:
        """Queue the fixed methods' points (seeds: once the grid is finished), and say how many
        finished trials of another version of the sweep file are left out of the report."""
        for method in self.sweep.methods:
            if method in FIXED and method != "seeds":
                _queue(self.studies[method], fixed_points(self.sweep, method), self.base)
                if stale := len(finished_trials(self.studies[method])) - len(self._finished(method)):
                    self.say(f"sweep {self.sweep.name}: {stale} finished {method} trial(s) ran settings this "
                             "sweep file no longer has (an earlier version): left out of the report")  # fmt: skip

    def total(self) -> int:
        n = sum(len(fixed_points(self.sweep, m)) for m in self.sweep.methods if m in FIXED and m != "seeds")
        n += 2 * len(self.sweep.seeds) if "seeds" in self.sweep.methods else 0
        return n + (self.sweep.optuna.trials if "optuna" in self.sweep.methods else 0)

    def run(self) -> None:
        for method in self.sweep.methods:
            if method == "seeds":
                self._wait_for(("grid", "guided"))
                _queue(self.studies["seeds"], fixed_points(self.sweep, "seeds", self.all_trials()), self.base)
            if method == "optuna":
                self._run_optuna()
            else:
                self._run_fixed(method)

    def _states(self, method: str) -> dict[str, int]:
        from collections import Counter

        return Counter(t.state.name for t in self.studies[method].get_trials(deepcopy=False))

    def _wait_for(self, methods: tuple[str, ...]) -> None:
        """Until no trial of ``methods`` is waiting or running (taking waiting ones meanwhile)."""
        for method in methods:
            if method in self.studies:
                self._run_fixed(method)

    def _run_fixed(self, method: str) -> None:
        from optuna.storages import fail_stale_trials

        study = self.studies[method]
        while True:
            fail_stale_trials(study)  # a dead worker's trial: failed and queued again
            states = self._states(method)
            if states["WAITING"] == 0:
                if states["RUNNING"] == 0:
                    return
                time.sleep(HEARTBEAT_SECONDS)  # another worker's, or a dead one not yet stale
                continue
            study.optimize(lambda trial: self._objective(method, trial), n_trials=1, catch=())

    def _optuna_target(self) -> float | None:
        spec = self.sweep.optuna
        if spec.stop_at == "none":
            return None
        if spec.stop_at == "guided":
            guided = (
                [t["dev_loss"] for t in finished_trials(self.studies["guided"])] if "guided" in self.studies else []
            )
            return min(guided) if guided else None
        return float(spec.stop_at)

    def _run_optuna(self) -> None:
        from optuna.storages import fail_stale_trials
        from optuna.trial import TrialState

        study, spec = self.studies["optuna"], self.sweep.optuna
        while True:
            fail_stale_trials(study)
            trials = study.get_trials(deepcopy=False)
            finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
            target = self._optuna_target()
            matched = target is not None and any(t.value is not None and t.value <= target for t in finished)
            waiting = any(t.state == TrialState.WAITING for t in trials)  # retries of dead workers' trials
            if matched or (len(finished) >= spec.trials and not waiting):
                return
            running = sum(t.state == TrialState.RUNNING for t in trials)
            if len(finished) + running >= spec.trials and not waiting:
                time.sleep(HEARTBEAT_SECONDS)
                continue
            study.optimize(lambda trial: self._objective("optuna", trial), n_trials=1, catch=())

    def _objective(self, method: str, trial) -> float:
        import optuna

        from gradtune.train.config import load_config
        from gradtune.train.loop import train

        if method == "optuna":
            values = {}
            for key, (low, high, log) in self.sweep.optuna.space.items():
                values[key] = trial.suggest_float(key, low, high, log=log)
            overrides, label = (*HELD, *self.sweep.grid_set, *_sets(values)), _label(values)
            trial.set_user_attr("label", label)
            trial.set_user_attr("overrides", list(overrides))
            run_dir = self.out / "trials" / f"optuna-{trial.number:03d}"
        else:
            if "overrides" not in trial.user_attrs:  # queued trials carry their overrides
                trial.set_user_attr("skipped", True)  # sampled, not queued: another worker took the last point
                raise optuna.TrialPruned()
            if _key(trial.user_attrs, self.base) not in self._points(method):
                trial.set_user_attr("skipped", True)  # queued by an earlier version of the sweep file
                raise optuna.TrialPruned()
            trial.suggest_int("point", 0, 10_000)
            overrides, label = tuple(trial.user_attrs["overrides"]), trial.user_attrs["label"]
            run_dir = self.out / "trials" / f"{method}-{_slug(label)}"
        cfg = load_config(self.sweep.config, [*self.sweep.base_set, *overrides])
        resume = _resumable(run_dir, cfg)  # left by a worker that died in this trial
        if run_dir.exists() and not resume:  # nothing to go on from: the trial is redone from the start
            shutil.rmtree(run_dir)
        pruning = method == "optuna" and self.sweep.optuna.pruner != "none"

        def on_eval(step: int, scores: dict, compute: dict) -> None:
            trial.set_user_attr("compute", compute)
            trial.set_user_attr("dev_loss", scores["dev_loss"])
            trial.set_user_attr("run_dir", str(run_dir))
            if pruning and step < cfg.train.steps:
                trial.report(scores["dev_loss"], step)
                if trial.should_prune():
                    raise optuna.TrialPruned()

        began = time.time()
        try:
            summary = train(cfg, run_dir, progress=False, resume=resume, on_eval=on_eval)
        except optuna.TrialPruned:
            self._said(method, label, "pruned", time.time() - began)
            raise
        if not summary["finished"]:  # stopped by Ctrl-C or SIGTERM: the trial fails, the sweep stops
            raise KeyboardInterrupt
        for key in ("dev_bleu", "dev_chrf", "dev_accuracy", "train_seconds", "steps", "tokens_per_second"):
            trial.set_user_attr(key, summary.get(key))
        trial.set_user_attr("compute", summary["compute"])
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("seconds", time.time() - began)
        trial.set_user_attr("worker", os.getpid())
        for key, value in summary.items():
            if key.endswith("_trajectory"):
                trial.set_user_attr(key, value)
        self._said(method, label, f"dev loss {summary['dev_loss']:.4f}", time.time() - began)
        return float(summary["dev_loss"])

    def _said(self, method: str, label: str, result: str, seconds: float) -> None:
        self.done += 1
        finished = sum(len(t) for t in self.all_trials().values()) + 1  # this one is still running
        per_trial = (time.time() - self.start) / max(self.done, 1)
        left = max(self.total() - finished, 0) * per_trial
        self.say(
            f"sweep {self.sweep.name}: [{finished}/{self.total()}] {method} {label}: {result} "
            f"({seconds:.0f} s); at most ~{left / 60:.0f} min left"
        )


def run_sweep(
    sweep: Sweep,
    out: Path,
    storage_url: str | None = None,
    workers: int = 1,
    worker_argv: list[str] | None = None,
    report: bool = True,
    run_trials: bool = True,
) -> dict | None:
    """Run (or continue) ``sweep`` into ``out`` with ``workers`` local processes sharing its
    storage; then write and return its report (``report=False``: a worker only;
    ``run_trials=False``: only the report of the trials finished so far)."""
    out.mkdir(parents=True, exist_ok=True)
    url = storage_url or f"sqlite:///{(out / 'sweep.db').absolute()}"
    storage = open_storage(url)
    runner = Runner(sweep, out, storage)
    if report and run_trials:  # the first process queues; workers it starts (or that join) only take trials
        runner.queue_fixed()
    helpers = (
        [subprocess.Popen([*worker_argv, "--worker", "--storage", url]) for _ in range(max(workers - 1, 0))]
        if worker_argv and run_trials
        else []
    )
    try:
        if run_trials:
            runner.run()
    finally:
        for helper in helpers:
            helper.wait()
    if not report:
        return None
    result = build_report(sweep, runner.all_trials(), out)
    write_json(out / "sweep.json", result)
    plot_report(result, out)
    return result


# ---------------------------------------------------------------------------------------------
# The report


def best_of(trials: list[dict]) -> dict | None:
    scored = [t for t in trials if t.get("dev_loss") is not None and t["state"] == "complete"]
    return min(scored, key=lambda t: t["dev_loss"]) if scored else None


def test_scores(run_dir: str, sentences: int, beam: int) -> dict:
    """BLEU and chrF of a run's last checkpoint on its test split (the first ``sentences``; 0 = all)."""
    return split_scores(run_dir, "test", sentences, beam)


def split_scores(run_dir: str, split: str, sentences: int, beam: int) -> dict:
    """``{split}_bleu``, ``{split}_chrf`` and ``{split}_sentences`` of a run's last checkpoint on
    one of its splits (the first ``sentences``; 0 = all), by beam search of ``beam``."""
    from gradtune.train.evaluate import scores_and_signatures, translate
    from gradtune.train.inputs import load_splits
    from gradtune.train.setup import load_run

    cfg, tokenizer, graphdef, state = load_run(Path(run_dir))
    examples = load_splits(cfg.data).splits[split]
    examples = examples[:sentences] if sentences else examples
    hyps = translate(tokenizer, graphdef, state.params, [e.source for e in examples], cfg.data.row_len, beam_size=beam)
    scores = scores_and_signatures(hyps, [e.target for e in examples])
    return {f"{split}_bleu": scores["bleu"][0], f"{split}_chrf": scores["chrf"][0], f"{split}_sentences": len(examples)}


def build_report(sweep: Sweep, trials: dict[str, list[dict]], out: Path) -> dict:
    """``sweep.json``: every trial, each method's best with its test scores, the compute totals."""
    cache_path = out / "test_scores.json"  # decoding the test split takes a while: once per trial
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    methods = {}
    for method, rows in trials.items():
        best = best_of(rows)
        if best is not None and best.get("run_dir"):
            key = f"{best['run_dir']}|{sweep.test_sentences}|{sweep.beam}"
            if key not in cache:
                cache[key] = test_scores(best["run_dir"], sweep.test_sentences, sweep.beam)
                write_json(cache_path, cache)
            best.update(cache[key])
        methods[method] = {
            "trials": len(rows),
            "compute_flops": sum(r.get("compute", {}).get("train_flops", 0.0) for r in rows),
            "train_seconds": sum(
                r.get("train_seconds") or r.get("compute", {}).get("train_seconds", 0.0) for r in rows
            ),
            "best": best,
        }
    return {
        "sweep": sweep.name,
        "base": {"config": sweep.config, "set": list(sweep.base_set)},
        "methods": methods,
        "trials": trials,
        "lr_free_settings": {name: LR_FREE_NOTES[name] for name in sweep.lr_free},
        "beam": sweep.beam,
    }


SCORE_COLUMNS = (("dev_loss", ".4f"), ("dev_bleu", ".2f"), ("test_bleu", ".2f"), ("test_chrf", ".2f"))


def format_report(report: dict) -> str:
    """The printed table: method, trials, compute, best dev loss and the best trial's BLEU and chrF."""
    lines = [
        f"sweep {report['sweep']}",
        f"{'method':10s} {'trials':>6s} {'TFLOP':>8s} {'best dev loss':>13s} {'dev BLEU':>8s} "
        f"{'test BLEU':>9s} {'test chrF':>9s}  best trial",
    ]
    for method, m in report["methods"].items():
        b = m["best"] or {}

        cells = [format(b[k], f) if b.get(k) is not None else "-" for k, f in SCORE_COLUMNS]
        lines.append(
            f"{method:10s} {m['trials']:6d} {m['compute_flops'] / 1e12:8.3g} {cells[0]:>13s} {cells[1]:>8s} "
            f"{cells[2]:>9s} {cells[3]:>9s}  {b.get('label', '-')}"
        )
    lines.append(f"(test BLEU and chrF: beam {report['beam']}; dev BLEU: greedy on the run's dev subset)")
    for name, note in report["lr_free_settings"].items():
        lines.append(f"lr-free {name}: {note}")
    return "\n".join(lines)


def _trajectory(run_dir: str, key: str) -> tuple[list[int], list[float]]:
    from gradtune.train.logbook import read_metrics

    points = [(r["step"], r[key]) for r in read_metrics(Path(run_dir)) if r.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def plot_report(report: dict, out: Path) -> list[Path]:
    """``efficiency.png`` (best dev loss so far against cumulative compute, per method),
    ``trajectories.png`` (each guided run's learned values over the grid's constants) and
    ``final_vs_start.png`` (final dev loss against the starting value, guided and held)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gradtune.files import replacing

    trials = report["trials"]
    paths = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        with replacing(out / name) as tmp:
            fig.savefig(tmp, dpi=90)
        plt.close(fig)
        paths.append(out / name)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, rows in trials.items():
        xs, ys, spent, best = [], [], 0.0, math.inf
        for r in rows:
            spent += r.get("compute", {}).get("train_flops", 0.0)
            if r.get("dev_loss") is not None and r["state"] == "complete":
                best = min(best, r["dev_loss"])
            if math.isfinite(best):
                xs.append(spent / 1e12)
                ys.append(best)
        if xs:
            ax.step(xs, ys, where="post", marker="o", label=method)
    ax.set_xlabel("cumulative compute (TFLOP, XLA's count of the training steps)")
    ax.set_ylabel("best dev loss so far")
    ax.set_title(f"{report['sweep']}: efficiency")
    ax.legend()
    save(fig, "efficiency.png")

    key = _swept_key(report)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    grid = [r for r in trials.get("grid", []) if r.get("dev_loss") is not None]
    for r in grid:
        value = _value_of(r, key)
        if value is not None:
            ax.axhline(value, color="0.7", lw=0.8)
            ax.annotate(f"held {value:.3g}: {r['dev_loss']:.3f}", (0, value), fontsize=7, color="0.4", va="bottom")
    for r in trials.get("guided", []):
        if r.get("run_dir") and Path(r["run_dir"]).exists():
            steps, ys = _trajectory(r["run_dir"], value_key(_value_name(key)))
            if ys:
                ax.plot(steps, ys, label=f"guided from {r['label']}: {r['dev_loss']:.3f}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.set_title(f"{report['sweep']}: learned values over the grid's constants (dev loss at the end)")
    ax.legend(fontsize="small")
    save(fig, "trajectories.png")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, marker in (("grid", "o-"), ("guided", "s")):
        rows = sorted(
            ((_value_of(r, key), r["dev_loss"]) for r in trials.get(method, []) if r.get("dev_loss") is not None),
            key=lambda p: p[0] or 0,
        )
        rows = [(x, y) for x, y in rows if x is not None]
        if rows:
            ax.plot(*zip(*rows, strict=True), marker, label="held (grid)" if method == "grid" else "guided, from")
    ax.set_xscale("log")
    ax.set_xlabel(f"{key} (held value, or guided run's starting value)")
    ax.set_ylabel("final dev loss")
    ax.set_title(f"{report['sweep']}: final dev loss against the starting value")
    ax.legend()
    save(fig, "final_vs_start.png")
    return paths


def _value_name(key: str) -> str:
    """The guided value a swept config key sets: ``guidance.lr_multiplier`` → ``learning_rate``."""
    name = key.rsplit(".", 1)[-1]
    return "learning_rate" if name == "lr_multiplier" else name


def _swept_key(report: dict) -> str:
    """The key the grid (else the guided trials) varies: a key every trial sets to one value
    (``guidance.horizon=forward`` for all) is not it; with one trial, its point's key (its
    last override: the method's own settings come first)."""
    ignored = ("guidance.enabled", "guidance.guided", "train.seed")
    keys = []
    for rows in (report["trials"].get("grid", []), report["trials"].get("guided", [])):
        values: dict[str, set[str]] = {}
        for r in rows:
            for item in r.get("overrides", []):
                key, _, value = item.partition("=")
                if key not in ignored and not key.startswith("optim.optim"):
                    values.setdefault(key, set()).add(value)
        if varying := [key for key, seen in values.items() if len(seen) > 1]:
            return varying[0]
        keys += list(values)
    return keys[-1] if keys else "guidance.lr_multiplier"


def _value_of(trial: dict, key: str) -> float | None:
    for item in reversed(trial.get("overrides", [])):
        k, _, v = item.partition("=")
        if k == key:
            try:
                return float(v)
            except ValueError:
                return None
    return None
