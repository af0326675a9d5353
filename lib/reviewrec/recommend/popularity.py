"""Popularity: mean rating damped towards the global mean (Bayesian average) and counts.

    bayes(i) = (sum of i's ratings + m * C) / (count(i) + m)

C is the mean rating over the scope (all reviews, or the item's category) and m the prior
weight (recsys.popularity.prior_weight): an item with few ratings stays near C, one with
many approaches its own mean.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from reviewrec import schema as S
from reviewrec.recommend.ids import number_rows

SCOPE = "scope"
SCOPE_OVERALL = "overall"
SCOPE_CATEGORY = "category"
COUNT = "n_ratings"
MEAN_RATING = "mean_rating"
BAYES = "bayes_rating"
RANK = "rank"


def bayesian_popularity(reviews: DataFrame, prior_weight: float, by_category: bool = False,
                        col_item: str = S.PRODUCT_ID, col_rating: str = S.STAR_RATING,
                        col_category: str = S.PRODUCT_CATEGORY) -> DataFrame:
    """Per item (and category when by_category): n_ratings, mean_rating, bayes_rating, rank.

    Input: reviews with `col_item`, `col_rating` (and `col_category`). Output: scope,
    product_category (null for the overall scope), product_id, n_ratings, mean_rating,
    bayes_rating, rank (1 = best within the scope; ties by count, then id).
    """
    if prior_weight < 0:
        raise ValueError(f"prior_weight must be >= 0, got {prior_weight}")
    keys = [col_category] if by_category else []
    r = reviews.where(F.col(col_rating).isNotNull())
    if by_category:
        r = r.withColumn(col_category, F.coalesce(F.col(col_category), F.lit("(none)")))
    prior = r.groupBy(*keys).agg(F.avg(col_rating).alias("_c")) if keys else r.agg(F.avg(col_rating).alias("_c"))
    stats = r.groupBy(*keys, col_item).agg(F.count(F.lit(1)).alias(COUNT), F.sum(col_rating).alias("_sum"))
    joined = stats.join(F.broadcast(prior), on=keys, how="inner") if keys else stats.crossJoin(F.broadcast(prior))
    bayes = (F.col("_sum") + F.lit(float(prior_weight)) * F.col("_c")) / (F.col(COUNT) + F.lit(float(prior_weight)))
    order = [F.col(BAYES).desc(), F.col(COUNT).desc(), F.col(col_item)]
    scored = joined.withColumn(MEAN_RATING, F.col("_sum") / F.col(COUNT)).withColumn(BAYES, bayes)
    if keys:
        ranked = scored.withColumn(RANK, F.row_number().over(Window.partitionBy(*keys).orderBy(*order)))
    else:  # one ranking over all items: numbered after a distributed sort, not in one task
        ranked = number_rows(scored, order, RANK, 1)
    return ranked.select(
        F.lit(SCOPE_CATEGORY if by_category else SCOPE_OVERALL).alias(SCOPE),
        (F.col(col_category) if by_category else F.lit(None).cast("string")).alias(S.PRODUCT_CATEGORY),
        F.col(col_item).alias(S.PRODUCT_ID), COUNT, MEAN_RATING, BAYES, F.col(RANK).cast("int").alias(RANK))

def popularity_table(reviews: DataFrame, prior_weight: float) -> DataFrame:
    """Overall and per-category Bayesian popularity in one table (see bayesian_popularity)."""
    return (bayesian_popularity(reviews, prior_weight, by_category=False)
            .unionByName(bayesian_popularity(reviews, prior_weight, by_category=True)))
