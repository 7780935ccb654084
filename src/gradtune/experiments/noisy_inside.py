"""Noise inside one corpus: which ranking finds the bad pairs, and does filtering by it pay?

One corpus's training split has a share of its pairs (``noise``, 30%) made wrong in four
ways, a quarter each: targets shuffled among them, the source copied as the target, a
target in another language (a sentence of another corpus's source side), and targets cut
to their first third. The guide, dev and test splits stay clean. Then:

1. **scoring**: a run guides per-example weights by the clean guide split (``weight``);
   its model gives each pair's training ``loss`` (the baseline) and, fine-tuned for a few
   steps on the guide split, its delta log-perplexity (``dppl``);
2. **buckets**: a second run buckets the data by quantiles of ``dppl`` and guides the
   buckets' weights (``bucket``: each pair ranked by its bucket's learned weight);
3. each ranking's ROC AUC as a detector of noise, over all noise and per kind, and its
   precision at the noise rate (of the pairs it ranks worst, as many as there is noise);
4. **retraining** with the default job's settings, per seed, on the kept share (``keep``,
   70%) of the best of ``weight``, ``dppl`` and ``bucket``; on all the data; and on the
   clean pairs alone (the oracle, the same share) — dev loss, and dev BLEU and chrF with
   beam search. Every retrain uses the scoring run's tokenizer, so dev losses compare.

Every run is an ordinary run directory under ``OUT``; started again, the experiment keeps
finished runs and scores. The experiment is a TOML file (``configs/experiments/
noisy_inside.toml``) with an ``[overlays.quick]`` for ``--quick``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gradtune.data.corpora import Example
from gradtune.data.prepare import Prepared
from gradtune.errors import GradtuneError
from gradtune.experiments.noisy_corpus import roc_auc
from gradtune.experiments.runs import read_experiment_file, run_once
from gradtune.experiments.sweep import split_scores
from gradtune.files import write_json
from gradtune.train.config import config_file, load_config
from gradtune.train.inputs import load_splits
from gradtune.train.scores import SCORES_FILE, Scores, check_matches, read_scores, score_run, write_scores

CONFIG = "noisy_inside"
KINDS = ("shuffled", "copy", "other_language", "truncated")
CANDIDATES = ("weight", "dppl", "dppl_end", "contrast", "combined", "bucket")  # loss is the baseline, not one
# the settings that fix the clean splits: copied from the scoring config into every retrain
SPLIT_KEYS = ("corpus", "guide_corpus", "strict", "min_tokens", "max_tokens", "max_length_ratio", "drop_copies",
              "drop_duplicates", "dev_fraction", "test_fraction", "guide_fraction", "min_guide")  # fmt: skip


@dataclass(frozen=True)
class Experiment:
    config: str  # the scoring and bucket runs' config (configs/noisy_corpus.toml)
    overlay: str | None  # one of its overlays (the quick one for --quick)
    set: tuple[str, ...]
    noise: float
    other_language: str  # the corpus whose source sides are the wrong-language targets
    seed: int
    dppl_steps: int
    dppl_learning_rate: float
    bucket_score: str
    bucket_set: tuple[str, ...]
    retrain_config: str
    retrain_set: tuple[str, ...]
    keep: float
    seeds: tuple[int, ...]
    beam: int
    dev_sentences: int


def read_experiment(name: str | Path, quick: bool = False) -> Experiment:
    path, tree = read_experiment_file(name, quick)
    try:
        e, d, b, r, p = (tree[k] for k in ("experiment", "dppl", "buckets", "retrain", "report"))
        experiment = Experiment(
            config=e.get("config", "noisy_corpus"), overlay=e.get("overlay"), set=tuple(e.get("set", ())),
            noise=float(e["noise"]), other_language=e["other_language"], seed=int(e.get("seed", 0)),
            dppl_steps=int(d["steps"]), dppl_learning_rate=float(d["learning_rate"]),
            bucket_score=b.get("score", "combined"), bucket_set=tuple(b.get("set", ())),
            retrain_config=r.get("config", "default"), retrain_set=tuple(r.get("set", ())), keep=float(r["keep"]),
            seeds=tuple(int(s) for s in r["seeds"]), beam=int(p.get("beam", 4)),
            dev_sentences=int(p.get("dev_sentences", 0)),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as err:
        raise GradtuneError(
            f"{path}: the experiment needs [experiment] noise and other_language, [dppl] steps and learning_rate, "
            f"[buckets], [retrain] keep and seeds, [report] ({err})"
        ) from err
    if not 0 < experiment.noise < 1 or not 0 < experiment.keep <= 1 or not experiment.seeds:
        raise GradtuneError(f"{path}: noise must be in (0, 1), keep in (0, 1] and [retrain] seeds not empty")
    return experiment


@dataclass(frozen=True)
class NoisyInside:
    prepared: Prepared
    kind: np.ndarray  # (n,) per training pair: "" clean, else its kind of noise


def add_noise(examples: list[Example], rate: float, foreign: list[str], seed: int) -> tuple[list[Example], np.ndarray]:
    """``examples`` with ``rate`` of them made noisy, a quarter by each of ``KINDS``; the kind of each."""
    rng = np.random.default_rng([seed, 19])
    n = len(examples)
    chosen = rng.permutation(n)[: round(rate * n)]
    kind = np.full(n, "", dtype=object)
    out = list(examples)
    for k, part in zip(KINDS, np.array_split(chosen, len(KINDS)), strict=True):
        kind[part] = k
        if k == "shuffled":  # a random cycle: no pair keeps its own target
            targets = [examples[int(j)].target for j in np.roll(part, -1)]
        elif k == "copy":
            targets = [examples[int(i)].source for i in part]
        elif k == "other_language":
            targets = [foreign[int(j)] for j in rng.integers(0, len(foreign), len(part))]
        else:  # truncated: the first third of the target's words
            targets = [" ".join(w[: max(1, len(w) // 3)]) for w in (examples[int(i)].target.split() for i in part)]
        for i, target in zip(part, targets, strict=True):
            out[int(i)] = dataclasses.replace(examples[int(i)], target=target)
    return out, kind.astype(str)


def noisy_inside_data(experiment: Experiment, cfg) -> NoisyInside:
    clean = load_splits(cfg.data)
    foreign_cfg = dataclasses.replace(cfg.data, corpus=experiment.other_language, guide_corpus="")
    foreign = [e.source for e in load_splits(foreign_cfg).splits["train"]]
    train, kind = add_noise(clean.splits["train"], experiment.noise, foreign, experiment.seed)
    counts = {k: int((kind == k).sum()) for k in KINDS}
    report = {**clean.report, "noise": {"rate": experiment.noise, "kinds": counts}}
    return NoisyInside(Prepared({**clean.splits, "train": train}, clean.corpora, report), kind)


def detection(scores: Scores, name: str, kind: np.ndarray) -> dict:
    """ROC AUC of ``name`` (low cleanliness flags noise) over all noise and per kind, and the
    precision at the noise rate."""
    flag, noisy = -scores.cleanliness(name), kind != ""
    clean = ~noisy
    per_kind = {}
    for k in KINDS:  # None: no pair of that kind (a tiny split)
        mine = kind == k
        per_kind[k] = roc_auc(flag[mine | clean], mine[mine | clean]) if mine.any() and clean.any() else None
    worst = np.argsort(-flag, kind="stable")[: int(noisy.sum())]
    precision = float(noisy[worst].mean())
    return {"auc": roc_auc(flag, noisy), "auc_per_kind": per_kind, "precision_at_noise_rate": precision}


def kept(signed: np.ndarray, keep: float) -> np.ndarray:
    """Indices (in data order) of the ``keep`` share ranked cleanest by ``signed``; ties keep data order."""
    count = math.ceil(keep * len(signed))
    return np.sort(np.argsort(-signed, kind="stable")[:count])


def scores_of(run_dir: Path, experiment: Experiment, data: NoisyInside, dppl: bool, progress: bool) -> Scores:
    """The run's scores: read back when written already (checked to be of this data), else measured and written."""
    examples, corpora, guide = data.prepared.splits["train"], data.prepared.corpora, data.prepared.splits["guide"]
    path = run_dir / SCORES_FILE
    if path.is_file():
        scores = read_scores(path)
        check_matches(scores, examples, str(path))
        return scores
    steps = experiment.dppl_steps if dppl else 0
    scores = score_run(run_dir, steps, experiment.dppl_learning_rate, examples=examples, corpora=corpora,
                       progress=progress, guide=guide)  # fmt: skip
    write_scores(path, scores)
    return scores


