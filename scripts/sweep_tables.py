"""Markdown tables of committed sweep reports (results/sweeps/*/sweep.json), for the README's Results.

python scripts/sweep_tables.py                     # every sweep under results/sweeps/
python scripts/sweep_tables.py results/sweeps/lt-en
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def trial_rows(report: dict) -> list[str]:
    rows = ["| method | trial | dev loss | dev BLEU | TFLOP | train s |", "|---|---|---|---|---|---|"]
    for method, trials in report["trials"].items():
        for t in trials:
            loss = "pruned" if t["state"] == "pruned" else f"{t['dev_loss']:.4f}"
            bleu = f"{t['dev_bleu']:.2f}" if t.get("dev_bleu") is not None else "-"
            flops = t.get("compute", {}).get("train_flops", 0) / 1e12
            seconds = t.get("train_seconds") or t.get("compute", {}).get("train_seconds") or 0
            rows.append(f"| {method} | {t['label']} | {loss} | {bleu} | {flops:.2f} | {seconds:.0f} |")
    return rows


COLUMNS = (("dev_loss", ".4f"), ("dev_bleu", ".2f"), ("test_bleu", ".2f"), ("test_chrf", ".2f"))


def method_rows(report: dict) -> list[str]:
    rows = [
        "| method | trials | TFLOP | best dev loss | its dev BLEU | test BLEU | test chrF | best trial |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, m in report["methods"].items():
        b = m["best"] or {}
        cells = [format(b[k], f) if b.get(k) is not None else "-" for k, f in COLUMNS]
        rows.append(f"| {method} | {m['trials']} | {m['compute_flops'] / 1e12:.1f} | " + " | ".join(cells)
                    + f" | {b.get('label', '-')} |")  # fmt: skip
    return rows


def main(paths: list[str]) -> None:
    folders = [Path(p) for p in paths] or sorted(Path("results/sweeps").glob("*/"))
    for folder in folders:
        report = json.loads((folder / "sweep.json").read_text())
        print(f"### {report['sweep']}\n")
        print("\n".join(method_rows(report)) + "\n")
        print("\n".join(trial_rows(report)) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
