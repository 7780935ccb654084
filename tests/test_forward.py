"""Forward-mode hypergradients (core/forward.py), float64: with decay 0 they are the one-step
hypergradient exactly. With decay 1 they are the derivative of the guide loss after k held
steps: `gradtune check-hypergrads` checks that against central differences for every scalar
AdamW value (its `forward ×3` rows; tests/test_check_hypergrads.py)."""

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from toy_models import CrossAttentionConfig, CrossAttentionOnly

from gradtune.core import Activation, GuidedSpec, GuidedTrainer, make_optimizer, meta_optimizer
from gradtune.core.forward import propagate
from gradtune.experiments.check_hypergrads import random_batch
from gradtune.seq2seq.model import ModelConfig, Transformer
from gradtune.seq2seq.objectives import make_losses

VOCAB = 40
# every scalar value an AdamW run can guide: optimizer-side and loss-side
SPECS = (
    GuidedSpec("learning_rate", 1.3, Activation("exp")),
    GuidedSpec("b1", 0.9, Activation("sigmoid", 0.0, 1.0)),
    GuidedSpec("b2", 0.98, Activation("sigmoid", 0.0, 1.0)),
    GuidedSpec("eps", 1e-6, Activation("exp")),
    GuidedSpec("weight_decay", 1e-2, Activation("exp")),
    GuidedSpec("label_smoothing", 0.1, Activation("sigmoid", 0.0, 0.4)),
)


def transformer_trainer(specs=SPECS, meta_lr=0.0, forward_decay=None, toy=False, forward_bound=None):
    """A float64 Transformer with dropout (or, ``toy``, the smaller model of tests/toy_models.py,
    quicker to compile but computing in float32: not for exactness) and an AdamW trainer of ``specs``."""
    if toy:
        model = CrossAttentionOnly(CrossAttentionConfig(vocab_size=VOCAB, d_model=8, num_heads=2), nnx.Rngs(0))
        graphdef, params = nnx.split(model)
        params = jax.tree.map(lambda x: x.astype(jnp.float64), params)
    else:
        cfg = ModelConfig(vocab_size=VOCAB, d_model=16, num_heads=2, mlp_dim=32, encoder_layers=1, decoder_layers=1,
                          dropout=0.1)  # fmt: skip
        graphdef, params = nnx.split(Transformer(cfg, nnx.Rngs(0), dtype=jnp.float64))
    losses = make_losses(graphdef)
    trainer = GuidedTrainer(losses.train, losses.guide, make_optimizer("adamw", {}), lambda s: 3e-3, specs,
                            meta_optimizer(specs, learning_rate=meta_lr), forward_decay=forward_decay,
                            forward_bound=forward_bound)  # fmt: skip
    return trainer, trainer.init(params, jnp.float64)


