"""Least squares from Spark sufficient statistics: X'WX and X'Wy by one aggregation, the
residual "meat" (heteroskedasticity- or cluster-robust) by a second, the algebra in numpy.

Nothing per-row reaches the driver: cluster-robust SEs sum the scores per cluster in Spark
(groupBy) and then sum their outer products in Spark again, so only a k x k matrix is collected.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from scipy import stats as st

log = logging.getLogger(__name__)

INTERCEPT = "_const"
VCE_CHOICES = ("iid", "hc1", "cluster")


def require(df: DataFrame, cols: Sequence[str], what: str) -> None:
    """Raise a ValueError naming every column of `cols` missing from `df`."""
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; present: {sorted(df.columns)}")


def agg_sums(df: DataFrame, exprs: Sequence[Column]) -> np.ndarray:
    """Sum each expression over `df` in one Spark job; returns a float vector (nulls count 0)."""
    if not exprs:
        return np.zeros(0)
    row = df.agg(*[F.sum(e.cast("double")).alias(f"s{i}") for i, e in enumerate(exprs)]).first()
    return np.array([0.0 if v is None else float(v) for v in row], dtype=float)


def outer_sums(df: DataFrame, cols: Sequence[Column], weight: Column | None = None,
               extra: Sequence[Column] = ()) -> tuple[np.ndarray, np.ndarray]:
    """sum(w * c_i * c_j) as a symmetric matrix, plus sum(e) for each `extra` expression."""
    k = len(cols)
    w = weight if weight is not None else F.lit(1.0)
    pairs = [(i, j) for i in range(k) for j in range(i, k)]
    sums = agg_sums(df, [w * cols[i] * cols[j] for i, j in pairs] + list(extra))
    m = np.zeros((k, k))
    for (i, j), v in zip(pairs, sums[: len(pairs)], strict=False):
        m[i, j] = m[j, i] = v
    return m, sums[len(pairs):]


def safe_inv(m: np.ndarray, what: str = "X'X") -> np.ndarray:
    try:
        inv = np.linalg.inv(m)
    except np.linalg.LinAlgError:
        inv = None
    if inv is None or not np.all(np.isfinite(inv)) or np.linalg.cond(m) > 1e13:
        log.warning("%s is singular or ill-conditioned (cond %.3g); using the pseudo-inverse", what,
                    np.linalg.cond(m))
        inv = np.linalg.pinv(m)
    return inv


@dataclass
class LinearResult:
    """Coefficients, their covariance and inference. `df_resid` is used for t/F p-values."""

    names: list[str]
    coef: np.ndarray
    vcov: np.ndarray
    n: int
    df_resid: int
    vce: str
    n_clusters: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.vcov), 0, None))

    def index(self, name: str) -> int:
        if name not in self.names:
            raise KeyError(f"no coefficient {name!r}; have {self.names}")
        return self.names.index(name)

    def __getitem__(self, name: str) -> float:
        return float(self.coef[self.index(name)])

    def se_of(self, name: str) -> float:
        return float(self.se[self.index(name)])

    def table(self, level: float = 0.95) -> list[dict[str, Any]]:
        q = st.t.ppf(0.5 + level / 2, self.df_resid)
        out = []
        for i, name in enumerate(self.names):
            b, s = float(self.coef[i]), float(self.se[i])
            t = b / s if s > 0 else math.nan
            p = float(2 * st.t.sf(abs(t), self.df_resid)) if s > 0 else math.nan
            out.append({"term": name, "coef": b, "se": s, "t": t, "p_value": p,
                        "ci_low": b - q * s, "ci_high": b + q * s})
        return out

    def wald(self, terms: Sequence[str], values: Sequence[float] | None = None) -> dict[str, float]:
        """Joint test that the named coefficients equal `values` (0 by default): chi2 and F."""
        idx = [self.index(t) for t in terms]
        r = self.coef[idx] - (np.zeros(len(idx)) if values is None else np.asarray(values, float))
        v = self.vcov[np.ix_(idx, idx)]
        w = float(r @ safe_inv(v, "Wald covariance") @ r)
        q = len(idx)
        return {"chi2": w, "df": q, "p_chi2": float(st.chi2.sf(w, q)), "F": w / q,
                "df_resid": self.df_resid, "p_F": float(st.f.sf(w / q, q, self.df_resid))}

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "vce": self.vce, "n_clusters": self.n_clusters,
                "df_resid": self.df_resid, "coefficients": self.table(), **self.extra}


def _design(x: Sequence[str], intercept: bool) -> tuple[list[str], list[Column]]:
    names = ([INTERCEPT] if intercept else []) + list(x)
    cols = ([F.lit(1.0)] if intercept else []) + [F.col(c).cast("double") for c in x]
    return names, cols


def _meat(df: DataFrame, cols: Sequence[Column], score_w: Column, cluster: str | None) -> tuple[np.ndarray, int | None]:
    """sum_i (s_i x_i)(s_i x_i)' or, with a cluster column, sum_g (sum_{i in g} s_i x_i)(...)'."""
    k = len(cols)
    if cluster is None:
        m, _ = outer_sums(df, [c * score_w for c in cols])
        return m, None
    g = (df.groupBy(cluster)
           .agg(*[F.sum(c * score_w).alias(f"g{i}") for i, c in enumerate(cols)]))
    m, extra = outer_sums(g, [F.col(f"g{i}") for i in range(k)], extra=[F.lit(1.0)])
    return m, int(extra[0])


def ols(df: DataFrame, y: str, x: Sequence[str], *, intercept: bool = True, weight: str | None = None,
        vce: str = "hc1", cluster: str | None = None, df_absorbed: int = 0) -> LinearResult:
    """Weighted least squares of `y` on `x` (+ intercept) from Spark sufficient statistics.

    vce: "iid" (classical), "hc1" (White with n/(n-k)) or "cluster" (CR1 as Stata:
    G/(G-1)·(n-1)/(n-k), needs `cluster`). `df_absorbed` adds fixed-effect levels that were
    partialled out before the call (within transformation) to k in the small-sample factors.
    Rows with a null in any used column are dropped.
    """
    if vce not in VCE_CHOICES:
        raise ValueError(f"vce={vce!r}; choose one of {VCE_CHOICES}")
    if vce == "cluster" and not cluster:
        raise ValueError("vce='cluster' needs a cluster column")
    used = [y, *x] + ([weight] if weight else []) + ([cluster] if cluster else [])
    require(df, used, "ols")
    d = df.dropna(subset=used)
    names, cols = _design(x, intercept)
    w = F.col(weight).cast("double") if weight else F.lit(1.0)
    yc = F.col(y).cast("double")
    xx, ext = outer_sums(d, cols, w, extra=[w * c * yc for c in cols] + [F.lit(1.0)])
    xy, n = ext[:-1], int(ext[-1])
    k = len(cols)
    if n <= k:
        raise ValueError(f"ols: {n} usable rows for {k} coefficients (y={y}, x={list(x)})")
    inv = safe_inv(xx)
    b = inv @ xy
    fitted = sum((F.lit(float(bj)) * c for bj, c in zip(b, cols, strict=False)), F.lit(0.0))
    e = yc - fitted
    kk = k + df_absorbed
    n_clusters = None
    if vce == "iid":
        ssr = agg_sums(d, [w * e * e])[0]
        vcov = inv * ssr / (n - kk)
        dfr = n - kk
    else:
        meat, n_clusters = _meat(d, cols, w * e, cluster if vce == "cluster" else None)
        if vce == "cluster":
            g = int(n_clusters or 0)
            if g < 2:
                raise ValueError(f"cluster-robust SEs need at least 2 clusters in {cluster!r}, got {g}")
            factor = g / (g - 1) * (n - 1) / (n - kk)
            dfr = g - 1
        else:
            factor = n / (n - kk)
            dfr = n - kk
        vcov = factor * inv @ meat @ inv
    return LinearResult(names, b, vcov, n, dfr, vce, n_clusters)


def demean(df: DataFrame, cols: Sequence[str], fixed_effects: Sequence[str], *, tol: float = 1e-8,
           max_iter: int = 50, suffix: str = "") -> DataFrame:
    """Within transformation: sweep out every fixed effect from `cols` (alternating projections).

    One sweep is exact for one fixed effect or a balanced two-way panel; unbalanced panels
    iterate until the largest remaining group mean is below `tol` (one small aggregation per
    sweep). Output: `df` with each col replaced (or written to col+suffix) by its demeaned value.
    """
    from pyspark.sql import Window

    require(df, [*cols, *fixed_effects], "demean")
    out = df
    names = [c + suffix for c in cols]
    for c, nm in zip(cols, names, strict=False):
        out = out.withColumn(nm, F.col(c).cast("double"))
    for it in range(max_iter):
        for fe in fixed_effects:
            win = Window.partitionBy(fe)
            out = out.select(*[c for c in out.columns if c not in names],
                             *[(F.col(nm) - F.avg(nm).over(win)).alias(nm) for nm in names])
        if len(fixed_effects) <= 1:
            break
        out = out.localCheckpoint(eager=True)
        worst = 0.0
        for fe in fixed_effects:
            r = (out.groupBy(fe).agg(*[F.avg(nm).alias(nm) for nm in names])
                    .agg(*[F.max(F.abs(nm)).alias(nm) for nm in names]).first())
            worst = max([worst] + [abs(v or 0.0) for v in r])
        log.info("demean sweep %d: largest group mean %.3g", it + 1, worst)
        if worst < tol:
            break
    return out
