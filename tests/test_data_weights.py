"""Data weights: per-token gathering, mean-1 normalisation, non-zero hypergradients for
single-corpus batches, lazy Adam rows, ids in batches, config and outputs."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from gradtune.core import Activation, GuidedSpec, GuidedTrainer, make_optimizer, meta_optimizer
from gradtune.core.data_weights import data_weight_spec, rows_present, token_weights
from gradtune.core.guided import lazy_adam
from gradtune.data.batching import pack
from gradtune.data.corpora import Example
from gradtune.errors import ConfigError, DataError
from gradtune.experiments.check_hypergrads import random_batch
from gradtune.seq2seq.model import ModelConfig, Transformer
from gradtune.seq2seq.objectives import DATA_WEIGHTS, make_losses, make_rows_present
from gradtune.train.config import Config, DataConfig
from gradtune.train.data_weights import data_tags, example_weights, length_buckets
from gradtune.train.guidance import build_trainer
from gradtune.train.resolve import resolve


def test_token_weights_are_the_product_of_each_tokens_rows():
    rng = np.random.default_rng(0)
    ids = {"corpus": rng.integers(0, 3, (4, 10)), "bucket": rng.integers(0, 5, (4, 10))}
    values = {"corpus_weights": rng.uniform(0.1, 2, 3), "bucket_weights": rng.uniform(0.1, 2, 5)}
    gather = {"corpus_weights": "corpus", "bucket_weights": "bucket", "example_weights": "example"}
    got = token_weights({k: jnp.asarray(v) for k, v in values.items()}, ids, gather)
    expected = values["corpus_weights"][ids["corpus"]] * values["bucket_weights"][ids["bucket"]]
    np.testing.assert_allclose(got, expected, rtol=1e-6)  # float32
    assert token_weights({"learning_rate": jnp.ones(())}, ids, gather) is None
    with pytest.raises(ValueError, match="no example ids"):
        token_weights({"example_weights": jnp.ones(3)}, ids, gather)


def test_rows_present_ignores_masked_tokens():
    ids = jnp.array([[0, 2, 2, 5], [1, 1, 0, 0]])
    mask = jnp.array([[True, True, True, False], [True, True, False, False]])
    assert rows_present(ids, mask, 7).tolist() == [True, True, True, False, False, False, False]


@pytest.mark.parametrize("activation", [Activation("exp"), Activation("sigmoid", 0.0, 2.0)])
@pytest.mark.parametrize("kind", ["corpus", "example"])
def test_weights_have_mean_one_under_the_token_shares(kind, activation):
    rng = np.random.default_rng(1)
    counts = rng.integers(1, 100, 6)
    spec = data_weight_spec(f"{kind}_weights", counts, activation, lazy=kind == "example")
    raw = jnp.asarray(rng.normal(size=6), jnp.float32)
    weights = spec.value(raw)
    assert float(jnp.sum(weights * counts) / counts.sum()) == pytest.approx(1.0, rel=1e-6)
    # Corpus weights are differentiated through their normaliser: the mean has zero gradient.
    # Example weights hold it constant, so the mean's gradient is act'(r)·f / Z, not zero.
    grad = jax.grad(lambda r: jnp.sum(spec.value(r) * counts) / counts.sum())(raw)
    if spec.lazy:
        assert float(jnp.min(jnp.abs(grad))) > 1e-4
    else:
        np.testing.assert_allclose(grad, 0.0, atol=1e-6)


def test_bad_token_counts_are_errors():
    with pytest.raises(ValueError, match="non-negative token counts"):
        data_weight_spec("corpus_weights", [0, 0])


def _tiny_trainer(specs, loss_by_total_weight=False):
    cfg = ModelConfig(vocab_size=40, d_model=16, num_heads=2, mlp_dim=32, encoder_layers=1, decoder_layers=1)
    graphdef, params = nnx.split(Transformer(cfg, nnx.Rngs(0)))
    train_loss, guide_loss, _ = make_losses(graphdef)
    if loss_by_total_weight:  # the wrong normalisation, for comparison

        def train_loss(params, batch, key, values, _inner=train_loss):
            from gradtune.seq2seq.loss import token_losses
            from gradtune.seq2seq.objectives import data_ids

            logits = nnx.merge(graphdef, params)(batch, key)
            losses = token_losses(logits, batch["tgt_out"])
            w = token_weights(values, data_ids(batch), DATA_WEIGHTS) * (batch["tgt_out"] != 0)
            return jnp.sum(w * losses) / jnp.sum(w), {"tokens": jnp.sum(batch["tgt_out"] != 0)}

    lazy = {s.name: s.shape[0] for s in specs if s.lazy}
    trainer = GuidedTrainer(
        train_loss, guide_loss, make_optimizer("adamw", {}), lambda step: 1e-2, tuple(specs),
        meta_optimizer(specs), {}, make_rows_present(lazy) if lazy else None,
    )  # fmt: skip
    return trainer, trainer.init(params)


def test_a_batch_of_one_corpus_and_one_bucket_still_has_hypergradients():
    rng = np.random.default_rng(2)
    specs = [data_weight_spec("corpus_weights", [30, 70]), data_weight_spec("bucket_weights", [10, 20, 30, 40])]
    sizes = {"corpus": 2, "bucket": 4, "example": 10}
    warmup = [(random_batch(rng, 3, 12, 40, sizes), random_batch(rng, 2, 12, 40)) for _ in range(3)]
    batch = random_batch(rng, 3, 12, 40, sizes)
    batch["tgt_corpus"][:] = 1  # every token from corpus 1 …
    batch["tgt_bucket"][:] = 2  # … and from bucket 2
    guide = random_batch(rng, 2, 12, 40)
    key = jax.random.key(0)

    def hypergradients(trainer, state):
        # AdamW's first step is invariant to a common scale of the gradient: a batch's
        # weights matter only relative to the moments of earlier steps, so warm up first.
        step = jax.jit(trainer.guided_step)
        for i, (b, g) in enumerate(warmup):
            state = step(state, b, g, jax.random.key(i + 1))[0]
        return jax.jit(trainer.hypergradients)(state, batch, guide, key)[1]

    grads = hypergradients(*_tiny_trainer(specs))
    for name in ("corpus_weights", "bucket_weights"):
        assert np.all(np.abs(np.asarray(grads[name])) > 1e-5), (name, grads[name])
    # Divided by the batch's total weight instead, the same hypergradients all but vanish.
    wrong_grads = hypergradients(*_tiny_trainer(specs, loss_by_total_weight=True))
    for name in ("corpus_weights", "bucket_weights"):
        assert np.max(np.abs(wrong_grads[name])) < 1e-3 * np.min(np.abs(grads[name]))


def test_lazy_adam_moves_only_present_rows_each_as_adam_on_its_own_steps():
    rng = np.random.default_rng(3)
    n, steps, lr = 5, 8, 0.1
    lazy = lazy_adam(lr)
    state, raw = lazy.init(jnp.zeros(n)), np.zeros(n)
    grads = rng.normal(size=(steps, n))
    present = rng.random((steps, n)) < 0.5
    present[:, 4] = False  # a row never seen
    for t in range(steps):
        step, state = lazy.update(jnp.asarray(grads[t]), state, rows_present=jnp.asarray(present[t]))
        assert np.all(np.asarray(step)[~present[t]] == 0.0)
        raw = raw + np.asarray(step)
    moments = state[0]  # lazy_adam is chain(scale_by_lazy_adam, scale_by_learning_rate)
    assert raw[4] == 0.0 and float(moments.nu[4]) == 0.0 and int(moments.row_count[4]) == 0
    for row in range(4):  # optax.adam on the row's own subsequence of gradients
        adam = optax.adam(lr, eps=1e-12)
        ref, ref_state = jnp.zeros(1), adam.init(jnp.zeros(1))
        for g in grads[present[:, row], row]:
            update, ref_state = adam.update(jnp.array([g]), ref_state)
            ref = ref + update
        np.testing.assert_allclose(raw[row], float(ref[0]), rtol=1e-5, atol=1e-7)
        assert int(moments.row_count[row]) == present[:, row].sum()


def test_the_guided_step_leaves_absent_example_rows_untouched():
    rng = np.random.default_rng(4)
    specs = [data_weight_spec("example_weights", rng.integers(1, 20, 30), lazy=True)]
    specs[0] = GuidedSpec(**{**specs[0].__dict__, "meta_lr_scale": 10.0})
    trainer, state = _tiny_trainer(specs)
    batch, guide = random_batch(rng, 3, 12, 40, {"example": 30}), random_batch(rng, 2, 12, 40)
    key = jax.random.key(0)
    new, _, _ = jax.jit(trainer.guided_step)(state, batch, guide, key)
    present = np.zeros(30, bool)
    present[batch["tgt_example"][batch["tgt_out"] != 0]] = True
    moved = np.asarray(new.raw["example_weights"]) != np.asarray(state.raw["example_weights"])
    assert present.sum() >= 3 and np.array_equal(moved, present)
    # First step of the lazy Adam with a shared per-step scale: each present row moves by
    # −lr·meta_lr_scale·g / rms(g over the present rows): sizes kept, not just signs.
    g = np.asarray(jax.jit(trainer.hypergradients)(state, batch, guide, key)[1]["example_weights"])[present]
    expected = -3e-3 * 10 * g / np.sqrt(np.mean(g**2))
    np.testing.assert_allclose(np.asarray(new.raw["example_weights"])[present], expected, rtol=1e-4)


def test_lazy_adam_step_scale_keeps_the_sizes_of_hypergradients():
    lazy = lazy_adam(0.1, scale="step")
    state = lazy.init(jnp.zeros(4))
    grads = jnp.array([1e-6, -4e-6, 2e-6, 5.0])
    present = jnp.array([True, True, True, False])
    step, state = lazy.update(grads, state, rows_present=present)
    rms = np.sqrt(np.mean(np.array([1e-6, -4e-6, 2e-6]) ** 2))
    np.testing.assert_allclose(step, [-0.1e-6 / rms, 0.4e-6 / rms, -0.2e-6 / rms, 0.0], rtol=1e-5)
    with pytest.raises(ValueError, match="scale"):
        lazy_adam(0.1, scale="global")


def test_lazy_values_need_rows_present():
    spec = data_weight_spec("example_weights", [1, 2, 3], lazy=True)
    with pytest.raises(ValueError, match="rows_present"):
        GuidedTrainer(None, None, make_optimizer("sgd", {}), lambda s: 1.0, (spec,), meta_optimizer([spec]))


def test_batches_carry_each_target_tokens_ids_and_zero_at_padding():
    rng = np.random.default_rng(5)
    examples = [(rng.integers(4, 50, rng.integers(2, 9)), rng.integers(4, 50, rng.integers(2, 9))) for _ in range(20)]
    examples = [(s.astype(np.int32), t.astype(np.int32)) for s, t in examples]
    tags = {"corpus": rng.integers(0, 3, 20), "example": np.arange(20)}
    seen = set()
    for batch in pack(examples, range(20), 4, 16, tags):
        real = batch["tgt_out"] != 0
        assert np.all(batch["tgt_corpus"][~real] == 0) and np.all(batch["tgt_example"][~real] == 0)
        for row in range(4):
            for seg in set(batch["tgt_seg"][row][real[row]].tolist()):
                ids = set(batch["tgt_example"][row][batch["tgt_seg"][row] == seg].tolist())
                assert len(ids) == 1  # one example per segment
                (i,) = ids
                assert np.array_equal(batch["tgt_out"][row][batch["tgt_seg"][row] == seg], examples[i][1])
                assert set(batch["tgt_corpus"][row][batch["tgt_seg"][row] == seg].tolist()) == {tags["corpus"][i]}
                seen.add(i)
    assert seen == set(range(20))


def test_length_buckets_have_about_equal_counts_and_cover_every_length():
    lengths = np.random.default_rng(6).integers(2, 60, 1000)
    ids, names = length_buckets(lengths, 4)
    assert len(names) == 4 and set(ids.tolist()) == {0, 1, 2, 3}
    assert np.all(np.bincount(ids) > 200) and np.all(np.diff([lengths[ids == b].max() for b in range(4)]) > 0)


def test_tags_counts_and_group_buckets():
    examples = [Example("a b", "x y", "3", 0), Example("c", "z", "7", 1), Example("d", "w w", "3", 1)]
    encoded = [(np.zeros(2), np.zeros(3)), (np.zeros(1), np.zeros(2)), (np.zeros(1), np.zeros(3))]
    tags = data_tags(DataConfig(bucket_by="group"), examples, encoded, ["clean", "noisy"])
    assert tags.bucket_names == ["3", "7"] and tags.tags["bucket"].tolist() == [0, 1, 0]
    assert tags.counts["corpus"].tolist() == [3, 5] and tags.counts["bucket"].tolist() == [6, 2]
    weights = example_weights({"corpus_weights": [0.5, 2.0], "bucket_weights": [1.0, 3.0]}, tags)
    assert weights.tolist() == [0.5, 6.0, 2.0]
    with pytest.raises(DataError, match="integer third column"):
        data_tags(DataConfig(bucket_by="group"), [Example("a", "b", "chapter 1")], encoded[:1], ["c"])
    with pytest.raises(ConfigError, match=r"data\.bucket_by is 'size'; it must be one of length, group"):
        resolve(Config(data=DataConfig(bucket_by="size")))


def test_config_guides_data_weights_and_cycles_the_guide_batch():
    cfg = Config()
    cfg.guidance.guided = "learning_rate,corpus_weights,example_weights"
    cfg.guidance.specs = "example_weights:sigmoid,meta_lr=30"
    counts = {"corpus": np.array([10, 30]), "bucket": np.array([5, 5, 30]), "example": np.array([4, 6, 10, 20])}
    setup = build_trainer(cfg, None, None, counts)
    specs = {s.name: s for s in setup.trainer.specs}
    assert specs["corpus_weights"].shape == (2,) and specs["corpus_weights"].frequencies == (0.25, 0.75)
    assert specs["example_weights"].lazy and specs["example_weights"].activation.kind == "sigmoid"
    assert specs["example_weights"].meta_lr_scale == 30
    assert cfg.guidance.guide_batch == "auto"  # the builder never changes the config ...
    assert resolve(cfg).guidance.guide_batch == "cycle"  # ... resolve does: cycle when data weights are guided
    assert resolve(Config()).guidance.guide_batch == "fixed"
    cfg = Config()
    cfg.guidance.guided = "bucket_weights"
    with pytest.raises(ConfigError, match="carries no such ids"):
        build_trainer(cfg, None, None, None)


def test_the_meta_optimizer_steps_dense_values_by_its_base_and_lazy_rows_by_lazy_adam():
    rng = np.random.default_rng(6)
    dense = GuidedSpec("learning_rate", 1.0, meta_lr_scale=2.0)
    rows = GuidedSpec(**{**data_weight_spec("example_weights", [1, 2, 3, 4], lazy=True).__dict__, "meta_lr_scale": 5.0})
    meta = meta_optimizer([dense, rows], learning_rate=0.1, clip=0.5)
    adam, lazy = optax.adam(0.1), lazy_adam(0.1, scale="step")
    raw = {"learning_rate": jnp.zeros(()), "example_weights": jnp.zeros(4)}
    state, adam_state, lazy_state = meta.init(raw), adam.init(jnp.zeros(())), lazy.init(jnp.zeros(4))
    for _ in range(3):
        grads = {"learning_rate": jnp.asarray(rng.normal()), "example_weights": jnp.asarray(rng.normal(size=4))}
        present = jnp.asarray(rng.random(4) < 0.6)
        mask = {"learning_rate": jnp.ones((), bool), "example_weights": present}
        updates, state = meta.update(grads, state, raw, rows_present=mask)
        clipped = jax.tree.map(lambda g: jnp.clip(g, -0.5, 0.5), grads)
        want_dense, adam_state = adam.update(clipped["learning_rate"], adam_state)
        want_rows, lazy_state = lazy.update(clipped["example_weights"], lazy_state, rows_present=present)
        np.testing.assert_allclose(updates["learning_rate"], 2.0 * want_dense, rtol=1e-6)
        np.testing.assert_allclose(updates["example_weights"], 5.0 * want_rows, rtol=1e-6)
        assert np.all(np.asarray(updates["example_weights"])[~np.asarray(present)] == 0.0)