def test_with_decay_0_the_forward_hypergradient_is_the_one_step_one():
    """γ = 0 forgets the past: Z' = ∂U/∂r, so ∇F·Z' is the greedy hypergradient exactly
    (rtol 1e-7: two float64 evaluation orders of the same derivative; measured up to 9e-9,
    for label smoothing, whose path runs through Adam's division by √v)."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(3)
        forward, state = transformer_trainer(meta_lr=1e-2, forward_decay=0.0, toy=True)
        reverse = dataclasses.replace(forward, forward_decay=None)
        carry = jax.jit(functools.partial(propagate, forward))
        for i in range(2):  # some history in the tangents, which γ = 0 must drop
            batch, key = random_batch(rng, 3, 12, VOCAB), jax.random.key(i)
            params, opt_state, tangents, _, _ = carry(state, state.tangents, batch, key, 1.0)
            state = state._replace(step=state.step + 1, params=params, opt_state=opt_state, tangents=tangents)
        assert any(bool(jnp.any(t != 0)) for t in jax.tree.leaves(state.tangents))
        batch, guide, key = random_batch(rng, 3, 12, VOCAB), random_batch(rng, 2, 12, VOCAB), jax.random.key(9)
        new_f, metrics_f, _ = jax.jit(forward.guided_step)(state, batch, guide, key)
        new_r, metrics_r, _ = jax.jit(reverse.guided_step)(state._replace(tangents=()), batch, guide, key)
        for spec in SPECS:
            one_step = metrics_r[f"hypergrad/{spec.name}"]
            assert abs(one_step) > 1e-12, f"{spec.name}: the check must not be vacuous"
            np.testing.assert_allclose(metrics_f[f"hypergrad/{spec.name}"], one_step, rtol=1e-7, err_msg=spec.name)
        for a, b in zip(jax.tree.leaves(new_f._replace(tangents=())), jax.tree.leaves(new_r), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-7)  # the same model and meta update


def test_forward_mode_follows_scalars_only_and_a_jitted_step_moves_the_values():
    with jax.enable_x64(True):
        trainer, state = transformer_trainer(specs=SPECS[:1], meta_lr=1e-2, forward_decay=0.99, toy=True)
        rng = np.random.default_rng(0)
        guided, plain = jax.jit(trainer.guided_step), jax.jit(trainer.plain_step)
        start = state.raw["learning_rate"]
        state, _, _ = plain(state, random_batch(rng, 3, 12, VOCAB), jax.random.key(5))  # carries the tangents
        assert bool(jnp.any(jax.tree.leaves(state.tangents.params)[0] != 0))
        for i in range(3):
            batch, guide = random_batch(rng, 3, 12, VOCAB), random_batch(rng, 2, 12, VOCAB)
            state, metrics, _ = guided(state, batch, guide, jax.random.key(i))
        assert int(state.step) == 4 and metrics["skipped"] == 0
        assert state.raw["learning_rate"] != start and np.isfinite(metrics["hypergrad/learning_rate"])
        vector = GuidedSpec("corpus_weights", 1.0, Activation("exp"), shape=(2,), frequencies=(0.5, 0.5))
        with pytest.raises(ValueError, match="scalar values only"):
            transformer_trainer(specs=(SPECS[0], vector), forward_decay=1.0, toy=True)


def test_with_forward_min_age_no_meta_step_is_taken_on_a_young_tangent():
    """``forward_min_age = 3``: the tangents' ages count the steps carried (1, 2, 3), the first
    two guided steps leave the values and the meta state exactly as they were (the model's update
    is the free trainer's), and the third moves the values. A bound that restarts the tangent at
    every step keeps it at age 0: the values never move."""
    with jax.enable_x64(True):
        free, start = transformer_trainer(specs=SPECS[:1], meta_lr=1e-2, forward_decay=0.99, toy=True)
        rng = np.random.default_rng(3)
        batches = [(random_batch(rng, 3, 12, VOCAB), random_batch(rng, 2, 12, VOCAB), jax.random.key(i))
                   for i in range(3)]  # fmt: skip
        for bound, moves in ((None, [False, False, True]), (1e-12, [False, False, False])):
            trainer = dataclasses.replace(free, forward_min_age=3, forward_bound=bound)
            state = trainer.init(start.params, jnp.float64)
            step = jax.jit(trainer.guided_step)
            for i, (batch, guide, key) in enumerate(batches):
                new, metrics, _ = step(state, batch, guide, key)
                assert int(new.tangents.age[0]) == (0 if bound else i + 1)
                assert int(metrics["meta_step_withheld"]) == (not moves[i])
                assert (new.raw["learning_rate"] != state.raw["learning_rate"]) == moves[i]
                if not moves[i]:
                    for a, b in zip(jax.tree.leaves(new.meta_state), jax.tree.leaves(state.meta_state), strict=True):
                        np.testing.assert_array_equal(a, b)
                if i == 0:
                    free_state, _, _ = jax.jit(free.guided_step)(start, batch, guide, key)
                    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(free_state.params), strict=True):
                        np.testing.assert_array_equal(a, b)
                state = new
        with pytest.raises(ValueError, match="forward_min_age"):
            dataclasses.replace(free, forward_decay=None, forward_min_age=3)


def test_forward_bound_step_lowers_the_rate_where_its_tangent_passes_the_bound():
    """A bound that restarts the tangent at every step, with ``forward_min_age = 3``: the young
    rule withholds every meta step, and ``forward_bound_step = 0.1`` alone moves the raw learning
    rate, by exactly −0.1 a step, the meta state untouched. With no bound passed (bound 1e12) the
    steps are bit for bit those of the trainer without it."""
    with jax.enable_x64(True):
        free, start = transformer_trainer(specs=SPECS[:1], meta_lr=1e-2, forward_decay=0.99, toy=True)
        rng = np.random.default_rng(4)
        batches = [(random_batch(rng, 3, 12, VOCAB), random_batch(rng, 2, 12, VOCAB), jax.random.key(i))
                   for i in range(3)]  # fmt: skip
        young = dataclasses.replace(free, forward_min_age=3, forward_bound=1e-12, forward_bound_step=0.1)
        state = young.init(start.params, jnp.float64)
        step = jax.jit(young.guided_step)
        for batch, guide, key in batches:
            new, metrics, _ = step(state, batch, guide, key)
            assert int(metrics["bound_step"]) == 1 and int(metrics["meta_step_withheld"]) == 1
            np.testing.assert_allclose(new.raw["learning_rate"], state.raw["learning_rate"] - 0.1, rtol=0, atol=1e-15)
            for a, b in zip(jax.tree.leaves(new.meta_state), jax.tree.leaves(state.meta_state), strict=True):
                np.testing.assert_array_equal(a, b)
            state = new
        unbounded = dataclasses.replace(free, forward_bound=1e12)
        runs = [unbounded, dataclasses.replace(unbounded, forward_bound_step=0.1)]
        states = [t.init(start.params, jnp.float64) for t in runs]
        for batch, guide, key in batches:
            outs = [jax.jit(t.guided_step)(s, batch, guide, key) for t, s in zip(runs, states, strict=True)]
            assert int(outs[1][1]["bound_step"]) == 0
            for a, b in zip(jax.tree.leaves(outs[0][0]), jax.tree.leaves(outs[1][0]), strict=True):
                np.testing.assert_array_equal(a, b)
            states = [o[0] for o in outs]
        with pytest.raises(ValueError, match="forward_bound_step"):
            dataclasses.replace(free, forward_bound_step=0.1)  # no bound
        with pytest.raises(ValueError, match="forward_bound_step"):
            dataclasses.replace(free, forward_bound=1.0, forward_bound_step=-0.1)


def test_with_forward_min_age_from_the_age_rule_starts_at_that_step():
    """``forward_min_age = 3``, ``forward_min_age_from = 1``: the first guided step (step 0) takes
    its meta step on a tangent of age 1, exactly as a trainer without the rule does (values and
    meta state, float64); the second (age 2 < 3, step 1) is withheld; the third moves the values."""
    with jax.enable_x64(True):
        free, start = transformer_trainer(specs=SPECS[:1], meta_lr=1e-2, forward_decay=0.99, toy=True)
        trainer = dataclasses.replace(free, forward_min_age=3, forward_min_age_from=1)
        state = trainer.init(start.params, jnp.float64)
        rng = np.random.default_rng(8)
        step = jax.jit(trainer.guided_step)
        for i, moves in enumerate((True, False, True)):
            batch, guide, key = random_batch(rng, 3, 12, VOCAB), random_batch(rng, 2, 12, VOCAB), jax.random.key(i)
            new, metrics, _ = step(state, batch, guide, key)
            assert int(new.tangents.age[0]) == i + 1 and int(metrics["meta_step_withheld"]) == (not moves)
            assert (new.raw["learning_rate"] != state.raw["learning_rate"]) == moves
            if i == 0:
                want, _, _ = jax.jit(free.guided_step)(free.init(start.params, jnp.float64), batch, guide, key)
                got, expected = (new.raw, new.meta_state), (want.raw, want.meta_state)
                for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
                    np.testing.assert_array_equal(a, b)
            state = new
        with pytest.raises(ValueError, match="forward_min_age_from"):
            dataclasses.replace(free, forward_min_age_from=1)


def test_forward_min_age_from_is_checked_when_the_config_is_resolved():
    from gradtune.errors import ConfigError
    from gradtune.train.config import load_config

    forward = ["guidance.horizon=forward"]
    with pytest.raises(ConfigError, match=r"guidance\.forward_min_age_from.*forward_min_age > 0"):
        load_config(None, [*forward, "guidance.forward_min_age_from=100"])
    with pytest.raises(ConfigError, match=r"guidance\.forward_min_age_from.*≥ 0"):
        load_config(None, [*forward, "guidance.forward_min_age=20", "guidance.forward_min_age_from=-1"])
    cfg = load_config(None, [*forward, "guidance.forward_min_age=20", "guidance.forward_min_age_from=100"])
    assert cfg.guidance.forward_min_age_from == 100


def test_with_forward_max_age_a_tangent_restarts_after_that_many_steps():
    """``forward_max_age = 2`` (with ``forward_min_age = 1``): the ages run 1, 2, 0, 1, 2; at the
    third step the tangent restarts from 0 in every leaf, counted in ``tangents_reset``, and the
    meta step is withheld (age 0 < 1); the fourth step's tangent is the one a free trainer carries
    from a zero tangent through the same update (exactly). A limit not above the minimum age is
    refused (no meta step would ever be taken)."""
    with jax.enable_x64(True):
        free, start = transformer_trainer(specs=SPECS[:1], meta_lr=1e-2, forward_decay=0.99, toy=True)
        trainer = dataclasses.replace(free, forward_min_age=1, forward_max_age=2)
        state = trainer.init(start.params, jnp.float64)
        rng = np.random.default_rng(4)
        step = jax.jit(trainer.guided_step)
        for i in range(5):
            batch, guide, key = random_batch(rng, 3, 12, VOCAB), random_batch(rng, 2, 12, VOCAB), jax.random.key(i)
            new, metrics, _ = step(state, batch, guide, key)
            assert int(new.tangents.age[0]) == [1, 2, 0, 1, 2][i]
            assert int(metrics["tangents_reset"]) == (i == 2) and int(metrics["meta_step_withheld"]) == (i == 2)
            assert (new.raw["learning_rate"] != state.raw["learning_rate"]) == (i != 2)
            if i == 2:
                assert all(not np.any(leaf) for leaf in jax.tree.leaves((new.tangents.params, new.tangents.opt_state)))
            if i == 3:
                zero = jax.tree.map(jnp.zeros_like, state.tangents._replace(age=()))
                _, _, expected, _, _ = jax.jit(functools.partial(propagate, free))(state, zero, batch, key)
                for a, b in zip(jax.tree.leaves((new.tangents.params, new.tangents.opt_state)),
                                jax.tree.leaves((expected.params, expected.opt_state)), strict=True):  # fmt: skip
                    np.testing.assert_array_equal(a, b)
            state = new
        with pytest.raises(ValueError, match="forward_max_age"):
            dataclasses.replace(free, forward_min_age=3, forward_max_age=3)


def test_with_hold_mean_from_the_held_values_are_the_mean_of_the_guided_ones():
    """``hold_mean_from = 2``: after four guided steps (steps 0–3), a held step takes each raw
    value at its mean over the values steps 2 and 3 left (known answer, rtol 1e-12, float64),
    keeps it in the state, and updates the model exactly as a held step of a trainer without the
    switch whose values were set to that mean; a second held step keeps the same values."""
    with jax.enable_x64(True):
        free, start = transformer_trainer(specs=SPECS[:2], meta_lr=3e-2, forward_decay=0.99, toy=True)
        trainer = dataclasses.replace(free, hold_mean_from=2)
        state = trainer.init(start.params, jnp.float64)
        rng = np.random.default_rng(5)
        step, seen = jax.jit(trainer.guided_step), []
        for i in range(4):
            batch, guide = random_batch(rng, 3, 12, VOCAB), random_batch(rng, 2, 12, VOCAB)
            state, _, _ = step(state, batch, guide, jax.random.key(i))
            seen.append({k: float(v) for k, v in state.raw.items()})
        assert int(state.tangents.value_count) == 2
        mean = {k: (seen[2][k] + seen[3][k]) / 2 for k in seen[0]}
        assert all(seen[3][k] != mean[k] for k in mean)  # the values moved: the mean is not the last
        batch, key = random_batch(rng, 3, 12, VOCAB), jax.random.key(9)
        held, _, _ = jax.jit(trainer.held_step)(state, batch, key)
        for k in mean:
            np.testing.assert_allclose(float(held.raw[k]), mean[k], rtol=1e-12)
        free_state = state._replace(raw=held.raw, tangents=free.init(start.params, jnp.float64).tangents)
        expected, _, _ = jax.jit(free.held_step)(free_state, batch, key)
        for a, b in zip(jax.tree.leaves((held.params, held.opt_state)),
                        jax.tree.leaves((expected.params, expected.opt_state)), strict=True):  # fmt: skip
            np.testing.assert_array_equal(a, b)
        again, _, _ = jax.jit(trainer.held_step)(held, batch, key)
        for k in mean:
            assert float(again.raw[k]) == float(held.raw[k])
        with pytest.raises(ValueError, match="hold_mean_from"):
            dataclasses.replace(free, forward_decay=None, hold_mean_from=2)


def test_a_tangent_longer_than_the_bound_restarts_from_zero():
    """``tangent_ratio/NAME`` is ‖Z_θ‖ / ‖θ'‖ (known answer: the norms taken here, rtol 1e-12);
    a bound between two values' ratios zeroes the longer tangent alone (parameters and
    optimizer state), counted in ``tangents_reset``, and leaves the update as it was."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(7)
        specs = SPECS[:2]  # the learning rate and b1: two rows of tangents
        free, state = transformer_trainer(specs=specs, forward_decay=0.99, toy=True)
        carry = jax.jit(functools.partial(propagate, free))
        for i in range(2):  # some history in the tangents
            params, opt_state, tangents, _, _ = carry(state, state.tangents, random_batch(rng, 3, 12, VOCAB),
                                                      jax.random.key(i))  # fmt: skip
            state = state._replace(step=state.step + 1, params=params, opt_state=opt_state, tangents=tangents)
        batch, key = random_batch(rng, 3, 12, VOCAB), jax.random.key(5)
        params, opt_state, tangents, metrics, _ = carry(state, state.tangents, batch, key)
        norm = float(optax.tree.norm(params))
        ratios = [float(optax.tree.norm(jax.tree.map(lambda t, i=i: t[i], tangents.params))) / norm for i in range(2)]
        for spec, ratio in zip(specs, ratios, strict=True):
            np.testing.assert_allclose(metrics[f"tangent_ratio/{spec.name}"], ratio, rtol=1e-12)
        assert int(metrics["tangents_reset"]) == 0 and ratios[0] != ratios[1] and min(ratios) > 0
        longer = int(np.argmax(ratios))
        bounded = dataclasses.replace(free, forward_bound=sum(ratios) / 2)
        b_params, b_opt_state, b_tangents, b_metrics, _ = jax.jit(functools.partial(propagate, bounded))(
            state, state.tangents, batch, key
        )
        assert int(b_metrics["tangents_reset"]) == 1
        assert all(bool(jnp.any(leaf[longer] != 0)) for leaf in jax.tree.leaves(tangents.params))
        for leaf, b_leaf in zip(jax.tree.leaves(tangents), jax.tree.leaves(b_tangents), strict=True):
            np.testing.assert_array_equal(b_leaf[longer], np.zeros_like(leaf[longer]))
            np.testing.assert_array_equal(b_leaf[1 - longer], leaf[1 - longer])
        for a, b in zip(jax.tree.leaves((params, opt_state)), jax.tree.leaves((b_params, b_opt_state)), strict=True):
            np.testing.assert_array_equal(a, b)  # the model's update is the same


