import json
import subprocess
import sys

import pytest

from gradtune.errors import ConfigError
from gradtune.train.config import load_config


def test_overrides_take_dotted_paths_and_unambiguous_bare_names():
    cfg = load_config(None, ["optim.learning_rate=0.01", "steps=7", "dropout=0.2", "guidance.enabled=false"])
    assert cfg.optim.learning_rate == 0.01
    assert cfg.train.steps == 7
    assert cfg.model.dropout == 0.2
    assert cfg.guidance.enabled is False


def test_unknown_key_is_an_error_listing_the_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown config key 'learning_rat'.*optim\.learning_rate.*train\.steps"):
        load_config(None, ["learning_rat=1"])


def test_ambiguous_and_badly_typed_values_are_errors():
    with pytest.raises(ConfigError, match="ambiguous"):
        load_config(None, ["warmup_steps=1"])  # optim.warmup_steps or guidance.warmup_steps
    with pytest.raises(ConfigError, match="not a valid int"):
        load_config(None, ["steps=ten"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["steps"])


def test_config_files_json_and_toml(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"train": {"steps": 3}, "optim": {"optimizer": "lamb"}}))
    (tmp_path / "b.toml").write_text("[model]\npreset = 'small'\n[data]\nbatch_rows = 8\n")
    assert load_config(tmp_path / "a.json").optim.optimizer == "lamb"
    cfg = load_config(tmp_path / "b.toml", ["batch_rows=4"])
    assert (cfg.model.preset, cfg.data.batch_rows) == ("small", 4)
    (tmp_path / "c.json").write_text(json.dumps({"train": {"stepz": 3}}))
    with pytest.raises(ConfigError, match="stepz"):
        load_config(tmp_path / "c.json")


def test_cli_prints_one_error_line_and_exits_non_zero_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "gradtune", "train", "--set", "nonsense=1", "--run-dir", str(tmp_path / "run")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "gradtune: error: unknown config key 'nonsense'" in result.stderr
    assert not (tmp_path / "run").exists()


# The setting of issue 16's screens that passed on every pair, seed and start (configs/sweeps/
# {lt,es,de}-en-forward-bound*.toml): the default must be exactly it, so that those 18 runs are
# runs of the default.
SCREENED = ["guidance.horizon=forward", "guidance.forward_decay=0.99", "guidance.forward_bound=1",
            "guidance.until_step=240", "guidance.meta_learning_rate=3e-2", "guidance.clip=0.2",
            "guidance.lower_lr_in_warmup=true", "guidance.lower_lr_scale=3", "guidance.lower_lr_above=1",
            "guidance.forward_min_age=20", "guidance.hold_mean_from=100", "guidance.warmup_restarts=1",
            "guidance.forward_bound_step=0.1"]  # fmt: skip


@pytest.mark.parametrize("start", ["0.1", "1", "10"])
def test_the_default_guided_run_is_the_screened_setting(start):
    base = ["train.steps=600", f"guidance.lr_multiplier={start}"]
    assert load_config("default", base) == load_config("default", [*base, *SCREENED])


def test_auto_horizon_scales_with_the_run_and_keeps_what_the_user_set():
    g = load_config("default", ["train.steps=2400"]).guidance
    assert (g.horizon, g.until_step, g.hold_mean_from, g.warmup_restarts) == ("forward", 960, 100, 1)
    g = load_config("default", ["guidance.clip=0", "guidance.until_step=300", "meta_learning_rate=0.01"]).guidance
    assert (g.clip, g.until_step, g.hold_mean_from, g.meta_learning_rate, g.forward_min_age) == (
        None,
        300,
        100,
        0.01,
        20,
    )
    g = load_config("default", ["guidance.lower_lr_in_warmup=false"]).guidance  # the rule's own keys follow it
    assert (g.lower_lr_scale, g.lower_lr_above, g.warmup_restarts, g.forward_bound_step) == (1.0, 0.0, 0, 0.1)
    g = load_config("default", ["guidance.until_step=0"]).guidance  # no end of guidance: no mean to hold
    assert (g.until_step, g.hold_mean_from) == (0, 0)
    g = load_config("default", ["train.eval_every=50"]).guidance  # a restart may not cross an evaluation
    assert g.warmup_restarts == 0 and g.lower_lr_in_warmup


@pytest.mark.parametrize(
    "settings",
    [
        ["guidance.guided=learning_rate,example_weights"],  # a value per row: one-step
        ["guidance.guided=b1"],  # the recipe was measured on the learning rate alone
        ["guidance.guided=learning_rate,b1"],
        ["guidance.guided=all,label_smoothing"],
        ["guidance.enabled=false"],
        ["optim.optimizer=prodigy", "guidance.enabled=false"],
    ],
)
def test_auto_horizon_is_one_step_with_neutral_keys_elsewhere(settings):
    g = load_config("default", settings).guidance
    assert (g.horizon, g.meta_learning_rate, g.clip, g.until_step, g.lower_lr_in_warmup) == (
        "one-step", 3e-3, None, 0, False)  # fmt: skip
    assert (g.forward_min_age, g.forward_bound_step, g.hold_mean_from, g.warmup_restarts) == (0, 0.0, 0, 0)


def test_an_explicit_forward_horizon_is_the_mechanism_alone():
    g = load_config("default", ["guidance.horizon=forward"]).guidance
    assert (g.meta_learning_rate, g.clip, g.until_step, g.forward_min_age, g.lower_lr_in_warmup) == (
        3e-3, None, 0, 0, False)  # fmt: skip
