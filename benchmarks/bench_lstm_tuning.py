"""Short tuning runs of the star-rating LSTM: one process, validation metrics per variant.

    SPARK_LOCAL_IP=127.0.0.1 TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/bench_lstm_tuning.py \\
        --root RUN_ROOT --name lmm --steps 400 --set model.epochs=2 \\
        --set model.pooling=last_max_mean [--test] [--out results.jsonl]

Runs the train job's rank function (reviewrec.model.rank.train_rank) in this process as a
Horovod job of size 1 (no Spark), `--steps` steps per epoch (0: the whole train split), then
scores the val split (and test with --test) and prints one JSON line: history, accuracy,
macro-F1, RMSE/MAE of the expected rating, and the RMSE of the same rows scored with the EMPTY
sequence (ids only: what the recommender's filled cells rest on). The config is conf/base.yaml +
conf/local.yaml + --set;
checkpoints go to <root>/../ckpt_tuning/<name> unless model.checkpoint_dir is set.
The final numbers come from the real jobs (train with num_proc=2, evaluate), not from here.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace

import numpy as np

from reviewrec import schema as S
from reviewrec.config import load_config
from reviewrec.features import meta as M
from reviewrec.model.data import read_files
from reviewrec.model.metrics import metrics_from_confusion
from reviewrec.model.net import bucket_ids, expected_rating
from reviewrec.model.rank import train_rank
from reviewrec.model.spec import spec_from_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def split_metrics(model, root: str, split: str, meta, spec) -> dict:
    arr = read_files(M.split_files(os.path.join(root, S.FEATURES), split), meta.seq_len)
    x = {"seq": arr.seq, "user": bucket_ids(arr.user, meta.num_users, spec.net.user_buckets).reshape(-1, 1),
         "item": bucket_ids(arr.item, meta.num_items, spec.net.item_buckets).reshape(-1, 1)}
    pr = model.predict(x, batch_size=1024, verbose=0)
    cm = np.zeros((S.NUM_STAR_CLASSES, S.NUM_STAR_CLASSES), np.int64)
    np.add.at(cm, (arr.label, pr.argmax(1)), 1)
    m = metrics_from_confusion(cm)
    err = expected_rating(pr) - (arr.label + 1)
    empty = model.predict(dict(x, seq=np.zeros_like(arr.seq)), batch_size=1024, verbose=0)
    err0 = expected_rating(empty) - (arr.label + 1)
    return {"rows": len(arr), "acc": round(m["accuracy"], 4), "macro_f1": round(m["macro_f1"], 4),
            "rmse": round(float(np.sqrt((err ** 2).mean())), 4), "mae": round(float(np.abs(err).mean()), 4),
            "empty_seq_rmse": round(float(np.sqrt((err0 ** 2).mean())), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--steps", type=int, default=0, help="steps per epoch (0: the whole train split)")
    ap.add_argument("--test", action="store_true", help="also score the test split")
    ap.add_argument("--out", help="append the JSON line to this file")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    a = ap.parse_args(argv)
    ckpt = os.path.join(os.path.dirname(a.root.rstrip("/")), "ckpt_tuning", a.name)
    cfg = load_config([os.path.join(REPO, "conf", "local.yaml")],
                      [f"run.root={a.root}", f"model.checkpoint_dir={ckpt}", "model.intra_op_threads=2", *a.overrides])
    meta = M.read(os.path.join(a.root, S.FEATURES_META))
    spec = replace(spec_from_config(cfg, meta), max_steps_per_epoch=a.steps)
    t0 = time.perf_counter()
    r = train_rank(spec)
    train_s = time.perf_counter() - t0
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m.keras")
        with open(p, "wb") as fh:
            fh.write(r["model_bytes"])
        model = tf.keras.models.load_model(p, compile=False)
    out = {"name": a.name, "sets": a.overrides, "config_hash": cfg.hash(), "train_s": round(train_s, 1),
           "best_epoch": r["best_epoch"],
           "history": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in h.items()} for h in r["history"]]}
    for split in [S.SPLIT_VAL, S.SPLIT_TEST] if a.test else [S.SPLIT_VAL]:
        out[split] = split_metrics(model, a.root, split, meta, spec)
    line = json.dumps(out)
    print(line)
    if a.out:
        with open(a.out, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
