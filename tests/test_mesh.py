"""Many devices and processes: a mesh of fake CPU devices, two processes over gloo, bfloat16.

Each multi-device run is a subprocess with ``--xla_force_host_platform_device_count``. The
guided config starts guiding after 2 steps (``guidance.warmup_steps=2``): at step 0 the b1
hypergradient of Adam is exactly 0 in exact arithmetic (the bias correction cancels b1), so
its computed value is float noise whose sign the meta-Adam turns into a full step, and two
runs that differ only in summation order would part there.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_CONFIG
from flax import nnx

from gradtune.cli.main import main
from gradtune.errors import ConfigError
from gradtune.experiments.check_hypergrads import random_batch
from gradtune.seq2seq.model import ModelConfig, Transformer
from gradtune.seq2seq.objectives import make_losses
from gradtune.train.logbook import read_metrics
from gradtune.train.mesh import fsdp_spec, make_mesh, parse_mesh
from gradtune.train.setup import load_run

STEPS = 20
GUIDED = [
    "--config", str(TINY_CONFIG), "--quiet", "--steps", str(STEPS), "--set", "corpus=lt-en,de=de-en",
    "--set", "guided=learning_rate,b1,label_smoothing,corpus_weights", "--set", "guidance.warmup_steps=2",
    "--set", "eval_every=10", "--set", "log_every=5", "--set", "bleu_examples=2",
]  # fmt: skip
TOLERANCE = 1e-4


def gradtune(devices: int, *args: str, background: bool = False):
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    command = [sys.executable, "-m", "gradtune", *args]
    if background:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)


def train(run: Path, devices: int, *extra: str) -> Path:
    if devices == 1:  # this process's own device
        assert main(["train", *GUIDED, "--run-dir", str(run), *extra]) == 0
        return run
    result = gradtune(devices, "train", *GUIDED, "--run-dir", str(run), *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    return run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("mesh")
    return {
        "one": train(root / "one", 1),
        "data4": train(root / "data4", 4),
        "fsdp": train(root / "fsdp", 4, "--set", "train.mesh=data:2,fsdp:2"),
        "root": root,
    }


def assert_same_run(a: Path, b: Path) -> None:
    """Parameters within TOLERANCE of each one's largest magnitude; losses and guided values
    within relative TOLERANCE at every logged step."""
    state_a, state_b = load_run(a).state, load_run(b).state
    for (path, x), y in zip(
        jax.tree_util.tree_leaves_with_path(state_a.params), jax.tree.leaves(state_b.params), strict=True
    ):
        x, y = np.asarray(x), np.asarray(y)
        assert np.max(np.abs(x - y)) <= TOLERANCE * np.max(np.abs(x)), jax.tree_util.keystr(path)
    for name in state_a.raw:
        np.testing.assert_allclose(state_a.raw[name], state_b.raw[name], rtol=TOLERANCE, atol=1e-6)
    records_a, records_b = read_metrics(a), read_metrics(b)
    assert [r["step"] for r in records_a] == [r["step"] for r in records_b]
    compared = 0
    for ra, rb in zip(records_a, records_b, strict=True):
        for key, value in ra.items():
            if key.startswith(("train_loss", "guide_loss", "dev_loss", "value/")) and value is not None:
                assert rb[key] == pytest.approx(value, rel=TOLERANCE), (ra["step"], key)
                compared += 1
    assert compared > 20


@pytest.mark.slow
def test_four_devices_data_parallel_equal_one_device(runs):
    assert_same_run(runs["one"], runs["data4"])
    mesh = json.loads((runs["data4"] / "summary.json").read_text())["mesh"]
    assert mesh["axes"] == {"data": 4} and mesh["devices"] == 4
    assert mesh["parameter_bytes_per_device"] == mesh["parameter_bytes"]  # replicated


@pytest.mark.slow
def test_data_and_fsdp_axes_equal_one_device_with_parameters_sharded(runs):
    assert_same_run(runs["one"], runs["fsdp"])
    mesh = json.loads((runs["fsdp"] / "summary.json").read_text())["mesh"]
    assert mesh["axes"] == {"data": 2, "fsdp": 2}
    assert mesh["parameter_bytes_per_device"] < 0.6 * mesh["parameter_bytes"]  # most split in two


@pytest.mark.slow
def test_two_processes_of_two_devices_equal_one_process(runs):
    run, port = runs["root"] / "two_processes", free_port()
    workers = [
        gradtune(2, "train", *GUIDED, "--run-dir", str(run), "--coordinator", f"127.0.0.1:{port}",
                 "--num-processes", "2", "--process-id", str(i), background=True)
        for i in range(2)
    ]  # fmt: skip
    outputs = [w.communicate(timeout=900) for w in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err[-3000:]
    assert "dev loss" in outputs[0][0] and "dev loss" not in outputs[1][0]  # only process 0 reports
    assert json.loads((run / "summary.json").read_text())["mesh"]["processes"] == 2
    assert_same_run(runs["one"], run)
    assert_same_run(runs["data4"], run)


@pytest.mark.slow
@pytest.mark.parametrize(("written_on", "resumed_on"), [("data4", 1), ("one", 4)])
def test_a_checkpoint_resumes_on_another_number_of_devices(runs, written_on, resumed_on):
    run = runs["root"] / f"{written_on}-resumed-on-{resumed_on}"
    shutil.copytree(runs[written_on], run)
    for last in (run / "checkpoints").glob(f"step_{STEPS:08d}*"):  # back to the checkpoint of step 10
        shutil.rmtree(last) if last.is_dir() else last.unlink()
    result = gradtune(resumed_on, "train", "--resume", str(run), "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming" in result.stderr and "from step 10" in result.stderr
    assert_same_run(runs[written_on], run)


@pytest.mark.slow
def test_a_batch_that_does_not_split_over_the_mesh_is_one_line(tmp_path):
    result = gradtune(4, "train", *GUIDED, "--set", "batch_rows=6", "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "data.batch_rows gives batches of 6 rows, which do not split over the mesh's 4" in result.stderr
    assert not (tmp_path / "run").exists()


def test_bad_meshes_and_process_settings_are_one_line(tmp_path, capsys):
    for mesh, message in [("data:3", "asks for 3 devices, but the run has 1"), ("model:2", "cannot read 'model:2'"),
                          ("data:-1,fsdp:-1", "at most one size may be -1")]:  # fmt: skip
        assert main(["train", "--config", str(TINY_CONFIG), "--quiet", "--set", f"train.mesh={mesh}",
                     "--run-dir", str(tmp_path / "run")]) == 1  # fmt: skip
        assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    args = ["train", "--config", str(TINY_CONFIG), "--coordinator", "127.0.0.1:1", "--num-processes", "2"]
    assert main([*args, "--process-id", "2"]) == 1
    assert "--process-id 2 is out of range for --num-processes 2" in capsys.readouterr().err
    assert main(args) == 1
    assert "go together" in capsys.readouterr().err


def test_an_unreachable_coordinator_is_one_line_after_the_timeout(tmp_path):
    result = gradtune(1, "train", *GUIDED, "--coordinator", f"127.0.0.1:{free_port()}", "--num-processes", "2",
                      "--process-id", "1", "--join-timeout", "2", "--run-dir", str(tmp_path / "run"))  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "could not be reached within 2 s" in result.stderr


def test_mesh_parsing_and_the_fsdp_layout():
    assert parse_mesh("data:2,fsdp:2") == [("data", 2), ("fsdp", 2)]
    assert dict(make_mesh("data:-1").shape) == {"data": len(jax.devices())}
    with pytest.raises(ConfigError, match="appears twice"):
        parse_mesh("data:1,data:1")
    assert fsdp_spec((32, 64), 2) == jax.sharding.PartitionSpec(None, "fsdp")  # the largest axis
    assert fsdp_spec((30, 7), 4) == jax.sharding.PartitionSpec()  # none divisible: replicated
    assert fsdp_spec((6, 4), 4) == jax.sharding.PartitionSpec(None, "fsdp")
    assert fsdp_spec((64,), 1) == jax.sharding.PartitionSpec()


def test_bfloat16_computes_in_bfloat16_with_float32_parameters_and_loss():
    cfg = ModelConfig(vocab_size=40, d_model=16, num_heads=2, mlp_dim=32, encoder_layers=1, decoder_layers=1)
    batch = random_batch(np.random.default_rng(0), 3, 12, 40)
    losses = {}
    for dtype in ("float32", "bfloat16"):
        model = Transformer(ModelConfig(**{**cfg.__dict__, "dtype": dtype}), nnx.Rngs(0))
        graphdef, params = nnx.split(model)
        assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
        assert model.hidden(batch).dtype == jnp.dtype(dtype)
        loss, _ = make_losses(graphdef).train(params, batch, None, {"label_smoothing": jnp.float32(0.1)})
        assert loss.dtype == jnp.float32
        losses[dtype] = float(loss)
    assert losses["bfloat16"] != losses["float32"]
    assert losses["bfloat16"] == pytest.approx(losses["float32"], rel=1e-2)


@pytest.mark.slow
def test_a_bfloat16_run_ends_within_three_percent_of_float32(tmp_path):
    scores = {}
    for dtype in ("float32", "bfloat16"):
        run = tmp_path / dtype
        args = ["train", "--config", str(TINY_CONFIG), "--quiet", "--steps", "100", "--set", "eval_every=100",
                "--set", "bleu_examples=2", "--set", f"model.dtype={dtype}", "--run-dir", str(run)]  # fmt: skip
        assert main(args) == 0
        last = [r for r in read_metrics(run) if r["step"] == 100]
        scores[dtype] = {k: r[k] for r in last for k in ("train_loss", "dev_loss") if k in r}
    for key in ("train_loss", "dev_loss"):
        assert scores["bfloat16"][key] == pytest.approx(scores["float32"][key], rel=0.03), key


def test_a_cluster_launch_is_detected_from_its_environment(monkeypatch):
    from gradtune.train.distributed import detected_cluster

    for variable in ("SLURM_NTASKS", "SLURM_STEP_ID", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(variable, raising=False)
    assert detected_cluster() is None
    monkeypatch.setenv("SLURM_NTASKS", "4")
    assert detected_cluster() is None  # an sbatch script, not an srun step
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    assert detected_cluster() == "SLURM (srun)"
    monkeypatch.setenv("SLURM_NTASKS", "1")
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    assert detected_cluster() == "Open MPI (mpirun)"
