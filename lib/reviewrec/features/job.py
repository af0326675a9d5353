"""The features job: <root>/reviews + <root>/tokens -> <root>/features + <root>/features_meta/.

    ./spark-submit.sh features [--set features.split=random] [--set features.seq_len=200]

<root>/features (partitioned by split=train|val|test, features.files_per_split files each):
  review_id, customer_id, product_id, user_idx (int), item_idx (int), tfidf (vector),
  seq (array<int>, seq_len ids, 0 = padding, 1 = OOV), label (int, star - 1),
  label_onehot (array<float>, 5), star_rating (int), review_date (date), split (string)
<root>/features_meta/
  vocab.json     features.meta.FeaturesMeta: {"vocab": {lemma: id}, "vocab_size", "num_users",
                  "num_items", "seq_len", "num_features", "pad_id", "oov_id", "num_classes"}
  meta.json      the same sizes plus split cut-offs and counts, total words, config hash
  user_indexer/, item_indexer/, idf/   the fitted Spark ML models (StringIndexerModel, IDFModel)
<root>/report/features.json   vocabulary size, total words, rows per split
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from reviewrec import io
from reviewrec import schema as S
from reviewrec.config import Config
from reviewrec.features import meta as M
from reviewrec.features import transforms as X
from reviewrec.runtime import StageTimer, peak_rss_mb

log = logging.getLogger(__name__)

SHARD = "__shard"


TASK_SIZE_LOGGER = "org.apache.spark.scheduler.TaskSetManager"


def save_model(spark: SparkSession, model: Any, path: str) -> None:
    """A fitted Spark ML model saved at `path`. Spark ML writes an IDFModel's idf and document
    frequencies (num_features doubles and longs: 4 MiB at 2^18) as a one-row local DataFrame, which
    travels inside its one write task, and Spark's scheduler warns "task of very large size"
    about it. That task is Spark ML's writer, not data this job could broadcast, so the
    scheduler's warning is held back for the save and one line says what it was."""
    if not hasattr(model, "idf"):
        model.write().overwrite().save(path)
        return
    jvm = spark.sparkContext._jvm
    configurator = jvm.org.apache.logging.log4j.core.config.Configurator
    before = jvm.org.apache.logging.log4j.LogManager.getLogger(TASK_SIZE_LOGGER).getLevel()
    configurator.setLevel(TASK_SIZE_LOGGER, jvm.org.apache.logging.log4j.Level.ERROR)
    try:
        model.write().overwrite().save(path)
    finally:
        configurator.setLevel(TASK_SIZE_LOGGER, before)
    n = len(model.idf)
    log.info("features: IDF model saved (%d features: Spark ML writes them as one task of about %.1f MiB)",
             n, n * 16 / 2**20)


@dataclass(frozen=True)
class FeaturesParams:
    """The features stage's settings: conf `features:` key for key (no defaults of its own)."""

    num_features: int
    idf_min_doc_freq: int
    min_count: int
    vocab_size: int
    seq_len: int
    split: str
    train_fraction: float
    val_fraction: float
    seed: int
    files_per_split: int

    @classmethod
    def from_config(cls, cfg: Config) -> FeaturesParams:
        return cls(**cfg["features"])
REVIEW_COLUMNS = (S.REVIEW_ID, S.CUSTOMER_ID, S.PRODUCT_ID, S.STAR_RATING, S.REVIEW_DATE)


def join_inputs(reviews: DataFrame, tokens: DataFrame) -> DataFrame:
    """reviews x tokens on review_id (inner): the review columns plus lemmas."""
    return (reviews.select(*REVIEW_COLUMNS)
            .join(tokens.select(S.REVIEW_ID, S.LEMMAS), on=S.REVIEW_ID, how="inner"))


def split_rows(df: DataFrame, how: str, train_fraction: float, val_fraction: float,
               seed: int) -> tuple[DataFrame, dict[str, Any]]:
    """Add the split column; returns (df, what the split was: method, cut-off dates)."""
    if how == "time":
        return X.time_split(df, train_fraction, val_fraction)
    if how == "random":
        return (X.assign_random_split(df, train_fraction, val_fraction, seed),
                {"method": "random", "seed": seed})
    raise ValueError(f"features.split = {how!r}; choose time or random")


def build_features(base: DataFrame, *, num_features: int, idf_min_doc_freq: int, min_count: int,
                   vocab_size: int, seq_len: int) -> tuple[DataFrame, dict[str, Any]]:
    """`base` (review columns + lemmas + split) -> (features rows, fitted models and vocabulary).

    Every estimator is fitted on split == train only."""
    train = base.filter(F.col(S.SPLIT) == S.SPLIT_TRAIN)
    users = X.fit_indexer(train, S.CUSTOMER_ID, S.USER_IDX)
    items = X.fit_indexer(train, S.PRODUCT_ID, S.ITEM_IDX)
    tf = X.hashing_tf(base, num_features)
    idf = X.fit_idf(tf.filter(F.col(S.SPLIT) == S.SPLIT_TRAIN), idf_min_doc_freq)
    cv = X.fit_vocabulary(train, min_count, vocab_size)
    vocab = list(cv.vocabulary)  # <= vocab_size strings: a small result
    vocab_df = X.vocabulary_frame(vocab, base)
    out = idf.transform(tf).drop(X.TF)
    out = X.apply_indexer(X.apply_indexer(out, users), items)
    out = X.token_sequences(out, vocab_df, seq_len)
    out = X.star_labels(out)
    models = {M.USER_INDEXER: users, M.ITEM_INDEXER: items, M.IDF: idf, "vocab": vocab}
    return out.select(*S.FEATURES_COLUMNS), models


