#!/usr/bin/env bash
# An S3-compatible server on this machine (moto's, from .venv) for s3a:// run roots. Called as
# `./spark-submit.sh s3 ...`:
#
#   s3 up     [--bucket NAME ...]   start it on 127.0.0.1:${REVIEWREC_S3_PORT:-9878} with credential
#                                   checks on, wait until it answers, create the buckets asked
#                                   (up on a running server only adds the missing buckets)
#   s3 down                         stop it (its objects live in memory: they go with it)
#   s3 status                       what runs, with pid, endpoint and buckets
#
# The first `up` creates a key pair with full S3 access and writes it to <state>/credentials
# (mode 600) as AWS_ACCESS_KEY_ID=... lines; s3a reads the keys from the environment
# (conf/s3.yaml), never from a conf file:
#   set -a; . ~/.cache/reviewrec/s3/credentials; set +a
#   ./spark-submit.sh pipeline --conf conf/local.yaml --conf conf/s3.yaml --set run.root=s3a://reviewrec/runs/x
# State (pid, log, endpoint, credentials): ${REVIEWREC_S3_DIR:-$REVIEWREC_CACHE/s3}.
set -euo pipefail
RR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/bootstrap.sh
source "$RR_ROOT/lib/bootstrap.sh"
# shellcheck source=lib/daemon.sh
source "$RR_ROOT/lib/daemon.sh"
cd "$RR_ROOT"

STATE="${REVIEWREC_S3_DIR:-$RR_CACHE/s3}"
HOST=127.0.0.1
PORT="${REVIEWREC_S3_PORT:-9878}"
READY_TIMEOUT="${REVIEWREC_S3_TIMEOUT:-60}"
PIDFILE="$STATE/moto.pid"
LOG="$STATE/moto.log"
CREDS="$STATE/credentials"

s3_usage() {
  cat <<'EOF'
usage: ./spark-submit.sh s3 up [--bucket NAME ...] | down | status
  up      start the local S3 server (moto) on 127.0.0.1:${REVIEWREC_S3_PORT:-9878} and create the buckets
  down    stop it (its objects are in memory and go with it)
  status  show what runs
Keys for s3a: set -a; . ${REVIEWREC_S3_DIR:-~/.cache/reviewrec/s3}/credentials; set +a
EOF
}

server_pid() { [ -f "$PIDFILE" ] && cat "$PIDFILE" || true; }
endpoint() { echo "http://$HOST:$1"; }

objectstore() { PYTHONPATH="$RR_ROOT/lib" "$RR_VENV/bin/python" -m reviewrec.objectstore "$@"; }

answers() { curl -fsS --max-time 2 -o /dev/null "$(endpoint "$1")/moto-api/data.json" 2>/dev/null; }

cmd_down() {
  local p
  p=$(server_pid)
  if alive "$p"; then
    rr_log "stopping the S3 server (pid $p)"
    stop_pids 10 "$p"
  fi
  # The objects were in memory: the keys and the endpoint of this server go with them.
  rm -f "$PIDFILE" "$STATE/s3.env" "$CREDS"
  rr_log "s3 down (state: $STATE)"
}

cmd_up() {
  local buckets=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --bucket) [ $# -ge 2 ] || rr_die "--bucket needs a name"; buckets+=("$2"); shift 2 ;;
      --bucket=*) buckets+=("${1#--bucket=}"); shift ;;
      *) rr_die "unexpected argument '$1' (s3 up [--bucket NAME ...])" ;;
    esac
  done
  local b
  for b in "${buckets[@]+"${buckets[@]}"}"; do
    [[ "$b" =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || rr_die "bucket name '$b' is not a valid S3 bucket name (3-63 of a-z 0-9 . -)"
  done
  ensure_env
  mkdir -p "$STATE"
  local p running_port=""
  p=$(server_pid)
  [ -f "$STATE/s3.env" ] && running_port=$(sed -n 's/^RR_S3_PORT=//p' "$STATE/s3.env")
  if alive "$p"; then
    if [ "$running_port" = "$PORT" ] && answers "$PORT"; then
      objectstore provision "$(endpoint "$PORT")" "$CREDS" "${buckets[@]+"${buckets[@]}"}" \
        || rr_die "creating buckets on $(endpoint "$PORT") failed (log: $LOG)"
      rr_log "S3 server already up at $(endpoint "$PORT") (pid $p; ./spark-submit.sh s3 status)"
      return 0
    fi
    rr_die "an S3 server from $STATE runs on port ${running_port:-?} (pid $p), asked for $PORT; run ./spark-submit.sh s3 down first"
  fi
  # A stale state (the server died): start clean.
  rm -f "$PIDFILE" "$STATE/s3.env" "$CREDS"
  if port_in_use "$HOST" "$PORT"; then
    local owner
    owner=$(port_owner "$PORT")
    rr_die "port $PORT on $HOST is already in use${owner:+ by $owner}; stop that process or choose another port (REVIEWREC_S3_PORT=...)"
  fi
  rr_log "starting the S3 server at $(endpoint "$PORT"); state: $STATE"
  : > "$LOG"
  # Its own session (setsid), so a terminal's Ctrl-C does not reach it; nothing of the caller's
  # AWS settings leaks in.
  env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u PYTHONPATH \
    PYTHONPATH="$RR_ROOT/lib" setsid nohup "$RR_VENV/bin/python" -m reviewrec.objectstore serve "$HOST" "$PORT" \
    > "$LOG" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
  local waited=0
  until answers "$PORT"; do
    alive "$(server_pid)" || { tail -n 20 "$LOG" >&2; rm -f "$PIDFILE"; rr_die "the S3 server exited (log: $LOG)"; }
    [ "$waited" -lt $((READY_TIMEOUT * 2)) ] || { cmd_down; rr_die "the S3 server did not answer within ${READY_TIMEOUT}s (log: $LOG)"; }
    sleep 0.5; waited=$((waited + 1))
  done
  printf 'RR_S3_PORT=%s\nRR_S3_ENDPOINT=%s\n' "$PORT" "$(endpoint "$PORT")" > "$STATE/s3.env"
  objectstore provision "$(endpoint "$PORT")" "$CREDS" "${buckets[@]+"${buckets[@]}"}" \
    || { cmd_down; rr_die "setting up keys and buckets on $(endpoint "$PORT") failed (log: $LOG)"; }
  rr_log "S3 server up at $(endpoint "$PORT") (pid $(server_pid)); keys for s3a: set -a; . $CREDS; set +a"
}

cmd_status() {
  local p port
  echo "state: $STATE"
  p=$(server_pid)
  if ! alive "$p"; then
    if [ -n "$p" ]; then echo "s3: NOT running (pid $p; log $LOG)"; return 1; fi
    echo "s3: down"; return 3
  fi
  port=$(sed -n 's/^RR_S3_PORT=//p' "$STATE/s3.env" 2>/dev/null || true)
  echo "s3: running (pid $p, endpoint $(endpoint "${port:-$PORT}"), log $LOG, credentials $CREDS)"
  if [ -f "$CREDS" ] && answers "${port:-$PORT}"; then
    echo "buckets: $(objectstore buckets "$(endpoint "${port:-$PORT}")" "$CREDS")"
  else
    echo "endpoint $(endpoint "${port:-$PORT}") not answering"; return 1
  fi
}

sub="${1:-}"
[ $# -gt 0 ] && shift
case "$sub" in
  up) cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  -h|--help|help) s3_usage ;;
  *) s3_usage >&2; exit 2 ;;
esac
