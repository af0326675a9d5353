#!/usr/bin/env bash
# reviewrec launcher: ./spark-submit.sh --help prints what it does (usage() below).
set -euo pipefail
RR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/bootstrap.sh
source "$RR_ROOT/lib/bootstrap.sh"
cd "$RR_ROOT"

usage() {
  cat <<'USAGE'
reviewrec launcher.

  ./spark-submit.sh pipeline                  set up if needed, run the whole pipeline locally
                                              on the embedded synthetic data, print the report
  ./spark-submit.sh test [pytest args]        set up if needed, run the linter (ruff) and the
                                              test suite
  ./spark-submit.sh setup                     only set up (.venv, Java check, horovod wheel)
  ./spark-submit.sh cluster up|down|status|pack
                                              a Spark standalone cluster on this machine and
                                              the packed environment (docs/cluster.md)
  ./spark-submit.sh yarn up|down|status|env-archive
                                              YARN (ResourceManager, NodeManager) and HDFS
                                              (NameNode, DataNode) on this machine
  ./spark-submit.sh s3 up|down|status [--bucket B]
                                              an S3-compatible server (moto) on this machine,
                                              for run roots on s3a:// (conf/s3.yaml)
  ./spark-submit.sh airflow setup|env|status|dags-test|bundle|cli
                                              Apache Airflow in its own venv and the daily DAG
                                              (dags/reviewrec_daily.py; lib/airflow.sh)
  ./spark-submit.sh <job> [--conf conf/X.yaml ...] [--set key=value ...] [-- spark-submit args]
  ./spark-submit.sh submit-args <job> [--conf ...] [--set ...] [-- spark-submit args]
                                              print, one a line, the spark-submit command the
                                              job line would run (executable first), and run
                                              nothing: the arguments of an EMR step or a
                                              Dataproc job (lib/airflow.sh bundle)

<job> is a file in jobs/ (generate, ingest, eda, pipeline, ...). The master is the config's
spark.master. local[...] (conf/local.yaml, the default without --conf) runs in Spark local mode
from .venv. spark://host:port (conf/standalone.yaml), or none, meaning YARN (conf/emr.yaml,
conf/dataproc.yaml), is a cluster submission, packaged the same way for every cluster manager:
  * lib/reviewrec is zipped to build/py/<hash>/reviewrec.zip and shipped with --py-files,
  * conf/base.yaml, the given confs and the Spark NLP models archive are shipped with --files,
  * a Python environment packed with venv-pack is shipped with --archives (#environment) and
    executors run ./environment/bin/python: REVIEWREC_PYENV_ARCHIVE=path or URL of one, else
    .venv packed once per set of pins (./spark-submit.sh cluster pack);
    REVIEWREC_PYENV_ARCHIVE=none ships none (executors use the cluster's Python),
  * the config's spark.conf is passed as --conf key=value (driver memory and the like only take
    effect when the JVM starts),
  * Spark NLP's --packages coordinates are added when the config sets text.engine=sparknlp.
The cluster's spark-submit is SPARK_SUBMIT, else spark-submit on PATH, else (spark:// masters)
the one in .venv. Extra spark-submit arguments go after "--", e.g. -- --deploy-mode cluster.
USAGE
}

[ $# -ge 1 ] || { usage >&2; exit 2; }
cmd="$1"; shift

case "$cmd" in
  -h|--help|help) usage; exit 0 ;;
  setup) ensure_env; rr_log "ready: $RR_VENV"; exit 0 ;;
  cluster) exec bash "$RR_ROOT/lib/cluster.sh" "$@" ;;
  yarn) exec bash "$RR_ROOT/lib/yarn.sh" "$@" ;;
  s3) exec bash "$RR_ROOT/lib/s3.sh" "$@" ;;
  airflow) exec bash "$RR_ROOT/lib/airflow.sh" "$@" ;;
  test)
    ensure_env
    # The linter first (pyproject.toml): a style error fails in seconds, not after the suite.
    "$RR_VENV/bin/ruff" check --quiet "$RR_ROOT" || { rr_log "ERROR: ruff check found the points above (ruff check --fix fixes some)"; exit 1; }
    export SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON="$RR_VENV/bin/python" PYSPARK_DRIVER_PYTHON="$RR_VENV/bin/python"
    export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
    set +e
    # The slowest steps are listed at the end: the suite's budget is watched where it is spent.
    "$RR_VENV/bin/python" -m pytest tests -p no:cacheprovider --durations=25 --durations-min=15 "$@"
    rc=$?
    set -e
    # pytest exits 5 when it collected no tests: a test run that ran nothing is a failure.
    if [ "$rc" = 5 ]; then rr_log "ERROR: no tests were collected"; exit 1; fi
    exit "$rc"
    ;;
