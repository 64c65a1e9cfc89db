#!/usr/bin/env bash
# The local Apache Kafka broker (single-node KRaft, broker + controller) without Docker.
#
#   scripts/kafka.sh up      fetch the jars (once), format storage (once), start, wait until ready
#   scripts/kafka.sh down    stop the broker this script started (by its pid)
#   scripts/kafka.sh status  say whether it runs
#   scripts/kafka.sh reset   down, then delete its data (topics, offsets)
#
# Everything lives under .local/kafka/ in the repo (git-ignored). `up` twice leaves one broker.
# Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_HEAP ("-Xms256m -Xmx1g"),
# KAFKA_HOME_DIR (.local/kafka: jars, data, logs, pid),
# KAFKA_READY_TIMEOUT seconds (90).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOME_DIR="${KAFKA_HOME_DIR:-$ROOT/.local/kafka}"
LIBS="$HOME_DIR/libs"
DATA="$HOME_DIR/data"
LOGS="$HOME_DIR/logs"
CONF="$HOME_DIR/server.properties"
PID_FILE="$HOME_DIR/broker.pid"
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
HEAP="${KAFKA_HEAP:--Xms256m -Xmx1g}"
READY_TIMEOUT="${KAFKA_READY_TIMEOUT:-90}"
# shellcheck source=scripts/kafka-lib.sh
source "$ROOT/scripts/kafka-lib.sh"

write_config() {
  sed -e "s#@PORT@#$PORT#g" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#g" -e "s#@DATA_DIR@#$DATA#g" \
    "$ROOT/kafka/server.properties.template" >"$CONF"
}

format_storage() {
  [[ -f "$DATA/meta.properties" ]] && return 0
  say "formatting KRaft storage in $DATA"
  mkdir -p "$DATA"
  local cluster_id
  cluster_id="$(HEAP="-Xmx256m" run_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
  HEAP="-Xmx256m" run_java kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$CONF" >"$LOGS/format.log" 2>&1 \
    || { cat "$LOGS/format.log" >&2; die "formatting storage failed"; }
}

running_pid() {  # prints the pid of our broker when it is alive
  [[ -f "$PID_FILE" ]] || return 1
  local pid; pid="$(cat "$PID_FILE")"
  is_broker_pid "$pid" && echo "$pid"
}

wait_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT)) python="$ROOT/.venv/bin/python"
  while ((SECONDS < deadline)); do
    [[ -n "${1:-}" ]] && ! kill -0 "$1" 2>/dev/null && { tail -n 30 "$LOGS/broker.out" >&2; die "the broker exited while starting (logs: $LOGS)"; }
    if port_open "$PORT"; then
      # A metadata request answered is the real sign of life; the open port alone is the fallback.
      if [[ ! -x "$python" ]] || "$python" - "$PORT" <<'PY' 2>/dev/null; then
import sys
from confluent_kafka.admin import AdminClient
AdminClient({"bootstrap.servers": f"127.0.0.1:{sys.argv[1]}"}).list_topics(timeout=2)
PY
        return 0
      fi
    fi
    sleep 0.5
  done
  die "the broker did not answer on 127.0.0.1:$PORT within ${READY_TIMEOUT}s (logs: $LOGS)"
}

up() {
  mkdir -p "$HOME_DIR" "$LOGS"
  local pid
  if pid="$(running_pid)"; then
    wait_ready "$pid"
    say "already running (pid $pid) on 127.0.0.1:$PORT"
    return 0
  fi
  port_open "$PORT" && die "127.0.0.1:$PORT is taken by another process; stop it or set KAFKA_PORT"
  need_java
  fetch_jars
  write_config
  format_storage
  say "starting Apache Kafka $VERSION on 127.0.0.1:$PORT"
  pid="$(start_java "$LOGS/broker.out" kafka.Kafka "$CONF")"
  echo "$pid" >"$PID_FILE"
  wait_ready "$pid"
  say "ready (pid $pid) on 127.0.0.1:$PORT"
}

down() {
  local pid
  if ! pid="$(running_pid)"; then
    say "not running"; rm -f "$PID_FILE"; return 0
  fi
  say "stopping pid $pid"
  kill "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then say "still alive after 30s, killing"; kill -9 "$pid"; fi
  rm -f "$PID_FILE"
  say "stopped"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) if pid="$(running_pid)"; then say "running (pid $pid) on 127.0.0.1:$PORT"; else say "not running"; exit 3; fi ;;
  reset) down; rm -rf "$DATA" "$LOGS"; say "data removed" ;;
  *) echo "usage: $0 up|down|status|reset" >&2; exit 2 ;;
esac
