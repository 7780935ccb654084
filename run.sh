#!/usr/bin/env bash
# The main job: train a tiny lt→en Transformer with a guided learning rate on the embedded
# corpus, evaluate it, print a summary. Extra arguments go to `gradtune train`.
set -euo pipefail
root=$(cd "$(dirname "$0")" && pwd)
"$root/scripts/setup_venv.sh"
exec "$root/.venv/bin/gradtune" train "$@"
