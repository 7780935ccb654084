import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gradtune.seq2seq.loss import masked_mean, output_token_losses, token_losses
from gradtune.seq2seq.model import Linear, ModelConfig, Transformer

CFG = ModelConfig(vocab_size=50, d_model=32, num_heads=4, mlp_dim=64, encoder_layers=2, decoder_layers=2, dropout=0.0)


def _row(src, tgt, length):
    """One example alone in a row: arrays of shape (1, length)."""
    b = {
        k: np.zeros((1, length), np.int32)
        for k in ("src", "src_seg", "src_pos", "tgt_in", "tgt_out", "tgt_seg", "tgt_pos")
    }
    b["src"][0, : len(src)], b["src_seg"][0, : len(src)], b["src_pos"][0, : len(src)] = src, 1, np.arange(len(src))
    b["tgt_out"][0, : len(tgt)], b["tgt_seg"][0, : len(tgt)], b["tgt_pos"][0, : len(tgt)] = tgt, 1, np.arange(len(tgt))
    b["tgt_in"][0, 0], b["tgt_in"][0, 1 : len(tgt)] = 2, tgt[:-1]
    return b


def test_packed_examples_do_not_see_each_other():
    """Logits of two examples packed in one row equal their logits alone in a row."""
    rng = np.random.default_rng(0)
    model = Transformer(CFG, nnx.Rngs(0))
    (s1, t1), (s2, t2) = [(rng.integers(4, 50, n), rng.integers(4, 50, m)) for n, m in ((5, 4), (6, 7))]
    a, b = _row(s1, t1, 16), _row(s2, t2, 16)
    packed = _row(np.concatenate([s1, s2]), np.concatenate([t1, t2]), 16)
    packed["src_seg"][0, 5:11], packed["src_pos"][0, 5:11] = 2, np.arange(6)
    packed["tgt_seg"][0, 4:11], packed["tgt_pos"][0, 4:11] = 2, np.arange(7)
    packed["tgt_in"][0, 4], packed["tgt_in"][0, 5:11] = 2, t2[:-1]
    logits = model(packed)
    np.testing.assert_allclose(logits[0, :4], model(a)[0, :4], atol=1e-5)
    np.testing.assert_allclose(logits[0, 4:11], model(b)[0, :7], atol=1e-5)


def test_padding_never_counts_in_the_loss():
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.normal(size=(2, 6, 50)), jnp.float32)
    targets = jnp.asarray([[5, 6, 7, 0, 0, 0], [8, 9, 0, 0, 0, 0]])
    loss, count = masked_mean(token_losses(logits, targets, 0.1), targets)
    noisy = logits.at[:, 3:].set(100.0 * jnp.asarray(rng.normal(size=(2, 3, 50)), jnp.float32))
    noisy = noisy.at[1, 2].set(-50.0)
    loss2, _ = masked_mean(token_losses(noisy, targets, 0.1), targets)
    assert int(count) == 5
    np.testing.assert_allclose(loss, loss2, rtol=1e-6)


def test_label_smoothed_loss_matches_its_definition():
    rng = np.random.default_rng(2)
    logits = jnp.asarray(rng.normal(size=(3, 10)))
    targets = jnp.asarray([1, 4, 9])
    logp = jax.nn.log_softmax(logits)
    expected = 0.8 * -logp[jnp.arange(3), targets] + 0.2 * -logp.mean(-1)
    np.testing.assert_allclose(token_losses(logits, targets, 0.2), expected, rtol=1e-6)


def test_output_losses_from_states_match_losses_from_logits():
    """Values and gradients (states, embedding, label smoothing) in float64 on random inputs, rtol 1e-10."""
    rng = np.random.default_rng(3)
    with jax.enable_x64():
        hidden = jnp.asarray(rng.normal(size=(2, 5, 8)))
        embedding = jnp.asarray(rng.normal(size=(30, 8)))
        targets = jnp.asarray(rng.integers(0, 30, (2, 5)))

        def from_states(h, e, eps):
            return jnp.sum(output_token_losses(h, e, targets, eps) * jnp.arange(1.0, 6.0))

        def from_logits(h, e, eps):
            return jnp.sum(token_losses(h @ e.T, targets, eps) * jnp.arange(1.0, 6.0))

        np.testing.assert_allclose(  # a Python 0.0 takes the unsmoothed shortcut
            output_token_losses(hidden, embedding, targets, 0.0),
            token_losses(hidden @ embedding.T, targets),
            rtol=1e-10,
        )
        for eps in (0.0, 0.3):
            args = (hidden, embedding, jnp.float64(eps))
            np.testing.assert_allclose(from_states(*args), from_logits(*args), rtol=1e-10)
            grads = jax.grad(from_states, argnums=(0, 1, 2))(*args)
            expected = jax.grad(from_logits, argnums=(0, 1, 2))(*args)
            for got, want in zip(grads, expected, strict=True):
                np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_linear_is_nnx_linear_on_inputs_of_any_rank():
    """Same parameters and outputs as ``nnx.Linear`` (only the matrix product's shape differs)."""
    ours, theirs = Linear(8, 5, rngs=nnx.Rngs(0)), nnx.Linear(8, 5, rngs=nnx.Rngs(0))
    assert jax.tree.map(jnp.shape, nnx.state(ours)) == jax.tree.map(jnp.shape, nnx.state(theirs))
    rng = np.random.default_rng(4)
    for shape in ((8,), (3, 8), (2, 1, 8), (2, 3, 4, 8), (0, 3, 8)):
        x = jnp.asarray(rng.normal(size=shape), jnp.float32)
        np.testing.assert_allclose(ours(x), theirs(x), rtol=1e-6, atol=1e-6)
        assert ours(x).shape == (*shape[:-1], 5)


def test_dropout_uses_the_given_key_only():
    model = Transformer(
        ModelConfig(
            vocab_size=50, d_model=32, num_heads=4, mlp_dim=64, encoder_layers=1, decoder_layers=1, dropout=0.3
        ),
        nnx.Rngs(0),
    )
    batch = _row(np.arange(4, 9), np.arange(10, 16), 8)
    k1, k2 = jax.random.key(1), jax.random.key(2)
    np.testing.assert_array_equal(model(batch, k1), model(batch, k1))
    assert not np.allclose(model(batch, k1), model(batch, k2))
    np.testing.assert_array_equal(model(batch), model(batch))
