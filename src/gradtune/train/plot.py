"""The run's PNG: effective learning rate, guided values and losses against step."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from gradtune.core.step import parse_value_key, value_key
from gradtune.files import replacing


def _series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def plot_run(records: list[dict], path: Path, title: str = "", row_names: dict[str, list[str]] | None = None) -> None:
    """Losses, the effective learning rate and one panel per guided value; a vector value
    (``value/NAME/i``, e.g. corpus weights) gets one line per row, labelled by ``row_names``."""
    parsed = {k: p for r in records for k in r if (p := parse_value_key(k))}
    values = sorted({name for name, _ in parsed.values()})
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
    for ax, name in zip(axes[2:], values, strict=True):
        rows = sorted(row for n, row in parsed.values() if n == name and row is not None)
        labels = (row_names or {}).get(name, [])
        every = []
        for index in rows or [-1]:
            key = value_key(name, index) if index >= 0 else value_key(name)
            steps, ys = _series(records, key)
            ax.plot(steps, ys, label=labels[index] if 0 <= index < len(labels) else str(index if rows else name))
            every += ys
        ax.set_ylabel("lr multiplier" if name == "learning_rate" else name)
        if rows:
            ax.legend(fontsize="small")
        if every and min(every) > 0 and max(every) / min(every) > 10:
            ax.set_yscale("log")
    axes[-1].set_xlabel("step")
    fig.tight_layout()
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
