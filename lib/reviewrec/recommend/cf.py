"""Collaborative filtering on Spark: user-CF scores and rating predictions, neighbour tables
(cosine, next-item transitions), recency weights, top-N with popular padding.

The top-N rankers (item-CF, user-CF, their blend) score blocks of users with sparse products
in recommend.rankers; the tables here are their inputs.

Internal tables use contiguous long indices (u for users, i for items; recommend.ids) so the
blockwise similarity (recommend.similarity) can lay rows and columns out as CSR blocks:

    interactions  u, i, value       (value: a star, a centred star, 1 for implicit, or a
                                     recency weight)
    neighbors     row, neighbor, sim (from similarity.topk_similarity)
    scores        u, i, score, support
    top-N         u, rank, i, score, source
"""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from reviewrec.recommend import similarity
from reviewrec.recommend.ids import I, U

VALUE = "value"
SCORE = "score"
SUPPORT = "support"
RANK = "rank"
SOURCE = "source"
PRED = "pred"
WSUM = "wsum"
MEAN = "mean"
PRIO = "_prio"

SRC_USER_CF = "user_cf"
SRC_ITEM_CF = "item_cf"
SRC_BLEND = "blend"
SRC_POPULAR = "popular"
SRC_ALS = "als"
SRC_MODEL = "model"


def centre(interactions: DataFrame, col_value: str = VALUE) -> tuple[DataFrame, DataFrame]:
    """Subtract each user's mean value. Returns (centred interactions, per-user means u, mean)."""
    means = interactions.groupBy(U).agg(F.avg(col_value).alias(MEAN))
    centred = (interactions
               .join(means, on=U, how="inner")
               .select(U, I, (F.col(col_value) - F.col(MEAN)).alias(col_value)))
    return centred, means


def user_neighbors(interactions: DataFrame, params: similarity.SimilarityParams, n_users: int | None = None,
                   n_items: int | None = None) -> DataFrame:
    """Top-k users by (shrunk) cosine of their interaction vectors: row=u, neighbor=v, sim."""
    return similarity.topk_similarity(interactions, params, n_users, n_items, col_row=U, col_col=I, col_value=VALUE)


def item_neighbors(interactions: DataFrame, params: similarity.SimilarityParams, n_items: int | None = None,
                   n_users: int | None = None) -> DataFrame:
    """Top-k items by (shrunk) cosine of their user vectors: row=i, neighbor=j, sim."""
    return similarity.topk_similarity(interactions, params, n_items, n_users, col_row=I, col_col=U, col_value=VALUE)


def exclude_seen(scores: DataFrame, seen: DataFrame) -> DataFrame:
    """Drop (u, i) pairs the user already interacted with."""
    return scores.join(seen.select(U, I).distinct(), on=[U, I], how="left_anti")


def user_cf_scores(neighbors: DataFrame, interactions: DataFrame, seen: DataFrame | None = None) -> DataFrame:
    """score(u, i) = sum over neighbours v of u who have i of sim(u, v) * value(v, i).

    Also returns wsum = sum of |sim| over those neighbours and support = their count, from
    which rating predictions are made (predict_ratings). Items in `seen` are excluded.
    Output: u, i, score, wsum, support.
    """
    nb = neighbors.select(F.col(similarity.ROW).alias(U), F.col(similarity.NEIGHBOR).alias("_v"), F.col(similarity.SIM))
    theirs = interactions.select(F.col(U).alias("_v"), F.col(I), F.col(VALUE))
    scores = (nb
              .join(theirs, on="_v", how="inner")
              .groupBy(U, I)
              .agg(F.sum(F.col(similarity.SIM) * F.col(VALUE)).alias(SCORE),
                   F.sum(F.abs(F.col(similarity.SIM))).alias(WSUM),
                   F.count(F.lit(1)).alias(SUPPORT)))
    if seen is not None:
        scores = exclude_seen(scores, seen)
    return scores.select(U, I, SCORE, WSUM, SUPPORT)


def transition_neighbors(events: DataFrame, shrink: float = 0.0, col_pos: str = "pos", k: int | None = None
                         ) -> DataFrame:
    """Sequential "next item" similarity: row=i, neighbor=j, sim = c(i, j) / (c(i) + shrink).

    c(i, j) counts how often a user's item j directly follows item i (positions p, p + 1 of
    the same user's time-ordered events, j != i) and c(i) = sum_j c(i, j). Input: u, i, pos.
    The rows are directional (i -> j); `k` keeps the k most frequent successors of each item
    (ties: the lower index), None keeps them all (a popular item's list grows with the data).
    """
    a = events.select(F.col(U), F.col(I).alias(similarity.ROW), F.col(col_pos).alias("_p"))
    b = events.select(F.col(U), F.col(I).alias(similarity.NEIGHBOR), (F.col(col_pos) - F.lit(1)).alias("_p"))
    counts = (a.join(b, on=[U, "_p"], how="inner")
              .where(F.col(similarity.ROW) != F.col(similarity.NEIGHBOR))
              .groupBy(similarity.ROW, similarity.NEIGHBOR).agg(F.count(F.lit(1)).cast("double").alias("_c")))
    out_deg = counts.groupBy(similarity.ROW).agg(F.sum("_c").alias("_n"))
    out = (counts.join(out_deg, on=similarity.ROW, how="inner")
           .select(similarity.ROW, similarity.NEIGHBOR,
                   (F.col("_c") / (F.col("_n") + F.lit(float(shrink)))).alias(similarity.SIM)))
    return out if k is None else similarity.topk_from_similarities(out, k)


