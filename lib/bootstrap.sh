# shellcheck shell=bash
# Environment bootstrap for reviewrec, sourced by spark-submit.sh.
#
#   ensure_java   Java 17 for Spark 3.5 (installs OpenJDK 17 with apt-get when run as root).
#   ensure_env    .venv with the pins of lib/requirements.txt, horovod built with Gloo, and
#                 reviewrec installed in editable mode. Rebuilt only when the pins change.
#                 Then ensure_sparknlp_jars.
#   ensure_sparknlp_jars
#                 Spark NLP's jar and its runtime dependencies (the version of the spark-nlp
#                 pin) fetched once with Maven (lib/sparknlp/pom.xml) into the cache below,
#                 for the sparknlp text engine (spark.jars). Without mvn or Maven Central it
#                 warns and goes on: the builtin engine needs none of it.
#
# The horovod wheel is built once (3-15 minutes on 2 cores) and cached outside the clone,
# keyed by horovod, TensorFlow, Python and platform, so CI runs and fresh clones reuse it:
#   ${REVIEWREC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/reviewrec}/wheels/<key>/
# The Spark NLP jars go to the same cache: <cache>/sparknlp/<version>/jars/ (Maven's own
# repository of downloads beside it, <cache>/sparknlp/m2).

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

# Spark NLP's jars for the spark-nlp pin: <cache>/sparknlp/<version>/jars, plus MANIFEST
# (one jar a line) and FETCH (size and time of the fetch). Reused when present. Jars of
# artifacts that Spark already ships (pyspark/jars) are not kept: Spark's own copy is the one
# the classpath would load first anyway.
ensure_sparknlp_jars() {
  local version dir tmp t0 t1 sparkjars n mib
  version=$(rr_pin spark-nlp)
  [ -n "$version" ] || return 0
  dir="$RR_CACHE/sparknlp/$version"
  [ -f "$dir/MANIFEST" ] && return 0
  if ! command -v mvn >/dev/null 2>&1; then
    rr_log "WARNING: mvn not found: Spark NLP $version jars not fetched (text.engine=sparknlp will name what is missing; builtin works)"
    return 0
  fi
  mkdir -p "$RR_CACHE/sparknlp"
  exec 8>"$RR_CACHE/sparknlp/fetch.lock"
  flock 8
  if [ -f "$dir/MANIFEST" ]; then flock -u 8; return 0; fi
  rr_log "fetching Spark NLP $version jars with Maven into $dir"
  tmp="$dir.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp/jars"
  t0=$(date +%s)
  if ! mvn -B -q -f "$RR_ROOT/lib/sparknlp/pom.xml" -Dsparknlp.version="$version" \
       -Dmaven.repo.local="$RR_CACHE/sparknlp/m2" dependency:copy-dependencies \
       -DoutputDirectory="$tmp/jars" > "$tmp/mvn.log" 2>&1; then
    grep -E 'ERROR' "$tmp/mvn.log" | head -n 5 >&2 || true
    rr_log "WARNING: Maven could not fetch com.johnsnowlabs.nlp:spark-nlp_2.12:$version (log: $tmp/mvn.log); text.engine=sparknlp will name what is missing, builtin works"
    flock -u 8; return 0
  fi
  sparkjars=$("$RR_VENV/bin/python" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))' 2>/dev/null || true)
  if [ -n "$sparkjars" ] && [ -d "$sparkjars" ]; then
    local j a provided
    provided=$(ls "$sparkjars" | sed -E 's/-[0-9][^-]*(-[A-Za-z0-9.]+)?\.jar$//')
    for j in "$tmp"/jars/*.jar; do
      a=$(basename "$j" | sed -E 's/-[0-9][^-]*(-[A-Za-z0-9.]+)?\.jar$//')
      if grep -qx -- "$a" <<< "$provided"; then rm -f "$j"; fi
    done
  fi
  t1=$(date +%s)
  n=$(ls "$tmp"/jars/*.jar | wc -l)
  mib=$(du -sm "$tmp/jars" | cut -f1)
  printf 'version=%s\njars=%s\nmib=%s\nseconds=%s\n' "$version" "$n" "$mib" "$((t1 - t0))" > "$tmp/FETCH"
  (cd "$tmp/jars" && ls *.jar) > "$tmp/MANIFEST"
  rm -rf "$dir" && mv "$tmp" "$dir"
  rr_log "Spark NLP $version: $n jars, $mib MiB, fetched in $((t1 - t0)) s -> $dir/jars"
  flock -u 8
}

ensure_env() {
  ensure_java
  local stamp py
  stamp=$(rr_stamp)
  if [ -f "$RR_VENV/.reviewrec-stamp" ] && [ "$(cat "$RR_VENV/.reviewrec-stamp")" = "$stamp" ]; then
    ensure_sparknlp_jars
    return 0
  fi
  mkdir -p "$RR_CACHE"
  # One bootstrap at a time (parallel CI steps, two terminals).
  exec 9>"$RR_CACHE/bootstrap.lock"
  flock 9
  if [ -f "$RR_VENV/.reviewrec-stamp" ] && [ "$(cat "$RR_VENV/.reviewrec-stamp")" = "$stamp" ]; then
    flock -u 9; ensure_sparknlp_jars; return 0
  fi
  py=$(command -v python3.11 || command -v python3) || rr_die "Python 3.11 is required"
  "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || rr_die "Python 3.11 is required (TensorFlow 2.15 + horovod 0.28.1 are pinned for it); found $("$py" --version)"
  rr_log "setting up $RR_VENV (pins: lib/requirements.txt)"
  [ -x "$RR_VENV/bin/python" ] || "$py" -m venv "$RR_VENV" || rr_die "python -m venv failed"
  local pip_log="$RR_CACHE/pip-install.log" req_no_hvd="$RR_CACHE/requirements-no-horovod.txt"
  "$RR_VENV/bin/python" -m pip install -q --upgrade pip wheel "setuptools<70" > "$pip_log" 2>&1 \
    || { cat "$pip_log" >&2; rr_die "upgrading pip in $RR_VENV failed (log: $pip_log)"; }
  grep -v '^horovod==' "$RR_REQ" > "$req_no_hvd"
  if ! "$RR_VENV/bin/python" -m pip install -q -r "$req_no_hvd" > "$pip_log" 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" "$pip_log" >&2 || true
    rr_die "pip install -r lib/requirements.txt failed (log: $pip_log)"
  fi
  rr_build_horovod "$RR_VENV/bin/python"
  "$RR_VENV/bin/python" -m pip install -q --no-deps -e "$RR_ROOT" >/dev/null \
    || rr_die "pip install -e . failed"
  echo "$stamp" > "$RR_VENV/.reviewrec-stamp"
  rr_log "environment ready: $RR_VENV"
  flock -u 9
  ensure_sparknlp_jars
}