esac

# submit-args <job> ...: the same job line, printed instead of run. The checks that only
# matter when it runs (the master or ResourceManager answering, spark-submit installed here) are
# left out, so a host without the cluster computes the arguments.
print_only=""
if [ "$cmd" = submit-args ]; then
  [ $# -ge 1 ] || rr_die "submit-args needs a job: ./spark-submit.sh submit-args <job> [--conf ...] [--set ...] [-- ...]"
  print_only=1; cmd="$1"; shift
fi
# Prints its arguments one a line (print_only), else runs them in place of this shell (or, when
# the submission ships s3a keys, runs them and removes the keys' private directory after).
s3a_dir=""
run_or_print() {
  if [ -n "$print_only" ]; then printf '%s\n' "$@"; exit 0; fi
  [ -n "$s3a_dir" ] || exec "$@"
  "$@"
}

job="$cmd"
[ -f "jobs/$job.py" ] || rr_die "unknown job '$job'; jobs: $(cd jobs && ls *.py | sed 's/\.py$//' | tr '\n' ' ')"

confs=(); app_args=(); spark_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --conf) [ $# -ge 2 ] || rr_die "--conf needs a file"; confs+=("$2"); app_args+=("--conf" "$2"); shift 2 ;;
    --set) [ $# -ge 2 ] || rr_die "--set needs key=value"; app_args+=("--set" "$2"); shift 2 ;;
    --) shift; spark_args=("$@"); break ;;
    *) rr_die "unexpected argument '$1' (use --conf FILE, --set key=value, or -- before spark-submit arguments)" ;;
  esac
done

