#!/usr/bin/env bash
# The 1 vs 2 Horovod worker check of issue 4 on the accelerator machine (16 cores, no package
# registry, no Java), prepared so that a task lent that machine spends its minutes measuring.
# It runs bench_train.py with Horovod's own launcher (patched: the ranks get the train job's
# Horovod settings, 1 ms cycle and the response cache on) on the stack that stack_bundle.sh packs.
#
# Here, once:
#   bash benchmarks/device_ratio.sh pack FEATURES_ROOT
#     -> .device/ (git-ignored): the stack_bundle.sh parts, python_path, and carry-plan.txt, the
#        parts grouped into calls of at most CARRY_MIB (default 62) MiB each.
# There, one `run` call per group of the plan, back to back (the machine keeps ignored paths
# between calls while it is warm); the last call also measures:
#   bash benchmarks/device_ratio.sh measure [bench_train.py arguments]
#     default arguments: --steps 100 --epochs 3 --procs 1 2 --independent 1 2
#     -> $OUT/ratio.json (bench_train's JSON), $OUT/ratio.log
# Environment for measure: DEVICE_VENV (default /root/venv) and DEVICE_DS (default /root/ds) are
# where the venv and the features are unpacked, if they are not there yet.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
D=$REPO/.device

pack() {
  local feat=${1:?usage: device_ratio.sh pack FEATURES_ROOT}
  local mib=${CARRY_MIB:-62}
  local limit=$(( mib * 1024 * 1024 )) group=1 used=0 size f
  rm -rf "$D"; mkdir -p "$D"
  # The venv is split into parts of the carry limit itself, so no part can exceed it.
  bash "$REPO/benchmarks/stack_bundle.sh" "$D" "$feat" "$mib" >/dev/null
  readlink -f "$REPO/.venv/bin/python" > "$D/python_path"
  echo "call 1: .device/carry-plan.txt (0 MiB)" > "$D/carry-plan.txt"
  for f in python_path ds.tar py.tar.xz "$D"/venv.tar.xz.*; do
    f=$(basename "$f"); size=$(stat -c %s "$D/$f")
    if (( size > limit )); then echo "$f is $size bytes, over CARRY_MIB" >&2; exit 2; fi
    if (( used > 0 && used + size > limit )); then group=$((group + 1)); used=0; fi
    used=$((used + size))
    echo "call $group: .device/$f ($((size / 1048576)) MiB)" >> "$D/carry-plan.txt"
  done
  cat "$D/carry-plan.txt"
}

measure() {
  local venv=${DEVICE_VENV:-/root/venv} ds=${DEVICE_DS:-/root/ds} out=${OUT:-$D/out} py f
  for f in $(sed 's,^call [0-9]*: .device/\([^ ]*\) .*,\1,' "$D/carry-plan.txt" 2>/dev/null || echo carry-plan.txt); do
    [ -f "$D/$f" ] || { echo "missing .device/$f: carry every group of .device/carry-plan.txt first" >&2; exit 2; }
  done
  mkdir -p "$out"
  py=$(cat "$D/python_path")
  # The interpreter finds libpython through its absolute path, so it goes back where it was packed.
  [ -x "$py" ] || xz -dc "$D/py.tar.xz" | tar -x -C /
  if [ ! -x "$venv/bin/python" ]; then
    mkdir -p "$(dirname "$venv")"
    cat "$D"/venv.tar.xz.* | xz -dc | tar -x -C "$(dirname "$venv")" --transform "s,^venv,$(basename "$venv"),"
  fi
  if [ ! -f "$ds/features_meta/meta.json" ]; then
    tar -x -C / -f "$D/ds.tar" --transform "s,^root/ds,${ds#/},"
  fi
  [ $# -gt 0 ] || set -- --steps 100 --epochs 3 --procs 1 2 --independent 1 2
  echo "$(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)" > "$out/ratio.log"
  # HOROVOD_CYCLE_TIME / HOROVOD_CACHE_CAPACITY unset: Horovod's defaults, as in the train job.
  env -u HOROVOD_CYCLE_TIME -u HOROVOD_CACHE_CAPACITY PYTHONPATH="$REPO/lib" TF_CPP_MIN_LOG_LEVEL=2 \
    "$venv/bin/python" "$REPO/benchmarks/bench_train.py" --root "$ds" --launcher gloo "$@" \
    > "$out/ratio.json" 2>> "$out/ratio.log" || { tail -20 "$out/ratio.log" >&2; exit 1; }
  "$venv/bin/python" -c 'import json,sys; d=json.load(open(sys.argv[1])); print({k: d.get(k) for k in ("speedup_2_vs_1", "independent_2_vs_1", "machine")}, {n: r["samples_per_s"] for n, r in d["runs"].items()})' "$out/ratio.json" 2>/dev/null \
    || tail -5 "$out/ratio.log"
}

case "${1:-}" in
  pack) shift; pack "$@" ;;
  measure) shift; measure "$@" ;;
  *) echo "usage: device_ratio.sh pack FEATURES_ROOT | measure [bench_train.py arguments]" >&2; exit 2 ;;
esac
