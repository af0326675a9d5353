#!/usr/bin/env bash
# Apache Airflow for the daily DAG (dags/reviewrec_daily.py), in its own virtualenv outside the
# repository, as on a scheduler host (Airflow imports nothing of reviewrec's Spark stack, and
# reviewrec imports nothing of Airflow). Called as `./spark-submit.sh airflow ...`:
#
#   airflow setup       create the venv (Airflow, the apache-spark, amazon and google providers,
#                       pyspark pinned to lib/requirements.txt's version: the spark provider would
#                       otherwise pull pyspark 4) and the SQLite metadata DB (`airflow db migrate`).
#                       Idempotent: reused while the pins are the same; rebuilt when they change.
#   airflow env         print the environment the other commands use (AIRFLOW_HOME, the DAG folder,
#                       the venv), as shell assignments: `eval "$(./spark-submit.sh airflow env)"`
#   airflow dags-test DAY [--target local|yarn] [--root DIR] [--set key=value ...] [--params JSON]
#                       run the DAG for one day (YYYY-MM-DD) with `airflow dags test`: every task
#                       for real, each job as its own Spark application, in this process tree
#   airflow bundle --target emr|dataproc --code-uri URI --conf FILE [--set key=value ...]
#                  [--out DIR] [-- spark-submit args]
#                       what a managed Airflow (MWAA, Cloud Composer) needs: the launcher's
#                       spark-submit arguments for every job with the local files mapped to
#                       URI (DIR/upload: copy it there), and DIR/dags: the DAG, its settings
#                       (reviewrec_dag.json) and the job table (docs/cluster.md, "Scheduled runs")
#   airflow status      the venv, Airflow's version, AIRFLOW_HOME and the DB
#   airflow cli ARGS    the airflow command itself with this environment (e.g. `airflow cli dags list`)
#
# State: ${REVIEWREC_AIRFLOW_DIR:-$REVIEWREC_CACHE/airflow}: venv-<key>/ (key = the pins), home/
# (AIRFLOW_HOME, or $REVIEWREC_AIRFLOW_HOME: airflow.cfg, airflow.db, logs/), setup.log and SETUP
# (size and time of the install). One venv serves several homes (the tests use their own).
set -euo pipefail
RR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=lib/bootstrap.sh
source "$RR_ROOT/lib/bootstrap.sh"
cd "$RR_ROOT"

STATE="${REVIEWREC_AIRFLOW_DIR:-$RR_CACHE/airflow}"
# The current Airflow major (3.x) and its providers, pinned: a scheduler host's install is
# reproducible. Airflow's constraints file for this version is used when it can be fetched.
# The apache-spark provider is the last that depends on pyspark (5.6.0: pyspark>=3.5.2): from
# 6.0 it requires pyspark-client 4, whose files overwrite pyspark 3.5's in the same venv.
AIRFLOW_VERSION=3.3.2
PROVIDERS=(
  "apache-airflow-providers-apache-spark==5.6.0"
  "apache-airflow-providers-amazon==9.39.0"
  "apache-airflow-providers-google==22.8.0"
)
CONSTRAINTS_URL="https://raw.githubusercontent.com/apache/airflow/constraints-$AIRFLOW_VERSION/constraints-3.11.txt"
PYSPARK_VERSION="$(rr_pin pyspark)"
KEY=$(printf '%s\n' "$AIRFLOW_VERSION" "${PROVIDERS[@]}" "$PYSPARK_VERSION" | sha256sum | cut -c1-12)
AF_VENV="$STATE/venv-$KEY"
AF_HOME="${REVIEWREC_AIRFLOW_HOME:-$STATE/home}"
DAG_ID=reviewrec_daily

airflow_usage() {
  cat <<'EOF'
usage: ./spark-submit.sh airflow setup|env|status|dags-test|bundle|cli
  setup                 the Airflow venv (outside the repository) and its SQLite metadata DB
  env                   the environment of the commands below, as shell assignments
  dags-test DAY [--target local|yarn] [--root DIR] [--set key=value ...] [--params JSON] [--skip REGEX]
                        run the daily DAG for one day (YYYY-MM-DD) for real
  bundle --target emr|dataproc --code-uri URI --conf FILE [--set key=value ...] [--out DIR] [-- spark args]
                        the DAG's settings and the files to upload for MWAA / Cloud Composer
  status                what is installed where
  cli ARGS              the airflow command with this environment
State: ${REVIEWREC_AIRFLOW_DIR:-~/.cache/reviewrec/airflow}
EOF
}

