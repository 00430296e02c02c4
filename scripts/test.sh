#!/usr/bin/env bash
# Set up and run the whole check: lint (ruff), types (mypy), the layers (lint-imports),
# then every test (pytest: unit, doctest, scenario and integration tests). Starts
# PostgreSQL (scripts/postgres.sh) when DATABASE_URL is not set and Kafka (scripts/kafka.sh)
# when KAFKA_BOOTSTRAP is not set, and stops what it started. Exits non-zero on any failure,
# and when pytest collected no test. Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1

echo "== ruff"
.venv/bin/ruff check . || exit 1
echo "== mypy"
.venv/bin/mypy config stream alerts services sim migrations watchkeeper bench tests || exit 1
echo "== lint-imports (the layers in pyproject.toml)"
.venv/bin/lint-imports || exit 1

started=()
cleanup() {
  for service in "${started[@]}"; do
    bash "scripts/$service.sh" stop || echo "could not stop $service" >&2
  done
}
trap cleanup EXIT

if [ -z "${DATABASE_URL:-}" ]; then
  echo "== starting PostgreSQL"
  DATABASE_URL=$(bash scripts/postgres.sh start) || { echo "PostgreSQL did not start" >&2; exit 1; }
  started+=(postgres)
fi
if [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
  echo "== starting Kafka"
  KAFKA_BOOTSTRAP=$(bash scripts/kafka.sh start) || { echo "Kafka did not start" >&2; exit 1; }
  started+=(kafka)
fi
export DATABASE_URL KAFKA_BOOTSTRAP
export WATCHKEEPER_REQUIRE_SERVICES=1

echo "== pytest"
.venv/bin/python -m pytest -p no:cacheprovider "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  rc=1
fi
exit "$rc"
