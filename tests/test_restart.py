"""``guidance.warmup_restarts``: the warm-up rule's first lowering step starts the run again."""

import json

import jax
import numpy as np
import pytest
from conftest import TINY

from gradtune.cli.main import main
from gradtune.errors import ConfigError
from gradtune.train.config import load_config
from gradtune.train.logbook import read_metrics
from gradtune.train.restart import is_turn
from gradtune.train.setup import load_run

# From 30× the tiny model's warm-up rule lowers the rate within its first 10 steps (the one-step
# horizon: every key not set here neutral; a test of forward mode sets horizon=forward after it).
RULE = [*TINY, "--set", "horizon=one-step", "--set", "guidance.lower_lr_in_warmup=true",
        "--set", "optim.warmup_steps=10", "--set", "guidance.meta_learning_rate=0.1", "--set", "train.log_every=1",
        "--set", "bleu_examples=2"]  # fmt: skip


def _summary(run):
    return json.loads((run / "summary.json").read_text())


def _assert_same_state(a, b):
    for x, y in zip(jax.tree.leaves(load_run(a).state), jax.tree.leaves(load_run(b).state), strict=True):
        np.testing.assert_array_equal(x, y)


def test_is_turn_is_a_lowering_step_inside_the_window_where_the_rule_holds():
    assert is_turn(9, 2.0, 1.5, until=10, above=1.0)
    assert is_turn(0, 1.0, 0.99, until=10, above=1.0)  # at the bound the rule holds
    assert not is_turn(10, 2.0, 1.5, until=10, above=1.0)  # after the warm-up
    assert not is_turn(5, 0.9, 0.8, until=10, above=1.0)  # below lower_lr_above: the free step
    assert not is_turn(5, 2.0, 2.0, until=10, above=1.0) and not is_turn(5, 2.0, 2.5, until=10, above=0.0)


@pytest.mark.slow
def test_a_restarted_run_is_the_run_started_at_its_new_multiplier_and_its_steps_come_out_of_guidance(tmp_path):
    """From 30× the meta step of step k (in the warm-up) lowers the rate: the run starts again
    at rate_k / peak rate, and from there it is, bit for bit, the run started at that
    multiplier whose guidance ends k + 1 steps earlier (the abandoned steps came out of
    ``until_step``). Its compute counts every step of both attempts; the first attempt's
    metrics are kept apart."""
    restarted, fresh = tmp_path / "restarted", tmp_path / "fresh"
    run = ["--steps", "20", *RULE, "--set", "eval_every=20"]
    assert main(["train", "--run-dir", str(restarted), *run, "--set", "guidance.lr_multiplier=30",
                 "--set", "guidance.warmup_restarts=1", "--set", "guidance.until_step=16"]) == 0  # fmt: skip
    (restart,) = _summary(restarted)["restarts"]
    abandoned = [json.loads(line) for line in (restarted / "metrics.attempt-1.jsonl").read_text().splitlines()]
    assert len(abandoned) == restart["step"] + 1 < 10  # steps 0 … k, all in the warm-up
    at_turn = abandoned[restart["step"]]
    assert at_turn["value/learning_rate"] == restart["multiplier"] == pytest.approx(30, rel=1e-6)
    assert at_turn["learning_rate"] == restart["learning_rate"]
    assert restart["new_multiplier"] == pytest.approx(restart["learning_rate"] / 5e-3, rel=1e-6)  # peak: 5e-3 × 1
    assert all(r["value/learning_rate"] == abandoned[0]["value/learning_rate"] for r in abandoned)  # no earlier turn
    spent = restart["step"] + 1
    assert main(["train", "--run-dir", str(fresh), *run, "--set", f"guidance.lr_multiplier={restart['new_multiplier']}",
                 "--set", f"guidance.until_step={16 - spent}"]) == 0  # fmt: skip
    assert read_metrics(restarted) == read_metrics(fresh)
    _assert_same_state(restarted, fresh)
    compute = _summary(restarted)["compute"]
    assert compute["guided_steps"] == 16 and compute["plain_steps"] == 20 - (16 - spent)
    assert _summary(fresh)["restarts"] == []


@pytest.mark.slow
def test_a_forward_mode_run_stopped_after_its_restart_resumes_exactly(tmp_path):
    """A forward-mode run (tangents fresh at the restart) checkpointed after its restart and
    resumed ends bit for bit as the run that went straight on: the checkpoint keeps the
    restart, so the resumed run neither restarts again nor forgets the steps it spent."""
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    run = [*RULE, "--set", "horizon=forward", "--set", "guidance.lr_multiplier=30", "--set", "eval_every=12",
           "--set", "checkpoint_every=12", "--set", "guidance.warmup_restarts=1",
           "--set", "guidance.until_step=12"]  # fmt: skip
    assert main(["train", "--run-dir", str(straight), "--steps", "24", *run]) == 0
    assert main(["train", "--run-dir", str(stopped), "--steps", "12", *run]) == 0
    assert main(["train", "--resume", str(stopped), "--steps", "24", "--quiet"]) == 0
    assert len(_summary(straight)["restarts"]) == 1 and _summary(stopped)["restarts"] == _summary(straight)["restarts"]
    assert read_metrics(straight) == read_metrics(stopped)
    _assert_same_state(straight, stopped)


def test_warmup_restarts_is_checked_when_the_config_is_resolved():
    with pytest.raises(ConfigError, match=r"guidance\.warmup_restarts.*lower_lr_in_warmup"):
        load_config(None, ["guidance.horizon=one-step", "guidance.warmup_restarts=1"])
    with pytest.raises(ConfigError, match=r"guidance\.warmup_restarts.*≥ 0"):
        load_config(None, ["guidance.lower_lr_in_warmup=true", "guidance.warmup_restarts=-1"])
    with pytest.raises(ConfigError, match=r"guidance\.warmup_restarts.*before any evaluation"):
        load_config(None, ["guidance.lower_lr_in_warmup=true", "guidance.warmup_restarts=1", "train.eval_every=50"])
    cfg = load_config(None, ["guidance.lower_lr_in_warmup=true", "guidance.warmup_restarts=1"])
    assert cfg.guidance.warmup_restarts == 1
