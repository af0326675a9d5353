"""Metrics of star predictions and their bootstrap intervals.

    metrics_from_confusion   accuracy, weighted / macro P/R/F1 and the per-class table of a
                             confusion matrix (numpy)
    confusion, joint_confusion, rating_errors, evaluate_predictions
                             the counts and error sums they need, aggregated in Spark (only
                             k x k cells or a few sums reach the driver)
    paired_bootstrap, grouped_error_bootstrap
                             percentile intervals for several models scored on the same rows,
                             and for one model's paired lead over the others (numpy)
"""
from __future__ import annotations

from typing import Any

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from reviewrec import schema as S

PRED = "pred_label"  # a model's predicted label (0-based star), as the evaluation adds it


def metrics_from_confusion(cm: np.ndarray) -> dict[str, Any]:
    """cm[true, pred] (k x k counts) -> accuracy, per-class and weighted/macro P/R/F1.

    Precision of a class never predicted is 0 (as scikit-learn's zero_division=0)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    prec = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    rec = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(tp), where=(prec + rec) > 0)
    n = cm.sum()
    w = support / n if n else support
    present = support > 0
    return {
        "n": int(n),
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "weighted_precision": float((prec * w).sum()),
        "weighted_recall": float((rec * w).sum()),
        "weighted_f1": float((f1 * w).sum()),
        "macro_precision": float(prec[present].mean()) if present.any() else 0.0,
        "macro_recall": float(rec[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": [{"star": k + 1, "precision": float(prec[k]), "recall": float(rec[k]),
                       "f1": float(f1[k]), "support": int(support[k])} for k in range(len(tp))],
        "confusion": cm.astype(np.int64).tolist(),
    }


BOOTSTRAP_METRICS = ("accuracy", "macro_f1", "weighted_f1")


def _boot_metrics(cms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(..., k, k) confusion matrices [true, pred] -> accuracy, macro-F1 and weighted F1 (...), the
    definitions of metrics_from_confusion: F1 = 2 tp / (support + predicted), 0 where both are
    0, averaged over the classes present (support > 0) or weighted by support."""
    cms = np.asarray(cms, dtype=np.float64)
    tp = np.diagonal(cms, axis1=-2, axis2=-1)
    support, predicted = cms.sum(axis=-1), cms.sum(axis=-2)
    n = support.sum(axis=-1)
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros_like(tp), where=(support + predicted) > 0)
    present = support > 0
    macro = np.divide((f1 * present).sum(axis=-1), present.sum(axis=-1),
                      out=np.zeros_like(n), where=present.sum(axis=-1) > 0)
    weighted = np.divide((f1 * support).sum(axis=-1), n, out=np.zeros_like(n), where=n > 0)
    return np.divide(tp.sum(axis=-1), n, out=np.zeros_like(n), where=n > 0), macro, weighted


def joint_confusion(df: DataFrame, pred_cols: list[str], col_label: str = S.LABEL,
                    k: int = S.NUM_STAR_CLASSES) -> np.ndarray:
    """Counts of (true label, model 1's prediction, ..., model m's) over the rows of df, as an
    array of shape (k,) * (m + 1), aggregated in Spark (k^(m+1) cells reach the driver)."""
    cols = [col_label, *pred_cols]
    out = np.zeros((k,) * len(cols), dtype=np.int64)
    for r in df.groupBy(*cols).count().collect():
        out[tuple(int(r[c]) for c in cols)] = int(r["count"])
    return out


def joint_marginal(counts: np.ndarray, j: int, models: int) -> np.ndarray:
    """(..., true, pred 1, ..., pred m) joint counts (any leading axes) -> (..., true, pred j):
    model j's confusion counts."""
    lead = counts.ndim - (models + 1)
    return counts.sum(axis=tuple(lead + a for a in range(1, models + 1) if a != j))


def _percentiles(level: float) -> list[float]:
    return [(1 - level) / 2 * 100, (1 + level) / 2 * 100]


def _difference(d: np.ndarray, estimate: float, level: float, lower_is_better: bool) -> dict[str, Any]:
    """One paired difference (reference - other): its estimate, the percentile interval of its
    bootstrap replicates d, the share of replicates where the reference is not ahead, and whether
    the whole interval is on the reference's side of 0."""
    lo, hi = (float(v) for v in np.percentile(d, _percentiles(level)))
    return {"estimate": float(estimate), "interval": [lo, hi],
            "share_not_ahead": float(np.mean(d >= 0 if lower_is_better else d <= 0)),
            "ahead": hi < 0 if lower_is_better else lo > 0}


