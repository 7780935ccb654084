"""The device mesh of a run and how its arrays are laid out on it (``train.mesh``).

``train.mesh`` names the mesh's axes and sizes, ``data:-1`` (the default: every device
data-parallel) or ``data:2,fsdp:2``; one size may be ``-1``, the devices left over.

* Train, guide and dev batches are split by rows over every batch axis (``data`` and
  ``fsdp``), so each device computes the loss of its rows.
* Parameters and optimizer state are replicated, or with an ``fsdp`` axis sharded over it:
  each array along its largest axis that the axis size divides (smaller ones replicated).
* Guided raw values and the meta-optimizer state are replicated.

The steps are ``jax.jit`` with these ``NamedSharding``s; XLA's sharding propagation puts in
the collectives, so the loss, the gradient and the hypergradient are those of the global
batch with no code of gradtune's for it. Every process packs the same global batch (a pure
function of seed and position) and puts only its own devices' rows on them
(``jax.make_array_from_callback``), so a run on N processes sees the batches of a run on one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gradtune.errors import ConfigError

AXES = ("data", "fsdp")  # the axes gradtune knows; both split the batch, fsdp also the parameters


def parse_mesh(text: str) -> list[tuple[str, int]]:
    """``"data:2,fsdp:2"`` → ``[("data", 2), ("fsdp", 2)]``; a clear error for anything else."""
    axes: list[tuple[str, int]] = []
    for item in (s.strip() for s in text.split(",")):
        name, sep, size = item.partition(":")
        try:
            n = int(size)
        except ValueError:
            n = 0
        if not sep or name not in AXES or not (n >= 1 or n == -1):
            raise ConfigError(
                f"train.mesh: cannot read {item!r} in {text!r}; write AXIS:SIZE[,AXIS:SIZE] with axes "
                f"{' and '.join(AXES)} and sizes ≥ 1 or -1 (the devices left over), e.g. data:-1 or data:2,fsdp:2"
            )
        if name in dict(axes):
            raise ConfigError(f"train.mesh: axis {name} appears twice in {text!r}")
        axes.append((name, n))
    if sum(n == -1 for _, n in axes) > 1:
        raise ConfigError(f"train.mesh: at most one size may be -1 in {text!r}")
    return axes


def make_mesh(text: str, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """The mesh ``text`` describes over ``devices`` (default: every device of every process)."""
    devices = list(jax.devices() if devices is None else devices)
    axes = parse_mesh(text)
    known = math.prod(n for _, n in axes if n != -1)
    sizes = [n if n != -1 else len(devices) // known for _, n in axes]
    if math.prod(sizes) != len(devices) or 0 in sizes:
        raise ConfigError(
            f"train.mesh {text!r} asks for {' × '.join(map(str, sizes))} devices, but the run has "
            f"{len(devices)} ({jax.process_count()} process(es)); make the sizes multiply to {len(devices)} or use -1"
        )
    return Mesh(np.asarray(devices).reshape(sizes), tuple(name for name, _ in axes))


def batch_axes(mesh: Mesh) -> tuple[str, ...]:
    return tuple(a for a in mesh.axis_names if a in AXES)


def rows_per_batch(mesh: Mesh) -> int:
    """How many parts a batch's rows are split into (a batch's rows must be a multiple)."""
    return math.prod(mesh.shape[a] for a in batch_axes(mesh))


def check_batches(mesh: Mesh, rows: dict[str, int]) -> None:
    """A clear error if any batch's rows (``{what sets them: rows}``) do not split over the mesh."""
    parts = rows_per_batch(mesh)
    for key, n in rows.items():
        if n % parts:
            raise ConfigError(
                f"{key} gives batches of {n} rows, which do not split over the mesh's {parts} batch parts "
                f"(train.mesh {', '.join(f'{a}:{k}' for a, k in mesh.shape.items())}); make it a multiple of {parts}"
            )


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Rows (the leading axis) split over every batch axis."""
    return NamedSharding(mesh, PartitionSpec(batch_axes(mesh)))


def fsdp_spec(shape: tuple[int, ...], size: int) -> PartitionSpec:
    """Shard along the largest axis that ``size`` divides; replicate if none does."""
    if size > 1:
        for axis in sorted(range(len(shape)), key=lambda i: -shape[i]):
            if shape[axis] % size == 0:
                return PartitionSpec(*("fsdp" if i == axis else None for i in range(len(shape))))
    return PartitionSpec()


def model_shardings(mesh: Mesh, tree: Any) -> Any:
    """Shardings of parameters and optimizer state: by ``fsdp_spec`` with an fsdp axis, else replicated."""
    size = mesh.shape.get("fsdp", 1)
    return jax.tree.map(lambda x: NamedSharding(mesh, fsdp_spec(np.shape(x), size)), tree)


def tangent_shardings(mesh: Mesh, tree: Any) -> Any:
    """Shardings of forward-mode tangents (one row per guided value, then a parameter's or
    optimizer leaf's shape): the rows whole, the rest as ``model_shardings`` lays out that leaf."""
    size = mesh.shape.get("fsdp", 1)
    return jax.tree.map(lambda x: NamedSharding(mesh, PartitionSpec(None, *fsdp_spec(np.shape(x)[1:], size))), tree)


def state_shardings(mesh: Mesh, state: Any) -> Any:
    """Shardings of a ``TrainState``: parameters and optimizer state by ``model_shardings``,
    forward-mode tangents alike (``tangent_shardings``), the step, raw values and meta state
    replicated."""
    rep = replicated(mesh)
    return state._replace(
        step=rep,
        params=model_shardings(mesh, state.params),
        opt_state=model_shardings(mesh, state.opt_state),
        raw=jax.tree.map(lambda _: rep, state.raw),
        meta_state=jax.tree.map(lambda _: rep, state.meta_state),
        tangents=_forward_shardings(mesh, state.tangents),
    )


def _forward_shardings(mesh: Mesh, tangents: Any) -> Any:
    """Of ``TrainState.tangents``: the tangents by ``tangent_shardings``; with a guide average, the
    average as the parameters; its weight, the tangents' ages and the values' sums (small) replicated. ``()``
    without forward mode."""
    if not hasattr(tangents, "average"):
        return tangent_shardings(mesh, tangents)
    return tangents._replace(
        params=tangent_shardings(mesh, tangents.params),
        opt_state=tangent_shardings(mesh, tangents.opt_state),
        average=model_shardings(mesh, tangents.average),
        average_tangent=tangent_shardings(mesh, tangents.average_tangent),
        average_weight=jax.tree.map(lambda _: replicated(mesh), tangents.average_weight),
        age=jax.tree.map(lambda _: replicated(mesh), tangents.age),
        value_sum=jax.tree.map(lambda _: replicated(mesh), tangents.value_sum),
        value_count=jax.tree.map(lambda _: replicated(mesh), tangents.value_count),
    )


def put(tree: Any, shardings: Any) -> Any:
    """Host arrays (the same on every process) as global arrays laid out by ``shardings``
    (one sharding for all, or a tree of them); each process transfers only its devices' part."""
    if isinstance(shardings, NamedSharding):
        shardings = jax.tree.map(lambda _: shardings, tree)

    def one(x, sharding):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(one, tree, shardings)


def place(tree: Any, shardings: Any) -> Any:
    """Device arrays (from a computation replicated on every process) laid out by ``shardings``."""
    if jax.process_count() == 1:
        return jax.device_put(tree, shardings)
    return put(jax.device_get(tree), shardings)


def describe(mesh: Mesh, params: Any) -> dict:
    """The mesh and how much parameter memory a device holds (``summary.json``'s ``mesh``)."""
    per_device: dict[int, int] = {}
    for x in jax.tree.leaves(params):
        for shard in x.addressable_shards:
            per_device[shard.device.id] = per_device.get(shard.device.id, 0) + shard.data.nbytes
    return {
        "axes": dict(mesh.shape),
        "devices": mesh.size,
        "processes": jax.process_count(),
        "parameter_bytes": sum(x.nbytes for x in jax.tree.leaves(params)),
        "parameter_bytes_per_device": max(per_device.values(), default=0),
    }
