"""Difference-in-differences on Spark: 2x2, two-way fixed effects with covariates, event study.

Inputs are long panels (one row per unit x period, or repeated cross-sections for the 2x2).
Fixed effects are removed by the within transformation (stats.demean, Spark window averages),
then least squares runs on sufficient statistics with cluster-robust SEs (CR1, by unit default).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from reviewrec.causal.stats import LinearResult, demean, ols, require

DID_TERM = "did"


def did_2x2(df: DataFrame, y: str, treated: str, post: str, *, covariates: Sequence[str] = (),
            cluster: str | None = None) -> dict[str, Any]:
    """y ~ 1 + treated + post + treated·post (+ covariates); the interaction is the DID.

    Input columns: y, treated (0/1), post (0/1), covariates, cluster. Rows with a null in any
    of them are left out of everything reported (the regression and the cells alike). Output:
    the effect with SE/CI/p, robust (cluster-robust CR1 when `cluster` is given, else HC1), the
    same effect with the conventional (iid) SE, the four cell means and counts, and how many
    rows were left out.
    """
    used = [y, treated, post, *covariates] + ([cluster] if cluster else [])
    require(df, used, "did_2x2")
    d = (df.dropna(subset=used)
           .withColumn(DID_TERM, F.col(treated).cast("double") * F.col(post).cast("double")))
    x = [treated, post, DID_TERM, *covariates]
    res = ols(d, y, x, vce="cluster" if cluster else "hc1", cluster=cluster)
    iid = ols(d, y, x, vce="iid")
    cells = (d.groupBy(F.col(treated).cast("int").alias("treated"), F.col(post).cast("int").alias("post"))
              .agg(F.avg(F.col(y).cast("double")).alias("mean"), F.count(F.lit(1)).alias("n"))
              .collect())
    means = {(r["treated"], r["post"]): (float(r["mean"]), int(r["n"])) for r in cells}
    n_all = df.count()

    def did_row(r: LinearResult) -> dict[str, Any]:
        return next(row for row in r.table() if row["term"] == DID_TERM)

    return {"estimate": did_row(res), "estimate_iid": did_row(iid), "cell_means": [
        {"treated": t, "post": p, "mean": m, "n": n} for (t, p), (m, n) in sorted(means.items())],
        "rows_dropped_missing": n_all - res.n,
        "regression": res.to_dict()}


def twfe(df: DataFrame, y: str, regressors: Sequence[str], unit: str, time: str, *,
         cluster: str | None = None, tol: float = 1e-10) -> LinearResult:
    """y on regressors with unit and time fixed effects (within transformation), CR1 by cluster
    (default: unit). Fixed effects nested in the cluster are not counted in k (as fixest/reghdfe).
    """
    cluster = cluster or unit
    require(df, [y, *regressors, unit, time, cluster], "twfe")
    used = [y, *regressors, unit, time, cluster]
    d = df.dropna(subset=used)
    dm = demean(d, [y, *regressors], [unit, time], tol=tol)
    counts = d.agg(F.countDistinct(unit).alias("u"), F.countDistinct(time).alias("t")).first()
    absorbed = int(counts["t"]) - 1 + (0 if cluster == unit else int(counts["u"]))
    # The unit FE count enters via the nesting rule above; the within data have no intercept.
    return ols(dm, y, list(regressors), intercept=False, vce="cluster", cluster=cluster,
               df_absorbed=absorbed)


def did_twfe(df: DataFrame, y: str, treatment: str, unit: str, time: str, *,
             covariates: Sequence[str] = (), cluster: str | None = None) -> dict[str, Any]:
    """Regression DID: y = a_unit + g_time + b·treatment + covariates, treatment = treated×post."""
    res = twfe(df, y, [treatment, *covariates], unit, time, cluster=cluster)
    row = next(r for r in res.table() if r["term"] == treatment)
    return {"estimate": row, "regression": res.to_dict()}


def event_study(df: DataFrame, y: str, unit: str, time: str, treated: str, event_time: str, *,
                ref: int = -1, window: tuple[int, int] | None = None, covariates: Sequence[str] = (),
                cluster: str | None = None) -> dict[str, Any]:
    """Leads and lags: y = a_unit + g_time + sum_{k != ref} b_k·treated·1[time - event = k].

    `event_time` is the (numeric) period in which the unit's treatment starts, on the scale of
    `time`; `window` (lo, hi) bins relative times beyond it into the end points. The joint
    pre-trend test is a Wald test (CR1 covariance) that every lead (every k < 0 except ref) is
    zero. Output: coefficients per relative time (ref at 0), pretrend_test, regression.
    """
    require(df, [y, unit, time, treated, event_time, *covariates], "event_study")
    rel = (F.col(time) - F.col(event_time)).cast("int")
    if window:
        rel = F.least(F.greatest(rel, F.lit(window[0])), F.lit(window[1]))
    d = df.withColumn("_rel", F.when(F.col(treated).cast("int") == 1, rel))
    ks = sorted(int(r["_rel"]) for r in d.select("_rel").where(F.col("_rel").isNotNull()).distinct().collect())
    ks = [k for k in ks if k != ref]
    names = []
    for k in ks:
        nm = f"rel_{'m' if k < 0 else 'p'}{abs(k)}"
        names.append(nm)
        d = d.withColumn(nm, F.when(F.col("_rel") == k, 1.0).otherwise(0.0))
    res = twfe(d, y, [*names, *covariates], unit, time, cluster=cluster)
    table = {r["term"]: r for r in res.table()}
    coefs = [{"rel_time": k, **table[nm]} for k, nm in zip(ks, names, strict=False)]
    coefs.append({"rel_time": ref, "term": "reference", "coef": 0.0, "se": 0.0, "t": None,
                  "p_value": None, "ci_low": 0.0, "ci_high": 0.0})
    coefs.sort(key=lambda r: r["rel_time"])
    leads = [nm for k, nm in zip(ks, names, strict=False) if k < 0]
    pre = res.wald(leads) if leads else None
    return {"coefficients": coefs, "pretrend_test": pre, "leads": leads, "ref": ref,
            "regression": res.to_dict()}


def group_means_over_time(df: DataFrame, y: str, group: str, time: str) -> list[dict[str, Any]]:
    """Mean of y per (group, time): the small table behind the parallel-trends plot."""
    require(df, [y, group, time], "group_means_over_time")
    rows = (df.groupBy(F.col(group).alias("group"), F.col(time).alias("time"))
              .agg(F.avg(F.col(y).cast("double")).alias("mean"), F.count(F.lit(1)).alias("n"))
              .orderBy("group", "time").collect())
    return [{"group": r["group"], "time": r["time"], "mean": float(r["mean"]), "n": int(r["n"])} for r in rows]
