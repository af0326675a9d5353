#!/usr/bin/env bash
# Packs the training stack of this checkout's .venv (Python 3.11 runtime, TensorFlow 2.15.1,
# Horovod 0.28.1 with Gloo, pyarrow, numpy, the pyspark Python package without its jars) and a
# features root into xz archives split into parts of at most PART_MIB MiB, for a machine that has
# neither a package registry nor Java. There, benchmarks/bench_train.py --launcher gloo runs the
# same ranks (train_rank) as the train job, without Spark. Used for the 16-core run in
# benchmarks/RESULTS.md ("1 vs 2 Horovod workers on 16 cores").
#
#   bash benchmarks/stack_bundle.sh OUT_DIR FEATURES_ROOT [PART_MIB]
#
# On the target (as root; the interpreter is unpacked where pyenv put it here, since the binary
# finds libpython through that absolute path):
#   xz -dc py.tar.xz | tar -x -C /                     # /root/.pyenv/versions/<ver>
#   tar -x -C / -f ds.tar                              # /root/ds: features (train split) + meta
#   cat venv.tar.xz.* | xz -dc | tar -x -C /root       # /root/venv
#   PYTHONPATH=$PWD/lib /root/venv/bin/python benchmarks/bench_train.py --root /root/ds --launcher gloo ...
set -euo pipefail
OUT=${1:?OUT_DIR}; FEAT=${2:?FEATURES_ROOT}; PART_MIB=${3:-60}
REPO=$(cd "$(dirname "$0")/.." && pwd)
SP=$REPO/.venv/lib/python3.11/site-packages
PY=$(readlink -f "$REPO/.venv/bin/python")
PYHOME=$(dirname "$(dirname "$PY")")
[ -d "$SP" ] || { echo "no $SP: run the README's setup first" >&2; exit 2; }
[ -f "$FEAT/features_meta/meta.json" ] || { echo "$FEAT/features_meta/meta.json missing" >&2; exit 2; }
mkdir -p "$OUT"; STAGE=$(mktemp -d); trap 'rm -rf "$STAGE"' EXIT

# 1. The interpreter and its standard library (not its own site-packages, tests, Tk, pip's
#    bootstrap, the static library or headers).
tar -C / --exclude=__pycache__ --exclude="${PYHOME#/}/lib/python3.11/site-packages/*" \
  --exclude="${PYHOME#/}/lib/python3.11/test" --exclude="${PYHOME#/}/lib/python3.11/idlelib" \
  --exclude="${PYHOME#/}/lib/python3.11/tkinter" --exclude="${PYHOME#/}/lib/python3.11/ensurepip" \
  --exclude="${PYHOME#/}/lib/python3.11/config-3.11-x86_64-linux-gnu" --exclude="${PYHOME#/}/include" \
  --exclude="${PYHOME#/}/share" -cf - "${PYHOME#/}" | xz -T0 -6 > "$OUT/py.tar.xz"

# 2. The packages train_rank imports, and what TensorFlow imports at start (requests, grpc, ...).
PKGS="absl astunparse cloudpickle flatbuffers gast google h5py h5py.libs horovod keras ml_dtypes numpy
numpy.libs opt_einsum packaging psutil py4j pyarrow pyspark six.py termcolor typing_extensions.py wrapt yaml
_yaml tensorflow tensorflow_estimator tensorflow_io_gcs_filesystem tensorboard pandas dateutil pytz tzdata
requests urllib3 idna certifi charset_normalizer pasta grpc markdown werkzeug markupsafe setuptools
pkg_resources _distutils_hack distutils-precedence.pth"
D=$STAGE/venv/lib/python3.11/site-packages
mkdir -p "$D" "$STAGE/venv/bin"
for p in $PKGS; do cp -a "$SP/$p" "$D/"; done
cp -a "$SP"/*.dist-info "$D/"
rm -rf "$D"/tensorflow/include "$D"/tensorflow/xla_aot_runtime_src "$D"/pyspark/jars "$D"/pyspark/examples \
  "$D"/pyspark/data "$D"/pyarrow/include "$D"/pyarrow/tests "$D"/pandas/tests "$D"/tensorboard/webfiles.zip
find "$D" -name __pycache__ -prune -exec rm -rf {} +
find "$D/horovod" -name '*.so' -exec strip --strip-debug {} +   # debug info: 57 MB -> 2 MB
cp "$REPO/.venv/pyvenv.cfg" "$STAGE/venv/"
ln -s "$PY" "$STAGE/venv/bin/python3.11"; ln -s python3.11 "$STAGE/venv/bin/python"
tar -C "$STAGE" -cf - venv | xz -T0 -6 | split -b "${PART_MIB}M" -a 2 --numeric-suffixes - "$OUT/venv.tar.xz."

# 3. The features root: train split and meta only (bench_train reads nothing else).
mkdir -p "$STAGE/root/ds/features"
cp -a "$FEAT/features/split=train" "$STAGE/root/ds/features/"
cp -a "$FEAT/features_meta" "$STAGE/root/ds/"
tar -C "$STAGE" -cf "$OUT/ds.tar" root
ls -la "$OUT"
