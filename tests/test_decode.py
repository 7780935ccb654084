"""Beam search on a toy model with known probabilities, and the Transformer's cached decoder."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gradtune.seq2seq.decode import beam_search, length_penalty, translate_ids
from gradtune.seq2seq.model import ModelConfig, Transformer

VOCAB, EOS = 4, 3  # toy tokens: 0 padding (never emitted), 1 and 2 words, 3 EOS
CFG = ModelConfig(vocab_size=40, d_model=32, num_heads=4, mlp_dim=64, encoder_layers=2, decoder_layers=2, dropout=0.0)


def toy_table(probs: dict[tuple[int, ...], list[float]], max_len: int) -> np.ndarray:
    """log p(next | prefix) indexed by the prefix's code (base VOCAB digits); unlisted prefixes uniform."""
    table = np.full((VOCAB**max_len, VOCAB), np.log(1 / 3))
    table[:, 0] = -1e9
    for prefix, p in probs.items():
        code = sum(t * VOCAB**i for i, t in enumerate(reversed(prefix)))
        table[code, 1:] = np.log(p)
    return table


def toy_search(tables: np.ndarray, max_lengths, beam_size: int, alpha: float = 0.0):
    """Beam search over a toy model whose state is (example, prefix code): reordering is tested too."""
    tables = jnp.asarray(tables, jnp.float32)

    def step(tokens, position, state):
        example, code = state
        code = jnp.where(position == 0, 0, code * VOCAB + tokens)
        return tables[example, code], (example, code)

    batch = len(max_lengths)
    state = (jnp.repeat(jnp.arange(batch), beam_size), jnp.zeros(batch * beam_size, jnp.int32))
    tokens, scores = beam_search(
        step,
        state,
        jnp.asarray(max_lengths),
        beam_size=beam_size,
        max_len=max(max_lengths),
        bos_id=0,
        eos_id=EOS,
        alpha=alpha,
    )
    return np.asarray(tokens), np.asarray(scores)


def best_by_enumeration(table: np.ndarray, max_length: int, alpha: float = 0.0):
    """The exact best sequence (EOS forced at max_length) and its score, by trying every one."""
    best = (None, -np.inf)
    for n in range(max_length):
        for words in itertools.product((1, 2), repeat=n):
            seq, log_prob, code = [*words, EOS], 0.0, 0
            for t in seq:
                log_prob += table[code, t]
                code = code * VOCAB + t
            score = log_prob / float(length_penalty(len(seq), alpha))
            if score > best[1]:
                best = (seq, score)
    return best


def padded(seq, length):
    return [*seq, *[0] * (length - len(seq))]


def test_beam_search_finds_the_best_sequence_where_greedy_does_not():
    # 'a' is likelier first (0.5 vs 0.4), but 'b EOS' (0.36) beats anything after 'a' (<= 0.18).
    table = toy_table({(): [0.5, 0.4, 0.1], (1,): [0.36, 0.34, 0.30], (2,): [0.05, 0.05, 0.9]}, max_len=4)
    tokens, scores = toy_search(np.stack([table]), [4], beam_size=2)
    assert tokens[0].tolist() == [2, EOS, 0, 0]
    np.testing.assert_allclose(scores[0], np.log(0.4 * 0.9), rtol=1e-6)
    greedy, _ = toy_search(np.stack([table]), [4], beam_size=1)
    assert greedy[0].tolist() == [1, 1, 1, EOS]  # 'a' each time, EOS forced at the 4th token
    assert best_by_enumeration(table, 4)[0] == [2, EOS]


def random_tables(seed: int, batch: int, max_len: int) -> np.ndarray:
    """Random toy models, one per example, where EOS is unlikely (so long sequences can win)."""
    p = np.random.default_rng(seed).dirichlet(np.full(VOCAB - 1, 0.5), size=(batch, VOCAB**max_len))
    p[..., EOS - 1] *= 0.15
    log_p = np.log(p / p.sum(-1, keepdims=True))
    return np.concatenate([np.full((batch, VOCAB**max_len, 1), -1e9), log_p], axis=-1)


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [
        (0.0, [[1, EOS], [1, EOS], [EOS]]),
        (0.6, [[1, EOS], [1, 1, EOS], [EOS]]),
        (2.0, [[2, 1, 2, EOS], [1, 1, EOS], [EOS]]),
    ],
)
def test_a_beam_wide_enough_to_keep_every_hypothesis_finds_the_exact_best(alpha, expected):
    tables, max_lengths = random_tables(1, 3, 5), [5, 4, 1]
    tokens, scores = toy_search(tables, max_lengths, beam_size=16, alpha=alpha)  # 2**4 live prefixes at most
    for b, n in enumerate(max_lengths):
        seq, score = best_by_enumeration(tables[b], n, alpha)
        assert seq == expected[b]  # the length penalty matters here
        assert tokens[b].tolist() == padded(seq, 5)
        np.testing.assert_allclose(scores[b], score, rtol=1e-5)


