#!/usr/bin/env bash
# Apache Kafka (KRaft) from Maven Central's jars, for machines without a Docker engine: one node,
# or a cluster of three on one machine (each node a broker and a voter of the controller quorum).
#
#   deploy/kafka/kafka.sh up        resolve jars, make certificates, format storage (each the first
#                                   time), start every node, wait until the cluster is ready
#   deploy/kafka/kafka.sh down      stop every node cleanly (SIGTERM, then SIGKILL after KAFKA_STOP_TIMEOUT_S)
#   deploy/kafka/kafka.sh status    say whether every node runs and answers
#   deploy/kafka/kafka.sh reset     stop and delete the data (topics, offsets, users)
#   deploy/kafka/kafka.sh kill N    SIGKILL node N (1-3): a crash, for chaos tests
#   deploy/kafka/kafka.sh start N   start node N again and wait until the cluster lists it
#   deploy/kafka/kafka.sh consume TOPIC [ARGS...]
#                                   Kafka's console consumer on TOPIC from the beginning, with keys,
#                                   headers and timestamps (ARGS go to it: --max-messages 10, ...)
#   deploy/kafka/kafka.sh tool CLASS [ARGS...]
#                                   any of Kafka's tools by class, against node 1 when ARGS name no
#                                   --bootstrap-server (org.apache.kafka.tools.TopicCommand --list)
#
# Ports: node 1 listens on KAFKA_PORT (the port of PIPELINE_KAFKA_BOOTSTRAP_SERVERS when that names
# 127.0.0.1 or localhost, else 9092; plain), KAFKA_CONTROLLER_PORT (9093), KAFKA_SASL_SSL_PORT
# (9094, SCRAM-SHA-512 users over TLS) and KAFKA_SSL_PORT (9095, TLS with a client certificate);
# node N on each of them plus 10 x (N - 1): node 2 on 9102-9105, node 3 on 9112-9115.
#
# With KAFKA_TLS=on (the default) `up` also writes, in $KAFKA_STATE_DIR/tls: a local certificate
# authority (ca.pem), the nodes' keystore, a client certificate for the SSL listener, and two
# files of PIPELINE_* settings that connect the project to those listeners (`set -a; . FILE`):
#   sasl_ssl.env  the SCRAM user `pipeline` and its generated password
#   ssl.env       the client certificate and key
#
# Environment (all optional):
#   KAFKA_NODES (1 or 3), KAFKA_HEAP (512m with one node, 384m each with three), KAFKA_TLS (on|off),
#   KAFKA_PORT, KAFKA_CONTROLLER_PORT, KAFKA_SASL_SSL_PORT, KAFKA_SSL_PORT (above),
#   KAFKA_STATE_DIR (<repo>/.local/kafka: data, logs, pids, certificates; one node keeps them
#   there, a cluster in node-1..node-3), KAFKA_LIB_DIR (<repo>/.local/kafka/lib: the jars),
#   KAFKA_READY_TIMEOUT_S (90), PYTHON (runs the readiness probe; needs aiokafka).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
nodes=${KAFKA_NODES:-1}
if [[ "$nodes" != 1 && "$nodes" != 3 ]]; then
  printf 'kafka.sh: KAFKA_NODES must be 1 or 3, not %s\n' "$nodes" >&2
  exit 2
fi
if ((nodes == 1)); then default_heap=512m; else default_heap=384m; fi
heap=${KAFKA_HEAP:-$default_heap}
tls=${KAFKA_TLS:-on}
# The worker's own setting names the port, so one variable moves both ends; KAFKA_PORT, when set,
# wins (tests start brokers of their own beside the session's with it).
default_port=9092
if [[ "${PIPELINE_KAFKA_BOOTSTRAP_SERVERS:-}" =~ ^(127\.0\.0\.1|localhost):([0-9]+)$ ]]; then
  default_port=${BASH_REMATCH[2]}
