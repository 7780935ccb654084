"""Runs that survive: exact resume after SIGINT or SIGKILL, torn checkpoints, NaNs, full disks."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import TINY

from gradtune.cli.main import main
from gradtune.train import loop
from gradtune.train.checkpoint import CheckpointError, complete_steps, restore_arrays, save_checkpoint
from gradtune.train.logbook import read_metrics
from gradtune.train.setup import load_run

RUN = [
    "--steps", "12", *TINY, "--set", "optim.learning_rate=2e-3",
    "--set", "eval_every=6", "--set", "log_every=4", "--set", "checkpoint_every=2",
    "--set", "bleu_examples=8", "--set", "keep_checkpoints=20",
    "--set", "guided=learning_rate,b1,label_smoothing", "--set", "guide_every=2", "--set", "guide_batch=cycle",
    "--set", "reset_every=9", "--set", "meta_learning_rate=0.02", "--set", "optim.warmup_steps=3",
]  # fmt: skip


def _records(run):
    return [{k: v for k, v in r.items()} for r in read_metrics(run)]


def _assert_same_run(a, b):
    """Same metrics step by step, same final parameters and guided values, bit for bit."""
    assert _records(a) == _records(b)
    sa, sb = load_run(a).state, load_run(b).state
    for x, y in zip(jax_leaves(sa), jax_leaves(sb), strict=True):
        np.testing.assert_array_equal(x, y)
    assert json.loads((a / "learned_values.json").read_text()) == json.loads((b / "learned_values.json").read_text())


def jax_leaves(state):
    import jax

    return jax.tree.leaves(state)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run."""
    run = tmp_path_factory.mktemp("reference") / "run"
    assert main(["train", "--run-dir", str(run), *RUN]) == 0
    return run


@pytest.mark.slow
def test_sigint_checkpoints_and_resume_ends_exactly_like_the_uninterrupted_run(
    reference, tmp_path, monkeypatch, capsys
):
    run = tmp_path / "run"

    class InterruptedStream(loop.BatchStream):
        taken = 0

        def __next__(self):
            InterruptedStream.taken += 1
            if InterruptedStream.taken == 7:
                signal.raise_signal(signal.SIGINT)  # as Ctrl-C during step 7
            return super().__next__()

    monkeypatch.setattr(loop, "BatchStream", InterruptedStream)
    assert main(["train", "--run-dir", str(run), *RUN]) == 0
    err = capsys.readouterr().err
    assert "stopped by SIGINT after step 7" in err and f"gradtune train --resume {run}" in err
    assert complete_steps(run)[-1] == 7
    monkeypatch.undo()

    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert "resuming" in capsys.readouterr().err
    _assert_same_run(reference, run)


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_from_its_last_checkpoint_exactly(reference, tmp_path):
    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "gradtune", "train", "--run-dir", str(run), *RUN],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 240
    while time.time() < deadline and not any(s >= 4 for s in complete_steps(run)):
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = complete_steps(run)[-1]
    assert 4 <= killed_at < 12
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    _assert_same_run(reference, run)


@pytest.mark.slow
def test_a_torn_newest_checkpoint_falls_back_to_the_previous_one(reference, tmp_path, capsys):
    run = tmp_path / "run"
    args = [a if a != "12" else "8" for a in RUN]  # the same run, stopped at step 8
    assert main(["train", "--run-dir", str(run), *args]) == 0
    newest = run / "checkpoints" / "step_00000008"
    for path in newest.rglob("*"):
        if path.is_file() and path.stat().st_size > 0:
            path.write_bytes(b"\0" * path.stat().st_size)  # torn: the files are there, the bytes are not
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--steps", "12", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "checkpoint of step 8 is unreadable" in err and "resuming" in err and "from step 6" in err
    _assert_same_run(reference, run)


def test_resuming_with_a_changed_model_or_guided_set_is_a_clear_error(reference, capsys):
    assert main(["train", "--resume", str(reference), "--set", "d_model=64"]) == 1
    err = capsys.readouterr().err
    assert "cannot resume with a changed model.d_model 32 → 64" in err and "Traceback" not in err
    assert main(["train", "--resume", str(reference), "--set", "guided=learning_rate"]) == 1
    assert "guidance.guided" in capsys.readouterr().err


def test_resume_of_a_missing_run_and_a_fresh_run_over_an_old_one_are_refused(reference, tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 1
    assert "holds no run to resume" in capsys.readouterr().err
    assert main(["train", "--run-dir", str(reference), "--steps", "1"]) == 1
    assert "already holds a run; resume it with --resume" in capsys.readouterr().err


@pytest.mark.slow
def test_non_finite_losses_skip_updates_and_stop_the_run_keeping_the_last_good_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    args = [*RUN, "--set", "optim.learning_rate=1e30", "--set", "max_nonfinite=3", "--set", "checkpoint_every=1"]
    assert main(["train", "--run-dir", str(run), *args]) == 1
    err = capsys.readouterr().err
    assert "NaN or infinite for 3 steps in a row" in err and "Traceback" not in err
    records = [r for r in read_metrics(run) if "train_loss" in r]
    assert sum(r["skipped"] for r in records) >= 3 and records[-1]["step"] < 12
    assert complete_steps(run)  # the good checkpoints are kept


@pytest.mark.slow
def test_a_full_disk_while_checkpointing_is_a_clear_error_and_keeps_the_previous_checkpoint(
    tmp_path, monkeypatch, capsys
):
    run = tmp_path / "run"
    real_save = ocp.StandardCheckpointer.save
    calls = []

    def save_until_the_disk_fills(self, directory, *args, **kwargs):
        calls.append(directory)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(self, directory, *args, **kwargs)

    monkeypatch.setattr(ocp.StandardCheckpointer, "save", save_until_the_disk_fills)
    assert main(["train", "--run-dir", str(run), *RUN]) == 1
    err = capsys.readouterr().err
    assert "could not write the checkpoint of step 4" in err and "No space left on device" in err
    assert "checkpoint of step 2 is intact" in err and "Traceback" not in err
    assert complete_steps(run) == [2]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000002", "step_00000002.json"]


def test_a_checkpoint_of_another_state_layout_is_a_clear_error(tmp_path):
    old = {"params": jnp.ones(2), "meta_state": (jnp.ones(3), {"mu": jnp.ones(3)})}
    save_checkpoint(tmp_path, 4, old, {}, keep=1, best_step=None)
    new = {"params": jnp.ones(2), "meta_state": ((jnp.ones(3),), jnp.ones(3), jnp.ones(3))}
    with pytest.raises(CheckpointError, match="another layout"):
        restore_arrays(tmp_path, 4, new)
    assert restore_arrays(tmp_path, 4, old)["meta_state"][1]["mu"].shape == (3,)