# The environment every airflow command here runs with: its own home and SQLite DB, the
# repository's dags/ folder, no example DAGs, and nothing of the caller's Spark/Python wiring.
airflow_env() {
  export AIRFLOW_HOME="$AF_HOME"
  export AIRFLOW__CORE__DAGS_FOLDER="$RR_ROOT/dags"
  export AIRFLOW__CORE__LOAD_EXAMPLES=False
  export AIRFLOW__CORE__UNIT_TEST_MODE=False
  export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AF_HOME/airflow.db"
  export AIRFLOW__LOGGING__BASE_LOG_FOLDER="$AF_HOME/logs"
  export REVIEWREC_HOME="$RR_ROOT"
  unset PYTHONPATH PYSPARK_PYTHON PYSPARK_DRIVER_PYTHON SPARK_HOME VIRTUAL_ENV
}

installed() { [ -f "$AF_VENV/.reviewrec-airflow" ] && [ -x "$AF_VENV/bin/airflow" ]; }

cmd_setup() {
  mkdir -p "$STATE"
  exec 7>"$STATE/setup.lock"
  flock 7
  if ! installed; then
    local py t0 t1 constraints="" mib
    py=$(command -v python3.11 || command -v python3) || rr_die "Python 3.11 is required for the Airflow venv"
    t0=$(date +%s)
    rr_log "installing Airflow $AIRFLOW_VERSION with the apache-spark, amazon and google providers and pyspark $PYSPARK_VERSION into $AF_VENV (log: $STATE/setup.log)"
    # Built in place; the stamp written last marks it complete (a half install is started over).
    rm -rf "$AF_VENV"
    "$py" -m venv "$AF_VENV" || rr_die "python -m venv $AF_VENV failed"
    "$AF_VENV/bin/python" -m pip install -q "uv==$(rr_pin uv)" > "$STATE/setup.log" 2>&1 \
      || { tail -n 20 "$STATE/setup.log" >&2; rr_die "installing uv in $AF_VENV failed (log: $STATE/setup.log)"; }
    # Airflow's constraints pin every transitive dependency as Airflow's CI tested them; its
    # pyspark line is replaced by the project's pin (the Spark 3.5 the jobs run on).
    if curl -fsS --max-time 10 "$CONSTRAINTS_URL" -o "$STATE/constraints.tmp" 2>>"$STATE/setup.log"; then
      grep -v -i '^pyspark==' "$STATE/constraints.tmp" > "$STATE/constraints-$AIRFLOW_VERSION.txt"
      constraints="$STATE/constraints-$AIRFLOW_VERSION.txt"
      rr_log "using Airflow's constraints file ($CONSTRAINTS_URL)"
    else
      rr_log "Airflow's constraints file is not reachable ($CONSTRAINTS_URL): installing with the pins of lib/airflow.sh only"
    fi
    rm -f "$STATE/constraints.tmp"
    if ! "$AF_VENV/bin/uv" pip install --quiet --python "$AF_VENV/bin/python" "apache-airflow==$AIRFLOW_VERSION" \
         "${PROVIDERS[@]}" "pyspark==$PYSPARK_VERSION" ${constraints:+-c "$constraints"} >> "$STATE/setup.log" 2>&1; then
      tail -n 30 "$STATE/setup.log" >&2
      rr_die "uv pip install of Airflow $AIRFLOW_VERSION failed (log: $STATE/setup.log)"
    fi
    t1=$(date +%s)
    mib=$(du -sm "$AF_VENV" | cut -f1)
    printf 'airflow=%s\nkey=%s\nmib=%s\nseconds=%s\nconstraints=%s\n' "$AIRFLOW_VERSION" "$KEY" "$mib" \
      "$((t1 - t0))" "${constraints:-none}" > "$STATE/SETUP"
    date -u +%FT%TZ > "$AF_VENV/.reviewrec-airflow"
    rr_log "Airflow $AIRFLOW_VERSION installed: $mib MiB in $((t1 - t0)) s ($AF_VENV)"
    # Venvs of other pins are left from earlier setups: remove them.
    local old
    for old in "$STATE"/venv-*; do
      [ "$old" = "$AF_VENV" ] || [ ! -d "$old" ] || { rr_log "removing the previous Airflow venv $old"; rm -rf "$old"; }
    done
  fi
  airflow_env
  mkdir -p "$AF_HOME"
  if [ ! -f "$AF_HOME/.migrated-$KEY" ]; then
    local t0
    t0=$(date +%s)
    "$AF_VENV/bin/airflow" db migrate > "$STATE/db-migrate.log" 2>&1 \
      || { tail -n 30 "$STATE/db-migrate.log" >&2; rr_die "airflow db migrate failed (log: $STATE/db-migrate.log)"; }
    touch "$AF_HOME/.migrated-$KEY"
    rr_log "metadata DB ready in $(( $(date +%s) - t0 )) s: $AF_HOME/airflow.db"
  fi
  flock -u 7
}

