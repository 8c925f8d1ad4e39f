#!/usr/bin/env bash
# Local Apache Kafka (KRaft, one combined broker+controller node) without Docker.
#
#   deploy/local/kafka.sh fetch            download the broker from Maven Central into the cache
#   deploy/local/kafka.sh start [--fresh]  start it on 127.0.0.1 and wait until it is ready
#   deploy/local/kafka.sh stop             stop it by PID (TERM, then KILL after 30 s)
#   deploy/local/kafka.sh status           exit 0 when it is running and ready
#   deploy/local/kafka.sh logs             follow the broker log
#
# Settings (environment):
#   LEADSTREAM_LOCAL_KAFKA_PORT        client port        (default 19092)
#   LEADSTREAM_LOCAL_KAFKA_CTRL_PORT   controller port    (default 19093)
#   LEADSTREAM_KAFKA_VERSION           Kafka release      (default 3.9.1)
#   LEADSTREAM_KAFKA_HEAP              JVM heap           (default 768m)
#   LEADSTREAM_KAFKA_START_TIMEOUT     readiness wait, s  (default 90)
# --fresh wipes the broker's data before starting (tests use it for a clean broker).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KAFKA_VERSION="${LEADSTREAM_KAFKA_VERSION:-3.9.1}"
PORT="${LEADSTREAM_LOCAL_KAFKA_PORT:-19092}"
CTRL_PORT="${LEADSTREAM_LOCAL_KAFKA_CTRL_PORT:-19093}"
HEAP="${LEADSTREAM_KAFKA_HEAP:-768m}"
START_TIMEOUT="${LEADSTREAM_KAFKA_START_TIMEOUT:-90}"

HOME_DIR="$CACHE_DIR/kafka-$KAFKA_VERSION"
LIBS="$HOME_DIR/libs"
STATE="$RUN_DIR/kafka"
DATA="$STATE/data"
CONF="$STATE/server.properties"
PIDFILE="$STATE/kafka.pid"
LOGFILE="$STATE/kafka.log"

fetch() {
  if [ -f "$LIBS/.complete" ]; then
    log "Kafka $KAFKA_VERSION already in the cache ($LIBS)"
    return 0
  fi
  command -v java >/dev/null 2>&1 || die "java is not installed (Kafka needs Java 17+): apt-get install openjdk-17-jre-headless"
  if ! command -v mvn >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      log "installing Maven from Debian's packages"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven >/dev/null
    else
      die "Maven is needed to fetch Kafka from Maven Central: install it (e.g. sudo apt-get install maven)"
    fi
  fi
  log "fetching Kafka $KAFKA_VERSION from Maven Central into $LIBS"
  rm -rf "$LIBS"
  mkdir -p "$LIBS"
  mvn -B -q -Dstyle.color=never -f "$LOCAL_DIR/kafka/pom.xml" \
    -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIBS" \
    || die "Maven could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION (see the output above)"
  ls "$LIBS"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 || die "the Kafka jar is missing after the fetch"
  touch "$LIBS/.complete"
}

JAVA_CMD=(java -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -Djava.awt.headless=true
  -Dlog4j.configuration="file:$LOCAL_DIR/kafka/log4j.properties" -cp "$LIBS/*")
kafka_java() { "${JAVA_CMD[@]}" "$@"; }

write_config() {
  mkdir -p "$STATE"
  cat >"$CONF" <<CONF
# Written by deploy/local/kafka.sh: single-node KRaft broker for development and tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CTRL_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CTRL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
log.retention.hours=168
log.segment.bytes=104857600
log.cleaner.dedupe.buffer.size=33554432
num.network.threads=2
num.io.threads=4
CONF
}

ready() {
  port_busy "$PORT" && grep -q "Kafka Server started" "$LOGFILE" 2>/dev/null
}

ours_running() {
  pid_alive "$PIDFILE" && pid_cmdline_has "$PIDFILE" "$CONF"
}

start() {
  local fresh=0
  [ "${1:-}" = "--fresh" ] && fresh=1
  fetch
  if ours_running; then
    if [ "$fresh" = 1 ]; then
      log "a broker from an earlier run is still up; restarting it fresh"
      stop
    elif ready; then
      log "Kafka already running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
      return 0
    else
      log "an earlier broker (pid $(cat "$PIDFILE")) is up but not ready; restarting it"
      stop
    fi
  fi
  [ -f "$PIDFILE" ] && { log "removing stale pid file"; rm -f "$PIDFILE"; }
  need_port "Kafka" "$PORT" LEADSTREAM_LOCAL_KAFKA_PORT
  need_port "the Kafka controller" "$CTRL_PORT" LEADSTREAM_LOCAL_KAFKA_CTRL_PORT
  write_config
  if [ "$fresh" = 1 ] || [ ! -f "$DATA/meta.properties" ]; then
    rm -rf "$DATA"
    mkdir -p "$DATA"
    local cluster_id
    cluster_id="$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
    kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$CONF" --ignore-formatted >"$STATE/format.log" 2>&1 \
      || { cat "$STATE/format.log" >&2; die "formatting the Kafka storage failed"; }
  fi
  : >"$LOGFILE"
  log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$PORT (log: $LOGFILE)"
  # setsid: the broker outlives the shell that started it and ignores its Ctrl-C; stop it by PID.
  setsid nohup "${JAVA_CMD[@]}" kafka.Kafka "$CONF" >>"$LOGFILE" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local waited=0
  until ready; do
    if ! pid_alive "$PIDFILE"; then
      tail -n 40 "$LOGFILE" >&2 || true
      rm -f "$PIDFILE"
      die "Kafka exited during start-up (log above, full log in $LOGFILE)"
    fi
    if [ "$waited" -ge $((START_TIMEOUT * 4)) ]; then
      tail -n 40 "$LOGFILE" >&2 || true
      stop
      die "Kafka was not ready after ${START_TIMEOUT}s (full log in $LOGFILE)"
    fi
    sleep 0.25
    waited=$((waited + 1))
  done
  log "Kafka ready on 127.0.0.1:$PORT after $((waited / 4))s"
}

stop() {
  stop_pid "Kafka" "$PIDFILE" 30
}

status() {
  if ours_running && ready; then
    echo "kafka: running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
  else
    echo "kafka: not running"
    return 1
  fi
}

case "${1:-}" in
  fetch) fetch ;;
  start) shift; start "$@" ;;
  stop) stop ;;
  status) status ;;
  logs) exec tail -F "$LOGFILE" ;;
  *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