def run_experiment(experiment: Experiment, out: Path, progress: bool = False) -> dict:
    """Every step of the experiment into ``out``; writes and returns ``results.json``."""
    start = time.time()
    check_same_experiment(out, experiment)
    base = load_config(config_file(experiment.config), experiment.set, experiment.overlay)
    data = noisy_inside_data(experiment, base)
    train = data.prepared.splits["train"]
    print(f"data: {len(train):,} training pairs, {data.prepared.report['noise']['kinds']} noisy")

    print("1. scoring run (guided example weights)")
    sets = list(experiment.set)
    run_once("scoring", out / "scoring", experiment.config, sets, progress, data.prepared, experiment.overlay)
    scoring = scores_of(out / "scoring", experiment, data, True, progress)

    print(f"2. bucket run (guided weights of {experiment.bucket_score} buckets)")
    bucket_sets = [*sets, f"data.bucket_by=score:{experiment.bucket_score}", f"data.scores={out / 'scoring'}",
                   *experiment.bucket_set]  # fmt: skip
    run_once("buckets", out / "buckets", experiment.config, bucket_sets, progress, data.prepared, experiment.overlay)
    buckets = scores_of(out / "buckets", experiment, data, False, progress)
    rankings = {**scoring.values, "bucket": buckets.values["bucket"]}
    ranked = Scores(scoring.corpora, scoring.pairs, rankings)
    detections = {name: detection(ranked, name, data.kind) for name in ("loss", *CANDIDATES) if name in rankings}
    best = max((n for n in CANDIDATES if n in detections), key=lambda n: detections[n]["auc"])
    aucs = ", ".join(f"{n} AUC {d['auc']:.3f}" for n, d in detections.items())
    print(f"3. rankings: {aucs}; best: {best}")

    print(f"4. retraining on the kept {experiment.keep:.0%} of {best}, on all data, on the clean pairs")
    clean_ids = np.flatnonzero(data.kind == "")  # the oracle: as many clean pairs as kept (all, if fewer)
    subsets = {
        f"kept by {best}": kept(ranked.cleanliness(best), experiment.keep),
        "all data": np.arange(len(train)),
        "clean (oracle)": clean_ids[: math.ceil(experiment.keep * len(train))],
    }
    folders = {f"kept by {best}": f"kept-{best}-{experiment.keep:g}", "all data": "all", "clean (oracle)": "clean"}
    same_splits = [f"data.{k}={_text(getattr(base.data, k))}" for k in SPLIT_KEYS]
    tokenizer = f"data.tokenizer={out / 'scoring' / 'tokenizer.model'}"
    rows = []
    for seed in experiment.seeds:
        for name, ids in subsets.items():
            run_dir = out / "retrain" / f"{folders[name]}-seed{seed}"
            prepared = Prepared({**data.prepared.splits, "train": [train[int(i)] for i in ids]}, data.prepared.corpora,
                                data.prepared.report)  # fmt: skip
            sets = [*same_splits, tokenizer, f"train.seed={seed}", *experiment.retrain_set]
            summary = run_once(f"{name}, seed {seed}", run_dir, experiment.retrain_config, sets, progress, prepared)
            scores = dev_scores(run_dir, experiment.dev_sentences, experiment.beam)
            rows.append({
                "data": name, "seed": seed, "train_pairs": len(ids), "noisy_pairs": int((data.kind[ids] != "").sum()),
                "dev_loss": summary["dev_loss"], "dev_bleu": scores["dev_bleu"], "dev_chrf": scores["dev_chrf"],
                "dev_sentences": scores["dev_sentences"], "run_dir": str(run_dir),
            })  # fmt: skip
    results = {
        "experiment": experiment.__dict__, "noise": data.prepared.report["noise"], "train_pairs": len(train),
        "rankings": detections, "best": best, "retrain": rows, "summary": summarize(rows),
        "seconds": time.time() - start,
    }  # fmt: skip
    write_json(out / "results.json", results, indent=2)
    return results


