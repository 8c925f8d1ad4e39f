#!/usr/bin/env bash
# A local three-broker Apache Kafka cluster (KRaft: each node broker and controller, a quorum of
# three) without Docker, from the same Maven-fetched Kafka as kafka.sh: for trying failover on a
# laptop and for the reliability suite's cluster scenarios.
#
#   deploy/local/kafka-cluster.sh start [--fresh]   start the three nodes, wait until all are ready
#   deploy/local/kafka-cluster.sh stop              stop every node (TERM, then KILL after 30 s)
#   deploy/local/kafka-cluster.sh status            exit 0 when every node is running and ready
#   deploy/local/kafka-cluster.sh bootstrap         print the bootstrap servers (host:port,...)
#   deploy/local/kafka-cluster.sh start-node N      start node N (1-3) again, wait until ready
#   deploy/local/kafka-cluster.sh stop-node N       stop node N cleanly
#   deploy/local/kafka-cluster.sh kill-node N       SIGKILL node N (a crashed broker)
#
# Settings (environment):
#   LEADSTREAM_LOCAL_CLUSTER_PORT   node N's client port is this + N, its controller's this + 10 + N
#                                   (default 29090: clients on 29091-29093)
#   LEADSTREAM_KAFKA_VERSION        Kafka release (default 3.9.1)
#   LEADSTREAM_KAFKA_HEAP           JVM heap per node (default 384m)
#   LEADSTREAM_KAFKA_START_TIMEOUT  readiness wait per node, s (default 90)
# Topics get replication factor 3 and min.insync.replicas 2 by default, so a write acknowledged
# by the cluster (acks=all) survives the loss of any one broker.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KAFKA_VERSION="${LEADSTREAM_KAFKA_VERSION:-3.9.1}"
BASE="${LEADSTREAM_LOCAL_CLUSTER_PORT:-29090}"
HEAP="${LEADSTREAM_KAFKA_HEAP:-384m}"
START_TIMEOUT="${LEADSTREAM_KAFKA_START_TIMEOUT:-90}"
NODES=(1 2 3)

LIBS="$CACHE_DIR/kafka-$KAFKA_VERSION/libs"
STATE="$RUN_DIR/kafka-cluster"

port() { echo $((BASE + $1)); }
ctrl_port() { echo $((BASE + 10 + $1)); }
node_dir() { echo "$STATE/node$1"; }
pidfile() { echo "$(node_dir "$1")/kafka.pid"; }
logfile() { echo "$(node_dir "$1")/kafka.log"; }
conf() { echo "$(node_dir "$1")/server.properties"; }

JAVA_CMD=(java -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -Djava.awt.headless=true
  -Dlog4j.configuration="file:$LOCAL_DIR/kafka/log4j.properties" -cp "$LIBS/*")

voters() {
  local n out=""
  for n in "${NODES[@]}"; do out+="${out:+,}$n@127.0.0.1:$(ctrl_port "$n")"; done
  echo "$out"
}

bootstrap() {
  local n out=""
  for n in "${NODES[@]}"; do out+="${out:+,}127.0.0.1:$(port "$n")"; done
  echo "$out"
}

write_config() {
  local n="$1"
  mkdir -p "$(node_dir "$n")"
  cat >"$(conf "$n")" <<CONF
# Written by deploy/local/kafka-cluster.sh: node $n of a three-node KRaft cluster.
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(voters)
listeners=PLAINTEXT://127.0.0.1:$(port "$n"),CONTROLLER://127.0.0.1:$(ctrl_port "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(port "$n")
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$(node_dir "$n")/data
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
auto.create.topics.enable=true
offsets.topic.replication.factor=3
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=10
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
unclean.leader.election.enable=false
log.retention.hours=168
log.segment.bytes=104857600
log.cleaner.dedupe.buffer.size=16777216
num.network.threads=2
num.io.threads=2
CONF
}

node_running() {
  local n="$1"
  pid_alive "$(pidfile "$n")" && pid_cmdline_has "$(pidfile "$n")" "$(conf "$n")"
}

node_ready() {
  local n="$1"
  port_busy "$(port "$n")" && grep -q "Kafka Server started" "$(logfile "$n")" 2>/dev/null
}

