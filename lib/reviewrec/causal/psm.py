"""Propensity-score matching on Spark.

1. Propensity: logistic regression of the treatment on covariates fitted by Newton-Raphson
   (one aggregation of X'WX and X'(w - p) per step, on standardized covariates) to the
   maximum-likelihood point, so the score does not move with the partitioning as the stopping
   point of an iteration-capped quasi-Newton fit does; or Spark ML's GBTClassifier. The score
   is kept as p and as its logit.
2. Nearest-neighbour matching on the logit within a caliper (default 0.2 SD of the logit,
   Austin 2011). Rows are bucketed into caliper-wide bins of the logit; a treated row's nearest
   control is either its neighbour in sorted order inside its own bin (window last/first over
   the bin) or the closest control of the two neighbouring bins (a per-bin max/min joined
   back), so no pairwise join can blow up and nothing is collected.
   Exact matching (`exact`): the bins are further split by the values of the given
   (discrete) columns, so a treated row is only matched to controls with the same values;
   the propensity model itself is unchanged.
   With replacement: every treated row takes its nearest control. Without replacement: rounds
   of proposals (each unmatched treated row proposes its nearest still-free control; each
   control accepts its closest proposer) until no new pair forms; this parallel greedy gives
   the same pairs as sequential greedy matching whenever proposals do not conflict.
3. ATT = mean over matched treated of (Y_t - Y_c(t)) (with ties: minus the mean of its tied
   controls), SE = sqrt(s2_T/N1 + s2_C·sum K_j^2/N1^2) with K_j the times control j is used
   (with ties: the sum of its 1/M shares) (the two-sample SE for 1:1 without replacement; it
   ignores the estimation of the propensity score).
4. Balance: standardized mean differences (mean_T - mean_C)/sqrt((var_T + var_C)/2) with the
   pre-matching variances as the denominator both before and after; |SMD| >= 0.1 is flagged.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from reviewrec.causal.stats import require

log = logging.getLogger(__name__)

PS, LOGIT, ROW_ID = "_ps", "_logit", "_rid"
MODELS = ("logistic", "gbt")
SMD_FLAG = 0.1


def propensity(df: DataFrame, treatment: str, covariates: Sequence[str], *, model: str = "logistic",
               max_iter: int = 100, seed: int = 7) -> DataFrame:
    """Add `_ps` (P(treated | covariates)) and `_logit` = log(p/(1-p)) (p clipped to [1e-6, 1-1e-6]).

    Input: treatment (0/1 or boolean) and numeric covariates, no nulls in them (rows with
    nulls are dropped). Output: the input columns plus _ps and _logit.
    """
    if model not in MODELS:
        raise ValueError(f"propensity model={model!r}; choose one of {MODELS}")
    require(df, [treatment, *covariates], "propensity")
    d = df.dropna(subset=[treatment, *covariates]).withColumn("_w", F.col(treatment).cast("double"))
    if model == "logistic":
        index = _logistic_index(d, covariates, max_iter)
        p = F.lit(1.0) / (F.lit(1.0) + F.exp(-index))
    else:
        from pyspark.ml.classification import GBTClassifier
        from pyspark.ml.feature import VectorAssembler
        from pyspark.ml.functions import vector_to_array

        dv = VectorAssembler(inputCols=list(covariates), outputCol="_x").transform(d)
        fitted = GBTClassifier(featuresCol="_x", labelCol="_w", maxIter=max_iter, maxDepth=3, seed=seed).fit(dv)
        d = fitted.transform(dv).drop("_x", "rawPrediction", "prediction")
        p = vector_to_array(F.col("probability"))[1]
    p = F.least(F.greatest(p, F.lit(1e-6)), F.lit(1 - 1e-6))
    out = (d.withColumn(PS, p)
           .withColumn(LOGIT, F.log(F.col(PS) / (1 - F.col(PS))))
           .drop("probability", "_w"))
    return out


def _logistic_index(d: DataFrame, covariates: Sequence[str], max_iter: int, tol: float = 1e-9) -> Column:
    """The fitted linear index b0 + x·b of a maximum-likelihood logit of `_w` on `covariates`.

    Covariates are standardized first (their means and SDs from one aggregation), which keeps
    X'WX well conditioned with polynomial terms such as age³. Newton steps stop when the
    largest change of a standardized coefficient is below `tol`; a fit that does not get there
    within `max_iter` steps (e.g. perfect separation) is reported, not silently used.
    """
    from reviewrec.causal.stats import agg_sums, safe_inv

    n = len(covariates)
    moments = agg_sums(d, [F.col(c).cast("double") for c in covariates]
                       + [F.col(c).cast("double") ** 2 for c in covariates] + [F.lit(1.0)])
    rows = moments[-1]
    mean = moments[:n] / rows
    sd = np.sqrt(np.maximum(moments[n:2 * n] / rows - mean ** 2, 0.0))
    keep = [i for i in range(n) if sd[i] > 0]
    if len(keep) < n:
        log.warning("propensity: constant covariates left out of the logit: %s",
                    [covariates[i] for i in range(n) if i not in keep])
    cols = [F.lit(1.0)] + [(F.col(covariates[i]).cast("double") - float(mean[i])) / float(sd[i]) for i in keep]
    def index(beta: np.ndarray) -> Column:
        return sum((F.lit(float(b)) * c for b, c in zip(beta, cols, strict=False)), F.lit(0.0))

    beta = np.zeros(len(cols))
    # The standardized covariates and the treatment, one numeric column each, kept for the steps.
    xd = d.select(*[F.col(covariates[i]).cast("double").alias(f"_x{j}") for j, i in enumerate(keep)],
                  F.col("_w").cast("double").alias("_w")).persist()
    try:
        for step in range(1, max_iter + 1):
            hess, grad = _newton_sums(xd, mean[keep], sd[keep], beta)
            delta = safe_inv(hess, "the propensity logit's X'WX") @ grad
            beta = beta + delta
            if np.max(np.abs(delta)) < tol:
                log.info("propensity logit: converged in %d Newton steps", step)
                break
        else:
            log.warning("propensity logit: no convergence in %d Newton steps (largest step %.3g); "
                        "the treatment may be separable by the covariates", max_iter, np.max(np.abs(delta)))
    finally:
        xd.unpersist()
    return index(beta)


def _newton_sums(xd: DataFrame, mean: np.ndarray, sd: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """X'WX and X'(w - p) of the logit at `beta` over `xd` (columns _x0.._x{k-1}, _w), X = [1,
    (x - mean) / sd], p = 1 / (1 + exp(-X beta)), W = p (1 - p): one Spark job, each partition
    summed with numpy in its executor, the partitions' sums added in partition order (a SQL
    aggregation would repeat the whole linear index inside each of its k (k + 1) / 2 + k sums,
    and planning and generating code for those dominates a step)."""
    import pandas as pd

    k = len(beta)
    names = [f"_x{j}" for j in range(k - 1)]

    def sums(batches: Any) -> Any:
        h, g = np.zeros((k, k)), np.zeros(k)
        for pdf in batches:
            x = np.column_stack([np.ones(len(pdf)), (pdf[names].to_numpy(dtype=float) - mean) / sd])
            with np.errstate(over="ignore"):
                p = 1.0 / (1.0 + np.exp(-(x @ beta)))
            h += (x * (p * (1.0 - p))[:, None]).T @ x
            g += x.T @ (pdf["_w"].to_numpy(dtype=float) - p)
        yield pd.DataFrame({"s": [np.concatenate([h.ravel(), g]).tolist()]})

    parts = [np.asarray(r["s"]) for r in xd.mapInPandas(sums, "s array<double>").collect()]
    total = np.sum(parts, axis=0) if parts else np.zeros(k * k + k)
    return total[:k * k].reshape(k, k), total[k * k:]


def _nearest(treated: DataFrame, controls: DataFrame, width: float, exact: Sequence[str] = ()) -> DataFrame:
    """For each treated row (_rid, _logit[, exact columns]) the nearest control (_rid, _logit)
    within `width` and with the same values of the `exact` columns: columns t_id, c_id, dist."""
    b = F.floor(F.col(LOGIT) / width).cast("long")
    keep = [F.col(ROW_ID), F.col(LOGIT), *[F.col(e) for e in exact]]
    pool = (treated.select(*keep, F.lit(1).alias("_t"))
            .unionByName(controls.select(*keep, F.lit(0).alias("_t")))
            .withColumn("_bin", b))
    key = ["_bin", *exact]
    cand = F.when(F.col("_t") == 0, F.struct(F.col(LOGIT).alias("l"), F.col(ROW_ID).alias("id")))
    w = Window.partitionBy(*key).orderBy(LOGIT, "_t", ROW_ID)
    own = (pool.select("*",
                       F.last(cand, ignorenulls=True).over(w.rowsBetween(Window.unboundedPreceding, -1)).alias("_prev"),
                       F.first(cand, ignorenulls=True).over(w.rowsBetween(1, Window.unboundedFollowing)).alias("_next"))
               .where(F.col("_t") == 1))
    stats = (pool.where(F.col("_t") == 0).groupBy(*key)
                 .agg(F.max(F.struct(F.col(LOGIT).alias("l"), F.col(ROW_ID).alias("id"))).alias("_hi"),
                      F.min(F.struct(F.col(LOGIT).alias("l"), F.col(ROW_ID).alias("id"))).alias("_lo")))
    below = stats.select((F.col("_bin") + 1).alias("_bin"), *exact, F.col("_hi").alias("_below"))
    above = stats.select((F.col("_bin") - 1).alias("_bin"), *exact, F.col("_lo").alias("_above"))
    j = own.join(below, on=key, how="left").join(above, on=key, how="left")
    cands = F.array(*[F.struct(F.abs(F.col(f"{c}.l") - F.col(LOGIT)).alias("d"), F.col(f"{c}.id").alias("id"),
                               F.col(f"{c}.l").alias("l"))
                      for c in ("_prev", "_next", "_below", "_above")])
    best = F.array_min(F.filter(cands, lambda s: s["d"].isNotNull() & (s["d"] <= F.lit(width))))
    return (j.select(F.col(ROW_ID).alias("t_id"), best.alias("_best"), *exact)
             .where(F.col("_best").isNotNull())
             .select("t_id", F.col("_best.id").alias("c_id"), F.col("_best.d").alias("dist"),
                     F.col("_best.l").alias("c_logit"), *exact))


def _with_ties(best: DataFrame, controls: DataFrame, exact: Sequence[str]) -> DataFrame:
    """Every control with the same logit (and exact values) as the chosen nearest one, each
    with weight 1/M (M = the number of such tied controls): columns t_id, c_id, dist, w."""
    tied = (best.select("t_id", "dist", F.col("c_logit").alias(LOGIT), *exact)
                .join(controls.select(F.col(ROW_ID).alias("c_id"), LOGIT, *exact), on=[LOGIT, *exact], how="inner"))
    m = F.count(F.lit(1)).over(Window.partitionBy("t_id"))
    return tied.select("t_id", "c_id", "dist", (F.lit(1.0) / m).alias("w"))


def match(scored: DataFrame, treatment: str, *, caliper_sd: float = 0.2, replace: bool = True,
          exact: Sequence[str] = (), ties: bool = False, max_rounds: int = 50) -> tuple[DataFrame, dict[str, Any]]:
    """1:1 nearest-neighbour matching on `_logit` (from propensity()) within caliper_sd·SD(logit),
    and, with `exact`, only between rows with equal values of those (discrete) columns.

    ties (with replacement only): a treated row is matched to every control whose logit equals
    that of its nearest control (in practice: controls with identical covariates), each with
    weight 1/M, instead of the one with the smallest row id; this makes the result independent
    of the row ids (hence of the input partitioning), as tie handling in Stata's teffects.
    `scored` must carry a unique `_rid` (add_row_id()). Output: pairs DataFrame (t_id, c_id,
    dist, w: the pair's weight, 1 without ties) and a summary (caliper width, treated matched /
    unmatched, distinct controls, rounds).
    """
    if ties and not replace:
        raise ValueError("match: ties=True needs replace=True (tied controls are shared)")
    exact = list(exact)
    require(scored, [treatment, LOGIT, ROW_ID, *exact], "match")
    if exact:
        nulls = scored.agg(*[F.sum(F.col(e).isNull().cast("long")).alias(e) for e in exact]).first()
        bad = {e: int(nulls[e]) for e in exact if nulls[e]}
        if bad:
            raise ValueError(f"match: exact-matching columns have nulls (rows per column: {bad}); "
                             "fill or drop them first")
    sd = float(scored.agg(F.stddev_samp(LOGIT)).first()[0])
    width = caliper_sd * sd
    if not width > 0:
        raise ValueError(f"match: SD of the logit is {sd}; caliper width must be positive")
    t = scored.where(F.col(treatment).cast("int") == 1).select(ROW_ID, LOGIT, *exact)
    c = scored.where(F.col(treatment).cast("int") == 0).select(ROW_ID, LOGIT, *exact)
    rounds = 1
    if replace:
        best = _nearest(t, c, width, exact)
        pairs = (_with_ties(best, c, exact) if ties else
                 best.select("t_id", "c_id", "dist", F.lit(1.0).alias("w"))).localCheckpoint(eager=True)
    else:
        spark = scored.sparkSession
        pairs = spark.createDataFrame([], "t_id long, c_id long, dist double, w double")
        t_free, c_free = t, c
        for rnd in range(1, max_rounds + 1):
            rounds = rnd
            prop = _nearest(t_free, c_free, width, exact).select("t_id", "c_id", "dist", F.lit(1.0).alias("w"))
            w = Window.partitionBy("c_id").orderBy("dist", "t_id")
            acc = (prop.withColumn("_r", F.row_number().over(w)).where(F.col("_r") == 1).drop("_r")
                       .localCheckpoint(eager=True))
            got = acc.count()
            if got == 0:
                break
            pairs = pairs.unionByName(acc).localCheckpoint(eager=True)
            t_free = t_free.join(acc.select(F.col("t_id").alias(ROW_ID)), on=ROW_ID, how="left_anti")
            c_free = c_free.join(acc.select(F.col("c_id").alias(ROW_ID)), on=ROW_ID, how="left_anti")
            t_free, c_free = t_free.localCheckpoint(eager=True), c_free.localCheckpoint(eager=True)
    n_t = t.count()
    agg = pairs.agg(F.countDistinct("t_id").alias("m"), F.countDistinct("c_id").alias("uc"),
                    (F.sum(F.col("w") * F.col("dist")) / F.countDistinct("t_id")).alias("d")).first()
    summary = {"caliper_sd": caliper_sd, "caliper_width": width, "logit_sd": sd, "replace": replace, "exact": exact,
               "ties": ties,
               "treated": int(n_t), "matched": int(agg["m"]), "unmatched": int(n_t - agg["m"]),
               "distinct_controls": int(agg["uc"]), "mean_distance": float(agg["d"] or 0.0), "rounds": rounds}
    log.info("PSM: %s", summary)
    return pairs, summary


def add_row_id(df: DataFrame) -> DataFrame:
    """A unique, stable `_rid` (materialised, so recomputation cannot renumber rows)."""
    return df.withColumn(ROW_ID, F.monotonically_increasing_id()).localCheckpoint(eager=True)


def _weights(scored: DataFrame, pairs: DataFrame) -> DataFrame:
    """Matched sample: treated rows with weight 1, controls with weight K_j (the sum of their pair
    weights: times used, or with ties the shares 1/M)."""
    tw = pairs.select(F.col("t_id").alias(ROW_ID)).distinct().withColumn("_mw", F.lit(1.0))
    cw = pairs.groupBy(F.col("c_id").alias(ROW_ID)).agg(F.sum("w").cast("double").alias("_mw"))
    return scored.join(tw.unionByName(cw), on=ROW_ID, how="inner")


def att(scored: DataFrame, pairs: DataFrame, treatment: str, outcome: str, level: float = 0.95) -> dict[str, Any]:
    """ATT on matched pairs with the SE described in the module docstring."""
    from scipy import stats as st

    require(scored, [outcome, treatment], "att")
    m = _weights(scored, pairs)
    yv = F.col(outcome).cast("double")
    tr = F.col(treatment).cast("int") == 1
    r = m.agg(
        F.sum(F.when(tr, yv)).alias("sy1"), F.sum(F.when(tr, yv * yv)).alias("sq1"), F.sum(F.when(tr, 1)).alias("n1"),
        F.sum(F.when(~tr, F.col("_mw") * yv)).alias("wy0"),
        F.sum(F.when(~tr, yv)).alias("sy0"), F.sum(F.when(~tr, yv * yv)).alias("sq0"),
        F.sum(F.when(~tr, 1)).alias("n0"),
        F.sum(F.when(~tr, F.col("_mw") ** 2)).alias("k2")).first()
    n1, n0 = float(r["n1"] or 0), float(r["n0"] or 0)
    if n1 < 2 or n0 < 2:
        raise ValueError(f"att: too few matched units (treated {n1:.0f}, controls {n0:.0f})")
    est = (r["sy1"] - r["wy0"]) / n1
    s2t = (r["sq1"] - r["sy1"] ** 2 / n1) / (n1 - 1)
    s2c = (r["sq0"] - r["sy0"] ** 2 / n0) / (n0 - 1)
    se = math.sqrt(s2t / n1 + s2c * r["k2"] / n1 ** 2)
    z = st.norm.ppf(0.5 + level / 2)
    return {"att": est, "se": se, "ci_low": est - z * se, "ci_high": est + z * se,
            "p_value": float(2 * st.norm.sf(abs(est / se))) if se > 0 else math.nan,
            "n_treated": int(n1), "n_controls": int(n0), "sum_k2": float(r["k2"])}


def balance(scored: DataFrame, treatment: str, covariates: Sequence[str], pairs: DataFrame | None = None,
            threshold: float = SMD_FLAG) -> list[dict[str, Any]]:
    """SMD per covariate before (and after, given pairs) matching; flag |SMD| >= threshold."""
    require(scored, [treatment, *covariates], "balance")
    tr = F.col(treatment).cast("int") == 1

    def moments(d: DataFrame, wcol: str | None) -> dict[str, np.ndarray]:
        w = F.col(wcol) if wcol else F.lit(1.0)
        exprs = []
        for c in covariates:
            x = F.col(c).cast("double")
            for g in (tr, ~tr):
                exprs += [F.sum(F.when(g, w)), F.sum(F.when(g, w * x)), F.sum(F.when(g, w * x * x))]
        row = d.agg(*[e.alias(f"m{i}") for i, e in enumerate(exprs)]).first()
        return np.array([float(v or 0.0) for v in row]).reshape(len(covariates), 2, 3)

    def mean_var(a: np.ndarray) -> tuple[float, float]:
        n, s, q = a
        mu = s / n if n else math.nan
        return mu, (q / n - mu * mu) * n / (n - 1) if n > 1 else math.nan

    before = moments(scored, None)
    after = moments(_weights(scored, pairs), "_mw") if pairs is not None else None
    out = []
    for i, c in enumerate(covariates):
        mt, vt = mean_var(before[i, 0])
        mc, vc = mean_var(before[i, 1])
        sd = math.sqrt((vt + vc) / 2) if (vt + vc) > 0 else math.nan
        row: dict[str, Any] = {"covariate": c, "mean_treated": mt, "mean_control": mc,
                               "smd_before": (mt - mc) / sd if sd and sd > 0 else 0.0}
        if after is not None:
            mta, _ = mean_var(after[i, 0])
            mca, _ = mean_var(after[i, 1])
            row.update({"mean_treated_matched": mta, "mean_control_matched": mca,
                        "smd_after": (mta - mca) / sd if sd and sd > 0 else 0.0})
        row["flag"] = abs(row.get("smd_after", row["smd_before"])) >= threshold
        out.append(row)
    return out


def overlap_histogram(scored: DataFrame, treatment: str, bins: int = 30, col: str = PS) -> list[dict[str, Any]]:
    """Counts of the propensity score (or its logit) per equal-width bin and group."""
    require(scored, [treatment, col], "overlap_histogram")
    r = scored.agg(F.min(col).alias("lo"), F.max(col).alias("hi")).first()
    lo, hi = float(r["lo"]), float(r["hi"])
    width = (hi - lo) / bins if hi > lo else 1.0
    b = F.least(F.floor((F.col(col) - lo) / width), F.lit(bins - 1)).cast("int")
    rows = scored.groupBy(b.alias("bin"), F.col(treatment).cast("int").alias("treated")).count().collect()
    return [{"bin": int(x["bin"]), "left": lo + x["bin"] * width, "width": width, "treated": int(x["treated"]),
             "count": int(x["count"])} for x in sorted(rows, key=lambda x: (x["treated"], x["bin"]))]


def psm(df: DataFrame, treatment: str, outcomes: Sequence[str], covariates: Sequence[str], *,
        model: str = "logistic", caliper_sd: float = 0.2, replace: bool = True,
        exact: Sequence[str] = (), ties: bool = False) -> dict[str, Any]:
    """Propensity, matching (optionally exact on some discrete columns), ATT per outcome,
    balance before/after and the overlap histogram."""
    scored = add_row_id(propensity(df, treatment, covariates, model=model))
    pairs, summary = match(scored, treatment, caliper_sd=caliper_sd, replace=replace, exact=exact, ties=ties)
    effects = {o: att(scored, pairs, treatment, o) for o in outcomes}
    bal = balance(scored, treatment, covariates, pairs)
    return {"matching": summary, "att": effects, "balance": bal,
            "balanced": not any(b["flag"] for b in bal),
            "overlap": overlap_histogram(scored, treatment), "model": model}
