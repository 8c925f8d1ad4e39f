# Shared helpers for the local-infrastructure scripts (sourced, not run).
# Paths:
#   LEADSTREAM_CACHE_DIR  downloaded software, reused across runs and clones
#                         (default: ${XDG_CACHE_HOME:-$HOME/.cache}/leadstream)
#   LEADSTREAM_RUN_DIR    pid files, configs, data and logs of the running services
#                         (default: <repo>/.run)
set -euo pipefail

LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$LOCAL_DIR/../.." && pwd)"
CACHE_DIR="${LEADSTREAM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/leadstream}"
RUN_DIR="${LEADSTREAM_RUN_DIR:-$REPO_DIR/.run}"

log() { printf '[leadstream-infra] %s\n' "$*" >&2; }
die() { printf '[leadstream-infra] error: %s\n' "$*" >&2; exit 1; }

# port_busy PORT -> 0 when something accepts TCP connections on 127.0.0.1:PORT
port_busy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# who_listens PORT -> a short description of the listening process, if ss can tell
who_listens() {
  if command -v ss >/dev/null 2>&1; then
    ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n1
  fi
}

# pid_alive PIDFILE -> 0 when the pid in PIDFILE is a live process
pid_alive() {
  [ -f "$1" ] || return 1
  local pid
  pid="$(cat "$1" 2>/dev/null || true)"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# pid_cmdline_has PIDFILE NEEDLE -> 0 when the process' command line contains NEEDLE
pid_cmdline_has() {
  local pid
  pid="$(cat "$1")"
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# stop_pid NAME PIDFILE [GRACE_SECONDS]: TERM, wait, then KILL; removes the pid file
stop_pid() {
  local name="$1" pidfile="$2" grace="${3:-30}" pid
  if ! pid_alive "$pidfile"; then
    rm -f "$pidfile"
    log "$name is not running"
    return 0
  fi
  pid="$(cat "$pidfile")"
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge $((grace * 10)) ]; then
      log "$name did not stop within ${grace}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  rm -f "$pidfile"
}

# need_port NAME PORT VAR: fail with a clear message when PORT is taken
need_port() {
  local name="$1" port="$2" var="$3" who
  if port_busy "$port"; then
    who="$(who_listens "$port")"
    die "port $port (for $name) is already in use${who:+ by $who}. Stop that process, choose another port with $var=<port>, or point Leadstream at an existing service (LEADSTREAM_KAFKA_BOOTSTRAP / LEADSTREAM_REDIS_URL)."
  fi
}
