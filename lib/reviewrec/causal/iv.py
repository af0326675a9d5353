"""Instrumental variables: two-stage least squares from Spark sufficient statistics.

One aggregation gives the cross-products of [1, exog, endog, instruments, y]; the 2SLS
coefficients are pure algebra on them. The robust (HC1) or cluster-robust (CR1) middle uses the
first-stage fitted regressors X^ = Z·Pi, written as Spark expressions, in a second pass. The
first stage reports, per endogenous regressor, the F statistic of the excluded instruments
(Wald/q with the same variance type as the second stage).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from reviewrec.causal.stats import INTERCEPT, LinearResult, _meat, agg_sums, ols, outer_sums, require, safe_inv


def iv_2sls(df: DataFrame, y: str, endog: Sequence[str], instruments: Sequence[str], *,
            exog: Sequence[str] = (), intercept: bool = True, vce: str = "hc1",
            cluster: str | None = None) -> dict[str, Any]:
    """y = X b + e with X = [1, exog, endog], instrumented by Z = [1, exog, instruments].

    Output: {"second_stage": LinearResult.to_dict(), "first_stage": [{endog, F, p, ...}],
    "result": LinearResult}. Rows with a null in any used column are dropped.
    """
    endog, instruments, exog = list(endog), list(instruments), list(exog)
    if len(instruments) < len(endog):
        raise ValueError(f"iv_2sls: {len(instruments)} instrument(s) for {len(endog)} endogenous regressor(s)")
    used = [y, *endog, *instruments, *exog] + ([cluster] if cluster else [])
    require(df, used, "iv_2sls")
    d = df.dropna(subset=used)
    base = ([INTERCEPT] if intercept else []) + exog
    allc = base + endog + instruments + [y]
    col = {INTERCEPT: F.lit(1.0), **{c: F.col(c).cast("double") for c in allc if c != INTERCEPT}}
    m, extra = outer_sums(d, [col[c] for c in allc], extra=[F.lit(1.0)])
    n = int(extra[0])
    ix = {c: i for i, c in enumerate(allc)}
    xn, zn = base + endog, base + instruments
    xi, zi, yi = [ix[c] for c in xn], [ix[c] for c in zn], ix[y]
    zz, zx, zy = m[np.ix_(zi, zi)], m[np.ix_(zi, xi)], m[zi, yi]
    zz_inv = safe_inv(zz, "Z'Z")
    xpx = zx.T @ zz_inv @ zx
    xpx_inv = safe_inv(xpx, "X'PzX")
    b = xpx_inv @ zx.T @ zz_inv @ zy
    k = len(xn)
    resid = col[y] - sum((F.lit(float(bj)) * col[c] for bj, c in zip(b, xn, strict=False)), F.lit(0.0))
    if vce == "iid":
        ssr = agg_sums(d, [resid * resid])[0]
        vcov = xpx_inv * ssr / (n - k)
        dfr, g = n - k, None
    else:
        pi = zz_inv @ zx  # kz x kx: X^ = Z Pi
        xhat = [sum((F.lit(float(pi[a, j])) * col[zc] for a, zc in enumerate(zn)), F.lit(0.0)) for j in range(k)]
        meat, g = _meat(d, xhat, resid, cluster if vce == "cluster" else None)
        if vce == "cluster":
            gg = int(g or 0)
            factor, dfr = gg / (gg - 1) * (n - 1) / (n - k), gg - 1
        else:
            factor, dfr = n / (n - k), n - k
        vcov = factor * xpx_inv @ meat @ xpx_inv
    res = LinearResult(xn, b, vcov, n, dfr, vce, g)
    first = []
    for e in endog:
        fs = ols(d, e, exog + instruments, intercept=intercept, vce=vce, cluster=cluster)
        w = fs.wald(instruments)
        first.append({"endog": e, "F": w["F"], "p_value": w["p_F"], "df": w["df"],
                      "coefficients": [r for r in fs.table() if r["term"] in instruments]})
    return {"second_stage": res.to_dict(), "first_stage": first, "result": res}
