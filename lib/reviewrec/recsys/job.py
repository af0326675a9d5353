"""The recommend job: popularity, blockwise user-CF, the filled user-item matrix, top-N, report.

Reads <root>/reviews (customer_id, product_id, star_rating, review_date, product_category)
and writes

    <root>/popularity       scope, product_category, product_id, n_ratings, mean_rating,
                            bayes_rating, rank (overall and per category)
    <root>/neighbors        user, neighbor, cosine (top-k per user)
    <root>/predictions      user, item, predicted_rating, cf_support, source: the filled
                            cells of the sparse user-item matrix (candidates only)
    <root>/recommendations  user, rank, item, score, source
    <root>/report/recs      summary.json, PNG plots, index.html

Candidates of a user (the cells that get filled): the items rated by the user's neighbours
(best `recsys.fill.neighbor_items` by CF score) plus the `recsys.fill.top_popular` most
popular items overall, minus what the user rated. Their rating comes from the trained
model when one exists (recsys.scoring), otherwise from CF. With recsys.evaluate.enabled, the
same pipeline is rerun on a time split (train before a cut date, test after) and the
filled ratings are scored by RMSE/MAE next to explicit ALS and the global-mean baseline.
"""
from __future__ import annotations

import logging
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from reviewrec import io
from reviewrec import schema as S
from reviewrec.config import Config
from reviewrec.recsys import blocks as B
from reviewrec.recsys import cf
from reviewrec.recsys.als import als_predict
from reviewrec.recsys.metrics import rating_errors
from reviewrec.recsys.popularity import BAYES, RANK as POP_RANK, SCOPE, SCOPE_OVERALL, popularity_table
from reviewrec.recsys.scoring import CF_PRED, FALLBACK, PREDICTED_RATING, CFScorer, resolve_scorer
from reviewrec.report import html as H
from reviewrec.runtime import StageTimer

log = logging.getLogger(__name__)

REQUIRED = (S.CUSTOMER_ID, S.PRODUCT_ID, S.STAR_RATING, S.REVIEW_DATE, S.PRODUCT_CATEGORY)
RATING = "rating"


def ratings_matrix(reviews: DataFrame, users: DataFrame, items: DataFrame) -> DataFrame:
    """One entry per (user, item): the mean star of the user's reviews of it. Output u, i, value."""
    return (reviews
            .join(users, on=S.CUSTOMER_ID, how="inner")
            .join(items, on=S.PRODUCT_ID, how="inner")
            .groupBy(cf.U, cf.I)
            .agg(F.avg(F.col(S.STAR_RATING).cast("double")).alias(cf.VALUE)))


def similarity_params(rc: dict[str, Any], exact: bool = False) -> B.SimilarityParams:
    nb = rc["neighbors"]
    return B.SimilarityParams(
        k=nb["k"], block_size=rc["block_size"], shrink=float(nb["shrink"]), max_pairs=rc["max_pairs"],
        max_column_degree=None if exact or not nb["max_item_degree"] else nb["max_item_degree"],
        threshold=None if exact else nb["min_similarity"])


def with_ids(df: DataFrame, users: DataFrame, items: DataFrame) -> DataFrame:
    """df (u, i, ...) + customer_id, product_id: what the model scorer indexes with its own indexers."""
    return df.join(users, on=cf.U, how="inner").join(items, on=cf.I, how="inner")


