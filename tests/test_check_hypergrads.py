"""`gradtune check-hypergrads`: every optimizer × every guidable value, float64, in one call."""

import pytest

from gradtune.cli.main import main
from gradtune.core import OPTIMIZERS
from gradtune.experiments.check_hypergrads import Row, format_table


@pytest.mark.slow
def test_every_hypergradient_matches_its_finite_difference(capsys):
    assert main(["check-hypergrads"]) == 0
    out = capsys.readouterr().out
    expected = sum(len(d.guidable) + 1 for d in OPTIMIZERS.values())  # + label smoothing
    expected += 3 + 4 + 4  # data weights: every corpus and bucket row, 3 present and 1 absent example rows
    # forward mode over three steps, at the last parameters and at their running average:
    # AdamW's values and label smoothing, each twice
    expected += 2 * (len(OPTIMIZERS["adamw"].guidable) + 1)
    assert f"{expected}/{expected} passed" in out
    assert " NO" not in out


def test_a_mismatch_fails_and_tiny_values_are_marked():
    rows = [
        Row("adamw", "b1", hypergrad=1.0e-2, fd=1.1e-2, atol=1e-11, rtol=1e-4),
        Row("adamw", "eps", hypergrad=3e-12, fd=1e-12, atol=7e-11, rtol=1e-4),
    ]
    assert not rows[0].passed and rows[1].passed and rows[1].below_atol
    table = format_table(rows)
    assert "NO" in table and "(|fd| < atol)" in table and "1/2 passed" in table


def test_an_unknown_optimizer_is_a_clear_error(capsys):
    assert main(["check-hypergrads", "--optimizer", "adamax"]) == 1
    assert "unknown optimizer adamax" in capsys.readouterr().err
