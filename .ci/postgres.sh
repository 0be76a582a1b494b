# Sourced by .ci/run: a PostgreSQL server on 127.0.0.1 for the tests, and its URL in
# MBCSMS_TEST_DATABASE_URL. Works on a fresh Debian 12 as root (installs Debian's postgresql),
# and reuses the server if an earlier run left it running.
# shellcheck shell=bash

MBCSMS_PG_PORT="${MBCSMS_PG_PORT:-54329}"
MBCSMS_PG_DIR="${MBCSMS_PG_DIR:-/tmp/mbcsms-ci-postgres}"
MBCSMS_PG_DB=mbcsms_test

mbcsms_pg_bindir() {
  local dir
  # Debian keeps the server programs in /usr/lib/postgresql/VERSION/bin, off PATH.
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return 0; fi
  done
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v initdb)")"; return 0
  fi
  return 1
}

# Run a server program as the postgres user when we are root (initdb and postgres refuse root).
mbcsms_pg_as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if ! MBCSMS_PG_BIN="$(mbcsms_pg_bindir)"; then
  echo "postgres.sh: installing Debian's postgresql" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # A policy-rc.d that says no keeps the package from starting its own cluster on 5432 (we run
  # ours below); one that was already there is left as it is.
  mbcsms_pg_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    mbcsms_pg_policy=/usr/sbin/policy-rc.d
  fi
  mbcsms_pg_status=0
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null || mbcsms_pg_status=$?
  if [ -n "$mbcsms_pg_policy" ]; then rm -f "$mbcsms_pg_policy"; fi
  if [ "$mbcsms_pg_status" != 0 ]; then echo "postgres.sh: apt-get install postgresql failed" >&2; return 1; fi
  MBCSMS_PG_BIN="$(mbcsms_pg_bindir)"
fi

mbcsms_pg_ready() {
  "$MBCSMS_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$MBCSMS_PG_PORT" -U postgres
}

mbcsms_pg_start() {
  mbcsms_pg_as_owner "$MBCSMS_PG_BIN/pg_ctl" -D "$MBCSMS_PG_DIR/data" -l "$MBCSMS_PG_DIR/server.log" \
    -w -t 60 -o "-p $MBCSMS_PG_PORT -k $MBCSMS_PG_DIR -c listen_addresses=127.0.0.1 -F" start >/dev/null
}

if ! mbcsms_pg_ready; then
  if ! { [ -f "$MBCSMS_PG_DIR/data/PG_VERSION" ] && mbcsms_pg_start; }; then
    # No cluster yet, or one that will not start: make a new one (test data only).
    rm -rf "$MBCSMS_PG_DIR"
    mkdir -p "$MBCSMS_PG_DIR"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$MBCSMS_PG_DIR"; fi
    chmod 700 "$MBCSMS_PG_DIR"
    mbcsms_pg_as_owner "$MBCSMS_PG_BIN/initdb" -D "$MBCSMS_PG_DIR/data" -A trust -U postgres -E UTF8 --locale=C \
      --no-sync >/dev/null
    mbcsms_pg_start
  fi
fi

if [ "$("$MBCSMS_PG_BIN/psql" -h 127.0.0.1 -p "$MBCSMS_PG_PORT" -U postgres -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$MBCSMS_PG_DB'")" != 1 ]; then
  "$MBCSMS_PG_BIN/psql" -q -h 127.0.0.1 -p "$MBCSMS_PG_PORT" -U postgres -d postgres \
    -c "CREATE DATABASE $MBCSMS_PG_DB" >/dev/null
fi

export MBCSMS_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:$MBCSMS_PG_PORT/$MBCSMS_PG_DB"
echo "postgres.sh: PostgreSQL ready at $MBCSMS_TEST_DATABASE_URL" >&2
