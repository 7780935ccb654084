"""Checkpoints of a run: the whole training state with orbax, host-side state as JSON.

Layout of ``run_dir/checkpoints/``::

    step_00000200/        orbax: params, optimizer state, raw guided values, meta state, step
    step_00000200.json    host side: data position, guide-batch position, scores; written last
    best.json             which step is best, by which metric

A checkpoint is complete when its JSON exists: orbax writes the arrays to a temporary
directory and renames it when done, then the JSON is written to a temporary file and
renamed. A crash at any moment leaves either a complete checkpoint or none of it, never
a torn one that looks whole. No pickle anywhere.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from gradtune.errors import GradtuneError
from gradtune.files import write_json

PATTERN = re.compile(r"step_(\d{8})\.json")


class CheckpointError(GradtuneError):
    """A checkpoint could not be written or read (names the path and the fix)."""


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def complete_steps(run_dir: Path) -> list[int]:
    """Steps of the complete checkpoints, oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    steps = [int(m.group(1)) for p in folder.iterdir() if (m := PATTERN.fullmatch(p.name))]
    return sorted(s for s in steps if (folder / f"step_{s:08d}").is_dir())


def save_checkpoint(
    run_dir: Path, step: int, state: Any, host: dict, keep: int, best_step: int | None, primary: bool = True
) -> None:
    """Save ``state`` (a pytree of arrays) and ``host`` (JSON) as step ``step``.

    Keeps the newest ``keep`` checkpoints and ``best_step``; on any OS error (a full disk)
    removes what it half-wrote and raises a ``CheckpointError``, leaving older ones intact.
    With several processes every one calls this (orbax writes each one's shards and
    finishes the directory once all are done); only the ``primary`` one then writes the
    JSON that makes the checkpoint complete, and removes old ones.
    """
    folder = checkpoint_dir(run_dir)
    arrays = folder / f"step_{step:08d}"
    meta = folder / f"step_{step:08d}.json"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with ocp.StandardCheckpointer() as checkpointer:
            checkpointer.save(arrays.absolute(), state, force=True)
        if not primary:
            return
        write_json(meta, {"step": step, **host})
    except OSError as e:
        shutil.rmtree(arrays, ignore_errors=True)
        for leftover in folder.glob(f"step_{step:08d}*"):
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
        previous = complete_steps(run_dir)
        kept = f"checkpoint of step {previous[-1]} is intact" if previous else "no earlier checkpoint exists"
        raise CheckpointError(
            f"could not write the checkpoint of step {step} to {folder}: {e.strerror or e}; the {kept}. "
            f"Free space, then resume with: gradtune train --resume {run_dir}"
        ) from e
    for old in complete_steps(run_dir)[:-keep]:
        if old != best_step:
            remove_checkpoint(run_dir, old)


def remove_checkpoint(run_dir: Path, step: int) -> None:
    folder = checkpoint_dir(run_dir)
    (folder / f"step_{step:08d}.json").unlink(missing_ok=True)  # incomplete first, then the arrays
    shutil.rmtree(folder / f"step_{step:08d}", ignore_errors=True)


def read_host_state(run_dir: Path, step: int) -> dict:
    return json.loads((checkpoint_dir(run_dir) / f"step_{step:08d}.json").read_text())


def restore_arrays(run_dir: Path, step: int, like: Any) -> Any:
    """The arrays of checkpoint ``step`` in the structure, dtypes and shapes of ``like``."""
    path = (checkpoint_dir(run_dir) / f"step_{step:08d}").absolute()
    with ocp.StandardCheckpointer() as checkpointer:
        try:
            return checkpointer.restore(path, jax.tree.map(ocp.utils.to_shape_dtype_struct, like))
        except ValueError as e:
            if "tree structures do not match" not in str(e):
                raise
            # A state field that holds nothing (TrainState.tangents without forward mode) is
            # absent from checkpoints written before it existed: restore without it.
            empty = [k for k, v in like.items() if not jax.tree.leaves(v)] if isinstance(like, dict) else []
            for key in empty:
                rest = {k: v for k, v in like.items() if k != key}
                try:
                    with ocp.StandardCheckpointer() as again:  # a fresh one: a failed restore may leave state
                        return {
                            **again.restore(path, jax.tree.map(ocp.utils.to_shape_dtype_struct, rest)),
                            key: like[key],
                        }
                except ValueError:
                    continue
            raise CheckpointError(
                f"the checkpoint {path} holds a training state of another layout than this run's config "
                "builds (written by an older gradtune, or the config was changed); train it again "
                f"with this version. Orbax says: {str(e).splitlines()[0]}"
            ) from e


def find_checkpoint(run_dir: Path, which: str = "last") -> int:
    """The step of checkpoint ``which``: ``last``, ``best`` or a step number."""
    steps = complete_steps(run_dir)
    if not steps:
        raise CheckpointError(f"{run_dir} holds no complete checkpoint; is it a gradtune run directory?")
    if which == "last":
        return steps[-1]
    if which == "best":
        best = checkpoint_dir(run_dir) / "best.json"
        if best.exists() and (step := json.loads(best.read_text())["step"]) in steps:
            return step
        print(f"gradtune: {run_dir} has no best checkpoint; using the last one (step {steps[-1]})", file=sys.stderr)
        return steps[-1]
    if which.isdigit() and int(which) in steps:
        return int(which)
    raise CheckpointError(
        f"{run_dir} has no checkpoint {which!r}; choose last, best or one of the steps {', '.join(map(str, steps))}"
    )


def update_best(run_dir: Path, step: int, scores: dict, metric: str) -> int | None:
    """Record ``step`` as the best if its ``metric`` beats the best so far; the best step."""
    path = checkpoint_dir(run_dir) / "best.json"
    best = json.loads(path.read_text()) if path.exists() else None
    if metric in scores:
        value = scores[metric]
        better = best is None or (
            value > best["value"] if metric.endswith(("bleu", "chrf", "accuracy")) else value < best["value"]
        )
        if better:
            path.parent.mkdir(parents=True, exist_ok=True)
            best = {"step": step, "metric": metric, "value": value}
            write_json(path, best)
    return best["step"] if best else None
