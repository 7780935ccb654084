"""Probes of a `gradtune noisy-corpus --inside` scoring run: other trusted fine-tunes for
the fine-tune scores on the scoring run's model, and the cleaning rules measured as rankings.

    python scripts/noisy_inside_probes.py runs/noisy-inside 200:1e-3 600:1e-2 [--noise-seed S] [--out FILE]

Each STEPS:LR fine-tunes a copy of the scoring run's model for STEPS steps of Adam at LR on
the guide split (what `gradtune score --finetune-steps STEPS --finetune-lr LR` does) and
ranks the training pairs by the resulting dppl, dppl_end and combined (contrast needs no
fine-tune); the rules are the target/source length ratio and source = target
(``data.drop_copies``). Prints ROC AUC over all noise and per kind, and writes them, with
the run's own rankings where it has them, to --out (results/noisy-inside/rankings.json).
--noise-seed: the scoring run was trained on another draw of the noise (the experiment's
[experiment] seed set to S), to check settings chosen on one draw on another.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from gradtune.data.batching import encode_pairs
from gradtune.data.cleaning import same_text
from gradtune.experiments.noisy_corpus import roc_auc
from gradtune.experiments.noisy_inside import CANDIDATES, KINDS, detection, noisy_inside_data, read_experiment
from gradtune.train.config import config_file, load_config
from gradtune.train.scores import (
    SCORES_FILE,
    Scores,
    deranged,
    finetune,
    finetune_scores,
    per_example_losses,
    read_scores,
)
from gradtune.train.setup import load_run


def rule_detection(flag: np.ndarray, kind: np.ndarray) -> dict:
    clean = kind == ""
    per = {k: roc_auc(flag[(kind == k) | clean], (kind == k)[(kind == k) | clean]) for k in KINDS}
    return {"auc": roc_auc(flag, ~clean), "auc_per_kind": per}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="the experiment's --run-dir")
    parser.add_argument("finetunes", nargs="*", help="STEPS:LR, one per trusted fine-tune to probe")
    parser.add_argument("--model", default="scoring", help="the run whose model scores: scoring (default) or buckets")
    parser.add_argument(
        "--noise-seed", type=int, help="the noise draw the scoring run trained on (default the experiment's)"
    )
    parser.add_argument("--out", type=Path, default=Path("results/noisy-inside/rankings.json"))
    args = parser.parse_args()

    experiment = read_experiment("noisy_inside")
    if args.noise_seed is not None:
        experiment = dataclasses.replace(experiment, seed=args.noise_seed)
    base = load_config(config_file(experiment.config), experiment.set, experiment.overlay)
    data = noisy_inside_data(experiment, base)
    train, guide, kind = data.prepared.splits["train"], data.prepared.splits["guide"], data.kind

    rankings, values = {}, {}
    if (args.run_dir / args.model / SCORES_FILE).is_file():
        scoring = read_scores(args.run_dir / args.model / SCORES_FILE)
        values = dict(scoring.values)
        if (args.run_dir / "buckets" / SCORES_FILE).is_file():
            values["bucket"] = read_scores(args.run_dir / "buckets" / SCORES_FILE).values["bucket"]
        ranked = Scores(scoring.corpora, scoring.pairs, values)
        rankings = {name: detection(ranked, name, kind) for name in ("loss", *CANDIDATES) if name in values}

    ratio = np.array([len(e.target.split()) / max(1, len(e.source.split())) for e in train])
    copies = np.array([same_text(e.source, e.target) for e in train], float)
    rules = {"short target (target/source length ratio)": rule_detection(-ratio, kind),
             "source = target": rule_detection(copies, kind)}  # fmt: skip

    run = load_run(args.run_dir / args.model, "last")
    d = run.cfg.data
    encoded = encode_pairs(run.tokenizer, [(e.source, e.target) for e in train], d.row_len)
    guide_encoded = encode_pairs(run.tokenizer, [(e.source, e.target) for e in guide], d.row_len)
    pairs = [(e.source, e.target) for e in train]
    measured = lambda values: Scores([""] * len(pairs), pairs, values)  # noqa: E731
    before = per_example_losses(run.graphdef, run.state.params, encoded, d.guide_rows, d.row_len)
    other_source = per_example_losses(run.graphdef, run.state.params, deranged(encoded), d.guide_rows, d.row_len)
    contrast = other_source.mean - before.mean
    probes = [
        {"steps": 0, "lr": 0, "score": "contrast", **detection(measured({"contrast": contrast}), "contrast", kind)}
    ]
    for spec in args.finetunes:
        steps, lr = int(spec.split(":")[0]), float(spec.split(":")[1])
        start = time.time()
        tuned = finetune(run.graphdef, run.state.params, guide_encoded, steps, lr, d.guide_rows, d.row_len,
                         run.cfg.train.seed)  # fmt: skip
        after = per_example_losses(run.graphdef, tuned, encoded, d.guide_rows, d.row_len)
        scores = {k: v for k, v in finetune_scores(before, after, other_source).items() if k != "contrast"}
        seconds = round(time.time() - start)
        for name, value in scores.items():
            probes.append({"steps": steps, "lr": lr, "score": name, **detection(measured({name: value}), name, kind),
                           "seconds": seconds})  # fmt: skip

    for name, found in [
        *rankings.items(),
        *rules.items(),
        *((f"{p['score']} {p['steps']}:{p['lr']:g}", p) for p in probes),
    ]:
        per = " ".join(f"{k} {found['auc_per_kind'][k]:.3f}" for k in KINDS)
        print(f"{name:45s} AUC {found['auc']:.3f}  {per}")
    seed = "" if args.noise_seed is None else f" --noise-seed {args.noise_seed}"
    seed += "" if args.model == "scoring" else f" --model {args.model}"
    out = {"what": f"python scripts/noisy_inside_probes.py {args.run_dir} {' '.join(args.finetunes)}{seed}",
           "noise_seed": experiment.seed, "rankings": rankings, "rules": rules, "finetunes": probes}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
