"""``gradtune report``: runs and sweeps side by side in one self-contained HTML page."""

from __future__ import annotations

import argparse
from pathlib import Path

from gradtune.cli.common import add_command

EPILOG = """\
examples:
  gradtune report runs/lt-en-guided-* runs/lt-en-baseline-*     # compare runs
  gradtune report runs/sweeps/lt-en --out lt-en.html            # a sweep, its table, plots and trials

The page opens offline in any browser: plotly.js, styles and figures are inline.
"""


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "report", run, "one HTML page comparing runs and sweeps", EPILOG)
    parser.add_argument("paths", nargs="+", metavar="RUN_OR_SWEEP", help="run directories or sweep folders")
    parser.add_argument("--out", default="report.html", help="the HTML file to write (default report.html)")


def run(args: argparse.Namespace) -> int:
    from gradtune.report import write_report

    out = write_report([Path(p) for p in args.paths], Path(args.out))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0
