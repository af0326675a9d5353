"""Interaction sequences (Amazon Beauty 5-core format) as reviews, for the recommend job.

Input file: one line per user, `user_id item_id item_id ...`, items in time order. Each item
becomes a review (review_id `<user>-<position>`, star 5, review date = 2000-01-01 + position
days, so the job's time order is the file's), which the recommend job reads as implicit 5-core
data: it ranks with its own rankers and evaluates itself leave-last-out (recommend.evaluation:
the second-to-last item is the validation target, the last the test target, full ranking).

`evaluate` runs the job's ranking evaluation on such reviews for any rankers; the benchmark
(bench_recsys_beauty.py) runs the whole job. Used by bench_recsys_beauty.py and
tests/test_recommend_beauty.py (which put benchmarks/ on the import path).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from reviewrec import schema as S
from reviewrec.config import Config
from reviewrec.features.job import FeaturesParams
from reviewrec.recommend import evaluation, rankers
from reviewrec.recommend.ids import id_index
from reviewrec.recommend.params import RecommendParams

log = logging.getLogger(__name__)

EPOCH = "2000-01-01"
CATEGORY = "Beauty"


def read_sequences(spark: SparkSession, path: str, category: str = CATEGORY) -> DataFrame:
    """Text lines `user item item ...` -> reviews: review_id, customer_id, product_id,
    star_rating (5), review_date (EPOCH + position days), product_category."""
    toks = F.split(F.trim(F.col("value")), r"\s+")
    lines = (spark.read.text(path)
             .where(F.trim(F.col("value")) != "")
             .select(toks[0].alias("_u"), F.slice(toks, 2, 1 << 30).alias("_items")))
    bad = (lines.where(F.col("_u").cast("long").isNull() | F.exists("_items", lambda x: x.cast("long").isNull()))
           .limit(1).collect())
    if bad:
        raise ValueError(f"{path}: line for user {bad[0]['_u']!r} has a non-integer id: {bad[0]['_items'][:5]}...")
    return (lines
            .select("_u", F.posexplode("_items").alias("_p", "_i"))
            .select(F.concat_ws("-", F.col("_u"), F.lpad(F.col("_p").cast("string"), 5, "0")).alias(S.REVIEW_ID),
                    F.col("_u").alias(S.CUSTOMER_ID), F.col("_i").alias(S.PRODUCT_ID),
                    F.lit(5).cast("int").alias(S.STAR_RATING),
                    F.date_add(F.lit(EPOCH).cast("date"), F.col("_p")).alias(S.REVIEW_DATE),
                    F.lit(category).alias(S.PRODUCT_CATEGORY)))


def evaluate(spark: SparkSession, reviews: DataFrame, cfg: Config, methods: Sequence[str] | None = None,
             phases: Sequence[str] | None = None, root: str = "/nonexistent") -> dict[str, Any]:
    """The recommend job's ranking evaluation (recommend.evaluation) of `methods` on `reviews`,
    with the job's id space and `cfg`'s recsys settings."""
    p = RecommendParams.from_config(cfg["recsys"])
    index = id_index(spark, root, reviews, FeaturesParams.from_config(cfg))
    events = rankers.interaction_events(reviews, index).cache()
    out = evaluation.evaluate_rankers(events, p, index.n_users, index.n_items, methods, phases)
    events.unpersist()
    return out
