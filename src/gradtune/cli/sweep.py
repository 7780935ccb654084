"""``gradtune sweep``: guided runs against a grid, Optuna and learning-rate-free optimizers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gradtune.cli.common import add_command

EPILOG = """\
examples:
  gradtune sweep configs/sweeps/lt-en.toml                  # into runs/sweeps/lt-en
  gradtune sweep lt-en --quick                              # the file's quick overlay
  gradtune sweep lt-en --set optuna.trials=10 --set train.seed=1
  gradtune sweep lt-en --workers 2                          # two local processes, one storage
  gradtune sweep lt-en --storage postgresql://host/db       # ... or many machines: start the
  gradtune sweep lt-en --storage postgresql://host/db --worker   # first, then workers anywhere

A sweep interrupted (Ctrl-C, kill -9, a crash) continues when started again with the same
--out: finished trials are kept; an unfinished one goes on from its newest checkpoint (from
the start if it has none; a killed worker's trial once its heartbeat is 10 s stale). A trial
is what it runs (config, set lists, point): after the sweep file changed, trials of settings
it no longer has are left out of the report.
--set KEY=VALUE changes the sweep file when KEY starts with one of its sections (sweep.,
grid., guided., optuna., lr-free., seeds., report.), and is a --set of every trial's run
otherwise. Each trial is a run directory under OUT/trials/.
Writes OUT/sweep.json, efficiency.png, trajectories.png and final_vs_start.png.
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(
        commands, "sweep", run, "compare guided runs with a grid, Optuna and learning-rate-free optimizers", EPILOG
    )
    parser.add_argument("sweep", metavar="SWEEP", help="a sweep file (TOML), or the name of one in configs/sweeps/")
    parser.add_argument("--out", metavar="DIR", help="the sweep's folder (default runs/sweeps/NAME[-quick])")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override the sweep or its runs (repeatable)"
    )
    parser.add_argument("--quick", action="store_true", help="the sweep file's quick overlay (the test's version)")
    parser.add_argument("--storage", metavar="URL", help="an Optuna storage URL (default sqlite:///OUT/sweep.db)")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="local worker processes (default 1)")
    parser.add_argument("--worker", action="store_true", help="only take trials (another process queues and reports)")
    parser.add_argument(
        "--report", action="store_true", help="only write the report of the trials finished so far (run none)"
    )


def run(args: argparse.Namespace) -> int:
    from gradtune.errors import GradtuneError
    from gradtune.experiments.sweep import format_report, read_sweep, run_sweep

    if args.workers < 1:
        raise GradtuneError(f"--workers is {args.workers}; give at least 1")
    from gradtune.train.config import CONFIGS, config_file

    path = config_file(args.sweep, CONFIGS / "sweeps")
    sweep = read_sweep(path, "quick" if args.quick else None, tuple(args.set))
    out = Path(args.out or f"runs/sweeps/{sweep.name}{'-quick' if args.quick else ''}")
    argv = [sys.executable, "-m", "gradtune", "sweep", str(path), "--out", str(out)]
    argv += [a for item in args.set for a in ("--set", item)] + (["--quick"] if args.quick else [])
    if not args.worker:
        print(f"gradtune: sweep {sweep.name} into {out}", file=sys.stderr)
    if args.report and not (out / "sweep.db").exists() and not args.storage:
        raise GradtuneError(f"{out} holds no sweep to report; run the sweep first (or give --out and --storage)")
    report = run_sweep(sweep, out, args.storage, args.workers, argv, report=not args.worker, run_trials=not args.report)
    if report is not None:
        print(format_report(report))
        print(f"wrote {out / 'sweep.json'}, {out / 'efficiency.png'}, {out / 'trajectories.png'}, "
              f"{out / 'final_vs_start.png'}")  # fmt: skip
    return 0
