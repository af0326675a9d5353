"""Regression discontinuity on Spark: sharp and fuzzy local-polynomial estimation with the
Calonico-Cattaneo-Titiunik (CCT) MSE-optimal bandwidth ("mserd"), conventional and robust
bias-corrected inference, a McCrary density test and binned means.

The procedure follows the published rdrobust algorithm (Calonico, Cattaneo, Farrell and
Titiunik 2017, "rdrobust: Software for regression-discontinuity designs", Stata Journal 17(2)):
pilot bandwidth C_K·min(sd, IQR/1.349)·M^(-1/5) on standardised x and y, then the three-step
d -> b -> h selection with the regularisation term, and the variance from nearest-neighbour
residuals (vce="nn", 3 matches; hc0/hc1 also available). Every step is a kernel-weighted
polynomial regression within a bandwidth, so everything the driver needs is a handful of
weighted power sums of (x - c) computed by one Spark aggregation per step. The NN residuals
are computed in Spark too: ties are collapsed to one row per distinct x, neighbours come from
window lags/leads, and the expansion rule runs vectorised in mapInPandas.

Also: the Imbens-Kalyanaraman (2012) MSE-optimal bandwidth (bwselect="ik", see ik_bandwidth)
and covariate adjustment in the manner of Calonico, Cattaneo, Farrell and Titiunik (2019)
(`covs`, see rdd()).

Not implemented: clustered variance, derivatives (deriv > 0), covariate-adjusted bandwidth
selection (with `covs` the bandwidth is selected on the unadjusted outcome, or given), and the
other bandwidth selectors of rdrobust (msetwo, msesum, cer*, except cerrd).

One module on purpose: it is one estimator's procedure, step for step as rdrobust's, so it is
read and checked against rdrobust as a whole (tests/test_causal_published.py).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from scipy import stats as st

from reviewrec.causal.stats import agg_sums, require, safe_inv

log = logging.getLogger(__name__)

KERNELS = ("triangular", "uniform", "epanechnikov")
VCES = ("nn", "hc0", "hc1")
BWSELECTS = ("mserd", "cerrd", "ik")
# Pilot-bandwidth constants of rdrobust per kernel.
_C_K = {"triangular": 2.576, "uniform": 1.843, "epanechnikov": 2.34}
# Imbens-Kalyanaraman (2012) kernel constants C_K for a kernel supported on |u| <= 1 (the paper's
# 5.40 for the triangular kernel is for support |u| <= 1/2); values as in R's rddtools.
_IK_C_K = {"triangular": 3.4375, "uniform": 2.70192}
_EPS = math.sqrt(np.finfo(float).eps)
U, Y, TT, SIDE = "_u", "_y", "_t", "_side"


def _kw(u: Column, h: float, kernel: str) -> Column:
    """Kernel weight K((x-c)/h)/h as in rdrobust (zero outside the support)."""
    v = F.abs(u / F.lit(h))
    if kernel == "uniform":
        val = F.lit(0.5 / h)
    elif kernel == "epanechnikov":
        val = F.lit(0.75) * (F.lit(1.0) - v * v) / F.lit(h)
    else:
        val = (F.lit(1.0) - v) / F.lit(h)
    return F.when(v <= 1, val).otherwise(F.lit(0.0))


def _on_side(side: int) -> Callable[[Column], Column]:
    """e -> e on the rows of one side of the cutoff (0 left, 1 right), 0 elsewhere: a side's sums
    are taken in the same Spark pass as the other's."""
    on = F.col(SIDE) == side
    return lambda e: F.when(on, e).otherwise(F.lit(0.0))


def _powers(u: Column, m: int) -> list[Column]:
    out, cur = [F.lit(1.0)], F.lit(1.0)
    for _ in range(m):
        cur = cur * u
        out.append(cur)
    return out


def _gram(s: np.ndarray, o: int) -> np.ndarray:
    return np.array([[s[i + j] for j in range(o + 1)] for i in range(o + 1)])


# -- nearest-neighbour residuals ----------------------------------------------------------------

def _nn_expand(pdf: pd.DataFrame, k: int, matches: int, has_t: bool) -> pd.DataFrame:
    """Vectorised rdrobust NN rule per distinct x: take the own tie group, then add the closer
    neighbouring tie group (both on a distance tie) until at least `matches` others are in."""
    n = len(pdf)
    cnt = pdf["_n"].to_numpy(float) - 1.0
    sy = pdf["_sy"].to_numpy(float).copy()
    stt = pdf["_st"].to_numpy(float).copy() if has_t else np.zeros(n)
    cap = np.minimum(matches, pdf["_ntot"].to_numpy(float) - 1.0)
    u = pdf[U].to_numpy(float)
    a = np.zeros(n, dtype=int)
    b = np.zeros(n, dtype=int)

    def get(prefix: str, idx: np.ndarray) -> np.ndarray:
        cols = np.stack([pdf[f"{prefix}{j}"].to_numpy(float) for j in range(1, k + 1)] + [np.full(n, np.nan)], axis=1)
        return cols[np.arange(n), np.minimum(idx, k)]

    for _ in range(2 * k + 2):
        active = cnt < cap
        if not active.any():
            break
        lu, ru = get("lu", a), get("ru", b)
        has_l, has_r = ~np.isnan(lu), ~np.isnan(ru)
        dl, dr = u - lu, ru - u
        tol = np.fmax(dl, dr) * _EPS
        take_r = active & has_r & (~has_l | (dl - dr > tol) | (np.abs(dl - dr) <= tol))
        take_l = active & has_l & (~has_r | (dr - dl > tol) | (np.abs(dl - dr) <= tol))
        for take, pre, idx in ((take_l, "l", a), (take_r, "r", b)):
            if take.any():
                cnt = cnt + np.where(take, np.nan_to_num(get(pre + "n", idx)), 0.0)
                sy = sy + np.where(take, np.nan_to_num(get(pre + "y", idx)), 0.0)
                if has_t:
                    stt = stt + np.where(take, np.nan_to_num(get(pre + "t", idx)), 0.0)
        a = a + take_l
        b = b + take_r
    return pd.DataFrame({SIDE: pdf[SIDE].to_numpy(), U: u, "_J": cnt, "_WY": sy, "_WT": stt})


