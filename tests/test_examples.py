"""The README's bring-your-own-model example runs: gradtune.core alone, on an MLP that is not a translation model."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import digits_mlp


def test_the_digits_mlp_learns_its_learning_rate_and_weight_decay():
    held = digits_mlp.run(guided=False, steps=100, lr_multiplier=0.1)
    guided = digits_mlp.run(guided=True, steps=100, lr_multiplier=0.1)
    assert (held["learning_rate"], held["weight_decay"]) == pytest.approx((0.1, 1e-3))  # held values stay put
    assert guided["learning_rate"] > 1.0  # guidance pulls the too-small learning rate up ...
    assert guided["test_loss"] < held["test_loss"] / 2  # ... and the model is much better for it
    assert 0 < guided["weight_decay"] < 4e-3  # inside its sigmoid's range
