"""The paper's second task: does guided pre-training help downstream?

For each seed: pre-train with T5's span corruption twice, guided and held (the same data,
steps and seed); fine-tune each on translation from its parameters, held; and train the
same translation run from scratch with the same tokenizer. Reported: each pre-training's
held-out span-corruption loss, and each translation run's dev loss and dev BLEU and chrF on
the whole dev split with beam search. Every run is an ordinary run directory, kept under
``OUT/seed<S>/``; a finished one is not run again when the experiment is started again.

The experiment is a TOML file (``configs/experiments/pretraining.toml``)::

    [experiment]
    config = "default"           # the base run config of every run
    set = ["data.corpus=es-en"]  # laid over it for every run
    seeds = [0, 1]
    [pretrain]   steps, guided, set   (the guided arm guides ``guided``; the held arm holds them)
    [finetune]   steps, set           (the fine-tuned and the from-scratch runs alike)
    [report]     beam, dev_sentences  (0: the whole dev split)

with an optional ``[overlays.quick]`` laid over it for ``--quick``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gradtune.errors import GradtuneError
from gradtune.experiments.runs import read_experiment_file, run_once
from gradtune.experiments.sweep import split_scores
from gradtune.files import write_json

CONFIG = "pretraining"
ARMS = ("guided", "held")


@dataclass(frozen=True)
class Experiment:
    config: str
    set: tuple[str, ...]
    seeds: tuple[int, ...]
    pretrain_steps: int
    guided: str
    pretrain_set: tuple[str, ...]
    finetune_steps: int
    finetune_set: tuple[str, ...]
    beam: int
    dev_sentences: int


def read_experiment(name: str | Path, quick: bool = False) -> Experiment:
    """The experiment of a TOML file (a path or a name in ``configs/experiments/``), its quick overlay laid over it."""
    path, tree = read_experiment_file(name, quick)
    try:
        e, p, f, r = tree["experiment"], tree["pretrain"], tree["finetune"], tree.get("report", {})
        return Experiment(
            config=e.get("config", "default"),
            set=tuple(e.get("set", ())),
            seeds=tuple(int(s) for s in e["seeds"]),
            pretrain_steps=int(p["steps"]),
            guided=p["guided"],
            pretrain_set=tuple(p.get("set", ())),
            finetune_steps=int(f["steps"]),
            finetune_set=tuple(f.get("set", ())),
            beam=int(r.get("beam", 4)),
            dev_sentences=int(r.get("dev_sentences", 0)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise GradtuneError(
            f"{path}: the experiment needs [experiment] seeds, [pretrain] steps and guided, [finetune] steps ({e})"
        ) from e


def run_experiment(experiment: Experiment, out: Path, progress: bool = False) -> dict:
    """Every run of the experiment into ``out``; writes and returns ``results.json``."""
    start = time.time()
    rows = []
    for seed in experiment.seeds:
        base = [*experiment.set, f"train.seed={seed}"]
        folder = out / f"seed{seed}"
        print(f"seed {seed}")
        pre = {}
        for arm in ARMS:
            sets = [*base, "data.objective=span_corruption", f"train.steps={experiment.pretrain_steps}",
                    f"guidance.guided={experiment.guided}", f"guidance.enabled={arm == 'guided'}",
                    *experiment.pretrain_set]  # fmt: skip
            pre[arm] = run_once(f"pre-train, {arm}", folder / f"pretrain-{arm}", experiment.config, sets, progress)
        tuning = [*base, f"train.steps={experiment.finetune_steps}", "guidance.enabled=false", *experiment.finetune_set]
        vocab = json.loads((folder / "pretrain-guided" / "config.json").read_text())["data"]
        same_vocab = [f"data.vocab_size={vocab['vocab_size']}", f"data.sentinels={vocab['sentinels']}"]
        runs = {
            f"fine-tuned from {arm}": (folder / f"finetune-{arm}", [*tuning, *same_vocab,
                                      f"train.init_from={folder / f'pretrain-{arm}'}"])
            for arm in ARMS
        }  # fmt: skip
        runs["from scratch"] = (folder / "scratch", [*tuning, *same_vocab,
                                f"data.tokenizer={folder / 'pretrain-guided' / 'tokenizer.model'}"])  # fmt: skip
        for name, (run_dir, sets) in runs.items():
            summary = run_once(name, run_dir, experiment.config, sets, progress)
            scores = split_scores(str(run_dir), "dev", experiment.dev_sentences, experiment.beam)
            arm = name.rsplit(" ", 1)[-1] if name.startswith("fine") else None
            rows.append({
                "seed": seed, "run": name, "run_dir": str(run_dir), "dev_loss": summary["dev_loss"],
                "dev_bleu": scores["dev_bleu"], "dev_chrf": scores["dev_chrf"],
                "dev_sentences": scores["dev_sentences"],
                "pretrain_dev_loss": pre[arm]["dev_loss"] if arm else None,
            })  # fmt: skip
    results = {"experiment": experiment.__dict__, "beam": experiment.beam, "rows": rows,
               "seconds": time.time() - start}  # fmt: skip
    results["summary"] = summarize(rows)
    write_json(out / "results.json", results, indent=2)
    return results


def summarize(rows: list[dict]) -> dict:
    """Per run kind: mean and spread (max − min over seeds) of each score."""
    out = {}
    for name in dict.fromkeys(r["run"] for r in rows):
        mine = [r for r in rows if r["run"] == name]
        out[name] = {
            key: {"mean": float(np.mean(v)), "spread": float(np.max(v) - np.min(v))}
            for key in ("pretrain_dev_loss", "dev_loss", "dev_bleu", "dev_chrf")
            if (v := [r[key] for r in mine if r[key] is not None])
        }
    return out


def format_results(results: dict) -> str:
    lines = [f"{'run':26s} {'seed':>4s} {'pre-train dev loss':>18s} {'dev loss':>9s} {'dev BLEU':>9s} {'dev chrF':>9s}"]
    for r in results["rows"]:
        pre = f"{r['pretrain_dev_loss']:.4f}" if r["pretrain_dev_loss"] is not None else "—"
        lines.append(f"{r['run']:26s} {r['seed']:4d} {pre:>18s} {r['dev_loss']:9.4f} {r['dev_bleu']:9.2f} "
                     f"{r['dev_chrf']:9.2f}")  # fmt: skip
    lines.append(f"(dev BLEU and chrF: beam {results['beam']} on {results['rows'][0]['dev_sentences']} dev pairs; "
                 f"{results['seconds'] / 60:.0f} min in all)")  # fmt: skip
    return "\n".join(lines)
