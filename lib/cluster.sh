#!/usr/bin/env bash
# A Spark standalone cluster on this machine, from the pyspark wheel in .venv, and the packed
# Python environment its executors run. Called as `./spark-submit.sh cluster ...`:
#
#   cluster up     [--conf conf/standalone.yaml] [--set key=value ...]
#                  start one master and REVIEWREC_CLUSTER_WORKERS (2) workers, each its own JVM
#                  bound to the master's host, and wait until every worker has registered
#   cluster down   stop them (and any executor they left behind); no-op when nothing runs
#   cluster status what runs, with pids, ports and the master's view of its workers
#   cluster pack   pack .venv with venv-pack (cached, keyed by the pins) and print its path
#
# The master URL, the UI ports and each worker's cores and memory come from the conf
# (spark.master, spark.master.ui.port, spark.worker.ui.port, spark.executor.cores,
# spark.executor.memory): a worker offers exactly one executor of the job's size.
# Logs, pid files, work directories, event logs and spark-defaults.conf live in the state
# directory ${REVIEWREC_CLUSTER_DIR:-$REVIEWREC_CACHE/cluster}. Event logging is on: run
#   SPARK_CONF_DIR=<state>/conf .venv/lib/python3.11/site-packages/pyspark/sbin/start-history-server.sh
# to browse finished applications at http://127.0.0.1:18080.
set -euo pipefail
RR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/bootstrap.sh
source "$RR_ROOT/lib/bootstrap.sh"
# shellcheck source=lib/daemon.sh
source "$RR_ROOT/lib/daemon.sh"
cd "$RR_ROOT"

STATE="${REVIEWREC_CLUSTER_DIR:-$RR_CACHE/cluster}"
WORKERS="${REVIEWREC_CLUSTER_WORKERS:-2}"
READY_TIMEOUT="${REVIEWREC_CLUSTER_TIMEOUT:-90}"
# Part of the packed archive's name: bump it when what is packed changes.
PACK_LAYOUT=p2

cluster_usage() {
  cat <<'EOF'
usage: ./spark-submit.sh cluster up|down|status|pack [--conf FILE] [--set key=value ...]
  up      start a standalone master and 2 workers on this machine (conf/standalone.yaml by default)
  down    stop them
  status  show what runs
  pack    pack .venv for --archives (cached) and print the archive's path
State (logs, pids, event logs): ${REVIEWREC_CLUSTER_DIR:-~/.cache/reviewrec/cluster}
EOF
}

