"""The evaluate job: the LSTM and two baselines on the same held-out test split.

Reads <root>/features (train/val/test), <root>/model; writes <root>/report/model:
    metrics.json     per model: accuracy, weighted and macro P/R/F1, the per-class table
                     (the paper's Table 3: precision, recall, F1, support for stars 1..5),
                     the confusion matrix, RMSE/MAE of the expected rating; plus what it was
                     measured on (data, split counts, config hash, model metadata); and
                     "bootstrap": intervals for accuracy, macro / weighted F1, RMSE and MAE of
                     every model and for the LSTM's paired lead over each baseline
                     (paired_bootstrap, grouped_error_bootstrap)
    index.html       the same as tables, with the figures
    confusion_<model>.png, training_curves.png, comparison.png

Baselines, trained in this job on the same train split:
    majority   the most frequent training star, predicted with probability 1
    tfidf_lr   Spark ML multinomial LogisticRegression on the `tfidf` vectors; regParam chosen
               on the val split (accuracy) from model.baseline_reg_params
Predictions stay in Spark: only confusion counts (5x5, and the 5x5x5x5 joint table of the three
models for the bootstrap) and error sums reach the driver.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any

import numpy as np
from pyspark import StorageLevel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from reviewrec import io
from reviewrec import schema as S
from reviewrec.config import Config
from reviewrec.model import contract as C
from reviewrec.model.score import (MEMBER_PROBS, ensemble_size, expected_of, load_metadata, predicted_star_of,
                                   score)
from reviewrec.report import html as H
from reviewrec.runtime import StageTimer

log = logging.getLogger(__name__)
# The headline metrics (the log line, the ensemble members' table).
SUMMARY = ("accuracy", "macro_f1", "weighted_f1", "rmse", "mae")

STARS = list(range(1, C.NUM_CLASSES + 1))
PRED = "pred_label"


# --------------------------------------------------------------------------- metrics (pure)
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


def joint_confusion(df: DataFrame, pred_cols: list[str], col_label: str = C.LABEL,
                    k: int = C.NUM_CLASSES) -> np.ndarray:
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


def confusion(df: DataFrame, col_label: str = C.LABEL, col_pred: str = PRED, k: int = C.NUM_CLASSES) -> np.ndarray:
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


def expected_from_probs(probs: Column) -> Column:
    """sum_s p(s) * s from a 5-element array column of probabilities."""
    return F.aggregate(F.transform(probs, lambda p, i: p * (i + 1)), F.lit(0.0).cast("double"),
                       lambda acc, v: acc + v)


def evaluate_predictions(df: DataFrame, expected: Column) -> dict[str, Any]:
    """df with label, pred_label, star_rating -> all metrics of one model."""
    out = metrics_from_confusion(confusion(df))
    out.update(rating_errors(df, expected))
    return out


# --------------------------------------------------------------------------- models
def majority_baseline(train: DataFrame, test: DataFrame) -> dict[str, Any]:
    top = train.groupBy(C.LABEL).count().orderBy(F.col("count").desc(), F.col(C.LABEL)).first()
    lab = int(top[C.LABEL])
    pred = test.withColumn(PRED, F.lit(lab))
    out = evaluate_predictions(pred, F.lit(float(lab + 1)))
    out["params"] = {"star": lab + 1}
    return out


def fit_lr(train: DataFrame, reg: float, elastic_net: float, max_iter: int) -> Any:
    lr = LogisticRegression(featuresCol=C.TFIDF, labelCol=C.LABEL, family="multinomial", regParam=reg,
                            elasticNetParam=elastic_net, maxIter=max_iter, standardization=False)
    return lr.fit(train)


def lr_predict(model: Any, df: DataFrame) -> DataFrame:
    return (model.transform(df)
            .withColumn(PRED, F.col("prediction").cast("int"))
            .withColumn("lr_probs", vector_to_array(F.col("probability"))))


def tfidf_lr_baseline(train: DataFrame, val: DataFrame | None, test: DataFrame, reg_params: list[float],
                      elastic_net: float, max_iter: int) -> dict[str, Any]:
    """Pick regParam on val by accuracy, then report on test (the model is refit on train only).

    Only the TF-IDF vectors and labels are cached for the fits (every L-BFGS iteration is a pass
    over the training rows), and val once for the grid."""
    tried: list[dict[str, Any]] = []
    best: tuple[float, Any] | None = None
    best_acc = -1.0
    train = train.select(C.TFIDF, C.LABEL).persist(StorageLevel.MEMORY_AND_DISK)
    if val is not None and len(reg_params) > 1:
        val = val.select(C.TFIDF, C.LABEL).persist(StorageLevel.MEMORY_AND_DISK)
    for reg in reg_params:
        m = fit_lr(train, float(reg), elastic_net, max_iter)
        if val is None or len(reg_params) == 1:
            best = (float(reg), m)
            break
        acc = metrics_from_confusion(confusion(lr_predict(m, val)))["accuracy"]
        tried.append({"reg_param": float(reg), "val_accuracy": acc})
        log.info("tfidf_lr: regParam %g -> val accuracy %.4f", reg, acc)
        if acc > best_acc:
            best, best_acc = (float(reg), m), acc
    assert best is not None
    train.unpersist()
    if val is not None:
        val.unpersist()
    pred = lr_predict(best[1], test)
    out = evaluate_predictions(pred, expected_from_probs(F.col("lr_probs")))
    out["params"] = {"reg_param": best[0], "elastic_net": elastic_net, "max_iter": max_iter,
                     "family": "multinomial", "selection": tried}
    return out, best[1]


def lstm_eval(spark: SparkSession, test: DataFrame, model_dir: str, batch_size: int,
              members: int = 0, keep: bool = False) -> tuple[dict[str, Any], DataFrame | None]:
    """The saved model's metrics on `test`; for an ensemble (members = its size) also each
    member's, as "members": [metrics of member 1, ...], from the same scoring pass. With keep,
    also returns what the bootstrap needs of the scored rows (review id, star, tfidf, label,
    expected rating, pred_label), persisted without the sequences and distributions: the caller
    unpersists; else None."""
    scored = score(spark, test, model_dir, batch_size=batch_size, members=members > 1)
    scored = scored.withColumn(PRED, (F.col(C.PREDICTED_STAR) - 1).cast("int")).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        out = evaluate_predictions(scored, F.col(C.EXPECTED_RATING))
        if members > 1:
            out["members"] = []
            for j in range(members):
                one = scored.withColumn(PRED, predicted_star_of(f"{MEMBER_PROBS}[{j}]") - 1)
                out["members"].append(evaluate_predictions(one, expected_of(F.col(MEMBER_PROBS)[j])))
        if not keep:
            return out, None
        kept = (scored.select(S.REVIEW_ID, S.STAR_RATING, C.TFIDF, C.LABEL, C.EXPECTED_RATING, PRED)
                .persist(StorageLevel.MEMORY_AND_DISK))
        kept.count()  # materialised from the cached scoring before that cache goes
        return out, kept
    finally:
        scored.unpersist()


# Random groups of test rows whose error sums the RMSE / MAE bootstrap resamples.
ERROR_GROUPS = 2000


def bootstrap_models(scored: DataFrame, lr_model: Any, majority_label: int, models: dict[str, dict[str, Any]],
                     reps: int, seed: int) -> dict[str, Any]:
    """paired_bootstrap of the three models on the LSTM's scored test rows: the LR model predicts
    the same rows (no join), the majority class is a constant. The joint table's marginals must
    give back each model's reported confusion matrix (same rows, deterministic models)."""
    both = (lr_predict(lr_model, scored.withColumnRenamed(PRED, "lstm_pred"))
            .withColumn("majority_pred", F.lit(int(majority_label))))
    names = ["lstm", "majority", "tfidf_lr"]
    joint = joint_confusion(both, ["lstm_pred", "majority_pred", PRED])
    for j, nm in enumerate(names, start=1):
        cm = joint_marginal(joint, j, len(names))
        if cm.tolist() != models[nm]["confusion"]:
            raise RuntimeError(f"bootstrap: the {nm} predictions of the joint table {cm.tolist()} differ from its "
                               f"reported confusion matrix {models[nm]['confusion']} (non-deterministic scoring?)")
    out = paired_bootstrap(joint, names, "lstm", reps=reps, seed=seed)
    # RMSE / MAE: per-group error sums over ERROR_GROUPS random groups of rows (hash of the review id)
    star = F.col(S.STAR_RATING)
    errors = [F.col(C.EXPECTED_RATING) - star, F.lit(float(majority_label + 1)) - star,
              expected_from_probs(F.col("lr_probs")) - star]
    group = F.pmod(F.xxhash64(F.col(S.REVIEW_ID), F.lit(seed)), F.lit(ERROR_GROUPS)).alias("g")
    sums = ([F.sum(e * e).alias(f"se{j}") for j, e in enumerate(errors)]
            + [F.sum(F.abs(e)).alias(f"ae{j}") for j, e in enumerate(errors)])
    rows = both.groupBy(group).agg(F.count(F.lit(1)).alias("n"), *sums).collect()
    counts = np.array([r["n"] for r in rows], dtype=np.float64)
    sse = np.array([[r[f"se{j}"] for j in range(len(names))] for r in rows], dtype=np.float64)
    sae = np.array([[r[f"ae{j}"] for j in range(len(names))] for r in rows], dtype=np.float64)
    for j, nm in enumerate(names):
        got = float(np.sqrt(sse[:, j].sum() / counts.sum()))
        if not np.isclose(got, models[nm]["rmse"], rtol=1e-6, atol=1e-9):
            raise RuntimeError(f"bootstrap: the {nm} errors of the grouped sums give RMSE {got} where the report "
                               f"has {models[nm]['rmse']} (non-deterministic scoring?)")
    err = grouped_error_bootstrap(counts, sse, sae, names, "lstm", reps=reps, seed=seed, level=out["level"])
    for nm in names:
        out["models"][nm].update(err["models"][nm])
        if nm in out["differences"]:
            out["differences"][nm].update(err["differences"][nm])
    out["error_groups"] = err["groups"]
    out["method"] += (f"; RMSE and MAE: paired bootstrap of {err['groups']} random groups of rows (per-group "
                      "error sums)")
    return out


