"""Several processes, one run: ``jax.distributed`` started from the command line or the cluster.

``gradtune train --coordinator HOST:PORT --num-processes N --process-id I`` on each machine
(process 0's host is the coordinator); with none of these, under a cluster manager that
``jax.distributed.initialize`` recognises by itself (SLURM's ``srun``, Open MPI's
``mpirun``), what it says; else one process. Every process then sees every device of the
run (``jax.devices()``), the mesh spans them all, and only process 0 writes the run's files
(metrics, TensorBoard, plots, summary, learned values); checkpoints are written by all
processes together (orbax). On several machines the run directory must be on a file system
they share.
"""

from __future__ import annotations

import os
import socket
import sys
import time

import jax
import numpy as np

from gradtune.errors import GradtuneError

# Environment variables that say a cluster manager started this process as one of several.
CLUSTERS = {"SLURM_NTASKS": "SLURM (srun)", "OMPI_COMM_WORLD_SIZE": "Open MPI (mpirun)"}


class DistributedError(GradtuneError):
    """The processes of a run could not be joined."""


def detected_cluster() -> str | None:
    """The cluster manager that started this process as one of several, if any."""
    for variable, name in CLUSTERS.items():
        if int(os.environ.get(variable, "1") or "1") > 1 and (
            variable != "SLURM_NTASKS" or "SLURM_STEP_ID" in os.environ
        ):
            return name
    return None


def initialize(coordinator: str | None, num_processes: int | None, process_id: int | None, timeout: int = 120) -> None:
    """Join the run's processes (before any other JAX call); nothing with a single process.

    Args:
      coordinator: ``HOST:PORT`` of process 0; given, ``num_processes`` and ``process_id`` are too.
      num_processes, process_id: this run's process count and this process's index.
      timeout: seconds to wait for every process to join before the run fails.
    """
    given = [coordinator is not None, num_processes is not None, process_id is not None]
    if any(given) and not all(given):
        raise DistributedError("--coordinator, --num-processes and --process-id go together: give all three or none")
    if not any(given):
        cluster = detected_cluster()
        if cluster is None:
            return
        print(f"gradtune: started by {cluster}: joining its processes", file=sys.stderr)
        _join(timeout=timeout)
        return
    assert num_processes is not None and process_id is not None and coordinator is not None
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise DistributedError(
            f"--process-id {process_id} is out of range for --num-processes {num_processes}: "
            f"give 0 to {num_processes - 1}"
        )
    host, sep, port = coordinator.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise DistributedError(f"--coordinator {coordinator!r} is not HOST:PORT (e.g. 10.0.0.1:7777)")
    if num_processes > 1:
        # JAX's runtime ends the process (no exception) when it cannot reach the coordinator:
        # check first that process 0 can listen and that the others can reach it
        (_check_can_listen if process_id == 0 else _wait_reachable)(host, int(port), timeout)
        _join(coordinator, num_processes, process_id, timeout)


def _check_can_listen(host: str, port: int, timeout: int) -> None:
    try:
        with socket.create_server(("", port), reuse_port=False):
            pass
    except OSError as e:
        raise DistributedError(
            f"process 0 cannot serve as the coordinator on port {port}: {e.strerror or e}; choose a free port"
        ) from e


def _wait_reachable(host: str, port: int, timeout: int) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=2):
                return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise DistributedError(
                    f"the coordinator {host}:{port} could not be reached within {timeout} s ({e.strerror or e}); "
                    "start process 0 there first (it listens on that port), and check the address"
                ) from e
            time.sleep(0.5)


def _join(coordinator=None, num_processes=None, process_id=None, timeout: int = 120) -> None:
    # CPU devices of several processes reduce over gloo (the setting touches only the CPU
    # backend; asking which backend is in use would start it, which must wait until here)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator, num_processes, process_id, initialization_timeout=timeout, heartbeat_timeout_seconds=timeout
        )
    except Exception as e:  # the runtime's own error types (XlaRuntimeError, RuntimeError…)
        where = f"the coordinator {coordinator}" if coordinator else "the cluster's coordinator"
        raise DistributedError(
            f"could not join the run's processes through {where} within {timeout} s "
            f"({str(e).splitlines()[0] if str(e) else type(e).__name__}); start process 0 first, "
            "check the address and port, and that every process got the same --num-processes"
        ) from e


def is_primary() -> bool:
    """Whether this process writes the run's files (process 0)."""
    return jax.process_index() == 0


def sync(name: str) -> None:
    """Wait until every process of the run has come here (nothing with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def any_process(flag: bool) -> bool:
    """Whether ``flag`` is true on any process of the run (every process must call this)."""
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.int32(flag))))
