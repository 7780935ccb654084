"""Data weights in a run: each training example's ids, the rows' token counts, the outputs.

Every training example gets three ids, written per target token into the batches:

* ``corpus``: the index of its source in ``data.corpus`` (in the order given);
* ``bucket``: with ``data.bucket_by = "length"``, one of ``data.num_buckets`` buckets of
  equal example counts by target length (in tokens); with ``"group"``, its TSV group
  column read as an integer (the buckets are the distinct integers, ascending); with
  ``"score:NAME"``, one of ``data.num_buckets`` equal-count buckets of the score ``NAME``
  (``dppl``, ``loss``, …; see ``train/scores.py``) read from ``data.scores``, lowest first;
* ``example``: its index in the training split.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gradtune.data.batching import Encoded, Tags
from gradtune.data.corpora import Example
from gradtune.errors import DataError, GradtuneError
from gradtune.files import write_json, write_text
from gradtune.seq2seq.objectives import DATA_WEIGHTS, KINDS, weight_name
from gradtune.train.config import DataConfig

SCORE_NAMES = (
    "loss",
    "dppl",
    "dppl_end",
    "contrast",
    "combined",
    "weight",
    "bucket",
    "whole",
)  # the scores of train/scores.py


@dataclass(frozen=True)
class DataTags:
    """The ids of every training example and, per kind, each row's training target tokens."""

    tags: Tags  # kind -> (n,) int32 ids
    counts: dict[str, np.ndarray]  # kind -> (rows,) target tokens in training
    corpus_names: list[str]
    bucket_names: list[str]  # "3-7 tokens" or the group integer

    def sizes(self) -> dict[str, int]:
        return {weight_name(kind): len(c) for kind, c in self.counts.items()}


def length_buckets(lengths: np.ndarray, num_buckets: int) -> tuple[np.ndarray, list[str]]:
    """Bucket ids by equal-count quantiles of ``lengths``, and a name per bucket."""
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, num_buckets + 1)[1:-1], method="higher"))
    ids = np.searchsorted(edges, lengths, side="right").astype(np.int32)
    bounds = [int(lengths.min()), *edges.tolist(), int(lengths.max()) + 1]
    names = [f"{lo}-{hi - 1} tokens" for lo, hi in itertools.pairwise(bounds)]
    return ids, names


def score_buckets(d: DataConfig, examples: Sequence[Example]) -> tuple[np.ndarray, list[str]]:
    """Bucket ids by equal-count quantiles of the score ``data.bucket_by = "score:NAME"`` names,
    read from ``data.scores`` (a scores file or a run directory) and checked to be of ``examples``."""
    from gradtune.train.scores import check_matches, read_scores  # scores import this module

    name = d.bucket_by.removeprefix("score:")
    scores = read_scores(d.scores)
    check_matches(scores, examples, f"data.scores {d.scores}")
    if name not in scores.values:
        raise DataError(
            f"data.bucket_by = {d.bucket_by!r}, but data.scores {d.scores} has no {name!r} score "
            f"(it has {', '.join(scores.values)}); score with `gradtune score` or pick another"
        )
    values = scores.values[name]
    edges = np.unique(np.quantile(values, np.linspace(0, 1, d.num_buckets + 1)[1:-1], method="higher"))
    ids = np.searchsorted(edges, values, side="right").astype(np.int32)
    bounds = [values.min(), *edges.tolist(), values.max()]
    names = [f"{name} {lo:.3g} to {hi:.3g}" for lo, hi in itertools.pairwise(bounds)]
    return ids, names


def group_buckets(examples: Sequence[Example]) -> tuple[np.ndarray, list[str]]:
    """Bucket ids from the examples' group column, which must hold integers."""
    try:
        values = np.array([int(e.group) for e in examples])
    except ValueError as e:
        raise DataError(
            f"data.bucket_by = 'group' needs an integer third column in every TSV line: {e}; "
            "or use data.bucket_by = 'length'"
        ) from e
    distinct, ids = np.unique(values, return_inverse=True)
    return ids.astype(np.int32), [str(v) for v in distinct]


