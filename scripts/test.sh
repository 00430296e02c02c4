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

# Servers this run starts are its own: free ports and private folders, stopped (by the
# scripts, which stop only the server of their folder) and removed at the end. Servers
# named by DATABASE_URL / KAFKA_BOOTSTRAP are used as they are and never stopped.
started=()
folders=()
cleanup() {
  for service in "${started[@]}"; do
    bash "scripts/$service.sh" stop || echo "could not stop $service" >&2
  done
  for folder in "${folders[@]}"; do
    rm -rf "$folder"
  done
}
trap cleanup EXIT

if [ -z "${DATABASE_URL:-}" ]; then
  echo "== starting PostgreSQL (a server of this run's own)"
  folders+=("$(mktemp -d /tmp/watchkeeper-test-pg.XXXXXX)")
  chmod 755 "${folders[-1]}"  # the postgres user (when we are root) must reach its data
  export WK_PG_DIR="${folders[-1]}/data"
  export WK_PG_PORT; WK_PG_PORT=$(.venv/bin/python scripts/free_port.py) || exit 1
  started+=(postgres)
  DATABASE_URL=$(bash scripts/postgres.sh start) || { echo "PostgreSQL did not start" >&2; exit 1; }
fi
if [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
  echo "== starting Kafka (a broker of this run's own)"
  folders+=("$(mktemp -d /tmp/watchkeeper-test-kafka.XXXXXX)")
  export WK_KAFKA_DIR="${folders[-1]}"
  export WK_KAFKA_PORT; WK_KAFKA_PORT=$(.venv/bin/python scripts/free_port.py --pair) || exit 1
  started+=(kafka)
  KAFKA_BOOTSTRAP=$(bash scripts/kafka.sh start) || { echo "Kafka did not start" >&2; exit 1; }
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
