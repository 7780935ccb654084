"""Checkpoints of the whole training state with orbax (no pickle)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp


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
