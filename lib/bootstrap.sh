# shellcheck shell=bash
# Environment bootstrap for reviewrec, sourced by spark-submit.sh.
#
#   ensure_java   Java 17 for Spark 3.5 (installs OpenJDK 17 with apt-get when run as root).
#   ensure_env    .venv with the pins of lib/requirements.txt, horovod built with Gloo, and
#                 reviewrec installed in editable mode. Rebuilt only when the pins change.
#                 Then ensure_jars.
#   ensure_jars   the JVM artifacts, each fetched once with Maven (rr_fetch_jars) into the cache:
#                 Delta Lake + hadoop-aws (lib/storage/pom.xml; every session needs them: setup
#                 fails without them), Spark NLP (lib/sparknlp/pom.xml, the version of the
#                 spark-nlp pin; without it setup warns: the builtin text engine needs none of it)
#                 and Hadoop's YARN/HDFS minicluster (lib/yarn/pom.xml, for `yarn up`; warns).
#
# The horovod wheel is built once (3-15 minutes on 2 cores) and cached outside the clone,
# keyed by horovod, TensorFlow, Python and platform, so CI runs and fresh clones reuse it:
#   ${REVIEWREC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/reviewrec}/wheels/<key>/
# The jars go to the same cache: <cache>/storage/<key>/jars, <cache>/sparknlp/<version>/jars,
# <cache>/yarn/<key>/jars (Maven's own repository of downloads in <cache>/m2 and, for Spark
# NLP's, <cache>/sparknlp/m2).

RR_ROOT="${RR_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
RR_VENV="${REVIEWREC_VENV:-$RR_ROOT/.venv}"
RR_CACHE="${REVIEWREC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/reviewrec}"
RR_REQ="$RR_ROOT/lib/requirements.txt"

rr_log() { printf '[reviewrec %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
rr_die() { rr_log "ERROR: $*"; exit 1; }

# Version pinned in lib/requirements.txt for one package name.
rr_pin() { sed -n "s/^$1==\([^ #]*\).*/\1/p" "$RR_REQ" | head -n 1; }

rr_java_major() {
  local v
  v=$("$1" -version 2>&1 | sed -n 's/.*version "\([0-9][0-9.]*\).*/\1/p' | head -n 1)
  [ -n "$v" ] || return 1
  case "$v" in 1.*) echo "${v#1.}" | cut -d. -f1 ;; *) echo "$v" | cut -d. -f1 ;; esac
}

ensure_java() {
  local java major
  java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
  if command -v "$java" >/dev/null 2>&1; then
    major=$(rr_java_major "$java" || echo 0)
    if [ "$major" = 17 ] || [ "$major" = 11 ]; then return 0; fi
    rr_log "found Java $major at $(command -v "$java"); Spark 3.5 needs Java 17 (or 11)"
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    rr_log "installing OpenJDK 17 with apt-get"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq openjdk-17-jre-headless >/dev/null \
      || rr_die "apt-get install openjdk-17-jre-headless failed"
    unset JAVA_HOME
    return 0
  fi
  rr_die "Java 17 is required by Spark 3.5. Install OpenJDK 17 (Debian/Ubuntu: 'sudo apt-get install openjdk-17-jre-headless'; macOS: 'brew install openjdk@17') and set JAVA_HOME, then rerun."
}

rr_stamp() { cat "$RR_REQ" "$RR_ROOT/setup.py" | sha256sum | cut -c1-16; }

rr_build_horovod() {
  # Horovod has no binary wheels: build one with Gloo against the venv's TensorFlow.
  local py="$1" hvd tf pytag plat key dir
  hvd=$(rr_pin horovod); tf=$(rr_pin tensorflow-cpu)
  pytag=$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
  plat=$(uname -m)
  key="horovod-${hvd}_tf-${tf}_${pytag}_${plat}"
  dir="$RR_CACHE/wheels/$key"
  if ! ls "$dir"/horovod-*.whl >/dev/null 2>&1; then
    rr_log "building horovod $hvd with Gloo (no cached wheel at $dir; takes 3-15 minutes)"
    mkdir -p "$dir.tmp.$$"
    HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
    HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
      "$py" -m pip wheel -q --no-deps --no-build-isolation "horovod==$hvd" -w "$dir.tmp.$$" \
      || rr_die "horovod build failed (needs gcc, g++, cmake and Python headers)"
    rm -rf "$dir" && mv "$dir.tmp.$$" "$dir"
  else
    rr_log "using cached horovod wheel $(ls "$dir"/horovod-*.whl)"
  fi
  "$py" -m pip install -q --no-deps "$dir"/horovod-*.whl || rr_die "installing the horovod wheel failed"
}