def num_labels(indexer_model) -> int:  # noqa: ANN001 - a fitted StringIndexerModel
    """Label count of a fitted StringIndexerModel, read in the JVM: `labelsArray` would copy every
    label (one per customer) into the Python driver just to count them."""
    return len(indexer_model._java_obj.labelsArray()[0])  # noqa: SLF001 - py4j JavaArray: length only


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    timer = StageTimer("features")
    root = cfg["run"]["root"]
    f = FeaturesParams.from_config(cfg)
    if f.train_fraction + f.val_fraction > 1.0 + 1e-9 or f.train_fraction <= 0:
        raise ValueError(f"features.train_fraction ({f.train_fraction}) + features.val_fraction "
                         f"({f.val_fraction}) must be in (0, 1]")
    reviews = io.read_parquet(spark, io.dataset_path(root, "reviews"), "ingest")
    tokens = io.read_parquet(spark, io.dataset_path(root, "tokens"), "preprocess")
    S.require_columns(reviews.columns, REVIEW_COLUMNS, f"{root}/reviews")
    S.require_columns(tokens.columns, (S.REVIEW_ID, S.LEMMAS), f"{root}/tokens")

    with timer.stage("join+split"):
        base = join_inputs(reviews, tokens)
        base, split_info = split_rows(base, f.split, f.train_fraction, f.val_fraction, f.seed)
        base = base.persist(StorageLevel.MEMORY_AND_DISK)
        per_split = {r[S.SPLIT]: (int(r["n"]), int(r["words"] or 0)) for r in
                     base.groupBy(S.SPLIT).agg(F.count(F.lit(1)).alias("n"),
                                               F.sum(F.size(S.LEMMAS)).alias("words")).collect()}
        n_reviews = reviews.count()
    n_joined = sum(n for n, _ in per_split.values())
    if n_joined != n_reviews:
        raise ValueError(f"{root}/tokens covers {n_joined} of the {n_reviews} reviews in {root}/reviews: "
                         "rerun the preprocess job on the current reviews")
    if per_split.get(S.SPLIT_TRAIN, (0, 0))[0] == 0:
        raise ValueError(f"features: the {f.split} split left no training rows ({per_split})")

    with timer.stage("fit"):
        feats, models = build_features(
            base, num_features=f.num_features, idf_min_doc_freq=f.idf_min_doc_freq,
            min_count=f.min_count, vocab_size=f.vocab_size, seq_len=f.seq_len)
    k = f.files_per_split
    shard = F.pmod(F.xxhash64(F.col(S.REVIEW_ID)), F.lit(k))
    out = io.dataset_path(root, S.FEATURES)
    with timer.stage("transform+write"):
        shaped = (feats.withColumn(SHARD, shard)
                  .repartition(len(S.SPLITS) * k, F.col(S.SPLIT), F.col(SHARD))
                  # Rows inside each file in review_id order, not in the order the shuffle
                  # delivered them (which differs between runs, local mode and a cluster):
                  # the train job reads files in order, so the same features give the same model.
                  .sortWithinPartitions(S.SPLIT, S.REVIEW_ID)
                  .drop(SHARD))
        io.write_parquet_atomic(shaped, out, partition_by=[S.SPLIT])
    base.unpersist()

    users, items = models[M.USER_INDEXER], models[M.ITEM_INDEXER]
    vocab = models["vocab"]
    meta = M.FeaturesMeta(vocab={t: i + 2 for i, t in enumerate(vocab)}, vocab_size=len(vocab) + 2,
                          num_users=num_labels(users), num_items=num_labels(items), seq_len=f.seq_len,
                          num_features=f.num_features)
    sizes = {k: v for k, v in meta.to_json().items() if k != "vocab"}
    meta_dir = io.dataset_path(root, S.FEATURES_META)
    with timer.stage("meta"):
        M.write(spark, meta_dir, meta)
        for name in (M.USER_INDEXER, M.ITEM_INDEXER, M.IDF):
            save_model(spark, models[name], meta_dir + "/" + name)
    total_words = sum(w for _, w in per_split.values())
    summary = {
        **sizes,
        "vocabulary": {"sequence_vocab_size": len(vocab), "min_count": f.min_count,
                       "note": "ids 0 = padding, 1 = out of vocabulary, 2.. = lemmas by training frequency"},
        "total_words": total_words,
        "reviews": n_reviews,
        "split": {**split_info, "train_fraction": f.train_fraction, "val_fraction": f.val_fraction,
                  "rows": {s: per_split.get(s, (0, 0))[0] for s in S.SPLITS},
                  "words": {s: per_split.get(s, (0, 0))[1] for s in S.SPLITS}},
        "unseen_index": {"user_idx": sizes["num_users"], "item_idx": sizes["num_items"]},
        "config_hash": cfg.hash(),
        "timings_s": timer.timings,
        "driver_peak_rss_mb": round(peak_rss_mb(), 1),
        "written": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    io.write_json_atomic(spark, meta_dir + "/meta.json", summary)
    io.write_json_atomic(spark, io.dataset_path(root, "report/features.json"), summary)
    log.info("features: %d reviews (%s), vocabulary %d lemmas, %d total words, %d users, %d items -> %s",
             n_reviews, summary["split"]["rows"], len(vocab), total_words, sizes["num_users"],
             sizes["num_items"], out)
    return summary
