"""Batch scoring with the trained model, in the executors.

    score(spark, df, model_dir) -> df + star_probs (array<float>, p(star = 1..5)),
                                      expected_rating (double, sum_s p(s) * s),
                                      predicted_star (int, 1..5, the most probable star)

`df` needs the features columns seq (array<int>), user_idx (int) and item_idx (int); every
other column passes through untouched (the pandas UDF only receives those three). The model
is loaded once per Python worker and reused by every batch and task that worker runs.
`model_dir` is <root>/model as written by the train job, on any file system: the driver reads it
through Hadoop's FileSystem (a remote model is downloaded to a local directory once, again only
when its model.keras changes) and ships model.keras to the executors with SparkContext.addFile
under a name made from its content; the UDF loads it from its Spark files directory, never
from a path of the driver's.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from reviewrec import io
from reviewrec import schema as S
from reviewrec.features.meta import ITEM_INDEXER, USER_INDEXER, local_path
from reviewrec.model.net import bucket_ids
from reviewrec.model import retrain
from reviewrec.model.rank import MODEL_FILE
from reviewrec.model.staging import driver_dir
from reviewrec.model.train import METADATA_FILE

# model path -> (mtime, keras model): one load per Python worker process.
_MODELS: dict[str, tuple[float, Any]] = {}
_MEMBER_VIEWS: dict[str, tuple[Any, Any]] = {}  # model path -> (loaded model, its with_member_outputs view)


# On the driver: remote model dir -> ((length, modification time) of its model.keras, local copy).
_FETCHED: dict[str, tuple[tuple[int, int], str]] = {}
# On the driver, per application id: the model files shipped, and the directory they are kept in.
_SHIPPED: dict[str, set[str]] = {}


def _not_a_model(model_dir: str, missing: str) -> FileNotFoundError:
    return FileNotFoundError(f"{missing} not found: {model_dir} is not a model written by the train job "
                             "(run it first)")


def _model_file(model_dir: str, name: str) -> str:
    return io.dataset_path(model_dir, name) if "://" in model_dir else os.path.join(model_dir, name)


def require_model(spark: SparkSession | None, model_dir: str) -> None:
    """FileNotFoundError naming the first missing file when `model_dir` (any file system) does not
    hold the train job's metadata.json and model.keras."""
    for name in (METADATA_FILE, MODEL_FILE):
        if not io.path_exists(spark, _model_file(model_dir, name)):
            raise _not_a_model(model_dir, _model_file(model_dir, name))


def load_metadata(model_dir: str, spark: SparkSession | None = None) -> dict[str, Any]:
    """The model's metadata.json (a remote `model_dir` is read through `spark`'s Hadoop FileSystem)."""
    path = _model_file(model_dir, METADATA_FILE)
    if not io.path_exists(spark, path):
        raise _not_a_model(model_dir, path)
    return dict(json.loads(io.read_text(spark, path)))


def local_model_dir(spark: SparkSession, model_dir: str) -> str:
    """A directory of the driver's holding the model's metadata.json and model.keras: `model_dir`
    itself when local, else a copy downloaded through Hadoop's FileSystem (kept for this process
    and fetched again when the remote model.keras changes)."""
    require_model(spark, model_dir)
    if io.is_local(model_dir):
        return os.path.abspath(local_path(model_dir))
    stamp = io.file_stamp(spark, _model_file(model_dir, MODEL_FILE))
    hit = _FETCHED.get(model_dir)
    if hit and hit[0] == stamp and os.path.isfile(os.path.join(hit[1], MODEL_FILE)):
        return hit[1]
    local = os.path.join(driver_dir(spark), f"fetched-{uuid.uuid4().hex[:12]}")
    os.makedirs(local)
    for name in (METADATA_FILE, MODEL_FILE):
        io.download(spark, _model_file(model_dir, name), os.path.join(local, name))
    if hit:
        shutil.rmtree(hit[1], ignore_errors=True)
    _FETCHED[model_dir] = (stamp, local)
    return local