require_setup() { cmd_setup; airflow_env; }

cmd_env() {
  airflow_env
  printf 'export AIRFLOW_HOME=%q\n' "$AIRFLOW_HOME"
  printf 'export AIRFLOW__CORE__DAGS_FOLDER=%q\n' "$AIRFLOW__CORE__DAGS_FOLDER"
  printf 'export AIRFLOW__CORE__LOAD_EXAMPLES=False\n'
  printf 'export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=%q\n' "$AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
  printf 'export AIRFLOW__LOGGING__BASE_LOG_FOLDER=%q\n' "$AIRFLOW__LOGGING__BASE_LOG_FOLDER"
  printf 'export REVIEWREC_HOME=%q\n' "$RR_ROOT"
  printf 'export REVIEWREC_AIRFLOW_VENV=%q\n' "$AF_VENV"
  printf 'export PATH=%q:"$PATH"\n' "$AF_VENV/bin"
}

cmd_status() {
  echo "state: $STATE"
  if installed; then
    echo "venv: $AF_VENV (installed $(cat "$AF_VENV/.reviewrec-airflow"))"
    [ -f "$STATE/SETUP" ] && sed 's/^/  /' "$STATE/SETUP"
  else
    echo "venv: not installed (./spark-submit.sh airflow setup)"; return 3
  fi
  airflow_env
  echo "AIRFLOW_HOME: $AF_HOME"
  echo "DAG folder: $AIRFLOW__CORE__DAGS_FOLDER"
  if [ -f "$AF_HOME/airflow.db" ]; then echo "metadata DB: $AF_HOME/airflow.db"; else echo "metadata DB: none yet"; fi
}

