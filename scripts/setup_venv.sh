#!/usr/bin/env bash
# Create .venv if missing and (re)install gradtune into it when pyproject.toml changed.
# Sourced by run.sh and test.sh; prints nothing when the environment is already current.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  echo "gradtune: creating $venv" >&2
  "$python" -m venv "$venv"
fi
stamp="$venv/.gradtune-installed"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  echo "gradtune: installing into $venv (first time: about a minute)" >&2
  # This machine's pip configuration names local indexes that may be absent: drop that noise.
  quiet_pip() {
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 >&2 \
      | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
    return "${PIPESTATUS[0]}"
  }
  quiet_pip --upgrade pip
  quiet_pip -e "$root[dev,hub]"
  touch "$stamp"
fi
