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
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root[dev,hub]" >&2
  touch "$stamp"
fi
