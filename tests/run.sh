#!/usr/bin/env bash
# Sets up the development environment in .venv (first time: a few minutes) and runs the checks:
# ruff, then the whole test suite. Extra arguments go to pytest (e.g. -k hook, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check --progress-bar off)
"${pip[@]}" -c constraints.txt -r requirements.txt -r requirements-dev.txt
# Packages that declare opencv-python go in without dependencies (see requirements-nodeps.txt).
"${pip[@]}" --no-deps -c constraints.txt -r requirements-nodeps.txt
# The UI test's browser driver and page libraries (tests/ui/package-lock.json), when Node is here.
if command -v npm >/dev/null 2>&1 && ! [ tests/ui/node_modules/.package-lock.json -nt tests/ui/package-lock.json ]; then
  npm ci --prefix tests/ui --no-audit --no-fund --loglevel=error
  # Stash loads every .yml under its plugins folder as a plugin: none may live in a copied folder.
  find tests/ui/node_modules -name '*.yml' -delete
fi
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
