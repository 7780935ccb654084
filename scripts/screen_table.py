"""Every committed screen of the guided learning rate, one row each: the sweep, its seed and
compute, and the dev loss each start (0.1×, 1×, 10×) ended at, beside its pair's seed-0 grid
best — the table behind the short-horizon section of the README and issue 16's note.

    python scripts/screen_table.py [--results results/sweeps] [--json out.json] [--bar 0.02]

A screen is a folder ``results/sweeps/PAIR-*`` holding a finished report (``sweep.json``) or the
trials of a stopped one (``partial.json``, see ``scripts/partial_screen.py``); the grid best is
``results/sweeps/PAIR/sweep.json``'s. A start not run (or stopped before its end) shows as ``—``.
A ``partial.json`` records no seed or compute: its seed is read from the name (``-seed1``), its TFLOP shows as ``—``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

STARTS = ("0.1", "1", "10")


def grid_best(report: Path) -> float | None:
    """The best grid trial's dev loss of a finished paper sweep's report."""
    if not report.exists():
        return None
    grid = json.loads(report.read_text())["methods"].get("grid")
    return grid["best"]["dev_loss"] if grid else None


def screen(folder: Path) -> dict | None:
    """One screen's seed, compute and dev loss per start, from its report or partial trials."""
    losses: dict[str, float] = {}
    flops: list[float] = []
    seed = 0
    if (report := folder / "sweep.json").exists():
        data = json.loads(report.read_text())
        for item in data["base"]["set"]:
            if item.startswith("train.seed="):
                seed = int(item.partition("=")[2])
        for trial in data["trials"].get("guided", []):
            key, _, start = trial["label"].partition("=")
            if key != "lr_multiplier":
                return None  # a screen of another value (label smoothing, …)
            if trial.get("state") == "complete" and trial.get("dev_loss") is not None:
                losses[start] = trial["dev_loss"]
                flops.append(trial["compute"]["train_flops"])
    elif (partial := folder / "partial.json").exists():
        seed = 1 if re.search(r"-seed1(\b|-)", folder.name) else 0
        for key, trial in json.loads(partial.read_text())["trials"].items():
            if not key.startswith("guided-lr_multiplier="):
                return None
            if "dev_loss" in trial:
                losses[key.partition("=")[2]] = trial["dev_loss"]
    else:
        return None
    if not losses:
        return None
    return {"seed": seed, "losses": losses, "tflop": max(flops) / 1e12 if flops else None,
            "finished": (folder / "sweep.json").exists()}  # fmt: skip


def rows(results: Path) -> list[dict]:
    out = []
    pairs = (p for p in results.iterdir() if re.fullmatch(r"[a-z]{2}-[a-z]{2}", p.name) and (p / "sweep.json").exists())
    for pair_dir in sorted(pairs):
        pair = pair_dir.name
        best = grid_best(pair_dir / "sweep.json")
        for folder in sorted(results.glob(f"{pair}-*")):
            if not folder.is_dir() or not (found := screen(folder)):
                continue
            if not set(found["losses"]) <= set(STARTS):
                continue  # not a screen of the learning-rate multiplier's starts
            out.append({"screen": folder.name, "pair": pair, "grid_best": best, **found})
    return out


def cell(loss: float | None, best: float | None, bar: float) -> str:
    if loss is None:
        return "—"
    if best is None:
        return f"{loss:.4f}"
    gap = loss / best - 1
    mark = "" if gap <= bar else " ✗"
    return f"{loss:.4f} ({gap:+.1%}){mark}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results/sweeps"))
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--bar", type=float, default=0.02, help="gap to the grid best marked ✗ above this")
    args = parser.parse_args()
    if not args.results.is_dir():
        parser.error(f"no such folder: {args.results}")
    table = rows(args.results)
    print("| screen | seed | TFLOP | from 0.1× | from 1× | from 10× |")
    print("|---|---|---|---|---|---|")
    for r in table:
        tflop = f"{r['tflop']:.1f}" if r["tflop"] else "—"
        cells = " | ".join(cell(r["losses"].get(s), r["grid_best"], args.bar) for s in STARTS)
        print(f"| `{r['screen']}`{'' if r['finished'] else ' (partial)'} | {r['seed']} | {tflop} | {cells} |")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
