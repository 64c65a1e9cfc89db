#!/usr/bin/env bash
# A local three-broker Apache Kafka cluster (KRaft; each node broker + controller, a controller
# quorum of three) without Docker, from the same Maven Central jars as scripts/kafka.sh.
#
#   scripts/kafka-cluster.sh up          certificates and storage (once), start the three nodes, wait
#   scripts/kafka-cluster.sh down        stop the nodes this script started
#   scripts/kafka-cluster.sh status      which nodes run
#   scripts/kafka-cluster.sh env         the VELOURCITY_KAFKA_* exports for the SASL_SSL listener
#   scripts/kafka-cluster.sh env-mtls    the same for the mutual-TLS listener (client certificate)
#   scripts/kafka-cluster.sh kill N      SIGKILL node N (1-3), as a crash (the chaos suite's failover)
#   scripts/kafka-cluster.sh start N     start node N again and wait until it answers on its listener
#   scripts/kafka-cluster.sh controller  the node id of the active controller
#   scripts/kafka-cluster.sh reset       down, then delete the data, certificates and users
#
# Node N listens on 127.0.0.1: PLAINTEXT (development, and between brokers) on BASE+N, SASL_SSL
# (SCRAM-SHA-512, TLS with a certificate authority made here) on BASE+100+N, its controller on
# BASE+200+N, SSL with a client certificate required (mutual TLS) on BASE+300+N. BASE is KAFKA_CLUSTER_BASE_PORT (29090). SCRAM users `velourcity` and `admin` are
# created when the storage is formatted (--add-scram), with random passwords kept in
# credentials.env. Everything lives under .local/kafka-cluster/ (git-ignored); the jars are shared
# with scripts/kafka.sh (.local/kafka/libs). Environment: KAFKA_CLUSTER_HOME_DIR, KAFKA_CLUSTER_HEAP
# ("-Xms128m -Xmx512m" each), KAFKA_READY_TIMEOUT seconds (120).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOME_DIR="${KAFKA_CLUSTER_HOME_DIR:-$ROOT/.local/kafka-cluster}"
LIBS="${KAFKA_LIBS:-$ROOT/.local/kafka/libs}"
LOGS="$HOME_DIR/logs"
TLS="$HOME_DIR/tls"
CREDENTIALS="$HOME_DIR/credentials.env"
BASE="${KAFKA_CLUSTER_BASE_PORT:-29090}"
HEAP="${KAFKA_CLUSTER_HEAP:--Xms128m -Xmx512m}"
READY_TIMEOUT="${KAFKA_READY_TIMEOUT:-120}"
NODES=(1 2 3)
PREFIX=kafka-cluster
# shellcheck source=scripts/kafka-lib.sh
source "$ROOT/scripts/kafka-lib.sh"

plain_port() { echo $((BASE + $1)); }
sasl_port() { echo $((BASE + 100 + $1)); }
controller_port() { echo $((BASE + 200 + $1)); }
mtls_port() { echo $((BASE + 300 + $1)); }
node_dir() { echo "$HOME_DIR/node-$1"; }
plain_bootstrap() { local n out=(); for n in "${NODES[@]}"; do out+=("127.0.0.1:$(plain_port "$n")"); done; (IFS=,; echo "${out[*]}"); }
sasl_bootstrap() { local n out=(); for n in "${NODES[@]}"; do out+=("127.0.0.1:$(sasl_port "$n")"); done; (IFS=,; echo "${out[*]}"); }
mtls_bootstrap() { local n out=(); for n in "${NODES[@]}"; do out+=("127.0.0.1:$(mtls_port "$n")"); done; (IFS=,; echo "${out[*]}"); }