# rr_fetch_jars LABEL POM DIR DROP_SPARK [mvn -D options ...]: the runtime dependencies of POM,
# fetched once with Maven into DIR/jars, plus DIR/MANIFEST (one jar a line) and DIR/FETCH (size
# and time of the fetch). Reused when DIR/MANIFEST exists; one fetch at a time per cache. With
# DROP_SPARK=1, jars of artifacts that Spark already ships (pyspark/jars) are not kept: Spark's
# own copy is the one the classpath would load first anyway. Returns 1 (with the reason on
# stderr) when mvn is missing or the fetch fails.
rr_fetch_jars() {
  local label="$1" pom="$2" dir="$3" drop="$4" tmp t0 t1 sparkjars n mib
  shift 4
  [ -f "$dir/MANIFEST" ] && return 0
  if ! command -v mvn >/dev/null 2>&1; then
    rr_log "mvn not found: cannot fetch $label (install Maven, e.g. apt-get install maven)"
    return 1
  fi
  mkdir -p "$(dirname "$dir")"
  exec 8>"$(dirname "$dir")/fetch.lock"
  flock 8
  if [ -f "$dir/MANIFEST" ]; then flock -u 8; return 0; fi
  rr_log "fetching $label with Maven into $dir"
  tmp="$dir.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp/jars"
  t0=$(date +%s)
  if ! mvn -B -q -f "$pom" "$@" dependency:copy-dependencies \
       -DoutputDirectory="$tmp/jars" > "$tmp/mvn.log" 2>&1; then
    grep -E 'ERROR' "$tmp/mvn.log" | head -n 5 >&2 || true
    rr_log "Maven could not fetch $label ($pom; log: $tmp/mvn.log)"
    flock -u 8; return 1
  fi
  if [ "$drop" = 1 ]; then
    sparkjars=$("$RR_VENV/bin/python" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))' 2>/dev/null || true)
    if [ -n "$sparkjars" ] && [ -d "$sparkjars" ]; then
      local j a provided
      provided=$(ls "$sparkjars" | sed -E 's/-[0-9][^-]*(-[A-Za-z0-9.]+)?\.jar$//')
      for j in "$tmp"/jars/*.jar; do
        a=$(basename "$j" | sed -E 's/-[0-9][^-]*(-[A-Za-z0-9.]+)?\.jar$//')
        if grep -qx -- "$a" <<< "$provided"; then rm -f "$j"; fi
      done
    fi
  fi
  t1=$(date +%s)
  n=$(ls "$tmp"/jars/*.jar | wc -l)
  mib=$(du -sm "$tmp/jars" | cut -f1)
  printf 'what=%s\njars=%s\nmib=%s\nseconds=%s\n' "$label" "$n" "$mib" "$((t1 - t0))" > "$tmp/FETCH"
  (cd "$tmp/jars" && ls *.jar) > "$tmp/MANIFEST"
  rm -rf "$dir" && mv "$tmp" "$dir"
  rr_log "$label: $n jars, $mib MiB, fetched in $((t1 - t0)) s -> $dir/jars"
  flock -u 8
}

# A property of a pom (<name>value</name>).
rr_pom_property() { sed -n "s:.*<$2>\([^<]*\)</$2>.*:\1:p" "$1" | head -n 1; }

# Spark NLP's jars for the spark-nlp pin: <cache>/sparknlp/<version>/jars, for the sparknlp text
# engine (spark.jars). Without mvn or Maven Central it warns and goes on: the builtin engine
# needs none of it.
ensure_sparknlp_jars() {
  local version
  version=$(rr_pin spark-nlp)
  [ -n "$version" ] || return 0
  rr_fetch_jars "Spark NLP $version jars" "$RR_ROOT/lib/sparknlp/pom.xml" "$RR_CACHE/sparknlp/$version" 1 \
      -Dsparknlp.version="$version" -Dmaven.repo.local="$RR_CACHE/sparknlp/m2" \
    || rr_log "WARNING: Spark NLP $version jars not fetched: text.engine=sparknlp will name what is missing; builtin works"
}

# Delta Lake and hadoop-aws (lib/storage/pom.xml): every dataset is a Delta table, so every
# Spark session needs them (reviewrec.jvm.storage_jars). <cache>/storage/delta-<v>_hadoop-<v>/jars.
rr_storage_key() {
  echo "delta-$(rr_pom_property "$RR_ROOT/lib/storage/pom.xml" delta.version)_hadoop-$(rr_pom_property "$RR_ROOT/lib/storage/pom.xml" hadoop.version)"
}
ensure_storage_jars() {
  rr_fetch_jars "Delta Lake and hadoop-aws jars" "$RR_ROOT/lib/storage/pom.xml" \
      "$RR_CACHE/storage/$(rr_storage_key)" 1 -Dmaven.repo.local="$RR_CACHE/m2" \
    || rr_die "the Delta Lake and hadoop-aws jars (lib/storage/pom.xml) could not be fetched with Maven: every dataset is a Delta table, so nothing runs without them"
}

# Hadoop's YARN and HDFS minicluster and what it needs on Java 17 (lib/yarn/pom.xml), for
# `./spark-submit.sh yarn up` (lib/yarn.sh). Not on Spark's classpath. <cache>/yarn/hadoop-<v>/jars.
rr_yarn_key() { echo "hadoop-$(rr_pom_property "$RR_ROOT/lib/yarn/pom.xml" hadoop.version)"; }
ensure_yarn_jars() {
  rr_fetch_jars "Hadoop YARN/HDFS minicluster jars" "$RR_ROOT/lib/yarn/pom.xml" \
      "$RR_CACHE/yarn/$(rr_yarn_key)" 0 -Dmaven.repo.local="$RR_CACHE/m2"
}

# Every JVM artifact setup fetches.
ensure_jars() {
  ensure_sparknlp_jars
  ensure_storage_jars
  ensure_yarn_jars || rr_log "WARNING: the YARN minicluster jars were not fetched: ./spark-submit.sh yarn up will say what is missing"
}

ensure_env() {
  ensure_java
  local stamp py
  stamp=$(rr_stamp)
  if [ -f "$RR_VENV/.reviewrec-stamp" ] && [ "$(cat "$RR_VENV/.reviewrec-stamp")" = "$stamp" ]; then
    ensure_jars
    return 0
  fi
  mkdir -p "$RR_CACHE"
  # One bootstrap at a time (parallel CI steps, two terminals).
  exec 9>"$RR_CACHE/bootstrap.lock"
  flock 9
  if [ -f "$RR_VENV/.reviewrec-stamp" ] && [ "$(cat "$RR_VENV/.reviewrec-stamp")" = "$stamp" ]; then
    flock -u 9; ensure_jars; return 0
  fi
  py=$(command -v python3.11 || command -v python3) || rr_die "Python 3.11 is required"
  "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || rr_die "Python 3.11 is required (TensorFlow 2.15 + horovod 0.28.1 are pinned for it); found $("$py" --version)"
  rr_log "setting up $RR_VENV (pins: lib/requirements.txt)"
  [ -x "$RR_VENV/bin/python" ] || "$py" -m venv "$RR_VENV" || rr_die "python -m venv failed"
  local pip_log="$RR_CACHE/pip-install.log" req_no_hvd="$RR_CACHE/requirements-no-horovod.txt"
  "$RR_VENV/bin/python" -m pip install -q --upgrade pip wheel "setuptools<70" "uv==$(rr_pin uv)" > "$pip_log" 2>&1 \
    || { cat "$pip_log" >&2; rr_die "upgrading pip and installing uv in $RR_VENV failed (log: $pip_log)"; }
  grep -v '^horovod==' "$RR_REQ" > "$req_no_hvd"
  if ! "$RR_VENV/bin/uv" pip install --quiet --python "$RR_VENV/bin/python" -r "$req_no_hvd" > "$pip_log" 2>&1; then
    cat "$pip_log" >&2
    rr_die "uv pip install -r lib/requirements.txt failed (log: $pip_log)"
  fi
  rr_build_horovod "$RR_VENV/bin/python"
  "$RR_VENV/bin/python" -m pip install -q --no-deps -e "$RR_ROOT" >/dev/null \
    || rr_die "pip install -e . failed"
  echo "$stamp" > "$RR_VENV/.reviewrec-stamp"
  rr_log "environment ready: $RR_VENV"
  flock -u 9
  ensure_jars
}
