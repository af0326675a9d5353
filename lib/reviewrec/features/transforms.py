"""Feature transforms: splits, id indexers, TF-IDF, vocabulary, token-id sequences, labels.

All are DataFrame -> DataFrame (or fit on a DataFrame -> a Spark ML model) with plain values
as arguments. Estimators are fitted on the training split only, so validation and test rows
see what a model in production would see: unseen customers/products get the reserved index
(= the index size, StringIndexer's handleInvalid="keep"), unseen lemmas the OOV id 1.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.ml.feature import IDF, CountVectorizerModel, HashingTF, IDFModel, StringIndexer, StringIndexerModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from reviewrec import schema as S

TF = "__tf"
TOKEN = "token"
TOKEN_ID = "token_id"


# -- splits ----------------------------------------------------------------------------------
def time_cutoffs(date_counts: Sequence[tuple[dt.date, int]], train_fraction: float,
                 val_fraction: float) -> tuple[dt.date, dt.date]:
    """(last train date, last val date) from (date, reviews) counts.

    Train = dates <= the first date at which the cumulative share reaches train_fraction; val =
    later dates up to where it reaches train_fraction + val_fraction; test = the rest. A day is
    never split across sets, so the shares are approximate when a day is large.
    """
    if not date_counts:
        raise ValueError("time split: no rows")
    if train_fraction <= 0 or val_fraction < 0 or train_fraction + val_fraction > 1:
        raise ValueError(f"time split: train_fraction {train_fraction} + val_fraction {val_fraction} "
                         "must be in (0, 1]")
    ordered = sorted(date_counts)
    total = sum(n for _, n in ordered)
    cut_train = cut_val = ordered[-1][0]
    seen = 0
    found_train = found_val = False
    for day, n in ordered:
        seen += n
        if not found_train and seen >= train_fraction * total - 1e-9:
            cut_train, found_train = day, True
        if not found_val and seen >= (train_fraction + val_fraction) * total - 1e-9:
            cut_val, found_val = day, True
            break
    return cut_train, max(cut_val, cut_train)


def assign_time_split(df: DataFrame, cut_train: dt.date, cut_val: dt.date,
                      col_date: str = S.REVIEW_DATE, col_out: str = S.SPLIT) -> DataFrame:
    """`col_out` = train (date <= cut_train), val (<= cut_val), test (later)."""
    d = F.col(col_date)
    split = (F.when(d <= F.lit(cut_train), F.lit(S.SPLIT_TRAIN))
             .when(d <= F.lit(cut_val), F.lit(S.SPLIT_VAL))
             .otherwise(F.lit(S.SPLIT_TEST)))
    return df.withColumn(col_out, split)


def time_split(df: DataFrame, train_fraction: float, val_fraction: float,
               col_date: str = S.REVIEW_DATE, col_out: str = S.SPLIT) -> tuple[DataFrame, dict[str, str]]:
    """`col_out` = train / val / test by date: the oldest `train_fraction` of the rows train, the
    next `val_fraction` val, the rest test (whole days; see time_cutoffs). Collects one count per
    day. Returns (df, {"method": "time", "train_until": ISO date, "val_until": ISO date})."""
    counts = [(r[col_date], int(r["count"])) for r in df.groupBy(col_date).count().collect()]
    cut_train, cut_val = time_cutoffs(counts, train_fraction, val_fraction)
    info = {"method": "time", "train_until": cut_train.isoformat(), "val_until": cut_val.isoformat()}
    return assign_time_split(df, cut_train, cut_val, col_date, col_out), info


def assign_random_split(df: DataFrame, train_fraction: float, val_fraction: float, seed: int,
                        col_key: str = S.REVIEW_ID, col_out: str = S.SPLIT) -> DataFrame:
    """`col_out` from a seeded hash of `col_key`: the same row lands in the same split whatever
    the partitioning (F.rand would depend on it)."""
    u = F.pmod(F.xxhash64(F.col(col_key), F.lit(seed)), F.lit(1_000_000)) / F.lit(1_000_000.0)
    split = (F.when(u < F.lit(train_fraction), F.lit(S.SPLIT_TRAIN))
             .when(u < F.lit(train_fraction + val_fraction), F.lit(S.SPLIT_VAL))
             .otherwise(F.lit(S.SPLIT_TEST)))
    return df.withColumn(col_out, split)


# -- ids and labels ----------------------------------------------------------------------------
def fit_indexer(train: DataFrame, col_in: str, col_out: str) -> StringIndexerModel:
    """StringIndexer on the training rows; ids by descending frequency (ties: alphabetical);
    unseen values -> index = number of labels (the reserved index)."""
    return StringIndexer(inputCol=col_in, outputCol=col_out, handleInvalid="keep",
                         stringOrderType="frequencyDesc").fit(train)


def apply_indexer(df: DataFrame, model: StringIndexerModel) -> DataFrame:
    out = model.getOutputCol()
    return model.transform(df).withColumn(out, F.col(out).cast(T.IntegerType()))


def star_labels(df: DataFrame, col_star: str = S.STAR_RATING) -> DataFrame:
    """label = star - 1 (int 0..4); label_onehot = array<float> of length 5."""
    label = (F.col(col_star) - 1).cast(T.IntegerType())
    onehot = F.transform(F.sequence(F.lit(0), F.lit(S.NUM_STAR_CLASSES - 1)),
                         lambda i: F.when(i == label, F.lit(1.0)).otherwise(F.lit(0.0)).cast(T.FloatType()))
    return df.withColumn(S.LABEL, label).withColumn(S.LABEL_ONEHOT, onehot)


# -- TF-IDF ------------------------------------------------------------------------------------
def hashing_tf(df: DataFrame, num_features: int, col_in: str = S.LEMMAS, col_out: str = TF) -> DataFrame:
    return HashingTF(inputCol=col_in, outputCol=col_out, numFeatures=num_features).transform(df)


def fit_idf(train_tf: DataFrame, min_doc_freq: int, col_in: str = TF, col_out: str = S.TFIDF) -> IDFModel:
    return IDF(inputCol=col_in, outputCol=col_out, minDocFreq=min_doc_freq).fit(train_tf)


# -- vocabulary and sequences ------------------------------------------------------------------
def fit_vocabulary(train: DataFrame, min_count: int, vocab_size: int, col_in: str = S.LEMMAS) -> CountVectorizerModel:
    """CountVectorizer's vocabulary of the training lemmas: terms in >= min_count training
    reviews, at most vocab_size of them, most frequent (in the corpus) first. Terms of equal
    frequency are ordered by the term itself: CountVectorizer leaves them in the order the
    shuffle delivered them, which differs between runs and between local mode and a cluster,
    and so would every sequence id."""
    terms = train.select(F.explode(F.col(col_in)).alias("__t")).groupBy("__t").agg(F.count("*").alias("__tf"))
    docs = (train.select(F.explode(F.array_distinct(F.col(col_in))).alias("__t"))
            .groupBy("__t").agg(F.count("*").alias("__df")))
    rows = (terms.join(docs, on="__t").where(F.col("__df") >= min_count)
            .orderBy(F.col("__tf").desc(), F.col("__t")).limit(vocab_size).select("__t").collect())
    return CountVectorizerModel.from_vocabulary([r[0] for r in rows], inputCol=col_in, outputCol="__counts")


def vocabulary_frame(vocab: Sequence[str], spark_df: DataFrame) -> DataFrame:
    """token, token_id (int, 2 + rank in `vocab`: 0 is padding, 1 out-of-vocabulary)."""
    spark = spark_df.sparkSession
    rows = [(t, i + 2) for i, t in enumerate(vocab)]
    schema = T.StructType([T.StructField(TOKEN, T.StringType(), False),
                           T.StructField(TOKEN_ID, T.IntegerType(), False)])
    return spark.createDataFrame(rows, schema)


def pad_truncate(seq: F.Column, seq_len: int) -> F.Column:
    """Keep the first seq_len ids, then pad with 0 at the end to exactly seq_len."""
    head = F.slice(seq, 1, seq_len)
    pad = F.array_repeat(F.lit(S.SEQ_PAD_ID), F.lit(seq_len) - F.size(head))
    return F.concat(head, pad)


def token_sequences(df: DataFrame, vocab_df: DataFrame, seq_len: int, col_in: str = S.LEMMAS,
                    col_key: str = S.REVIEW_ID, col_out: str = S.SEQ) -> DataFrame:
    """`col_in` lemmas -> `col_out` array<int> of length seq_len (ids from `vocab_df`, OOV = 1,
    padding = 0). Built-ins only: posexplode, a broadcast hash join on the vocabulary, and a
    per-review regroup ordered by position; rows with no lemmas get all padding."""
    exploded = df.select(F.col(col_key), F.posexplode(F.col(col_in)).alias("__pos", TOKEN))
    ids = (exploded
           .join(F.broadcast(vocab_df), on=TOKEN, how="left")
           .withColumn(TOKEN_ID, F.coalesce(F.col(TOKEN_ID), F.lit(S.SEQ_OOV_ID)))
           .groupBy(col_key)
           .agg(F.array_sort(F.collect_list(F.struct(F.col("__pos"), F.col(TOKEN_ID)))).alias("__pairs"))
           .select(F.col(col_key), F.transform(F.col("__pairs"), lambda x: x[TOKEN_ID]).alias("__ids")))
    empty = F.array().cast(T.ArrayType(T.IntegerType()))
    return (df
            .join(ids, on=col_key, how="left")
            .withColumn(col_out, pad_truncate(F.coalesce(F.col("__ids"), empty), seq_len))
            .drop("__ids"))