fi
port=${KAFKA_PORT:-$default_port}
controller_port=${KAFKA_CONTROLLER_PORT:-9093}
sasl_ssl_port=${KAFKA_SASL_SSL_PORT:-9094}
ssl_port=${KAFKA_SSL_PORT:-9095}
state=${KAFKA_STATE_DIR:-$repo/.local/kafka}
lib=${KAFKA_LIB_DIR:-$repo/.local/kafka/lib}
tls_dir=$state/tls
ready_timeout=${KAFKA_READY_TIMEOUT_S:-90}
stop_timeout=${KAFKA_STOP_TIMEOUT_S:-30}
scram_user=pipeline
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$repo/.venv/bin/python" ]]; then PYTHON=$repo/.venv/bin/python; else PYTHON=python3; fi
fi

log() { printf 'kafka.sh: %s\n' "$*" >&2; }

# Where node $1 keeps its data, logs, pid and config: one node keeps the layout of earlier versions.
node_dir() { if ((nodes == 1)); then printf '%s\n' "$state"; else printf '%s/node-%s\n' "$state" "$1"; fi; }
node_port() { printf '%s\n' $(($1 + 10 * ($2 - 1))); }
bootstrap() { printf '127.0.0.1:%s\n' "$(node_port "$port" "${1:-1}")"; }
all_nodes() { seq 1 "$nodes"; }