def fill(spark: SparkSession, ratings: DataFrame, item_prior: DataFrame, rc: dict[str, Any], model_dir: str,
         n_users: int, n_items: int, users: DataFrame | None = None,
         items: DataFrame | None = None) -> tuple[DataFrame, DataFrame, DataFrame, str]:
    """Neighbours, CF predictions and the filled candidate cells.

    ratings: u, i, value (stars). item_prior: i, fallback_rating, score (popularity).
    users / items: the id tables (customer_id, u) / (product_id, i), needed by the model scorer.
    Returns (neighbors row/neighbor/sim, filled u/i/predicted_rating/cf_support/source/cf_score,
    CF predictions u/i/pred/support over all neighbour-rated items, scorer name).
    """
    centre = rc["neighbors"]["mean_centre"]
    if centre:
        values, means = cf.centre(ratings)
    else:
        values, means = ratings, None
    nb = cf.user_neighbors(values, similarity_params(rc), n_users, n_items)
    nb = nb.cache()
    scores = cf.user_cf_scores(nb, values, seen=ratings)
    preds = cf.predict_ratings(scores, means)
    best = Window.partitionBy(cf.U).orderBy(F.col(cf.SUPPORT).desc(), F.col(cf.PRED).desc(), F.col(cf.I))
    from_nb = (preds
               .withColumn("_r", F.row_number().over(best))
               .where(F.col("_r") <= rc["fill"]["neighbor_items"])
               .select(cf.U, cf.I, F.col(cf.PRED).alias(CF_PRED), F.col(cf.SUPPORT)))
    top_pop = item_prior.orderBy(F.col(cf.SCORE).desc(), F.col(cf.I)).limit(rc["fill"]["top_popular"]).select(cf.I)
    raters = ratings.select(cf.U).distinct()
    from_pop = (raters.crossJoin(F.broadcast(top_pop))
                .join(ratings.select(cf.U, cf.I), on=[cf.U, cf.I], how="left_anti"))
    cands = (from_nb.unionByName(from_pop, allowMissingColumns=True)
             .groupBy(cf.U, cf.I)
             .agg(F.max(CF_PRED).alias(CF_PRED), F.max(cf.SUPPORT).alias(cf.SUPPORT))
             .join(item_prior.select(cf.I, FALLBACK), on=cf.I, how="left"))
    scorer = resolve_scorer(spark, model_dir, rc["fill"]["use_model"])
    if scorer.name == "model":
        if users is None or items is None:
            raise ValueError("fill: the model scorer needs the users and items id tables")
        cands = with_ids(cands, users, items)
    scored = scorer.score(spark, cands)
    source = (F.when(F.lit(scorer.name == "model"), F.lit(cf.SRC_MODEL))
              .when(F.col(CF_PRED).isNotNull(), F.lit(cf.SRC_USER_CF))
              .otherwise(F.lit(cf.SRC_POPULAR)))
    filled = scored.select(cf.U, cf.I, F.col(PREDICTED_RATING), F.coalesce(F.col(cf.SUPPORT), F.lit(0)).alias(cf.SUPPORT),
                           source.alias(cf.SOURCE))
    return nb, filled, preds, scorer.name


def recommend_from_filled(filled: DataFrame, n: int) -> DataFrame:
    """Top-n filled cells per user by predicted rating (then CF support, then item). u, rank, i, score, source."""
    w = Window.partitionBy(cf.U).orderBy(F.col(PREDICTED_RATING).desc(), F.col(cf.SUPPORT).desc(), F.col(cf.I))
    return (filled
            .withColumn(cf.RANK, F.row_number().over(w))
            .where(F.col(cf.RANK) <= n)
            .select(cf.U, F.col(cf.RANK).cast("int").alias(cf.RANK), cf.I,
                    F.col(PREDICTED_RATING).alias(cf.SCORE), cf.SOURCE))


def _item_prior(popularity: DataFrame, items: DataFrame) -> DataFrame:
    overall = popularity.where(F.col(SCOPE) == SCOPE_OVERALL)
    return (overall.join(items, on=S.PRODUCT_ID, how="inner")
            .select(cf.I, F.col(BAYES).alias(FALLBACK), (-F.col(POP_RANK)).cast("double").alias(cf.SCORE)))


