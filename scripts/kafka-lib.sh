# Shared by scripts/kafka.sh (one broker) and scripts/kafka-cluster.sh (three): Java, the
# Apache Kafka jars from Maven Central, and running a Kafka class with them. Source it after
# setting ROOT, HOME_DIR (where fetch.log goes), LIBS (where the jars go), LOGS and HEAP;
# PREFIX names the script in messages.
# shellcheck shell=bash

VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/kafka/pom.xml")"

say() { echo "${PREFIX:-kafka}: $*" >&2; }
die() { say "error: $*"; exit 1; }

need_java() {
  command -v java >/dev/null || die "Java 17 or newer is required and 'java' is not on PATH (Debian: apt-get install openjdk-17-jre-headless)."
  local major
  major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)"
  [[ -n "$major" && "$major" -ge 17 ]] || die "Java 17 or newer is required; found: $(java -version 2>&1 | head -n1)"
}

fetch_jars() {
  [[ -f "$LIBS/.version" && "$(cat "$LIBS/.version")" == "$VERSION" ]] && return 0
  command -v mvn >/dev/null || die "Maven is required to fetch the Kafka $VERSION jars and 'mvn' is not on PATH (Debian: apt-get install maven)."
  say "fetching Apache Kafka $VERSION from Maven Central into $LIBS"
  rm -rf "$LIBS" && mkdir -p "$LIBS"
  if ! mvn -B -q -f "$ROOT/kafka/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$LIBS" -DincludeScope=runtime >"$HOME_DIR/fetch.log" 2>&1; then
    tail -n 20 "$HOME_DIR/fetch.log" >&2
    die "could not fetch org.apache.kafka:kafka_2.13:$VERSION with Maven (full log: $HOME_DIR/fetch.log)"
  fi
  echo "$VERSION" >"$LIBS/.version"
}


run_java() {  # run_java MAIN_CLASS ARGS...
  # shellcheck disable=SC2086  # HEAP holds several JVM flags
  java $HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dkafka.logs.dir="$LOGS" -Dlog4j2.configurationFile="$ROOT/kafka/log4j2.properties" \
    -cp "$LIBS/*" "$@"
}

start_java() {  # start_java LOG_FILE MAIN_CLASS ARGS...: in the background; prints its pid
  local out="$1"; shift
  # shellcheck disable=SC2086  # HEAP holds several JVM flags
  nohup java $HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dkafka.logs.dir="$LOGS" -Dlog4j2.configurationFile="$ROOT/kafka/log4j2.properties" \
    -cp "$LIBS/*" "$@" >"$out" 2>&1 </dev/null &
  echo $!
}

is_broker_pid() {  # is_broker_pid PID: alive and a Kafka broker
  kill -0 "$1" 2>/dev/null && grep -q kafka.Kafka "/proc/$1/cmdline" 2>/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