def add_neighbors(a: DataFrame, b: DataFrame, b_weight: float) -> DataFrame:
    """row, neighbor, sim = sim_a + b_weight * sim_b over the union of both neighbour lists."""
    return (a.select(similarity.ROW, similarity.NEIGHBOR, similarity.SIM)
            .unionByName(b.select(similarity.ROW, similarity.NEIGHBOR,
                                  (F.col(similarity.SIM) * F.lit(float(b_weight))).alias(similarity.SIM)))
            .groupBy(similarity.ROW, similarity.NEIGHBOR).agg(F.sum(similarity.SIM).alias(similarity.SIM)))


def recency_weights(events: DataFrame, tau: float, col_pos: str = "pos", col_len: str = "n") -> DataFrame:
    """value = exp(-(n - 1 - pos) / tau): the most recent of a user's n events weighs 1.

    tau <= 0 gives every event weight 1. Input: u, i, pos (0-based, time order), n.
    Output: u, i, value (the sum when an item repeats).
    """
    if tau <= 0:
        w = F.lit(1.0)
    else:
        w = F.exp(-(F.col(col_len) - F.lit(1) - F.col(col_pos)) / F.lit(float(tau)))
    return events.groupBy(U, I).agg(F.sum(w).alias(VALUE))


def top_n(scores: DataFrame, n: int, source: str, seen: DataFrame | None = None,
          popular: DataFrame | None = None, popular_pad: int = 50) -> DataFrame:
    """Top-n items per user by score (ties: item index ascending), padded with popular items.

    `popular` (i, score) fills lists shorter than n for every user in `seen`, with its own
    items in popularity order after all scored items, excluding seen items. Only the best
    n + popular_pad popular items are considered (a user who has seen all of them gets a
    shorter list). Output: u, rank (1-based int), i, score, source.
    """
    cands = scores.select(U, I, F.col(SCORE).cast("double").alias(SCORE), F.lit(source).alias(SOURCE),
                          F.lit(0).alias(PRIO))
    if popular is not None:
        if seen is None:
            raise ValueError("top_n: padding with popular items needs `seen` (it defines the users)")
        best = popular.orderBy(F.col(SCORE).desc(), F.col(I)).limit(n + popular_pad)
        users = seen.select(U).distinct()
        pad = (users
               .crossJoin(F.broadcast(best.select(I, F.col(SCORE).cast("double").alias(SCORE))))
               .join(seen.select(U, I), on=[U, I], how="left_anti")
               .select(U, I, SCORE, F.lit(SRC_POPULAR).alias(SOURCE), F.lit(1).alias(PRIO)))
        first = Window.partitionBy(U, I).orderBy(PRIO)
        cands = (cands.unionByName(pad)
                 .withColumn("_first", F.row_number().over(first))
                 .where(F.col("_first") == 1)
                 .drop("_first"))
    w = Window.partitionBy(U).orderBy(F.col(PRIO), F.col(SCORE).desc(), F.col(I))
    return (cands
            .withColumn(RANK, F.row_number().over(w))
            .where(F.col(RANK) <= n)
            .select(U, F.col(RANK).cast("int").alias(RANK), I, SCORE, SOURCE))


def predict_ratings(scores: DataFrame, user_means: DataFrame | None, lo: float = 1.0, hi: float = 5.0) -> DataFrame:
    """Rating prediction from CF scores: (mean_u +) score / wsum, clipped to [lo, hi].

    With centred values pass the user means (u, mean) so the prediction adds them back.
    Output: u, i, pred, support.
    """
    base = scores.where(F.col(WSUM) > 0)
    if user_means is not None:
        base = base.join(user_means, on=U, how="left")
        raw = F.coalesce(F.col(MEAN), F.lit(0.0)) + F.col(SCORE) / F.col(WSUM)
    else:
        raw = F.col(SCORE) / F.col(WSUM)
    clipped = F.least(F.greatest(raw, F.lit(lo)), F.lit(hi))
    return base.select(U, I, clipped.alias(PRED), SUPPORT)
