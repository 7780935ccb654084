#!/usr/bin/env bash
# Run the paper's sweeps one after another (two at once gain nothing on 2 cores) and copy each
# one's report and plots into results/sweeps/NAME/ (the trial run directories stay in runs/).
# Started again, each sweep continues where it stopped. Usage: scripts/run_paper_sweeps.sh [NAME...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/setup_venv.sh"
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(lt-en lt-en-label-smoothing es-en de-en)
for name in "${names[@]}"; do
  .venv/bin/gradtune sweep "$name" --out "runs/sweeps/$name"
  mkdir -p "results/sweeps/$name"
  cp "runs/sweeps/$name"/{sweep.json,efficiency.png,trajectories.png,final_vs_start.png} "results/sweeps/$name/"
done
