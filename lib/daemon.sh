# shellcheck shell=bash
# What the scripts of this machine's daemons share (lib/cluster.sh, lib/yarn.sh, lib/s3.sh), sourced
# after lib/bootstrap.sh:
#
#   alive PID                  the process runs
#   port_in_use HOST PORT      something accepts connections there (1 s)
#   port_owner PORT            the process listening on PORT, as ss names it ("java",pid=...)
#   stop_pids SECONDS PID...   TERM, then KILL what is still there after SECONDS
#   processes_under DIR        processes whose working directory is below DIR (containers,
#                              executors and their Python workers a daemon left behind)

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

port_in_use() {
  "$RR_VENV/bin/python" - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(1)
sys.exit(0 if s.connect_ex((sys.argv[1], int(sys.argv[2]))) == 0 else 1)
PY
}

port_owner() { ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n 1; }

stop_pids() {
  local wait="$1" p i left
  shift
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  for i in $(seq 1 $((wait * 2))); do
    left=0
    for p in "$@"; do alive "$p" && left=1; done
    [ "$left" = 0 ] && return 0
    sleep 0.5
  done
  kill -KILL "$@" 2>/dev/null || true
}

processes_under() {
  local p cwd
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = "$$" ] && continue
    cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
    case "$cwd" in "$1/"*) echo "${p#/proc/}" ;; esac
  done
}
