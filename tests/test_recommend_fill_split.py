"""The rating evaluation on a seeded random split (recommend.job.random_split, time_split_eval's
`split`): the split is reproducible, about 80/10/10, one part per review, independent of the
review dates; the evaluation on it scores every method with its paired intervals."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from pyspark.sql import functions as F

from reviewrec import schema as S
from reviewrec.config import load_config
from reviewrec.recommend import job
from reviewrec.recommend.ids import I, U, IdIndex
from reviewrec.recommend.params import RecommendParams
from reviewrec.recommend.scoring import CFScorer

pytestmark = [pytest.mark.spark, pytest.mark.slow]

N_USERS, N_ITEMS, PER_USER = 40, 12, 8
SCHEMA = ("review_id string, customer_id string, product_id string, star_rating int, review_date date, "
          "product_category string")


def _reviews(spark):
    """Stars = 3.6 + a user bias + an item bias + noise; review dates spread over 300 days."""
    rng = np.random.default_rng(3)
    ub, ib = rng.normal(0, 0.8, N_USERS), rng.normal(0, 0.8, N_ITEMS)
    rows = []
    for u in range(N_USERS):
        for it in rng.choice(N_ITEMS, PER_USER, replace=False):
            star = int(np.clip(np.rint(3.6 + ub[u] + ib[it] + rng.normal(0, 0.5)), 1, 5))
            day = dt.date(2015, 1, 1) + dt.timedelta(days=int(rng.integers(0, 300)))
            rows.append((f"R{len(rows):05d}", f"C{u:03d}", f"P{it:02d}", star, day, "Digital_Software"))
    return spark.createDataFrame(rows, SCHEMA)


def _parts(df) -> dict[str, str]:
    rows = df.select(S.REVIEW_ID, S.SPLIT).collect()
    out = {r[0]: r[1] for r in rows}
    assert len(out) == len(rows), "a review is in more than one part"
    return out


def test_random_split_is_seeded_80_10_10_one_part_per_review(spark) -> None:
    n = 20_000
    many = spark.range(n).select(F.concat(F.lit("R"), F.col("id").cast("string")).alias(S.REVIEW_ID))
    a = job.random_split(many, 11).withColumnRenamed(S.SPLIT, "a")
    again = job.random_split(many.repartition(7), 11).withColumnRenamed(S.SPLIT, "again")
    other = job.random_split(many, 12).withColumnRenamed(S.SPLIT, "other")
    both = a.join(again, on=S.REVIEW_ID, how="full").join(other, on=S.REVIEW_ID, how="full")
    row = both.agg(F.count(F.lit(1)).alias("rows"), F.countDistinct(S.REVIEW_ID).alias("ids"),
                   F.sum((F.col("a") != F.col("again")).cast("int")).alias("unlike_again"),
                   F.sum((F.col("a") != F.col("other")).cast("int")).alias("unlike_other"),
                   *[F.avg((F.col("a") == s).cast("double")).alias(s) for s in S.SPLITS],
                   F.sum(F.col("a").isin(*S.SPLITS).cast("int")).alias("named")).first()
    assert row["rows"] == row["ids"] == row["named"] == n  # one part per review, no review lost
    assert row["unlike_again"] == 0  # same seed, same split, whatever the partitioning
    assert row["unlike_other"] > 0.2 * n  # another seed, another split (two draws differ on ~34%)
    assert row[S.SPLIT_TRAIN] == pytest.approx(0.8, abs=0.015)
    assert row[S.SPLIT_VAL] == pytest.approx(0.1, abs=0.01)
    assert row[S.SPLIT_TEST] == pytest.approx(0.1, abs=0.01)
    with pytest.raises(ValueError, match="no test"):
        job.random_split(many, 11, 0.9, 0.1)


def test_eval_on_the_random_split_scores_every_method_with_intervals(spark) -> None:
    reviews = _reviews(spark).cache()
    split = job.random_split(reviews, 5).cache()
    parts = _parts(split)
    dates = {r[0]: r[1] for r in reviews.select(S.REVIEW_ID, S.REVIEW_DATE).collect()}
    by_part = {s: [dates[k] for k, v in parts.items() if v == s] for s in S.SPLITS}
    assert min(by_part[S.SPLIT_TEST]) < max(by_part[S.SPLIT_TRAIN])  # not a split by date
    users = reviews.select(S.CUSTOMER_ID).distinct().withColumn(
        U, F.substring(S.CUSTOMER_ID, 2, 3).cast("long"))
    items = reviews.select(S.PRODUCT_ID).distinct().withColumn(I, F.substring(S.PRODUCT_ID, 2, 2).cast("long"))
    index = IdIndex(users, items, N_USERS, N_ITEMS, N_USERS, N_ITEMS, "test")
    cfg = load_config([], ["recsys.als.iters=1", "recsys.als.rank=2", "recsys.neighbors.k=5"])
    p = RecommendParams.from_config(cfg["recsys"])

    out = job.time_split_eval(spark, reviews, p, CFScorer(), index, split=split)

    n_test = sum(v == S.SPLIT_TEST for v in parts.values())
    assert out["test_reviews"] == n_test and out["train_reviews"] == len(parts) - n_test
    assert out["train_until"] is None
    warm = out["test_pairs_warm_item"]
    assert 0 < warm <= out["test_pairs"] == n_test
    methods = out["methods"]
    assert set(methods) == {"filled", "bias", "bias_als", "cf_only", "als_explicit", "als_explicit_filled",
                            "global_mean", "item_bayes"}
    full = {m for m, e in methods.items() if e["coverage"] == 1.0}
    assert full >= {"filled", "bias", "bias_als", "als_explicit_filled", "global_mean", "item_bayes"}
    assert set(out["intervals"]) == full
    for m in full:
        refs = out["intervals"][m]
        assert set(refs) == {"global_mean", "bias"} - {m}
        for ref, iv in refs.items():
            assert iv["n"] == warm == methods[m]["n"]
            assert iv["rmse_diff"] == pytest.approx(methods[m]["rmse"] - methods[ref]["rmse"], abs=1e-9)
            assert iv["rmse_diff_lo"] <= iv["rmse_diff_hi"] and iv["mae_diff_lo"] <= iv["mae_diff_hi"]
    # the stars carry user and item biases: the bias baseline beats the global mean, outside the interval
    assert out["intervals"]["bias"]["global_mean"]["rmse_diff_hi"] < 0
    va = out["validation"]
    assert va["chosen"] in job.FILLS and set(va["rmse"]) == {*job.FILLS, "global_mean"}
    assert va["validation_pairs"] > 0 and va["damping_user"] >= 0 and va["damping_item"] >= 0
    with pytest.raises(ValueError, match="split"):
        job.time_split_eval(spark, reviews, p, CFScorer(), index, split=reviews)
    for df in (split, reviews):
        df.unpersist()
