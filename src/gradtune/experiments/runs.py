"""What the experiments share: their TOML files with a quick overlay, and runs kept once finished."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from gradtune.errors import GradtuneError
from gradtune.experiments.sweep import merge
from gradtune.train.config import CONFIGS, config_file, load_config
from gradtune.train.loop import train


def read_experiment_file(name: str | Path, quick: bool = False) -> tuple[Path, dict]:
    """An experiment's TOML (a path, or a name in ``configs/experiments/``), ``[overlays.quick]``
    laid over it when ``quick``."""
    path = config_file(name)
    if not path.exists() and (CONFIGS / "experiments" / f"{name}.toml").is_file():
        path = CONFIGS / "experiments" / f"{name}.toml"
    try:
        tree = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise GradtuneError(f"{path}: cannot read the experiment ({e})") from e
    return path, merge(tree, tree.get("overlays", {}).get("quick", {})) if quick else tree


def run_once(
    label: str, run_dir: Path, config: str, sets: list[str], progress: bool, prepared=None, overlay: str | None = None
) -> dict:
    """A run into ``run_dir``; the summary of the finished run already there, or the run cut
    short there resumed (its checkpoints make that exact). ``prepared``: the run's splits,
    made by the caller (``data.Prepared``), instead of from the config; ``overlay``: one of the
    config file's ``[overlays.NAME]`` tables, laid over it."""
    summary = run_dir / "summary.json"
    if summary.exists() and json.loads(summary.read_text()).get("finished"):
        print(f"  {label}: done already ({run_dir})")
        return json.loads(summary.read_text())
    if (run_dir / "config.json").exists():
        cfg = load_config(run_dir / "config.json", sets)
        result = train(cfg, run_dir, progress=progress, resume=True, prepared=prepared)
    else:
        result = train(load_config(config_file(config), sets, overlay), run_dir, progress=progress, prepared=prepared)
    if not result.get("finished"):  # stopped by a signal: the experiment stops too, to go on later
        raise GradtuneError(f"{label} stopped at step {result['steps']}; start the experiment again to go on")
    print(f"  {label}: dev loss {result['dev_loss']:.4f} ({result['train_seconds']:.0f} s)")
    return result