def paired_bootstrap(joint: np.ndarray, names: list[str], reference: str, reps: int = 1000, seed: int = 0,
                     level: float = 0.95) -> dict[str, Any]:
    """Percentile bootstrap intervals for accuracy, macro-F1 and weighted F1 of models scored on
    the same rows, and for the reference model's paired differences from each other model.

    joint: joint_confusion counts, axis 0 the true label, axis j the prediction of names[j-1].
    Resampling the n rows with replacement only changes how many rows fall in each cell of the
    joint table, so each replicate is one multinomial draw of n over the cells with their
    observed shares: the same distribution as the row bootstrap, with no row on the driver.
    Both models of a difference see the same resampled rows (paired), so their shared easy
    and hard reviews cancel. The intervals cover the sampling of test reviews only, not the
    randomness of training (seeds); RESULTS.md shows the latter is as large.
    """
    joint = np.asarray(joint, dtype=np.int64)
    m = joint.ndim - 1
    if len(names) != m or reference not in names:
        raise ValueError(f"names {names} must name the joint table's {m} prediction axes, with {reference!r}")
    if not 0 < level < 1 or reps < 1:
        raise ValueError(f"level {level!r} must be in (0, 1) and reps {reps!r} >= 1")
    n = int(joint.sum())
    if n == 0:
        raise ValueError("paired_bootstrap: the joint table is empty (no test rows)")
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, joint.ravel() / n, size=reps).reshape((reps,) + joint.shape)

    q = _percentiles(level)
    point = {nm: _boot_metrics(joint_marginal(joint, j, m)) for j, nm in enumerate(names, start=1)}
    boot = {nm: _boot_metrics(joint_marginal(draws, j, m)) for j, nm in enumerate(names, start=1)}
    keys = BOOTSTRAP_METRICS
    out: dict[str, Any] = {
        "method": "paired row bootstrap (multinomial over the joint confusion cells), percentile intervals",
        "reps": reps, "level": level, "seed": seed, "rows": n, "reference": reference,
        "models": {nm: {k: [float(v) for v in np.percentile(boot[nm][i], q)] for i, k in enumerate(keys)}
                   for nm in names},
        "differences": {},
    }
    for nm in names:
        if nm != reference:
            out["differences"][nm] = {k: _difference(boot[reference][i] - boot[nm][i],
                                                     point[reference][i] - point[nm][i], level, False)
                                      for i, k in enumerate(keys)}
    return out


ERROR_METRICS = ("rmse", "mae")


def grouped_error_bootstrap(counts: np.ndarray, sse: np.ndarray, sae: np.ndarray, names: list[str],
                            reference: str, reps: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Bootstrap intervals for RMSE and MAE of the expected rating, per model and as the reference
    model's paired differences, from per-group sums: counts (G,) rows per group, sse / sae (G, m)
    each model's sum of squared / absolute errors in the group.

    The groups are random shares of the rows (a hash of the review id), so resampling the G
    groups with replacement, the same groups for every model (paired), approximates resampling
    the rows; with one row per group it is the row bootstrap. Per-row errors are continuous, so
    unlike paired_bootstrap's confusion cells the rows cannot be pooled exactly; G sums can.
    Lower is better: a difference is "ahead" when its whole interval is below 0."""
    counts = np.asarray(counts, dtype=np.float64)
    sse, sae = np.asarray(sse, dtype=np.float64), np.asarray(sae, dtype=np.float64)
    if sse.shape != (len(counts), len(names)) or sae.shape != sse.shape or reference not in names:
        raise ValueError(f"sse/sae shapes {sse.shape}/{sae.shape} must be (groups {len(counts)}, models "
                         f"{len(names)}) with {reference!r} among {names}")
    if counts.sum() == 0:
        raise ValueError("grouped_error_bootstrap: no rows")
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(counts), size=(reps, len(counts)))
    n_b = counts[pick].sum(axis=1)[:, None]
    boot = {"rmse": np.sqrt(sse[pick].sum(axis=1) / n_b), "mae": sae[pick].sum(axis=1) / n_b}  # (reps, m)
    point = {"rmse": np.sqrt(sse.sum(axis=0) / counts.sum()), "mae": sae.sum(axis=0) / counts.sum()}
    q = _percentiles(level)
    r = names.index(reference)
    out: dict[str, Any] = {"groups": int(len(counts)), "models": {}, "differences": {}}
    for j, nm in enumerate(names):
        out["models"][nm] = {k: [float(v) for v in np.percentile(boot[k][:, j], q)] for k in ERROR_METRICS}
        if j != r:
            out["differences"][nm] = {k: _difference(boot[k][:, r] - boot[k][:, j], point[k][r] - point[k][j],
                                                     level, True) for k in ERROR_METRICS}
    return out


def confusion(df: DataFrame, col_label: str = S.LABEL, col_pred: str = PRED, k: int = S.NUM_STAR_CLASSES) -> np.ndarray:
    """k x k confusion counts from label / predicted-label columns (0-based), aggregated in Spark."""
    cm = np.zeros((k, k), dtype=np.int64)
    for r in df.groupBy(col_label, col_pred).count().collect():
        cm[int(r[col_label]), int(r[col_pred])] = int(r["count"])
    return cm


def rating_errors(df: DataFrame, expected: Column, col_star: str = S.STAR_RATING) -> dict[str, float]:
    """RMSE and MAE of an expected-rating column against the true star (Spark aggregate)."""
    err = expected - F.col(col_star)
    r = df.agg(F.avg(err * err).alias("mse"), F.avg(F.abs(err)).alias("mae")).first()
    return {"rmse": float(np.sqrt(r["mse"])), "mae": float(r["mae"])}


def evaluate_predictions(df: DataFrame, expected: Column) -> dict[str, Any]:
    """df with label, pred_label, star_rating -> all metrics of one model."""
    out = metrics_from_confusion(confusion(df))
    out.update(rating_errors(df, expected))
    return out