def test_with_forward_restart_rescale_a_long_tangent_is_shrunk_to_the_bound_and_a_non_finite_one_zeroed():
    """``forward_restart = "rescale"``: the tangent past the bound is the free one times
    bound / ratio in every leaf (parameters and optimizer state; rtol 1e-12), so its length is
    the bound exactly; the other value's tangent and the update are untouched; one poisoned
    (NaN) tangent still restarts from 0."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(8)
        specs = SPECS[:2]
        free, state = transformer_trainer(specs=specs, forward_decay=0.99, toy=True)
        carry = jax.jit(functools.partial(propagate, free))
        for i in range(2):
            params, opt_state, tangents, _, _ = carry(state, state.tangents, random_batch(rng, 3, 12, VOCAB),
                                                      jax.random.key(i))  # fmt: skip
            state = state._replace(step=state.step + 1, params=params, opt_state=opt_state, tangents=tangents)
        batch, key = random_batch(rng, 3, 12, VOCAB), jax.random.key(5)
        params, opt_state, tangents, metrics, _ = carry(state, state.tangents, batch, key)
        ratios = [float(metrics[f"tangent_ratio/{spec.name}"]) for spec in specs]
        longer, bound = int(np.argmax(ratios)), sum(ratios) / 2
        assert ratios[longer] > bound > ratios[1 - longer] > 0
        rescale = dataclasses.replace(free, forward_bound=bound, forward_restart="rescale")
        step = jax.jit(functools.partial(propagate, rescale))
        r_params, r_opt_state, r_tangents, r_metrics, _ = step(state, state.tangents, batch, key)
        assert int(r_metrics["tangents_reset"]) == 1
        for leaf, r_leaf in zip(jax.tree.leaves(tangents), jax.tree.leaves(r_tangents), strict=True):
            np.testing.assert_allclose(r_leaf[longer], leaf[longer] * (bound / ratios[longer]), rtol=1e-12)
            np.testing.assert_array_equal(r_leaf[1 - longer], leaf[1 - longer])
        length = float(optax.tree.norm(jax.tree.map(lambda t: t[longer], r_tangents.params)))
        np.testing.assert_allclose(length / float(optax.tree.norm(r_params)), bound, rtol=1e-12)
        for a, b in zip(jax.tree.leaves((params, opt_state)), jax.tree.leaves((r_params, r_opt_state)), strict=True):
            np.testing.assert_array_equal(a, b)

        poisoned = jax.tree.map(lambda t: t.at[1 - longer].set(jnp.nan), state.tangents)
        _, _, p_tangents, p_metrics, _ = step(state, poisoned, batch, key)
        assert int(p_metrics["tangents_reset"]) == 2  # the NaN one zeroed, the long one rescaled
        for leaf in jax.tree.leaves(p_tangents):
            np.testing.assert_array_equal(leaf[1 - longer], np.zeros_like(leaf[1 - longer]))
            assert np.all(np.isfinite(leaf[longer]))
        with pytest.raises(ValueError, match="forward_restart is 'clip'"):
            dataclasses.replace(free, forward_restart="clip")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("average", "min_age", "max_age", "hold"), [("0", "0", "0", ()), ("0.9", "2", "4", ("4", "2"))]
)
def test_a_forward_mode_run_resumes_exactly_with_its_tangents(tmp_path, average, min_age, max_age, hold):
    """`guidance.horizon = forward` end to end: the tangents (and with ``guide_average`` the
    parameters' running average and its tangent, with ``forward_min_age`` and ``forward_max_age``
    their ages, with ``hold_mean_from`` the values' sums, held at their mean from step 4 on) are
    checkpointed, so a run stopped after 4 steps and resumed ends bit for bit as the run that
    went straight on."""
    from conftest import TINY

    from gradtune.cli.main import main
    from gradtune.train.setup import load_run

    run = ["--config", TINY[1], "--quiet", "--set", "horizon=forward", "--set", "guided=learning_rate",
           "--set", "eval_every=4", "--set", "checkpoint_every=4", "--set", "bleu_examples=2",
           "--set", "guidance.warmup_steps=1", "--set", "guide_every=2",
           "--set", f"guide_average={average}", "--set", f"forward_min_age={min_age}",
           "--set", f"forward_max_age={max_age}"]  # fmt: skip
    if hold:
        run += ["--set", f"until_step={hold[0]}", "--set", f"hold_mean_from={hold[1]}"]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert main(["train", "--run-dir", str(straight), "--steps", "8", *run]) == 0
    assert main(["train", "--run-dir", str(stopped), "--steps", "4", *run]) == 0
    assert main(["train", "--resume", str(stopped), "--steps", "8", "--quiet"]) == 0
    a, b = load_run(straight).state, load_run(stopped).state
    assert int(a.step) == 8 and jax.tree.structure(a.tangents) == jax.tree.structure(b.tangents)
    assert bool(jnp.any(jax.tree.leaves(a.tangents)[0] != 0))  # the tangents were carried and saved
    weight = a.tangents.average_weight  # () without an average, else 1 − 0.9^k after k averaged steps
    assert weight == () if average == "0" else 0.1 <= float(weight) < 1
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert (
        main(["train", "--run-dir", str(tmp_path / "bad"), "--steps", "2", *run, "--set", "guided=corpus_weights"]) == 1
    )


@pytest.mark.slow
def test_after_until_step_the_values_are_held_at_a_plain_steps_cost(tmp_path):
    """``guidance.until_step = 3`` of 6 forward-mode steps: three guided steps move the value,
    then it stays where they left it, and the last three are held steps, which carry no
    tangents (left as step 3 wrote them) and cost what a plain step costs."""
    from conftest import TINY

    from gradtune.cli.main import main
    from gradtune.train.logbook import read_metrics
    from gradtune.train.setup import load_run

    run_dir = tmp_path / "run"
    assert main(["train", "--run-dir", str(run_dir), "--steps", "6", *TINY, "--set", "horizon=forward",
                 "--set", "guided=learning_rate", "--set", "guidance.until_step=3", "--set", "eval_every=3",
                 "--set", "checkpoint_every=3", "--set", "bleu_examples=2", "--set", "log_every=1",
                 "--set", "guidance.meta_learning_rate=0.1"]) == 0  # fmt: skip
    values = [r["value/learning_rate"] for r in read_metrics(run_dir) if "value/learning_rate" in r]
    assert len(values) == 6 and values[2] != values[0] and values[3] == values[4] == values[5]
    assert all("hypergrad/learning_rate" in r for r in read_metrics(run_dir)[:3] if "train_loss" in r)
    compute = json.loads((run_dir / "summary.json").read_text())["compute"]
    assert compute["guided_steps"] == 3 and compute["plain_steps"] == 3
    assert compute["plain_flops"] < compute["guided_flops"] / 2  # a forward step is ~4× a plain one
    at_3, at_6 = load_run(run_dir, "3").state, load_run(run_dir).state
    for a, b in zip(jax.tree.leaves(at_3.tangents), jax.tree.leaves(at_6.tangents), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_horizon_is_checked_when_the_config_is_resolved():
    from gradtune.errors import ConfigError
    from gradtune.train.config import load_config

    assert load_config(None, ["guidance.horizon=forward", "guided=learning_rate,b1"]).guidance.forward_decay == 0.99
    with pytest.raises(ConfigError, match="scalar values only; corpus_weights"):
        load_config(None, ["guidance.horizon=forward", "guided=learning_rate,corpus_weights"])
    with pytest.raises(ConfigError, match=r"guidance\.horizon"):
        load_config(None, ["guidance.horizon=sideways"])
    with pytest.raises(ConfigError, match=r"guidance\.forward_decay"):
        load_config(None, ["guidance.horizon=forward", "guidance.forward_decay=1.5"])
    with pytest.raises(ConfigError, match=r"guidance\.forward_bound"):
        load_config(None, ["guidance.horizon=forward", "guidance.forward_bound=0"])
    for until in (-1, 5, 601):  # after guidance's own warm-up (5 steps), within the run (600)
        with pytest.raises(ConfigError, match=r"guidance\.until_step"):
            load_config(None, [f"guidance.until_step={until}", "guidance.warmup_steps=5", "train.steps=600"])
    assert load_config(None, ["guidance.until_step=600", "train.steps=600"]).guidance.until_step == 600


def test_a_checkpoint_from_before_the_tangents_field_still_restores(tmp_path):
    """Checkpoints written before ``TrainState.tangents`` existed lack it: they restore, with () there."""
    import orbax.checkpoint as ocp

    from gradtune.train.checkpoint import checkpoint_dir, restore_arrays

    old = {"step": np.asarray(3, np.int32), "params": {"w": np.arange(4.0)}, "raw": {}}
    path = (checkpoint_dir(tmp_path) / "step_00000003").absolute()
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, old)
    restored = restore_arrays(tmp_path, 3, {**old, "tangents": ()})
    assert restored["tangents"] == () and restored["raw"] == {}
    np.testing.assert_array_equal(restored["params"]["w"], old["params"]["w"])


def test_in_the_base_warm_up_a_meta_step_may_only_lower_the_learning_rate():
    """``lower_lr_only_until``: before that step the learning rate's negative hypergradient
    (a larger rate looks better) counts as 0 and a positive one passes; other values and
    later steps are untouched (known answers); a guided step whose hypergradient says
    "larger" then leaves the rate exactly where it was (Adam's first step on a 0), one-step
    and forward alike, and still moves b1."""
    with jax.enable_x64(True):
        for forward_decay in (None, 0.99):
            free, state = transformer_trainer(specs=SPECS[:2], meta_lr=1e-2, forward_decay=forward_decay, toy=True)
            rule = dataclasses.replace(free, lower_lr_only_until=5)
            grads = {"learning_rate": jnp.asarray(-0.3), "b1": jnp.asarray(-0.2)}
            early, _ = rule.meta_hypergrads(grads, jnp.asarray(4))
            late, _ = rule.meta_hypergrads(grads, jnp.asarray(5))
            up, _ = rule.meta_hypergrads({**grads, "learning_rate": jnp.asarray(0.7)}, jnp.asarray(0))
            assert (float(early["learning_rate"]), float(early["b1"])) == (0.0, -0.2)
            assert (float(late["learning_rate"]), float(up["learning_rate"])) == (-0.3, 0.7)
            rng = np.random.default_rng(4)
            batch, guide = random_batch(rng, 3, 12, VOCAB), random_batch(rng, 2, 12, VOCAB)
            _, metrics, _ = jax.jit(free.guided_step)(state, batch, guide, jax.random.key(0))
            new, _, _ = jax.jit(rule.guided_step)(state, batch, guide, jax.random.key(0))
            assert float(metrics["hypergrad/learning_rate"]) < 0  # a random model: a larger step helps
            assert float(new.raw["learning_rate"]) == float(state.raw["learning_rate"])
            assert float(new.raw["b1"]) != float(state.raw["b1"])


def test_lower_lr_scale_multiplies_the_learning_rate_s_warm_up_meta_step_only():
    """``lower_lr_scale``: in the window of ``lower_lr_only_until`` the learning rate's meta step
    is that many times the unscaled one (rtol 1e-12, float64, random hypergradients); b1's step
    and every step after the window are the unscaled ones exactly."""
    with jax.enable_x64(True):
        free, state = transformer_trainer(specs=SPECS[:2], meta_lr=1e-2, toy=True)
        rule = dataclasses.replace(free, lower_lr_only_until=5)
        fast = dataclasses.replace(rule, lower_lr_scale=3.0)
        rng = np.random.default_rng(5)
        grads = {"learning_rate": jnp.asarray(abs(rng.normal())), "b1": jnp.asarray(rng.normal())}
        for step, scale in ((4, 3.0), (5, 1.0)):
            at = state._replace(step=jnp.asarray(step, jnp.int32))
            cleaned, _ = fast.meta_hypergrads(grads, at.step)
            plain, _ = rule.meta_update(cleaned, at)
            scaled, _ = fast.meta_update(cleaned, at)
            moved = {k: float(scaled[k] - at.raw[k]) for k in scaled}
            unscaled = {k: float(plain[k] - at.raw[k]) for k in plain}
            assert unscaled["learning_rate"] < 0  # a positive hypergradient lowers the rate
            np.testing.assert_allclose(moved["learning_rate"], scale * unscaled["learning_rate"], rtol=1e-12)
            assert moved["b1"] == unscaled["b1"]
    with pytest.raises(ValueError, match="lower_lr_scale"):
        dataclasses.replace(free, lower_lr_scale=0.0)


def test_lower_lr_scale_needs_the_warm_up_rule():
    from gradtune.errors import ConfigError
    from gradtune.train.config import load_config

    with pytest.raises(ConfigError, match=r"guidance\.lower_lr_scale.*lower_lr_in_warmup"):
        load_config(None, ["guidance.lower_lr_in_warmup=false", "guidance.lower_lr_scale=3"])
    with pytest.raises(ConfigError, match=r"guidance\.lower_lr_scale.*> 0"):
        load_config(None, ["guidance.lower_lr_in_warmup=true", "guidance.lower_lr_scale=-1"])
    cfg = load_config(None, ["guidance.lower_lr_in_warmup=true", "guidance.lower_lr_scale=3"])
    assert cfg.guidance.lower_lr_scale == 3


def test_lower_lr_mask_step_withholds_raising_steps_and_keeps_the_meta_state():
    """``lower_lr_mask = "step"``: the meta optimizer sees every hypergradient, so its state is
    exactly the one without the rule (float64, random hypergradients of both signs); in the
    window a raising step of the learning rate is withheld and a lowering one is taken ×
    ``lower_lr_scale`` (rtol 1e-12); b1's step and every step after the window are the free
    rule's exactly. The hypergradient mask instead feeds Adam a 0."""
    with jax.enable_x64(True):
        free, state = transformer_trainer(specs=SPECS[:2], meta_lr=1e-2, toy=True)
        step_rule = dataclasses.replace(free, lower_lr_only_until=5, lower_lr_mask="step", lower_lr_scale=3.0)
        grad_rule = dataclasses.replace(free, lower_lr_only_until=5)
        rng = np.random.default_rng(6)
        for sign in (-1.0, 1.0):  # −: a larger rate looks better (a raising step), +: a lowering one
            grads = {"learning_rate": jnp.asarray(sign * abs(rng.normal())), "b1": jnp.asarray(rng.normal())}
            for step in (4, 5):
                at = state._replace(step=jnp.asarray(step, jnp.int32))
                want, want_meta = free.meta_update(free.meta_hypergrads(grads, at.step)[0], at)
                cleaned, _ = step_rule.meta_hypergrads(grads, at.step)
                assert float(cleaned["learning_rate"]) == float(grads["learning_rate"])  # nothing zeroed
                got, got_meta = step_rule.meta_update(cleaned, at)
                for a, b in zip(jax.tree.leaves(got_meta), jax.tree.leaves(want_meta), strict=True):
                    np.testing.assert_array_equal(a, b)
                free_step = float(want["learning_rate"] - at.raw["learning_rate"])
                moved = float(got["learning_rate"] - at.raw["learning_rate"])
                assert np.sign(free_step) == -sign
                if step == 5:
                    assert moved == free_step
                elif sign < 0:
                    assert moved == 0.0
                else:
                    np.testing.assert_allclose(moved, 3.0 * free_step, rtol=1e-12)
                assert float(got["b1"]) == float(want["b1"])
            zeroed, _ = grad_rule.meta_hypergrads(grads, jnp.asarray(4))
            assert float(zeroed["learning_rate"]) == (0.0 if sign < 0 else float(grads["learning_rate"]))
    with pytest.raises(ValueError, match="lower_lr_mask"):
        dataclasses.replace(free, lower_lr_mask="sideways")


def test_lower_lr_above_lets_a_multiplier_below_it_rise_in_the_warm_up():
    """``lower_lr_above``: in the window of ``lower_lr_only_until`` the rule holds only while
    the multiplier (1.3 here) is at least that: below it the hypergradients, meta state and
    steps are the free rule's exactly, both masks (float64, random hypergradients of both
    signs; a lowering step is not scaled by ``lower_lr_scale`` there); above it, the plain
    rule's exactly, a lowering step × ``lower_lr_scale``. A guided step whose hypergradient
    says "larger" then raises the rate below it and leaves it where it was above it."""
    with jax.enable_x64(True):
        free, state = transformer_trainer(specs=SPECS[:2], meta_lr=1e-2, toy=True)
        rng = np.random.default_rng(7)
        for mask in ("hypergradient", "step"):
            plain = dataclasses.replace(free, lower_lr_only_until=5, lower_lr_mask=mask, lower_lr_scale=3.0)
            for above, holds in ((2.0, False), (1.0, True), (0.5, True)):
                rule = dataclasses.replace(plain, lower_lr_above=above)
                want = plain if holds else free
                for sign in (-1.0, 1.0):
                    grads = {"learning_rate": jnp.asarray(sign * abs(rng.normal())), "b1": jnp.asarray(rng.normal())}
                    at = state._replace(step=jnp.asarray(4, jnp.int32))
                    got_g, _ = rule.meta_hypergrads(grads, at.step, at.raw)
                    want_g, _ = want.meta_hypergrads(grads, at.step, at.raw)
                    assert {k: float(v) for k, v in got_g.items()} == {k: float(v) for k, v in want_g.items()}
                    got, got_meta = rule.meta_update(got_g, at)
                    ref, ref_meta = want.meta_update(want_g, at)
                    for a, b in zip(jax.tree.leaves((got, got_meta)), jax.tree.leaves((ref, ref_meta)), strict=True):
                        np.testing.assert_array_equal(a, b)  # the plain rule's, or the free one's
                    if holds and sign > 0:  # a lowering step where it holds: the free one × lower_lr_scale
                        free_raw, _ = free.meta_update(free.meta_hypergrads(grads, at.step, at.raw)[0], at)
                        moved = float(got["learning_rate"] - at.raw["learning_rate"])
                        free_step = float(free_raw["learning_rate"] - at.raw["learning_rate"])
                        assert free_step < 0
                        np.testing.assert_allclose(moved, 3.0 * free_step, rtol=1e-12)
        with pytest.raises(ValueError, match="needs the raw values"):
            dataclasses.replace(free, lower_lr_only_until=5, lower_lr_above=2.0).meta_hypergrads(grads, at.step)
        with pytest.raises(ValueError, match="lower_lr_above"):
            dataclasses.replace(free, lower_lr_above=-1.0)
        batch, guide = random_batch(rng, 3, 12, VOCAB), random_batch(rng, 2, 12, VOCAB)
        _, metrics, _ = jax.jit(free.guided_step)(state, batch, guide, jax.random.key(0))
        assert float(metrics["hypergrad/learning_rate"]) < 0  # a random model: a larger step helps
        for above, rises in ((2.0, True), (1.0, False)):
            rule = dataclasses.replace(free, lower_lr_only_until=5, lower_lr_above=above)
            new, _, _ = jax.jit(rule.guided_step)(state, batch, guide, jax.random.key(0))
            moved = float(new.raw["learning_rate"]) - float(state.raw["learning_rate"])
            assert moved > 0 if rises else moved == 0.0


def test_lower_lr_above_is_checked_when_the_config_is_resolved():
    from gradtune.errors import ConfigError
    from gradtune.train.config import load_config

    with pytest.raises(ConfigError, match=r"guidance\.lower_lr_above.*lower_lr_in_warmup"):
        load_config(None, ["guidance.lower_lr_in_warmup=false", "guidance.lower_lr_above=1"])
    with pytest.raises(ConfigError, match=r"guidance\.lower_lr_above.*≥ 0"):
        load_config(None, ["guidance.lower_lr_in_warmup=true", "guidance.lower_lr_above=-1"])
    cfg = load_config(None, ["guidance.lower_lr_in_warmup=true", "guidance.lower_lr_above=1"])
    assert cfg.guidance.lower_lr_above == 1


def test_lower_lr_mask_is_checked_when_the_config_is_resolved():
    from gradtune.errors import ConfigError
    from gradtune.train.config import load_config

    with pytest.raises(ConfigError, match=r"guidance\.lower_lr_mask.*lower_lr_in_warmup"):
        load_config(None, ["guidance.lower_lr_in_warmup=false", "guidance.lower_lr_mask=step"])
    with pytest.raises(ConfigError, match=r"guidance\.lower_lr_mask.*one of hypergradient, fresh, step"):
        load_config(None, ["guidance.lower_lr_in_warmup=true", "guidance.lower_lr_mask=both"])
    with pytest.raises(ConfigError, match=r"guidance\.lower_lr_mask.*guide_every = 1"):
        load_config(
            None, ["guidance.lower_lr_in_warmup=true", "guidance.lower_lr_mask=fresh", "guidance.guide_every=2"]
        )
    cfg = load_config(None, ["guidance.lower_lr_in_warmup=true", "guidance.lower_lr_mask=step"])
    assert cfg.guidance.lower_lr_mask == "step"


def test_lower_lr_mask_fresh_restarts_the_meta_state_after_the_window():
    """``lower_lr_mask = "fresh"``: the hypergradient rule's hypergradients and steps exactly
    (float64, random hypergradients), and after the window's last step the meta state is
    the optimizer's initial state (Adam's count and moments 0), so the next step is as large
    as a first step; before that step the state is the hypergradient rule's."""
    with jax.enable_x64(True):
        free, state = transformer_trainer(specs=SPECS[:2], meta_lr=1e-2, toy=True)
        grad_rule = dataclasses.replace(free, lower_lr_only_until=5, lower_lr_scale=3.0)
        fresh = dataclasses.replace(grad_rule, lower_lr_mask="fresh")
        rng = np.random.default_rng(7)
        at = state
        for step in range(6):
            at = at._replace(step=jnp.asarray(step, jnp.int32))
            grads = {"learning_rate": jnp.asarray(rng.normal()), "b1": jnp.asarray(rng.normal())}
            cleaned, _ = fresh.meta_hypergrads(grads, at.step)
            want_cleaned, _ = grad_rule.meta_hypergrads(grads, at.step)
            assert {k: float(v) for k, v in cleaned.items()} == {k: float(v) for k, v in want_cleaned.items()}
            raw, meta = fresh.meta_update(cleaned, at)
            want_raw, want_meta = grad_rule.meta_update(cleaned, at)
            assert {k: float(v) for k, v in raw.items()} == {k: float(v) for k, v in want_raw.items()}
            expected = fresh.meta_optimizer.init(raw) if step == 4 else want_meta
            for a, b in zip(jax.tree.leaves(meta), jax.tree.leaves(expected), strict=True):
                np.testing.assert_array_equal(a, b)
            if step == 4:
                assert any(np.any(np.asarray(leaf) != 0) for leaf in jax.tree.leaves(want_meta))  # a real restart
            at = at._replace(raw=raw, meta_state=meta)
