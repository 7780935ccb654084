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
