"""Rating fills that must beat a constant: the regularised bias baseline and biased MF.

    bias       mu + b_u + b_i (Koren 2009): b_i = sum(r - mu) / (n_i + damping_item),
               b_u = sum(r - mu - b_i) / (n_u + damping_user), each damping chosen on a
               validation set from a grid
    bias_als   the bias baseline plus Spark ML's explicit ALS fitted on its residuals (ALS has
               no bias terms of its own), i.e. mu + b_u + b_i + <p_u, q_i>

Inputs: ratings u, i, value. Predictions: u, i, pred (clipped to 1..5); a user or item the
training ratings do not have gets bias 0.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.ml.recommendation import ALS
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from reviewrec.recommend.cf import PRED, VALUE
from reviewrec.recommend.ids import I, U

B_U = "b_u"
B_I = "b_i"
DAMPING_GRID = (0.0, 3.0, 10.0, 25.0, 100.0)
# (damping_user, damping_item) when no validation set chose them.
DEFAULT_DAMPING = (10.0, 25.0)


@dataclass
class Biases:
    mu: float
    users: DataFrame  # u, b_u
    items: DataFrame  # i, b_i
    damping_user: float
    damping_item: float

    def predict(self, pairs: DataFrame, lo: float = 1.0, hi: float = 5.0) -> DataFrame:
        """pairs (u, i, ...) -> u, i, pred = mu + b_u + b_i clipped to [lo, hi]."""
        raw = F.lit(self.mu) + F.coalesce(F.col(B_U), F.lit(0.0)) + F.coalesce(F.col(B_I), F.lit(0.0))
        return (pairs.select(U, I)
                .join(self.users, on=U, how="left")
                .join(self.items, on=I, how="left")
                .select(U, I, F.least(F.greatest(raw, F.lit(lo)), F.lit(hi)).alias(PRED)))


def fit_biases(ratings: DataFrame, damping_user: float, damping_item: float, mu: float | None = None) -> Biases:
    """The damped item then user biases of `ratings` (u, i, value)."""
    if mu is None:
        mu = float(ratings.agg(F.avg(VALUE)).first()[0])
    items = (ratings.groupBy(I)
             .agg((F.sum(F.col(VALUE) - F.lit(mu)) / (F.count(F.lit(1)) + F.lit(float(damping_item)))).alias(B_I)))
    users = (ratings.join(items, on=I, how="inner")
             .groupBy(U)
             .agg((F.sum(F.col(VALUE) - F.lit(mu) - F.col(B_I))
                   / (F.count(F.lit(1)) + F.lit(float(damping_user)))).alias(B_U)))
    return Biases(mu, users.cache(), items.cache(), damping_user, damping_item)


def rmse(pred: DataFrame, truth: DataFrame) -> float:
    """RMSE of pred (u, i, pred) on truth (u, i, value)."""
    row = truth.join(pred, on=[U, I], how="inner").agg(F.sqrt(F.avg((F.col(PRED) - F.col(VALUE)) ** 2))).first()
    return float(row[0])


def choose_biases(train: DataFrame, valid: DataFrame, grid: Sequence[float] = DAMPING_GRID) -> tuple[Biases, dict]:
    """Fit on `train`, pick (damping_user, damping_item) by RMSE on `valid` (item damping first,
    then user damping with it). Returns (the chosen biases fitted on train, {grid results})."""
    mu = float(train.agg(F.avg(VALUE)).first()[0])
    tried: dict[str, float] = {}

    def score(du: float, di: float) -> float:
        b = fit_biases(train, du, di, mu)
        e = rmse(b.predict(valid), valid)
        b.users.unpersist()
        b.items.unpersist()
        tried[f"user={du:g},item={di:g}"] = e
        return e

    best_i = min(grid, key=lambda d: score(0.0, d))
    best_u = min(grid, key=lambda d: score(d, best_i))
    return fit_biases(train, best_u, best_i, mu), tried


def bias_als_predict(train: DataFrame, pairs: DataFrame, biases: Biases, rank: int, reg: float, iters: int,
                     seed: int) -> DataFrame:
    """Bias baseline + explicit ALS on its residuals. Output u, i, pred (clipped 1..5); pairs with a
    user or item ALS did not see get the bias baseline alone."""
    base = biases.predict(train).withColumnRenamed(PRED, "_b")
    resid = (train.join(base, on=[U, I], how="inner")
             .select(F.col(U).cast("int").alias(U), F.col(I).cast("int").alias(I),
                     (F.col(VALUE) - F.col("_b")).cast("float").alias(VALUE)))
    model = ALS(userCol=U, itemCol=I, ratingCol=VALUE, rank=rank, regParam=reg, maxIter=iters, seed=seed,
                coldStartStrategy="nan", nonnegative=False).fit(resid)
    p = model.transform(pairs.select(F.col(U).cast("int").alias(U), F.col(I).cast("int").alias(I)))
    raw = (F.when(F.isnan(F.col("prediction")), F.lit(0.0)).otherwise(F.col("prediction"))).cast("double")
    out = (p.select(F.col(U).cast("long").alias(U), F.col(I).cast("long").alias(I), raw.alias("_r"))
           .join(biases.predict(pairs), on=[U, I], how="inner"))
    return out.select(U, I, F.least(F.greatest(F.col(PRED) + F.col("_r"), F.lit(1.0)), F.lit(5.0)).alias(PRED))
