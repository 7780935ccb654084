"""The run's PNG: effective learning rate, guided values and losses against step."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def plot_run(records: list[dict], path: Path, title: str = "") -> None:
    values = sorted({k for r in records for k in r if k.startswith("value/")})
    fig, axes = plt.subplots(2 + len(values), 1, figsize=(7, 2.6 * (2 + len(values))), sharex=True)
    ax = axes[0]
    for key in ("train_loss", "guide_loss", "dev_loss"):
        steps, ys = _series(records, key)
        if ys:
            ax.plot(steps, ys, marker="o" if key == "dev_loss" else None, label=key.replace("_", " "))
    ax.set_ylabel("loss")
    ax.legend()
    ax.set_title(title)
    ax = axes[1]
    ax.plot(*_series(records, "learning_rate"))
    ax.set_ylabel("effective learning rate")
    for ax, key in zip(axes[2:], values, strict=True):
        ax.plot(*_series(records, key))
        ax.set_ylabel(key.removeprefix("value/"))
        if key == "value/learning_rate":
            ax.set_ylabel("lr multiplier")
        _, ys = _series(records, key)
        if ys and min(ys) > 0 and max(ys) / min(ys) > 10:
            ax.set_yscale("log")
    axes[-1].set_xlabel("step")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)
