"""Noisy-data experiment: do learned data weights find a corpus of wrong translations?

The training data is a clean corpus's training split plus a *noisy* copy of that same
split whose targets are shuffled among its examples (every noisy target belongs to
another source). Both are built from the training split only, so no dev, test or guide
pair leaks; the guide and dev splits are the clean corpus's own. One run learns corpus
weights (clean, noisy) and per-example weights by guidance, then reports:

* the corpus weights over time, and the noisy weight over the clean one at the end;
* the ROC AUC of the per-example weight as a detector of noisy examples (a low weight
  flags noise), beside the AUC of a baseline that ranks examples by their loss under
  the final model (a high loss flags noise), and the AUC of each example's whole weight
  (corpus × example: what ``gradtune filter`` ranks by);
* the batch shape and how many times each example was visited.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu

from gradtune.core.step import value_key
from gradtune.data.batching import batch_shapes, encode_pairs, visit_counts
from gradtune.data.corpora import Example
from gradtune.data.prepare import Prepared
from gradtune.files import write_json
from gradtune.train.config import Config, to_dict
from gradtune.train.data_weights import EXAMPLE_WEIGHTS, read_example_weights
from gradtune.train.inputs import load_splits
from gradtune.train.logbook import read_metrics
from gradtune.train.loop import train
from gradtune.train.scores import per_example_losses
from gradtune.train.setup import load_run

CONFIG = "noisy_corpus"  # configs/noisy_corpus.toml, with its quick overlay for the tests


@dataclass(frozen=True)
class NoisyData:
    prepared: Prepared
    noisy: np.ndarray  # (n,) bool: which training examples are noisy


def noisy_copy(examples: list[Example], seed: int, corpus: int = 1) -> list[Example]:
    """The examples with targets shuffled among them: a random cycle, so none keeps its own."""
    order = np.random.default_rng(seed).permutation(len(examples))
    targets = {int(i): examples[int(j)].target for i, j in zip(order, np.roll(order, -1), strict=True)}
    return [Example(e.source, targets[i], e.group, corpus) for i, e in enumerate(examples)]


def noisy_data(cfg: Config) -> NoisyData:
    """The clean corpus's splits, with its training split doubled by a noisy copy."""
    clean = load_splits(cfg.data)
    train_split = [Example(e.source, e.target, e.group, 0) for e in clean.splits["train"]]
    noisy = noisy_copy(train_split, cfg.train.seed)
    splits = {**clean.splits, "train": train_split + noisy}
    report = {**clean.report, "noisy_copy": len(noisy)}
    prepared = Prepared(splits, [f"clean ({cfg.data.corpus})", "noisy (shuffled targets)"], report)
    return NoisyData(prepared, np.array([False] * len(train_split) + [True] * len(noisy)))


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC of ``scores`` (higher = more likely positive), ties counted half."""
    u = mannwhitneyu(scores[positive], scores[~positive], alternative="two-sided").statistic
    return float(u / (positive.sum() * (~positive).sum()))


def total_weights(run_dir: Path) -> np.ndarray | None:
    """Each training example's whole weight (corpus × example), from the run's ``example_weights.tsv``
    (None when no data weight was guided)."""
    if not (run_dir / EXAMPLE_WEIGHTS).exists():
        return None
    return np.array([weight for _, weight, _, _ in read_example_weights(run_dir)])


def run(run_dir: Path, cfg: Config, progress: bool = True) -> dict:
    """Train the noisy-corpus run of ``cfg`` (``configs/noisy_corpus.toml``) into ``run_dir``
    and write ``noisy_corpus.json``; returns the report."""
    start = time.time()
    data = noisy_data(cfg)
    summary = train(cfg, run_dir, progress=progress, prepared=data.prepared)

    _, tokenizer, graphdef, state = load_run(run_dir)
    d = cfg.data
    train_pairs = [(e.source, e.target) for e in data.prepared.splits["train"]]
    encoded_train = encode_pairs(tokenizer, train_pairs, d.row_len)  # as the run encoded them
    shapes = batch_shapes(d.row_len, d.batch_rows, d.batch_tokens)
    visits = visit_counts(encoded_train, shapes, cfg.train.seed, int(state.step))
    losses = per_example_losses(graphdef, state.params, encoded_train, d.batch_rows, d.row_len).mean

    records = read_metrics(run_dir)
    trajectory = [
        [r["step"], r[value_key("corpus_weights", 0)], r[value_key("corpus_weights", 1)]]
        for r in records
        if value_key("corpus_weights", 0) in r
    ]
    # the final weights, by corpus name (the trajectory's last is a meta step earlier); None: not guided
    final = summary.get("corpus_weights", {})
    clean_w, noisy_w = (final.get(name) for name in data.prepared.corpora)
    weights = np.asarray(state.raw["example_weights"]) if "example_weights" in state.raw else None
    total = total_weights(run_dir)
    report = {
        "corpus": d.corpus,
        "train_pairs": {"clean": int((~data.noisy).sum()), "noisy": int(data.noisy.sum())},
        "batch_shape": [list(s) for s in shapes],
        "steps": int(state.step),
        "visits": {
            "mean": float(visits.mean()),
            "min": int(visits.min()),
            "max": int(visits.max()),
            "never": int((visits == 0).sum()),
        },
        "corpus_weights": {
            "clean": clean_w,
            "noisy": noisy_w,
            "noisy_over_clean": None if clean_w is None else noisy_w / clean_w,
        },
        "corpus_weight_trajectory": trajectory[:: max(1, len(trajectory) // 20)] + trajectory[-1:],
        # raw values rank as the weights do (a monotone activation over one normaliser)
        "auc_example_weight": roc_auc(-weights, data.noisy) if weights is not None else None,
        # what ``gradtune filter`` ranks by: the product of the example's guided weights
        "auc_total_weight": None if total is None else roc_auc(-total, data.noisy),
        "auc_training_loss": roc_auc(losses, data.noisy),
        "dev_loss": summary.get("dev_loss"),
        "dev_bleu": summary.get("dev_bleu"),
        "seconds": time.time() - start,
        "train_seconds": summary["train_seconds"],
        "config": to_dict(cfg),
    }
    write_json(run_dir / "noisy_corpus.json", report)
    return report


def format_report(report: dict) -> str:
    w, v = report["corpus_weights"], report["visits"]
    shapes = " / ".join("×".join(map(str, s)) for s in report["batch_shape"])
    lines = [
        f"data          {report['corpus']}: {report['train_pairs']['clean']:,} clean + "
        f"{report['train_pairs']['noisy']:,} noisy training pairs (targets shuffled)",
        f"batches       {report['steps']} steps of {shapes} tokens; visits per example mean {v['mean']:.1f} "
        f"(min {v['min']}, max {v['max']}, never {v['never']})",
    ]
    if w["noisy_over_clean"] is not None:
        lines += [
            "corpus weights (step: clean, noisy)",
            *(f"  {s:6d}: {c:.3f}, {n:.3f}" for s, c, n in report["corpus_weight_trajectory"]),
            f"final         clean {w['clean']:.3f}, noisy {w['noisy']:.3f}: noisy/clean = {w['noisy_over_clean']:.3f}",
        ]
    auc, total = report["auc_example_weight"], report["auc_total_weight"]
    lines += [
        f"ROC AUC       example weight {'not guided' if auc is None else f'{auc:.3f}'}   "
        f"(baseline, training loss under the final model: {report['auc_training_loss']:.3f})",
        f"              whole weight, corpus × example (what `gradtune filter` ranks by): "
        f"{'no data weights' if total is None else f'{total:.3f}'}",
        f"time          {report['seconds']:.0f} s in all ({report['train_seconds']:.0f} s training)",
    ]
    return "\n".join(lines)
