#!/usr/bin/env bash
# A private PostgreSQL server for tests and local use, on 127.0.0.1 only.
#   scripts/postgres.sh start   start it (initialising it the first time); print its URL
#   scripts/postgres.sh stop    stop it (only the server this script started: its data dir)
#   scripts/postgres.sh url     print its URL
# Settings: WK_PG_PORT (55432), WK_PG_DIR (/tmp/watchkeeper-pg-$WK_PG_PORT).
# Uses Debian's PostgreSQL (installs it with apt-get when missing and we are root).
set -euo pipefail
PORT=${WK_PG_PORT:-55432}
DIR=${WK_PG_DIR:-/tmp/watchkeeper-pg-$PORT}
USER_NAME=watchkeeper
DB_NAME=watchkeeper
URL="postgresql://$USER_NAME@127.0.0.1:$PORT/$DB_NAME"

bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$d" ] && [ "$(id -u)" = 0 ]; then
    echo "postgres.sh: installing PostgreSQL with apt-get" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  fi
  [ -n "$d" ] || { echo "postgres.sh: PostgreSQL is not installed" >&2; exit 1; }
  echo "$d"
}

# initdb and postgres refuse to run as root: run them as the 'postgres' user then.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  local bin; bin=$(bindir)
  if [ ! -s "$DIR/PG_VERSION" ]; then
    mkdir -p "$DIR"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$DIR"
    chmod 700 "$DIR"
    as_owner "$bin/initdb" -D "$DIR" -U "$USER_NAME" -A trust -E UTF8 --no-instructions >"$DIR.initdb.log" 2>&1 \
      || { cat "$DIR.initdb.log" >&2; exit 1; }
  fi
  if ! as_owner "$bin/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
    as_owner "$bin/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w -t 60 \
      -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50" \
      start >/dev/null || { tail -n 20 "$DIR/server.log" >&2; exit 1; }
  fi
  for _ in $(seq 1 60); do
    "$bin/pg_isready" -h 127.0.0.1 -p "$PORT" -q && break
    sleep 0.5
  done
  "$bin/pg_isready" -h 127.0.0.1 -p "$PORT" -q || { echo "postgres.sh: not ready" >&2; exit 1; }
  if ! "$bin/psql" -h 127.0.0.1 -p "$PORT" -U "$USER_NAME" -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'" | grep -q 1; then
    "$bin/createdb" -h 127.0.0.1 -p "$PORT" -U "$USER_NAME" "$DB_NAME"
  fi
  echo "$URL"
}

stop() {
  local bin; bin=$(bindir)
  if [ -s "$DIR/postmaster.pid" ]; then
    as_owner "$bin/pg_ctl" -D "$DIR" -m fast -w -t 60 stop >/dev/null
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) echo "$URL" ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
