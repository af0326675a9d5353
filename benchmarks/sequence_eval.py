"""Leave-last-out top-N evaluation on interaction sequences (Amazon Beauty 5-core format).

Input file: one line per user, `user_id item_id item_id ...`, items in time order. For the
validation phase each user's second-to-last item is the target and the items before it the
history; for the test phase the last item is the target and everything before it the
history (the usual protocol of SASRec and its successors). Ranking is against all items
(full ranking) with the user's history excluded; lists shorter than N are padded with the
most popular unseen items, so every method ranks the whole catalogue.

Used by bench_recsys_beauty.py and tests/test_recommend_beauty.py (which put benchmarks/ on the
import path); the recommend job does not need it.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from reviewrec.recommend.similarity import SimilarityParams
from reviewrec.recommend import cf
from reviewrec.recommend.als import als_top_n
from reviewrec.recommend.metrics import ranking_metrics

log = logging.getLogger(__name__)

POS = "pos"
N = "n"
PHASES = ("valid", "test")
METHODS = ("popularity", "user_cf", "item_cf", "blend", "als")


@dataclass(frozen=True)
class SeqSettings:
    """CF and ALS settings of the sequence evaluation (tuned on the validation item)."""

    user_k: int = 100
    user_shrink: float = 10.0
    item_k: int = 200
    item_shrink: float = 50.0
    recency_tau: float = 2.0
    # item-CF adds transition_weight * P(next item = j | item i) (cf.transition_neighbors,
    # shrunk by transition_shrink) to the cosine of i and j; 0 = cosine only.
    transition_weight: float = 1.0
    transition_shrink: float = 10.0
    blend_user_weight: float = 0.3
    block_size: int = 4096
    max_pairs: int = 5_000_000
    top_n: int = 20
    als_rank: int = 64
    als_reg: float = 0.05
    als_alpha: float = 20.0
    als_iters: int = 15
    seed: int = 7


def read_sequences(spark: SparkSession, path: str) -> DataFrame:
    """Text lines `user item item ...` -> u (long), i (long), pos (0-based), n (items of the user)."""
    toks = F.split(F.trim(F.col("value")), r"\s+")
    lines = (spark.read.text(path)
             .where(F.trim(F.col("value")) != "")
             .select(toks[0].cast("long").alias(cf.U), F.slice(toks, 2, 1 << 30).alias("_items")))
    bad = lines.where(F.col(cf.U).isNull() | F.exists("_items", lambda x: x.cast("long").isNull())).limit(1).collect()
    if bad:
        raise ValueError(f"{path}: line for user {bad[0][cf.U]!r} has a non-integer id: {bad[0]['_items'][:5]}...")
    return (lines
            .select(cf.U, F.posexplode("_items").alias(POS, "_i"), F.size("_items").alias(N))
            .select(cf.U, F.col("_i").cast("long").alias(cf.I), F.col(POS).cast("int").alias(POS), F.col(N).cast("int").alias(N)))


def leave_last_out(events: DataFrame, phase: str) -> tuple[DataFrame, DataFrame]:
    """(history events u, i, pos, n, truth u, i) for phase "valid" or "test".

    Users with fewer than 3 items have no validation/test target and are left out.
    """
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    cut = 2 if phase == "valid" else 1
    e = events.where(F.col(N) >= 3)
    hist = e.where(F.col(POS) < F.col(N) - cut).withColumn(N, F.col(N) - cut)
    truth = e.where(F.col(POS) == F.col(N) - cut).select(cf.U, cf.I)
    return hist, truth


def _timed(name: str, fn, timings: dict[str, float]):  # noqa: ANN001, ANN202
    t0 = time.perf_counter()
    out = fn()
    timings[name] = round(time.perf_counter() - t0, 2)
    log.info("sequence eval: %s in %.1fs", name, timings[name])
    return out


def evaluate(spark: SparkSession, events: DataFrame, phase: str, s: SeqSettings,
             methods: tuple[str, ...] = METHODS, ks: tuple[int, ...] = (10, 20)) -> dict[str, Any]:
    """Metrics (HR/NDCG/Recall@k, coverage) of every method on one leave-last-out phase."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {METHODS}")
    hist, truth = leave_last_out(events, phase)
    hist = hist.cache()
    truth = truth.cache()
    n_items = int(events.agg(F.max(cf.I)).first()[0]) + 1
    n_users = int(events.agg(F.max(cf.U)).first()[0]) + 1
    binary = hist.groupBy(cf.U, cf.I).agg(F.lit(1.0).alias(cf.VALUE)).cache()
    seen = binary.select(cf.U, cf.I)
    popular = binary.groupBy(cf.I).agg(F.count(F.lit(1)).cast("double").alias(cf.SCORE)).cache()
    timings: dict[str, float] = {}
    results: dict[str, Any] = {}
    recs: dict[str, DataFrame] = {}
    user_scores = item_scores = None

    def metrics(name: str, df: DataFrame) -> None:
        results[name] = _timed(name, lambda: ranking_metrics(df, truth, ks, n_items), timings)
        log.info("%s %s: %s", phase, name, {k: round(v, 4) for k, v in results[name].items()})

    if "popularity" in methods:
        nothing = spark.createDataFrame([], f"{cf.U} long, {cf.I} long, {cf.SCORE} double")
        recs["popularity"] = cf.top_n(nothing, s.top_n, cf.SRC_POPULAR, seen=seen, popular=popular)
        metrics("popularity", recs["popularity"])
    if "user_cf" in methods or "blend" in methods:
        params = SimilarityParams(k=s.user_k, block_size=s.block_size, max_pairs=s.max_pairs, shrink=s.user_shrink)
        nb = cf.user_neighbors(binary, params, n_users, n_items).cache()
        user_scores = cf.user_cf_scores(nb, binary, seen).cache()
        if "user_cf" in methods:
            metrics("user_cf", cf.top_n(user_scores, s.top_n, cf.SRC_USER_CF, seen, popular))
    if "item_cf" in methods or "blend" in methods:
        params = SimilarityParams(k=s.item_k, block_size=s.block_size, max_pairs=s.max_pairs, shrink=s.item_shrink)
        inb = cf.item_neighbors(binary, params, n_items, n_users)
        if s.transition_weight:
            inb = cf.add_neighbors(inb, cf.transition_neighbors(hist, s.transition_shrink), s.transition_weight)
        inb = inb.cache()
        weights = cf.recency_weights(hist, s.recency_tau)
        item_scores = cf.item_cf_scores(inb, weights, seen).cache()
        if "item_cf" in methods:
            metrics("item_cf", cf.top_n(item_scores, s.top_n, cf.SRC_ITEM_CF, seen, popular))
    if "blend" in methods:
        assert user_scores is not None and item_scores is not None
        metrics("blend", cf.top_n(cf.blend(user_scores, item_scores, s.blend_user_weight), s.top_n,
                                  cf.SRC_BLEND, seen, popular))
    if "als" in methods:
        metrics("als", als_top_n(binary, s.top_n, s.als_rank, s.als_reg, s.als_alpha, s.als_iters, s.seed,
                                 popular=popular).drop(cf.SOURCE))
    for df in (hist, truth, binary, popular):
        df.unpersist()
    return {"phase": phase, "settings": asdict(s), "users": n_users, "items": n_items,
            "metrics": results, "seconds": timings}