def data_tags(d: DataConfig, examples: Sequence[Example], encoded: Sequence[Encoded], corpora: list[str]) -> DataTags:
    """The corpus, bucket and example ids of the training split, and the rows' token counts."""
    target_tokens = np.array([len(tgt) for _, tgt in encoded], np.int64)
    if d.bucket_by == "length":
        buckets, bucket_names = length_buckets(target_tokens, d.num_buckets)
    elif d.bucket_by == "group":
        buckets, bucket_names = group_buckets(examples)
    else:
        buckets, bucket_names = score_buckets(d, examples)
    tags = {
        "corpus": np.array([e.corpus for e in examples], np.int32),
        "bucket": buckets,
        "example": np.arange(len(examples), dtype=np.int32),
    }
    sizes = {"corpus": len(corpora), "bucket": len(bucket_names), "example": len(examples)}
    counts = {kind: np.bincount(tags[kind], target_tokens, minlength=sizes[kind]) for kind in KINDS}
    return DataTags(tags, counts, corpora, bucket_names)


def write_counts(path: Path, tags: DataTags) -> None:
    """The rows' token counts (they fix the weights' normalisation), to rebuild a run's state."""
    write_json(path, {kind: c.astype(int).tolist() for kind, c in tags.counts.items()})


def read_counts(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    return {kind: np.asarray(c, np.int64) for kind, c in json.loads(path.read_text()).items()}


EXAMPLE_WEIGHTS = "example_weights.tsv"  # in the run directory: corpus, index, weight, source, target


def write_weights(run_dir: Path, values: dict, tags: DataTags, examples: Sequence[Example]) -> dict:
    """``corpus_weights.json`` and ``bucket_weights.json`` for the guided ones, and
    ``example_weights.tsv``: per training example, the product of its guided weights.
    Returns, for the run's summary, the corpus and bucket weights by name and the spread of
    the examples' weights."""
    summary: dict = {}
    for kind, names in (("corpus", tags.corpus_names), ("bucket", tags.bucket_names)):
        if weight_name(kind) in values:
            weights = np.asarray(values[weight_name(kind)], np.float64)
            rows = [
                {kind: name, "weight": float(w), "train_tokens": int(c)}
                for name, w, c in zip(names, weights, tags.counts[kind], strict=True)
            ]
            write_json(run_dir / f"{weight_name(kind)}.json", rows)
            summary[weight_name(kind)] = {r[kind]: r["weight"] for r in rows}
    if any(name in values for name in DATA_WEIGHTS):
        weights = example_weights(values, tags)
        lines = ["corpus\tindex\tweight\tsource\ttarget"]
        for i, (e, w) in enumerate(zip(examples, weights, strict=True)):
            text = "\t".join(one_field(x) for x in (e.source, e.target))
            lines.append(f"{tags.corpus_names[e.corpus]}\t{i}\t{w:.6g}\t{text}")
        write_text(run_dir / EXAMPLE_WEIGHTS, "\n".join(lines) + "\n")
        summary["example_weight_quantiles"] = dict(
            zip(
                ("min", "q10", "median", "q90", "max"),
                np.quantile(weights, [0, 0.1, 0.5, 0.9, 1]).tolist(),
                strict=True,
            )
        )
    return summary


def example_weights(values: dict, tags: DataTags) -> np.ndarray:
    """Each training example's weight: the product of its corpus, bucket and example weights."""
    weights = np.ones(len(tags.tags["example"]))
    for kind in KINDS:
        if weight_name(kind) in values:
            weights = weights * np.asarray(values[weight_name(kind)], np.float64)[tags.tags[kind]]
    return weights


# a tab or any line break inside a sentence would split its row of example_weights.tsv
_FIELD_BREAKS = str.maketrans(dict.fromkeys("\t\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029", " "))


def one_field(text: str) -> str:
    """``text`` with tabs and line breaks as spaces: one TSV field."""
    return text.translate(_FIELD_BREAKS)


def read_example_weights(run_dir: Path) -> list[tuple[str, float, str, str]]:
    """(corpus, weight, source, target) per training example from ``example_weights.tsv``,
    in training-split order."""
    path = run_dir / EXAMPLE_WEIGHTS
    if not path.is_file():
        raise GradtuneError(
            f"{run_dir}: no example_weights.tsv; train with data weights guided, "
            "e.g. --set guided=corpus_weights,example_weights"
        )
    rows = []
    with path.open(encoding="utf-8", newline="\n") as f:  # rows end at "\n" only
        next(f, None)  # header
        for number, line in enumerate(f, 2):
            try:
                corpus, _, weight, source, target = line.rstrip("\n").split("\t")
                rows.append((corpus, float(weight), source, target))
            except ValueError as e:
                raise GradtuneError(f"{path}:{number}: not a line of example_weights.tsv ({e})") from e
    return rows
