"""Short tuning runs of the star-rating LSTM: one process, validation metrics per variant.

    SPARK_LOCAL_IP=127.0.0.1 TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/bench_lstm_tuning.py \\
        --root /tmp/i4/dsneg --name lmm --set model.epochs=2 --set model.max_steps_per_epoch=400 \\
        --set model.pooling=last_max_mean [--test] [--out results.jsonl]

Runs the train job's rank function (reviewrec.model.train.train_rank) in this process as a
Horovod job of size 1 (no Spark for training; with model.embedding_init=word2vec a local
SparkSession fits Word2Vec first, as the train job does), then scores the val split (and test
with --test) and prints one JSON line: history, accuracy, macro-F1, RMSE/MAE of the expected
rating, and the RMSE of the same rows scored with the EMPTY sequence (ids only: what the
recommender's filled cells rest on). The config is conf/base.yaml + conf/local.yaml + --set;
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

from reviewrec.config import load_config
from reviewrec.model import contract as C
from reviewrec.model.data import read_files
from reviewrec.model.evaluate import metrics_from_confusion
from reviewrec.model.net import bucket_ids, expected_rating
from reviewrec.model.train import embedding_init_path, spec_from_config, train_rank

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def split_metrics(model, root: str, split: str, meta, spec) -> dict:
    arr = read_files(C.split_files(os.path.join(root, C.FEATURES), split), meta.seq_len)
    x = {"seq": arr.seq, "user": bucket_ids(arr.user, meta.num_users, spec.net.user_buckets).reshape(-1, 1),
         "item": bucket_ids(arr.item, meta.num_items, spec.net.item_buckets).reshape(-1, 1)}
    pr = model.predict(x, batch_size=1024, verbose=0)
    cm = np.zeros((C.NUM_CLASSES, C.NUM_CLASSES), np.int64)
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
    ap.add_argument("--test", action="store_true", help="also score the test split")
    ap.add_argument("--out", help="append the JSON line to this file")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    a = ap.parse_args(argv)
    ckpt = os.path.join(os.path.dirname(a.root.rstrip("/")), "ckpt_tuning", a.name)
    cfg = load_config([os.path.join(REPO, "conf", "local.yaml")],
                      [f"run.root={a.root}", f"model.checkpoint_dir={ckpt}", "model.intra_op_threads=2", *a.overrides])
    meta = C.load_meta(os.path.join(a.root, C.FEATURES_META))
    spec = spec_from_config(cfg, meta)
    m = cfg["model"]
    init_info = None
    if m["embedding_init"] == "word2vec":
        from pyspark.sql import SparkSession

        spark = (SparkSession.builder.master("local[2]").config("spark.driver.memory", "3g")
                 .config("spark.ui.enabled", "false").getOrCreate())
        t = time.perf_counter()
        path, init_info = embedding_init_path(spark, os.path.join(a.root, C.FEATURES), spec.checkpoint_dir,
                                              meta.vocab_size, spec.net.embedding_dim, m["word2vec_window"],
                                              m["word2vec_iterations"], m["seed"])
        init_info["seconds"] = round(time.perf_counter() - t, 1)
        spark.stop()
        spec = replace(spec, embedding_init=path)
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
           "best_epoch": r["best_epoch"], "embedding_init": init_info,
           "history": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in h.items()} for h in r["history"]]}
    for split in [C.VAL, C.TEST] if a.test else [C.VAL]:
        out[split] = split_metrics(model, a.root, split, meta, spec)
    line = json.dumps(out)
    print(line)
    if a.out:
        with open(a.out, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
