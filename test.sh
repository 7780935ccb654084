#!/usr/bin/env bash
# Install (as run.sh does), then run the test suite. Extra arguments go to pytest.
set -euo pipefail
root=$(cd "$(dirname "$0")" && pwd)
"$root/scripts/setup_venv.sh"
cd "$root"
exec "$root/.venv/bin/python" -m pytest "$@"
