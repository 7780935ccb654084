"""Hypergradients of the guided step: a closed-form case and finite differences (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from gradtune.core import Activation, GuidedSpec, GuidedTrainer, clean_hypergrads, make_optimizer, meta_optimizer
from gradtune.experiments.check_hypergrads import random_batch
from gradtune.seq2seq.model import ModelConfig, Transformer
from gradtune.seq2seq.objectives import make_losses


def _trainer(train_loss, guide_loss, optimizer, specs, schedule=lambda step: 0.1, fixed=None):
    return GuidedTrainer(train_loss, guide_loss, optimizer, schedule, specs, meta_optimizer(specs), fixed or {})


def test_learning_rate_hypergradient_of_sgd_has_the_closed_form():
    """SGD: θ' = θ − η g, η = base·exp(r), so dF/dr = −η ∇F(θ')·g exactly."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        X, y = rng.normal(size=(20, 5)), rng.normal(size=20)
        Xg, yg = rng.normal(size=(10, 5)), rng.normal(size=10)
        theta = jnp.asarray(rng.normal(size=5))

        def loss(params, batch):
            A, b = batch
            return 0.5 * jnp.mean((A @ params - b) ** 2)

        specs = (GuidedSpec("learning_rate", 0.7, Activation("exp")),)
        trainer = _trainer(lambda p, b, k, v: (loss(p, b), {}), loss, make_optimizer("sgd", {}), specs)
        state = trainer.init(theta, jnp.float64)
        _, metrics, _ = trainer.guided_step(state, (X, y), (Xg, yg), jax.random.key(0))

        eta = 0.1 * 0.7
        g = jax.grad(loss)(theta, (X, y))
        expected = -eta * jnp.dot(jax.grad(loss)(theta - eta * g, (Xg, yg)), g)
        np.testing.assert_allclose(metrics["hypergrad/learning_rate"], expected, rtol=1e-12)
        np.testing.assert_allclose(metrics["guide_loss"], loss(theta - eta * g, (Xg, yg)), rtol=1e-12)


@pytest.mark.parametrize("optimizer", ["adamw", "lamb"])
def test_guided_learning_rate_matches_central_finite_difference_on_a_transformer(optimizer):
    """float64, dropout on (the same masks in every pass), after two real updates.

    Central differences with step h = 1e-4 in the raw value: truncation ~h²·F''' and
    round-off ~1e-16·F/h are both far below the tolerance rtol = 1e-6, atol = 1e-10.
    """
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        cfg = ModelConfig(
            vocab_size=40, d_model=16, num_heads=2, mlp_dim=32, encoder_layers=1, decoder_layers=1, dropout=0.1
        )
        graphdef, params = nnx.split(Transformer(cfg, nnx.Rngs(0), dtype=jnp.float64))
        train_loss, guide_loss, _ = make_losses(graphdef)
        specs = (GuidedSpec("learning_rate", 1.3, Activation("exp")),)
        optim = make_optimizer(optimizer, {"weight_decay": 1e-2})
        trainer = _trainer(
            train_loss, guide_loss, optim, specs, schedule=lambda s: 3e-3, fixed={"label_smoothing": 0.1}
        )
        state = trainer.init(params, jnp.float64)
        for i in range(2):
            state, _, _ = trainer.plain_step(state, random_batch(rng, 3, 12, 40), jax.random.key(10 + i))

        batch, guide, key = random_batch(rng, 3, 12, 40), random_batch(rng, 2, 12, 40), jax.random.key(7)
        _, metrics, _ = jax.jit(trainer.guided_step)(state, batch, guide, key)

        def objective(r):
            new_params, *_ = trainer.lookahead({"learning_rate": r}, state, batch, key)
            return guide_loss(new_params, guide)

        r0, h = state.raw["learning_rate"], 1e-4
        fd = (objective(r0 + h) - objective(r0 - h)) / (2 * h)
        hypergrad = metrics["hypergrad/learning_rate"]
        assert abs(fd) > 1e-6, "the check must not be vacuous"
        assert abs(hypergrad - fd) <= 1e-6 * abs(fd) + 1e-10, (hypergrad, fd)


def test_hypergradient_cleaning_replaces_and_counts_non_finite_values():
    grads = {"a": jnp.array([1.0, jnp.nan, jnp.inf]), "b": jnp.array(-jnp.inf)}
    cleaned, count = clean_hypergrads(grads)
    np.testing.assert_array_equal(cleaned["a"], [1.0, 0.0, 10.0])
    assert float(cleaned["b"]) == -10.0
    assert int(count) == 3


def test_meta_learning_rate_scale_multiplies_the_meta_step():
    specs = (GuidedSpec("a", 1.0), GuidedSpec("b", 1.0, meta_lr_scale=5.0))
    meta = meta_optimizer(specs, learning_rate=0.1)
    raw = {"a": jnp.asarray(0.0), "b": jnp.asarray(0.0)}
    updates, _ = meta.update({"a": jnp.asarray(2.0), "b": jnp.asarray(2.0)}, meta.init(raw), raw)
    np.testing.assert_allclose(updates["a"], -0.1, rtol=1e-5)
    np.testing.assert_allclose(updates["b"], -0.5, rtol=1e-5)


def test_plain_and_guided_steps_make_the_same_model_update():
    """The look-ahead update is the real update: only the raw values differ after a step."""
    rng = np.random.default_rng(3)
    cfg = ModelConfig(
        vocab_size=30, d_model=16, num_heads=2, mlp_dim=32, encoder_layers=1, decoder_layers=1, dropout=0.1
    )
    graphdef, params = nnx.split(Transformer(cfg, nnx.Rngs(1)))
    train_loss, guide_loss, _ = make_losses(graphdef)
    specs = (GuidedSpec("learning_rate", 1.0, Activation("exp")),)
    trainer = _trainer(
        train_loss, guide_loss, make_optimizer("adamw", {}), specs, schedule=optax.constant_schedule(1e-3)
    )
    state = trainer.init(params)
    batch, guide, key = random_batch(rng, 2, 10, 30), random_batch(rng, 2, 10, 30), jax.random.key(0)
    plain, _, _ = trainer.plain_step(state, batch, key)
    guided, _metrics, _ = trainer.guided_step(state, batch, guide, key)
    for a, b in zip(jax.tree.leaves(plain.params), jax.tree.leaves(guided.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert float(guided.raw["learning_rate"]) != float(plain.raw["learning_rate"])
    assert int(guided.step) == int(plain.step) == 1


def test_a_non_finite_loss_skips_the_update_and_counts_it():
    def loss(params, batch):
        return jnp.sum(params * batch)  # inf when the batch holds inf

    specs = (GuidedSpec("learning_rate", 1.0, Activation("exp")),)
    trainer = _trainer(lambda p, b, k, v: (loss(p, b), {}), loss, make_optimizer("adamw", {}), specs)
    state = trainer.init(jnp.ones(3))
    good, bad = jnp.ones(3), jnp.array([1.0, jnp.inf, 1.0])
    for step in (trainer.plain_step, lambda s, b, k: trainer.guided_step(s, b, good, k)):
        new, metrics, _ = step(state, bad, jax.random.key(0))
        assert int(metrics["skipped"]) == 1 and int(new.step) == 1
        for a, b in zip(jax.tree.leaves(new._replace(step=0)), jax.tree.leaves(state._replace(step=0)), strict=True):
            np.testing.assert_array_equal(a, b)
        new, metrics, _ = step(state, good, jax.random.key(0))
        assert int(metrics["skipped"]) == 0 and not np.array_equal(new.params, state.params)
