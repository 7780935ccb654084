"""The field's usual filters of parallel text, each counting the pairs it removed.

Lengths are whitespace tokens (the tokenizer does not exist yet when the data is cleaned).
Filters apply in the order of ``FILTERS``; a pair is counted by the first one that
removes it. Defaults follow Moses' ``clean-corpus-n`` (ratio 9) with a generous length cap.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gradtune.data.corpora import Example

FILTERS = ("empty side", "too short", "too long", "length ratio", "source = target", "duplicate")


@dataclass(frozen=True)
class Filters:
    min_tokens: int = 1  # fewest whitespace tokens on either side
    max_tokens: int = 250  # most whitespace tokens on either side (0 = no limit)
    max_length_ratio: float = 9.0  # longer side / shorter side, in tokens (0 = no limit)
    drop_copies: bool = True  # source equal to target, ignoring case and spacing (untranslated)
    drop_duplicates: bool = True  # exact (source, target) repeats after the first


DEFAULT_FILTERS = Filters()


def same_text(a: str, b: str) -> bool:
    """Equal ignoring case and whitespace: an untranslated copy."""
    return " ".join(a.casefold().split()) == " ".join(b.casefold().split())


def rejection(example: Example, filters: Filters) -> str | None:
    """The first filter of ``FILTERS`` (but duplicates) that removes ``example``, or None."""
    if not example.source or not example.target:
        return "empty side"
    lengths = len(example.source.split()), len(example.target.split())
    if min(lengths) < filters.min_tokens:
        return "too short"
    if filters.max_tokens and max(lengths) > filters.max_tokens:
        return "too long"
    if filters.max_length_ratio and max(lengths) > filters.max_length_ratio * min(lengths):
        return "length ratio"
    if filters.drop_copies and same_text(example.source, example.target):
        return "source = target"
    return None


def clean(examples: Iterable[Example], filters: Filters) -> tuple[list[Example], dict[str, int]]:
    """The examples every filter keeps, and how many pairs each filter removed."""
    removed = dict.fromkeys(FILTERS, 0)
    seen: set[tuple[str, str]] = set()
    kept = []
    for example in examples:
        reason = rejection(example, filters)
        if reason is None and filters.drop_duplicates:
            pair = (example.source, example.target)
            reason = "duplicate" if pair in seen else None
            seen.add(pair)
        if reason is None:
            kept.append(example)
        else:
            removed[reason] += 1
    return kept, removed
