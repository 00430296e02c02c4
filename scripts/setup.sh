#!/usr/bin/env bash
# Set up a development environment: a virtualenv in .venv with Watchkeeper installed
# (editable) and its development tools. Idempotent; needs only python3 (3.11+) and PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
echo "setup: .venv ready ($(.venv/bin/python --version), watchkeeper $(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("watchkeeper"))'))"