def nn_residuals(d: DataFrame, matches: int = 3, has_t: bool = False) -> DataFrame:
    """Add `_ry` (and `_rt`) NN residuals within each side of `d` (columns _side, _u, _y[, _t]):
    r_i = sqrt(J/(J+1))·(y_i - mean of its J nearest neighbours), ties kept together."""
    k = matches
    g = d.groupBy(SIDE, U).agg(F.count(F.lit(1)).alias("_n"), F.sum(Y).alias("_sy"),
                               *([F.sum(TT).alias("_st")] if has_t else []))
    w = Window.partitionBy(SIDE).orderBy(U)
    cols = [F.col(SIDE), F.col(U), F.col("_n"), F.col("_sy"), *([F.col("_st")] if has_t else []),
            F.sum("_n").over(Window.partitionBy(SIDE)).alias("_ntot")]
    for j in range(1, k + 1):
        cols += [F.lag(U, j).over(w).alias(f"lu{j}"), F.lead(U, j).over(w).alias(f"ru{j}"),
                 F.lag("_n", j).over(w).alias(f"ln{j}"), F.lead("_n", j).over(w).alias(f"rn{j}"),
                 F.lag("_sy", j).over(w).alias(f"ly{j}"), F.lead("_sy", j).over(w).alias(f"ry{j}")]
        if has_t:
            cols += [F.lag("_st", j).over(w).alias(f"lt{j}"), F.lead("_st", j).over(w).alias(f"rt{j}")]
    wide = g.select(*cols)
    schema = T.StructType([T.StructField(SIDE, T.IntegerType()), T.StructField(U, T.DoubleType()),
                           T.StructField("_J", T.DoubleType()), T.StructField("_WY", T.DoubleType()),
                           T.StructField("_WT", T.DoubleType())])

    def fn(it: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in it:
            yield _nn_expand(pdf, k, matches, has_t)

    grp = wide.mapInPandas(fn, schema)
    out = d.join(grp, on=[SIDE, U], how="inner")
    sf = F.sqrt(F.col("_J") / (F.col("_J") + 1))
    out = out.withColumn("_ry", sf * (F.col(Y) - (F.col("_WY") - F.col(Y)) / F.col("_J")))
    if has_t:
        out = out.withColumn("_rt", sf * (F.col(TT) - (F.col("_WT") - F.col(TT)) / F.col("_J")))
    return out.drop("_J", "_WY", "_WT")


# -- the estimator -------------------------------------------------------------------------------

@dataclass
class _Ctx:
    d: DataFrame
    kernel: str
    vce: str
    nnmatch: int
    fuzzy: bool
    max_o: int = 4

    def __post_init__(self) -> None:
        self._nn_cache: dict[float, DataFrame] = {}
        self._sums: dict[tuple[float, bool], dict[int, dict[str, Any]]] = {}

    def window(self, side: int, h: float) -> DataFrame:
        return self.d.where((F.col(SIDE) == side) & (_kw(F.col(U), h, self.kernel) > 0))

    def nn_both(self, h: float) -> DataFrame:
        # Every bandwidth in the procedure is common to both sides: one Spark job serves both.
        key = float(h)
        if key not in self._nn_cache:
            both = self.d.where(_kw(F.col(U), h, self.kernel) > 0)
            self._nn_cache[key] = nn_residuals(both, self.nnmatch, self.fuzzy).localCheckpoint(eager=True)
        return self._nn_cache[key]

    def nn_window(self, side: int, h: float) -> DataFrame:
        return self.nn_both(h).where(F.col(SIDE) == side)

    @property
    def dcols(self) -> list[Column]:
        return [F.col(Y)] + ([F.col(TT)] if self.fuzzy else [])

    @property
    def rpairs(self) -> list[tuple[int, int]]:
        return [(0, 0), (0, 1), (1, 1)] if self.fuzzy else [(0, 0)]

    def sums(self, h: float, with_res: bool) -> dict[int, dict[str, Any]]:
        """One Spark pass over the window |u| < h, both sides: power sums S[m] = sum w u^m,
        SD[j, k] = sum w u^j D_k, and (NN residuals) R[(a, b)][m] = sum w^2 u^m r_a r_b, up to
        the orders any fit in the procedure needs (max_o)."""
        key = (float(h), with_res)
        if key in self._sums:
            return self._sums[key]
        mo = self.max_o
        u = F.col(U)
        w = _kw(u, h, self.kernel)
        pw = _powers(u, 2 * mo + 1)
        rc = [F.col("_ry"), F.col("_rt")]
        base = self.nn_both(h) if with_res else self.d.where(w > 0)
        exprs: list[Column] = []
        for side in (0, 1):
            c = _on_side(side)
            exprs += [c(w * pw[m]) for m in range(2 * mo + 2)]
            exprs += [c(w * pw[j] * dc) for j in range(mo + 1) for dc in self.dcols]
            exprs += [c(F.lit(1.0))]
            if with_res:
                exprs += [c(w * w * pw[m] * rc[a] * rc[b]) for a, b in self.rpairs for m in range(2 * mo + 1)]
        vals = agg_sums(base, exprs)
        nd = len(self.dcols)
        out: dict[int, dict[str, Any]] = {}
        i = 0
        for side in (0, 1):
            S = vals[i: i + 2 * mo + 2]
            i += 2 * mo + 2
            SD = vals[i: i + (mo + 1) * nd].reshape(mo + 1, nd)
            i += (mo + 1) * nd
            n = vals[i]
            i += 1
            R: dict[tuple[int, int], np.ndarray] = {}
            if with_res:
                for ab in self.rpairs:
                    R[ab] = vals[i: i + 2 * mo + 1]
                    i += 2 * mo + 1
            out[side] = {"S": S, "SD": SD, "n": n, "R": R}
        self._sums[key] = out
        return out


def _hc_factor(vce: str, n: float, d: int) -> float:
    return 1.0 if vce == "hc0" else math.sqrt(n / (n - d))


def _combine(R: dict[tuple[int, int], np.ndarray], s: np.ndarray) -> np.ndarray:
    """sum_i (s . r_i)^2 w^2 u^m from the per-pair sums R[(a, b)][m]."""
    tot = 0.0
    for (a, b), arr in R.items():
        tot = tot + (1 if a == b else 2) * s[a] * s[b] * arr
    return np.asarray(tot)


def _fit_and_var(ctx: _Ctx, side: int, h: float, o: int, s_fn: Any, extra_pow: int = 0,
                 need_var: bool = True) -> dict[str, Any]:
    """Kernel-weighted fit of order `o` on one side within h, then the sandwich middle with
    residuals combined by s (s_fn(beta) -> weights over the D columns). Returns G, invG, beta,
    S (power sums), M (meat), s. NN residuals: everything from one cached pass per window."""
    if ctx.vce == "nn" or not need_var:
        ws = ctx.sums(h, with_res=ctx.vce == "nn" and need_var)[side]
        G = _gram(ws["S"], o)
        invG = safe_inv(G, "local-polynomial Gram")
        beta = invG @ ws["SD"][: o + 1]
        s = np.asarray(s_fn(beta), float)
        M = _gram(_combine(ws["R"], s), o) if need_var else None
        return {"G": G, "invG": invG, "beta": beta, "S": ws["S"], "M": M, "s": s, "n": ws["n"]}
    u = F.col(U)
    w = _kw(u, h, ctx.kernel)
    pw = _powers(u, 2 * o + extra_pow)
    nd = len(ctx.dcols)
    base = ctx.window(side, h)
    exprs = [w * p for p in pw] + [w * pw[j] * dc for j in range(o + 1) for dc in ctx.dcols] + [F.lit(1.0)]
    sums = agg_sums(base, exprs)
    S = sums[: len(pw)]
    RWD = sums[len(pw): len(pw) + (o + 1) * nd].reshape(o + 1, nd)
    n = sums[-1]
    G = _gram(S, o)
    invG = safe_inv(G, "local-polynomial Gram")
    beta = invG @ RWD
    s = np.asarray(s_fn(beta), float)
    fac = _hc_factor(ctx.vce, n, o + 1)
    fitted = [sum((F.lit(float(beta[j, kk])) * pw[j] for j in range(o + 1)), F.lit(0.0)) for kk in range(nd)]
    r = sum((F.lit(float(sk * fac)) * (dc - fv) for sk, dc, fv in zip(s, ctx.dcols, fitted, strict=False)), F.lit(0.0))
    msum = agg_sums(base, [r * r * w * w * pw[m] for m in range(2 * o + 1)])
    M = _gram(msum, o)
    return {"G": G, "invG": invG, "beta": beta, "S": S, "M": M, "s": s, "n": n}


def _rd_bw(ctx: _Ctx, side: int, o: int, nu: int, o_b: int, h_v: float, h_b: float, scale: float,
           vcache: dict[tuple[int, int], Any]) -> tuple[float, float, float, float]:
    """One side's (V, B, R, rate) of the CCT bandwidth formula (rdrobust's rdrobust_bw)."""
    key = (o, nu)
    if key not in vcache:
        def s_v(beta: np.ndarray) -> np.ndarray:
            if not ctx.fuzzy:
                return np.array([1.0])
            ty, tt = math.factorial(nu) * beta[nu, 0], math.factorial(nu) * beta[nu, 1]
            return np.array([1 / tt, -ty / tt ** 2])

        f = _fit_and_var(ctx, side, h_v, o, s_v, extra_pow=1)
        vv = (f["invG"] @ f["M"] @ f["invG"])[nu, nu]
        v = np.array([f["S"][j + o + 1] for j in range(o + 1)]) / h_v ** (o + 1)
        bconst = (np.array([h_v ** j for j in range(o + 1)]) * (f["invG"] @ v))[nu]
        vcache[key] = (vv, bconst, f["s"])
    vv, bconst, s = vcache[key]
    fb = _fit_and_var(ctx, side, h_b, o_b, lambda beta: s, need_var=scale > 0)
    bwreg = 0.0
    if scale > 0:
        vb = (fb["invG"] @ fb["M"] @ fb["invG"])[-1, -1]
        bwreg = 3 * bconst ** 2 * vb
    bias = math.sqrt(2 * (o + 1 - nu)) * bconst * float(np.dot(s, fb["beta"][-1, :]))
    var = (2 * nu + 1) * h_v ** (2 * nu + 1) * vv
    reg = scale * (2 * (o + 1 - nu)) * bwreg
    return var, bias, reg, 1 / (2 * o + 3)


def _zcol(i: int) -> str:
    return f"_z{i}"


def _prepare(df: DataFrame, y: str, x: str, c: float, fuzzy: str | None,
             covs: Sequence[str] = ()) -> DataFrame:
    """Rows with y, x (and the treatment and covariates) all present; as rdrobust, a row with a
    missing covariate is left out of the whole estimation (the count is logged)."""
    cols = [y, x] + ([fuzzy] if fuzzy else []) + list(covs)
    require(df, cols, "rdd")
    d = df.dropna(subset=cols).select(
        (F.col(x).cast("double") - F.lit(float(c))).alias(U),
        F.col(y).cast("double").alias(Y),
        *([F.col(fuzzy).cast("double").alias(TT)] if fuzzy else []),
        *[F.col(z).cast("double").alias(_zcol(i)) for i, z in enumerate(covs)],
        F.when(F.col(x).cast("double") < F.lit(float(c)), 0).otherwise(1).alias(SIDE))
    return d


def _order_stats(d: DataFrame, n: int, ks: list[int]) -> list[float]:
    """Exact order statistics (0-based ranks) of _u, via Spark's exact percentile."""
    probs = [k / (n - 1) for k in ks]
    row = d.agg(F.percentile(F.col(U), F.array(*[F.lit(p) for p in probs])).alias("q")).first()
    return [float(v) for v in row["q"]]


def _quantile_type2(d: DataFrame, n: int, probs: list[float]) -> list[float]:
    """Hyndman-Fan type-2 quantiles (R's type=2, used by rdrobust) from exact order statistics."""
    out = []
    for p in probs:
        h = n * p
        j = int(math.floor(h))
        if h == j:
            a, b = _order_stats(d, n, [j - 1, j])
            out.append(0.5 * (a + b))
        else:
            out.append(_order_stats(d, n, [j])[0])
    return out


def select_bandwidth(d: DataFrame, *, p: int = 1, q: int = 2, kernel: str = "triangular", vce: str = "nn",
                     nnmatch: int = 3, fuzzy: bool = False, scaleregul: float = 1.0,
                     masspoints: str = "adjust", bwrestrict: bool = True,
                     bwcheck: int | None = None) -> dict[str, Any]:
    """CCT "mserd" bandwidths (h, b) on prepared data (columns _side, _u, _y[, _t]), plus "cerrd"."""
    desc = d.agg(F.count(F.lit(1)).alias("n"), F.stddev_samp(U).alias("sx"), F.stddev_samp(Y).alias("sy"),
                 F.min(U).alias("lo"), F.max(U).alias("hi"),
                 F.sum(F.when(F.col(SIDE) == 0, 1).otherwise(0)).alias("nl"),
                 F.countDistinct(F.when(F.col(SIDE) == 0, F.col(U))).alias("ml"),
                 F.countDistinct(F.when(F.col(SIDE) == 1, F.col(U))).alias("mr")).first()
    n, x_sd, y_sd = int(desc["n"]), float(desc["sx"]), float(desc["sy"])
    n_l, n_r = int(desc["nl"]), n - int(desc["nl"])
    if min(n_l, n_r) < q + 2:
        raise ValueError(f"rdd: too few observations on one side of the cutoff (left {n_l}, right {n_r})")
    q25, q75 = _quantile_type2(d, n, [0.25, 0.75])
    m_l, m_r = int(desc["ml"]), int(desc["mr"])
    M = n
    if masspoints in ("check", "adjust"):
        M = m_l + m_r
        if (1 - m_l / n_l >= 0.2 or 1 - m_r / n_r >= 0.2):
            log.warning("mass points detected in the running variable")
            if masspoints == "adjust" and bwcheck is None:
                bwcheck = 10
    # Bandwidths are chosen on standardised x and y (rdrobust's stdvars=TRUE).
    ds = d.select(F.col(SIDE), (F.col(U) / x_sd).alias(U), (F.col(Y) / y_sd).alias(Y),
                  *([F.col(TT)] if fuzzy else []))
    ctx = _Ctx(ds, kernel, vce, nnmatch, fuzzy, max_o=q + 2)
    lo, hi = float(desc["lo"]) / x_sd, float(desc["hi"]) / x_sd
    bwp = min(1.0, ((q75 - q25) / x_sd) / 1.349)
    c_bw = _C_K[kernel] * bwp * M ** (-1 / 5)
    bw_max_l, bw_max_r = abs(lo), abs(hi)
    bw_max = max(bw_max_l, bw_max_r)
    if bwrestrict:
        c_bw = min(c_bw, bw_max)
    bw_min = 0.0
    if bwcheck is not None:
        mins = []
        for side, kk in ((0, min(bwcheck, m_l)), (1, min(bwcheck, m_r))):
            vals = (ds.where(F.col(SIDE) == side).select(F.abs(U).alias("a")).distinct()
                      .orderBy("a").limit(kk).collect())
            mins.append(float(vals[-1]["a"]) * (1 + _EPS))
        bw_min = max(mins)
        c_bw = max(c_bw, bw_min)
    vl: dict[tuple[int, int], Any] = {}
    vr: dict[tuple[int, int], Any] = {}
    cdl = _rd_bw(ctx, 0, q + 1, q + 1, q + 2, c_bw, bw_max_l * (1 + _EPS), 0.0, vl)
    cdr = _rd_bw(ctx, 1, q + 1, q + 1, q + 2, c_bw, bw_max_r * (1 + _EPS), 0.0, vr)
    d_bw = ((cdl[0] + cdr[0]) / (cdr[1] - cdl[1]) ** 2) ** cdl[3]
    if bwrestrict:
        d_bw = min(d_bw, bw_max)
    if bwcheck is not None:
        d_bw = max(d_bw, bw_min)
    cbl = _rd_bw(ctx, 0, q, p + 1, q + 1, c_bw, d_bw, scaleregul, vl)
    cbr = _rd_bw(ctx, 1, q, p + 1, q + 1, c_bw, d_bw, scaleregul, vr)
    b_bw = ((cbl[0] + cbr[0]) / ((cbr[1] - cbl[1]) ** 2 + scaleregul * (cbr[2] + cbl[2]))) ** cbl[3]
    if bwrestrict:
        b_bw = min(b_bw, bw_max)
    chl = _rd_bw(ctx, 0, p, 0, q, c_bw, b_bw, scaleregul, vl)
    chr_ = _rd_bw(ctx, 1, p, 0, q, c_bw, b_bw, scaleregul, vr)
    h_bw = ((chl[0] + chr_[0]) / ((chr_[1] - chl[1]) ** 2 + scaleregul * (chr_[2] + chl[2]))) ** chl[3]
    if bwrestrict:
        h_bw = min(h_bw, bw_max)
    h, b = x_sd * h_bw, x_sd * b_bw
    cer = n ** (-(p / ((3 + p) * (3 + 2 * p))))
    return {"h": h, "b": b, "h_cerrd": h * cer, "b_cerrd": b, "pilot": x_sd * c_bw,
            "n_left": n_l, "n_right": n_r, "distinct_left": m_l, "distinct_right": m_r}


def ik_bandwidth(d: DataFrame, *, kernel: str = "triangular") -> dict[str, Any]:
    """Imbens-Kalyanaraman (2012, Review of Economic Studies 79(3), section 4.2) MSE-optimal
    bandwidth for the sharp local-linear RD estimator, on prepared data (columns _side, _u, _y).

    Step 1: pilot h1 = 1.84·sd(x)·N^(-1/5); density f(c) = (N_h1,- + N_h1,+)/(2·N·h1) and the
    conditional variances sigma^2_-, sigma^2_+ = sample variances of y within h1 on each side.
    Step 2: m3 = 6 x the cubic coefficient of a global regression of y on (1, 1{x >= c}, u, u^2,
    u^3); h2,± = 7200^(1/7)·(sigma^2_± / (f(c)·m3^2))^(1/7)·N_±^(-1/7); m2,± = 2 x the quadratic
    coefficient of a quadratic fit within h2,± on each side.
    Step 3: regularisation r_± = 2160·sigma^2_± / (N_h2,±·h2,±^4) and
    h_IK = C_K·((sigma^2_- + sigma^2_+) / (f(c)·((m2,+ - m2,-)^2 + r_+ + r_-)))^(1/5)·N^(-1/5),
    C_K = 3.4375 (triangular) or 2.70192 (uniform) for kernels on |u| <= 1.
    Windows: [c - h, c) on the left and [c, c + h] on the right, as R's rddtools (RDDbw_IK).
    Each step is one Spark aggregation; the driver solves 5x5 and 3x3 systems.
    """
    if kernel not in _IK_C_K:
        raise ValueError(f"ik bandwidth: kernel={kernel!r} has no IK constant; choose one of {tuple(_IK_C_K)}")
    u, y = F.col(U), F.col(Y)
    left, right = F.col(SIDE) == 0, F.col(SIDE) == 1
    desc = d.agg(F.count(F.lit(1)).alias("n"), F.stddev_samp(U).alias("sx"),
                 F.sum(F.when(left, 1).otherwise(0)).alias("nl")).first()
    n, sx = int(desc["n"]), float(desc["sx"])
    n_l, n_r = int(desc["nl"]), n - int(desc["nl"])
    if min(n_l, n_r) < 5:
        raise ValueError(f"ik bandwidth: too few observations on one side of the cutoff (left {n_l}, right {n_r})")
    h1 = 1.84 * sx * n ** -0.2
    in1 = [left & (u >= -h1), right & (u <= h1)]
    # Step 1 and the global cubic of step 2 in one pass.
    one = F.lit(1.0)
    exprs: list[Column] = []
    for w in in1:
        exprs += [F.when(w, one), F.when(w, y), F.when(w, y * y)]
    pw = _powers(u, 6)
    exprs += [pw[m] for m in range(7)] + [F.when(right, pw[m]) for m in range(4)]
    exprs += [pw[m] * y for m in range(4)] + [F.when(right, y)]
    v = agg_sums(d, exprs)
    var = []
    for i in range(2):
        cnt, sy, syy = v[3 * i: 3 * i + 3]
        if cnt < 2:
            raise ValueError(f"ik bandwidth: fewer than 2 observations within the pilot bandwidth {h1:.4g} "
                             f"on the {'left' if i == 0 else 'right'} side")
        var.append((syy - sy * sy / cnt) / (cnt - 1))
    n1 = v[0] + v[3]
    f_c = n1 / (2 * n * h1)
    S, SR = v[6:13], v[13:17]
    XY, YR = v[17:21], v[21]
    # Design (1, D, u, u^2, u^3): X'X from the all-row power sums and the right-side ones.
    XtX = np.zeros((5, 5))
    idx = [None, "D", 1, 2, 3]
    for a in range(5):
        for b in range(5):
            ia, ib = idx[a], idx[b]
            if ia == "D" and ib == "D":
                XtX[a, b] = SR[0]
            elif ia == "D" or ib == "D":
                other = ib if ia == "D" else ia
                XtX[a, b] = SR[0 if other is None else other]
            else:
                XtX[a, b] = S[(ia or 0) + (ib or 0)]
    Xty = np.array([XY[0], YR, XY[1], XY[2], XY[3]])
    beta = safe_inv(XtX, "IK global cubic") @ Xty
    m3 = 6 * float(beta[4])
    if m3 == 0:
        raise ValueError("ik bandwidth: the third derivative estimate is exactly zero")
    c_h2 = 7200 ** (1 / 7)
    h2 = [c_h2 * (var[0] / (f_c * m3 ** 2)) ** (1 / 7) * n_l ** (-1 / 7),
          c_h2 * (var[1] / (f_c * m3 ** 2)) ** (1 / 7) * n_r ** (-1 / 7)]
    in2 = [left & (u >= -h2[0]), right & (u <= h2[1])]
    exprs = []
    for w in in2:
        exprs += [F.when(w, pw[m]) for m in range(5)] + [F.when(w, pw[m] * y) for m in range(3)]
    v2 = agg_sums(d, exprs)
    m2, n2 = [], []
    for i in range(2):
        s4, sy2 = v2[8 * i: 8 * i + 5], v2[8 * i + 5: 8 * i + 8]
        if s4[0] < 3:
            raise ValueError(f"ik bandwidth: fewer than 3 observations within h2 = {h2[i]:.4g} on the "
                             f"{'left' if i == 0 else 'right'} side")
        b2 = safe_inv(_gram(s4, 2), "IK local quadratic") @ sy2
        m2.append(2 * float(b2[2]))
        n2.append(float(s4[0]))
    r = [2160 * var[i] / (n2[i] * h2[i] ** 4) for i in range(2)]
    h = _IK_C_K[kernel] * ((var[0] + var[1]) / (f_c * ((m2[1] - m2[0]) ** 2 + r[0] + r[1]))) ** 0.2 * n ** -0.2
    return {"h": float(h), "b": float(h), "pilot": h1, "f_c": f_c, "sigma2_left": var[0], "sigma2_right": var[1],
            "m3": m3, "h2_left": h2[0], "h2_right": h2[1], "m2_left": m2[0], "m2_right": m2[1],
            "reg_left": r[0], "reg_right": r[1], "n_left": n_l, "n_right": n_r}


def covariate_gamma(d: DataFrame, h: float, p: int, kernel: str, n_covs: int, fuzzy: bool) -> np.ndarray:
    """Calonico-Cattaneo-Farrell-Titiunik (2019) covariate coefficients: gamma = (sum over sides
    of Z'W(I - R(R'WR)^-1 R'W)Z)^-1 (the same with Y [and the treatment]), W the kernel weights
    at h and R the side's polynomial of order p, i.e. one Z coefficient common to both sides
    while the polynomials in x stay side-specific (as rdrobust's gamma_p). One Spark pass.
    Returns an (n_covs x (1 + fuzzy)) array."""
    u = F.col(U)
    w = _kw(u, h, kernel)
    pw = _powers(u, 2 * p)
    dc = [F.col(Y)] + ([F.col(TT)] if fuzzy else [])
    zc = [F.col(_zcol(i)) for i in range(n_covs)]
    k, nd = n_covs, len(dc)
    exprs: list[Column] = []
    for side in (0, 1):
        c = _on_side(side)
        exprs += [c(w * pw[m]) for m in range(2 * p + 1)]
        exprs += [c(w * pw[j] * x) for j in range(p + 1) for x in dc + zc]
        exprs += [c(w * zc[a] * zc[b]) for a in range(k) for b in range(a, k)]
        exprs += [c(w * zc[a] * x) for a in range(k) for x in dc]
    v = agg_sums(d.where(w > 0), exprs)
    zwz, zwy = np.zeros((k, k)), np.zeros((k, nd))
    i = 0
    for _side in (0, 1):
        S = v[i: i + 2 * p + 1]
        i += 2 * p + 1
        Ud = v[i: i + (p + 1) * (nd + k)].reshape(p + 1, nd + k)
        i += (p + 1) * (nd + k)
        zz = np.zeros((k, k))
        for a in range(k):
            for b in range(a, k):
                zz[a, b] = zz[b, a] = v[i]
                i += 1
        zy = v[i: i + k * nd].reshape(k, nd)
        i += k * nd
        invG = safe_inv(_gram(S, p), "RD Gram (covariates)")
        Uy, Uz = Ud[:, :nd], Ud[:, nd:]
        zwz += zz - Uz.T @ invG @ Uz
        zwy += zy - Uz.T @ invG @ Uy
    if np.linalg.matrix_rank(zwz) < k:
        raise ValueError(f"rdd: the covariates are collinear within the bandwidth h={h:.4g} "
                         "(rank of the partialled Z'WZ below the number of covariates); drop one")
    return np.linalg.solve(zwz, zwy)


def rdd(df: DataFrame, y: str, x: str, c: float = 0.0, *, fuzzy: str | None = None, p: int = 1, q: int = 2,
        kernel: str = "triangular", h: float | None = None, b: float | None = None, bwselect: str = "mserd",
        vce: str = "nn", nnmatch: int = 3, level: float = 95.0, scaleregul: float = 1.0,
        masspoints: str = "adjust", bwrestrict: bool = True, covs: Sequence[str] | None = None) -> dict[str, Any]:
    """Local-polynomial RD estimate of the jump in `y` at x = c (sharp, or fuzzy with treatment
    column `fuzzy`: the ratio of the jumps in y and in the treatment).

    h: main bandwidth (None: selected by `bwselect`: CCT "mserd" / "cerrd", or "ik" =
    Imbens-Kalyanaraman 2012, sharp p=1 only); b: bias bandwidth (default the selected b; with
    "ik" or a given h, b = h).
    covs: pre-treatment covariates for the covariate-adjusted estimator of Calonico, Cattaneo,
    Farrell and Titiunik (2019): tau = (jump in y) - gamma'(jump in Z), gamma from
    covariate_gamma() at h. Because every estimate and every residual of rdrobust's covariate
    branch is linear in (y, Z) with that one gamma, this equals the plain estimator on
    y - Z·gamma (and treatment - Z·gamma_t when fuzzy), which is how it is computed. Rows with
    a missing covariate are left out of everything. Bandwidths are selected on the unadjusted
    outcome (rdrobust also adjusts the selection for covariates; pass h and b to reproduce it).
    Output dict: estimates (conventional, bias-corrected, robust) with SE, z, p and CI; h, b,
    N and effective N per side; covariates and gamma when given.
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel={kernel!r}; choose one of {KERNELS}")
    if vce not in VCES:
        raise ValueError(f"vce={vce!r}; choose one of {VCES}")
    if bwselect not in BWSELECTS:
        raise ValueError(f"bwselect={bwselect!r}; implemented: {BWSELECTS}")
    if q <= p:
        raise ValueError(f"q={q} must exceed p={p}")
    if bwselect == "ik" and h is None and (p != 1 or fuzzy):
        raise ValueError(f"bwselect='ik' is the sharp local-linear selector (p=1, no fuzzy); got p={p}, "
                         f"fuzzy={fuzzy!r}")
    covs = list(covs or [])
    if len(set(covs)) != len(covs) or set(covs) & {y, x, fuzzy}:
        raise ValueError(f"rdd: covs {covs} must be distinct and differ from y, x and the treatment")
    d = _prepare(df, y, x, c, fuzzy, covs).localCheckpoint(eager=True)
    bw: dict[str, Any] = {}
    if h is None:
        if bwselect == "ik":
            bw = ik_bandwidth(d, kernel=kernel)
            h = bw["h"]
            b = h if b is None else b
        else:
            bw = select_bandwidth(d, p=p, q=q, kernel=kernel, vce=vce, nnmatch=nnmatch, fuzzy=fuzzy is not None,
                                  scaleregul=scaleregul, masspoints=masspoints, bwrestrict=bwrestrict)
            h = bw["h_cerrd"] if bwselect == "cerrd" else bw["h"]
            b = bw["b"] if b is None else b
    elif b is None:
        b = h
    cov_out = None
    if covs:
        gamma = covariate_gamma(d, float(h), p, kernel, len(covs), fuzzy is not None)
        adj = [F.col(Y) - sum((F.lit(float(gamma[i, 0])) * F.col(_zcol(i)) for i in range(len(covs))), F.lit(0.0))]
        if fuzzy:
            adj.append(F.col(TT) - sum((F.lit(float(gamma[i, 1])) * F.col(_zcol(i)) for i in range(len(covs))),
                                       F.lit(0.0)))
        d = d.select(F.col(SIDE), F.col(U), adj[0].alias(Y), *([adj[1].alias(TT)] if fuzzy else [])) \
             .localCheckpoint(eager=True)
        cov_out = {"names": covs, "gamma": gamma[:, 0].tolist(),
                   "gamma_treatment": gamma[:, 1].tolist() if fuzzy else None}
    res = _estimate(d, float(h), float(b), p, q, kernel, vce, nnmatch, fuzzy is not None, level)
    res.update({"bandwidth_selection": bw or "given", "bwselect": bwselect if bw else "manual",
                "kernel": kernel, "vce": vce, "p": p, "q": q, "cutoff": c, "covariates": cov_out})
    return res


def _estimate(d: DataFrame, h: float, b: float, p: int, q: int, kernel: str, vce: str, nnmatch: int,
              fuzzy: bool, level: float) -> dict[str, Any]:
    ctx = _Ctx(d, kernel, vce, nnmatch, fuzzy)
    u = F.col(U)
    wh, wb = _kw(u, h, kernel), _kw(u, b, kernel)
    nd = len(ctx.dcols)
    pw = _powers(u, max(2 * q, 2 * p + 1, p + q))
    nn = vce == "nn"
    base = ctx.nn_both(max(h, b)) if nn else d.where(_kw(u, max(h, b), kernel) > 0)
    rc = [F.col("_ry"), F.col("_rt")]
    # One pass, both sides: fits at h (order p) and b (order q) and, with NN residuals (which
    # do not depend on the fit), every power sum the conventional and robust middles need.
    exprs: list[Column] = []
    for side in (0, 1):
        c = _on_side(side)
        exprs += ([c(wh * pw[m]) for m in range(2 * p + 2)] + [c(wb * pw[m]) for m in range(2 * q + 1)]
                  + [c(wh * pw[j] * dc) for j in range(p + 1) for dc in ctx.dcols]
                  + [c(wb * pw[j] * dc) for j in range(q + 1) for dc in ctx.dcols]
                  + [c(F.lit(1.0)), c(F.when(wh > 0, 1.0).otherwise(0.0)), c(F.when(wb > 0, 1.0).otherwise(0.0))])
        if nn:
            for a_, b_ in ctx.rpairs:
                rr = rc[a_] * rc[b_]
                exprs += ([c(rr * wh * wh * pw[m]) for m in range(2 * p + 1)]
                          + [c(rr * wh * wb * pw[m]) for m in range(p + q + 1)]
                          + [c(rr * wb * wb * pw[m]) for m in range(2 * q + 1)])
    s = agg_sums(base, exprs)
    sides: dict[int, dict[str, Any]] = {}
    i = 0
    for side in (0, 1):
        sh = s[i: i + 2 * p + 2]
        i += 2 * p + 2
        sb = s[i: i + 2 * q + 1]
        i += 2 * q + 1
        rwd_p = s[i: i + (p + 1) * nd].reshape(p + 1, nd)
        i += (p + 1) * nd
        rwd_q = s[i: i + (q + 1) * nd].reshape(q + 1, nd)
        i += (q + 1) * nd
        n_win, n_h, n_b = s[i], s[i + 1], s[i + 2]
        i += 3
        res_sums: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        if nn:
            for ab in ctx.rpairs:
                hh = s[i: i + 2 * p + 1]
                i += 2 * p + 1
                hb = s[i: i + p + q + 1]
                i += p + q + 1
                bb = s[i: i + 2 * q + 1]
                i += 2 * q + 1
                res_sums[ab] = (hh, hb, bb)
        if n_h < p + 2 or n_b < q + 2:
            raise ValueError(f"rdd: too few observations within the bandwidth on the "
                             f"{'left' if side == 0 else 'right'} side (h: {int(n_h)}, b: {int(n_b)})")
        inv_p = safe_inv(_gram(sh, p), "RD Gram (p)")
        inv_q = safe_inv(_gram(sb, q), "RD Gram (q)")
        L = np.array([sh[j + p + 1] for j in range(p + 1)]) / h ** (p + 1)
        g = inv_q[p + 1, :]
        beta_p = inv_p @ rwd_p
        beta_q = inv_q @ rwd_q
        beta_bc = inv_p @ (rwd_p - h ** (p + 1) * np.outer(L, g @ rwd_q))
        sides[side] = {"inv_p": inv_p, "L": L, "g": g, "beta_p": beta_p, "beta_q": beta_q, "res": res_sums,
                       "beta_bc": beta_bc, "n_win": n_win, "n_h": int(n_h), "n_b": int(n_b)}
    bp = sides[1]["beta_p"] - sides[0]["beta_p"]
    bbc = sides[1]["beta_bc"] - sides[0]["beta_bc"]
    tau_cl, tau_bc = float(bp[0, 0]), float(bbc[0, 0])
    s_y = np.array([1.0])
    first_stage = None
    if fuzzy:
        ty, tt = bp[0, 0], bp[0, 1]
        ty_bc, tt_bc = bbc[0, 0], bbc[0, 1]
        tau_cl = float(ty / tt)
        s_y = np.array([1 / tt, -ty / tt ** 2])
        tau_bc = float(tau_cl - s_y @ np.array([ty - ty_bc, tt - tt_bc]))
        first_stage = {"conventional": float(tt), "bias_corrected": float(tt_bc)}
    v_cl = v_rb = 0.0
    for side in (0, 1):
        sd = sides[side]
        L, g = sd["L"], sd["g"]
        if nn:
            hh = _combine({k: v[0] for k, v in sd["res"].items()}, s_y)
            hb = _combine({k: v[1] for k, v in sd["res"].items()}, s_y)
            bb = _combine({k: v[2] for k, v in sd["res"].items()}, s_y)
            mh = _gram(hh, p)
            a = mh
            bv = np.array([sum(g[jj] * hb[j + jj] for jj in range(q + 1)) for j in range(p + 1)])
            cs = float(sum(g[x1] * g[x2] * bb[x1 + x2] for x1 in range(q + 1) for x2 in range(q + 1)))
        else:
            sbase = base.where(F.col(SIDE) == side)
            fh = _hc_factor(vce, sd["n_win"], p + 1)
            fb = _hc_factor(vce, sd["n_win"], q + 1)
            fit_p = [sum((F.lit(float(sd["beta_p"][j, kk])) * pw[j] for j in range(p + 1)), F.lit(0.0))
                     for kk in range(nd)]
            fit_q = [sum((F.lit(float(sd["beta_q"][j, kk])) * pw[j] for j in range(q + 1)), F.lit(0.0))
                     for kk in range(nd)]
            rh = sum((F.lit(float(sk * fh)) * (dc - fv) for sk, dc, fv in zip(s_y, ctx.dcols, fit_p, strict=False)),
                     F.lit(0.0))
            rb = sum((F.lit(float(sk * fb)) * (dc - fv) for sk, dc, fv in zip(s_y, ctx.dcols, fit_q, strict=False)),
                     F.lit(0.0))
            poly_g = sum((F.lit(float(gj)) * pw[j] for j, gj in enumerate(g)), F.lit(0.0))
            ex = ([rh * rh * wh * wh * pw[m] for m in range(2 * p + 1)]
                  + [rb * rb * wh * wh * pw[m] for m in range(2 * p + 1)]
                  + [rb * rb * wh * wb * poly_g * pw[j] for j in range(p + 1)]
                  + [rb * rb * wb * wb * poly_g * poly_g])
            ss = agg_sums(sbase, ex)
            mh = _gram(ss[: 2 * p + 1], p)
            a = _gram(ss[2 * p + 1: 4 * p + 2], p)
            bv = ss[4 * p + 2: 5 * p + 3]
            cs = ss[-1]
        mb = a - h ** (p + 1) * (np.outer(bv, L) + np.outer(L, bv)) + h ** (2 * p + 2) * cs * np.outer(L, L)
        v_cl += float((sd["inv_p"] @ mh @ sd["inv_p"])[0, 0])
        v_rb += float((sd["inv_p"] @ mb @ sd["inv_p"])[0, 0])
    se_cl, se_rb = math.sqrt(v_cl), math.sqrt(v_rb)
    z = st.norm.ppf(1 - (1 - level / 100) / 2)

    def row(est: float, se: float) -> dict[str, float]:
        zz = est / se
        return {"coef": est, "se": se, "z": zz, "p_value": float(2 * st.norm.sf(abs(zz))),
                "ci_low": est - z * se, "ci_high": est + z * se}

    return {"conventional": row(tau_cl, se_cl), "bias_corrected": row(tau_bc, se_cl),
            "robust": row(tau_bc, se_rb), "h": h, "b": b, "level": level,
            "n_h_left": sides[0]["n_h"], "n_h_right": sides[1]["n_h"], "first_stage": first_stage,
            "fit_left": sides[0]["beta_p"][:, 0].tolist(), "fit_right": sides[1]["beta_p"][:, 0].tolist()}


# -- manipulation test and binned means -----------------------------------------------------------

def _local_linear_at_zero(xs: np.ndarray, ys: np.ndarray, h: float) -> float:
    """Triangular-kernel local-linear intercept at 0 (small arrays of bin midpoints)."""
    w = np.clip(1 - np.abs(xs) / h, 0, None)
    keep = w > 0
    if keep.sum() < 2:
        raise ValueError(f"density test: fewer than 2 bins within the bandwidth {h:.4g} on one side")
    X = np.column_stack([np.ones(keep.sum()), xs[keep]])
    W = w[keep]
    beta = np.linalg.solve(X.T @ (X * W[:, None]), X.T @ (W * ys[keep]))
    return float(beta[0])


def density_test(df: DataFrame, x: str, c: float = 0.0, *, bin_width: float | None = None,
                 bandwidth: float | None = None) -> dict[str, Any]:
    """McCrary (2008) test of a discontinuity in the density of `x` at c.

    A histogram with bins that never straddle c (default width 2·sd·n^(-1/2)) is computed in
    Spark; the small table of bin heights is smoothed on each side by triangular local-linear
    regression at c (default bandwidth: McCrary's rule of thumb from a global quartic per side,
    averaged over the sides). theta = ln f+ - ln f-, SE = sqrt((1/(n h))·(24/5)·(1/f+ + 1/f-)).
    Output: theta, se, z, p_value, f_left, f_right, bin_width, bandwidth, bins (for the plot).
    """
    require(df, [x], "density_test")
    u = F.col(x).cast("double") - F.lit(float(c))
    d = df.where(F.col(x).isNotNull()).select(u.alias(U))
    desc = d.agg(F.count(F.lit(1)).alias("n"), F.stddev_samp(U).alias("sd"), F.min(U).alias("lo"),
                 F.max(U).alias("hi")).first()
    n, sd, lo, hi = int(desc["n"]), float(desc["sd"]), float(desc["lo"]), float(desc["hi"])
    if lo >= 0 or hi < 0:
        raise ValueError(f"density_test: cutoff {c} is outside the range of {x}")
    bw = bin_width or 2 * sd * n ** -0.5
    rows = d.groupBy(F.floor(F.col(U) / bw).cast("long").alias("j")).count().collect()
    j = np.array([r["j"] for r in rows], dtype=float)
    cnt = np.array([r["count"] for r in rows], dtype=float)
    order = np.argsort(j)
    j, cnt = j[order], cnt[order]
    # Fill empty bins inside the support with zero height.
    full = np.arange(j.min(), j.max() + 1)
    heights = np.zeros(len(full))
    heights[np.searchsorted(full, j)] = cnt / (n * bw)
    mids = (full + 0.5) * bw
    left, right = mids < 0, mids >= 0
    if bandwidth is None:
        hs = []
        for m in (left, right):
            xm, ym = mids[m], heights[m]
            if len(xm) < 6:
                raise ValueError("density_test: too few bins on one side for the rule-of-thumb bandwidth")
            X = np.column_stack([xm ** k for k in range(5)])
            coef, *_ = np.linalg.lstsq(X, ym, rcond=None)
            resid = ym - X @ coef
            s2 = float(resid @ resid) / max(len(xm) - 5, 1)
            f2 = 2 * coef[2] + 6 * coef[3] * xm + 12 * coef[4] * xm ** 2
            rng = float(xm.max() - xm.min()) + bw
            hs.append(3.348 * (s2 * rng / max(float(np.sum(f2 ** 2)), 1e-300)) ** 0.2)
        bandwidth = float(np.mean(hs))
    f_l = _local_linear_at_zero(mids[left], heights[left], bandwidth)
    f_r = _local_linear_at_zero(mids[right], heights[right], bandwidth)
    if f_l <= 0 or f_r <= 0:
        raise ValueError(f"density_test: non-positive density estimate at the cutoff (left {f_l:.3g}, right {f_r:.3g})")
    theta = math.log(f_r) - math.log(f_l)
    se = math.sqrt((1 / (n * bandwidth)) * (24 / 5) * (1 / f_r + 1 / f_l))
    z = theta / se
    return {"theta": theta, "se": se, "z": z, "p_value": float(2 * st.norm.sf(abs(z))), "f_left": f_l,
            "f_right": f_r, "bin_width": bw, "bandwidth": bandwidth, "n": n,
            "bins": [{"mid": float(m) + c, "height": float(hh)} for m, hh in zip(mids, heights, strict=False)]}


def binned_means(df: DataFrame, y: str, x: str, c: float = 0.0, *, bins_per_side: int = 20,
                 x_range: tuple[float, float] | None = None) -> list[dict[str, Any]]:
    """Equal-width bins of x on each side of c (never straddling it): mean y, n per bin."""
    require(df, [y, x], "binned_means")
    d = df.dropna(subset=[y, x])
    if x_range is None:
        r = d.agg(F.min(x).alias("lo"), F.max(x).alias("hi")).first()
        x_range = (float(r["lo"]), float(r["hi"]))
    lo, hi = x_range
    wl, wr = (c - lo) / bins_per_side, (hi - c) / bins_per_side
    xc = F.col(x).cast("double")
    b = F.when(xc < c, -F.least(F.floor((F.lit(c) - xc) / wl), F.lit(bins_per_side - 1)) - 1) \
        .otherwise(F.least(F.floor((xc - F.lit(c)) / wr), F.lit(bins_per_side - 1)))
    rows = (d.where((xc >= lo) & (xc <= hi)).groupBy(b.cast("int").alias("bin"))
              .agg(F.avg(xc).alias("x_mean"), F.avg(F.col(y).cast("double")).alias("y_mean"),
                   F.count(F.lit(1)).alias("n")).orderBy("bin").collect())
    return [{"bin": int(r["bin"]), "x_mean": float(r["x_mean"]), "y_mean": float(r["y_mean"]), "n": int(r["n"])}
            for r in rows]
