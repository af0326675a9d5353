"""Batch scoring with the trained model, in the executors.

    score(spark, df, model_dir) -> df + star_probs (array<float>, p(star = 1..5)),
                                      expected_rating (double, sum_s p(s) * s),
                                      predicted_star (int, 1..5, the most probable star)

`df` needs the features columns seq (array<int>), user_idx (int) and item_idx (int); every
other column passes through untouched (the pandas UDF only receives those three). The model
is loaded once per Python worker and reused by every batch and task that worker runs.
`model_dir` is <root>/model as written by the train job (a local or mounted path).
"""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from reviewrec.model import contract as C
from reviewrec.model.net import bucket_ids

# model path -> (mtime, keras model): one load per Python worker process.
_MODELS: dict[str, tuple[float, Any]] = {}


def load_metadata(model_dir: str) -> dict[str, Any]:
    with open(os.path.join(C._local(model_dir), "metadata.json"), encoding="utf-8") as fh:
        return json.load(fh)


def load_model(model_dir: str, threads: int = 1) -> Any:
    """The Keras model under `model_dir`, cached per process (reloaded if the file changed)."""
    from reviewrec.model.train import MODEL_FILE

    path = os.path.join(C._local(model_dir), MODEL_FILE)
    mtime = os.path.getmtime(path)
    hit = _MODELS.get(path)
    if hit and hit[0] == mtime:
        return hit[1]
    import tensorflow as tf

    try:  # only possible before TensorFlow's context exists in this process
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    model = tf.keras.models.load_model(path, compile=False)
    _MODELS[path] = (mtime, model)
    return model


def predict_arrays(model: Any, seq: np.ndarray, user_idx: np.ndarray, item_idx: np.ndarray,
                   num_users: int, num_items: int, user_buckets: int, item_buckets: int,
                   batch_size: int = 1024) -> np.ndarray:
    """(n, 5) star probabilities for already-decoded arrays (the unit the UDF and tests share)."""
    x = {"seq": seq.astype(np.int32),
         "user": bucket_ids(user_idx, num_users, user_buckets).reshape(-1, 1),
         "item": bucket_ids(item_idx, num_items, item_buckets).reshape(-1, 1)}
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)


def _expected(probs: Column) -> Column:
    return F.aggregate(F.transform(probs, lambda p, i: p * (i + 1)), F.lit(0.0).cast("double"),
                       lambda acc, v: acc + v)


def score(spark: SparkSession, df: DataFrame, model_dir: str, batch_size: int = 1024,
          threads: int = 1) -> DataFrame:
    """df (needs seq, user_idx, item_idx) -> df + star_probs, expected_rating, predicted_star."""
    from reviewrec.schema import require_columns

    require_columns(df.columns, [C.SEQ, C.USER_IDX, C.ITEM_IDX], "score input")
    md = load_metadata(model_dir)
    fm, net = md["features_meta"], md["net"]
    seq_len, nu, ni = int(net["seq_len"]), int(fm["num_users"]), int(fm["num_items"])
    ub, ib = int(net["user_buckets"]), int(net["item_buckets"])
    path = os.path.abspath(C._local(model_dir))

    @F.pandas_udf(T.ArrayType(T.FloatType()))  # type: ignore[call-overload]
    def _probs(seq: pd.Series, user: pd.Series, item: pd.Series) -> pd.Series:
        model = load_model(path, threads)
        mat = np.zeros((len(seq), seq_len), np.int32)
        for r, s in enumerate(seq):
            if s is not None:
                row = np.asarray(s, dtype=np.int32)[:seq_len]
                mat[r, :len(row)] = row
        u = user.fillna(-1).to_numpy(dtype=np.int64)
        i = item.fillna(-1).to_numpy(dtype=np.int64)
        p = predict_arrays(model, mat, u, i, nu, ni, ub, ib, batch_size).astype(np.float32)
        return pd.Series(list(p))

    # Non-deterministic so the optimizer never duplicates the UDF into each derived column.
    probs = _probs.asNondeterministic()(F.col(C.SEQ), F.col(C.USER_IDX), F.col(C.ITEM_IDX))
    return (df
            .withColumn(C.PROBS, probs)
            .withColumn(C.EXPECTED_RATING, _expected(F.col(C.PROBS)))
            .withColumn(C.PREDICTED_STAR,
                        F.expr(f"array_position({C.PROBS}, array_max({C.PROBS}))").cast("int")))