make_certificates() {  # a CA, and one broker certificate for 127.0.0.1 / localhost signed by it
  [[ -f "$TLS/broker.p12" ]] && return 0
  command -v openssl >/dev/null || die "openssl is required to make the cluster's certificates"
  say "making a certificate authority and the brokers' certificate in $TLS"
  mkdir -p "$TLS"
  local password; password="$(openssl rand -hex 16)"
  (
    cd "$TLS"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Velourcity local CA" \
      -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout broker.key -out broker.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >broker.ext
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile broker.ext -out broker.pem 2>/dev/null
    openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -name broker \
      -passout "pass:$password" -out broker.p12
    # a CA nobody trusts: for the tests of an untrusted certificate
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Some other CA" \
      -keyout other-ca.key -out other-ca.pem 2>/dev/null
    echo "$password" >keystore.password
    chmod 600 ./*.key keystore.password
  )
}

make_client_certificate() {  # for the mutual-TLS listener: CN=velourcity, signed by the CA
  [[ -f "$TLS/client.pem" ]] && return 0
  (
    cd "$TLS"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=velourcity" -keyout client.key -out client.csr 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile client.ext -out client.pem 2>/dev/null
    chmod 600 client.key
  )
}

make_credentials() {
  [[ -f "$CREDENTIALS" ]] && return 0
  umask 077
  {
    echo "VELOURCITY_PASSWORD=$(openssl rand -hex 16)"
    echo "ADMIN_PASSWORD=$(openssl rand -hex 16)"
  } >"$CREDENTIALS"
}

write_config() {  # write_config N
  local n="$1" dir voters="" m
  dir="$(node_dir "$n")"
  for m in "${NODES[@]}"; do voters+="${voters:+,}$m@127.0.0.1:$(controller_port "$m")"; done
  mkdir -p "$dir"
  cat >"$dir/server.properties" <<PROPS
# Node $n of the local three-broker cluster (written by scripts/kafka-cluster.sh).
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(plain_port "$n"),SASL_SSL://127.0.0.1:$(sasl_port "$n"),MTLS://127.0.0.1:$(mtls_port "$n"),CONTROLLER://127.0.0.1:$(controller_port "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(plain_port "$n"),SASL_SSL://127.0.0.1:$(sasl_port "$n"),MTLS://127.0.0.1:$(mtls_port "$n")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,MTLS:SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS/broker.p12
ssl.keystore.password=$(cat "$TLS/keystore.password")
ssl.client.auth=none
listener.name.mtls.ssl.client.auth=required
listener.name.mtls.ssl.truststore.type=PEM
listener.name.mtls.ssl.truststore.location=$TLS/ca.pem
log.dirs=$dir/data
num.partitions=3
default.replication.factor=3
auto.create.topics.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
unclean.leader.election.enable=false
log.retention.hours=168
log.segment.bytes=104857600
message.max.bytes=8388608
replica.fetch.max.bytes=8388608
PROPS
}

format_storage() {  # format_storage N CLUSTER_ID
  local n="$1" dir; dir="$(node_dir "$n")"
  [[ -f "$dir/data/meta.properties" ]] && return 0
  # shellcheck disable=SC1090
  source "$CREDENTIALS"
  mkdir -p "$dir/data"
  HEAP="-Xmx256m" run_java kafka.tools.StorageTool format -t "$2" -c "$dir/server.properties" \
    --add-scram "SCRAM-SHA-512=[name=velourcity,password=$VELOURCITY_PASSWORD]" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=$ADMIN_PASSWORD]" >"$LOGS/format-$n.log" 2>&1 \
    || { cat "$LOGS/format-$n.log" >&2; die "formatting node $n's storage failed"; }
}

node_pid() {  # node_pid N: its pid when it runs
  local file; file="$(node_dir "$1")/broker.pid"
  [[ -f "$file" ]] || return 1
  local pid; pid="$(cat "$file")"
  is_broker_pid "$pid" && echo "$pid"
}

start_node() {  # start_node N (configured and formatted)
  local n="$1" pid
  if pid="$(node_pid "$n")"; then say "node $n already runs (pid $pid)"; return 0; fi
  local port; for port in "$(plain_port "$n")" "$(sasl_port "$n")" "$(controller_port "$n")"; do
    port_open "$port" && die "127.0.0.1:$port is taken by another process (node $n); stop it or set KAFKA_CLUSTER_BASE_PORT"
  done
  mkdir -p "$LOGS/node-$n"
  pid="$(LOGS="$LOGS/node-$n" start_java "$LOGS/node-$n/broker.out" kafka.Kafka "$(node_dir "$n")/server.properties")"
  echo "$pid" >"$(node_dir "$n")/broker.pid"
  say "node $n started (pid $pid): PLAINTEXT 127.0.0.1:$(plain_port "$n"), SASL_SSL 127.0.0.1:$(sasl_port "$n")"
}

node_answers() {  # node_answers N: N's own listener answers a metadata request naming it
  "$ROOT/.venv/bin/python" - "127.0.0.1:$(plain_port "$1")" "$1" <<'PY' 2>/dev/null
import sys
from confluent_kafka.admin import AdminClient
admin = AdminClient({"bootstrap.servers": sys.argv[1], "log_level": 0})
sys.exit(0 if int(sys.argv[2]) in admin.list_topics(timeout=3).brokers else 1)
PY
}

wait_ready() {  # wait_ready [N...]: until each node (all by default) answers on its own listener
  local wanted=("${@:-${NODES[@]}}") deadline=$((SECONDS + READY_TIMEOUT))
  [[ -x "$ROOT/.venv/bin/python" ]] || die "run 'make install' first (the readiness check uses the project's venv)"
  while ((SECONDS < deadline)); do
    local n ready=1
    for n in "${wanted[@]}"; do node_answers "$n" || { ready=0; break; }; done
    if ((ready)); then
      return 0
    fi
    local n; for n in "${NODES[@]}"; do
      local file; file="$(node_dir "$n")/broker.pid"
      if [[ -f "$file" ]] && ! node_pid "$n" >/dev/null && [[ ! -f "$(node_dir "$n")/killed" ]]; then
        tail -n 30 "$LOGS/node-$n/broker.out" >&2; die "node $n exited while starting (logs: $LOGS/node-$n)"
      fi
    done
    sleep 1
  done
  die "node(s) ${wanted[*]} did not answer within ${READY_TIMEOUT}s (logs: $LOGS)"
}

up() {
  mkdir -p "$HOME_DIR" "$LOGS"
  need_java
  HOME_DIR="$ROOT/.local/kafka" fetch_jars
  make_certificates
  make_client_certificate
  make_credentials
  local n cluster_id
  for n in "${NODES[@]}"; do write_config "$n"; done
  if [[ ! -f "$HOME_DIR/cluster.id" ]]; then
    HEAP="-Xmx256m" run_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1 >"$HOME_DIR/cluster.id"
  fi
  cluster_id="$(cat "$HOME_DIR/cluster.id")"
  for n in "${NODES[@]}"; do format_storage "$n" "$cluster_id"; done
  for n in "${NODES[@]}"; do rm -f "$(node_dir "$n")/killed"; start_node "$n"; done
  wait_ready
  say "ready: PLAINTEXT $(plain_bootstrap); SASL_SSL $(sasl_bootstrap) (scripts/kafka-cluster.sh env)"
}

stop_node() {  # stop_node N [SIGNAL]
  local n="$1" signal="${2:-TERM}" pid
  if ! pid="$(node_pid "$n")"; then rm -f "$(node_dir "$n")/broker.pid"; return 0; fi
  kill "-$signal" "$pid"
  local _; for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then say "node $n still alive after 30s, killing"; kill -9 "$pid"; fi
  say "node $n stopped (pid $pid, SIG$signal)"
}

down() {
  local n
  # SIGTERM all at once: one by one, the last controllers wait for a quorum that is gone
  for n in "${NODES[@]}"; do
    if pid="$(node_pid "$n")"; then kill -TERM "$pid"; fi
  done
  for n in "${NODES[@]}"; do stop_node "$n"; rm -f "$(node_dir "$n")/broker.pid" "$(node_dir "$n")/killed"; done
  say "stopped"
}

check_node() { [[ "${1:-}" =~ ^[123]$ ]] || die "a node number, 1-3, is needed; not '${1:-}'"; }

env_exports() {
  [[ -f "$CREDENTIALS" ]] || die "no cluster yet: scripts/kafka-cluster.sh up"
  # shellcheck disable=SC1090
  source "$CREDENTIALS"
  cat <<ENV
export VELOURCITY_KAFKA_BOOTSTRAP=$(sasl_bootstrap)
export VELOURCITY_KAFKA_SECURITY_PROTOCOL=SASL_SSL
export VELOURCITY_KAFKA_SASL_MECHANISM=SCRAM-SHA-512
export VELOURCITY_KAFKA_SASL_USERNAME=velourcity
export VELOURCITY_KAFKA_SASL_PASSWORD=$VELOURCITY_PASSWORD
export VELOURCITY_KAFKA_SSL_CA_LOCATION=$TLS/ca.pem
ENV
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status)
    running=0
    for n in "${NODES[@]}"; do
      if pid="$(node_pid "$n")"; then say "node $n running (pid $pid)"; running=$((running + 1)); else say "node $n not running"; fi
    done
    ((running == ${#NODES[@]})) || exit 3 ;;
  env) env_exports ;;
  env-mtls)
    cat <<ENV
export VELOURCITY_KAFKA_BOOTSTRAP=$(mtls_bootstrap)
export VELOURCITY_KAFKA_SECURITY_PROTOCOL=SSL
export VELOURCITY_KAFKA_SSL_CA_LOCATION=$TLS/ca.pem
export VELOURCITY_KAFKA_SSL_CERTIFICATE_LOCATION=$TLS/client.pem
export VELOURCITY_KAFKA_SSL_KEY_LOCATION=$TLS/client.key
ENV
    ;;
  kill) check_node "${2:-}"; touch "$(node_dir "$2")/killed"; stop_node "$2" KILL ;;
  start) check_node "${2:-}"; rm -f "$(node_dir "$2")/killed"; start_node "$2"; wait_ready "$2" ;;
  controller)
    if ! leader="$(HEAP="-Xmx256m" run_java "$ROOT/kafka/QuorumLeader.java" "$(plain_bootstrap)" 2>"$LOGS/controller.err")"; then
      tail -n 5 "$LOGS/controller.err" >&2; die "could not ask the quorum for its leader"
    fi
    echo "$leader" | tail -n1 ;;
  reset) down; rm -rf "$HOME_DIR"; say "data, certificates and users removed" ;;
  *) echo "usage: $0 up|down|status|env|env-mtls|kill N|start N|controller|reset" >&2; exit 2 ;;
esac
