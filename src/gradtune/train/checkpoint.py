"""Checkpoints of the whole training state with orbax (no pickle)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from gradtune.errors import RunError


def save_state(path: Path, state: Any) -> None:
    """Write ``state`` (any pytree of arrays) to ``path``; orbax writes to a temporary
    directory and renames it when complete, so a crash never leaves a torn checkpoint."""
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path.absolute(), state, force=True)


def restore_state(path: Path, like: Any) -> Any:
    """Read a checkpoint into the structure (and dtypes, shapes) of ``like``."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    with ocp.StandardCheckpointer() as checkpointer:
        return checkpointer.restore(path.absolute(), abstract)


def find_checkpoint(run_dir: Path, which: str = "last") -> Path:
    """The checkpoint of ``run_dir`` that ``which`` names: ``last``, ``best`` or a step number.

    A run keeps only its final checkpoint for now (``run_dir/checkpoint``), so ``best`` is the
    final one, said on stderr, and a step number must be the final step.
    """
    final = run_dir / "checkpoint"
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run directory; pass one that `gradtune train` wrote (runs/...)")
    if not final.is_dir():
        raise RunError(f"{run_dir} holds no checkpoint (is its training finished?); pass a finished run")
    if which == "last":
        return final
    if which == "best":
        print(f"gradtune: {run_dir} keeps no best checkpoint yet; using the final one", file=sys.stderr)
        return final
    summary = run_dir / "summary.json"
    final_step = json.loads(summary.read_text())["steps"] if summary.is_file() else None
    if which.isdigit() and int(which) == final_step:
        return final
    kept = f"step {final_step} (last)" if final_step is not None else "the last step"
    raise RunError(f"no checkpoint {which!r} in {run_dir}: it keeps {kept}; say --checkpoint last, best or a kept step")