def time_split_eval(spark: SparkSession, reviews: DataFrame, rc: dict[str, Any], model_dir: str) -> dict[str, Any]:
    """RMSE/MAE on reviews after a cut date, everything fitted on the reviews before it.

    Methods: filled (the model when it is used, else CF with the item Bayesian average where CF
    has no neighbour), cf_filled (that CF fill, only listed when the model fills), cf_only
    (pairs CF can predict), als (explicit), global_mean, item_bayes.
    Figures are given on all test pairs (unpredictable pairs take the global mean) and on
    the pairs each method could predict (coverage says how many).
    """
    ev = rc["evaluate"]
    days = F.datediff(F.col(S.REVIEW_DATE), F.lit("1970-01-01"))
    cut = reviews.select(days.alias("d")).approxQuantile("d", [1.0 - ev["test_fraction"]], 0.001)[0]
    train = reviews.where(days < cut)
    test = reviews.where(days >= cut)
    users = cf.index_ids(train, S.CUSTOMER_ID, cf.U)
    items = cf.index_ids(train, S.PRODUCT_ID, cf.I)
    n_users, n_items = users.count(), items.count()
    r_train = ratings_matrix(train, users, items).cache()
    mu = float(r_train.agg(F.avg(cf.VALUE)).first()[0])
    truth = ratings_matrix(test, users, items).withColumnRenamed(cf.VALUE, RATING).cache()
    n_test_all = test.select(S.CUSTOMER_ID, S.PRODUCT_ID).distinct().count()
    pop = popularity_table(train, rc["popularity"]["prior_weight"])
    prior = _item_prior(pop, items).cache()
    # Every test pair is a candidate here: the filled rating of exactly those cells is scored.
    values, means = cf.centre(r_train) if rc["neighbors"]["mean_centre"] else (r_train, None)
    nb = cf.user_neighbors(values, similarity_params(rc), n_users, n_items)
    preds = cf.predict_ratings(cf.user_cf_scores(nb, values.join(truth.select(cf.I).distinct(), cf.I, "inner")), means)
    cands = (truth.select(cf.U, cf.I)
             .join(preds.select(cf.U, cf.I, F.col(cf.PRED).alias(CF_PRED)), on=[cf.U, cf.I], how="left")
             .join(prior.select(cf.I, FALLBACK), on=cf.I, how="left"))
    scorer = resolve_scorer(spark, model_dir, rc["fill"]["use_model"])

    def scored(sc: Any) -> DataFrame:
        return sc.score(spark, cands).select(cf.U, cf.I, F.coalesce(F.col(PREDICTED_RATING), F.lit(mu)).alias(cf.PRED))

    cf_filled = None
    if scorer.name == "model":
        cands = with_ids(cands, users, items)
        # With the model filling, the CF fill of the same cells is scored beside it.
        cf_filled = scored(CFScorer())
    filled = scored(scorer)
    als = als_predict(r_train, truth.select(cf.U, cf.I), rc["als"]["rank"], rc["als"]["reg"], rc["als"]["iters"], rc["als"]["seed"])
    als_all = truth.select(cf.U, cf.I).join(als, on=[cf.U, cf.I], how="left").select(
        cf.U, cf.I, F.coalesce(F.col(cf.PRED), F.lit(mu)).alias(cf.PRED))
    gm = truth.select(cf.U, cf.I, F.lit(mu).alias(cf.PRED))
    ib = truth.select(cf.U, cf.I).join(prior.select(cf.I, F.col(FALLBACK).alias(cf.PRED)), on=cf.I, how="left")
    cf_only = cands.where(F.col(CF_PRED).isNotNull()).select(cf.U, cf.I, F.col(CF_PRED).alias(cf.PRED))
    out = {
        "cut_day": str(spark.range(1).select(F.date_add(F.lit("1970-01-01"), int(cut))).first()[0]),
        "train_reviews": train.count(), "test_reviews": test.count(),
        "test_pairs": n_test_all, "test_pairs_warm_item": truth.count(),
        "global_mean": mu, "scorer": scorer.name,
        "methods": {
            "filled": rating_errors(filled, truth, cf.PRED, RATING),
            **({} if cf_filled is None else {"cf_filled": rating_errors(cf_filled, truth, cf.PRED, RATING)}),
            "cf_only": rating_errors(cf_only, truth, cf.PRED, RATING),
            "als_explicit": rating_errors(als, truth, cf.PRED, RATING),
            "als_explicit_filled": rating_errors(als_all, truth, cf.PRED, RATING),
            "global_mean": rating_errors(gm, truth, cf.PRED, RATING),
            "item_bayes": rating_errors(ib, truth, cf.PRED, RATING),
        },
        "note": "scored on test pairs whose user and item both occur before the cut (a pair with an "
                "unknown user or item has no CF, ALS or item prediction); *_filled and filled fall back to "
                "the global mean where their method has no value",
    }
    for df in (r_train, truth, prior):
        df.unpersist()
    return out