launch_node() {
  local n="$1"
  : >"$(logfile "$n")"
  # setsid: the node outlives the shell that started it; stop it by PID.
  setsid nohup "${JAVA_CMD[@]}" kafka.Kafka "$(conf "$n")" >>"$(logfile "$n")" 2>&1 </dev/null &
  echo $! >"$(pidfile "$n")"
}

wait_ready() {
  local n="$1" waited=0
  until node_ready "$n"; do
    if ! pid_alive "$(pidfile "$n")"; then
      tail -n 40 "$(logfile "$n")" >&2 || true
      die "Kafka node $n exited during start-up (full log in $(logfile "$n"))"
    fi
    if [ "$waited" -ge $((START_TIMEOUT * 4)) ]; then
      tail -n 40 "$(logfile "$n")" >&2 || true
      die "Kafka node $n was not ready after ${START_TIMEOUT}s (full log in $(logfile "$n"))"
    fi
    sleep 0.25
    waited=$((waited + 1))
  done
}

start() {
  local fresh=0 n cluster_id
  [ "${1:-}" = "--fresh" ] && fresh=1
  bash "$LOCAL_DIR/kafka.sh" fetch
  if [ "$fresh" = 1 ]; then
    stop_all
    rm -rf "$STATE"
  fi
  mkdir -p "$STATE"
  if [ ! -f "$STATE/cluster.id" ]; then
    "${JAVA_CMD[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1 >"$STATE/cluster.id"
  fi
  cluster_id="$(cat "$STATE/cluster.id")"
  for n in "${NODES[@]}"; do
    if node_running "$n"; then
      continue
    fi
    need_port "Kafka node $n" "$(port "$n")" LEADSTREAM_LOCAL_CLUSTER_PORT
    need_port "the Kafka controller of node $n" "$(ctrl_port "$n")" LEADSTREAM_LOCAL_CLUSTER_PORT
    write_config "$n"
    if [ ! -f "$(node_dir "$n")/data/meta.properties" ]; then
      "${JAVA_CMD[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$(conf "$n")" \
        --ignore-formatted >"$(node_dir "$n")/format.log" 2>&1 \
        || { cat "$(node_dir "$n")/format.log" >&2; die "formatting node $n failed"; }
    fi
    log "starting Kafka node $n on 127.0.0.1:$(port "$n") (log: $(logfile "$n"))"
    launch_node "$n"
  done
  # the nodes elect a controller among themselves: start all three, then wait for each
  for n in "${NODES[@]}"; do wait_ready "$n"; done
  log "Kafka cluster ready: $(bootstrap)"
}

start_node() {
  local n="$1"
  node_running "$n" && { log "node $n is already running"; return 0; }
  [ -f "$(conf "$n")" ] || die "node $n was never started (run start first)"
  log "starting Kafka node $n again"
  launch_node "$n"
  wait_ready "$n"
  log "Kafka node $n ready on 127.0.0.1:$(port "$n")"
}

stop_node() { stop_pid "Kafka node $1" "$(pidfile "$1")" 30; }

kill_node() {
  local n="$1" pid
  pid_alive "$(pidfile "$n")" || die "node $n is not running"
  pid="$(cat "$(pidfile "$n")")"
  log "killing Kafka node $n (pid $pid)"
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  rm -f "$(pidfile "$n")"
}

stop_all() {
  # all at once: a node stopped last, alone, has no quorum to shut down with and waits
  local n
  for n in "${NODES[@]}"; do stop_node "$n" & done
  wait
}

status() {
  local n bad=0
  for n in "${NODES[@]}"; do
    if node_running "$n" && node_ready "$n"; then
      echo "kafka node $n: running on 127.0.0.1:$(port "$n") (pid $(cat "$(pidfile "$n")"))"
    else
      echo "kafka node $n: not running"
      bad=1
    fi
  done
  return "$bad"
}

node_arg() {
  case "${1:-}" in
    1 | 2 | 3) echo "$1" ;;
    *) die "a node number (1, 2 or 3) is needed" ;;
  esac
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) stop_all ;;
  status) status ;;
  bootstrap) bootstrap ;;
  start-node) start_node "$(node_arg "${2:-}")" ;;
  stop-node) stop_node "$(node_arg "${2:-}")" ;;
  kill-node) kill_node "$(node_arg "${2:-}")" ;;
  *) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
