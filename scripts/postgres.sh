#!/usr/bin/env bash
# The local PostgreSQL server for this checkout (the delivery log, the control plane), no Docker.
#
#   scripts/postgres.sh up      install Debian's postgresql when missing (as root), initdb (once),
#                               start, wait until it answers, create role and database (once)
#   scripts/postgres.sh down    stop the server this script started
#   scripts/postgres.sh status  say whether it runs
#   scripts/postgres.sh reset   down, then delete its data
#   scripts/postgres.sh url     print its VELOURCITY_DATABASE_URL
#
# Data lives under .local/postgres/ (git-ignored). initdb refuses to run as root, so as root the
# server runs as the `postgres` OS user; when that user cannot reach .local/ (a home directory
# closed to others) the data goes to /var/tmp/velourcity-postgres-<hash of the checkout path>.
# `up` twice leaves one server. It is a development server: fsync is off.
# Environment: PG_PORT (5433), PG_HOME_DIR (the data's parent), PG_BIN (Debian's newest
# /usr/lib/postgresql/<major>/bin), PG_READY_TIMEOUT seconds (60).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${PG_PORT:-5433}"
READY_TIMEOUT="${PG_READY_TIMEOUT:-60}"
NAME=velourcity  # role, password and database

say() { echo "postgres: $*" >&2; }
die() { say "error: $*"; exit 1; }

find_bin() {
  if [[ -n "${PG_BIN:-}" ]]; then echo "$PG_BIN"; return 0; fi
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
  [[ -n "$dir" && -x "$dir/initdb" ]] && { echo "$dir"; return 0; }
  local initdb; initdb="$(command -v initdb || true)"
  [[ -n "$initdb" ]] && { dirname "$initdb"; return 0; }
  return 1
}

ensure_installed() {
  find_bin >/dev/null && return 0
  if [[ "$(id -u)" != 0 ]]; then
    die "PostgreSQL is not installed: as root, run 'apt-get update && apt-get install -y --no-install-recommends postgresql' (or 'sudo make db')"
  fi
  say "installing Debian's postgresql"
  apt-get update >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >/dev/null
  find_bin >/dev/null || die "postgresql installed, but no initdb found under /usr/lib/postgresql"
}

# The OS user the server runs as: ourselves, or `postgres` when we are root.
if [[ "$(id -u)" == 0 ]]; then RUN_AS=postgres; else RUN_AS="$(id -un)"; fi

as_owner() {  # run a command as the server's OS user
  if [[ "$(id -u)" == 0 ]]; then (cd / && runuser -u "$RUN_AS" -- "$@"); else "$@"; fi
}

home_dir() {
  if [[ -n "${PG_HOME_DIR:-}" ]]; then echo "$PG_HOME_DIR"; return 0; fi
  local local_dir="$ROOT/.local"
  if [[ "$(id -u)" != 0 ]] || runuser -u postgres -- test -x "$ROOT" 2>/dev/null; then
    echo "$local_dir/postgres"
  else
    echo "/var/tmp/velourcity-postgres-$(echo -n "$ROOT" | sha256sum | cut -c1-12)"
  fi
}

HOME_DIR="$(home_dir)"
DATA="$HOME_DIR/data"
LOG="$HOME_DIR/server.log"
SOCKETS="$HOME_DIR/run"

pg_ctl() { as_owner "$(find_bin)/pg_ctl" -D "$DATA" "$@"; }

running() { [[ -f "$DATA/postmaster.pid" ]] && pg_ctl status >/dev/null 2>&1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

init_data() {
  [[ -f "$DATA/PG_VERSION" ]] && return 0
  say "initdb in $DATA"
  mkdir -p "$HOME_DIR"
  [[ "$(id -u)" == 0 ]] && chown "$RUN_AS" "$HOME_DIR"
  as_owner mkdir -p "$DATA" "$SOCKETS"
  as_owner "$(find_bin)/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >"$HOME_DIR/initdb.log" 2>&1 \
    || { cat "$HOME_DIR/initdb.log" >&2; die "initdb failed"; }
  cat >>"$DATA/postgresql.conf" <<CONF
# scripts/postgres.sh: a development server for this checkout
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCKETS'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 128MB
CONF
}

psql_admin() { as_owner "$(find_bin)/psql" -h "$SOCKETS" -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }

wait_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT))
  while ((SECONDS < deadline)); do
    as_owner "$(find_bin)/pg_isready" -q -h "$SOCKETS" -p "$PORT" && return 0
    sleep 0.3
  done
  tail -n 30 "$LOG" >&2 || true
  die "the server did not answer on 127.0.0.1:$PORT within ${READY_TIMEOUT}s (log: $LOG)"
}

ensure_role_and_db() {
  psql_admin -d postgres -c "DO \$\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$NAME') THEN
      CREATE ROLE $NAME LOGIN CREATEDB PASSWORD '$NAME';
    END IF; END \$\$;"
  if [[ -z "$(psql_admin -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$NAME'")" ]]; then
    psql_admin -d postgres -c "CREATE DATABASE $NAME OWNER $NAME"
  fi
}

up() {
  ensure_installed
  if running; then
    wait_ready
    ensure_role_and_db
    say "already running on 127.0.0.1:$PORT (data: $DATA)"
    return 0
  fi
  port_open "$PORT" && die "127.0.0.1:$PORT is taken by another process; stop it or set PG_PORT"
  init_data
  say "starting PostgreSQL $(basename "$(dirname "$(find_bin)")") on 127.0.0.1:$PORT"
  [[ "$(id -u)" == 0 ]] && touch "$LOG" && chown "$RUN_AS" "$LOG"
  pg_ctl -l "$LOG" -w -t "$READY_TIMEOUT" start >/dev/null || { tail -n 30 "$LOG" >&2; die "start failed"; }
  wait_ready
  ensure_role_and_db
  say "ready on 127.0.0.1:$PORT: $(url)"
}

down() {
  if ! running; then say "not running"; return 0; fi
  say "stopping"
  pg_ctl -m fast -w -t 60 stop >/dev/null
  say "stopped"
}

url() { echo "postgresql://$NAME:$NAME@127.0.0.1:$PORT/$NAME"; }

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) if running; then say "running on 127.0.0.1:$PORT (data: $DATA)"; else say "not running"; exit 3; fi ;;
  reset) down; rm -rf "$HOME_DIR"; say "data removed" ;;
  url) url ;;
  *) echo "usage: $0 up|down|status|reset|url" >&2; exit 2 ;;
esac