def check_same_experiment(out: Path, experiment: Experiment) -> None:
    """``OUT/experiment.json``: written at the first start; a later start with other settings
    would mix runs of two experiments, and stops with one line."""
    path, settings = out / "experiment.json", json.loads(json.dumps(dataclasses.asdict(experiment)))
    if path.is_file() and json.loads(path.read_text()) != settings:
        raise GradtuneError(f"{out} holds an experiment with other settings ({path}); give another --run-dir")
    if not path.is_file():
        out.mkdir(parents=True, exist_ok=True)
        write_json(path, settings, indent=2)


def dev_scores(run_dir: Path, sentences: int, beam: int) -> dict:
    """Dev BLEU and chrF of a finished run by beam search, cached in the run (``dev_scores.json``)."""
    path, key = run_dir / "dev_scores.json", f"beam={beam},sentences={sentences}"
    cache = json.loads(path.read_text()) if path.is_file() else {}
    if key not in cache:
        cache[key] = split_scores(str(run_dir), "dev", sentences, beam)
        write_json(path, cache)
    return cache[key]


def _text(value) -> str:
    """A config value as ``--set`` reads it."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def summarize(rows: list[dict]) -> dict:
    """Per training set: mean and spread (max − min over seeds) of each score."""
    out = {}
    for name in dict.fromkeys(r["data"] for r in rows):
        mine = [r for r in rows if r["data"] == name]
        out[name] = {
            key: {"mean": float(np.mean(v)), "spread": float(np.max(v) - np.min(v))}
            for key in ("dev_loss", "dev_bleu", "dev_chrf")
            if (v := [r[key] for r in mine])
        }
    return out


def format_results(results: dict) -> str:
    kinds = " ".join(f"{k:>14s}" for k in KINDS)
    lines = [f"{'ranking':8s} {'AUC':>6s} {kinds} {'precision':>10s}"]
    for name, d in results["rankings"].items():
        per = " ".join(f"{d['auc_per_kind'][k]:14.3f}" for k in KINDS)
        lines.append(f"{name:8s} {d['auc']:6.3f} {per} {d['precision_at_noise_rate']:10.3f}")
    header = f"{'retrained on':20s} {'seed':>4s} {'pairs':>7s} {'noisy':>6s} {'dev loss':>9s} {'BLEU':>6s} {'chrF':>6s}"
    lines += ["", header]
    for r in results["retrain"]:
        lines.append(f"{r['data']:20s} {r['seed']:4d} {r['train_pairs']:7,d} {r['noisy_pairs']:6,d} "
                     f"{r['dev_loss']:9.4f} {r['dev_bleu']:6.2f} {r['dev_chrf']:6.2f}")  # fmt: skip
    for name, s in results["summary"].items():
        loss = s["dev_loss"]
        lines.append(f"{name:20s} mean dev loss {loss['mean']:.4f} (spread {loss['spread']:.4f} over seeds)")
    lines.append(f"(BLEU and chrF: beam {results['experiment']['beam']} on {results['retrain'][0]['dev_sentences']} "
                 f"dev pairs; {results['seconds'] / 60:.1f} min in all)")  # fmt: skip
    return "\n".join(lines)
