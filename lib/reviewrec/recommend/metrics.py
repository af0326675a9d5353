"""Ranking metrics on top-N lists and rating-error metrics, computed as Spark aggregations.

Top-N lists: u, rank (1-based), i. Truth: u, i (one or more relevant items per user). Every
user in the truth counts, including users with no list (they score 0). With one relevant
item per user (leave-last-out), HR@k = Recall@k.

    HR@k      share of users with at least one relevant item in their top k
    Recall@k  mean over users of |relevant in top k| / |relevant|
    NDCG@k    mean of DCG@k / IDCG@k, DCG = sum over hits of 1 / log2(rank + 1)
    coverage@k  distinct items in all top-k lists / n_items
"""
from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F

from reviewrec.recommend.cf import RANK
from reviewrec.recommend.ids import I, U


def ranking_metrics(recs: DataFrame, truth: DataFrame, ks: Sequence[int] = (10, 20), n_items: int | None = None,
                    col_user: str = U, col_item: str = I, col_rank: str = RANK) -> dict[str, float]:
    """HR@k, NDCG@k, Recall@k (and coverage@k when n_items is given) for every k in ks."""
    t = truth.select(F.col(col_user).alias(U), F.col(col_item).alias(I)).distinct()
    r = recs.select(F.col(col_user).alias(U), F.col(col_item).alias(I), F.col(col_rank).alias(RANK))
    out = _row_metrics(_metric_rows(r, t, ks)[0])
    if n_items:
        for k in ks:
            distinct = r.where(F.col(RANK) <= k).select(I).distinct().count()
            out[f"coverage@{k}"] = distinct / n_items
    return out


def ranking_metrics_by(recs: DataFrame, truth: DataFrame, group: str, groups: Sequence[str],
                       ks: Sequence[int] = (10, 20)) -> dict[str, dict[str, float]]:
    """ranking_metrics (without coverage) of each of `groups`' lists in recs (group, u, rank, i),
    every truth user counted in every group (a user without a list there scores 0), all groups in
    one aggregation."""
    t = truth.select(U, I).distinct()
    r = recs.select(group, U, I, RANK)
    return {row[group]: _row_metrics(row) for row in _metric_rows(r, t, ks, group, groups)}


def _metric_rows(r: DataFrame, t: DataFrame, ks: Sequence[int], group: str | None = None,
                 groups: Sequence[str] = ()) -> list[Row]:
    """users, HR@k, NDCG@k, Recall@k of lists r (u, i, rank; and `group`) against truth t (u, i):
    one row, or one per group (every truth user in each of `groups`)."""
    keys = [group, U] if group else [U]
    hits = r.join(t, on=[U, I], how="inner")
    per_hit = []
    for k in ks:
        inside = F.col(RANK) <= k
        per_hit += [
            F.max(F.when(inside, 1.0).otherwise(0.0)).alias(f"hit{k}"),
            F.sum(F.when(inside, 1.0 / F.log2(F.col(RANK) + 1.0)).otherwise(0.0)).alias(f"dcg{k}"),
            F.sum(F.when(inside, 1.0).otherwise(0.0)).alias(f"n{k}"),
        ]
    relevant = t.groupBy(U).agg(F.count(F.lit(1)).alias("_nrel"))
    if group:
        names = r.sparkSession.createDataFrame([(x,) for x in groups], f"{group} string")
        relevant = relevant.crossJoin(F.broadcast(names))
    per_user = (relevant.join(hits.groupBy(*keys).agg(*per_hit), on=keys, how="left")
                .fillna(0.0))
    aggs = [F.count(F.lit(1)).alias("users")]
    for k in ks:
        idcg = F.aggregate(F.sequence(F.lit(1), F.least(F.col("_nrel"), F.lit(k)).cast("int")), F.lit(0.0),
                           lambda acc, x: acc + 1.0 / F.log2(x.cast("double") + 1.0))
        aggs += [F.avg(f"hit{k}").alias(f"HR@{k}"),
                 F.avg(F.col(f"dcg{k}") / idcg).alias(f"NDCG@{k}"),
                 F.avg(F.col(f"n{k}") / F.col("_nrel")).alias(f"Recall@{k}")]
    return (per_user.groupBy(group).agg(*aggs) if group else per_user.agg(*aggs)).collect()


def _row_metrics(row: Row) -> dict[str, float]:
    """users and the figures of a _metric_rows row (an average over no user: 0)."""
    out = {key: float(v) if v is not None else 0.0 for key, v in row.asDict().items()
           if key.startswith(("HR@", "NDCG@", "Recall@"))}
    out["users"] = int(row["users"])
    return out


