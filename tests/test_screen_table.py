"""scripts/screen_table.py: the table of learning-rate screens reads finished and stopped
screens, skips screens of other values, and states each start's gap to its pair's grid best."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "screen_table.py"


def load():
    spec = importlib.util.spec_from_file_location("screen_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def report(path: Path, seed: int, trials: dict[str, float], grid_best: float | None = None) -> None:
    path.mkdir(parents=True)
    guided = [
        {"label": label, "state": "complete", "dev_loss": loss, "compute": {"train_flops": 3.4e13}}
        for label, loss in trials.items()
    ]
    methods = {"grid": {"best": {"dev_loss": grid_best}}} if grid_best else {}
    data = {"base": {"set": [f"train.seed={seed}"]}, "methods": methods, "trials": {"guided": guided}}
    (path / "sweep.json").write_text(json.dumps(data))


def test_rows_and_cells(tmp_path, capsys, monkeypatch):
    table = load()
    report(tmp_path / "lt-en", 0, {}, grid_best=3.0)
    report(tmp_path / "lt-en-screen", 1, {"lr_multiplier=0.1": 3.03, "lr_multiplier=10": 3.09})
    report(tmp_path / "lt-en-smoothing", 0, {"label_smoothing=0.1": 3.3})  # another value's screen
    stopped = tmp_path / "lt-en-stopped-seed1"
    stopped.mkdir()
    (stopped / "partial.json").write_text(
        json.dumps({"trials": {"guided-lr_multiplier=1": {"dev_loss": 2.97}, "guided-lr_multiplier=10": {}}})
    )
    rows = table.rows(tmp_path)
    assert [r["screen"] for r in rows] == ["lt-en-screen", "lt-en-stopped-seed1"]
    screen, partial = rows
    assert screen["seed"] == 1 and screen["grid_best"] == 3.0 and screen["tflop"] == 34.0
    assert screen["losses"] == {"0.1": 3.03, "10": 3.09} and screen["finished"]
    assert partial["seed"] == 1 and partial["losses"] == {"1": 2.97} and not partial["finished"]
    assert table.cell(3.03, 3.0, 0.02) == "3.0300 (+1.0%)"
    assert table.cell(3.09, 3.0, 0.02) == "3.0900 (+3.0%) ✗"
    assert table.cell(None, 3.0, 0.02) == "—"

    monkeypatch.setattr("sys.argv", ["screen_table.py", "--results", str(tmp_path), "--json", str(tmp_path / "t.json")])
    table.main()
    out = capsys.readouterr().out
    assert "| `lt-en-screen` | 1 | 34.0 | 3.0300 (+1.0%) | — | 3.0900 (+3.0%) ✗ |" in out
    assert "| `lt-en-stopped-seed1` (partial) | 1 | — | — | 2.9700 (-1.0%) | — |" in out
    assert len(json.loads((tmp_path / "t.json").read_text())) == 2
