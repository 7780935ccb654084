"""How Optuna's random start-up trials would fare over many sampler seeds, read off a sweep's grid.

TPE's first ``startup_trials`` points are independent draws, log-uniform over the search range,
so its best-so-far after ``k`` of them is the best of ``k`` such draws. With the grid's dev losses
interpolated linearly in log-multiplier (an estimate: above the true curve where it is convex,
near the minimum, so it slightly favours the runs it is compared with), this prints that
best-of-``k``'s spread and, for each given dev loss, the chance that it beats the draws.

    python scripts/random_startup_chance.py results/sweeps/lt-en-screens.json --trials 2 \\
        --loss guided-0.1x=3.0627 --loss guided-1x=3.0920 --loss guided-10x=3.1351
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("screens", help="a JSON file with a 'grid' list of [multiplier, dev loss] (plot_lr_screens's)")
    parser.add_argument("--trials", type=int, default=2, help="random start-up trials drawn (default 2)")
    parser.add_argument("--low", type=float, default=0.1, help="the search range's low end (default 0.1)")
    parser.add_argument("--high", type=float, default=10.0, help="the search range's high end (default 10)")
    parser.add_argument("--loss", action="append", default=[], metavar="NAME=LOSS", help="a run to compare")
    parser.add_argument("--samples", type=int, default=200_000, help="sampler seeds simulated (default 200,000)")
    args = parser.parse_args()

    with open(args.screens) as f:
        grid = np.array(json.load(f)["grid"], dtype=float)
    x, y = np.log(grid[:, 0]), grid[:, 1]
    draws = np.random.default_rng(0).uniform(np.log(args.low), np.log(args.high), (args.samples, args.trials))
    best = np.interp(draws, x, y).min(axis=1)
    p10, p50, p90 = np.percentile(best, [10, 50, 90])
    print(f"best of {args.trials} random draws over [{args.low:g}, {args.high:g}]: "
          f"median {p50:.4f}, 10th percentile {p10:.4f}, 90th {p90:.4f}, mean {best.mean():.4f}")  # fmt: skip
    for entry in args.loss:
        name, _, loss = entry.partition("=")
        print(f"{name}: {float(loss):.4f} beats the best of {args.trials} draws in {np.mean(best > float(loss)):.1%} "
              "of sampler seeds")  # fmt: skip


if __name__ == "__main__":
    main()