def _report(spark: SparkSession, root: str, summary: dict[str, Any], sim_hist: list[tuple[str, int]],
            top_items: list[tuple[str, float, int]]) -> None:
    plt = H.plt()
    with io.publish_dir(spark, io.dataset_path(root, "report/recs")) as out:
        figs = []
        fig, ax = plt.subplots(figsize=(7, 3.2))
        ax.bar([b for b, _ in sim_hist], [n for _, n in sim_hist], color="#4c72b0")
        ax.set_xlabel("cosine")
        ax.set_ylabel("neighbour pairs")
        ax.set_title("Similarity of kept neighbours")
        ax.tick_params(axis="x", labelsize=7, rotation=45)
        figs.append(("Neighbour similarities", H.savefig(fig, out, "neighbor_similarity.png")))
        if top_items:
            fig, ax = plt.subplots(figsize=(7, 3.5))
            ax.barh([t[0] for t in reversed(top_items)], [t[1] for t in reversed(top_items)], color="#55a868")
            ax.set_xlabel("Bayesian average rating")
            ax.set_title("Most popular items (overall)")
            figs.append(("Popularity", H.savefig(fig, out, "popularity.png")))
        ev = summary.get("evaluation")
        if ev:
            names = list(ev["methods"])
            fig, ax = plt.subplots(figsize=(7, 3.2))
            xs = range(len(names))
            ax.bar([x - 0.2 for x in xs], [ev["methods"][m]["rmse"] for m in names], width=0.4, label="RMSE")
            ax.bar([x + 0.2 for x in xs], [ev["methods"][m]["mae"] for m in names], width=0.4, label="MAE")
            ax.set_xticks(list(xs), names, fontsize=7, rotation=20)
            ax.legend()
            ax.set_title("Rating error on the time split")
            figs.append(("Rating error", H.savefig(fig, out, "rating_error.png")))
        io.write_json_atomic(None, f"{out}/summary.json", summary)
        counts = H.table(["measure", "value"], [(k, v) for k, v in summary["counts"].items()])
        sections = [("Counts", counts),
                    ("Settings", H.table(["key", "value"], sorted(summary["settings"].items()))),
                    ("Source of recommendations", H.table(["source", "rows"], sorted(summary["recommendation_sources"].items())))]
        if ev:
            sections.append(("Time-split rating error", H.table(
                ["method", "RMSE", "MAE", "pairs", "coverage"],
                [(m, v["rmse"], v["mae"], v["n"], v["coverage"]) for m, v in ev["methods"].items()])
                + f"<p>cut {ev['cut_day']}; train {ev['train_reviews']:,} / test {ev['test_reviews']:,} reviews; "
                  f"{ev['note']}</p>"))
        if "approximate" in summary:
            sections.append(("Approximate neighbours", H.table(["measure", "value"], summary["approximate"].items())))
        sections.append(("Timings (s)", H.table(["stage", "seconds"], summary["timings"].items())))
        sections += [(t, H.figure(n, t)) for t, n in figs]
        with open(f"{out}/index.html", "w", encoding="utf-8") as fh:
            fh.write(H.page("reviewrec recommendations", sections, subtitle=f"config {summary['config_hash']}"))


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    timer = StageTimer("recommend")
    root = cfg["run"]["root"]
    rc = cfg["recsys"]
    reviews = io.read_parquet(spark, io.dataset_path(root, "reviews"), "ingest")
    S.require_columns(reviews.columns, REQUIRED, io.dataset_path(root, "reviews"))
    reviews = reviews.select(*REQUIRED).cache()
    model_dir = io.dataset_path(root, "model")
    summary: dict[str, Any] = {"config_hash": cfg.hash(), "settings": {k: v for k, v in cfg.flat().items() if k.startswith("recsys.")}}
    with timer.stage("index"):
        users = cf.index_ids(reviews, S.CUSTOMER_ID, cf.U).cache()
        items = cf.index_ids(reviews, S.PRODUCT_ID, cf.I).cache()
        n_users, n_items = users.count(), items.count()
        ratings = ratings_matrix(reviews, users, items).cache()
        n_ratings = ratings.count()
    with timer.stage("popularity"):
        pop = popularity_table(reviews, rc["popularity"]["prior_weight"]).cache()
        io.write_parquet_atomic(pop, io.dataset_path(root, "popularity"))
        top_items = [(r[S.PRODUCT_ID], float(r[BAYES]), int(r["n_ratings"])) for r in
                     pop.where((F.col(SCOPE) == SCOPE_OVERALL) & (F.col(POP_RANK) <= 10)).orderBy(POP_RANK).collect()]
    prior = _item_prior(pop, items).cache()
    with timer.stage("neighbours + fill"):
        nb, filled, _, scorer = fill(spark, ratings, prior, rc, model_dir, n_users, n_items, users, items)
        nbr_out = (nb
                   .join(users.select(F.col(cf.U).alias(B.ROW), F.col(S.CUSTOMER_ID).alias("_uid")), on=B.ROW, how="inner")
                   .join(users.select(F.col(cf.U).alias(B.NEIGHBOR), F.col(S.CUSTOMER_ID).alias("_nid")),
                         on=B.NEIGHBOR, how="inner")
                   .select(F.col("_uid").alias(S.USER), F.col("_nid").alias(S.NEIGHBOR), F.col(B.SIM).alias(S.COSINE)))
        io.write_parquet_atomic(nbr_out, io.dataset_path(root, "neighbors"))
        ids = lambda df: (with_ids(df, users, items)  # noqa: E731
                          .withColumnRenamed(S.CUSTOMER_ID, S.USER).withColumnRenamed(S.PRODUCT_ID, S.ITEM))
        filled = filled.cache()
        io.write_parquet_atomic(ids(filled).select(S.USER, S.ITEM, F.col(PREDICTED_RATING).alias(S.PREDICTED_RATING),
                                                   F.col(cf.SUPPORT).alias(S.CF_SUPPORT), F.col(cf.SOURCE).alias(S.SOURCE)),
                                io.dataset_path(root, "predictions"))
    with timer.stage("recommendations"):
        recs = recommend_from_filled(filled, rc["top_n"])
        io.write_parquet_atomic(ids(recs).select(S.USER, F.col(cf.RANK).alias(S.RANK), S.ITEM,
                                                 F.col(cf.SCORE).alias(S.SCORE), F.col(cf.SOURCE).alias(S.SOURCE)),
                                io.dataset_path(root, "recommendations"))
        written = spark.read.parquet(io.dataset_path(root, "recommendations"))
        sources = {r[S.SOURCE]: int(r["count"]) for r in written.groupBy(S.SOURCE).count().collect()}
        n_nbr = spark.read.parquet(io.dataset_path(root, "neighbors"))
        edges = [x / 10 for x in range(-10, 11)]
        hist = n_nbr.select(F.floor(F.col(S.COSINE) * 10).alias("b")).groupBy("b").count().collect()
        counts_by = {int(r["b"]): int(r["count"]) for r in hist}
        sim_hist = [(f"{edges[j + 10]:.1f}", counts_by.get(j, 0) + (counts_by.get(10, 0) if j == 9 else 0))
                    for j in range(-10, 10)]
        n_neighbor_rows = n_nbr.count()
    if rc["neighbors"]["measure_recall"] and (rc["neighbors"]["max_item_degree"] or rc["neighbors"]["min_similarity"] is not None):
        with timer.stage("approximate-mode recall"):
            values = cf.centre(ratings)[0] if rc["neighbors"]["mean_centre"] else ratings
            exact = cf.user_neighbors(values, similarity_params(rc, exact=True), n_users, n_items)
            summary["approximate"] = {"recall_of_exact_topk": B.topk_recall(nb, exact),
                                      "max_item_degree": rc["neighbors"]["max_item_degree"],
                                      "min_similarity": rc["neighbors"]["min_similarity"]}
    if rc["evaluate"]["enabled"]:
        with timer.stage("time-split evaluation"):
            summary["evaluation"] = time_split_eval(spark, reviews, rc, model_dir)
            log.info("time-split rating error: %s", {m: (round(v["rmse"], 4), round(v["mae"], 4), v["n"])
                                                      for m, v in summary["evaluation"]["methods"].items()})
    summary["counts"] = {"users": n_users, "items": n_items, "ratings": n_ratings,
                         "neighbor_rows": n_neighbor_rows, "recommendation_rows": sum(sources.values())}
    summary["recommendation_sources"] = sources
    summary["scorer"] = scorer
    summary["timings"] = timer.timings
    _report(spark, root, summary, sim_hist, top_items)
    for df in (reviews, users, items, ratings, pop, prior, filled, nb):
        df.unpersist()
    log.info("recommend: %s", {k: v for k, v in summary.items() if k in ("counts", "timings", "scorer")})
    return summary
