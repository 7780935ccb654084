"""Resuming a run: its directory, the newest readable checkpoint, metrics cut back to it."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from tensorboardX import SummaryWriter

from gradtune.core import TrainState
from gradtune.errors import ConfigError, GradtuneError
from gradtune.files import write_text
from gradtune.train.checkpoint import complete_steps, read_host_state, restore_arrays
from gradtune.train.config import Config, flat, to_dict

# What a resumed run may change: how long it runs and how it reports, not what it trains.
RESUMABLE_CHANGES = ("train.steps", "train.eval_every", "train.log_every", "train.checkpoint_every",
                     "train.keep_checkpoints", "train.bleu_examples", "train.beam_size", "train.length_penalty",
                     "train.max_nonfinite", "train.mesh")  # fmt: skip


class NonFiniteLoss(GradtuneError):
    def __init__(self, run_dir: Path, step: int, count: int):
        steps = complete_steps(run_dir)
        kept = f"the last good checkpoint is step {steps[-1]}" if steps else "no checkpoint was written yet"
        super().__init__(
            f"the loss was NaN or infinite for {count} steps in a row (up to step {step}); each update was "
            f"skipped, and the run stops: {kept}. Lower optim.learning_rate, then resume or start again"
        )


def check_run_dir(run_dir: Path, resume: bool) -> None:
    has_run = (run_dir / "config.json").exists()
    if resume and not has_run:
        raise ConfigError(f"{run_dir} holds no run to resume (no config.json); train into it without --resume")
    if not resume and (has_run or (run_dir / "metrics.jsonl").exists()):
        raise ConfigError(f"{run_dir} already holds a run; resume it with --resume or choose another --run-dir")


def check_compatible(saved: Config, requested: Config) -> None:
    """A one-line error for any change that the saved state cannot follow."""

    before, after = flat(to_dict(saved)), flat(to_dict(requested))
    changed = [k for k in before if before[k] != after[k] and k not in RESUMABLE_CHANGES]
    if changed:
        what = ", ".join(f"{k} {before[k]!r} → {after[k]!r}" for k in changed)
        raise ConfigError(
            f"cannot resume with a changed {what}: the checkpoint was trained with the saved value. "
            f"Only {', '.join(RESUMABLE_CHANGES)} may change on resume; start a new run for the rest"
        )


def restore_latest(run_dir: Path, like: TrainState) -> tuple[TrainState, dict]:
    """The newest checkpoint that reads back whole; older ones if the newest is damaged."""
    steps = complete_steps(run_dir)
    if not steps:
        raise GradtuneError(f"{run_dir} has no complete checkpoint to resume from; start the run again")
    for step in reversed(steps):
        try:
            host = read_host_state(run_dir, step)
            state = TrainState(**restore_arrays(run_dir, step, like._asdict()))
        except Exception as e:
            print(f"gradtune: checkpoint of step {step} is unreadable ({type(e).__name__}: {e}); "
                  "falling back to the previous one", file=sys.stderr)  # fmt: skip
            continue
        print(f"gradtune: resuming {run_dir} from step {step}", file=sys.stderr)
        return state, host
    raise GradtuneError(f"no checkpoint in {run_dir} could be read; start the run again")


def rewind_metrics(run_dir: Path, step: int) -> None:
    """Cut ``metrics.jsonl`` back to ``step`` and rebuild the TensorBoard events from it."""
    path = run_dir / "metrics.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line torn by a crash mid-write
            continue
        if record["step"] <= step:
            kept.append(record)
    write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
    shutil.rmtree(run_dir / "tensorboard", ignore_errors=True)
    with SummaryWriter(str(run_dir / "tensorboard")) as writer:
        for record in kept:
            for key, value in record.items():
                if key != "step" and value is not None:
                    writer.add_scalar(key, value, record["step"])