def test_beam_of_one_is_greedy_on_the_toy_model():
    tables, max_lengths = random_tables(2, 4, 6), [6, 6, 4, 2]
    tokens, _ = toy_search(tables, max_lengths, beam_size=1, alpha=0.6)
    for b, n in enumerate(max_lengths):
        seq, code = [], 0
        while not seq or seq[-1] != EOS:
            seq.append(EOS if len(seq) + 1 == n else int(np.argmax(tables[b, code])))
            code = code * VOCAB + seq[-1]
        assert tokens[b].tolist() == padded(seq, 6)


@pytest.fixture(scope="module")
def tiny():
    """A random tiny Transformer, three sources of different lengths (12 tokens with padding), and a
    jitted reference: encoder memory and full-decoder logits of given target inputs."""
    graphdef, params = nnx.split(Transformer(CFG, nnx.Rngs(0)))
    src = np.zeros((3, 12), np.int32)
    src[0, :5], src[1, :12], src[2, :2] = [5, 9, 11, 7, 3], np.arange(4, 16), [8, 3]

    @jax.jit
    def reference(params, src, tgt_in):
        model = nnx.merge(graphdef, params)
        src_seg = (src != 0).astype(jnp.int32)
        memory = model.encode(src, src_seg, jnp.arange(src.shape[1])[None])
        positions = jnp.arange(tgt_in.shape[1])[None]
        return memory, model.decode(memory, src_seg, tgt_in, jnp.ones_like(tgt_in), positions)

    return graphdef, params, jnp.asarray(src), reference


def test_cached_decode_step_equals_the_full_decoder_position_by_position(tiny):
    graphdef, params, src, reference = tiny
    tgt_in = jnp.asarray(np.random.default_rng(2).integers(4, CFG.vocab_size, (3, 10)), jnp.int32)
    memory, full = reference(params, src, tgt_in)

    @jax.jit
    def step(params, memory_kv, token, position, cache):
        return nnx.merge(graphdef, params).decode_step(memory_kv, (src != 0).astype(jnp.int32), token, position, cache)

    model = nnx.merge(graphdef, params)
    memory_kv, cache = model.memory_keys_values(memory), model.empty_cache(3, 10)
    for i in range(10):
        logits, cache = step(params, memory_kv, tgt_in[:, i], i, cache)
        np.testing.assert_allclose(logits, full[:, i], atol=1e-5)


@pytest.mark.parametrize("beam_size", [1, 4])
def test_translate_ids_equals_beam_search_over_the_full_decoder(tiny, beam_size):
    """The cached decoder (its cache reordered with the beams) against a step function that
    re-runs the whole prefix through ``decode``; sources cut at n + 1 tokens."""
    graphdef, params, src, reference = tiny
    tokens = translate_ids(
        graphdef, params, src, beam_size=beam_size, alpha=0.6, bos_id=2, eos_id=EOS, max_len_a=1.0, max_len_b=1.0
    )
    beam_src = jnp.repeat(src, beam_size, axis=0)

    def full_step(previous, position, prefix):
        prefix = prefix.at[:, position].set(previous)
        return jax.nn.log_softmax(reference(params, beam_src, prefix)[1][:, position]), prefix

    limits = jnp.minimum((src != 0).sum(1) + 1, 12)  # 6, 12, 3
    expected, _ = beam_search(
        full_step, jnp.zeros_like(beam_src), limits, beam_size=beam_size, max_len=12, bos_id=2, eos_id=EOS, alpha=0.6
    )
    np.testing.assert_array_equal(tokens, expected)
    assert (np.asarray(tokens) != 0).sum(1).max() > 3  # long enough for the cache (and its reordering) to matter
