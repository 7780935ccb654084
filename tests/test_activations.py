import math

import jax.numpy as jnp
import numpy as np
import pytest

from gradtune.core import Activation


@pytest.mark.parametrize(
    "activation",
    [
        Activation("exp"),
        Activation("exp", floor=1e-3, steepness=2.0),
        Activation("sigmoid", 0.0, 1.0),
        Activation("sigmoid", 0.1, 0.5, steepness=3.0),
        Activation("softplus"),
        Activation("softplus", floor=0.5, steepness=0.5),
        Activation("identity", steepness=2.0),
    ],
)
def test_inverse_round_trips_on_random_values(activation):
    rng = np.random.default_rng(0)
    lo = activation.floor if activation.kind != "identity" else -5.0
    hi = activation.ceiling if activation.kind == "sigmoid" else lo + 20.0
    for value in rng.uniform(lo, hi, 50):
        if not lo < value < hi:
            continue
        raw = activation.inverse(float(value))
        back = float(activation(jnp.asarray(raw, jnp.float32)))
        assert math.isclose(back, value, rel_tol=1e-5, abs_tol=1e-6), (value, raw, back)


def test_softplus_inverse_is_finite_for_large_values():
    act = Activation("softplus")
    assert math.isclose(float(act(jnp.asarray(act.inverse(80.0)))), 80.0, rel_tol=1e-6)


@pytest.mark.parametrize(
    ("activation", "value"),
    [
        (Activation("exp"), 0.0),
        (Activation("exp", floor=1.0), 0.5),
        (Activation("sigmoid"), 1.0),
        (Activation("sigmoid"), 0.0),
    ],
)
def test_values_outside_the_range_are_a_clear_error(activation, value):
    with pytest.raises(ValueError, match="outside the range"):
        activation.inverse(value)


def test_bad_activation_specs_are_refused():
    with pytest.raises(ValueError, match="unknown activation"):
        Activation("tanh")
    with pytest.raises(ValueError, match="ceiling > floor"):
        Activation("sigmoid", 1.0, 0.5)
    with pytest.raises(ValueError, match="steepness"):
        Activation("exp", steepness=0.0)