def ship_model(spark: SparkSession, model_dir: str) -> str:
    """Ship the model's model.keras to the executors (SparkContext.addFile) once per application and
    content; the name under which a task finds it with SparkFiles.get."""
    path = os.path.join(local_model_dir(spark, model_dir), MODEL_FILE)
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    name = f"model-{h.hexdigest()[:20]}.keras"
    names = _SHIPPED.setdefault(spark.sparkContext.applicationId, set())
    if name not in names:
        # Spark serves an added file from its path until the application ends: a copy of its own.
        shipped = os.path.join(driver_dir(spark), name)
        tmp = f"{shipped}.{uuid.uuid4().hex[:8]}"
        shutil.copyfile(path, tmp)
        os.replace(tmp, shipped)
        spark.sparkContext.addFile(shipped)
        names.add(name)
    return name


def ensemble_size(md: dict[str, Any]) -> int:
    """Networks in the saved model, from its metadata.json (1 unless model.ensemble_size > 1)."""
    return int((md.get("ensemble") or {}).get("size", 1))


def load_model(model_dir: str, threads: int = 1) -> Any:
    """The Keras model under the local `model_dir`, cached per process (reloaded if the file changed)."""
    return load_model_file(os.path.join(local_path(model_dir), MODEL_FILE), threads)


def load_model_file(path: str, threads: int = 1) -> Any:
    """The Keras model in the local file `path`, cached per process (reloaded if the file changed)."""
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


def with_member_outputs(model: Any) -> Any:
    """An ensemble (net.build_ensemble) -> the same graph with outputs [mean, member 1, ..., k]."""
    import tensorflow as tf

    return tf.keras.Model(model.inputs, [model.output] + list(model.get_layer("stars_mean").input))


def score(spark: SparkSession, df: DataFrame, model_dir: str, batch_size: int = 1024,
          threads: int = 1, members: bool = False) -> DataFrame:
    """df (needs seq, user_idx, item_idx) -> df + star_probs, expected_rating, predicted_star.

    members=True (an ensemble's model only): also member_star_probs, member j's star
    distribution at [j - 1], from the same pass (the members run once for both)."""
    S.require_columns(df.columns, [S.SEQ, S.USER_IDX, S.ITEM_IDX], "score input")
    md = load_metadata(model_dir, spark)
    fm, net = md["features_meta"], md["net"]
    seq_len, nu, ni = int(net["seq_len"]), int(fm["num_users"]), int(fm["num_items"])
    ub, ib = int(net["user_buckets"]), int(net["item_buckets"])
    if members and not ensemble_size(md) > 1:
        raise ValueError(f"{model_dir}: members=True needs an ensemble model (model.ensemble_size > 1)")
    rtype = T.ArrayType(T.ArrayType(T.FloatType())) if members else T.ArrayType(T.FloatType())
    shipped = ship_model(spark, model_dir)

    @F.pandas_udf(rtype)  # type: ignore[call-overload]
    def _probs(seq: pd.Series, user: pd.Series, item: pd.Series) -> pd.Series:
        from pyspark import SparkFiles

        path = SparkFiles.get(shipped)  # this executor's copy (SparkContext.addFile)
        model = load_model_file(path, threads)
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
    probs = _probs.asNondeterministic()(F.col(S.SEQ), F.col(S.USER_IDX), F.col(S.ITEM_IDX))
    if members:
        df = df.withColumn("__all_probs", probs)
        probs = F.col("__all_probs")[0]
        df = df.withColumn(S.MEMBER_STAR_PROBS, F.slice(F.col("__all_probs"), 2, 1 << 20))
    out = (df
           .withColumn(S.STAR_PROBS, probs)
           .withColumn(S.EXPECTED_RATING, expected_of(F.col(S.STAR_PROBS)))
           .withColumn(S.PREDICTED_STAR, predicted_star_of(S.STAR_PROBS)))
    return out.drop("__all_probs") if members else out


# -- scoring unrated (user, item) cells for the recommend job ----------------------------------
_MODEL_COLS = (S.SEQ, S.USER_IDX, S.ITEM_IDX, S.STAR_PROBS, S.EXPECTED_RATING, S.PREDICTED_STAR)


