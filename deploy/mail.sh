#!/usr/bin/env bash
# A development SMTP server (aiosmtpd) that keeps every message it accepts in a Maildir, so
# `make run` can send real email without a mail provider.
#
#   deploy/mail.sh up | down | status
#
# Environment: MAIL_PORT (1025), MAIL_STATE_DIR (<repo>/.local/mail), PYTHON (has aiosmtpd).
# Messages land in $MAIL_STATE_DIR/inbox/new/, one file each.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
port=${MAIL_PORT:-1025}
state=${MAIL_STATE_DIR:-$repo/.local/mail}
pidfile=$state/aiosmtpd.pid
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$repo/.venv/bin/python" ]]; then PYTHON=$repo/.venv/bin/python; else PYTHON=python3; fi
fi

log() { printf 'mail.sh: %s\n' "$*" >&2; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
running_pid() {
  [[ -f "$pidfile" ]] && kill -0 "$(<"$pidfile")" 2>/dev/null && cat "$pidfile"
}

case "${1:-}" in
  up)
    mkdir -p "$state"
    if pid=$(running_pid); then log "already running (pid $pid)"; exit 0; fi
    if listening; then log "127.0.0.1:$port is already in use by another process"; exit 1; fi
    setsid "$PYTHON" -m aiosmtpd -n -l "127.0.0.1:$port" -c aiosmtpd.handlers.Mailbox "$state/inbox" \
      >"$state/aiosmtpd.log" 2>&1 </dev/null &
    printf '%s\n' "$!" >"$pidfile"
    for _ in $(seq 50); do
      if listening; then log "SMTP on 127.0.0.1:$port; messages in $state/inbox/new"; exit 0; fi
      sleep 0.1
    done
    log "did not start; see $state/aiosmtpd.log"; exit 1 ;;
  down)
    if pid=$(running_pid); then kill "$pid"; log "stopped"; else log "not running"; fi
    rm -f "$pidfile" ;;
  status)
    if pid=$(running_pid); then log "running (pid $pid) on 127.0.0.1:$port"; else log "not running"; exit 3; fi ;;
  *) printf 'usage: %s up|down|status\n' "$0" >&2; exit 2 ;;
esac
