"""``gradtune demo``: the original notebook's comparison, run by run, then one report.

The runs are a file's (``configs/experiments/demo.toml``): a base config and ``--set``
overrides, then each run's own overrides; each is an ordinary run directory under the
output folder, kept once finished (started again, the demo goes on where it stopped).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from gradtune.errors import GradtuneError
from gradtune.experiments.runs import read_experiment_file, run_once
from gradtune.report import write_report

CONFIG = "demo"


def run_demo(out: Path, quick: bool = False, overrides: tuple[str, ...] = (), config: str = CONFIG,
             progress: bool = False) -> Path:  # fmt: skip
    """Every run of the demo into ``out``, then ``out/report.html``; returns the report's path."""
    path, tree = read_experiment_file(config, quick)
    try:
        demo = tree["demo"]
        runs = [(r["name"], list(r.get("set", ()))) for r in demo["runs"]]
    except (KeyError, TypeError) as e:
        raise GradtuneError(f"{path}: a demo needs [demo] with [[demo.runs]] of name and set ({e})") from e
    base = [*demo.get("set", ()), *overrides]
    start = time.time()
    for i, (name, sets) in enumerate(runs, 1):
        print(f"[{i}/{len(runs)}] {name}", file=sys.stderr)
        run_once(name, out / name, demo.get("config", "default"), [*base, *sets], progress)
    report = write_report([out / name for name, _ in runs], out / "report.html")
    print(f"demo: {len(runs)} runs in {(time.time() - start) / 60:.1f} min", file=sys.stderr)
    return report