spark_home() { "$RR_VENV/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))'; }

pid_of() { [ -f "$STATE/pids/$1.pid" ] && cat "$STATE/pids/$1.pid" || true; }

load_settings() {
  local args=("$@")
  [ ${#args[@]} -gt 0 ] || args=(--conf conf/standalone.yaml)
  local out
  out=$(PYTHONPATH="$RR_ROOT/lib" "$RR_VENV/bin/python" -m reviewrec.submit cluster "${args[@]}") \
    || rr_die "cannot read the cluster settings from: ${args[*]}"
  eval "$out"
}

# The executors the workers started (and their Python workers), should a worker have died
# without them.
orphans() { processes_under "$STATE/work"; }

cmd_down() {
  local names=() pids=() n p
  for n in $(ls "$STATE/pids" 2>/dev/null | sed 's/\.pid$//' | sort -r); do
    p=$(pid_of "$n")
    if alive "$p"; then names+=("$n"); pids+=("$p"); fi
  done
  if [ ${#pids[@]} -gt 0 ]; then
    rr_log "stopping ${names[*]} (pids ${pids[*]})"
    stop_pids 15 "${pids[@]}"
  fi
  rm -f "$STATE"/pids/*.pid
  mapfile -t pids < <(orphans)
  if [ ${#pids[@]} -gt 0 ]; then
    rr_log "stopping executor processes left under $STATE/work (pids ${pids[*]})"
    stop_pids 15 "${pids[@]}"
  fi
  rr_log "cluster down (state: $STATE)"
}

master_json() { curl -fsS --max-time 3 "http://$RR_MASTER_HOST:$RR_MASTER_UI_PORT/json/" 2>/dev/null; }

alive_workers() {
  master_json | "$RR_VENV/bin/python" -c 'import json,sys; print(sum(w["state"] == "ALIVE" for w in json.load(sys.stdin)["workers"]))' 2>/dev/null || echo 0
}

start_daemon() {
  # start_daemon NAME CLASS ARGS...: one JVM, detached, its pid recorded.
  local name="$1"; shift
  local log="$STATE/logs/$name.log"
  : > "$log"
  # Executors inherit the worker's environment: nothing from the caller's Python setup leaks in
  # (they get PYTHONPATH from --py-files and their interpreter from the packed environment).
  env -u PYTHONPATH -u PYSPARK_PYTHON -u PYSPARK_DRIVER_PYTHON -u VIRTUAL_ENV \
    SPARK_HOME="$SPARK_HOME" SPARK_CONF_DIR="$STATE/conf" SPARK_LOG_DIR="$STATE/logs" \
    SPARK_LOCAL_IP="$RR_MASTER_HOST" SPARK_NO_DAEMONIZE=1 \
    setsid nohup "$SPARK_HOME/bin/spark-class" "$@" > "$log" 2>&1 < /dev/null &
  echo $! > "$STATE/pids/$name.pid"
}

# What a running cluster must match for `up` to leave it as it is.
settings_key() {
  echo "url=$RR_MASTER_URL,ui=$RR_MASTER_UI_PORT/$RR_WORKER_UI_PORT,workers=$WORKERS,cores=$RR_WORKER_CORES,memory=$RR_WORKER_MEMORY,ttl=$RR_APP_DATA_TTL,retries=$RR_MAX_EXECUTOR_RETRIES"
}

write_defaults() {
  mkdir -p "$STATE/conf" "$STATE/events"
  local interval=$((RR_APP_DATA_TTL < 60 ? RR_APP_DATA_TTL : 60))
  [ "$interval" -ge 5 ] || interval=5
  cat > "$STATE/conf/spark-defaults.conf" <<EOF
# Written by lib/cluster.sh for the cluster at $RR_MASTER_URL. spark-submit.sh points
# SPARK_CONF_DIR here when it submits to that master.
spark.eventLog.enabled           true
spark.eventLog.dir               file://$STATE/events
spark.history.fs.logDirectory    file://$STATE/events
spark.history.ui.port            18080
# Workers: each executor unpacks the environment archive (~1.8 GB) into its application's work
# directory; a finished application's directory goes once nothing in it changed for
# spark.worker.cleanup.appDataTtl seconds (conf), checked every $interval s.
spark.worker.cleanup.enabled     true
spark.worker.cleanup.interval    $interval
spark.worker.cleanup.appDataTtl  $RR_APP_DATA_TTL
# Master: an application whose executors keep failing to start (a full disk, a broken archive)
# is stopped after this many in a row instead of relaunching executors for ever.
spark.deploy.maxExecutorRetries  $RR_MAX_EXECUTOR_RETRIES
EOF
  printf 'RR_MASTER_URL=%s\nRR_MASTER_HOST=%s\nRR_MASTER_UI_PORT=%s\nRR_SETTINGS=%s\n' \
    "$RR_MASTER_URL" "$RR_MASTER_HOST" "$RR_MASTER_UI_PORT" "$(settings_key)" > "$STATE/cluster.env"
}

cmd_up() {
  load_settings "$@"
  ensure_env
  SPARK_HOME=$(spark_home)
  mkdir -p "$STATE/logs" "$STATE/pids" "$STATE/work"
  local master_pid all_up=1 i
  master_pid=$(pid_of master)
  for i in $(seq 1 "$WORKERS"); do alive "$(pid_of "worker-$i")" || all_up=0; done
  if alive "$master_pid" && [ "$all_up" = 1 ]; then
    if [ -f "$STATE/cluster.env" ] && grep -qx "RR_SETTINGS=$(settings_key)" "$STATE/cluster.env"; then
      rr_log "cluster already up at $RR_MASTER_URL (master pid $master_pid; ./spark-submit.sh cluster status)"
      return 0
    fi
    rr_die "a cluster from $STATE is up with other settings ($(sed -n 's/^RR_SETTINGS=//p' "$STATE/cluster.env"), asked for $(settings_key)); run ./spark-submit.sh cluster down first"
  fi
  # Half up (a daemon died): start clean.
  if alive "$master_pid" || ls "$STATE"/pids/*.pid >/dev/null 2>&1; then cmd_down; fi
  local port what owner
  for port in "$RR_MASTER_PORT:master" "$RR_MASTER_UI_PORT:master web UI" \
              $(for i in $(seq 1 "$WORKERS"); do echo "$((RR_WORKER_UI_PORT + i - 1)):worker-$i-web-UI"; done); do
    what="${port#*:}"; port="${port%%:*}"
    if port_in_use "$RR_MASTER_HOST" "$port"; then
      owner=$(port_owner "$port")
      rr_die "port $port on $RR_MASTER_HOST (${what//-/ }) is already in use${owner:+ by $owner}; stop that process or choose other ports in the conf (spark.master, spark.master.ui.port, spark.worker.ui.port)"
    fi
  done
  write_defaults
  rr_log "starting master $RR_MASTER_URL (web UI http://$RR_MASTER_HOST:$RR_MASTER_UI_PORT) and $WORKERS workers x $RR_WORKER_CORES core(s), $RR_WORKER_MEMORY; state: $STATE"
  start_daemon master org.apache.spark.deploy.master.Master \
    --host "$RR_MASTER_HOST" --port "$RR_MASTER_PORT" --webui-port "$RR_MASTER_UI_PORT"
  local waited=0
  until port_in_use "$RR_MASTER_HOST" "$RR_MASTER_PORT" && master_json >/dev/null; do
    alive "$(pid_of master)" || { tail -n 30 "$STATE/logs/master.log" >&2; rr_die "the master exited (log: $STATE/logs/master.log)"; }
    [ "$waited" -lt $((READY_TIMEOUT * 2)) ] || { cmd_down; rr_die "the master did not come up within ${READY_TIMEOUT}s (log: $STATE/logs/master.log)"; }
    sleep 0.5; waited=$((waited + 1))
  done
  for i in $(seq 1 "$WORKERS"); do
    mkdir -p "$STATE/work/worker-$i"
    start_daemon "worker-$i" org.apache.spark.deploy.worker.Worker \
      --host "$RR_MASTER_HOST" --cores "$RR_WORKER_CORES" --memory "$RR_WORKER_MEMORY" \
      --webui-port "$((RR_WORKER_UI_PORT + i - 1))" --work-dir "$STATE/work/worker-$i" "$RR_MASTER_URL"
  done
  waited=0
  until [ "$(alive_workers)" -ge "$WORKERS" ]; do
    for i in $(seq 1 "$WORKERS"); do
      alive "$(pid_of "worker-$i")" || { tail -n 30 "$STATE/logs/worker-$i.log" >&2; cmd_down; rr_die "worker-$i exited (log: $STATE/logs/worker-$i.log)"; }
    done
    [ "$waited" -lt $((READY_TIMEOUT * 2)) ] || { cmd_down; rr_die "only $(alive_workers) of $WORKERS workers registered within ${READY_TIMEOUT}s (logs: $STATE/logs)"; }
    sleep 0.5; waited=$((waited + 1))
  done
  rr_log "cluster up: $RR_MASTER_URL, $WORKERS workers alive"
}

cmd_status() {
  local n p rc=0 any=0
  if [ -f "$STATE/cluster.env" ]; then
    # shellcheck disable=SC1091
    source "$STATE/cluster.env"
  else
    load_settings "$@"
  fi
  echo "state: $STATE"
  for n in $(ls "$STATE/pids" 2>/dev/null | sed 's/\.pid$//' | sort); do
    any=1
    p=$(pid_of "$n")
    if alive "$p"; then echo "$n: running (pid $p, log $STATE/logs/$n.log)"
    else echo "$n: NOT running (pid $p; log $STATE/logs/$n.log)"; rc=1; fi
  done
  if [ "$any" = 0 ]; then echo "cluster: down"; return 3; fi
  local j
  if j=$(master_json); then
    MASTER_JSON="$j" "$RR_VENV/bin/python" - <<'PY'
import json, os
m = json.loads(os.environ["MASTER_JSON"])
print("master %s: %s, %d workers alive, %d cores, %d MiB, %d running / %d finished applications" % (
    m["url"], m["status"], m["aliveworkers"], m["cores"], m["memory"], len(m["activeapps"]), len(m["completedapps"])))
for w in m["workers"]:
    print("  worker %s: %s, %d cores (%d used), %d MiB" % (w["id"], w["state"], w["cores"], w["coresused"], w["memory"]))
PY
  else
    echo "master web UI http://$RR_MASTER_HOST:$RR_MASTER_UI_PORT not answering"; rc=1
  fi
  return "$rc"
}

# The packed environment: venv-pack refuses a venv with editable installs (.venv has reviewrec
# installed with pip -e), so it packs a hard-linked copy of .venv without that link; the package
# travels separately as build/py/<hash>/reviewrec.zip (--py-files). Cached outside the clone, keyed by the
# pins stamp, so it is packed once per set of pins (about 2 minutes with TensorFlow).
cmd_pack() {
  ensure_env
  local stamp out stage
  stamp=$(rr_stamp)
  out="$RR_CACHE/envs/reviewrec-env-$stamp-$PACK_LAYOUT.tar.gz"
  if [ -f "$out" ]; then echo "$out"; return 0; fi
  mkdir -p "$RR_CACHE/envs"
  exec 8>"$RR_CACHE/envs/pack.lock"
  flock 8
  if [ -f "$out" ]; then echo "$out"; return 0; fi
  stage="$RR_CACHE/envs/stage-$stamp"
  rm -rf "$stage"
  rr_log "packing $RR_VENV with venv-pack into $out (once per pins)"
  cp -al "$RR_VENV" "$stage" 2>/dev/null || cp -a "$RR_VENV" "$stage"
  rm -f "$stage"/lib/python3*/site-packages/__editable__*reviewrec*
  rm -rf "$stage"/lib/python3*/site-packages/reviewrec-*.dist-info "$stage"/lib/python3*/site-packages/reviewrec.egg-link
  # Left out: Spark's jars (executors run the cluster's Spark; Python only needs pyspark's
  # modules) and TensorFlow's C++ headers. Compression level 1: packs in about a minute.
  "$RR_VENV/bin/venv-pack" -p "$stage" -o "$out.tmp.$$" --format tar.gz --compress-level 1 -q \
    --exclude 'lib/python*/site-packages/pyspark/jars/*' \
    --exclude 'lib/python*/site-packages/tensorflow/include/*' \
    || { rm -rf "$stage" "$out.tmp.$$"; rr_die "venv-pack failed"; }
  mv "$out.tmp.$$" "$out"
  rm -rf "$stage"
  # Archives of earlier pins are not used again.
  find "$RR_CACHE/envs" -maxdepth 1 -name 'reviewrec-env-*.tar.gz' ! -path "$out" -delete
  rr_log "packed $(du -h "$out" | cut -f1): $out"
  echo "$out"
}

sub="${1:-}"
[ $# -gt 0 ] && shift
case "$sub" in
  up) cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status "$@" ;;
  pack) cmd_pack ;;
  -h|--help|help) cluster_usage ;;
  *) cluster_usage >&2; exit 2 ;;
esac
