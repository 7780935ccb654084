"""`guidance.meta_options` reach the meta optimizer; rprop adapts its own step from `meta_learning_rate`."""

import numpy as np
import optax
import pytest

from gradtune.core.guided import scale_by_turns
from gradtune.errors import ConfigError
from gradtune.train.config import load_config
from gradtune.train.guidance import build_meta_optimizer, make_spec


def meta_steps(settings: list[str], hypergrads: np.ndarray) -> np.ndarray:
    """The learning rate's meta steps, from the run's meta optimizer, for these hypergradients
    (the one-step horizon: its neutral keys clip nothing)."""
    cfg = load_config(None, ["guidance.horizon=one-step", *settings])
    meta, _ = build_meta_optimizer(cfg, [make_spec("learning_rate", 1.0, {})])
    raw = {"learning_rate": np.float32(0.0)}
    state = meta.init(raw)
    steps = []
    for g in hypergrads:
        update, state = meta.update({"learning_rate": np.float32(g)}, state, raw)
        steps.append(float(update["learning_rate"]))
    return np.array(steps)


def reference_steps(optimizer: optax.GradientTransformation, hypergrads: np.ndarray) -> np.ndarray:
    state = optimizer.init(np.float32(0.0))
    steps = []
    for g in hypergrads:
        update, state = optimizer.update(np.float32(g), state, np.float32(0.0))
        steps.append(float(update))
    return np.array(steps)


def test_meta_options_are_the_optax_optimizer_s_keyword_arguments():
    g = np.random.default_rng(0).normal(size=12).astype(np.float32)
    b1_0 = meta_steps(["meta_learning_rate=0.01", "meta_options=b1=0, b2=0.9"], g)
    np.testing.assert_allclose(b1_0, reference_steps(optax.adam(0.01, b1=0.0, b2=0.9), g), rtol=1e-6)
    default = meta_steps(["meta_learning_rate=0.01"], g)
    np.testing.assert_allclose(default, reference_steps(optax.adam(0.01), g), rtol=1e-6)
    assert not np.allclose(b1_0, default)  # the options did change the optimizer


def test_rprop_is_irprop_minus_as_torch_steps_it():
    # torch.optim.Rprop(lr=0.1) on the gradients 1, 1, 1, −1, 1 moves the parameter by −0.1, −0.12,
    # −0.144, 0 (the turn: no step, the size halves to 0.072), −0.072 (optax 0.2.8 gives 0, −0.1,
    # −0.12, 0, 0: each update one step late, pull request #1725)
    steps = meta_steps(["meta_optimizer=rprop", "meta_learning_rate=0.1"], np.array([1, 1, 1, -1, 1], np.float32))
    np.testing.assert_allclose(steps, [-0.1, -0.12, -0.144, 0.0, -0.072], rtol=1e-6)


def test_rprop_grows_its_step_while_the_sign_holds_up_to_max_step_size():
    g = np.array([-1.0] * 8 + [2.0] + [3.0] * 3, np.float32)  # raises the value 8 steps, then turns
    settings = ["meta_optimizer=rprop", "meta_learning_rate=0.01", "meta_options=max_step_size=0.03, eta_minus=0.25"]
    steps = meta_steps(settings, g)
    sizes = [min(0.01 * 1.2**k, 0.03) for k in range(8)]  # capped from the 7th step on
    expected = [*sizes, 0.0, 0.03 * 0.25, 0.03 * 0.25 * 1.2, 0.03 * 0.25 * 1.44]
    np.testing.assert_allclose(np.abs(steps), expected, rtol=1e-5)
    assert np.all(steps[:8] > 0) and np.all(steps[9:] < 0)


def test_rprop_takes_no_meta_schedule():
    with pytest.raises(ConfigError, match=r"guidance.meta_schedule .* must be 'constant' with meta_optimizer rprop"):
        load_config(None, ["meta_optimizer=rprop", "meta_schedule=constant * cosine_decay"])


def test_scale_by_turns_damps_each_swing_and_ignores_zero_steps():
    turns = scale_by_turns(0.5)
    steps = np.array([0.0, 1.0, 2.0, 0.0, -1.0, -3.0, 4.0, 0.0, 5.0], np.float32)
    # turns at −1 (after +2; the 0 between neither turns nor erases the sign) and at +4
    expected = [0.0, 1.0, 2.0, 0.0, -0.5, -1.5, 1.0, 0.0, 1.25]
    np.testing.assert_allclose(reference_steps(turns, steps), expected, rtol=0)
    with pytest.raises(ValueError, match="turn_decay is 0"):
        scale_by_turns(0.0)


def test_meta_turn_decay_follows_the_meta_optimizer_s_own_steps():
    g = np.random.default_rng(1).normal(size=16).astype(np.float32)
    settings = ["meta_learning_rate=0.01", "meta_turn_decay=0.25"]
    steps = meta_steps(settings, g)
    chained = optax.chain(optax.adam(0.01), scale_by_turns(0.25))
    np.testing.assert_allclose(steps, reference_steps(chained, g), rtol=1e-6)
    adam = reference_steps(optax.adam(0.01), g)
    n_turns = np.cumsum(np.r_[0, np.sign(adam[1:]) * np.sign(adam[:-1]) < 0])  # Adam's steps are never 0 here
    assert n_turns[-1] >= 2  # the check must not be vacuous
    np.testing.assert_allclose(steps, adam * 0.25**n_turns, rtol=1e-6)
