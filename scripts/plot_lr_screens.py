"""Issue 16's screens on one plot: each guided run's learned learning-rate multiplier against
step, one panel per screen, over the held constants of the pair's 9-point grid (their dev loss
beside them).

    python scripts/plot_lr_screens.py results/sweeps/lt-en lt-en-forward lt-en-forward-240 ... \
        [--runs runs/sweeps] [--results results/sweeps] [--out results/sweeps/lt-en-screens]

GRID is a committed sweep folder holding the grid (its ``sweep.json``); each SCREEN names a
sweep whose guided trials' run folders are under ``--runs`` (their ``metrics.jsonl``: the
learned multiplier at every step). Writes OUT.json (every trajectory, each 5th step, with its
dev loss and compute; dotted in the plot, the attempts a restart abandoned) and OUT.png. A
screen stopped before its report (no ``sweep.json``) is drawn from its ``partial.json``
(``scripts/partial_screen.py``) under ``--results``, its finished trials only; one whose run
folders are gone (runs/ is not committed) is taken from the OUT.json written before, when it
holds that screen.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gradtune.core.step import value_key
from gradtune.files import write_json
from gradtune.train.logbook import read_metrics

KEY = "guidance.lr_multiplier"
EVERY = 5


def multiplier(trial: dict) -> float:
    return float(next(item.split("=", 1)[1] for item in reversed(trial["overrides"]) if item.startswith(KEY + "=")))


def trajectory(run_dir: Path, records: list[dict] | None = None) -> list[tuple[int, float]]:
    key = value_key("learning_rate")
    points = [(r["step"], r[key]) for r in (read_metrics(run_dir) if records is None else records) if key in r]
    return [p for p in points if p[0] % EVERY == 1 or p[0] == points[-1][0]]


def abandoned(run_dir: Path) -> list[list[tuple[int, float]]]:
    """The trajectories of the attempts a run abandoned (``guidance.warmup_restarts``), in order."""
    files = sorted(run_dir.glob("metrics.attempt-*.jsonl"), key=lambda f: int(f.stem.rsplit("-", 1)[1]))
    return [trajectory(run_dir, [json.loads(line) for line in f.read_text().splitlines() if line]) for f in files]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("grid", type=Path, help="a sweep folder with the grid's sweep.json")
    parser.add_argument("screens", nargs="+", help="sweeps whose guided trials to draw")
    parser.add_argument("--runs", type=Path, default=Path("runs/sweeps"), help="where the screens' run folders are")
    parser.add_argument("--results", type=Path, default=Path("results/sweeps"), help="where partial.json files are")
    parser.add_argument("--out", type=Path, default=Path("results/sweeps/lt-en-screens"))
    args = parser.parse_args()

    grid = json.loads((args.grid / "sweep.json").read_text())["trials"]["grid"]
    constants = sorted((multiplier(t), t["dev_loss"]) for t in grid if t.get("dev_loss") is not None)
    best = min(loss for _, loss in constants)
    out_json = args.out.with_suffix(".json")
    before = json.loads(out_json.read_text())["screens"] if out_json.exists() else {}
    screens = {}
    for name in args.screens:
        partial = args.results / name / "partial.json"
        if not (args.runs / name / "sweep.json").exists() and partial.exists():
            screens[name] = [
                {
                    "start": float(label.rsplit("=", 1)[1]),
                    "dev_loss": t["dev_loss"],
                    "versus_best_constant": t["dev_loss"] / best - 1,
                    "train_tflop": None,  # not in partial.json
                    "trajectory": t["trajectory"],
                }
                for label, t in json.loads(partial.read_text())["trials"].items()
                if "dev_loss" in t
            ]
            continue
        if not (args.runs / name / "sweep.json").exists():
            if name not in before:
                raise SystemExit(f"{name}: no {args.runs / name / 'sweep.json'}, and {out_json} does not hold it")
            screens[name] = before[name]
            continue
        sweep = json.loads((args.runs / name / "sweep.json").read_text())
        screens[name] = [
            {
                "start": multiplier(t),
                "dev_loss": t.get("dev_loss"),
                "versus_best_constant": t["dev_loss"] / best - 1 if t.get("dev_loss") is not None else None,
                "train_tflop": t["compute"]["train_flops"] / 1e12,
                "overrides": t["overrides"],
                "trajectory": trajectory(args.runs / name / "trials" / Path(t["run_dir"]).name),
                "abandoned": abandoned(args.runs / name / "trials" / Path(t["run_dir"]).name),
            }
            for t in sweep["trials"]["guided"]
            if t.get("state") == "complete"
        ]
    write_json(out_json, {"grid": constants, "best_constant": best, "screens": screens})

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(screens))
    rows = -(-len(screens) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.8 * rows), sharey=True, squeeze=False)
    colors = {}  # one colour per start, the same in every panel
    for ax in axes.flat[len(screens) :]:
        ax.set_visible(False)
    for ax, (name, trials) in zip(axes.flat, screens.items(), strict=False):  # spare panels hidden above
        for value, loss in constants:
            ax.axhline(value, color="0.8", lw=0.8, zorder=0)
            ax.annotate(f"{value:g}×: {loss:.3f}", (600, value), fontsize=6, color="0.45", ha="right", va="bottom")
        for t in sorted(trials, key=lambda t: t["start"]):
            steps, values = zip(*t["trajectory"], strict=True)
            label = f"from {t['start']:g}×: {t['dev_loss']:.3f} ({t['versus_best_constant']:+.1%})"
            color = colors.setdefault(t["start"], f"C{len(colors)}")
            ax.plot(steps, values, label=label, color=color)
            for attempt in t.get("abandoned", ()):  # dotted: the steps a restart gave up
                ax.plot(*zip(*attempt, strict=True), color=color, ls=":", lw=1.5)
        ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=6, loc="lower right")
    for row in axes:
        row[0].set_ylabel(f"learned multiplier (grid held: best {best:.4f})", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=90)
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
