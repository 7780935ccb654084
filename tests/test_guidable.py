"""The one table of guidable values: what the config, `guided = all`, check-hypergrads and the README read."""

from pathlib import Path

import pytest

from gradtune.cli.main import main
from gradtune.core import OPTIMIZERS
from gradtune.errors import ConfigError
from gradtune.experiments import check_hypergrads
from gradtune.seq2seq.objectives import DATA_WEIGHTS, LOSS_VALUES
from gradtune.train.config import load_config
from gradtune.train.guidable import GUIDABLE, markdown_table, names_of
from gradtune.train.guidance import build_trainer
from gradtune.train.resolve import initial_values

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_table_gathers_every_optimizer_loss_and_data_value_once():
    optimizer_side = {n for d in OPTIMIZERS.values() for n in d.guidable}
    assert set(names_of("optimizer")) == optimizer_side
    assert set(names_of("loss")) == set(LOSS_VALUES) and set(names_of("data")) == set(DATA_WEIGHTS)
    assert len(GUIDABLE) == len(optimizer_side) + len(LOSS_VALUES) + len(DATA_WEIGHTS)
    for name, definition in OPTIMIZERS.items():
        assert names_of("optimizer", name) == tuple(n for n in GUIDABLE if n in definition.guidable)


def test_the_readme_and_the_cli_show_the_table(capsys):
    assert markdown_table() in README.read_text(), (
        "README's table of guidable values is stale: gradtune config --guidable"
    )
    assert main(["config", "--guidable"]) == 0
    assert capsys.readouterr().out == markdown_table()


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_guided_all_is_every_optimizer_side_value_and_each_starts_at_its_config_key(optimizer):
    cfg = load_config(None, [f"optim.optimizer={optimizer}", "guided=all,label_smoothing", "optim.label_smoothing=0.2"])
    guided = cfg.guidance.guided.split(",")
    assert sorted(guided) == sorted((*names_of("optimizer", optimizer), "label_smoothing"))
    initial = initial_values(cfg)
    for name in guided:
        section, key = GUIDABLE[name].config_key.split(".")
        expected = getattr(getattr(cfg, section), key)
        assert initial[name] == expected
    specs = {s.name: s for s in build_trainer(cfg, None, None).trainer.specs}
    assert specs["label_smoothing"].init == 0.2
    assert specs["label_smoothing"].activation == GUIDABLE["label_smoothing"].activation(0.2)


def test_a_value_the_optimizer_lacks_is_a_clear_error_naming_what_it_has():
    with pytest.raises(ConfigError, match=r"optimizer sgd has no guidable value 'b1'.*learning_rate, label_smoothing"):
        load_config(None, ["optim.optimizer=sgd", "guided=b1"])


def test_check_hypergrads_checks_every_loss_side_value():
    assert check_hypergrads.names_of("loss") == tuple(LOSS_VALUES)
