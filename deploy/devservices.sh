#!/usr/bin/env bash
# Development stand-ins for the services the worker talks to, run from the project's virtualenv:
#   mail: an SMTP server (aiosmtpd) on 127.0.0.1:1025 that keeps every message in a Maildir
#         ($state/mail/new, one file per message);
#   s3:   an S3-compatible server (moto) on 127.0.0.1:9000 with the buckets "media" and
#         "staging", credentials pipeline / pipeline-secret (the worker's defaults).
#
#   deploy/devservices.sh up | down | status
#
# Ports come from the worker's own settings, so one variable moves both ends:
# PIPELINE_SMTP_PORT (1025) and the port of PIPELINE_S3_ENDPOINT_URL (http://127.0.0.1:9000).
# Also DEV_STATE_DIR (<repo>/.local/dev) and PYTHON (an interpreter with aiosmtpd and moto).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
state=${DEV_STATE_DIR:-$repo/.local/dev}
mail_port=${PIPELINE_SMTP_PORT:-1025}
s3_port=9000
if [[ "${PIPELINE_S3_ENDPOINT_URL:-}" =~ ^https?://(127\.0\.0\.1|localhost):([0-9]+)/?$ ]]; then
  s3_port=${BASH_REMATCH[2]}
elif [[ -n "${PIPELINE_S3_ENDPOINT_URL:-}" ]]; then
  printf 'devservices.sh: PIPELINE_S3_ENDPOINT_URL=%s is not on this machine: no local S3 started for it\n' \
    "$PIPELINE_S3_ENDPOINT_URL" >&2
fi
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$repo/.venv/bin/python" ]]; then PYTHON=$repo/.venv/bin/python; else PYTHON=python3; fi
fi

log() { printf 'devservices.sh: %s\n' "$*" >&2; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
running_pid() {
  local pidfile=$state/$1.pid
  [[ -f "$pidfile" ]] && kill -0 "$(<"$pidfile")" 2>/dev/null && cat "$pidfile"
}

# start NAME PORT COMMAND...: run COMMAND in the background and wait for PORT.
start() {
  local name=$1 port=$2 pid
  shift 2
  if pid=$(running_pid "$name"); then log "$name already running (pid $pid)"; return; fi
  if listening "$port"; then log "127.0.0.1:$port ($name) is in use by another process"; return 1; fi
  setsid "$@" >"$state/$name.log" 2>&1 </dev/null &
  printf '%s\n' "$!" >"$state/$name.pid"
  for _ in $(seq 100); do
    if listening "$port"; then log "$name on 127.0.0.1:$port"; return; fi
    sleep 0.1
  done
  log "$name did not start; see $state/$name.log"
  return 1
}

stop() {
  local pid
  if pid=$(running_pid "$1"); then kill "$pid"; log "$1 stopped"; else log "$1 not running"; fi
  rm -f "$state/$1.pid"
}

create_buckets() {
  "$PYTHON" - "$s3_port" <<'PY'
import sys

import boto3

s3 = boto3.client(
    "s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1",
    aws_access_key_id="pipeline", aws_secret_access_key="pipeline-secret",
)
existing = {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}
for name in ("media", "staging"):
    if name not in existing:
        s3.create_bucket(Bucket=name)
PY
}

case "${1:-}" in
  up)
    mkdir -p "$state"
    start mail "$mail_port" "$PYTHON" -m aiosmtpd -n -l "127.0.0.1:$mail_port" \
      -c aiosmtpd.handlers.Mailbox "$state/mail"
    start s3 "$s3_port" "$PYTHON" -m moto.server -H 127.0.0.1 -p "$s3_port"
    create_buckets
    log "buckets media and staging ready; mail lands in $state/mail/new" ;;
  down)
    stop mail
    stop s3 ;;
  status)
    rc=0
    for name in mail s3; do
      if pid=$(running_pid "$name"); then log "$name running (pid $pid)"; else log "$name not running"; rc=3; fi
    done
    exit "$rc" ;;
  *) printf 'usage: %s up|down|status\n' "$0" >&2; exit 2 ;;
esac
