"""The rating-scorer interface used to fill the user-item matrix.

    scorer.score(spark, candidates) -> candidates + predicted_rating (double, 1..5)

candidates: customer_id, product_id, cf_pred (the CF prediction, may be null), plus any
other columns (ignored). Two implementations:

* ModelScorer: the trained rating model of the train job, when <root>/model exists:
  `reviewrec.model.score.score_candidates` adds `predicted_rating` (batch scoring in the
  executors). Null model predictions fall back to cf_pred.
* CFScorer: predicted_rating = cf_pred (similarity-weighted neighbour ratings), falling back
  to the item's Bayesian-average rating when no neighbour rated the item.

`resolve_scorer` picks one and says why in the log; recsys.fill.use_model = "never" forces
CF, "require" makes a missing or unusable model an error.
"""
from __future__ import annotations

import logging
from typing import Protocol

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from reviewrec import io
from reviewrec.model.retrain import ids_misfit
from reviewrec.model.score import score_candidates
from reviewrec.schema import CF_PRED, FALLBACK_RATING, PREDICTED_RATING

log = logging.getLogger(__name__)


class RatingScorer(Protocol):
    name: str

    def score(self, spark: SparkSession, candidates: DataFrame) -> DataFrame: ...


class CFScorer:
    """predicted_rating = cf_pred, else the `fallback_rating` column when present."""

    name = "cf"

    def score(self, spark: SparkSession, candidates: DataFrame) -> DataFrame:
        fallback = F.col(FALLBACK_RATING) if FALLBACK_RATING in candidates.columns else F.lit(None).cast("double")
        return candidates.withColumn(PREDICTED_RATING, F.coalesce(F.col(CF_PRED), fallback).cast("double"))


class ModelScorer:
    """The trained model's expected rating (model.score.score_candidates); CF where it gives none."""

    name = "model"

    def __init__(self, model_dir: str) -> None:
        self.model_dir = model_dir

    def score(self, spark: SparkSession, candidates: DataFrame) -> DataFrame:
        scored = score_candidates(spark, candidates, self.model_dir)
        cf = CFScorer().score(spark, scored.withColumnRenamed(PREDICTED_RATING, "_m"))
        return (cf.withColumn(PREDICTED_RATING, F.coalesce(F.col("_m").cast("double"), F.col(PREDICTED_RATING)))
                .drop("_m"))


def resolve_scorer(spark: SparkSession, model_dir: str, use_model: str = "auto") -> RatingScorer:
    """ModelScorer when a model exists at model_dir and can be used (and use_model allows), else CF."""
    if use_model == "never":
        log.info("filling with CF predictions (recsys.fill.use_model = never)")
        return CFScorer()
    if io.dataset_exists(spark, model_dir):
        misfit = ids_misfit(spark, model_dir)
        if not misfit:
            log.info("filling with the trained model at %s", model_dir)
            return ModelScorer(model_dir)
        if use_model == "require":
            raise ValueError(f"recsys.fill.use_model = require, but the model at {model_dir} does not fit the "
                             f"features: {misfit}; retrain it (./spark-submit.sh train)")
        log.warning("the trained model at %s is not used: %s; CF fills and the model is not scored until it is "
                    "retrained (./spark-submit.sh train)", model_dir, misfit)
        return CFScorer()
    reason = f"no trained model at {model_dir}"
    if use_model == "require":
        raise FileNotFoundError(f"recsys.fill.use_model = require, but {reason}")
    log.info("filling with CF predictions: %s", reason)
    return CFScorer()
