"""Metrics to ``metrics.jsonl`` (one JSON object per line) and TensorBoard event files."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tensorboardX import SummaryWriter


class Logbook:
    def __init__(self, run_dir: Path):
        self.jsonl = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self.tensorboard = SummaryWriter(str(run_dir / "tensorboard"))

    @classmethod
    def discard(cls) -> Logbook:
        """A logbook that writes nothing (the processes of a run but the first)."""
        book = cls.__new__(cls)
        book.jsonl, book.tensorboard = None, None
        return book

    def write(self, step: int, metrics: dict[str, float]) -> None:
        if self.jsonl is None:
            return
        clean = {k: (float(v) if math.isfinite(float(v)) else None) for k, v in metrics.items()}
        self.jsonl.write(json.dumps({"step": step, **clean}) + "\n")
        self.jsonl.flush()
        for key, value in clean.items():
            if value is not None:
                self.tensorboard.add_scalar(key, value, step)

    def close(self) -> None:
        if self.jsonl is None:
            return
        self.jsonl.close()
        self.tensorboard.close()


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
