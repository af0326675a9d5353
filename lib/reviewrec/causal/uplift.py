"""Uplift modelling on Spark: transformed outcome, multi-metric GBT regressors, Qini/AUUC/Gini,
four-quadrant heterogeneity and one-dimensional subgroup search.

Transformed outcome (Athey & Imbens 2015): Y* = Y·(W - p)/(p(1 - p)), E[Y* | X] = tau(X) when
p = P(W=1 | X) (a constant in a randomised experiment, a propensity column otherwise). One
Spark ML GBTRegressor per metric is fitted on Y*; its prediction is the uplift score.

Curves (one point per distinct score value, or per quantile bin of the score with `bins`;
rows are ranked by descending score; cumulative over the top k rows: n_t, n_c treated/control
counts, s_t, s_c outcome sums; N rows in all):
  qini(k)   = s_t - s_c·n_t/n_c
  uplift(k) = (s_t/n_t - s_c/n_c)·(n_t + n_c)
  where a ratio over an empty arm counts as 0 (scikit-uplift's rule; causalml is undefined there).
Summary numbers, by `convention`:
  "reviewrec" (default): x = k/N, curves divided by |curve(N)| so that random targeting is the
      diagonal from (0,0) to (1, ±1). qini_coefficient = trapezoid area between the normalised
      Qini curve and the diagonal; auuc = trapezoid area under the normalised uplift curve;
      uplift_gini = 2·(area between the normalised uplift curve and the diagonal). Random
      ranking gives 0 / 0.5 / 0.
  "sklift" (scikit-uplift 0.5 qini_auc_score / uplift_auc_score): (area(model) - area(random))
      / (area(perfect) - area(random)) with trapezoids over k, the random line from (0,0) to
      (N, curve(N)), the perfect Qini curve ranked by Y·W - Y·(1-W) (negative_effect=True) and
      the perfect uplift curve ranked by 2·[Y = W] + (Y if #(Y=1,W=1) > #(Y=0,W=0) else W)
      (binary outcome only).
  "causalml" (causalml.metrics qini_score / auuc_score with normalize=True): the curve per row
      divided by |curve(N)|; qini_score = mean over rows of (qini - diagonal); auuc_score = mean
      over rows of the normalised cumulative-gain curve (= uplift(k) above). causalml draws its
      random baseline from random scores; here the exact diagonal is used.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from scipy import stats as st

from reviewrec.causal.stats import require

log = logging.getLogger(__name__)

CONVENTIONS = ("reviewrec", "sklift", "causalml")
YSTAR = "_ystar"


def uplift_col(metric: str) -> str:
    return f"uplift_{metric}"


def transformed_outcome(df: DataFrame, outcome: str, treatment: str, p: float | str, clip: float = 0.05) -> Column:
    """Y·(W - p)/(p(1 - p)) with p a constant or the name of a propensity column; an estimated
    propensity is clipped to [clip, 1 - clip] so that near-0/1 scores cannot explode Y*."""
    require(df, [outcome, treatment] + ([p] if isinstance(p, str) else []), "transformed_outcome")
    if isinstance(p, str):
        pc = F.least(F.greatest(F.col(p).cast("double"), F.lit(clip)), F.lit(1 - clip))
    else:
        pc = F.lit(float(p))
    w = F.col(treatment).cast("double")
    return F.col(outcome).cast("double") * (w - pc) / (pc * (1 - pc))


def fit(df: DataFrame, outcomes: Sequence[str], treatment: str, features: Sequence[str], *,
        p: float | str | None = None, propensity_clip: float = 0.05, max_iter: int = 30, max_depth: int = 4,
        step_size: float = 0.1, subsampling_rate: float = 1.0, seed: int = 7, top_k: int = 10) -> dict[str, Any]:
    """One GBTRegressor per outcome on its transformed outcome.

    p: known treatment probability, a propensity column name, or None to use the observed
    treated share (valid for a completely randomised experiment). Output: {"models": {metric:
    model}, "importances": {metric: [(feature, importance)] top_k}, "p": p}.
    """
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.regression import GBTRegressor

    require(df, [*outcomes, treatment, *features], "uplift.fit")
    d = df.dropna(subset=[*outcomes, treatment, *features])
    if p is None:
        p = float(d.agg(F.avg(F.col(treatment).cast("double"))).first()[0])
    if isinstance(p, float) and not 0 < p < 1:
        raise ValueError(f"uplift.fit: treatment probability {p} must be in (0, 1)")
    dv = VectorAssembler(inputCols=list(features), outputCol="_fx").transform(d)
    models, imps = {}, {}
    for m in outcomes:
        tr = dv.withColumn(YSTAR, transformed_outcome(dv, m, treatment, p, propensity_clip))
        gbt = GBTRegressor(featuresCol="_fx", labelCol=YSTAR, predictionCol=uplift_col(m), maxIter=max_iter,
                           maxDepth=max_depth, stepSize=step_size, subsamplingRate=subsampling_rate, seed=seed)
        model = gbt.fit(tr)
        models[m] = model
        fi = model.featureImportances.toArray()
        order = np.argsort(-fi)[:top_k]
        imps[m] = [(features[i], float(fi[i])) for i in order]
    return {"models": models, "importances": imps, "p": p, "features": list(features)}


def predict(df: DataFrame, fitted: dict[str, Any]) -> DataFrame:
    """Add uplift_<metric> for every fitted metric."""
    from pyspark.ml.feature import VectorAssembler

    out = VectorAssembler(inputCols=fitted["features"], outputCol="_fx", handleInvalid="skip").transform(df)
    for _, model in fitted["models"].items():
        out = model.transform(out)
    return out.drop("_fx")


# -- curves -----------------------------------------------------------------------------------

def curve_stats(df: DataFrame, score: str | Column, outcome: str, treatment: str,
                bins: int | None = None) -> np.ndarray:
    """Per score group, in descending score order: [n_t, n_c, s_t, s_c] (array G x 4).

    bins=None groups rows by distinct score value (exact; ties share one point, as in
    scikit-uplift); bins=B groups by B approximate quantiles of the score (big data).
    """
    sc = F.col(score) if isinstance(score, str) else score
    d = df.select(sc.cast("double").alias("_sc"), F.col(outcome).cast("double").alias("_y"),
                  F.col(treatment).cast("int").alias("_w")).dropna()
    if bins:
        edges = sorted(set(d.approxQuantile("_sc", [i / bins for i in range(1, bins)], 1e-4)))
        key = F.lit(0)
        for e in edges:
            key = key + F.when(F.col("_sc") > F.lit(e), 1).otherwise(0)
        d = d.withColumn("_g", key)
    else:
        d = d.withColumn("_g", F.col("_sc"))
    rows = (d.groupBy("_g").agg(F.sum(F.when(F.col("_w") == 1, 1).otherwise(0)).alias("nt"),
                                F.sum(F.when(F.col("_w") == 0, 1).otherwise(0)).alias("nc"),
                                F.sum(F.when(F.col("_w") == 1, F.col("_y")).otherwise(0.0)).alias("st"),
                                F.sum(F.when(F.col("_w") == 0, F.col("_y")).otherwise(0.0)).alias("sc"))
              .orderBy(F.col("_g").desc()).collect())
    return np.array([[r["nt"], r["nc"], r["st"], r["sc"]] for r in rows], dtype=float).reshape(-1, 4)


def _curves(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x = cumulative rows (with a leading 0), qini and uplift curves at those points."""
    c = np.vstack([np.zeros((1, 4)), np.cumsum(stats, axis=0)])
    nt, nc, s_t, s_c = c.T
    with np.errstate(divide="ignore", invalid="ignore"):
        # An empty arm contributes 0 to the ratio it divides (as scikit-uplift does).
        qini = s_t - s_c * np.where(nc > 0, nt / np.where(nc > 0, nc, 1), 0.0)
        upl = (np.where(nt > 0, s_t / np.where(nt > 0, nt, 1), 0.0)
               - np.where(nc > 0, s_c / np.where(nc > 0, nc, 1), 0.0)) * (nt + nc)
    qini[0] = upl[0] = 0.0
    return nt + nc, qini, upl