running_pid() {
  local pidfile pid
  pidfile=$(node_dir "$1")/kafka.pid
  [[ -f "$pidfile" ]] || return 1
  pid=$(<"$pidfile")
  kill -0 "$pid" 2>/dev/null && grep -q 'kafka.Kafka' "/proc/$pid/cmdline" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

# Ready: the node answers a metadata request that lists every node of the cluster.
probe() {
  "$PYTHON" "$here/wait_ready.py" --bootstrap "$(bootstrap "$1")" --timeout "$2" --brokers "$nodes"
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

java_cmd() {
  printf '%s\0' java -Xms256m "-Xmx$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    "-Dkafka.logs.dir=$1" "-Dlog4j2.configurationFile=$here/log4j2.xml" -cp "$lib/*"
}

run_java() { # run_java LOGS_DIR CLASS ARGS...
  local logs=$1
  shift
  local -a cmd
  mapfile -d '' cmd < <(java_cmd "$logs")
  "${cmd[@]}" "$@"
}

# The certificates, made once with openssl (keys and certificates) and keytool (Java's trust store).
make_tls() {
  [[ "$tls" == on ]] || return 0
  [[ -f "$tls_dir/sasl_ssl.env" ]] && return
  log "making a local certificate authority and certificates in $tls_dir"
  mkdir -p "$tls_dir"
  chmod 700 "$tls_dir"
  (
    cd "$tls_dir"
    umask 077
    openssl rand -hex 16 >store-password
    openssl rand -hex 24 >scram-password
    local store_password
    store_password=$(<store-password)
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
      -subj "/CN=pipeline local CA" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    sign() { # sign NAME SUBJECT EXTENDED_KEY_USAGE
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
      printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=$3" "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        "authorityKeyIdentifier=keyid" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    sign broker "/CN=localhost" serverAuth
    sign client "/CN=pipeline-client" clientAuth
    openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -name broker \
      -out broker.p12 -passout "pass:$store_password"
    keytool -importcert -noprompt -alias ca -file ca.pem -keystore truststore.p12 \
      -storetype PKCS12 -storepass "$store_password" >/dev/null 2>&1
    printf '%s\n' "PIPELINE_KAFKA_BOOTSTRAP_SERVERS=$(node_bootstraps "$ssl_port")" \
      "PIPELINE_KAFKA_SECURITY_PROTOCOL=SSL" "PIPELINE_KAFKA_SSL_CAFILE=$tls_dir/ca.pem" \
      "PIPELINE_KAFKA_SSL_CERTFILE=$tls_dir/client.pem" "PIPELINE_KAFKA_SSL_KEYFILE=$tls_dir/client.key" >ssl.env
    printf '%s\n' "PIPELINE_KAFKA_BOOTSTRAP_SERVERS=$(node_bootstraps "$sasl_ssl_port")" \
      "PIPELINE_KAFKA_SECURITY_PROTOCOL=SASL_SSL" "PIPELINE_KAFKA_SASL_MECHANISM=SCRAM-SHA-512" \
      "PIPELINE_KAFKA_SASL_USERNAME=$scram_user" "PIPELINE_KAFKA_SASL_PASSWORD=$(<scram-password)" \
      "PIPELINE_KAFKA_SSL_CAFILE=$tls_dir/ca.pem" >sasl_ssl.env
  )
}

node_bootstraps() { # every node's address on the listener whose node-1 port is $1
  local n out=()
  for n in $(all_nodes); do out+=("127.0.0.1:$(node_port "$1" "$n")"); done
  (IFS=,; printf '%s\n' "${out[*]}")
}

render_config() {
  local n=$1 dir voters="" v listeners advertised
  dir=$(node_dir "$n")
  for v in $(all_nodes); do voters+="${voters:+,}$v@127.0.0.1:$(node_port "$controller_port" "$v")"; done
  listeners="PLAINTEXT://127.0.0.1:$(node_port "$port" "$n")"
  if [[ "$tls" == on ]]; then
    listeners+=",SASL_SSL://127.0.0.1:$(node_port "$sasl_ssl_port" "$n")"
    listeners+=",SSL://127.0.0.1:$(node_port "$ssl_port" "$n")"
  fi
  advertised=$listeners
  listeners+=",CONTROLLER://127.0.0.1:$(node_port "$controller_port" "$n")"
  local min_isr=$((nodes > 1 ? nodes - 1 : 1))
  sed -e "s#@NODE_ID@#$n#g" -e "s#@VOTERS@#$voters#g" -e "s#@LISTENERS@#$listeners#g" \
    -e "s#@ADVERTISED@#$advertised#g" -e "s#@DATA_DIR@#$dir/data#g" \
    -e "s#@REPLICAS@#$nodes#g" -e "s#@MIN_ISR@#$min_isr#g" \
    "$here/server.properties" >"$dir/server.properties"
  if [[ "$tls" == on ]]; then
    sed -e "s#@TLS_DIR@#$tls_dir#g" -e "s#@STORE_PASSWORD@#$(<"$tls_dir/store-password")#g" \
      "$here/tls.properties" >>"$dir/server.properties"
  fi
  chmod 600 "$dir/server.properties"
}

# Every node of a cluster is formatted with the same cluster id; the SCRAM user is written into
# the first metadata with it (Kafka's own StorageTool).
format_storage() {
  local n=$1 cluster_id=$2 dir
  dir=$(node_dir "$n")
  [[ -f "$dir/data/meta.properties" ]] && return
  log "formatting node $n's storage in $dir/data"
  local -a scram=()
  if [[ "$tls" == on ]]; then
    scram=(--add-scram "SCRAM-SHA-512=[name=$scram_user,password=$(<"$tls_dir/scram-password")]")
  fi
  run_java "$dir/logs" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" \
    "${scram[@]}" >"$dir/logs/format.log" 2>&1 || { cat "$dir/logs/format.log" >&2; return 1; }
  [[ "$tls" == on ]] && touch "$dir/data/.scram-user"
  return 0
}

# Storage formatted before the SCRAM user existed: add the user through the running node.
ensure_scram_user() {
  local dir
  dir=$(node_dir 1)
  [[ "$tls" == on && ! -f "$dir/data/.scram-user" ]] || return 0
  log "adding the SCRAM user $scram_user"
  run_java "$dir/logs" kafka.admin.ConfigCommand --bootstrap-server "$(bootstrap 1)" --alter \
    --add-config "SCRAM-SHA-512=[password=$(<"$tls_dir/scram-password")]" \
    --entity-type users --entity-name "$scram_user" >"$dir/logs/scram.log" 2>&1 \
    || { cat "$dir/logs/scram.log" >&2; return 1; }
  touch "$dir/data/.scram-user"
}

check_ports_free() {
  local n=$1 base taken bases=("$port" "$controller_port")
  [[ "$tls" == on ]] && bases+=("$sasl_ssl_port" "$ssl_port")
  for base in "${bases[@]}"; do
    taken=$(node_port "$base" "$n")
    if (exec 3<>"/dev/tcp/127.0.0.1/$taken") 2>/dev/null; then
      log "127.0.0.1:$taken is already in use by another process: stop it, or set KAFKA_PORT and the other ports"
      return 1
    fi
  done
}

launch() { # start node $1's process, without waiting
  local n=$1 dir pid
  dir=$(node_dir "$n")
  log "starting node $n on $(bootstrap "$n") (heap $heap, logs in $dir/logs)"
  local -a cmd
  mapfile -d '' cmd < <(java_cmd "$dir/logs")
  # setsid: the node must outlive this script and ignore the terminal's Ctrl-C meant for `make run`.
  setsid "${cmd[@]}" kafka.Kafka "$dir/server.properties" >"$dir/logs/stdout.log" 2>&1 </dev/null &
  pid=$!
  printf '%s\n' "$pid" >"$dir/kafka.pid"
}

wait_started() { # wait until node $1 answers with every node listed, or its process dies
  local n=$1 dir pid deadline=$((SECONDS + ready_timeout))
  dir=$(node_dir "$n")
  pid=$(<"$dir/kafka.pid")
  while ((SECONDS < deadline)); do
    # kill -0, not running_pid: until setsid has exec'd java, the child's command line is ours.
    if ! kill -0 "$pid" 2>/dev/null; then
      log "node $n exited during start-up; its errors:"
      { cat "$dir/logs/stdout.log"; grep -E 'ERROR|FATAL' "$dir/logs/server.log" | tail -n 20; } >&2 2>/dev/null || true
      return 1
    fi
    if probe "$n" 2 2>/dev/null; then return; fi
  done
  log "node $n not ready after ${ready_timeout}s; see $dir/logs/server.log"
  return 1
}

prepare() {
  mkdir -p "$state"
  resolve_jars
  make_tls
  local n cluster_id=""
  for n in $(all_nodes); do
    mkdir -p "$(node_dir "$n")/logs"
    render_config "$n"
    if [[ ! -f "$(node_dir "$n")/data/meta.properties" && -z "$cluster_id" ]]; then
      cluster_id=$(run_java "$(node_dir "$n")/logs" kafka.tools.StorageTool random-uuid)
    fi
    [[ -z "$cluster_id" ]] || format_storage "$n" "$cluster_id"
  done
}

up() {
  local n pid started=() pids=()
  for n in $(all_nodes); do
    if pid=$(running_pid "$n"); then pids+=("$pid"); continue; fi
    check_ports_free "$n"
    started+=("$n")
  done
  if ((${#started[@]} == 0)); then
    log "already running (pid ${pids[*]})"
    probe 1 "$ready_timeout"
    return
  fi
  prepare
  # Every node at once: a controller quorum of three elects a leader only once two have started.
  for n in "${started[@]}"; do launch "$n"; done
  for n in "${started[@]}"; do wait_started "$n"; done
  ensure_scram_user
  log "ready on $(node_bootstraps "$port")"
  if [[ "$tls" == on ]]; then
    log "SASL_SSL on $(node_bootstraps "$sasl_ssl_port"), SSL on $(node_bootstraps "$ssl_port"): settings in $tls_dir/sasl_ssl.env and ssl.env"
  fi
}

down() {
  local n pid pids=()
  # Every node at once: the last of three to stop one at a time would wait for a controller
  # quorum that is gone.
  for n in $(all_nodes); do
    if pid=$(running_pid "$n"); then kill -TERM "$pid"; pids+=("$pid"); fi
    rm -f "$(node_dir "$n")/kafka.pid"
  done
  if ((${#pids[@]} == 0)); then log "not running"; return; fi
  local deadline=$((SECONDS + stop_timeout))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do
      if ((SECONDS >= deadline)); then log "no clean stop after ${stop_timeout}s; killing"; kill -KILL "${pids[@]}" 2>/dev/null; break 2; fi
      sleep 0.2
    done
  done
  log "stopped"
}

status() {
  local n pid missing=0
  for n in $(all_nodes); do
    if ! pid=$(running_pid "$n"); then log "node $n not running"; missing=1; fi
  done
  ((missing)) && return 3
  if probe 1 2 2>/dev/null; then log "running, ready on $(node_bootstraps "$port")"; return; fi
  log "running but not answering on $(bootstrap 1)"
  return 1
}

node_arg() {
  if [[ ! "${1:-}" =~ ^[1-3]$ ]] || (($1 > nodes)); then
    printf 'kafka.sh: name a node from 1 to %s\n' "$nodes" >&2
    exit 2
  fi
}

kill_node() {
  local pid
  if ! pid=$(running_pid "$1"); then log "node $1 not running"; return 1; fi
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  rm -f "$(node_dir "$1")/kafka.pid"
  log "node $1 killed"
}

start_node() {
  if running_pid "$1" >/dev/null; then log "node $1 already running"; return; fi
  check_ports_free "$1"
  prepare
  launch "$1"
  wait_started "$1"
  log "node $1 ready on $(bootstrap "$1")"
}

# One of Kafka's tools (the kafka-tools jar), on a small heap, its own logs beside the broker's.
tool() { # tool CLASS ARGS...
  local class=$1
  shift
  # Not resolved here: re-resolving replaces the jars a running broker reads.
  if ! compgen -G "$lib/kafka-tools-[0-9]*.jar" >/dev/null; then
    log "Kafka's tools jar is not resolved yet: run \`make down up\` (or kafka.sh down; kafka.sh up)"
    exit 1
  fi
  local -a args=("$@")
  if [[ " ${args[*]} " != *" --bootstrap-server "* ]]; then args+=(--bootstrap-server "$(bootstrap)"); fi
  mkdir -p "$state/tool-logs"
  java -Xmx256m -Djava.awt.headless=true "-Dkafka.logs.dir=$state/tool-logs" \
    "-Dlog4j2.configurationFile=$here/log4j2.xml" -cp "$lib/*" "$class" "${args[@]}"
}

consume() { # consume TOPIC ARGS...
  if [[ -z "${1:-}" ]]; then printf 'usage: %s consume TOPIC [ARGS...]\n' "$0" >&2; exit 2; fi
  local topic=$1
  shift
  tool org.apache.kafka.tools.consumer.ConsoleConsumer --topic "$topic" --from-beginning \
    --property print.key=true --property print.headers=true --property print.timestamp=true \
    --property print.partition=true "$@"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  reset)
    down
    for n in $(all_nodes); do rm -rf "$(node_dir "$n")/data" "$(node_dir "$n")/server.properties"; done
    log "data deleted"
    ;;
  kill) node_arg "${2:-}"; kill_node "$2" ;;
  start) node_arg "${2:-}"; start_node "$2" ;;
  consume) shift; consume "$@" ;;
  tool)
    if [[ -z "${2:-}" ]]; then printf 'usage: %s tool CLASS [ARGS...]\n' "$0" >&2; exit 2; fi
    shift; tool "$@"
    ;;
  *) printf 'usage: %s up|down|status|reset|kill N|start N|consume TOPIC|tool CLASS\n' "$0" >&2; exit 2 ;;
esac
