#!/usr/bin/env bash
# YARN over HDFS on this machine: a ResourceManager with one NodeManager and a NameNode with one
# DataNode, from Hadoop's minicluster jars (lib/yarn/pom.xml, fetched by setup), in one JVM
# bound to 127.0.0.1 (lib/yarn/ReviewrecYarn.java, compiled here with javac). The shape of EMR
# and Dataproc: `--master yarn`, client or cluster deploy mode, run roots on hdfs://.
# Called as `./spark-submit.sh yarn ...`:
#
#   yarn up       start it (idempotent) and wait until HDFS and the NodeManager are ready
#   yarn down     stop it and every container process it left behind; no-op when nothing runs
#   yarn status   what runs, with pid, addresses and the NodeManager's containers
#   yarn env-archive
#                 stage the packed Python environment (./spark-submit.sh cluster pack) on HDFS,
#                 world-readable so YARN localizes it once per NodeManager for every
#                 application (its public cache), and print its hdfs:// URL
#
# Ports (environment): REVIEWREC_YARN_NN_PORT (NameNode RPC, 9000), REVIEWREC_YARN_NN_HTTP_PORT
# (NameNode web/WebHDFS, 9870), REVIEWREC_YARN_RM_PORT (ResourceManager; it and the next three:
# scheduler, resource tracker, admin; 8032), REVIEWREC_YARN_WEB_PORT (ResourceManager web port,
# 8088: bound, but the minicluster jar's web app answers 404 to every page and REST call).
# The NodeManager offers 4096 MB and 4 vcores (conf/yarn.yaml's driver and executors fit).
# State, logs, HDFS data, container directories and the client configuration live in
# ${REVIEWREC_YARN_DIR:-$REVIEWREC_CACHE/yarn-cluster}: spark-submit.sh points HADOOP_CONF_DIR
# (hadoop-conf/) and SPARK_CONF_DIR (spark-conf/) there when it submits to yarn with neither set.
# HDFS is formatted at every `up`: it holds run roots for this machine's tests and demos only.
set -euo pipefail
RR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/bootstrap.sh
source "$RR_ROOT/lib/bootstrap.sh"
# shellcheck source=lib/daemon.sh
source "$RR_ROOT/lib/daemon.sh"
cd "$RR_ROOT"

STATE="${REVIEWREC_YARN_DIR:-$RR_CACHE/yarn-cluster}"
NN_PORT="${REVIEWREC_YARN_NN_PORT:-9000}"
NN_HTTP_PORT="${REVIEWREC_YARN_NN_HTTP_PORT:-9870}"
RM_PORT="${REVIEWREC_YARN_RM_PORT:-8032}"
WEB_PORT="${REVIEWREC_YARN_WEB_PORT:-8088}"
NODE_MANAGERS=1
HOST=127.0.0.1
READY_TIMEOUT="${REVIEWREC_YARN_TIMEOUT:-120}"

yarn_usage() {
  cat <<'EOF'
usage: ./spark-submit.sh yarn up|down|status|env-archive
  up           start YARN (ResourceManager + NodeManager) and HDFS (NameNode + DataNode) on 127.0.0.1
  down         stop them and any container they left behind
  status       show what runs
  env-archive  stage the packed Python environment on HDFS and print its URL
Ports: REVIEWREC_YARN_NN_PORT (9000), REVIEWREC_YARN_NN_HTTP_PORT (9870), REVIEWREC_YARN_RM_PORT
(8032-8035), REVIEWREC_YARN_WEB_PORT (8088). State: ${REVIEWREC_YARN_DIR:-~/.cache/reviewrec/yarn-cluster}
EOF
}

daemon_pid() { [ -f "$STATE/pids/yarn.pid" ] && cat "$STATE/pids/yarn.pid" || true; }

settings_key() { echo "nn=$NN_PORT,nnhttp=$NN_HTTP_PORT,rm=$RM_PORT,web=$WEB_PORT,nms=$NODE_MANAGERS"; }

java_home() {
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then echo "$JAVA_HOME"; return; fi
  local java
  java=$(readlink -f "$(command -v java)") || rr_die "java not found"
  dirname "$(dirname "$java")"
}

# The daemon's classes: ReviewrecYarn.java compiled once per source and jars, in the cache.
compile_daemon() {
  local jars="$1" key out
  key=$(cat "$RR_ROOT/lib/yarn/ReviewrecYarn.java" "$jars/../MANIFEST" | sha256sum | cut -c1-16)
  out="$RR_CACHE/yarn/classes-$key"
  if [ ! -f "$out/ReviewrecYarn.class" ]; then
    local javac
    javac="$(java_home)/bin/javac"
    [ -x "$javac" ] || javac=$(command -v javac) \
      || rr_die "javac not found: yarn up compiles lib/yarn/ReviewrecYarn.java and needs a JDK 17 (Debian: apt-get install openjdk-17-jdk-headless)"
    mkdir -p "$out.tmp.$$"
    "$javac" -nowarn -d "$out.tmp.$$" -cp "$(classpath "$jars")" "$RR_ROOT/lib/yarn/ReviewrecYarn.java" >&2 \
      || rr_die "compiling lib/yarn/ReviewrecYarn.java failed"
    rm -rf "$out" && mv "$out.tmp.$$" "$out"
  fi
  echo "$out"
}