run_local() {
  ensure_env
  [ ${#confs[@]} -gt 0 ] || app_args=("--conf" "conf/local.yaml" "${app_args[@]+"${app_args[@]}"}")
  export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}" PYSPARK_PYTHON="$RR_VENV/bin/python" PYSPARK_DRIVER_PYTHON="$RR_VENV/bin/python"
  export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
  packages=$("$RR_VENV/bin/python" -m reviewrec.submit packages "${app_args[@]}")
  # The text engine's Spark properties (Spark NLP's spark.jars, ...) must be set at JVM start.
  engine_conf=()
  while IFS= read -r kv; do [ -n "$kv" ] && engine_conf+=(--conf "$kv"); done \
    < <("$RR_VENV/bin/python" -m reviewrec.submit engine-conf "$job" "${app_args[@]}")
  run_or_print "$RR_VENV/bin/spark-submit" ${packages:+--packages "$packages"} "${engine_conf[@]+"${engine_conf[@]}"}" \
    "${spark_args[@]+"${spark_args[@]}"}" "jobs/$job.py" "${app_args[@]}"
}

[ ${#confs[@]} -gt 0 ] || run_local

# The Python that reads the config here: the launcher's own (an EMR/Dataproc gateway has no
# .venv; it needs PyYAML), else .venv's, else python3.
if [ -n "${REVIEWREC_SUBMIT_PYTHON:-}" ]; then PY="$REVIEWREC_SUBMIT_PYTHON"
elif [ -x "$RR_VENV/bin/python" ]; then PY="$RR_VENV/bin/python"
else PY=python3; fi
submit_py() { PYTHONPATH="$RR_ROOT/lib" "$PY" -m reviewrec.submit "$@"; }

master=$(submit_py master "${app_args[@]}") || exit 2
case "$master" in local*) run_local ;; esac

# Cluster submission: the cluster's spark-submit, with lib/, the confs and the environment shipped.
deploy_mode=client
for ((i = 0; i < ${#spark_args[@]}; i++)); do
  case "${spark_args[$i]}" in
    --deploy-mode) deploy_mode="${spark_args[$((i + 1))]:-client}" ;;
    --deploy-mode=*) deploy_mode="${spark_args[$i]#--deploy-mode=}" ;;
  esac
done

# YARN: the client configuration names the ResourceManager and fs.defaultFS. The YARN that
# lib/yarn.sh started on this machine provides one (and its spark-defaults) when none is set.
yarn_local=""
if [ "$master" = yarn ]; then
  ystate="${REVIEWREC_YARN_DIR:-$RR_CACHE/yarn-cluster}"
  # (On EMR and Dataproc the node's spark-env.sh sets HADOOP_CONF_DIR for spark-submit.)
  if [ -z "${HADOOP_CONF_DIR:-}${YARN_CONF_DIR:-}" ] && [ -f "$ystate/ready" ]; then
    export HADOOP_CONF_DIR="$ystate/hadoop-conf"
    export SPARK_CONF_DIR="${SPARK_CONF_DIR:-$ystate/spark-conf}"
    export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
    yarn_local=1
  fi
  # A ResourceManager that is down makes spark-submit retry for minutes: say so at once.
  [ -z "${HADOOP_CONF_DIR:-}${YARN_CONF_DIR:-}" ] || [ -n "$print_only" ] || "$PY" - "${HADOOP_CONF_DIR:-$YARN_CONF_DIR}" <<'PROBE' || exit 1
import os, socket, sys
import xml.etree.ElementTree as ET
conf_dir = sys.argv[1]
site = os.path.join(conf_dir, "yarn-site.xml")
addr = None
if os.path.exists(site):
    for prop in ET.parse(site).getroot().iter("property"):
        if prop.findtext("name") == "yarn.resourcemanager.address":
            addr = (prop.findtext("value") or "").strip()
        elif prop.findtext("name") == "yarn.resourcemanager.hostname" and addr is None:
            addr = (prop.findtext("value") or "").strip() + ":8032"
if addr:
    host, _, port = addr.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except (OSError, ValueError) as e:
        sys.stderr.write(f"[reviewrec] ERROR: the YARN ResourceManager {addr} (yarn.resourcemanager.address in "
                         f"{site}) is not reachable ({e}); is YARN up? (./spark-submit.sh yarn status)\n")
        sys.exit(1)
PROBE
fi

if [ -n "${SPARK_SUBMIT:-}" ]; then SUBMIT="$SPARK_SUBMIT"
elif command -v spark-submit >/dev/null 2>&1; then SUBMIT=spark-submit
elif [[ "$master" == spark://* || -n "$yarn_local" ]] && [ -x "$RR_VENV/bin/spark-submit" ]; then
  SUBMIT="$RR_VENV/bin/spark-submit"
  SPARK_HOME="${SPARK_HOME:-$("$RR_VENV/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')}"
  export SPARK_HOME
elif [ -n "$print_only" ]; then SUBMIT=spark-submit
else SUBMIT=""; fi
[ -n "$print_only" ] || { [ -n "$SUBMIT" ] && { [ -x "$SUBMIT" ] || command -v "$SUBMIT" >/dev/null 2>&1; } \
  || rr_die "cluster submission to $master needs Spark's spark-submit on PATH (or SPARK_SUBMIT=/path/to/spark-submit)"; }

if [[ "$master" == spark://* ]] && [ -z "$print_only" ]; then
  # A standalone master that is down makes spark-submit retry for a minute before it gives up:
  # say so at once, naming the URL.
  "$PY" - "$master" <<'PROBE' || exit 1
import socket, sys
url = sys.argv[1]
host, _, port = url[len("spark://"):].rstrip("/").rpartition(":")
try:
    socket.create_connection((host, int(port)), timeout=3).close()
except (OSError, ValueError) as e:
    sys.stderr.write(f"[reviewrec] ERROR: the Spark master {url} is not reachable ({e}); "
                     "is the cluster up? (./spark-submit.sh cluster status / cluster up)\n")
    sys.exit(1)
PROBE
  # The cluster lib/cluster.sh started for this master has event logging set up there.
  state="${REVIEWREC_CLUSTER_DIR:-$RR_CACHE/cluster}"
  if [ -z "${SPARK_CONF_DIR:-}" ] && [ -f "$state/cluster.env" ] && grep -qx "RR_MASTER_URL=$master" "$state/cluster.env"; then
    export SPARK_CONF_DIR="$state/conf"
  fi
  host="${master#spark://}"; host="${host%:*}"
  case "$host" in 127.*|localhost) export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}" ;; esac
fi

# The environment archive, checked before anything is submitted.
archive="${REVIEWREC_PYENV_ARCHIVE:-}"
if [ -z "$archive" ] && [ -n "$yarn_local" ]; then
  # Staged once on this YARN's HDFS, world-readable: localized once per NodeManager.
  archive=$(bash "$RR_ROOT/lib/yarn.sh" env-archive) || rr_die "staging the packed environment on HDFS failed (or set REVIEWREC_PYENV_ARCHIVE)"
elif [ -z "$archive" ]; then
  archive=$(bash "$RR_ROOT/lib/cluster.sh" pack) || rr_die "packing the Python environment failed (or set REVIEWREC_PYENV_ARCHIVE)"
elif [ "$archive" = none ]; then
  archive=""
elif [[ "$archive" != *://* || "$archive" == file://* ]]; then
  [ -f "${archive#file://}" ] || rr_die "REVIEWREC_PYENV_ARCHIVE: environment archive not found: $archive"
fi

# The package, zipped with fixed entry times, under a directory named by its content:
# build/py/<hash>/reviewrec.zip. A running client-mode driver imports from its zip, so a zip
# is never rewritten in place (another submit from this checkout gets its own, or reuses an
# identical one); zips unused for 7 days are removed.
pyzip=$("$PY" - <<'PYZIP'
import hashlib, os, time, zipfile
tmp = f"build/reviewrec.zip.tmp-{os.getpid()}"
os.makedirs("build/py", exist_ok=True)
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
    for d, _, files in sorted(os.walk("lib/reviewrec")):
        for f in sorted(files):
            if not f.endswith(".pyc"):
                p = os.path.join(d, f)
                info = zipfile.ZipInfo(os.path.relpath(p, "lib"), date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                with open(p, "rb") as fh:
                    z.writestr(info, fh.read(), zipfile.ZIP_DEFLATED)
with open(tmp, "rb") as fh:
    digest = hashlib.sha256(fh.read()).hexdigest()[:16]
final = f"build/py/{digest}/reviewrec.zip"
if os.path.exists(final):
    os.unlink(tmp)
    os.utime(final)
else:
    os.makedirs(os.path.dirname(final), exist_ok=True)
    os.replace(tmp, final)
for old in os.listdir("build/py"):
    zp = f"build/py/{old}/reviewrec.zip"
    if old != digest and os.path.exists(zp) and time.time() - os.path.getmtime(zp) > 7 * 86400:
        os.unlink(zp)
        os.rmdir(f"build/py/{old}")
print(final)
PYZIP
) || rr_die "zipping lib/reviewrec failed"
files="conf/base.yaml"
for c in "${confs[@]}"; do files="$files,$c"; done
# The causal job's study definitions (found by base name in a cluster-mode driver's directory).
for c in conf/studies/*.yaml; do [ -f "$c" ] && files="$files,$c"; done
# The text engines' trained models (Spark NLP's archive, the builtin tagger's weights): a driver
# importing the package from the zip, and the executors' Python workers, find them among the
# shipped files.
for m in lib/sparknlp/models/ud_ewt.tar.xz lib/sparknlp/models/builtin_pos_ud_ewt.json.gz; do
  [ -f "$m" ] && files="$files,$m"
done
# A cluster-mode driver sees the shipped confs by base name in its working directory (YARN
# --files); a client-mode driver runs here and reads them where they are.
shipped_args=()
i=0
while [ $i -lt ${#app_args[@]} ]; do
  if [ "${app_args[$i]}" = --conf ] && [ "$deploy_mode" = cluster ]; then
    shipped_args+=("--conf" "$(basename "${app_args[$((i+1))]}")"); i=$((i+2))
  else shipped_args+=("${app_args[$i]}"); i=$((i+1)); fi
done
packages=$(submit_py packages "${app_args[@]}")
conf_args=()
while IFS= read -r kv; do
  [ -n "$kv" ] && conf_args+=(--conf "$kv")
done < <(submit_py spark-conf "${app_args[@]}")
while IFS= read -r kv; do
  [ -n "$kv" ] && conf_args+=(--conf "$kv")
done < <(submit_py engine-conf "$job" "${app_args[@]}")
# A cluster on this machine (standalone on loopback, `yarn up`): its executors see the jars where
# setup put them, so they go on the executors' (and a cluster-mode driver's) own classpath too, as
# EMR puts Delta's on every node's. Fetched into the executors' class loader alone, Spark NLP's
# annotators fail inside a Delta write (ClassCastException: SerializedLambda to ScalaUDF.f).
# On this machine's YARN they are also named `local:` in spark.jars (present on every node, as
# Spark's own jars are with spark.yarn.jars): no application uploads them to its HDFS staging
# directory (the AWS SDK bundle alone is 270 MB) for its containers to localize again.
if [ -n "$yarn_local" ] || [[ "$master" == spark://127.* || "$master" == spark://localhost:* ]]; then
  for ((i = 0; i < ${#conf_args[@]}; i++)); do
    case "${conf_args[$i]}" in
      spark.jars=*)
        jars_cp="${conf_args[$i]#spark.jars=}"
        if [ -n "$yarn_local" ]; then
          conf_args[i]="spark.jars=$(sed -E 's#(^|,)(file:)?/#\1local:/#g' <<< "$jars_cp")"
        fi
        conf_args+=(--conf "spark.executor.extraClassPath=${jars_cp//,/:}"
                    --conf "spark.driver.extraClassPath=${jars_cp//,/:}") ;;
    esac
  done
fi
# s3a keys for YARN (docs/cluster.md, "s3a run roots on YARN"): a cluster-mode driver and the
# executors do not inherit this shell's environment. The environment's keys go into a Hadoop
# credential store (JCEKS, written by Hadoop's CredentialProviderFactory) in a private directory,
# shipped with --files (YARN localizes it, privately, in every container's working directory,
# where s3a opens it through ${user.dir}); a client-mode driver opens this file. The keys then
# leave the environment of spark-submit, so Spark copies them into no configuration it ships or
# logs; the directory is removed when spark-submit exits.
if [ "$master" = yarn ] && [ "$(submit_py s3a-keys "${app_args[@]}")" = ship ]; then
  s3a_dir=$(mktemp -d -t reviewrec-s3a.XXXXXXXX) || rr_die "creating a private directory for the s3a keys failed"
  chmod 700 "$s3a_dir"
  if [ -z "$print_only" ]; then
    trap 'rm -rf "$s3a_dir"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
  fi
  submit_py s3a-keystore "$s3a_dir/reviewrec-s3a.jceks" \
    || { rm -rf "$s3a_dir"; rr_die "writing the s3a keys to a credential store failed"; }
  files="$files,$s3a_dir/reviewrec-s3a.jceks"
  # shellcheck disable=SC2016  # ${user.dir} is Hadoop's: each container's own working directory
  keystores='localjceks://file${user.dir}/reviewrec-s3a.jceks'
  [ "$deploy_mode" = cluster ] || keystores="$keystores,localjceks://file$s3a_dir/reviewrec-s3a.jceks"
  conf_args+=(--conf "spark.hadoop.fs.s3a.security.credential.provider.path=$keystores")
  unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
  [ -z "$print_only" ] || rr_log "the s3a keys of this command are in $s3a_dir/reviewrec-s3a.jceks (owner-only): remove $s3a_dir once its application has ended"
fi
archive_args=()
if [ -n "$archive" ]; then
  archive_args=(--archives "$archive#environment"
                --conf spark.pyspark.python=./environment/bin/python
                --conf spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python)
fi
if [ "$deploy_mode" = client ]; then
  # A client-mode driver runs here: its Python is this machine's (.venv), not the archive's.
  driver_py="${PYSPARK_DRIVER_PYTHON:-}"
  if [ -z "$driver_py" ] && [ -x "$RR_VENV/bin/python" ]; then driver_py="$RR_VENV/bin/python"; fi
  [ -z "$driver_py" ] || archive_args+=(--conf "spark.pyspark.driver.python=$driver_py")
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
[ -n "$print_only" ] || set -x
run_or_print "$SUBMIT" --master "$master" --py-files "$pyzip" --files "$files" \
  ${packages:+--packages "$packages"} "${conf_args[@]+"${conf_args[@]}"}" \
  "${archive_args[@]+"${archive_args[@]}"}" \
  "${spark_args[@]+"${spark_args[@]}"}" "jobs/$job.py" "${shipped_args[@]}"
