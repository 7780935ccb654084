"""Forward-mode hypergradients by the age of their tangent: which way the learning rate's
hypergradient points (raise: < 0) as the tangent ages from its last restart, from the per-step
logs of a sweep's guided trials. It measures what issue 16's screens suggest: a young tangent
(a short horizon) says "lower" as the one-step look-ahead does, an old one says "raise".

    python scripts/tangent_age.py es-en-forward-fast [more sweeps] [--after 100] [--runs runs/sweeps]
        [--json results/sweeps/tangent_age.json]

Steps before ``--after`` (the base schedule's warm-up, where the warm-up rule acts) are left out.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

AGES = ((0, 4), (5, 9), (10, 19), (20, 39), (40, 10**9))  # steps since the tangent's last restart
MULTIPLIERS = ((0.0, 2.0), (2.0, 3.5), (3.5, 5.0), (5.0, float("inf")))  # the learning rate's, [lo, hi)


def guided_steps(metrics: Path, after: int) -> list[tuple[int, float, float]]:
    """``(age, hypergradient, multiplier)`` of each guided step from ``after`` on."""
    with open(metrics) as f:
        rows = [json.loads(line) for line in f]
    out, age = [], 0
    for r in rows:
        if "hypergrad/learning_rate" not in r:
            continue
        age = 0 if r.get("tangents_reset") else age + 1
        if r["step"] >= after:
            out.append((age, r["hypergrad/learning_rate"], r["value/learning_rate"]))
    return out


def table(steps: list[tuple[int, float, float]]) -> list[dict]:
    """One row per (age, multiplier) cell that holds steps: age and multiplier go together (a high
    rate restarts its tangent often), so each is read with the other held."""
    rows = []
    for lo, hi in AGES:
        for m_lo, m_hi in MULTIPLIERS:
            group = [s for s in steps if lo <= s[0] <= hi and m_lo <= s[2] < m_hi]
            if group:
                rows.append({
                    "ages": f"{lo}–{hi}" if hi < 10**9 else f"{lo}+",
                    "multipliers": f"{m_lo:g}–{m_hi:g}×" if m_hi < float("inf") else f"{m_lo:g}×+",
                    "steps": len(group),
                    "raise_share": sum(g < 0 for _, g, _ in group) / len(group),
                    "median_hypergradient": statistics.median(g for _, g, _ in group),
                })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="sweeps whose trials to read, e.g. es-en-forward-fast")
    parser.add_argument("--after", type=int, default=100, help="the first step counted (default 100)")
    parser.add_argument("--runs", default="runs/sweeps", help="where the sweeps ran (default runs/sweeps)")
    parser.add_argument("--json", help="also write the tables here")
    args = parser.parse_args()
    results = {}
    for name in args.names:
        trials = sorted(Path(args.runs, name, "trials").glob("guided-*/metrics.jsonl"))
        if not trials:
            raise SystemExit(f"tangent_age: no guided trial under {Path(args.runs, name, 'trials')}")
        steps = [s for metrics in trials for s in guided_steps(metrics, args.after)]
        if not steps:
            raise SystemExit(f"tangent_age: {name}'s trials log no forward-mode hypergradient from step {args.after}")
        results[name] = table(steps)
        print(f"{name} ({len(trials)} trials, guided steps from {args.after}):")
        print(f"  {'age':>7} {'multiplier':>10} {'steps':>6} {'raise':>6} {'median hypergrad':>17}")
        for row in results[name]:
            print(f"  {row['ages']:>7} {row['multipliers']:>10} {row['steps']:>6} {row['raise_share']:>6.0%} "
                  f"{row['median_hypergradient']:>17.4f}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"after": args.after, "sweeps": results}, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
