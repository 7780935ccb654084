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

import itertools
import math
import random
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from gradtune.data.tokenizer import EOS_ID


def span_counts(n: int, density: float, mean_span: float, rng: random.Random) -> tuple[int, int]:
    """(noise tokens, spans) of a text of ``n`` tokens, each rounded at random (up with the
    probability of its fraction), so that over many texts the noise density and the mean
    span length are the asked ones even for short texts; at least one of each, one token kept."""
    noise = min(max(math.floor(n * density + rng.random()), 1), n - 1)
    spans = min(max(math.floor(noise / mean_span + rng.random()), 1), noise, n - noise)
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


def _segments(total: int, parts: int, rng: random.Random) -> list[int]:
    """``total`` split into ``parts`` random lengths ≥ 1 (a uniform random composition)."""
    cuts = [0, *sorted(rng.sample(range(1, total), parts - 1)), total]
    return [b - a for a, b in itertools.pairwise(cuts)]


def noise_mask(n: int, density: float, mean_span: float, rng: random.Random) -> list[bool]:
    """Which of ``n`` tokens are noise, in spans as T5's ``random_spans_noise_mask``: kept run,
    span, kept run, span, … (plain Python: the texts are short, and numpy's per-call cost
    would dominate)."""
    noise, spans = span_counts(n, density, mean_span, rng)
    mask: list[bool] = []
    for kept, span in zip(_segments(n - noise, spans, rng), _segments(noise, spans, rng), strict=True):
        mask += [False] * kept + [True] * span
    return mask


def corrupt(tokens: Sequence[int], mask: Sequence[bool], vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(input, target) of ``tokens`` with the spans of ``mask``, each ending with EOS."""
    inputs, targets, sentinel, in_span = [], [], vocab_size, False
    for token, noise in zip(tokens, mask, strict=True):
        if noise:
            if not in_span:  # a span starts: the next sentinel, on both sides
                sentinel -= 1
                inputs.append(sentinel)
                targets.append(sentinel)
            targets.append(token)
        else:
            inputs.append(token)
        in_span = noise
    return np.array([*inputs, EOS_ID], np.int32), np.array([*targets, EOS_ID], np.int32)


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
    """The (input, target) pair of each text, corrupted in order by one generator seeded by ``seed``."""
    rng = random.Random(int(np.random.SeedSequence(list(seed)).generate_state(1)[0]))
    return [corrupt(t, noise_mask(len(t), density, mean_span, rng), vocab_size) for t in (x.tolist() for x in texts)]
