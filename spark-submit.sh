#!/usr/bin/env bash
# reviewrec launcher.
#
#   ./spark-submit.sh pipeline                  set up if needed, run the whole pipeline locally
#                                               on the embedded synthetic data, print the report
#   ./spark-submit.sh test [pytest args]        set up if needed, run the test suite
#   ./spark-submit.sh setup                     only set up (.venv, Java check, horovod wheel)
#   ./spark-submit.sh <job> [--conf conf/X.yaml ...] [--set key=value ...] [-- spark-submit args]
#
# <job> is a file in jobs/ (generate, ingest, eda, pipeline, ...). Without --conf, or with
# conf/local.yaml, the job runs in Spark local mode from .venv. With any other --conf (emr.yaml,
# dataproc.yaml, your own) it is submitted to YARN with the cluster's spark-submit:
#   * lib/reviewrec is zipped to build/reviewrec.zip and shipped with --py-files,
#   * conf/base.yaml and the given confs are shipped with --files,
#   * REVIEWREC_PYENV_ARCHIVE=path/to/env.tar.gz (made with venv-pack) ships a packed Python
#     environment with --archives and points PYSPARK_PYTHON at it,
#   * Spark NLP's --packages coordinates are added when the config sets text.engine=sparknlp.
# Extra spark-submit arguments go after "--", e.g. -- --deploy-mode cluster --num-executors 20.
set -euo pipefail
RR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/bootstrap.sh
source "$RR_ROOT/lib/bootstrap.sh"
cd "$RR_ROOT"

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }

[ $# -ge 1 ] || { usage; exit 2; }
cmd="$1"; shift

case "$cmd" in
  -h|--help|help) usage; exit 0 ;;
  setup) ensure_env; rr_log "ready: $RR_VENV"; exit 0 ;;
  test)
    ensure_env
    export SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON="$RR_VENV/bin/python" PYSPARK_DRIVER_PYTHON="$RR_VENV/bin/python"
    export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
    set +e
    "$RR_VENV/bin/python" -m pytest tests -p no:cacheprovider "$@"
    rc=$?
    set -e
    # pytest exits 5 when it collected no tests: a test run that ran nothing is a failure.
    if [ "$rc" = 5 ]; then rr_log "ERROR: no tests were collected"; exit 1; fi
    exit "$rc"
    ;;
esac

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

cluster=0
for c in "${confs[@]+"${confs[@]}"}"; do
  [ "$(basename "$c")" = local.yaml ] || cluster=1
done

if [ "$cluster" = 0 ]; then
  ensure_env
  [ ${#confs[@]} -gt 0 ] || app_args=("--conf" "conf/local.yaml" "${app_args[@]+"${app_args[@]}"}")
  export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}" PYSPARK_PYTHON="$RR_VENV/bin/python" PYSPARK_DRIVER_PYTHON="$RR_VENV/bin/python"
  export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
  packages=$("$RR_VENV/bin/python" -m reviewrec.submit packages "${app_args[@]}")
  exec "$RR_VENV/bin/spark-submit" ${packages:+--packages "$packages"} \
    "${spark_args[@]+"${spark_args[@]}"}" "jobs/$job.py" "${app_args[@]}"
fi

# Cluster submission: the cluster's own spark-submit, with lib/ and the confs shipped.
SUBMIT="${SPARK_SUBMIT:-spark-submit}"
command -v "$SUBMIT" >/dev/null 2>&1 || rr_die "cluster submission needs Spark's spark-submit on PATH (or SPARK_SUBMIT=/path/to/spark-submit)"
PY="${REVIEWREC_SUBMIT_PYTHON:-python3}"
mkdir -p build
"$PY" - <<'PYZIP'
import os, zipfile
with zipfile.ZipFile("build/reviewrec.zip", "w", zipfile.ZIP_DEFLATED) as z:
    for d, _, files in os.walk("lib/reviewrec"):
        for f in files:
            if not f.endswith(".pyc"):
                p = os.path.join(d, f)
                z.write(p, os.path.relpath(p, "lib"))
PYZIP
files="conf/base.yaml"
for c in "${confs[@]}"; do files="$files,$c"; done
# The job sees the shipped confs by base name in its working directory (YARN --files).
shipped_args=()
i=0
while [ $i -lt ${#app_args[@]} ]; do
  if [ "${app_args[$i]}" = --conf ]; then shipped_args+=("--conf" "$(basename "${app_args[$((i+1))]}")"); i=$((i+2))
  else shipped_args+=("${app_args[$i]}"); i=$((i+1)); fi
done
packages=$(PYTHONPATH="$RR_ROOT/lib" "$PY" -m reviewrec.submit packages "${app_args[@]}")
archive_args=()
if [ -n "${REVIEWREC_PYENV_ARCHIVE:-}" ]; then
  archive_args=(--archives "$REVIEWREC_PYENV_ARCHIVE#environment"
                --conf spark.pyspark.python=./environment/bin/python
                --conf spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python)
fi
set -x
exec "$SUBMIT" --master yarn --py-files build/reviewrec.zip --files "$files" \
  ${packages:+--packages "$packages"} "${archive_args[@]+"${archive_args[@]}"}" \
  "${spark_args[@]+"${spark_args[@]}"}" "jobs/$job.py" "${shipped_args[@]}"
