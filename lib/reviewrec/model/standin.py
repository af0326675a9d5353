"""A minimal builder of the features contract (contract.py), for tests and for training
before the real features job (issue 3, lib/reviewrec/features) is available.

It is deliberately simple: raw lowercase word tokens (no lemmas), a vocabulary of the most
frequent training tokens, StringIndexer ids fitted on train (unseen -> index size), hashed
TF-IDF over unigrams (+ bigrams), and a time split on review_date. Everything runs in Spark;
the driver collects only the vocabulary (<= vocab_size tokens) and the split dates.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any

from pyspark.ml.feature import IDF, HashingTF, NGram, StringIndexer
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from reviewrec import io
from reviewrec import schema as S
from reviewrec.model import contract as C
from reviewrec.report.eda import raw_tokens

log = logging.getLogger(__name__)

TOKENS = "tokens"


def time_split(reviews: DataFrame, val_fraction: float, test_fraction: float) -> DataFrame:
    """Adds `split`: the latest `test_fraction` of review dates -> test, the `val_fraction` before
    -> val, the rest -> train (boundaries from approxQuantile on the day number)."""
    day = F.datediff(F.col(S.REVIEW_DATE), F.lit("1970-01-01"))
    q = reviews.select(day.alias("d")).approxQuantile("d", [1 - test_fraction - val_fraction, 1 - test_fraction], 0.0)
    return reviews.withColumn(
        C.SPLIT, F.when(day > q[1], C.TEST).when(day > q[0], C.VAL).otherwise(C.TRAIN))


def build(spark: SparkSession, reviews: DataFrame, seq_len: int = 100, vocab_size: int = 20000,
          min_count: int = 2, num_features: int = 1 << 18, bigrams: bool = True,
          val_fraction: float = 0.1, test_fraction: float = 0.1) -> tuple[DataFrame, dict[str, Any]]:
    """reviews (canonical schema) -> (features DataFrame per contract.py, meta dict incl. vocab)."""
    df = time_split(reviews, val_fraction, test_fraction)
    toks = raw_tokens(df, col_out=TOKENS)
    df = df.join(toks, on=S.REVIEW_ID, how="inner")
    train = df.filter(F.col(C.SPLIT) == C.TRAIN)

    counts = (train.select(F.explode(TOKENS).alias("tok")).groupBy("tok").count()
              .filter(F.col("count") >= min_count)
              .orderBy(F.col("count").desc(), F.col("tok")).limit(max(vocab_size - 2, 1)))
    vocab_rows = counts.select("tok").collect()
    vocab = {"<pad>": C.PAD_ID, "<oov>": C.OOV_ID}
    vocab.update({r["tok"]: i + 2 for i, r in enumerate(vocab_rows)})
    vocab_df = spark.createDataFrame([(t, i) for t, i in vocab.items() if i >= 2], "tok string, tok_id int")

    pos = (df.select(S.REVIEW_ID, F.posexplode(F.slice(F.col(TOKENS), 1, seq_len)).alias("pos", "tok"))
           .join(F.broadcast(vocab_df), on="tok", how="left")
           .select(S.REVIEW_ID, "pos", F.coalesce(F.col("tok_id"), F.lit(C.OOV_ID)).alias("tok_id")))
    seqs = (pos.groupBy(S.REVIEW_ID)
            .agg(F.array_sort(F.collect_list(F.struct("pos", "tok_id"))).alias("ps"))
            .select(S.REVIEW_ID, F.transform("ps", lambda s: s["tok_id"]).alias("ids")))
    df = df.join(seqs, on=S.REVIEW_ID, how="left")
    ids = F.coalesce(F.col("ids"), F.array().cast("array<int>"))
    pad = F.array_repeat(F.lit(C.PAD_ID), F.greatest(F.lit(seq_len) - F.size(ids), F.lit(0)))
    df = df.withColumn(C.SEQ, F.concat(ids, pad).cast("array<int>"))

    uix = StringIndexer(inputCol=S.CUSTOMER_ID, outputCol=C.USER_IDX, handleInvalid="keep").fit(train)
    iix = StringIndexer(inputCol=S.PRODUCT_ID, outputCol=C.ITEM_IDX, handleInvalid="keep").fit(train)
    df = iix.transform(uix.transform(df))

    terms = F.col(TOKENS)
    if bigrams:
        df = NGram(n=2, inputCol=TOKENS, outputCol="bigrams").transform(df)
        terms = F.concat(F.col(TOKENS), F.col("bigrams"))
    df = df.withColumn("terms", terms)
    tf = HashingTF(inputCol="terms", outputCol="tf", numFeatures=num_features).transform(df)
    idf = IDF(inputCol="tf", outputCol=C.TFIDF, minDocFreq=2).fit(tf.filter(F.col(C.SPLIT) == C.TRAIN))
    df = idf.transform(tf)

    label = (F.col(S.STAR_RATING) - 1).cast("int")
    onehot = F.transform(F.sequence(F.lit(0), F.lit(4)), lambda k: F.when(k == label, 1).otherwise(0))
    out = df.select(
        S.REVIEW_ID, S.CUSTOMER_ID, S.PRODUCT_ID,
        F.col(C.USER_IDX).cast("int").alias(C.USER_IDX), F.col(C.ITEM_IDX).cast("int").alias(C.ITEM_IDX),
        C.TFIDF, C.SEQ, label.alias(C.LABEL), onehot.alias(C.LABEL_ONEHOT),
        F.col(S.STAR_RATING).cast("int").alias(S.STAR_RATING), S.REVIEW_DATE, C.SPLIT,
    )
    meta = {"vocab": vocab, "num_users": len(uix.labelsArray[0]), "num_items": len(iix.labelsArray[0]),
            "seq_len": seq_len, "num_features": num_features, "vocab_size": len(vocab)}
    return out, meta


def write(spark: SparkSession, root: str, features: DataFrame, meta: dict[str, Any]) -> None:
    """Write <root>/features (partitioned by split) and <root>/features_meta/{vocab,meta}.json."""
    io.write_parquet_atomic(features.repartition(4, F.col(S.REVIEW_ID)), io.dataset_path(root, C.FEATURES),
                            partition_by=[C.SPLIT])
    with io.publish_dir(spark, io.dataset_path(root, C.FEATURES_META)) as d:
        with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as fh:
            json.dump(meta["vocab"], fh)
        with open(os.path.join(d, "meta.json"), "w", encoding="utf-8") as fh:
            json.dump({k: v for k, v in meta.items() if k != "vocab"}, fh, indent=2)
