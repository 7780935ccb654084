"""The jitted training steps of a run: one place builds them, for the loop, the benches and the tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
from jax.sharding import Mesh

from gradtune.train.guidance import Setup
from gradtune.train.mesh import batch_sharding, replicated, state_shardings


class Steps(NamedTuple):
    plain: Callable  # (state, batch) -> (state, metrics, aux): an update with the guided values held
    guided: Callable  # (state, batch, guide_batch) -> (state, metrics, aux): the update and a meta step
    held: Callable  # as plain, after guidance has ended: no forward-mode tangents carried


def make_steps(setup: Setup, seed: int, mesh: Mesh | None = None, state: Any = None) -> Steps:
    """The plain, guided and held steps of ``setup``'s trainer, jitted once each with the state
    donated; the dropout key is folded from the step inside the jit, so a step is a pure
    function of (state, batches) and a resumed run draws the same masks.

    With a ``mesh`` (and a ``state`` to read the shapes from), the steps take and return the
    state laid out by ``mesh.state_shardings`` and batches split by rows; metrics come back
    replicated.
    """
    trainer, root_key = setup.trainer, jax.random.key(seed)

    def plain(state, batch):
        return trainer.plain_step(state, batch, jax.random.fold_in(root_key, state.step))

    def guided(state, batch, guide):
        new_state, metrics, aux = trainer.guided_step(state, batch, guide, jax.random.fold_in(root_key, state.step))
        return new_state, {**metrics, "meta_learning_rate": setup.meta_schedule(state.step)}, aux

    def held(state, batch):
        return trainer.held_step(state, batch, jax.random.fold_in(root_key, state.step))

    if mesh is None:
        return Steps(*(jax.jit(f, donate_argnums=0) for f in (plain, guided, held)))
    s, b, r = state_shardings(mesh, state), batch_sharding(mesh), replicated(mesh)
    return Steps(
        jax.jit(plain, in_shardings=(s, b), out_shardings=(s, r, r), donate_argnums=0),
        jax.jit(guided, in_shardings=(s, b, b), out_shardings=(s, r, r), donate_argnums=0),
        jax.jit(held, in_shardings=(s, b), out_shardings=(s, r, r), donate_argnums=0),
    )