classpath() { sed "s:^:$1/:" "$1/../MANIFEST" | paste -sd: -; }

# Processes under this cluster's directories (containers, their Python workers, Horovod ranks),
# should the daemon have died without stopping them.
orphans() { processes_under "$STATE"; }

cmd_down() {
  local p pids
  p=$(daemon_pid)
  if alive "$p"; then
    rr_log "stopping YARN and HDFS (pid $p)"
    stop_pids 30 "$p"
  fi
  rm -f "$STATE/pids/yarn.pid" "$STATE/ready"
  mapfile -t pids < <(orphans)
  if [ ${#pids[@]} -gt 0 ]; then
    rr_log "stopping container processes left under $STATE (pids ${pids[*]})"
    stop_pids 30 "${pids[@]}"
  fi
  rr_log "yarn down (state: $STATE)"
}

write_spark_defaults() {
  local spark_home
  spark_home=$("$RR_VENV/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
  mkdir -p "$STATE/spark-conf" "$STATE/events"
  cat > "$STATE/spark-conf/spark-defaults.conf" <<EOF
# Written by lib/yarn.sh for the YARN on this machine. spark-submit.sh points SPARK_CONF_DIR here
# when it submits to yarn and no HADOOP_CONF_DIR is set.
# Spark's own jars are on this machine already: containers use them where they are instead of
# an upload per application (on EMR/Dataproc the image has them).
spark.yarn.jars                      local:$spark_home/jars/*
# The driver (in cluster mode the ApplicationMaster) and the executors bind to loopback, as
# every daemon here does.
spark.yarn.appMasterEnv.SPARK_LOCAL_IP  $HOST
spark.executorEnv.SPARK_LOCAL_IP        $HOST
spark.eventLog.enabled               true
spark.eventLog.dir                   file://$STATE/events
spark.history.fs.logDirectory        file://$STATE/events
EOF
}

cmd_up() {
  ensure_env
  ensure_yarn_jars || rr_die "the YARN/HDFS minicluster jars (lib/yarn/pom.xml) could not be fetched with Maven"
  local jars classes p waited port what owner
  jars="$RR_CACHE/yarn/$(rr_yarn_key)/jars"
  mkdir -p "$STATE/logs" "$STATE/pids"
  p=$(daemon_pid)
  if alive "$p"; then
    if [ -f "$STATE/ready" ] && grep -qx "RR_SETTINGS=$(settings_key)" "$STATE/yarn.env" 2>/dev/null; then
      rr_log "yarn already up (pid $p; ./spark-submit.sh yarn status)"
      return 0
    fi
    if [ -f "$STATE/ready" ]; then
      rr_die "a YARN from $STATE is up with other settings ($(sed -n 's/^RR_SETTINGS=//p' "$STATE/yarn.env"), asked for $(settings_key)); run ./spark-submit.sh yarn down first"
    fi
    # Half up (still starting or wedged): start clean.
    cmd_down
  fi
  for port in "$NN_PORT:NameNode" "$NN_HTTP_PORT:NameNode-web" "$RM_PORT:ResourceManager" \
              "$((RM_PORT + 1)):ResourceManager-scheduler" "$((RM_PORT + 2)):ResourceManager-resource-tracker" \
              "$((RM_PORT + 3)):ResourceManager-admin" "$WEB_PORT:ResourceManager-web-UI"; do
    what="${port#*:}"; port="${port%%:*}"
    if port_in_use "$HOST" "$port"; then
      owner=$(port_owner "$port")
      rr_die "port $port on $HOST (${what//-/ }) is already in use${owner:+ by $owner}; stop that process or choose other ports (REVIEWREC_YARN_NN_PORT, REVIEWREC_YARN_NN_HTTP_PORT, REVIEWREC_YARN_RM_PORT, REVIEWREC_YARN_WEB_PORT)"
    fi
  done
  classes=$(compile_daemon "$jars")
  # A fresh start: HDFS is formatted, old containers' directories go.
  rm -rf "$STATE/target" "$STATE/hdfs" "$STATE/tmp" "$STATE/hadoop-conf" "$STATE/ready"
  write_spark_defaults
  printf 'RR_SETTINGS=%s\nRR_YARN_NN=hdfs://%s:%s\nRR_YARN_RM=%s:%s\nRR_YARN_WEB=http://%s:%s\n' \
    "$(settings_key)" "$HOST" "$NN_PORT" "$HOST" "$RM_PORT" "$HOST" "$WEB_PORT" > "$STATE/yarn.env"
  rr_log "starting YARN (ResourceManager $HOST:$RM_PORT) and HDFS (hdfs://$HOST:$NN_PORT); state: $STATE"
  : > "$STATE/logs/yarn.log"
  # Containers run $JAVA_HOME/bin/java; the JVM flags open what Hadoop 3.3 reflects on in Java 17.
  cd "$STATE"
  env -u PYTHONPATH -u PYSPARK_PYTHON -u PYSPARK_DRIVER_PYTHON -u VIRTUAL_ENV \
    -u HADOOP_CONF_DIR -u SPARK_CONF_DIR JAVA_HOME="$(java_home)" \
    setsid nohup "$(java_home)/bin/java" -Xmx1g -Djava.net.preferIPv4Stack=true \
      --add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.util=ALL-UNNAMED \
      --add-opens=java.base/java.lang.reflect=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED \
      --add-opens=java.base/java.net=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED \
      --add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED \
      -cp "$classes:$(classpath "$jars")" ReviewrecYarn "$STATE" "$NN_PORT" "$RM_PORT" "$WEB_PORT" \
      "$NODE_MANAGERS" "$NN_HTTP_PORT" > "$STATE/logs/yarn.log" 2>&1 < /dev/null &
  echo $! > "$STATE/pids/yarn.pid"
  cd "$RR_ROOT"
  waited=0
  until [ -f "$STATE/ready" ]; do
    alive "$(daemon_pid)" || { grep -E "ERROR|Exception|failed" "$STATE/logs/yarn.log" | tail -n 20 >&2; rr_die "YARN/HDFS exited during start (log: $STATE/logs/yarn.log)"; }
    [ "$waited" -lt $((READY_TIMEOUT * 2)) ] || { cmd_down; rr_die "YARN/HDFS did not come up within ${READY_TIMEOUT}s (log: $STATE/logs/yarn.log)"; }
    sleep 0.5; waited=$((waited + 1))
  done
  rr_log "yarn up in $((waited / 2)) s: ResourceManager $HOST:$RM_PORT, HDFS hdfs://$HOST:$NN_PORT (applications: ./spark-submit.sh yarn status)"
}

cmd_status() {
  local p rc=0
  echo "state: $STATE"
  p=$(daemon_pid)
  if [ -z "$p" ]; then echo "yarn: down"; return 3; fi
  if ! alive "$p"; then echo "yarn: NOT running (pid $p; log $STATE/logs/yarn.log)"; return 1; fi
  if [ -f "$STATE/ready" ]; then
    echo "yarn: running (pid $p, log $STATE/logs/yarn.log)"
    sed 's/^/  /' "$STATE/ready"
  else
    echo "yarn: starting (pid $p)"; rc=1
  fi
  # Counted by a glob, not `ls | wc -l`: before the first application nothing matches, and ls's
  # failure would end the script (pipefail, set -e) on a healthy YARN.
  local apps=0 d
  for d in "$STATE"/target/test/data/*/yarn-*/*-logDir-nm-*/application_*; do
    [ -e "$d" ] && apps=$((apps + 1))
  done
  echo "  applications run since up: $apps"
  echo "  container processes: $(orphans | wc -l)"
  return "$rc"
}

# WebHDFS: one call; prints the HTTP status.
webhdfs() {
  local method="$1" path="$2" query="$3"; shift 3
  curl -sS -o /dev/null -w '%{http_code}' -L -X "$method" "$@" \
    "http://$HOST:$NN_HTTP_PORT/webhdfs/v1$path?user.name=$(id -un)&$query"
}

cmd_env_archive() {
  [ -f "$STATE/ready" ] && alive "$(daemon_pid)" || rr_die "yarn is not up (./spark-submit.sh yarn up)"
  local archive name dest code
  archive=$(bash "$RR_ROOT/lib/cluster.sh" pack) || rr_die "packing the Python environment failed"
  name=$(basename "$archive")
  dest="/reviewrec/envs/$name"
  code=$(webhdfs GET "$dest" "op=GETFILESTATUS")
  if [ "$code" != 200 ]; then
    rr_log "staging $name ($(du -h "$archive" | cut -f1)) on HDFS at $dest"
    code=$(webhdfs PUT "/reviewrec/envs" "op=MKDIRS&permission=755")
    [ "$code" = 200 ] || rr_die "WebHDFS MKDIRS /reviewrec/envs answered HTTP $code"
    code=$(webhdfs PUT "$dest.tmp.$$" "op=CREATE&overwrite=true&permission=644" -T "$archive")
    [ "$code" = 201 ] || rr_die "WebHDFS CREATE $dest answered HTTP $code"
    code=$(webhdfs PUT "$dest.tmp.$$" "op=RENAME&destination=$dest")
    [ "$code" = 200 ] || rr_die "WebHDFS RENAME to $dest answered HTTP $code"
  fi
  echo "hdfs://$HOST:$NN_PORT$dest"
}

sub="${1:-}"
[ $# -gt 0 ] && shift
case "$sub" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env-archive) cmd_env_archive ;;
  -h|--help|help) yarn_usage ;;
  *) yarn_usage >&2; exit 2 ;;
esac