# --------------------------------------------------------------------------- report
def _plot_confusion(plt: Any, cm: list[list[int]], title: str) -> Any:
    a = np.asarray(cm, dtype=np.float64)
    norm = a / np.maximum(a.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.6, 4))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            ax.text(j, i, f"{int(a[i, j])}\n{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(5), STARS)
    ax.set_yticks(range(5), STARS)
    ax.set_xlabel("predicted star")
    ax.set_ylabel("true star")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return fig


def _plot_curves(plt: Any, histories: dict[str, list[dict[str, Any]]], best: dict[str, int] | None = None) -> Any:
    """Loss and accuracy per epoch, train and val, one pair of lines per network (an ensemble's
    members are labelled by name); the epoch whose weights were saved (best val loss) ringed."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    ringed = False
    for name, history in histories.items():
        ep = [h["epoch"] for h in history]
        tag = f" {name}" if len(histories) > 1 else ""
        for ax, key in ((a1, "loss"), (a2, "accuracy")):
            line, = ax.plot(ep, [h[key] for h in history], "o-", label=f"train{tag}")
            if history and f"val_{key}" in history[0]:
                ax.plot(ep, [h[f"val_{key}"] for h in history], "s--", color=line.get_color(), label=f"val{tag}")
                saved = [h for h in history if h["epoch"] == (best or {}).get(name)]
                if saved:
                    ax.plot([saved[0]["epoch"]], [saved[0][f"val_{key}"]], "o", ms=13, mfc="none",
                            color="black", label=None if ringed else "saved epoch")
        ringed = ringed or bool(best and best.get(name))
    for ax, key in ((a1, "loss"), (a2, "accuracy")):
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.legend(fontsize="small")
    return fig


def _plot_comparison(plt: Any, models: dict[str, dict[str, Any]], boot: dict[str, Any] | None = None) -> Any:
    """Accuracy, weighted and macro F1 per model; with the bootstrap, their intervals as error bars."""
    names = list(models)
    keys = ["accuracy", "weighted_f1", "macro_f1"]
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    width = 0.8 / len(names)
    for j, n in enumerate(names):
        vals = [models[n][k] for k in keys]
        ci = boot["models"].get(n, {}) if boot else {}
        err = np.maximum(np.array([[v - ci[k][0], ci[k][1] - v] for k, v in zip(keys, vals)]).T, 0) if ci else None
        ax.bar(np.arange(len(keys)) + j * width, vals, width, label=n, yerr=err, capsize=3)
    ax.set_xticks(np.arange(len(keys)) + 0.4 - width / 2, keys)
    ax.set_ylim(0, 1)
    ax.legend()
    if boot:
        ax.set_title(f"test split; error bars: {boot['level']:.0%} bootstrap intervals", fontsize="medium")
    return fig


def _histories(result: dict[str, Any]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    """Network name -> its training history, and -> the epoch whose weights were saved (the best
    val loss; absent when unknown): the ensemble's members, or the one network."""
    ens = result.get("ensemble")
    if ens:
        names = {f"member {mb['member']} (seed {mb['seed']})": mb for mb in ens["members"]}
        return ({n: mb["history"] for n, mb in names.items()},
                {n: mb["best_epoch"] for n, mb in names.items() if mb.get("best_epoch")})
    if not result.get("history"):
        return {}, {}
    best = (result.get("measured_on") or {}).get("model_best_epoch")
    return {"lstm": result["history"]}, ({"lstm": best} if best else {})


def _bootstrap_section(boot: dict[str, Any], models: dict[str, dict[str, Any]]) -> tuple[str, str]:
    pct = f"{boot['level']:.0%}"

    def iv(v: list[float]) -> str:
        return f"[{v[0]:.4f}, {v[1]:.4f}]"

    keys = [k for k in BOOTSTRAP_METRICS + ERROR_METRICS if k in next(iter(boot["models"].values()))]
    rows = [[nm] + [x for k in keys for x in (models[nm][k], iv(ci[k]))] for nm, ci in boot["models"].items()]
    label = {"accuracy": "accuracy", "macro_f1": "macro F1", "weighted_f1": "weighted F1", "rmse": "RMSE",
             "mae": "MAE"}
    ref = boot["reference"]
    diffs = [[f"{ref} − {nm}", k, d["estimate"], iv(d["interval"]), d["share_not_ahead"],
              f"{ref} ahead" if d["ahead"] else f"not shown at {pct}"]
             for nm, dd in boot["differences"].items() for k, d in dd.items()]
    html = (H.table(["model"] + [x for k in keys for x in (label[k], f"{pct} interval")], rows)
            + H.table(["difference", "metric", "estimate", f"{pct} interval", "share of resamples not ahead",
                       "verdict"], diffs)
            + f"<p>{boot['reps']:,} resamples of the {boot['rows']:,} test reviews, both models of a difference "
              "on the same resample (paired); RMSE and MAE resample random groups of reviews (their errors "
              "are summed per group), and a lower error is ahead. The intervals cover which reviews were "
              "tested, not the randomness of training: another seed moves the LSTM's numbers too.</p>")
    return "Intervals (paired bootstrap over the test reviews)", html


def write_report(spark: SparkSession | None, out: str, result: dict[str, Any]) -> None:
    plt = H.plt()
    models = result["models"]
    with io.publish_dir(spark, out) as d:
        figs = []
        for name, m in models.items():
            figs.append(H.savefig(_plot_confusion(plt, m["confusion"], name), d, f"confusion_{name}.png"))
        histories, best = _histories(result)
        if histories:
            H.savefig(_plot_curves(plt, histories, best), d, "training_curves.png")
        boot = result.get("bootstrap")
        H.savefig(_plot_comparison(plt, models, boot), d, "comparison.png")
        with open(os.path.join(d, "metrics.json"), "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2, default=str)
        summary = H.table(
            ["model", "accuracy", "weighted P", "weighted R", "weighted F1", "macro F1", "RMSE", "MAE"],
            [[n, m["accuracy"], m["weighted_precision"], m["weighted_recall"], m["weighted_f1"], m["macro_f1"],
              m["rmse"], m["mae"]] for n, m in models.items()])
        sections = [("Summary (test split)", summary + H.figure("comparison.png"))]
        if boot:
            sections.append(_bootstrap_section(boot, models))
        for name, m in models.items():
            t3 = H.table(["star", "precision", "recall", "F1", "support"],
                         [[c["star"], c["precision"], c["recall"], c["f1"], c["support"]] for c in m["per_class"]]
                         + [["weighted", m["weighted_precision"], m["weighted_recall"], m["weighted_f1"], m["n"]]])
            sections.append((f"{name}: per-class (Table 3 format)", t3 + H.figure(f"confusion_{name}.png")))
        if histories:
            hist = H.table(["network", "epoch", "loss", "accuracy", "val loss", "val accuracy", "seconds", "saved"],
                           [[name, h["epoch"], h["loss"], h["accuracy"], h.get("val_loss", ""),
                             h.get("val_accuracy", ""), h["seconds"], "yes" if best.get(name) == h["epoch"] else ""]
                            for name, history in histories.items() for h in history])
            title = "LSTM training" + (f" (ensemble of {len(histories)}: the mean of their star distributions)"
                                       if len(histories) > 1 else "")
            sections.append((title, hist + H.figure("training_curves.png")))
        if result.get("ensemble_members"):
            lstm = models["lstm"]
            rows = [[f"member {mm['member']} (seed {mm['seed']})"] + [mm[k] for k in SUMMARY]
                    for mm in result["ensemble_members"]]
            rows.append(["ensemble (mean of the members' distributions)"] + [lstm[k] for k in SUMMARY])
            sections.insert(1, ("LSTM ensemble: each member alone (test split)",
                                H.table(["network", "accuracy", "macro F1", "weighted F1", "RMSE", "MAE"], rows)))
        sections.append(("Measured on", "<pre>" + json.dumps(result["measured_on"], indent=2, default=str) + "</pre>"))
        with open(os.path.join(d, "index.html"), "w", encoding="utf-8") as fh:
            fh.write(H.page("reviewrec — star-rating model evaluation", sections,
                            subtitle=f"config {result['measured_on']['config_hash']}"))


# --------------------------------------------------------------------------- job
def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    timer = StageTimer("evaluate")
    root = cfg["run"]["root"]
    m = cfg["model"]
    features = io.dataset_path(root, C.FEATURES)
    model_dir = io.dataset_path(root, C.MODEL)
    if not io.dataset_exists(spark, model_dir):
        raise FileNotFoundError(f"model not found: {model_dir} (produced by the train job; run it first)")
    cols = [S.REVIEW_ID, C.USER_IDX, C.ITEM_IDX, C.SEQ, C.TFIDF,
            C.LABEL, S.STAR_RATING]

    def part(split: str) -> DataFrame | None:
        try:
            df = spark.read.parquet(C.split_path(features, split))
        except FileNotFoundError:
            return None
        S.require_columns(df.columns, cols, f"features/{split}")
        return df.select(*cols)

    train, val, test = part(C.TRAIN), part(C.VAL), part(C.TEST)
    if train is None or test is None:
        raise FileNotFoundError(f"{features}: needs train and test splits")
    models: dict[str, dict[str, Any]] = {}
    md = load_metadata(model_dir)
    n_members = ensemble_size(md)
    reps = int(m["bootstrap_reps"])
    if reps < 0:
        raise ValueError(f"model.bootstrap_reps = {reps}: 0 (no intervals) or the number of resamples")
    with timer.stage("lstm"):
        models["lstm"], scored = lstm_eval(spark, test, model_dir, m["score_batch_size"], n_members,
                                           keep=reps > 0)
    try:
        member_metrics = models["lstm"].pop("members", None)
        with timer.stage("majority"):
            models["majority"] = majority_baseline(train, test)
        with timer.stage("tfidf_lr"):
            models["tfidf_lr"], lr_model = tfidf_lr_baseline(
                train, val, test, list(m["baseline_reg_params"]), float(m["baseline_elastic_net"]),
                m["baseline_max_iter"])
        boot = None
        if reps:
            with timer.stage("bootstrap"):
                boot = bootstrap_models(scored, lr_model, models["majority"]["params"]["star"] - 1, models, reps,
                                        int(m["seed"]))
    finally:
        if scored is not None:
            scored.unpersist()
    lstm, lr = models["lstm"], models["tfidf_lr"]
    result = {
        "models": models,
        "lstm_beats_tfidf_lr": {"accuracy": lstm["accuracy"] > lr["accuracy"],
                                "macro_f1": lstm["macro_f1"] > lr["macro_f1"]},
        # Percentile intervals over resampled test reviews, and whether the LSTM's paired lead
        # over each baseline clears 0 (above for accuracy / F1, below for RMSE / MAE; None with
        # model.bootstrap_reps = 0).
        "bootstrap": boot,
        "history": md.get("history", []),
        "ensemble": md.get("ensemble"),
        # Each ensemble member alone on the same test rows (None for one network).
        "ensemble_members": [{"member": mb["member"], "seed": mb["seed"], **{k: mm[k] for k in SUMMARY}}
                             for mb, mm in zip(md["ensemble"]["members"], member_metrics)] if member_metrics else None,
        "measured_on": {
            "config_hash": cfg.hash(), "root": root, "input_path": cfg["input"]["path"],
            "input_category": cfg["input"]["category"], "split": "test",
            "data_counts": md.get("data_counts"), "model_config_hash": md.get("config_hash"),
            "model_train_hash": md.get("train_hash"), "model_best_epoch": md.get("best_epoch"),
            "model_num_proc": md.get("num_proc"), "versions": md.get("versions"),
            "model_ensemble_size": n_members,
        },
        "timings": timer.timings,
    }
    write_report(spark, io.dataset_path(root, C.REPORT_MODEL), result)
    log.info("evaluate: %s", {n: {k: round(v[k], 4) for k in SUMMARY}
                              for n, v in models.items()})
    if boot:
        for k, d in boot["differences"]["tfidf_lr"].items():
            log.info("evaluate: lstm - tfidf_lr %s %+.4f, %.0f%% interval [%+.4f, %+.4f]: %s", k, d["estimate"],
                     100 * boot["level"], *d["interval"], "lstm ahead" if d["ahead"] else "not shown")
    return result