def _trap(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def _perfect_scores(outcome: str, treatment: str,
                    binary_uplift: tuple[int, int] | None) -> tuple[Column, Column | None]:
    y, w = F.col(outcome).cast("double"), F.col(treatment).cast("double")
    q = y * w - y * (1 - w)
    if binary_uplift is None:
        return q, None
    cr, cc = binary_uplift
    summand = y if cr > cc else w
    return q, F.lit(2.0) * F.when(y == w, 1.0).otherwise(0.0) + summand


def uplift_metrics(df: DataFrame, score: str, outcome: str, treatment: str, *, convention: str = "reviewrec",
                   bins: int | None = None) -> dict[str, Any]:
    """Qini coefficient, AUUC and uplift Gini of ranking by `score` (see the module docstring),
    plus the normalised curves (x in [0, 1]) for plotting."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention={convention!r}; choose one of {CONVENTIONS}")
    require(df, [score, outcome, treatment], "uplift_metrics")
    stats = curve_stats(df, score, outcome, treatment, bins)
    x, qini, upl = _curves(stats)
    n = x[-1]
    out: dict[str, Any] = {"convention": convention, "n": int(n), "points": int(len(x))}
    qn = qini / abs(qini[-1]) if qini[-1] else qini
    un = upl / abs(upl[-1]) if upl[-1] else upl
    xf = x / n
    # Unnormalised companion: area between the Qini curve and the random line, per row (in
    # outcome units). The normalised numbers divide by |curve(N)| and blow up when the overall
    # effect is near zero; this one does not.
    out["qini_area_per_row"] = _trap(xf, (qini - x * qini[-1] / n) / n)
    if convention == "reviewrec":
        diag_q, diag_u = xf * np.sign(qini[-1]), xf * np.sign(upl[-1])
        out.update({"qini_coefficient": _trap(xf, qn - diag_q), "auuc": _trap(xf, un),
                    "uplift_gini": 2 * _trap(xf, un - diag_u)})
    elif convention == "sklift":
        yv = F.col(outcome).cast("double")
        w = F.col(treatment).cast("int")
        cnt = df.agg(F.sum(F.when((yv == 1) & (w == 1), 1).otherwise(0)).alias("cr"),
                     F.sum(F.when((yv == 0) & (w == 0), 1).otherwise(0)).alias("cc"),
                     F.sum(F.when(~yv.isin(0.0, 1.0), 1).otherwise(0)).alias("nb")).first()
        binary = int(cnt["nb"] or 0) == 0
        pq, pu = _perfect_scores(outcome, treatment, (int(cnt["cr"]), int(cnt["cc"])) if binary else None)
        xq, qp, _ = _curves(curve_stats(df, pq, outcome, treatment))

        def norm(xm: np.ndarray, ym: np.ndarray, xp: np.ndarray, yp: np.ndarray) -> float:
            base = _trap(np.array([0.0, xp[-1]]), np.array([0.0, yp[-1]]))
            return (_trap(xm, ym) - base) / (_trap(xp, yp) - base)

        out["qini_coefficient"] = norm(x, qini, xq, qp)
        if pu is not None:
            xu, _, up = _curves(curve_stats(df, pu, outcome, treatment))
            out["auuc"] = norm(x, upl, xu, up)
        else:
            out["auuc"] = None
            out["note"] = "scikit-uplift's perfect uplift curve is defined for binary outcomes only"
        out["uplift_gini"] = None
    else:
        # causalml: one value per row; expand group points to rows by linear interpolation
        # inside tied groups (causalml breaks ties by sort order; identical when scores are distinct).
        rows = np.arange(1, int(n) + 1, dtype=float)
        qr, ur = np.interp(rows, x, qn), np.interp(rows, x, un)
        diag = rows / n * (np.sign(qini[-1]) if qini[-1] else 1.0)
        out.update({"qini_coefficient": float(np.mean(qr - diag)), "auuc": float(np.mean(ur)),
                    "uplift_gini": None})
    step = max(1, len(xf) // 200)
    qr = qini / n
    out["curve"] = {"x": xf[::step].tolist() + [1.0], "qini": qn[::step].tolist() + [float(qn[-1])],
                    "uplift": un[::step].tolist() + [float(un[-1])],
                    "qini_per_row": qr[::step].tolist() + [float(qr[-1])]}
    return out


# -- heterogeneity ------------------------------------------------------------------------------

def quadrants(df: DataFrame, col_a: str, col_b: str, features: Sequence[str], *,
              threshold_a: float = 0.0, threshold_b: float = 0.0) -> list[dict[str, Any]]:
    """Four quadrants of two predicted uplifts (a > t_a, b > t_b): counts, shares, mean of each
    feature and of both uplifts per quadrant."""
    require(df, [col_a, col_b, *features], "quadrants")
    qa = F.when(F.col(col_a) > threshold_a, "+").otherwise("-")
    qb = F.when(F.col(col_b) > threshold_b, "+").otherwise("-")
    rows = (df.groupBy(F.concat(F.lit(f"{col_a}"), qa, F.lit(f" {col_b}"), qb).alias("quadrant"))
              .agg(F.count(F.lit(1)).alias("n"), F.avg(col_a).alias(f"mean_{col_a}"),
                   F.avg(col_b).alias(f"mean_{col_b}"),
                   *[F.avg(F.col(f).cast("double")).alias(f"mean_{f}") for f in features])
              .orderBy("quadrant").collect())
    total = sum(r["n"] for r in rows) or 1
    return [{**r.asDict(), "share": r["n"] / total} for r in rows]


def subgroups(df: DataFrame, outcome: str, treatment: str, features: Sequence[str], *, bins: int = 5,
              level: float = 0.95, min_per_arm: int = 10) -> list[dict[str, Any]]:
    """One-dimensional subgroup search: per feature and bin (approximate quantile bins for
    numeric features with more than `bins` distinct values, else each value), the observed
    uplift mean_t - mean_c with a Welch SE, normal CI and p-value. Bins with fewer than
    `min_per_arm` rows in an arm get no estimate."""
    require(df, [outcome, treatment, *features], "subgroups")
    z = st.norm.ppf(0.5 + level / 2)
    out = []
    for f in features:
        d = df.where(F.col(f).isNotNull())
        nd = d.select(f).distinct().limit(bins + 1).count()
        if nd > bins:
            edges = sorted(set(d.approxQuantile(f, [i / bins for i in range(1, bins)], 1e-3)))
            key = F.lit(0)
            for e in edges:
                key = key + F.when(F.col(f).cast("double") > F.lit(e), 1).otherwise(0)
            bounds = [-math.inf, *edges, math.inf]
            label = {i: f"({bounds[i]:.4g}, {bounds[i + 1]:.4g}]" for i in range(len(bounds) - 1)}
        else:
            key, label = F.col(f), None
        y, w = F.col(outcome).cast("double"), F.col(treatment).cast("int")
        rows = (d.groupBy(key.alias("_k"))
                 .agg(*[F.sum(F.when(w == g, e).otherwise(0.0)).alias(f"{nm}{g}")
                        for g in (0, 1) for nm, e in (("n", F.lit(1.0)), ("s", y), ("q", y * y))])
                 .orderBy("_k").collect())
        for r in rows:
            res: dict[str, Any] = {"feature": f, "bin": label[r["_k"]] if label else str(r["_k"]),
                                   "n_treated": int(r["n1"]), "n_control": int(r["n0"])}
            if r["n1"] >= min_per_arm and r["n0"] >= min_per_arm:
                m1, m0 = r["s1"] / r["n1"], r["s0"] / r["n0"]
                v1 = (r["q1"] - r["n1"] * m1 * m1) / (r["n1"] - 1)
                v0 = (r["q0"] - r["n0"] * m0 * m0) / (r["n0"] - 1)
                se = math.sqrt(max(v1, 0) / r["n1"] + max(v0, 0) / r["n0"])
                u = m1 - m0
                res.update({"mean_treated": m1, "mean_control": m0, "uplift": u, "se": se,
                            "ci_low": u - z * se, "ci_high": u + z * se,
                            "p_value": float(2 * st.norm.sf(abs(u / se))) if se > 0 else math.nan})
            out.append(res)
    return out


def ate_transformed(df: DataFrame, outcome: str, treatment: str, p: float, level: float = 0.95,
                    by: str | None = None) -> list[dict[str, Any]]:
    """ATE = mean(Y*) with SE sd(Y*)/sqrt(n) (known p), optionally per group `by`."""
    ys = transformed_outcome(df, outcome, treatment, p)
    z = st.norm.ppf(0.5 + level / 2)
    g = df.groupBy(*([by] if by else [])).agg(F.avg(ys).alias("m"), F.stddev_samp(ys).alias("s"),
                                              F.count(F.lit(1)).alias("n"))
    out = []
    for r in g.collect():
        se = r["s"] / math.sqrt(r["n"])
        out.append({**({by: r[by]} if by else {}), "ate": r["m"], "se": se,
                    "ci_low": r["m"] - z * se, "ci_high": r["m"] + z * se, "n": int(r["n"])})
    return out