# dags-test DAY [--target local|yarn] [--root DIR] [--set key=value ...] [--day-key KEY|none]
#           [--params JSON] [--skip REGEX]
# The settings: $REVIEWREC_DAG_CONFIG (a file or JSON) when set, with these options over it;
# --params: the run's params (e.g. '{"train": false}': train and evaluate skipped);
# --skip: tasks whose id matches are marked successful without running (Airflow's
# --mark-success-pattern), e.g. 'eda|features|train_due|train|evaluate|recommend' to bring days
# of a backfill in by ingest and preprocess alone before the last day's full run.
cmd_dags_test() {
  [ $# -ge 1 ] || rr_die "dags-test needs a day: ./spark-submit.sh airflow dags-test YYYY-MM-DD [--target local|yarn] [--root DIR] [--set key=value ...]"
  local day="$1" over=() t0 rc params="" skip=""
  shift
  [[ "$day" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] || rr_die "dags-test: the day must be YYYY-MM-DD, got '$day'"
  while [ $# -gt 0 ]; do
    case "$1" in
      --target|--root|--set|--day-key)
        [ $# -ge 2 ] || rr_die "dags-test: $1 needs a value"; over+=("$1" "$2"); shift 2 ;;
      --params) [ $# -ge 2 ] || rr_die "dags-test: --params needs a JSON object"; params="$2"; shift 2 ;;
      --skip) [ $# -ge 2 ] || rr_die "dags-test: --skip needs a regular expression of task ids"; skip="$2"; shift 2 ;;
      *) rr_die "dags-test: unexpected argument '$1' (--target local|yarn, --root DIR, --set key=value, --day-key KEY|none, --params JSON, --skip REGEX)" ;;
    esac
  done
  require_setup
  REVIEWREC_DAG_CONFIG=$("$AF_VENV/bin/python" - "${over[@]+"${over[@]}"}" <<'PY'
import json, os, pathlib, sys
raw = os.environ.get("REVIEWREC_DAG_CONFIG", "").strip()
s = json.loads(raw if raw.startswith("{") else pathlib.Path(raw).read_text()) if raw else {}
args = sys.argv[1:]
for opt, value in zip(args[::2], args[1::2]):
    if opt == "--target":
        s["target"] = value
    elif opt == "--root":
        s["root"] = value
    elif opt == "--set":
        s.setdefault("sets", []).append(value)
    elif opt == "--day-key":
        s["day_key"] = None if value == "none" else value
print(json.dumps(s))
PY
) || rr_die "dags-test: cannot read the settings in \$REVIEWREC_DAG_CONFIG"
  export REVIEWREC_DAG_CONFIG
  rr_log "airflow dags test $DAG_ID $day (settings: $REVIEWREC_DAG_CONFIG; task logs: $AF_HOME/logs)"
  t0=$(date +%s)
  set +e
  "$AF_VENV/bin/airflow" dags test ${params:+-c "$params"} ${skip:+--mark-success-pattern "$skip"} "$DAG_ID" "$day"
  rc=$?
  set -e
  rr_log "dags test $day: exit $rc after $(( $(date +%s) - t0 )) s"
  return "$rc"
}

# bundle --target emr|dataproc --code-uri URI --root ROOT --conf FILE ... [--set key=value ...]
#        [--settings FILE] [--out DIR] [-- spark-submit args]
# --settings: a JSON file with the other settings (emr.cluster_id, dataproc.project_id, ...).
cmd_bundle() {
  local target="" code_uri="" root="" out="$RR_ROOT/build/airflow-bundle" settings_file="" confs=() sets=() spark=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --target) target="${2:-}"; shift 2 ;;
      --code-uri) code_uri="${2:-}"; shift 2 ;;
      --root) root="${2:-}"; shift 2 ;;
      --conf) confs+=("${2:-}"); shift 2 ;;
      --set) sets+=("${2:-}"); shift 2 ;;
      --settings) settings_file="${2:-}"; shift 2 ;;
      --out) out="${2:-}"; shift 2 ;;
      --) shift; spark=("$@"); break ;;
      *) rr_die "bundle: unexpected argument '$1' (see ./spark-submit.sh airflow --help)" ;;
    esac
  done
  case "$target" in emr|dataproc) ;; *) rr_die "bundle: --target emr or --target dataproc is required" ;; esac
  [ -n "$code_uri" ] || rr_die "bundle: --code-uri (where the package zip, confs and jobs are uploaded, e.g. s3://BUCKET/reviewrec/code/v1) is required"
  [ -n "$root" ] || rr_die "bundle: --root (the run root on the cluster's store) is required"
  [ ${#confs[@]} -gt 0 ] || rr_die "bundle: --conf (e.g. conf/$target.yaml) is required"
  [ -z "$settings_file" ] || [ -f "$settings_file" ] || rr_die "bundle: settings file not found: $settings_file"
  ensure_env
  local json
  json=$("$RR_VENV/bin/python" - "$target" "$root" "$settings_file" "${#confs[@]}" "${confs[@]}" \
         "${#sets[@]}" "${sets[@]+"${sets[@]}"}" "${spark[@]+"${spark[@]}"}" <<'PY'
import json, pathlib, sys
target, root, settings_file, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rest = sys.argv[5:]
confs, rest = rest[:n], rest[n:]
m = int(rest[0]); sets, spark = rest[1:1 + m], rest[1 + m:]
s = json.loads(pathlib.Path(settings_file).read_text()) if settings_file else {}
s.update(target=target, root=root, conf=confs, sets=sets, spark_args=spark)
print(json.dumps(s))
PY
) || rr_die "bundle: cannot read the settings file $settings_file"
  "$RR_VENV/bin/python" "$RR_ROOT/dags/reviewrec_tasks.py" bundle "$json" "$code_uri" "$out"
}

sub="${1:-}"
[ $# -gt 0 ] && shift
case "$sub" in
  setup) cmd_setup ;;
  env) cmd_env ;;
  status) cmd_status ;;
  dags-test) cmd_dags_test "$@" ;;
  bundle) cmd_bundle "$@" ;;
  cli) require_setup; exec "$AF_VENV/bin/airflow" "$@" ;;
  -h|--help|help) airflow_usage ;;
  *) airflow_usage >&2; exit 2 ;;
esac
