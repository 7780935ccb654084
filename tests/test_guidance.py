"""The guided values a run asks for: names, specs, meta-optimizer, policies."""

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY as TINY_RUN

from gradtune.cli.main import main
from gradtune.core import OPTIMIZERS, optimizer_def
from gradtune.errors import ConfigError
from gradtune.train.config import load_config
from gradtune.train.guidance import build_trainer
from gradtune.train.guide_batches import GuideBatches
from gradtune.train.logbook import read_metrics
from gradtune.train.resolve import guided_names, parse_spec_overrides


def _loss(*args):
    return jnp.zeros(())


def _setup(*overrides):
    return build_trainer(load_config(None, list(overrides)), _loss, _loss)


def test_all_means_every_optimizer_side_value_and_label_smoothing_is_named_explicitly():
    for name, definition in OPTIMIZERS.items():
        cfg = load_config(None, [f"optimizer={name}", "guided=all,label_smoothing"])
        assert guided_names(cfg) == (*definition.guidable, "label_smoothing")


def test_a_value_the_optimizer_lacks_is_a_one_line_error_listing_its_values():
    with pytest.raises(
        ConfigError, match=r"optimizer sgd has no guidable value 'b2'; its guidable values: learning_rate"
    ):
        _setup("optimizer=sgd", "guided=b2")


def test_initial_values_come_from_the_config():
    setup = _setup("optimizer=lamb", "guided=all,label_smoothing", "b2=0.95", "label_smoothing=0.2", "lr_multiplier=3")
    specs = {s.name: s for s in setup.trainer.specs}
    assert specs["b2"].init == 0.95 and specs["label_smoothing"].init == 0.2 and specs["learning_rate"].init == 3
    values = setup.trainer.values(setup.trainer.init({"w": jnp.ones(3)}).raw)
    np.testing.assert_allclose(values["b2"], 0.95, rtol=1e-6)
    np.testing.assert_allclose(values["label_smoothing"], 0.2, rtol=1e-6)
    np.testing.assert_allclose(values["learning_rate"], 3.0, rtol=1e-6)


def test_default_activations_keep_values_in_range_and_unsaturated():
    specs = {s.name: s for s in _setup("optimizer=adamw", "guided=all,label_smoothing").trainer.specs}
    assert specs["learning_rate"].activation.kind == specs["eps"].activation.kind == "exp"
    for name in ("b1", "b2"):
        assert (specs[name].activation.floor, specs[name].activation.ceiling) == (0.0, 1.0)
    for name in ("weight_decay", "label_smoothing"):
        act, init = specs[name].activation, specs[name].init
        assert act.floor < init < act.ceiling and act.ceiling < 1.0
        assert 0.1 < (init - act.floor) / (act.ceiling - act.floor) < 0.9  # in the live range of the sigmoid


def test_spec_overrides_set_activation_steepness_and_meta_step():
    setup = _setup(
        "guided=learning_rate,label_smoothing", "specs=label_smoothing:sigmoid,ceiling=0.5,steepness=2,meta_lr=4"
    )
    spec = {s.name: s for s in setup.trainer.specs}["label_smoothing"]
    assert (spec.activation.ceiling, spec.activation.steepness, spec.meta_lr_scale) == (0.5, 2.0, 4.0)
    assert parse_spec_overrides("eps:exp; b1:sigmoid,floor=0.5") == {
        "eps": {"kind": "exp"},
        "b1": {"kind": "sigmoid", "floor": "0.5"},
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["specs=eps:exp"], "not guided"),
        (["specs=learning_rate:sigmoid,top=3"], "cannot read 'top=3'"),
        (["specs=learning_rate:tanh"], "unknown activation"),
        (["guided=label_smoothing", "label_smoothing=0"], "outside the range"),
        (["meta_optimizer=nosuch"], "guidance.meta_optimizer is 'nosuch': optax has no such optimizer"),
        (["meta_optimizer=chain"], "guidance.meta_optimizer is 'chain'"),
        (["guide_batch=sometimes"], "guidance.guide_batch is 'sometimes'.*auto, fixed, cycle, epoch, train"),
        (["optimizer=adamax"], "optim.optimizer is 'adamax'; it must be one of sgd, momentum"),
    ],
)
def test_bad_guidance_settings_are_clear_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        _setup(*overrides)


