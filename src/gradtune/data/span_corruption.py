"""T5's span corruption: random spans of a text are cut out and become the target.

Raffel et al., 2020, "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
Transformer", JMLR (https://arxiv.org/abs/1910.10683), section 3.1.4. Of a text of ``n``
tokens, ``round(n · density)`` noise tokens in ``round(noise / mean_span)`` spans are chosen
(spans and the kept runs between them of random lengths, at least one token each, kept run
first); the input keeps the other tokens with one sentinel in place of each span, the target
is each sentinel followed by its span. Sentinel ``i`` is id ``vocab_size − 1 − i``: the
sentinels sit at the vocabulary's end, after the tokenizer's pieces.

    text     a b c d e f g h
    input    a b <s0> e f <s1> h </s>
    target   <s0> c d <s1> g </s>

Short lines are packed into texts of ``text_length`` tokens *before* corruption, so that a
3-word line still takes part in spans; a text may therefore cut a line in two.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from gradtune.data.tokenizer import EOS_ID


def span_counts(n: int, density: float, mean_span: float, rng: np.random.Generator) -> tuple[int, int]:
    """(noise tokens, spans) of a text of ``n`` tokens, each rounded at random (up with the
    probability of its fraction), so that over many texts the noise density and the mean
    span length are the asked ones even for short texts; at least one of each, one token kept."""
    noise = int(np.clip(np.floor(n * density + rng.random()), 1, n - 1))
    spans = int(np.clip(np.floor(noise / mean_span + rng.random()), 1, min(noise, n - noise)))
    return noise, spans


def text_length(row_len: int, density: float, mean_span: float) -> int:
    """The longest text whose corrupted input and target (each with EOS) fit rows of ``row_len``
    however the counts round."""
    for n in range(2 * row_len, 2, -1):  # the input keeps about 90% of the tokens: a text may exceed a row
        fewest, most = max(math.floor(n * density), 1), min(math.ceil(n * density), n - 1)
        longest_input = n - fewest + math.ceil(fewest / mean_span) + 1
        longest_target = most + math.ceil(most / mean_span) + 1
        if longest_input <= row_len and longest_target <= row_len:
            return n
    raise ValueError(f"rows of {row_len} tokens are too short for span corruption; raise data.row_len")


def _segments(total: int, parts: int, rng: np.random.Generator) -> np.ndarray:
    """``total`` split into ``parts`` random lengths ≥ 1 (a uniform random composition)."""
    cuts = np.sort(rng.choice(np.arange(1, total), parts - 1, replace=False)) if parts > 1 else np.array([], int)
    return np.diff(np.concatenate([[0], cuts, [total]]))


def noise_mask(n: int, density: float, mean_span: float, rng: np.random.Generator) -> np.ndarray:
    """(n,) bool: which tokens are noise, in spans as T5's ``random_spans_noise_mask``."""
    noise, spans = span_counts(n, density, mean_span, rng)
    noise_lengths, kept_lengths = _segments(noise, spans, rng), _segments(n - noise, spans, rng)
    mask = np.zeros(n, bool)
    start = 0
    for kept, span in zip(kept_lengths, noise_lengths, strict=True):
        start += kept
        mask[start : start + span] = True
        start += span
    return mask


def corrupt(tokens: np.ndarray, mask: np.ndarray, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(input, target) of ``tokens`` with the spans of ``mask``, each ending with EOS."""
    starts = mask & ~np.concatenate([[False], mask[:-1]])  # the first token of each span
    sentinel = vocab_size - 1 - (np.cumsum(starts) - 1)  # of the span each token is in (or after)
    inputs = np.where(starts, sentinel, tokens)[~mask | starts]
    # the target: every noise token, each span's sentinel before its first one
    with_sentinel = np.stack([sentinel, tokens], axis=1)[mask]
    emitted = np.stack([starts, np.ones_like(mask)], axis=1)[mask]
    targets = with_sentinel[emitted]
    eos = np.array([EOS_ID])
    return np.concatenate([inputs, eos]).astype(np.int32), np.concatenate([targets, eos]).astype(np.int32)


def pack_texts(lines: Iterable[Sequence[int]], length: int) -> Iterator[np.ndarray]:
    """The token ids of ``lines`` run together and cut into texts of ``length`` (the last one
    shorter, kept if it has at least 2 tokens)."""
    buffer: list[int] = []
    for line in lines:
        buffer.extend(line)
        while len(buffer) >= length:
            yield np.asarray(buffer[:length], np.int32)
            del buffer[:length]
    if len(buffer) >= 2:
        yield np.asarray(buffer, np.int32)


def corrupted_pairs(
    texts: Iterable[np.ndarray], vocab_size: int, density: float, mean_span: float, seed: Sequence[int]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (input, target) pair of each text, text ``i`` corrupted with the generator of ``(*seed, i)``."""
    return [
        corrupt(text, noise_mask(len(text), density, mean_span, np.random.default_rng([*seed, i])), vocab_size)
        for i, text in enumerate(texts)
    ]
