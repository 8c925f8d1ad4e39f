#!/usr/bin/env bash
# Local Redis without Docker: the machine's redis-server on 127.0.0.1, no persistence.
#
#   deploy/local/redis.sh start    install redis-server if missing (as root, from Debian's packages), start, wait
#   deploy/local/redis.sh stop     stop it by PID
#   deploy/local/redis.sh status   exit 0 when it is running and answers PING
#
# Settings (environment):
#   LEADSTREAM_LOCAL_REDIS_PORT    port (default 16379)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PORT="${LEADSTREAM_LOCAL_REDIS_PORT:-16379}"
STATE="$RUN_DIR/redis"
PIDFILE="$STATE/redis.pid"
LOGFILE="$STATE/redis.log"

ensure_installed() {
  command -v redis-server >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing redis-server from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
    # The package may start a system-wide service on 6379; ours runs on its own port.
  else
    die "redis-server is not installed. Install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) or set LEADSTREAM_REDIS_URL to an existing Redis."
  fi
}

ping() {
  # RESP PING over bash's /dev/tcp; no redis-cli needed.
  local reply
  reply="$( (exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf 'PING\r\n' >&3 && timeout 2 head -c 7 <&3) 2>/dev/null || true)"
  [[ "$reply" == "+PONG"* ]]
}

ours_running() {
  pid_alive "$PIDFILE" && pid_cmdline_has "$PIDFILE" ":$PORT"
}

start() {
  ensure_installed
  if ours_running && ping; then
    log "Redis already running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
    return 0
  fi
  ours_running && stop
  [ -f "$PIDFILE" ] && { log "removing stale pid file"; rm -f "$PIDFILE"; }
  need_port "Redis" "$PORT" LEADSTREAM_LOCAL_REDIS_PORT
  mkdir -p "$STATE"
  : >"$LOGFILE"
  log "starting Redis on 127.0.0.1:$PORT (log: $LOGFILE)"
  setsid nohup redis-server --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no \
    --dir "$STATE" --daemonize no --protected-mode yes >>"$LOGFILE" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local waited=0
  until ping; do
    if ! pid_alive "$PIDFILE"; then
      tail -n 20 "$LOGFILE" >&2 || true
      rm -f "$PIDFILE"
      die "redis-server exited during start-up (log above)"
    fi
    [ "$waited" -ge 120 ] && { stop; die "Redis was not ready after 30s (log: $LOGFILE)"; }
    sleep 0.25
    waited=$((waited + 1))
  done
  log "Redis ready on 127.0.0.1:$PORT"
}

stop() {
  stop_pid "Redis" "$PIDFILE" 10
}

status() {
  if ours_running && ping; then
    echo "redis: running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
  else
    echo "redis: not running"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
