#!/usr/bin/env bash
# Set up and run the whole check: lint (ruff), types (mypy), then every test (pytest,
# doctests included). Exits non-zero on any failure, and when pytest collected no test.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1

echo "== ruff"
.venv/bin/ruff check . || exit 1
echo "== mypy"
.venv/bin/mypy stream watchkeeper bench tests || exit 1

echo "== pytest"
.venv/bin/python -m pytest -p no:cacheprovider "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
