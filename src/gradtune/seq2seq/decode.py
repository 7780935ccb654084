"""Beam search with fixed shapes, and the Transformer's cached decoder as its step function.

``beam_search`` is pure and model-agnostic: it drives any ``step(tokens, position, state)
-> (log_probs, state)``; ``translate_ids`` runs it on a Transformer, jitted once per shape.
Beam size 1 is greedy decoding.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

NEG_INF = -1e9  # finite: a score that never wins, without inf - inf = NaN

StepFn = Callable[[jax.Array, jax.Array, Any], tuple[jax.Array, Any]]


def length_penalty(length: jax.Array, alpha: float | jax.Array) -> jax.Array:
    """GNMT's length penalty ((5 + |Y|) / 6)^alpha (Wu et al. 2016, eq. 14)."""
    return ((5.0 + length) / 6.0) ** alpha


def beam_search(
    step: StepFn,
    state: Any,
    max_lengths: jax.Array,
    *,
    beam_size: int,
    max_len: int,
    bos_id: int,
    eos_id: int,
    alpha: float | jax.Array = 0.0,
) -> tuple[jax.Array, jax.Array]:
    """Best sequences (batch, max_len) and their scores (batch,) under ``step``'s model.

    ``step(tokens, position, state)`` takes the previous token of each of batch·beam_size
    rows (row ``b·beam_size + k`` is beam k of example b) and returns next-token
    log-probabilities (rows, vocab) and the new state; every leaf of ``state`` has those rows
    on its first axis and is reordered with the beams. Example b ends by ``max_lengths[b]``
    tokens (EOS is forced at the last one; ``max_lengths <= max_len``).

    Each beam's score is its log-probability over the length penalty of its length (EOS
    counted). At every position all beams are extended, the best beam_size of the candidates
    are kept by score, and a finished beam (one that emitted EOS) stays as one candidate with
    its score unchanged. The search stops when no live beam can still beat the best finished
    one of its example (log-probabilities only fall; the penalty is monotone in length), so
    it returns what searching to the last position would. With beam_size 1 this is greedy
    decoding. Tokens after EOS are 0 (padding).
    """
    batch, k = max_lengths.shape[0], beam_size
    examples = jnp.arange(batch)[:, None]
    first_beam_only = jnp.where(jnp.arange(k) == 0, 0.0, NEG_INF)  # all beams start equal: keep one

    def advance(carry):
        i, tokens, log_prob, length, done, state = carry
        previous = jnp.where(i == 0, bos_id, tokens[:, :, jnp.maximum(i - 1, 0)])
        log_probs, state = step(previous.reshape(batch * k), i, state)
        log_probs = log_probs.reshape(batch, k, -1)
        vocab = log_probs.shape[-1]
        force_eos = (i + 1 >= max_lengths)[:, None, None]
        log_probs = jnp.where(force_eos & (jnp.arange(vocab) != eos_id), NEG_INF, log_probs)
        # A finished beam continues only as itself (token 0, nothing added).
        finished_row = jnp.where(jnp.arange(vocab) == 0, 0.0, NEG_INF)
        candidate = log_prob[:, :, None] + jnp.where(done[:, :, None], finished_row, log_probs)
        candidate_length = jnp.where(done, length, i + 1)[:, :, None]
        score = candidate / length_penalty(candidate_length.astype(candidate.dtype), alpha)
        _, best = jax.lax.top_k(score.reshape(batch, k * vocab), k)
        beam, token = best // vocab, (best % vocab).astype(jnp.int32)
        tokens, length, done = tokens[examples, beam], length[examples, beam], done[examples, beam]
        log_prob = jnp.take_along_axis(candidate.reshape(batch, k * vocab), best, axis=1)
        tokens = tokens.at[:, :, i].set(jnp.where(done, 0, token))
        length = jnp.where(done, length, i + 1)
        done = done | (token == eos_id)
        if k > 1:  # reorder the state with its beams (greedy: nothing moves)
            rows = (examples * k + beam).reshape(batch * k)
            state = jax.tree.map(lambda x: jnp.take(x, rows, axis=0), state)
        return i + 1, tokens, log_prob, length, done, state

    def searching(carry):
        i, _, log_prob, length, done, _ = carry
        best_finished = jnp.max(jnp.where(done, log_prob / length_penalty(length, alpha), NEG_INF), axis=1)
        best_penalty = jnp.maximum(length_penalty(i + 1, alpha), length_penalty(max_lengths, alpha))[:, None]
        best_reachable = jnp.max(jnp.where(done, NEG_INF, log_prob / best_penalty), axis=1)
        return (i < max_len) & jnp.any(best_reachable > best_finished)

    init = (
        0,
        jnp.zeros((batch, k, max_len), jnp.int32),
        jnp.broadcast_to(first_beam_only, (batch, k)),
        jnp.zeros((batch, k), jnp.int32),
        jnp.zeros((batch, k), bool),
        state,
    )
    _, tokens, log_prob, length, _, _ = jax.lax.while_loop(searching, advance, init)
    scores = log_prob / length_penalty(jnp.maximum(length, 1).astype(log_prob.dtype), alpha)
    best = jnp.argmax(scores, axis=1)[:, None]
    return tokens[examples, best][:, 0], scores[examples, best][:, 0]


@partial(jax.jit, static_argnames=("graphdef", "beam_size", "bos_id", "eos_id", "pieces"))
def translate_ids(
    graphdef: nnx.GraphDef,
    params,
    src: jax.Array,
    *,
    beam_size: int,
    alpha: float,
    bos_id: int,
    eos_id: int,
    max_len_a: float = 2.0,
    max_len_b: float = 10.0,
    pieces: int | None = None,
) -> jax.Array:
    """Token ids (batch, src_len) of the translations of ``src`` (batch, src_len; one source
    per row, 0 = padding) by beam search with the Transformer's cached decoder.

    A translation has at most min(src_len, a·n + b) tokens, EOS included, for a source of n
    tokens; an all-padding row ends at once. ``pieces``: only ids below it are chosen (the
    tokenizer's; the ids above, span-corruption sentinels, are never output).
    """
    model = nnx.merge(graphdef, params)
    batch, max_len = src.shape
    src_seg = (src != 0).astype(jnp.int32)
    memory = model.encode(src, src_seg, jnp.broadcast_to(jnp.arange(max_len), src.shape))
    beams = lambda x: jnp.repeat(x, beam_size, axis=0)  # noqa: E731
    memory_kv = jax.tree.map(beams, model.memory_keys_values(memory))
    beam_seg = beams(src_seg)

    def step(tokens, position, cache):
        logits, cache = model.decode_step(memory_kv, beam_seg, tokens, position, cache)
        if pieces is not None and pieces < logits.shape[-1]:
            logits = jnp.where(jnp.arange(logits.shape[-1]) < pieces, logits, NEG_INF)
        return jax.nn.log_softmax(logits.astype(jnp.float32)), cache

    n = jnp.sum(src_seg, axis=1)
    limit = jnp.where(n > 0, jnp.floor(max_len_a * n + max_len_b).astype(jnp.int32), 1)
    tokens, _ = beam_search(
        step,
        model.empty_cache(batch * beam_size, max_len),
        jnp.minimum(limit, max_len),
        beam_size=beam_size,
        max_len=max_len,
        bos_id=bos_id,
        eos_id=eos_id,
        alpha=alpha,
    )
    return tokens
