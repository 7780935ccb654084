"""From a sources spec to clean splits: load, clean, split, and report what each step did."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from gradtune.data.cleaning import DEFAULT_FILTERS, Filters, clean
from gradtune.data.corpora import Corpus, Example
from gradtune.data.sources import load_sources
from gradtune.data.splits import split_examples
from gradtune.errors import DataError


@dataclass(frozen=True)
class Prepared:
    splits: dict[str, list[Example]]
    corpora: list[str]  # corpus names, by ``Example.corpus`` index
    report: dict = field(default_factory=dict)  # JSON-able: pairs read, removed by each filter, split sizes


def _cleaned(corpora: list[Corpus], filters: Filters, what: str) -> tuple[list[Example], dict[str, int], list[int]]:
    """Every corpus's examples cleaned together (duplicates across corpora count); none may end up empty."""
    kept, removed = clean((e for c in corpora for e in c.examples), filters)
    per_corpus = Counter(e.corpus for e in kept)
    for i, corpus in enumerate(corpora):
        if per_corpus[i] == 0:
            counts = ", ".join(f"{k} {v}" for k, v in removed.items() if v)
            raise DataError(
                f"{corpus.name}: cleaning removed all {len(corpus.examples)} pairs of this {what} ({counts} in all); "
                "check the file, or relax data.min_tokens, data.max_tokens, data.max_length_ratio or data.drop_copies"
            )
    return kept, removed, [per_corpus[i] for i in range(len(corpora))]


def _corpus_report(corpora: list[Corpus], kept: list[int]) -> list[dict]:
    return [
        {"name": c.name, "pairs": len(c.examples), "invalid_utf8_skipped": c.invalid_utf8, "kept": k}
        for c, k in zip(corpora, kept, strict=True)
    ]


def prepare_splits(
    corpus: str,
    filters: Filters = DEFAULT_FILTERS,
    strict: bool = False,
    guide_corpus: str = "",
    dev_fraction: float = 0.05,
    test_fraction: float = 0.05,
    guide_fraction: float = 0.01,
    min_guide: int = 500,
) -> Prepared:
    """Load the sources of ``corpus``, clean them, split them (the guide split from ``guide_corpus`` if given)."""
    corpora = load_sources(corpus, strict)
    examples, removed, kept = _cleaned(corpora, filters, "corpus")
    report: dict = {"corpora": _corpus_report(corpora, kept), "removed": removed}
    guide = None
    if guide_corpus:
        guide_corpora = load_sources(guide_corpus, strict)
        guide, guide_removed, guide_kept = _cleaned(guide_corpora, filters, "guide corpus")
        report["guide_corpora"] = _corpus_report(guide_corpora, guide_kept)
        report["guide_removed"] = guide_removed
    try:
        splits = split_examples(examples, dev_fraction, test_fraction, guide_fraction, min_guide, guide)
    except DataError as e:
        raise DataError(f"{corpus}: {e}") from e
    if guide:
        report["removed"]["in the guide corpus"] = len(examples) - sum(len(splits[s]) for s in ("train", "dev", "test"))
    report["splits"] = {name: len(split) for name, split in splits.items()}
    return Prepared(splits, [c.name for c in corpora], report)


def format_report(report: dict) -> str:
    """The report as aligned lines: corpora read, pairs each filter removed, split sizes."""
    lines = []
    for key, title in (("corpora", "corpus"), ("guide_corpora", "guide corpus")):
        for c in report.get(key, []):
            skipped = f", {c['invalid_utf8_skipped']:,} lines not UTF-8 skipped" if c["invalid_utf8_skipped"] else ""
            lines.append(f"{title:13s} {c['name']}: {c['pairs']:,} pairs read, {c['kept']:,} kept{skipped}")
    for key, title in (("removed", "removed"), ("guide_removed", "guide removed")):
        if key in report:
            counts = report[key]
            lines.append(f"{title:13s} " + ", ".join(f"{name} {counts[name]:,}" for name in counts))
    lines.append("splits        " + ", ".join(f"{name} {n:,}" for name, n in report["splits"].items()))
    return "\n".join(lines)
