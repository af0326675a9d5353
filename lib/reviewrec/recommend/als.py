"""Spark ML ALS as the comparator: implicit (ranking) and explicit (rating prediction)."""
from __future__ import annotations

from pyspark.ml.recommendation import ALS
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from reviewrec.recommend.cf import PRED, SCORE, SRC_ALS, VALUE, exclude_seen, top_n
from reviewrec.recommend.ids import I, U


def _als(implicit: bool, rank: int, reg: float, alpha: float, iters: int, seed: int) -> ALS:
    return ALS(userCol=U, itemCol=I, ratingCol=VALUE, implicitPrefs=implicit, rank=rank, regParam=reg,
               alpha=alpha, maxIter=iters, seed=seed, coldStartStrategy="drop", nonnegative=False)


def _int_ids(df: DataFrame) -> DataFrame:
    # ALS needs int ids; our indices are contiguous from 0, so they fit unless there are 2^31 ids.
    return df.select(F.col(U).cast("int").alias(U), F.col(I).cast("int").alias(I),
                     F.col(VALUE).cast("float").alias(VALUE))


def als_top_n(interactions: DataFrame, n: int, rank: int, reg: float, alpha: float, iters: int, seed: int,
              popular: DataFrame | None = None) -> DataFrame:
    """Implicit ALS top-n per user, seen items excluded. Output: u, rank, i, score, source.

    recommendForAllUsers asks for n + (the largest number of items one user has seen), so
    excluding seen items can never leave a list short.
    """
    data = _int_ids(interactions).cache()
    model = _als(True, rank, reg, alpha, iters, seed).fit(data)
    max_seen = int(data.groupBy(U).count().agg(F.max("count")).first()[0] or 0)
    recs = (model.recommendForAllUsers(n + max_seen)
            .select(F.col(U).cast("long").alias(U), F.explode("recommendations").alias("_r"))
            .select(U, F.col("_r")[I].cast("long").alias(I), F.col("_r")["rating"].cast("double").alias(SCORE)))
    seen = interactions.select(U, I)
    return top_n(exclude_seen(recs, seen), n, SRC_ALS, seen=seen if popular is not None else None, popular=popular)


def als_predict(train: DataFrame, pairs: DataFrame, rank: int, reg: float, iters: int, seed: int) -> DataFrame:
    """Explicit ALS rating predictions for (u, i) pairs; pairs with an unseen user or item are
    dropped (cold start). Output: u, i, pred."""
    model = _als(False, rank, reg, 1.0, iters, seed).fit(_int_ids(train))
    p = model.transform(pairs.select(F.col(U).cast("int").alias(U), F.col(I).cast("int").alias(I)))
    return p.select(F.col(U).cast("long").alias(U), F.col(I).cast("long").alias(I),
                    F.least(F.greatest(F.col("prediction"), F.lit(1.0)), F.lit(5.0)).cast("double").alias(PRED))
