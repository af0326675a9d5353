"""The evaluate job: the LSTM and two baselines on the same held-out test split.

Reads <root>/features (train/val/test) and <root>/model; writes <root>/report/model
(evaluation_report.py): per model accuracy, weighted and macro P/R/F1, the per-class table (the
paper's Table 3), the confusion matrix, RMSE/MAE of the expected rating, and with
model.bootstrap_reps > 0 intervals for those and for the LSTM's paired lead over each baseline
(metrics.paired_bootstrap, metrics.grouped_error_bootstrap). Baselines: baselines.py.
Predictions stay in Spark: only confusion counts (5x5, and the 5x5x5x5 joint table of the three
models for the bootstrap) and error sums reach the driver.
"""
from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import numpy as np
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from reviewrec import io
from reviewrec import schema as S
from reviewrec.config import Config
from reviewrec.features.meta import split_frame
from reviewrec.model.baselines import LR_PROBS, lr_predict, majority_baseline, tfidf_lr_baseline
from reviewrec.model.evaluation_report import SUMMARY, write_report
from reviewrec.model.metrics import (PRED, evaluate_predictions, grouped_error_bootstrap, joint_confusion,
                                     joint_marginal, paired_bootstrap)
from reviewrec.model.score import ensemble_size, expected_of, load_metadata, predicted_star_of, score
from reviewrec.model.spec import EvaluateParams
from reviewrec.runtime import StageTimer

log = logging.getLogger(__name__)

REPORT = "report/model"


def lstm_eval(spark: SparkSession, test: DataFrame, model_dir: str, batch_size: int,
              members: int = 0, keep: bool = False) -> tuple[dict[str, Any], DataFrame | None]:
    """The saved model's metrics on `test`; for an ensemble (members = its size) also each
    member's, as "members": [metrics of member 1, ...], from the same scoring pass. With keep,
    also returns what the bootstrap needs of the scored rows (review id, star, tfidf, label,
    expected rating, pred_label), persisted without the sequences and distributions: the caller
    unpersists; else None."""
    scored = score(spark, test, model_dir, batch_size=batch_size, members=members > 1)
    scored = scored.withColumn(PRED, (F.col(S.PREDICTED_STAR) - 1).cast("int")).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        out = evaluate_predictions(scored, F.col(S.EXPECTED_RATING))
        if members > 1:
            out["members"] = []
            for j in range(members):
                one = scored.withColumn(PRED, predicted_star_of(f"{S.MEMBER_STAR_PROBS}[{j}]") - 1)
                out["members"].append(evaluate_predictions(one, expected_of(F.col(S.MEMBER_STAR_PROBS)[j])))
        if not keep:
            return out, None
        kept = (scored.select(S.REVIEW_ID, S.STAR_RATING, S.TFIDF, S.LABEL, S.EXPECTED_RATING, PRED)
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
    errors = [F.col(S.EXPECTED_RATING) - star, F.lit(float(majority_label + 1)) - star,
              expected_of(F.col(LR_PROBS)) - star]
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


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    timer = StageTimer("evaluate")
    root = cfg["run"]["root"]
    p = EvaluateParams.from_config(cfg)
    features = io.dataset_path(root, S.FEATURES)
    model_dir = io.dataset_path(root, S.MODEL)
    if not io.dataset_exists(spark, model_dir):
        raise FileNotFoundError(f"model not found: {model_dir} (produced by the train job; run it first)")
    cols = [S.REVIEW_ID, S.USER_IDX, S.ITEM_IDX, S.SEQ, S.TFIDF, S.LABEL, S.STAR_RATING]

    def part(split: str) -> DataFrame | None:
        try:
            df = split_frame(spark, features, split)
        except FileNotFoundError:
            return None
        S.require_columns(df.columns, cols, f"features/{split}")
        return df.select(*cols)

    train, val, test = part(S.SPLIT_TRAIN), part(S.SPLIT_VAL), part(S.SPLIT_TEST)
    if train is None or test is None:
        raise FileNotFoundError(f"{features}: needs train and test splits")
    models: dict[str, dict[str, Any]] = {}
    md = load_metadata(model_dir, spark)
    n_members = ensemble_size(md)
    reps = p.bootstrap_reps
    with timer.stage("lstm"):
        models["lstm"], scored = lstm_eval(spark, test, model_dir, p.score_batch_size, n_members, keep=reps > 0)
    try:
        member_metrics = models["lstm"].pop("members", None)
        with timer.stage("majority"):
            models["majority"] = majority_baseline(train, test)
        with timer.stage("tfidf_lr"):
            models["tfidf_lr"], lr_model = tfidf_lr_baseline(
                train, val, test, list(p.baseline_reg_params), p.baseline_elastic_net, p.baseline_max_iter)
        boot = None
        if reps:
            with timer.stage("bootstrap"):
                boot = bootstrap_models(scored, lr_model, models["majority"]["params"]["star"] - 1, models, reps,
                                        p.seed)
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
                             for mb, mm in zip(md["ensemble"]["members"], member_metrics, strict=False)]
        if member_metrics else None,
        "measured_on": {
            "config_hash": cfg.hash(), "root": root, "input_path": cfg["input"]["path"],
            "input_category": cfg["input"]["category"], "split": "test",
            "data_counts": md.get("data_counts"), "model_config_hash": md.get("config_hash"),
            "model_train_hash": md.get("train_hash"), "model_best_epoch": md.get("best_epoch"),
            "model_num_proc": md.get("num_proc"), "versions": md.get("versions"),
            "model_ensemble_size": n_members,
        },
        "params": asdict(p),
        "timings": timer.timings,
    }
    write_report(spark, io.dataset_path(root, REPORT), result)
    log.info("evaluate: %s", {n: {k: round(v[k], 4) for k in SUMMARY}
                              for n, v in models.items()})
    if boot:
        for k, d in boot["differences"]["tfidf_lr"].items():
            log.info("evaluate: lstm - tfidf_lr %s %+.4f, %.0f%% interval [%+.4f, %+.4f]: %s", k, d["estimate"],
                     100 * boot["level"], *d["interval"], "lstm ahead" if d["ahead"] else "not shown")
    return result
