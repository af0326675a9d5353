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
_MEMBER_VIEWS: dict[str, tuple[Any, Any]] = {}  # model path -> (loaded model, its with_member_outputs view)


def load_metadata(model_dir: str) -> dict[str, Any]:
    with open(os.path.join(C._local(model_dir), "metadata.json"), encoding="utf-8") as fh:
        return json.load(fh)


def ensemble_size(md: dict[str, Any]) -> int:
    """Networks in the saved model, from its metadata.json (1 unless model.ensemble_size > 1)."""
    return int((md.get("ensemble") or {}).get("size", 1))


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
    out = model.predict(x, batch_size=batch_size, verbose=0)
    if isinstance(out, list):  # a multi-output view (with_member_outputs)
        return [np.asarray(o, dtype=np.float64) for o in out]
    return np.asarray(out, dtype=np.float64)


def expected_of(probs: Column) -> Column:
    """sum_s p(s) * s of an array<float> column of 5 star probabilities."""
    return F.aggregate(F.transform(probs, lambda p, i: p * (i + 1)), F.lit(0.0).cast("double"),
                       lambda acc, v: acc + v)


def predicted_star_of(probs: str) -> Column:
    """1-based position of the largest of 5 star probabilities (SQL expression `probs`; ties:
    the lowest star)."""
    return F.expr(f"array_position({probs}, array_max({probs}))").cast("int")


MEMBER_PROBS = "member_star_probs"


def with_member_outputs(model: Any) -> Any:
    """An ensemble (net.build_ensemble) -> the same graph with outputs [mean, member 1, ..., k]."""
    import tensorflow as tf

    return tf.keras.Model(model.inputs, [model.output] + list(model.get_layer("stars_mean").input))


def score(spark: SparkSession, df: DataFrame, model_dir: str, batch_size: int = 1024,
          threads: int = 1, members: bool = False) -> DataFrame:
    """df (needs seq, user_idx, item_idx) -> df + star_probs, expected_rating, predicted_star.

    members=True (an ensemble's model only): also member_star_probs, member j's star
    distribution at [j - 1], from the same pass (the members run once for both)."""
    from reviewrec.schema import require_columns

    require_columns(df.columns, [C.SEQ, C.USER_IDX, C.ITEM_IDX], "score input")
    md = load_metadata(model_dir)
    fm, net = md["features_meta"], md["net"]
    seq_len, nu, ni = int(net["seq_len"]), int(fm["num_users"]), int(fm["num_items"])
    ub, ib = int(net["user_buckets"]), int(net["item_buckets"])
    path = os.path.abspath(C._local(model_dir))
    if members and not ensemble_size(md) > 1:
        raise ValueError(f"{model_dir}: members=True needs an ensemble model (model.ensemble_size > 1)")
    rtype = T.ArrayType(T.ArrayType(T.FloatType())) if members else T.ArrayType(T.FloatType())

    @F.pandas_udf(rtype)  # type: ignore[call-overload]
    def _probs(seq: pd.Series, user: pd.Series, item: pd.Series) -> pd.Series:
        model = load_model(path, threads)
        if members:
            hit = _MEMBER_VIEWS.get(path)
            if hit is None or hit[0] is not model:  # built once per loaded model
                _MEMBER_VIEWS[path] = hit = (model, with_member_outputs(model))
            model = hit[1]
        mat = np.zeros((len(seq), seq_len), np.int32)
        for r, s in enumerate(seq):
            if s is not None:
                row = np.asarray(s, dtype=np.int32)[:seq_len]
                mat[r, :len(row)] = row
        u = user.fillna(-1).to_numpy(dtype=np.int64)
        i = item.fillna(-1).to_numpy(dtype=np.int64)
        if members:  # (k + 1) arrays of (n, 5) -> per row [mean, member 1, ..., member k]
            outs = [o.astype(np.float32) for o in predict_arrays(model, mat, u, i, nu, ni, ub, ib, batch_size)]
            return pd.Series([[o[r] for o in outs] for r in range(len(mat))])
        p = predict_arrays(model, mat, u, i, nu, ni, ub, ib, batch_size).astype(np.float32)
        return pd.Series(list(p))

    # Non-deterministic so the optimizer never duplicates the UDF into each derived column.
    probs = _probs.asNondeterministic()(F.col(C.SEQ), F.col(C.USER_IDX), F.col(C.ITEM_IDX))
    if members:
        df = df.withColumn("__all_probs", probs)
        probs = F.col("__all_probs")[0]
        df = df.withColumn(MEMBER_PROBS, F.slice(F.col("__all_probs"), 2, 1 << 20))
    out = (df
           .withColumn(C.PROBS, probs)
           .withColumn(C.EXPECTED_RATING, expected_of(F.col(C.PROBS)))
           .withColumn(C.PREDICTED_STAR, predicted_star_of(C.PROBS)))
    return out.drop("__all_probs") if members else out


# -- scoring unrated (user, item) cells for the recommend job (issue 5) ------------------------
PREDICTED_RATING = "predicted_rating"
USER_INDEXER = "user_indexer"
ITEM_INDEXER = "item_indexer"
_MODEL_COLS = (C.SEQ, C.USER_IDX, C.ITEM_IDX, C.PROBS, C.EXPECTED_RATING, C.PREDICTED_STAR)