def test_no_guidance_uses_the_same_optimizer_configuration():
    guided = _setup("optimizer=lamb", "guided=all", "b1=0.8")
    plain = _setup("optimizer=lamb", "guided=all", "b1=0.8", "guidance.enabled=false")
    assert plain.trainer.specs == () and plain.hyperparams == guided.hyperparams
    assert plain.trainer.fixed == guided.trainer.fixed
    state = plain.trainer.init({"w": jnp.ones(2)})
    assert {k: float(v) for k, v in state.opt_state.hyperparams.items() if k != "learning_rate"} == pytest.approx(
        {k: v for k, v in guided.hyperparams.items()}
    )
    assert set(optimizer_def("lamb").defaults) == set(guided.hyperparams)


def test_guide_batch_policies_are_deterministic_functions_of_epoch_and_count():
    pairs = [(np.array([5 + i % 7, 3]), np.array([6, 3])) for i in range(200)]
    train_batch = {"src": np.zeros((2, 4))}
    fixed = GuideBatches("fixed", pairs, 4, 8, 0)
    assert fixed(0, 0, train_batch) is fixed(5, 9, train_batch)
    cycle = GuideBatches("cycle", pairs, 4, 8, 0)
    batches = [cycle(0, n, train_batch)["src"].copy() for n in range(40)]
    assert not np.array_equal(batches[0], batches[1])
    again = GuideBatches("cycle", pairs, 4, 8, 0)
    np.testing.assert_array_equal(again(3, 37, train_batch)["src"], batches[37])  # resumable: no hidden state
    np.testing.assert_array_equal(again(0, 2, train_batch)["src"], batches[2])
    epoch = GuideBatches("epoch", pairs, 4, 8, 0)
    assert epoch(0, 5, train_batch) is epoch(0, 9, train_batch)
    assert not np.array_equal(epoch(1, 0, train_batch)["src"], epoch(0, 0, train_batch)["src"])
    assert GuideBatches("train", pairs, 4, 8, 0)(3, 1, train_batch) is train_batch


TINY = [*TINY_RUN, "--set", "optim.learning_rate=2e-3", "--set", "optim.warmup_steps=100",
        "--set", "eval_every=100", "--set", "log_every=4", "--set", "bleu_examples=4"]  # fmt: skip


@pytest.mark.slow
def test_warmup_guide_every_and_reset_schedule_the_guided_steps(tmp_path):
    run = tmp_path / "run"
    args = ["train", "--steps", "12", "--run-dir", str(run), *TINY]
    args += ["--set", "guidance.warmup_steps=2", "--set", "guide_every=3", "--set", "reset_every=8"]
    args += ["--set", "guide_batch=cycle", "--set", "meta_learning_rate=0.05", "--set", "horizon=one-step"]
    assert main(args) == 0
    records = [r for r in read_metrics(run) if "train_loss" in r]
    guided_steps = [r["step"] for r in records if "guide_loss" in r]
    assert guided_steps == [3, 6, 9, 12]  # 0-based steps 2, 5, 8, 11: after 2 warm-up steps, every 3rd
    assert all("meta_learning_rate" in r and "hypergrad_cleaned" in r for r in records if "guide_loss" in r)
    multipliers = {r["step"]: r["value/learning_rate"] for r in records}
    assert multipliers[1] == multipliers[3] == 1.0  # held through warm-up, used as is by the first guided step
    assert multipliers[4] != 1.0  # moved by the guided step 3
    assert multipliers[9] == pytest.approx(1.0)  # reset before the 9th step (0-based step 8)
    assert multipliers[10] != pytest.approx(1.0)
