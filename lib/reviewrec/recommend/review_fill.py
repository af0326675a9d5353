"""The rating model given the text that exists for an unrated cell: the user's other reviews and
the item's other reviews as the cell's document (the reviews-as-documents idea of DeepCoNN and
NARRE), scored by the star model together with the cell's customer and product ids.

    known = known_reviews(split, tokens, parts)      # the reviews a document may draw on, + lemmas
    ids = review_token_ids(known, vocab, seq_len)    # + ids: each review's token ids (no padding)
    docs = cell_documents(cells, ids, spec, seq_len) # cells + seq: the cell's document
    score_documents(spark, docs, model_dir)          # + predicted_rating, the model's expected star
    ReviewTextScorer(model_dir, ids, index, spec)    # a RatingScorer (name "review_text")
    evaluate(spark, split, tokens, model_dir, index, damping)   # validation choice and test rows

A cell (u, i)'s document: the lemmas of u's `k` most recent reviews of other items, then those of
i's `k` most recent reviews by other users (`spec.sides` keeps one side or both), every review of
the pair (u, i) itself left out; each side gets seq_len / (number of sides) tokens, each review the
first seq_len / (sides * k) of its lemmas, a side's reviews oldest first (the LSTM's last state
sits on the most recent). Lemmas map to ids through the model's own vocabulary (out of
vocabulary = 1), as the features job maps them. A cell with no such review gets the empty text,
i.e. exactly the model fill of model.score.score_candidates. With `pool` mean the same picked
reviews are each the model's input on their own (the first seq_len lemmas of each, with the
cell's ids), and the cell's rating is the mean of their expected stars.

Only the reviews passed as `known` are ever read: the caller keeps the held-out and the later
reviews out (evaluate: the train part for validation cells, train + val for test cells).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from reviewrec import schema as S
from reviewrec.features import meta as M
from reviewrec.features import transforms as X
from reviewrec.model.score import load_metadata, require_model, score_candidates
from reviewrec.recommend import baseline
from reviewrec.recommend import cf
from reviewrec.recommend.ids import I, U, IdIndex
from reviewrec.recommend.metrics import paired_bootstrap, rating_errors

log = logging.getLogger(__name__)

IDS = "ids"  # a known review's token ids, without padding
SIDES = ("user", "item", "user+item")
POOLS = ("concat", "mean")
N_USER_DOCS, N_ITEM_DOCS = "n_user_reviews", "n_item_reviews"
NAME = "review_text"


@dataclass(frozen=True)
class DocSpec:
    """Which reviews make a cell's text: `sides` (user, item or user+item), the `k` most recent per
    side; `pool` concat: one document of them all (the model reads it once), mean: each review its
    own document (the model reads each, with the cell's ids) and the cell's rating the mean of
    their expected ratings (NARRE encodes each review on its own too, and pools them)."""

    sides: str = "user+item"
    k: int = 3
    pool: str = "concat"

    def __post_init__(self) -> None:
        if self.sides not in SIDES or self.k < 1 or self.pool not in POOLS:
            raise ValueError(f"document spec {self.sides!r} k={self.k} pool={self.pool!r}: sides is one of "
                             f"{SIDES}, k >= 1, pool one of {POOLS}")

    @property
    def label(self) -> str:
        return f"{self.sides} k={self.k}" + (" mean" if self.pool == "mean" else "")

    def per_review(self, seq_len: int) -> int:
        """Tokens each review may give: concat, the side's share of seq_len over k; mean, seq_len."""
        if self.pool == "mean":
            return seq_len
        return max(1, seq_len // (len(self.sides.split("+")) * self.k))


# The document constructions the validation part chooses between; DEFAULT where none was chosen.
GRID = (tuple(DocSpec(s, k) for s in SIDES for k in (1, 3))
        + tuple(DocSpec(s, k, "mean") for s in SIDES for k in (3, 10)))
DEFAULT = DocSpec()


def known_reviews(split: DataFrame, tokens: DataFrame, parts: tuple[str, ...]) -> DataFrame:
    """The reviews of `split` (with its split column) in `parts` with their lemmas: review_id,
    customer_id, product_id, review_date, lemmas (empty where tokens has none)."""
    S.require_columns(split.columns, (S.REVIEW_ID, S.CUSTOMER_ID, S.PRODUCT_ID, S.REVIEW_DATE, S.SPLIT), "split")
    S.require_columns(tokens.columns, (S.REVIEW_ID, S.LEMMAS), "tokens")
    empty = F.array().cast("array<string>")
    return (split.where(F.col(S.SPLIT).isin(*parts))
            .select(S.REVIEW_ID, S.CUSTOMER_ID, S.PRODUCT_ID, S.REVIEW_DATE)
            .join(tokens.select(S.REVIEW_ID, S.LEMMAS), on=S.REVIEW_ID, how="left")
            .withColumn(S.LEMMAS, F.coalesce(F.col(S.LEMMAS), empty)))


def review_token_ids(known: DataFrame, vocab: dict[str, int], seq_len: int) -> DataFrame:
    """known + ids: the first seq_len lemmas of each review as the model's token ids
    (features.transforms.token_sequences with the model's vocabulary, padding removed)."""
    spark = known.sparkSession
    vocab_df = spark.createDataFrame(sorted(vocab.items(), key=lambda t: t[1]), f"{X.TOKEN} string, {X.TOKEN_ID} int")
    seqs = X.token_sequences(known, vocab_df, seq_len, col_out="__seq")
    return (seqs.withColumn(IDS, F.filter(F.col("__seq"), lambda x: x != F.lit(S.SEQ_PAD_ID)))
            .drop("__seq", S.LEMMAS))


def _picked(cells: DataFrame, known: DataFrame, by: str, other: str, k: int, per: int, col: str,
            reserve: int) -> DataFrame:
    """cells (customer_id, product_id) -> customer_id, product_id, review_date, review_id, _t (the
    review's first `per` elements of `col`): the `k` most recent reviews sharing the cell's `by` id
    whose `other` id differs from the cell's."""
    recent = [F.col(S.REVIEW_DATE).desc(), F.col(S.REVIEW_ID).desc()]
    # Per id, the k most recent plus as many as one (customer, product) pair can hold: the cell's own
    # reviews are among them at most `reserve` times, so k others remain whenever they exist.
    head = (known.withColumn("_r", F.row_number().over(Window.partitionBy(by).orderBy(*recent)))
            .where(F.col("_r") <= k + reserve)
            .select(F.col(by), F.col(other).alias("_other"), S.REVIEW_DATE, S.REVIEW_ID,
                    F.slice(F.col(col), 1, per).alias("_t")))
    keys = [S.CUSTOMER_ID, S.PRODUCT_ID]
    return (cells.join(head, on=by, how="inner")
            .where(F.col("_other") != F.col(other))
            .withColumn("_c", F.row_number().over(Window.partitionBy(*keys).orderBy(*recent)))
            .where(F.col("_c") <= k)
            .select(*keys, S.REVIEW_DATE, S.REVIEW_ID, "_t"))


def _side(cells: DataFrame, known: DataFrame, by: str, other: str, k: int, per: int, col: str,
          reserve: int) -> DataFrame:
    """cells (customer_id, product_id) -> customer_id, product_id, _t (the side's tokens, oldest
    review first), _n (its reviews): _picked's reviews as one text."""
    keys = [S.CUSTOMER_ID, S.PRODUCT_ID]
    picked = _picked(cells, known, by, other, k, per, col, reserve)
    return (picked.groupBy(*keys)
            .agg(F.array_sort(F.collect_list(F.struct(S.REVIEW_DATE, S.REVIEW_ID, "_t"))).alias("_docs"),
                 F.count(F.lit(1)).alias("_n"))
            .select(*keys, F.flatten(F.transform("_docs", lambda d: d["_t"])).alias("_t"), "_n"))


def cell_documents(cells: DataFrame, known: DataFrame, spec: DocSpec, seq_len: int, col: str = IDS) -> DataFrame:
    """cells (customer_id, product_id, ...) -> cells + seq (the document: `col` elements, at most
    seq_len, empty when no other review exists), n_user_reviews, n_item_reviews (reviews used).

    `known`: review_id, customer_id, product_id, review_date and `col` (an array: token ids, or
    lemmas in tests). Every cell is kept, once per distinct (customer_id, product_id)."""
    S.require_columns(known.columns, (S.REVIEW_ID, S.CUSTOMER_ID, S.PRODUCT_ID, S.REVIEW_DATE, col), "known reviews")
    keys = [S.CUSTOMER_ID, S.PRODUCT_ID]
    pairs = cells.select(*keys).distinct()
    reserve = int(known.groupBy(*keys).count().agg(F.max("count")).first()[0] or 0)
    per = spec.per_review(seq_len)
    elem = known.schema[col].dataType
    empty = F.array().cast(elem)
    docs = pairs
    parts = []
    for side, by, other, n in (("user", S.CUSTOMER_ID, S.PRODUCT_ID, N_USER_DOCS),
                               ("item", S.PRODUCT_ID, S.CUSTOMER_ID, N_ITEM_DOCS)):
        if side in spec.sides.split("+"):
            got = _side(pairs, known, by, other, spec.k, per, col, reserve)
            docs = docs.join(got.withColumnRenamed("_t", f"_t_{side}").withColumnRenamed("_n", n), on=keys, how="left")
            parts.append(F.coalesce(F.col(f"_t_{side}"), empty))
        else:
            docs = docs.withColumn(n, F.lit(0))
    docs = docs.select(*keys, F.slice(F.concat(*parts), 1, seq_len).alias(S.SEQ),
                       F.coalesce(F.col(N_USER_DOCS), F.lit(0)).cast("int").alias(N_USER_DOCS),
                       F.coalesce(F.col(N_ITEM_DOCS), F.lit(0)).cast("int").alias(N_ITEM_DOCS))
    own = [c for c in cells.columns if c not in (S.SEQ, N_USER_DOCS, N_ITEM_DOCS)]
    return cells.select(*own).join(docs, on=keys, how="left")


def review_documents(cells: DataFrame, known: DataFrame, spec: DocSpec, seq_len: int, col: str = IDS) -> DataFrame:
    """The reviews `spec` picks for each cell, one row each: customer_id, product_id, side (user or
    item), review_id, seq (its first seq_len elements of `col`); a cell with none has no row."""
    keys = [S.CUSTOMER_ID, S.PRODUCT_ID]
    pairs = cells.select(*keys).distinct()
    reserve = int(known.groupBy(*keys).count().agg(F.max("count")).first()[0] or 0)
    rows = [_picked(pairs, known, by, other, spec.k, seq_len, col, reserve).select(
                *keys, F.lit(side).alias("side"), S.REVIEW_ID, F.col("_t").alias(S.SEQ))
            for side, by, other in (("user", S.CUSTOMER_ID, S.PRODUCT_ID), ("item", S.PRODUCT_ID, S.CUSTOMER_ID))
            if side in spec.sides.split("+")]
    return rows[0] if len(rows) == 1 else rows[0].unionByName(rows[1])


def predict_cells(spark: SparkSession, cells: DataFrame, known: DataFrame, spec: DocSpec, model_dir: str,
                  seq_len: int) -> DataFrame:
    """cells (customer_id, product_id, ...: distinct pairs) -> cells + predicted_rating (the model on
    the cell's text and ids), tokens (token ids the model read for the cell), n_user_reviews,
    n_item_reviews. concat: one document (cell_documents); mean: the mean over the picked reviews,
    each scored as its own document; a cell with no review: the empty text."""
    if spec.pool == "concat":
        docs = cell_documents(cells, known, spec, seq_len)
        return (score_documents(spark, docs, model_dir)
                .withColumn("tokens", F.when(F.col(S.SEQ).isNull(), 0).otherwise(F.size(S.SEQ))).drop(S.SEQ))
    keys = [S.CUSTOMER_ID, S.PRODUCT_ID]
    per = (score_documents(spark, review_documents(cells, known, spec, seq_len), model_dir)
           .groupBy(*keys)
           .agg(F.avg(S.PREDICTED_RATING).alias("_m"), F.sum(F.size(S.SEQ)).alias("tokens"),
                F.sum(F.when(F.col("side") == "user", 1).otherwise(0)).alias(N_USER_DOCS),
                F.sum(F.when(F.col("side") == "item", 1).otherwise(0)).alias(N_ITEM_DOCS)))
    empty = score_documents(spark, cells.withColumn(S.SEQ, F.lit(None).cast("array<int>")), model_dir)
    return (empty.drop(S.SEQ).join(per, on=keys, how="left")
            .withColumn(S.PREDICTED_RATING, F.coalesce(F.col("_m"), F.col(S.PREDICTED_RATING))).drop("_m")
            .withColumn("tokens", F.coalesce(F.col("tokens"), F.lit(0)).cast("int"))
            .withColumn(N_USER_DOCS, F.coalesce(F.col(N_USER_DOCS), F.lit(0)).cast("int"))
            .withColumn(N_ITEM_DOCS, F.coalesce(F.col(N_ITEM_DOCS), F.lit(0)).cast("int")))


def model_vocab(spark: SparkSession, model_dir: str) -> tuple[dict[str, int], int]:
    """(the vocabulary the model was trained with, its seq_len): <model_dir>/vocab.json, the
    features' vocab.json the train job copied beside the model."""
    require_model(spark, model_dir)
    fm = M.read(model_dir, spark)
    seq_len = int(load_metadata(model_dir, spark)["net"]["seq_len"])
    return fm.vocab, seq_len


def score_documents(spark: SparkSession, docs: DataFrame, model_dir: str) -> DataFrame:
    """docs (customer_id, product_id, seq: token ids or null, ...) -> docs + predicted_rating, the
    model's expected star on the document and the ids (model.score.score_candidates with text);
    a null or empty seq is the empty text."""
    return score_candidates(spark, docs, model_dir, text=True)


class ReviewTextScorer:
    """A RatingScorer: the model given each cell's document from `known` (review_token_ids output)
    and its ids; CF, then the fallback rating, where the model gives none."""

    name = NAME

    def __init__(self, model_dir: str, known: DataFrame, index: IdIndex, spec: DocSpec = DEFAULT) -> None:
        self.model_dir, self.known, self.index, self.spec = model_dir, known, index, spec

    def score(self, spark: SparkSession, candidates: DataFrame) -> DataFrame:
        _, seq_len = model_vocab(spark, self.model_dir)
        cells = candidates.select(U, I).distinct()
        if S.CUSTOMER_ID not in candidates.columns or S.PRODUCT_ID not in candidates.columns:
            cells = cells.join(self.index.users, on=U, how="inner").join(self.index.items, on=I, how="inner")
        else:
            cells = candidates.select(U, I, S.CUSTOMER_ID, S.PRODUCT_ID).distinct()
        pred = (predict_cells(spark, cells, self.known, self.spec, self.model_dir, seq_len)
                .select(U, I, F.col(S.PREDICTED_RATING).alias("_m")))
        fallback = [F.col(c) for c in (S.CF_PRED, S.FALLBACK_RATING) if c in candidates.columns]
        return (candidates.drop(S.PREDICTED_RATING).join(pred, on=[U, I], how="left")
                .withColumn(S.PREDICTED_RATING, F.coalesce(F.col("_m"), *fallback).cast("double")).drop("_m"))


def _warm(split: DataFrame, fit_parts: tuple[str, ...], part: str, index: IdIndex) -> tuple[DataFrame, DataFrame]:
    """(ratings u, i, value of `fit_parts`, cached; the `part` pairs whose user and item occur in it,
    with customer_id and product_id, cached): the pairs time_split_eval and choose_fill score."""
    from reviewrec.recommend.job import warm_pairs

    r_fit, warm = warm_pairs(split, fit_parts, part, index)
    pairs = warm.join(index.users, on=U, how="inner").join(index.items, on=I, how="inner").cache()
    warm.unpersist()
    return r_fit, pairs


def _model_preds(spark: SparkSession, pairs: DataFrame, known: DataFrame | None, spec: DocSpec | None,
                 model_dir: str, seq_len: int) -> DataFrame:
    """u, i, pred (cached): the model on each pair's document (None: the empty text), plus the
    document's size (tokens, reviews per side)."""
    cells = pairs.select(U, I, S.CUSTOMER_ID, S.PRODUCT_ID)
    if known is None or spec is None:
        docs = cells.withColumn(S.SEQ, F.lit(None).cast("array<int>"))
        out = (score_documents(spark, docs, model_dir).withColumn("tokens", F.lit(0))
               .withColumn(N_USER_DOCS, F.lit(0)).withColumn(N_ITEM_DOCS, F.lit(0)))
    else:
        out = predict_cells(spark, cells, known, spec, model_dir, seq_len)
    return out.select(U, I, F.col(S.PREDICTED_RATING).alias(cf.PRED), "tokens", N_USER_DOCS, N_ITEM_DOCS).cache()


def _doc_stats(preds: DataFrame) -> dict[str, Any]:
    r = preds.agg(F.count(F.lit(1)), F.avg(F.col("tokens")), F.sum(F.when(F.col("tokens") == 0, 1).otherwise(0)),
                  F.sum(F.when(F.col(N_USER_DOCS) > 0, 1).otherwise(0)),
                  F.sum(F.when(F.col(N_ITEM_DOCS) > 0, 1).otherwise(0))).first()
    n = int(r[0])
    return {"cells": n, "mean_tokens": round(float(r[1] or 0.0), 1), "empty_text": int(r[2] or 0),
            "with_user_reviews": int(r[3] or 0), "with_item_reviews": int(r[4] or 0)}


def evaluate(spark: SparkSession, split: DataFrame, tokens: DataFrame, model_dir: str, index: IdIndex,
             damping: tuple[float, float] | None = None, grid: tuple[DocSpec, ...] = GRID) -> dict[str, Any]:
    """The review-text fill measured as time_split_eval measures the others, on `split` (the reviews
    with train / val / test assigned).

    Validation: each document construction of `grid` on the val pairs whose user and item occur
    in train, documents from the train reviews only, beside the bias baseline (fitted on train;
    its damping `damping` (user, item), or chosen on val as choose_fill chooses it when None) and
    the model on the empty text; the construction of lowest RMSE is chosen. Test:
    the chosen construction on the test pairs whose user and item occur in train + val, documents
    from the train + val reviews only, against the global mean, the bias baseline and the model on
    the empty text (RMSE/MAE and 95% paired bootstrap intervals, method minus reference)."""
    vocab, seq_len = model_vocab(spark, model_dir)
    non_test = (S.SPLIT_TRAIN, S.SPLIT_VAL)
    known_nt = review_token_ids(known_reviews(split, tokens, non_test), vocab, seq_len).cache()
    known_train = known_nt.join(split.where(F.col(S.SPLIT) == S.SPLIT_TRAIN).select(S.REVIEW_ID),
                                on=S.REVIEW_ID, how="left_semi")
    r_fit, val = _warm(split, (S.SPLIT_TRAIN,), S.SPLIT_VAL, index)
    truth_val = val.select(U, I, cf.VALUE)
    val_rmse: dict[str, float] = {}
    if damping is None:
        b, _ = baseline.choose_biases(r_fit, truth_val)
    else:
        b = baseline.fit_biases(r_fit, *damping)
    du, di = b.damping_user, b.damping_item
    val_rmse["bias"] = baseline.rmse(b.predict(truth_val), truth_val)
    empty = _model_preds(spark, val, None, None, model_dir, seq_len)
    val_rmse["model (empty text)"] = baseline.rmse(empty.select(U, I, cf.PRED), truth_val)
    val_docs: dict[str, Any] = {}
    for spec in grid:
        preds = _model_preds(spark, val, known_train, spec, model_dir, seq_len)
        val_rmse[spec.label] = baseline.rmse(preds.select(U, I, cf.PRED), truth_val)
        val_docs[spec.label] = _doc_stats(preds)
        preds.unpersist()
        log.info("review-text fill, validation: %s RMSE %.4f %s", spec.label, val_rmse[spec.label],
                 val_docs[spec.label])
    chosen = min(grid, key=lambda s: (val_rmse[s.label], grid.index(s)))
    log.info("review-text fill, validation: chosen %s (RMSE %.4f); bias %.4f, the model on the empty text %.4f",
             chosen.label, val_rmse[chosen.label], val_rmse["bias"], val_rmse["model (empty text)"])
    n_val = val.count()
    for df in (r_fit, val, empty, b.users, b.items):
        df.unpersist()

    r_all, test = _warm(split, non_test, S.SPLIT_TEST, index)
    truth = test.select(U, I, F.col(cf.VALUE).alias("rating")).cache()
    mu = float(r_all.agg(F.avg(cf.VALUE)).first()[0])
    b = baseline.fit_biases(r_all, du, di, mu)
    methods = {
        NAME: _model_preds(spark, test, known_nt, chosen, model_dir, seq_len),
        "model_empty_text": _model_preds(spark, test, None, None, model_dir, seq_len),
        "bias": b.predict(test.select(U, I)).cache(),
        "global_mean": test.select(U, I, F.lit(mu).alias(cf.PRED)).cache(),
    }
    errors = {name: rating_errors(df.select(U, I, cf.PRED), truth, cf.PRED, "rating") for name, df in methods.items()}
    intervals = {NAME: {ref: paired_bootstrap(methods[NAME], methods[ref], truth, col_true="rating")
                        for ref in ("global_mean", "bias", "model_empty_text")},
                 "model_empty_text": {ref: paired_bootstrap(methods["model_empty_text"], methods[ref], truth,
                                                            col_true="rating") for ref in ("global_mean", "bias")}}
    out = {
        "validation": {"rmse": val_rmse, "pairs": n_val, "chosen": chosen.label, "documents": val_docs,
                       "beats_bias": val_rmse[chosen.label] < val_rmse["bias"],
                       "damping_user": du, "damping_item": di},
        "test": {"pairs": truth.count(), "global_mean": mu, "methods": errors, "intervals": intervals,
                 "documents": _doc_stats(methods[NAME])},
        "seq_len": seq_len,
        "note": "documents: validation cells from the train reviews, test cells from the train + val reviews; "
                "never a review of the cell itself or of a later part",
    }
    for df in (known_nt, r_all, test, truth, b.users, b.items, *methods.values()):
        df.unpersist()
    return out
