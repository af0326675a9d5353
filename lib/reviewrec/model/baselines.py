"""The evaluation's baselines, trained on the same train split as the LSTM.

    majority   the most frequent training star, predicted with probability 1
    tfidf_lr   Spark ML multinomial LogisticRegression on the `tfidf` vectors; regParam chosen
               on the val split (accuracy) from model.baseline_reg_params
"""
from __future__ import annotations

import logging
from typing import Any

from pyspark import StorageLevel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from reviewrec import schema as S
from reviewrec.model.metrics import PRED, confusion, evaluate_predictions, metrics_from_confusion
from reviewrec.model.score import expected_of

log = logging.getLogger(__name__)

LR_PROBS = "lr_probs"


def majority_baseline(train: DataFrame, test: DataFrame) -> dict[str, Any]:
    top = train.groupBy(S.LABEL).count().orderBy(F.col("count").desc(), F.col(S.LABEL)).first()
    lab = int(top[S.LABEL])
    pred = test.withColumn(PRED, F.lit(lab))
    out = evaluate_predictions(pred, F.lit(float(lab + 1)))
    out["params"] = {"star": lab + 1}
    return out


def fit_lr(train: DataFrame, reg: float, elastic_net: float, max_iter: int) -> Any:
    lr = LogisticRegression(featuresCol=S.TFIDF, labelCol=S.LABEL, family="multinomial", regParam=reg,
                            elasticNetParam=elastic_net, maxIter=max_iter, standardization=False)
    return lr.fit(train)


def lr_predict(model: Any, df: DataFrame) -> DataFrame:
    return (model.transform(df)
            .withColumn(PRED, F.col("prediction").cast("int"))
            .withColumn(LR_PROBS, vector_to_array(F.col("probability"))))


def tfidf_lr_baseline(train: DataFrame, val: DataFrame | None, test: DataFrame, reg_params: list[float],
                      elastic_net: float, max_iter: int) -> dict[str, Any]:
    """Pick regParam on val by accuracy, then report on test (the model is refit on train only).

    Only the TF-IDF vectors and labels are cached for the fits (every L-BFGS iteration is a pass
    over the training rows), and val once for the grid."""
    tried: list[dict[str, Any]] = []
    best: tuple[float, Any] | None = None
    best_acc = -1.0
    train = train.select(S.TFIDF, S.LABEL).persist(StorageLevel.MEMORY_AND_DISK)
    if val is not None and len(reg_params) > 1:
        val = val.select(S.TFIDF, S.LABEL).persist(StorageLevel.MEMORY_AND_DISK)
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
    out = evaluate_predictions(pred, expected_of(F.col(LR_PROBS)))
    out["params"] = {"reg_param": best[0], "elastic_net": elastic_net, "max_iter": max_iter,
                     "family": "multinomial", "selection": tried}
    return out, best[1]