def rating_errors(pred: DataFrame, truth: DataFrame, col_pred: str = "pred", col_true: str = "rating",
                  keys: Sequence[str] = (U, I)) -> dict[str, float]:
    """RMSE and MAE of `col_pred` against `col_true` on the pairs of `truth` that have one.

    Returns rmse, mae, n (pairs scored) and coverage (share of truth pairs scored).
    """
    j = truth.join(pred.select(*keys, col_pred), on=list(keys), how="left")
    row = j.agg(
        F.count(F.lit(1)).alias("total"),
        F.count(F.col(col_pred)).alias("n"),
        F.sqrt(F.avg((F.col(col_pred) - F.col(col_true)) ** 2)).alias("rmse"),
        F.avg(F.abs(F.col(col_pred) - F.col(col_true))).alias("mae"),
    ).first()
    total = int(row["total"])
    return {"rmse": float(row["rmse"]) if row["rmse"] is not None else float("nan"),
            "mae": float(row["mae"]) if row["mae"] is not None else float("nan"),
            "n": int(row["n"]), "coverage": (int(row["n"]) / total) if total else 0.0}


# Poisson(1) CDF at 0..7: a Poisson bootstrap weight from one uniform draw.
_POISSON_CDF = (0.36787944, 0.73575888, 0.91969860, 0.98101184, 0.99634015, 0.99940582, 0.99991676, 0.99998975)


def paired_bootstrap(pred_a: DataFrame, pred_b: DataFrame, truth: DataFrame, n_boot: int = 500, seed: int = 7,
                     level: float = 0.95, col_pred: str = "pred", col_true: str = "rating",
                     keys: Sequence[str] = (U, I)) -> dict[str, float]:
    """RMSE and MAE of a minus b on the truth pairs both predict, with a paired Poisson bootstrap
    interval (each replicate reweights every pair by a Poisson(1) draw from a hash of the pair,
    the replicate and the seed, so the figures do not depend on partitioning). Negative = a is better."""
    keys = list(keys)
    j = (truth.join(pred_a.select(*keys, F.col(col_pred).alias("_a")), on=keys, how="inner")
         .join(pred_b.select(*keys, F.col(col_pred).alias("_b")), on=keys, how="inner")
         .select(*keys, ((F.col("_a") - F.col(col_true)) ** 2).alias("_sa"),
                 ((F.col("_b") - F.col(col_true)) ** 2).alias("_sb"),
                 F.abs(F.col("_a") - F.col(col_true)).alias("_aa"), F.abs(F.col("_b") - F.col(col_true)).alias("_ab")))
    full = j.agg(F.count(F.lit(1)).alias("n"), F.avg("_sa"), F.avg("_sb"), F.avg("_aa"), F.avg("_ab")).first()
    n = int(full[0])
    if n == 0:
        return {"n": 0}
    u = (F.pmod(F.xxhash64(*[F.col(k) for k in keys], F.col("_rep"), F.lit(seed)), F.lit(1_000_000_007))
         / F.lit(1_000_000_007.0))
    w = F.lit(len(_POISSON_CDF))
    for k in reversed(range(len(_POISSON_CDF))):
        w = F.when(u < F.lit(_POISSON_CDF[k]), F.lit(k)).otherwise(w)
    reps = (j.withColumn("_rep", F.explode(F.sequence(F.lit(0), F.lit(n_boot - 1))))
            .withColumn("_w", w.cast("double"))
            .groupBy("_rep")
            .agg(F.sum("_w").alias("w"), F.sum(F.col("_w") * F.col("_sa")).alias("sa"),
                 F.sum(F.col("_w") * F.col("_sb")).alias("sb"), F.sum(F.col("_w") * F.col("_aa")).alias("aa"),
                 F.sum(F.col("_w") * F.col("_ab")).alias("ab"))
            .where(F.col("w") > 0)
            .select((F.sqrt(F.col("sa") / F.col("w")) - F.sqrt(F.col("sb") / F.col("w"))).alias("d_rmse"),
                    ((F.col("aa") - F.col("ab")) / F.col("w")).alias("d_mae")))
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    q = reps.agg(F.percentile_approx("d_rmse", [lo, hi], 10_000),
                 F.percentile_approx("d_mae", [lo, hi], 10_000)).first()
    return {"n": n, "rmse_diff": full[1] ** 0.5 - full[2] ** 0.5, "rmse_diff_lo": float(q[0][0]),
            "rmse_diff_hi": float(q[0][1]), "mae_diff": full[3] - full[4], "mae_diff_lo": float(q[1][0]),
            "mae_diff_hi": float(q[1][1])}