def _indexer_dir(model_dir: str, name: str) -> str | None:
    """The saved StringIndexerModel `name`: in model_dir itself, else in the sibling
    <root>/features_meta/ the features job writes (where the train job's features came from)."""
    local = C._local(model_dir).rstrip("/")
    for d in (os.path.join(local, name), os.path.join(os.path.dirname(local), C.FEATURES_META, name)):
        if os.path.isdir(os.path.join(d, "metadata")):
            return d
    return None


def _index_column(spark: SparkSession, df: DataFrame, model_dir: str, name: str, col_id: str, col_idx: str,
                  size: int) -> tuple[DataFrame, str]:
    """df + col_idx (int) for col_id, exactly as the features job indexed it; unseen or null ids get
    the reserved index `size`. Returns (df, where the mapping came from)."""
    path = _indexer_dir(model_dir, name)
    if path is not None:
        from pyspark.ml.feature import StringIndexerModel

        ix = StringIndexerModel.load("file://" + os.path.abspath(path))
        n = len(ix.labelsArray[0])
        if n != size:
            raise ValueError(f"{path}: indexer has {n} labels but the model at {model_dir} was built for "
                             f"{size} (features_meta in metadata.json): model and features come from different runs")
        ix = ix.setInputCol(col_id).setOutputCol(col_idx).setHandleInvalid("keep")
        return ix.transform(df).withColumn(col_idx, F.col(col_idx).cast("int")), path
    # No saved indexer (features built by model.standin): the features dataset itself holds the
    # mapping every training row used; ids it does not contain are unseen.
    local = C._local(model_dir).rstrip("/")
    feats = os.path.join(os.path.dirname(local), C.FEATURES)
    if not os.path.isdir(feats):
        raise FileNotFoundError(
            f"no id mapping for {col_id}: neither {os.path.join(local, name)} nor "
            f"{os.path.join(os.path.dirname(local), C.FEATURES_META, name)} (StringIndexerModel written by the "
            f"features job) nor the features dataset {feats} exists")
    mapping = (spark.read.parquet(feats).select(col_id, col_idx)
               .where(F.col(col_idx) < F.lit(size)).distinct()
               .withColumnRenamed(col_idx, "_ix"))
    bad = mapping.groupBy(col_id).count().where("count > 1").limit(1).collect()
    if bad:
        raise ValueError(f"{feats}: {col_id} {bad[0][col_id]!r} has more than one {col_idx}")
    out = (df.join(F.broadcast(mapping) if size <= 2_000_000 else mapping, on=col_id, how="left")
           .withColumn(col_idx, F.coalesce(F.col("_ix"), F.lit(size)).cast("int")).drop("_ix"))
    return out, feats


def score_candidates(spark: SparkSession, candidates: DataFrame, model_dir: str, batch_size: int = 1024,
                     threads: int = 1) -> DataFrame:
    """candidates (customer_id, product_id, any other columns) -> candidates + predicted_rating.

    predicted_rating is the model's expected rating sum_s p(s) * s for a review the user has not
    written: the ids go through the indexers the model's features were built with (unseen ->
    the reserved index, as in training), and the token sequence is empty (all padding), because
    an unrated cell has no review text; the model then predicts from the user and item
    embeddings alone (training with model.text_dropout teaches it that case). Scoring runs in
    the executors through `score` (pandas UDF, one model load per Python worker). Every other
    column of `candidates` passes through unchanged, and no row is dropped.
    """
    from reviewrec.schema import CUSTOMER_ID, PRODUCT_ID, require_columns

    require_columns(candidates.columns, [CUSTOMER_ID, PRODUCT_ID], "score_candidates input")
    local = C._local(model_dir)
    for f in ("metadata.json", "model.keras"):
        if not os.path.isfile(os.path.join(local, f)):
            raise FileNotFoundError(f"{os.path.join(local, f)} not found: {model_dir} is not a model "
                                    "written by the train job (run it first)")
    fm = load_metadata(model_dir)["features_meta"]
    # Columns the scoring adds must not collide with the caller's: park clashing ones under a
    # private name and put them back afterwards.
    clash = [c for c in candidates.columns if c in _MODEL_COLS or c == PREDICTED_RATING]
    parked = {c: f"__cand_{c}" for c in clash}
    df = candidates
    for c, tmp in parked.items():
        df = df.withColumnRenamed(c, tmp)
    df, _ = _index_column(spark, df, model_dir, USER_INDEXER, CUSTOMER_ID, C.USER_IDX, int(fm["num_users"]))
    df, _ = _index_column(spark, df, model_dir, ITEM_INDEXER, PRODUCT_ID, C.ITEM_IDX, int(fm["num_items"]))
    # null seq = all padding (the UDF builds the zero row), cheaper than shipping seq_len zeros.
    df = df.withColumn(C.SEQ, F.lit(None).cast("array<int>"))
    scored = score(spark, df, model_dir, batch_size=batch_size, threads=threads)
    out = scored.withColumn(PREDICTED_RATING, F.col(C.EXPECTED_RATING)).drop(*_MODEL_COLS)
    for c, tmp in parked.items():
        if c != PREDICTED_RATING:
            out = out.withColumnRenamed(tmp, c)
        else:
            out = out.drop(tmp)
    return out.select(*[c for c in candidates.columns if c != PREDICTED_RATING], PREDICTED_RATING)
