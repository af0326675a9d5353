"""A constructed quasi-experimental variable: for each unit, the share of its events that land in
window B (just after a cutoff) rather than window A (just before it), over a period.

When the cutoff is arbitrary for the unit (a daily reset hour, a weekly batch boundary), which
side its events fall on is close to random, so groups of units by this share are a natural
experiment; the balance table shows whether the groups differ in pre-determined covariates and
the correlation shows how the share moves with an outcome.

Input events carry `offset`: the event's position relative to its nearest cutoff (negative
before, e.g. hours since the daily reset minus 24 when past noon); the caller chooses it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from scipy import stats as st

from reviewrec.causal.stats import require

RATIO, N_A, N_B, GROUP = "window_ratio", "n_window_a", "n_window_b", "ratio_group"


def window_ratio(events: DataFrame, unit: str, offset: str, width_a: float, width_b: float, *,
                 period: tuple[Any, Any] | None = None, time_col: str | None = None) -> DataFrame:
    """Per unit: n_window_a (events with -width_a <= offset < 0), n_window_b (0 <= offset <
    width_b) and window_ratio = n_b / (n_a + n_b) (null for units with neither).

    period/time_col restrict events to period[0] <= time_col < period[1]. Output columns:
    unit, n_window_a, n_window_b, window_ratio.
    """
    require(events, [unit, offset] + ([time_col] if time_col else []), "window_ratio")
    if width_a <= 0 or width_b <= 0:
        raise ValueError(f"window_ratio: widths must be positive (width_a={width_a}, width_b={width_b})")
    e = events
    if period is not None:
        if not time_col:
            raise ValueError("window_ratio: a period needs time_col")
        e = e.where((F.col(time_col) >= F.lit(period[0])) & (F.col(time_col) < F.lit(period[1])))
    o = F.col(offset).cast("double")
    in_a = (o >= -width_a) & (o < 0)
    in_b = (o >= 0) & (o < width_b)
    agg = e.groupBy(unit).agg(F.sum(F.when(in_a, 1).otherwise(0)).alias(N_A),
                              F.sum(F.when(in_b, 1).otherwise(0)).alias(N_B))
    tot = F.col(N_A) + F.col(N_B)
    return agg.select(unit, N_A, N_B, F.when(tot > 0, F.col(N_B) / tot).alias(RATIO))


def ratio_groups(units: DataFrame, n_groups: int = 3, col: str = RATIO) -> DataFrame:
    """Add ratio_group 0..n_groups-1 by approximate quantiles of the ratio (nulls dropped)."""
    require(units, [col], "ratio_groups")
    d = units.where(F.col(col).isNotNull())
    edges = sorted(set(d.approxQuantile(col, [i / n_groups for i in range(1, n_groups)], 1e-3)))
    g = F.lit(0)
    for e in edges:
        g = g + F.when(F.col(col) > F.lit(e), 1).otherwise(0)
    return d.withColumn(GROUP, g)


def balance_table(df: DataFrame, group: str, covariates: Sequence[str]) -> list[dict[str, Any]]:
    """Per covariate: mean per group, SMD of each group against the lowest group (pooled SD),
    and the one-way ANOVA F test of equal means (from per-group n, sum, sum of squares)."""
    require(df, [group, *covariates], "balance_table")
    aggs = [F.count(F.lit(1)).alias("n")]
    for c in covariates:
        x = F.col(c).cast("double")
        aggs += [F.sum(x).alias(f"s_{c}"), F.sum(x * x).alias(f"q_{c}"), F.count(x).alias(f"n_{c}")]
    rows = df.groupBy(group).agg(*aggs).orderBy(group).collect()
    if len(rows) < 2:
        raise ValueError(f"balance_table: need at least two groups in {group!r}, got {len(rows)}")
    out = []
    for c in covariates:
        ns = [float(r[f"n_{c}"]) for r in rows]
        ms = [r[f"s_{c}"] / n if n else math.nan for r, n in zip(rows, ns, strict=False)]
        vs = [(r[f"q_{c}"] - n * m * m) / (n - 1) if n > 1 else math.nan for r, n, m in zip(rows, ns, ms, strict=False)]
        ref_m, ref_v = ms[0], vs[0]
        row: dict[str, Any] = {"covariate": c}
        for r, m, v in zip(rows, ms, vs, strict=False):
            sd = math.sqrt((ref_v + v) / 2) if (ref_v + v) > 0 else math.nan
            row[f"mean_{r[group]}"] = m
            row[f"smd_{r[group]}_vs_{rows[0][group]}"] = (m - ref_m) / sd if sd and sd > 0 else 0.0
        ntot = sum(ns)
        grand = sum(n * m for n, m in zip(ns, ms, strict=False)) / ntot
        ssb = sum(n * (m - grand) ** 2 for n, m in zip(ns, ms, strict=False))
        ssw = sum((n - 1) * v for n, v in zip(ns, vs, strict=False) if n > 1)
        k = len(rows)
        fstat = (ssb / (k - 1)) / (ssw / (ntot - k)) if ssw > 0 else math.nan
        row.update({"anova_F": fstat, "anova_p": float(st.f.sf(fstat, k - 1, ntot - k)) if ssw > 0 else math.nan})
        out.append(row)
    return out


def correlation(df: DataFrame, x: str, y: str, level: float = 0.95) -> dict[str, float]:
    """Pearson correlation (Spark's corr) with a Fisher-z CI and t-test p-value."""
    require(df, [x, y], "correlation")
    r = df.where(F.col(x).isNotNull() & F.col(y).isNotNull()).agg(
        F.corr(F.col(x).cast("double"), F.col(y).cast("double")).alias("r"), F.count(F.lit(1)).alias("n")).first()
    rho, n = float(r["r"]), int(r["n"])
    if n < 4:
        raise ValueError(f"correlation: {n} complete rows in ({x}, {y})")
    z = math.atanh(max(min(rho, 1 - 1e-15), -1 + 1e-15))
    q = st.norm.ppf(0.5 + level / 2) / math.sqrt(n - 3)
    t = rho * math.sqrt((n - 2) / max(1 - rho * rho, 1e-300))
    return {"r": rho, "n": n, "ci_low": math.tanh(z - q), "ci_high": math.tanh(z + q),
            "p_value": float(2 * st.t.sf(abs(t), n - 2))}