def index_ids(df: DataFrame, indexer_dir: str, col_id: str, col_idx: str, size: int) -> DataFrame:
    """df + col_idx (int) for col_id through the StringIndexerModel the features job saved at
    `indexer_dir`: exactly the ids training saw; unseen or null ids get the reserved index `size`.
    `size` is what the model was built for: another size means model and features differ."""
    from pyspark.ml.feature import StringIndexerModel

    spark = df.sparkSession
    if not io.path_exists(spark, io.dataset_path(indexer_dir, "metadata")):
        raise FileNotFoundError(f"{indexer_dir}: no saved StringIndexerModel (written by the features job)")
    # A local path with its scheme: without one, Spark would look on the default file system.
    ix = StringIndexerModel.load("file://" + os.path.abspath(local_path(indexer_dir)) if io.is_local(indexer_dir)
                                 else indexer_dir)
    n = len(ix.labelsArray[0])
    if n != size:
        raise ValueError(f"{indexer_dir}: indexer has {n} labels but the model was built for {size} "
                         "(features_meta in its metadata.json): model and features come from different runs")
    ix = ix.setInputCol(col_id).setOutputCol(col_idx).setHandleInvalid("keep")
    return ix.transform(df).withColumn(col_idx, F.col(col_idx).cast("int"))


def score_candidates(spark: SparkSession, candidates: DataFrame, model_dir: str, batch_size: int = 1024,
                     threads: int = 1, text: bool = False) -> DataFrame:
    """candidates (customer_id, product_id, any other columns) -> candidates + predicted_rating.

    predicted_rating is the model's expected rating sum_s p(s) * s for a review the user has not
    written: the ids go through the indexers the features job fitted (<root>/features_meta/
    user_indexer and item_indexer, beside <root>/model; unseen -> the reserved index, as in
    training), and the token sequence is empty (all padding), because an unrated cell has no
    review text; the model then predicts from the user and item embeddings alone (training with
    model.text_dropout teaches it that case). Scoring runs in the executors through `score`.
    Every other column of `candidates` passes through unchanged, and no row is dropped.

    text=True: the cell's text is the caller's `seq` column instead (token ids of the model's
    vocabulary; null or empty = the empty text), e.g. a document of the user's and the item's other
    reviews (recommend.review_fill).
    """
    S.require_columns(candidates.columns, [S.CUSTOMER_ID, S.PRODUCT_ID, *([S.SEQ] if text else [])],
                      "score_candidates input")
    require_model(spark, model_dir)
    fm = load_metadata(model_dir, spark)["features_meta"]
    meta_dir = io.dataset_path(io.parent(model_dir), S.FEATURES_META)
    misfit = retrain.ids_misfit(spark, model_dir)
    if misfit:
        raise ValueError(f"{model_dir} cannot score these candidates: {misfit}; retrain it (./spark-submit.sh train)")
    # Columns the scoring adds must not collide with the caller's: park clashing ones under a
    # private name and put them back afterwards.
    added = [c for c in _MODEL_COLS if not (text and c == S.SEQ)]
    parked = {c: f"__cand_{c}" for c in candidates.columns if c in added or c == S.PREDICTED_RATING}
    df = candidates
    for c, tmp in parked.items():
        df = df.withColumnRenamed(c, tmp)
    df = index_ids(df, os.path.join(meta_dir, USER_INDEXER), S.CUSTOMER_ID, S.USER_IDX, int(fm["num_users"]))
    df = index_ids(df, os.path.join(meta_dir, ITEM_INDEXER), S.PRODUCT_ID, S.ITEM_IDX, int(fm["num_items"]))
    if not text:
        # null seq = all padding (the UDF builds the zero row), cheaper than shipping seq_len zeros.
        df = df.withColumn(S.SEQ, F.lit(None).cast("array<int>"))
    scored = score(spark, df, model_dir, batch_size=batch_size, threads=threads)
    out = scored.withColumn(S.PREDICTED_RATING, F.col(S.EXPECTED_RATING)).drop(*added)
    for c, tmp in parked.items():
        out = out.withColumnRenamed(tmp, c) if c != S.PREDICTED_RATING else out.drop(tmp)
    return out.select(*[c for c in candidates.columns if c != S.PREDICTED_RATING], S.PREDICTED_RATING)
