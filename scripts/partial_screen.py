"""A screen stopped after some of its starts: each finished trial's dev losses and multiplier
path, from a sweep's run folder, into ``results/sweeps/NAME/partial.json``; with ``--stopped``
also the trial stopped midway, its dev losses so far and ``stopped_at_step``.

    python scripts/partial_screen.py es-en-forward-rescale [--stopped] [--runs runs/sweeps] [--results results/sweeps]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def trial(metrics: Path, stopped: bool = False) -> dict | None:
    with open(metrics) as f:
        rows = [json.loads(line) for line in f]
    losses = [[r["step"], r["dev_loss"]] for r in rows if "dev_loss" in r]
    steps = max((r["step"] for r in rows), default=0)
    path = [[r["step"], r["value/learning_rate"]] for r in rows if "value/learning_rate" in r and r["step"] % 5 == 1]
    if losses and losses[-1][0] == steps:
        return {"dev_loss": losses[-1][1], "dev_losses": losses, "trajectory": path}
    # not finished: its last dev loss (if any) is not the end's
    return {"stopped_at_step": steps, "dev_losses": losses, "trajectory": path} if stopped and path else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the sweep file's name, e.g. es-en-forward-rescale")
    parser.add_argument("--stopped", action="store_true", help="also the trial stopped midway")
    parser.add_argument("--runs", default="runs/sweeps", help="where the sweep ran (default runs/sweeps)")
    parser.add_argument("--results", default="results/sweeps", help="where to write (default results/sweeps)")
    args = parser.parse_args()
    trials = {}
    for metrics in sorted(Path(args.runs, args.name, "trials").glob("*/metrics.jsonl")):
        if (done := trial(metrics, args.stopped)) is not None:
            trials[metrics.parent.name] = done
    if not trials:
        raise SystemExit(f"partial_screen: no finished trial under {Path(args.runs, args.name, 'trials')}")
    out = Path(args.results, args.name, "partial.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    note = f"partial screen of configs/sweeps/{args.name}.toml: the trials that finished before it was stopped"
    out.write_text(json.dumps({"note": note, "trials": trials}, indent=1) + "\n")
    for name, done in trials.items():
        end = f"dev loss {done['dev_loss']:.4f}" if "dev_loss" in done else f"stopped at step {done['stopped_at_step']}"
        print(f"{name}: {end}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
