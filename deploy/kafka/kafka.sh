#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft, broker + controller in one JVM) from Maven Central's jars,
# for machines without a Docker engine.
#
#   deploy/kafka/kafka.sh up       resolve jars (first time), format storage (first time), start, wait until ready
#   deploy/kafka/kafka.sh down     stop it cleanly (SIGTERM, then SIGKILL after KAFKA_STOP_TIMEOUT_S)
#   deploy/kafka/kafka.sh status   say whether it runs and answers
#   deploy/kafka/kafka.sh reset    stop it and delete its data (topics, offsets)
#
# Environment (all optional):
#   KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_HEAP (512m),
#   KAFKA_STATE_DIR (<repo>/.local/kafka: jars, data, logs, pid), KAFKA_READY_TIMEOUT_S (90),
#   PYTHON (the interpreter that runs the readiness probe; needs aiokafka).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-9093}
heap=${KAFKA_HEAP:-512m}
state=${KAFKA_STATE_DIR:-$repo/.local/kafka}
ready_timeout=${KAFKA_READY_TIMEOUT_S:-90}
stop_timeout=${KAFKA_STOP_TIMEOUT_S:-30}
lib=$state/lib
data=$state/data
logs=$state/logs
pidfile=$state/kafka.pid
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$repo/.venv/bin/python" ]]; then PYTHON=$repo/.venv/bin/python; else PYTHON=python3; fi
fi

log() { printf 'kafka.sh: %s\n' "$*" >&2; }

running_pid() {
  [[ -f "$pidfile" ]] || return 1
  local pid
  pid=$(<"$pidfile")
  kill -0 "$pid" 2>/dev/null && grep -q 'kafka.Kafka' "/proc/$pid/cmdline" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

probe() {
  "$PYTHON" "$here/wait_ready.py" --bootstrap "127.0.0.1:$port" --timeout "$1"
}

resolve_jars() {
  # Re-resolve only when the pom changed: a second `up` reuses the cached jars.
  local stamp
  stamp=$(sha256sum "$here/pom.xml" | cut -d' ' -f1)
  if [[ -f "$lib/.stamp" && "$(<"$lib/.stamp")" == "$stamp" ]]; then return; fi
  log "resolving Kafka's jars from Maven Central (first run only)"
  rm -rf "$lib"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$lib" >&2
  printf '%s\n' "$stamp" >"$lib/.stamp"
}

java_cmd=(java -Xms256m "-Xmx$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
  "-Dkafka.logs.dir=$logs" "-Dlog4j2.configurationFile=$here/log4j2.xml" -cp "$lib/*")

render_config() {
  sed -e "s#@PORT@#$port#g" -e "s#@CONTROLLER_PORT@#$controller_port#g" -e "s#@DATA_DIR@#$data#g" \
    "$here/server.properties" >"$state/server.properties"
}

format_storage() {
  [[ -f "$data/meta.properties" ]] && return
  log "formatting storage in $data"
  local cluster_id
  cluster_id=$("${java_cmd[@]}" kafka.tools.StorageTool random-uuid)
  "${java_cmd[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$state/server.properties" >&2
}

up() {
  local pid
  mkdir -p "$state" "$logs"
  if pid=$(running_pid); then
    log "already running (pid $pid)"
    probe "$ready_timeout"
    return
  fi
  local taken
  for taken in "$port" "$controller_port"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$taken") 2>/dev/null; then
      log "127.0.0.1:$taken is already in use by another process: stop it, or set KAFKA_PORT/KAFKA_CONTROLLER_PORT"
      return 1
    fi
  done
  resolve_jars
  render_config
  format_storage
  log "starting on 127.0.0.1:$port (heap $heap, logs in $logs)"
  # setsid: the broker must outlive this script and ignore the terminal's Ctrl-C meant for `make run`.
  setsid "${java_cmd[@]}" kafka.Kafka "$state/server.properties" >"$logs/stdout.log" 2>&1 </dev/null &
  pid=$!
  printf '%s\n' "$pid" >"$pidfile"
  local deadline=$((SECONDS + ready_timeout))
  while ((SECONDS < deadline)); do
    # kill -0, not running_pid: until setsid has exec'd java, the child's command line is ours.
    if ! kill -0 "$pid" 2>/dev/null; then
      log "broker exited during start-up; its errors:"
      { cat "$logs/stdout.log"; grep -E 'ERROR|FATAL' "$logs/server.log" | tail -n 20; } >&2 2>/dev/null || true
      return 1
    fi
    if probe 2 2>/dev/null; then log "ready on 127.0.0.1:$port"; return; fi
  done
  log "not ready after ${ready_timeout}s; see $logs/server.log"
  return 1
}

down() {
  local pid
  if ! pid=$(running_pid); then log "not running"; rm -f "$pidfile"; return; fi
  kill -TERM "$pid"
  local deadline=$((SECONDS + stop_timeout))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then log "no clean stop after ${stop_timeout}s; killing"; kill -KILL "$pid"; break; fi
    sleep 0.2
  done
  rm -f "$pidfile"
  log "stopped"
}

status() {
  if pid=$(running_pid); then
    if probe 2 2>/dev/null; then log "running (pid $pid), ready on 127.0.0.1:$port"; return; fi
    log "running (pid $pid) but not answering on 127.0.0.1:$port"; return 1
  fi
  log "not running"; return 3
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  reset) down; rm -rf "$data" "$state/server.properties"; log "data deleted" ;;
  *) printf 'usage: %s up|down|status|reset\n' "$0" >&2; exit 2 ;;
esac
