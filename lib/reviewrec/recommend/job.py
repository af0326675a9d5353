"""The recommend job: popularity, blockwise user-CF, the filled user-item matrix, top-N, report.

Reads <root>/reviews (review_id, customer_id, product_id, star_rating, review_date,
product_category) and writes

    <root>/popularity       scope, product_category, product_id, n_ratings, mean_rating,
                            bayes_rating, rank (overall and per category)
    <root>/neighbors        user, neighbor, cosine (top-k per user)
    <root>/predictions      user, item, predicted_rating, cf_support, source: the filled
                            cells of the sparse user-item matrix (candidates only)
    <root>/recommendations  user, rank, item, score, source
    <root>/report/recs      summary.json, PNG plots, index.html

Users and items are numbered by the features job's indexers (recommend.ids), the id space of the
rating model too. The top-N lists come from `recsys.ranker` (recommend.rankers: item-CF, user-CF,
their blend or popularity), ranked by interaction score. The filled matrix: candidates of a user
are the items rated by the user's neighbours (best `recsys.fill.neighbor_items` by CF support)
plus the `recsys.fill.top_popular` most popular items overall, minus what the user rated; their
rating comes from the trained model when one exists (recommend.scoring), otherwise from CF.

Implicit data (`recsys.feedback: implicit`, or every star the same under `auto`) has no rating to
fill: the neighbours use binary interactions, `predictions` is written empty and the rating
evaluation is skipped, with a warning that says so.

With recsys.evaluate.enabled the job reruns its ranker and popularity on a held-out split
(recommend.evaluation: leave-last-out on 5-core data, the time split otherwise) and reports
HR/NDCG/Recall/coverage and liked HR@10 per phase; on explicit data the filled ratings are also
scored by RMSE/MAE on the time split next to explicit ALS and the global-mean baseline.
"""
from __future__ import annotations

import logging
from html import escape as html_escape
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from reviewrec import io
from reviewrec import schema as S
from reviewrec.config import Config
from reviewrec.features import transforms as X
from reviewrec.features.job import FeaturesParams
from reviewrec.recommend import baseline, cf, evaluation, rankers
from reviewrec.recommend.als import als_predict
from reviewrec.recommend.ids import I, U, IdIndex, id_index
from reviewrec.recommend.metrics import paired_bootstrap, rating_errors
from reviewrec.recommend.params import RecommendParams
from reviewrec.recommend.popularity import BAYES, RANK as POP_RANK, SCOPE, SCOPE_OVERALL, popularity_table
from reviewrec.recommend.scoring import CFScorer, RatingScorer, resolve_scorer
from reviewrec.recommend.similarity import NEIGHBOR, ROW, SIM, topk_recall
from reviewrec.report import html as H
from reviewrec.runtime import StageTimer

log = logging.getLogger(__name__)

REQUIRED = (S.REVIEW_ID, S.CUSTOMER_ID, S.PRODUCT_ID, S.STAR_RATING, S.REVIEW_DATE, S.PRODUCT_CATEGORY)
RATING = "rating"


def ratings_matrix(reviews: DataFrame, index: IdIndex) -> DataFrame:
    """One entry per (user, item): the mean star of the user's reviews of it. Output u, i, value."""
    return (reviews
            .join(index.users, on=S.CUSTOMER_ID, how="inner")
            .join(index.items, on=S.PRODUCT_ID, how="inner")
            .groupBy(U, I)
            .agg(F.avg(F.col(S.STAR_RATING).cast("double")).alias(cf.VALUE)))


def warm_pairs(split: DataFrame, fit_parts: tuple[str, ...], part: str, index: IdIndex) -> tuple[DataFrame, DataFrame]:
    """(the ratings u, i, value of the `fit_parts` of `split`, cached; the `part` ratings whose user
    and item both occur in them, cached): what a fill is fitted on and scored on."""
    r_fit = ratings_matrix(split.where(F.col(S.SPLIT).isin(*fit_parts)), index).cache()
    pairs = (ratings_matrix(split.where(F.col(S.SPLIT) == part), index)
             .join(r_fit.select(U).distinct(), on=U, how="inner")
             .join(r_fit.select(I).distinct(), on=I, how="inner")).cache()
    return r_fit, pairs


def user_values(ratings: DataFrame, p: RecommendParams, implicit: bool = False) -> tuple[DataFrame, DataFrame | None]:
    """(the values the cosine and the scores use, per-user means or None): centred when
    recsys.neighbors.mean_centre, binary (1 per rated item) on implicit data, where centring
    would leave every vector zero."""
    if implicit:
        return ratings.select(U, I, F.lit(1.0).alias(cf.VALUE)), None
    return cf.centre(ratings) if p.neighbors.mean_centre else (ratings, None)


def feedback_kind(reviews: DataFrame, p: RecommendParams) -> tuple[bool, str]:
    """(implicit?, why): `recsys.feedback`, or under auto whether every star is the same."""
    if p.feedback != "auto":
        return p.feedback == "implicit", f"recsys.feedback = {p.feedback}"
    lo, hi = reviews.agg(F.min(S.STAR_RATING), F.max(S.STAR_RATING)).first()
    if lo is not None and lo == hi:
        return True, f"every star_rating is {lo}"
    return False, f"star ratings from {lo} to {hi}"


def neighbours_and_predictions(ratings: DataFrame, p: RecommendParams, index: IdIndex, *,
                               seen: DataFrame | None = None,
                               items: DataFrame | None = None) -> tuple[DataFrame, DataFrame]:
    """ratings (u, i, value) -> (top-k neighbours row/neighbor/sim, cached; CF rating predictions
    u, i, pred, support). Predictions skip the (u, i) of `seen` and, given `items` (i), are made
    for those items only."""
    values, means = user_values(ratings, p)
    nb = cf.user_neighbors(values, p.similarity(), index.n_users, index.n_items).cache()
    theirs = values if items is None else values.join(items, on=I, how="inner")
    return nb, cf.predict_ratings(cf.user_cf_scores(nb, theirs, seen=seen), means)


def score_cells(spark: SparkSession, scorer: RatingScorer, cells: DataFrame, index: IdIndex) -> DataFrame:
    """cells (u, i, cf_pred, fallback_rating, ...) + predicted_rating from `scorer`.

    The model scorer gets the cells with user_idx / item_idx (= u / i: the features' indices) and
    the customer and product ids."""
    if scorer.name == "model":
        cells = (cells.withColumn(S.USER_IDX, F.col(U).cast("int")).withColumn(S.ITEM_IDX, F.col(I).cast("int"))
                 .join(index.users, on=U, how="inner").join(index.items, on=I, how="inner"))
    return scorer.score(spark, cells)


def fill(spark: SparkSession, ratings: DataFrame, item_prior: DataFrame, p: RecommendParams, scorer: RatingScorer,
         index: IdIndex) -> tuple[DataFrame, DataFrame]:
    """Neighbours and the filled candidate cells.

    ratings: u, i, value (stars). item_prior: i, fallback_rating, score (popularity).
    Returns (neighbors row/neighbor/sim, filled u/i/predicted_rating/support/source).
    """
    nb, preds = neighbours_and_predictions(ratings, p, index, seen=ratings)
    best = Window.partitionBy(U).orderBy(F.col(cf.SUPPORT).desc(), F.col(cf.PRED).desc(), F.col(I))
    from_nb = (preds
               .withColumn("_r", F.row_number().over(best))
               .where(F.col("_r") <= p.fill.neighbor_items)
               .select(U, I, F.col(cf.PRED).alias(S.CF_PRED), F.col(cf.SUPPORT)))
    top_pop = item_prior.orderBy(F.col(cf.SCORE).desc(), F.col(I)).limit(p.fill.top_popular).select(I)
    raters = ratings.select(U).distinct()
    from_pop = (raters.crossJoin(F.broadcast(top_pop))
                .join(ratings.select(U, I), on=[U, I], how="left_anti"))
    cands = (from_nb.unionByName(from_pop, allowMissingColumns=True)
             .groupBy(U, I)
             .agg(F.max(S.CF_PRED).alias(S.CF_PRED), F.max(cf.SUPPORT).alias(cf.SUPPORT))
             .join(item_prior.select(I, S.FALLBACK_RATING), on=I, how="left"))
    scored = score_cells(spark, scorer, cands, index)
    source = (F.when(F.lit(scorer.name in ("model", "bias", "bias_als")), F.lit(scorer.name))
              .when(F.col(S.CF_PRED).isNotNull(), F.lit(cf.SRC_USER_CF))
              .otherwise(F.lit(cf.SRC_POPULAR)))
    filled = scored.select(U, I, F.col(S.PREDICTED_RATING), F.coalesce(F.col(cf.SUPPORT), F.lit(0)).alias(cf.SUPPORT),
                           source.alias(cf.SOURCE))
    return nb, filled


def recommend_from_filled(filled: DataFrame, n: int) -> DataFrame:
    """Top-n filled cells per user by predicted rating (then CF support, then item). u, rank, i, score, source.

    Not what the job recommends (ranking by a predicted star is a weak top-N strategy, and ties
    on implicit data); kept to compare with the rankers."""
    w = Window.partitionBy(U).orderBy(F.col(S.PREDICTED_RATING).desc(), F.col(cf.SUPPORT).desc(), F.col(I))
    return (filled
            .withColumn(cf.RANK, F.row_number().over(w))
            .where(F.col(cf.RANK) <= n)
            .select(U, F.col(cf.RANK).cast("int").alias(cf.RANK), I,
                    F.col(S.PREDICTED_RATING).alias(cf.SCORE), cf.SOURCE))


def rerank_by_star(spark: SparkSession, recs: DataFrame, filled: DataFrame, prior: DataFrame,
                   scorer: RatingScorer, index: IdIndex, p: RecommendParams) -> DataFrame:
    """The ranker's top `recsys.rerank.candidates` (recs: u, rank, i, score, source) re-ordered by
    the star of the job's fill (`scorer`; the CF and model fills fall back to the filled cells'
    rating, then the item's Bayesian average), top `recsys.top_n` kept (rankers.rerank)."""
    cells = recs.select(U, I).join(prior.select(I, S.FALLBACK_RATING), on=I, how="left")
    if scorer.name in ("cf", "model"):
        cells = cells.join(filled.select(U, I, F.col(S.PREDICTED_RATING).alias(S.CF_PRED)), on=[U, I], how="left")
    stars = score_cells(spark, scorer, cells, index).select(U, I, F.col(S.PREDICTED_RATING).alias(rankers.STAR))
    rr = p.rerank
    return rankers.rerank(recs, stars, p.top_n, rr.weight, rr.min_star, rr.candidates)


def item_prior(popularity: DataFrame, index: IdIndex) -> DataFrame:
    """i, fallback_rating (overall Bayesian average), score (minus the overall rank)."""
    overall = popularity.where(F.col(SCOPE) == SCOPE_OVERALL)
    return (overall.join(index.items, on=S.PRODUCT_ID, how="inner")
            .select(I, F.col(BAYES).alias(S.FALLBACK_RATING), (-F.col(POP_RANK)).cast("double").alias(cf.SCORE)))


def random_split(reviews: DataFrame, seed: int, train_fraction: float = 0.8,
                 val_fraction: float = 0.1) -> DataFrame:
    """reviews + `split` (train / val / test) drawn from a hash of review_id and `seed`
    (features.transforms.assign_random_split): about `train_fraction` / `val_fraction` / the rest
    of the reviews, each review in exactly one part, the same part for the same seed whatever the
    partitioning. For time_split_eval's `split`."""
    if not (0 < train_fraction and 0 < val_fraction and train_fraction + val_fraction < 1):
        raise ValueError(f"random split fractions {train_fraction} / {val_fraction} leave no test reviews")
    return X.assign_random_split(reviews, train_fraction, val_fraction, seed)


def time_split_eval(spark: SparkSession, reviews: DataFrame, p: RecommendParams, scorer: RatingScorer,
                    index: IdIndex, split: DataFrame | None = None) -> dict[str, Any]:
    """RMSE/MAE on held-out reviews, everything fitted on the others.

    `split`: the reviews with the `split` column (train / val / test) already assigned, e.g.
    random_split(reviews, seed), which are then read instead of `reviews`; None (the job's
    evaluation) = the features job's time split (features.transforms.time_split) of `reviews` with
    the latest `recsys.evaluate.test_fraction` of them as the test set and the same fraction
    before it as val. The fill is chosen on val with train fitted (choose_fill); the methods are
    fitted on train + val and scored on test. `train_until` is the time split's last training
    day, None for a given split. Methods: filled (the model when it is used, else CF with the item
    Bayesian average where CF has no neighbour), cf_filled (that CF fill, only listed when the
    model fills), bias, bias_als, cf_only (pairs CF can predict), als (explicit), global_mean,
    item_bayes. Figures are given on all warm test pairs
    (unpredictable pairs take the global mean) and on the pairs each method could predict
    (coverage says how many).
    """
    if split is None:
        f = p.evaluate.test_fraction
        split, info = X.time_split(reviews, 1.0 - 2 * f, f)
        train_until = info["val_until"]
        where_known = "up to the cut"
    else:
        S.require_columns(split.columns, (*REQUIRED, S.SPLIT), "the split given to time_split_eval")
        train_until = None
        where_known = "in the train or val reviews"
    train = split.where(F.col(S.SPLIT) != S.SPLIT_TEST)
    test = split.where(F.col(S.SPLIT) == S.SPLIT_TEST)
    validation = choose_fill(spark, split, p, scorer, index)
    r_train, warm = warm_pairs(split, (S.SPLIT_TRAIN, S.SPLIT_VAL), S.SPLIT_TEST, index)
    mu = float(r_train.agg(F.avg(cf.VALUE)).first()[0])
    truth = warm.withColumnRenamed(cf.VALUE, RATING).cache()
    n_test_all = test.select(S.CUSTOMER_ID, S.PRODUCT_ID).distinct().count()
    prior = item_prior(popularity_table(train, p.popularity.prior_weight), index).cache()
    # Every test pair is a candidate here: the filled rating of exactly those cells is scored.
    nb, preds = neighbours_and_predictions(r_train, p, index, items=truth.select(I).distinct())
    cands = (truth.select(U, I)
             .join(preds.select(U, I, F.col(cf.PRED).alias(S.CF_PRED)), on=[U, I], how="left")
             .join(prior.select(I, S.FALLBACK_RATING), on=I, how="left"))

    def scored(sc: RatingScorer) -> DataFrame:
        return (score_cells(spark, sc, cands, index)
                .select(U, I, F.coalesce(F.col(S.PREDICTED_RATING), F.lit(mu)).alias(cf.PRED)))

    pairs = truth.select(U, I)
    als = als_predict(r_train, pairs, p.als.rank, p.als.reg, p.als.iters, p.als.seed)
    methods = {"filled": scored(scorer)}
    if scorer.name == "model":  # the CF fill of the same cells, beside the model's
        methods["cf_filled"] = scored(CFScorer())
    biases = baseline.fit_biases(r_train, validation["damping_user"], validation["damping_item"], mu)
    methods["bias"] = biases.predict(pairs)
    methods["bias_als"] = baseline.bias_als_predict(r_train, pairs, biases, p.als.rank, p.als.reg, p.als.iters,
                                                    p.als.seed)
    methods.update({
        "cf_only": cands.where(F.col(S.CF_PRED).isNotNull()).select(U, I, F.col(S.CF_PRED).alias(cf.PRED)),
        "als_explicit": als,
        "als_explicit_filled": pairs.join(als, on=[U, I], how="left").select(
            U, I, F.coalesce(F.col(cf.PRED), F.lit(mu)).alias(cf.PRED)),
        "global_mean": truth.select(U, I, F.lit(mu).alias(cf.PRED)),
        "item_bayes": pairs.join(prior.select(I, F.col(S.FALLBACK_RATING).alias(cf.PRED)), on=I, how="left"),
    })
    # Each prediction is scored once and compared in up to two intervals: computed once.
    methods = {name: df.cache() for name, df in methods.items()}
    errors = {name: rating_errors(df, truth, cf.PRED, RATING) for name, df in methods.items()}
    intervals = {}
    for name, df in methods.items():
        if errors[name]["coverage"] == 1.0:
            intervals[name] = {ref: paired_bootstrap(df, methods[ref], truth, col_true=RATING)
                               for ref in ("global_mean", "bias") if ref != name}
    out = {
        "train_until": train_until, "validation": validation, "intervals": intervals,
        "train_reviews": train.count(), "test_reviews": test.count(),
        "test_pairs": n_test_all, "test_pairs_warm_item": truth.count(),
        "global_mean": mu, "scorer": scorer.name,
        "methods": errors,
        "note": f"scored on test pairs whose user and item both occur {where_known} (a pair with an "
                "unknown user or item has no CF, ALS or item prediction); *_filled and filled fall back to "
                "the global mean where their method has no value",
    }
    for df in (r_train, warm, truth, prior, nb, biases.users, biases.items, *methods.values()):
        df.unpersist()
    return out


FILLS = ("bias", "bias_als", "cf")
EXAMPLE_USERS = 3


def product_titles(reviews: DataFrame, product_ids: list[str]) -> dict[str, str]:
    """product_id -> a title from the reviews' product_title (when the reviews have one), for a
    few ids (the report's tables)."""
    if S.PRODUCT_TITLE not in reviews.columns or not product_ids:
        return {}
    rows = (reviews.where(F.col(S.PRODUCT_ID).isin(sorted(set(product_ids))) & F.col(S.PRODUCT_TITLE).isNotNull())
            .groupBy(S.PRODUCT_ID).agg(F.min(S.PRODUCT_TITLE).alias(S.PRODUCT_TITLE)).collect())
    return {r[S.PRODUCT_ID]: r[S.PRODUCT_TITLE] for r in rows}


class PairScorer:
    """A RatingScorer from a function pairs (u, i) -> u, i, pred; the `fallback_rating` column
    where it gives none."""

    def __init__(self, name: str, predict: Any) -> None:
        self.name = name
        self.predict = predict

    def score(self, spark: SparkSession, cells: DataFrame) -> DataFrame:
        pred = self.predict(cells.select(U, I)).withColumnRenamed(cf.PRED, "_p")
        fallback = F.col(S.FALLBACK_RATING) if S.FALLBACK_RATING in cells.columns else F.lit(None).cast("double")
        return (cells.join(pred, on=[U, I], how="left")
                .withColumn(S.PREDICTED_RATING, F.coalesce(F.col("_p"), fallback).cast("double")).drop("_p"))


def fill_scorer(choice: dict[str, Any], ratings: DataFrame, p: RecommendParams) -> RatingScorer:
    """The scorer of the fill chosen on validation (choose_fill), fitted on all `ratings`."""
    if choice["chosen"] == "cf":
        return CFScorer()
    biases = baseline.fit_biases(ratings, choice["damping_user"], choice["damping_item"])
    if choice["chosen"] == "bias":
        return PairScorer("bias", biases.predict)
    return PairScorer("bias_als", lambda pairs: baseline.bias_als_predict(
        ratings, pairs, biases, p.als.rank, p.als.reg, p.als.iters, p.als.seed))


def choose_fill(spark: SparkSession, split: DataFrame, p: RecommendParams, scorer: RatingScorer,
                index: IdIndex) -> dict[str, Any]:
    """The fill with the lowest RMSE on the validation reviews (split == val), each fitted on the
    train reviews: the bias baseline (its damping chosen here), bias + ALS on its residuals, and the
    CF fill; scored on the validation pairs whose user and item occur in train. The trained model
    is not a candidate here (its training rows may overlap the validation days): it fills only
    under recsys.fill.use_model = require. Returns {chosen, damping_user, damping_item, rmse}."""
    r_fit, val = warm_pairs(split, (S.SPLIT_TRAIN,), S.SPLIT_VAL, index)
    if val.count() == 0:
        r_fit.unpersist()
        val.unpersist()
        return {"chosen": "bias", "damping_user": baseline.DEFAULT_DAMPING[0],
                "damping_item": baseline.DEFAULT_DAMPING[1], "rmse": {},
                "note": "no validation pair with a known user and item: the bias baseline with default damping"}
    biases, grid = baseline.choose_biases(r_fit, val)
    pairs = val.select(U, I)
    mu = biases.mu
    nb, preds = neighbours_and_predictions(r_fit, p, index, items=pairs.select(I).distinct())
    prior = item_prior(popularity_table(split.where(F.col(S.SPLIT) == S.SPLIT_TRAIN), p.popularity.prior_weight),
                       index)
    cf_fill = (pairs.join(preds.select(U, I, F.col(cf.PRED).alias("_cf")), on=[U, I], how="left")
               .join(prior.select(I, S.FALLBACK_RATING), on=I, how="left")
               .select(U, I, F.coalesce(F.col("_cf"), F.col(S.FALLBACK_RATING), F.lit(mu)).alias(cf.PRED)))
    cands = {"bias": biases.predict(pairs),
             "bias_als": baseline.bias_als_predict(r_fit, pairs, biases, p.als.rank, p.als.reg, p.als.iters,
                                                   p.als.seed),
             "cf": cf_fill,
             "global_mean": pairs.select(U, I, F.lit(mu).alias(cf.PRED))}
    rmse = {name: baseline.rmse(df, val) for name, df in cands.items()}
    chosen = min(FILLS, key=lambda n: (rmse[n], FILLS.index(n)))
    n_pairs = pairs.count()
    for df in (r_fit, val, nb, biases.users, biases.items):
        df.unpersist()
    log.info("fill chosen on validation: %s (RMSE %s)", chosen, {k: round(v, 4) for k, v in rmse.items()})
    return {"chosen": chosen, "damping_user": biases.damping_user, "damping_item": biases.damping_item,
            "rmse": rmse, "validation_pairs": n_pairs, "damping_grid": grid}


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
                    ("Source of recommendations",
                     H.table(["source", "rows"], sorted(summary["recommendation_sources"].items())))]
        if "feedback" in summary:
            sections.append(("Feedback", H.table(["measure", "value"], summary["feedback"].items())))
        if summary.get("top_items"):
            sections.append(("Most popular items", H.table(
                ["item", "title", "Bayesian average", "ratings"],
                [(t["item"], t["title"] or "", t["bayes_rating"], t["n_ratings"]) for t in summary["top_items"]])))
        if summary.get("examples"):
            sections.append(("Example recommendations", H.table(
                ["user", "rank", "item", "title", "score", "source"],
                [(e[S.USER], e[S.RANK], e[S.ITEM], e["title"] or "", e[S.SCORE], e[S.SOURCE])
                 for e in summary["examples"]])))
        rk = summary.get("ranking")
        if rk:
            for phase, res in rk["phases"].items():
                rows = [(m, v["HR@10"], v["NDCG@10"], v["Recall@20"],
                         "–" if v["coverage@10"] is None else v["coverage@10"], v["liked_HR@10"], v["users"])
                        for m, v in {**res["methods"], **res.get("reranked", {})}.items()]
                chosen = "; ".join(f"{m}+rerank: {c['setting']} ({c['how']})" for m, c in rk.get("rerank", {}).items())
                sections.append((f"Ranking, {phase} ({rk['split']} split)", H.table(
                    ["ranker", "HR@10", "NDCG@10", "Recall@20", "coverage@10", "liked HR@10", "users"], rows)
                    + f"<p>target: {res['target']}; {res['targets']:,} targets, {res['liked_targets']:,} rated "
                      f"&ge; the liked threshold; every item ranked, seen items excluded. The job recommends "
                      f"with <b>{rk['ranker']}</b>; popularity is its baseline in the same run."
                      + (f" Re-ranked by the predicted star ({res.get('rerank_star', '')}), the setting "
                         f"chosen: {html_escape(chosen)}." if chosen else "") + "</p>"))
        if ev:
            sections.append(("Time-split rating error", H.table(
                ["method", "RMSE", "MAE", "pairs", "coverage"],
                [(m, v["rmse"], v["mae"], v["n"], v["coverage"]) for m, v in ev["methods"].items()])
                + f"<p>train until {ev['train_until']}; train {ev['train_reviews']:,} / "
                  f"test {ev['test_reviews']:,} reviews; "
                  f"{ev['note']}</p>"))
        if ev and "validation" in ev:
            va = ev["validation"]
            sections.append(("Fill chosen on validation", H.table(
                ["fill", "validation RMSE"], sorted(va["rmse"].items(), key=lambda t: t[1]))
                + f"<p>used: <b>{summary.get('fill', {}).get('used', va['chosen'])}</b> "
                  f"({summary.get('fill', {}).get('how', '')}); bias damping user {va['damping_user']:g}, "
                  f"item {va['damping_item']:g}.</p>"))
            rows = [(m, ref, f"{iv['rmse_diff']:+.4f}", f"[{iv['rmse_diff_lo']:+.4f}, {iv['rmse_diff_hi']:+.4f}]",
                     f"{iv['mae_diff']:+.4f}", f"[{iv['mae_diff_lo']:+.4f}, {iv['mae_diff_hi']:+.4f}]")
                    for m, refs in ev.get("intervals", {}).items() for ref, iv in refs.items() if iv.get("n")]
            if rows:
                sections.append(("Rating error against the global mean and the bias baseline", H.table(
                    ["method", "against", "RMSE diff", "95% paired bootstrap", "MAE diff", "95% paired bootstrap"],
                    rows) + "<p>negative: the method's error is lower (test pairs).</p>"))
        if "approximate" in summary:
            sections.append(("Approximate neighbours", H.table(["measure", "value"], summary["approximate"].items())))
        sections.append(("Timings (s)", H.table(["stage", "seconds"], summary["timings"].items())))
        sections += [(t, H.figure(n, t)) for t, n in figs]
        with open(f"{out}/index.html", "w", encoding="utf-8") as fh:
            fh.write(H.page("reviewrec recommendations", sections, subtitle=f"config {summary['config_hash']}"))


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    timer = StageTimer("recommend")
    root = cfg["run"]["root"]
    p = RecommendParams.from_config(cfg["recsys"])
    raw = io.read_parquet(spark, io.dataset_path(root, "reviews"), "ingest")
    S.require_columns(raw.columns, REQUIRED, io.dataset_path(root, "reviews"))
    reviews = raw.select(*REQUIRED).cache()
    scorer = resolve_scorer(spark, io.dataset_path(root, "model"), p.fill.use_model)
    summary: dict[str, Any] = {"config_hash": cfg.hash(),
                               "settings": {k: v for k, v in cfg.flat().items() if k.startswith("recsys.")}}
    with timer.stage("index"):
        index = id_index(spark, root, reviews, FeaturesParams.from_config(cfg))
        ratings = ratings_matrix(reviews, index).cache()
        n_ratings = ratings.count()
    with timer.stage("popularity"):
        pop = popularity_table(reviews, p.popularity.prior_weight).cache()
        io.write_parquet_atomic(pop, io.dataset_path(root, "popularity"))
        top_items = [(r[S.PRODUCT_ID], float(r[BAYES]), int(r["n_ratings"])) for r in
                     pop.where((F.col(SCOPE) == SCOPE_OVERALL) & (F.col(POP_RANK) <= 10)).orderBy(POP_RANK).collect()]
    prior = item_prior(pop, index).cache()
    implicit, why = feedback_kind(reviews, p)
    summary["feedback"] = {"kind": "implicit" if implicit else "explicit", "why": why}
    if implicit:
        summary["feedback"]["not_done"] = (
            "no rating fill (predictions is written empty: a constant rating has nothing to predict), "
            "no rating-error evaluation, no mean-centred cosine (neighbours use binary interactions)")
        log.warning("recommend: implicit feedback (%s): %s", why, summary["feedback"]["not_done"])
    choice = {"chosen": "bias", "damping_user": baseline.DEFAULT_DAMPING[0],
              "damping_item": baseline.DEFAULT_DAMPING[1]}
    if p.evaluate.enabled and not implicit:
        with timer.stage("time-split evaluation"):
            summary["evaluation"] = time_split_eval(spark, reviews, p, scorer, index)
            log.info("time-split rating error: %s", {m: (round(v["rmse"], 4), round(v["mae"], 4), v["n"])
                                                      for m, v in summary["evaluation"]["methods"].items()})
            choice = summary["evaluation"]["validation"]
    if p.fill.method != "auto":
        choice = {**choice, "chosen": p.fill.method}
    if not implicit and not (scorer.name == "model" and p.fill.use_model == "require"):
        scorer = fill_scorer(choice, ratings, p)
    if not implicit:
        how = ("recsys.fill.use_model = require" if scorer.name == "model"
               else f"recsys.fill.method = {p.fill.method}" if p.fill.method != "auto"
               else "lowest validation RMSE of bias, bias_als, cf" if p.evaluate.enabled
               else "the bias baseline (recsys.evaluate.enabled is false)")
        summary["fill"] = {"used": scorer.name, "how": how}
    with timer.stage("neighbours + fill"):
        if implicit:
            nb = cf.user_neighbors(user_values(ratings, p, implicit=True)[0], p.similarity(),
                                   index.n_users, index.n_items).cache()
            filled = spark.createDataFrame(
                [], f"{U} long, {I} long, {S.PREDICTED_RATING} double, {cf.SUPPORT} long, {cf.SOURCE} string")
        else:
            nb, filled = fill(spark, ratings, prior, p, scorer, index)
        users = index.users
        nbr_out = (nb
                   .join(users.select(F.col(U).alias(ROW), F.col(S.CUSTOMER_ID).alias("_uid")), on=ROW, how="inner")
                   .join(users.select(F.col(U).alias(NEIGHBOR), F.col(S.CUSTOMER_ID).alias("_nid")), on=NEIGHBOR,
                         how="inner")
                   .select(F.col("_uid").alias(S.USER), F.col("_nid").alias(S.NEIGHBOR), F.col(SIM).alias(S.COSINE)))
        io.write_parquet_atomic(nbr_out, io.dataset_path(root, "neighbors"))
        ids = lambda df: (df.join(index.users, on=U, how="inner").join(index.items, on=I, how="inner")  # noqa: E731
                          .withColumnRenamed(S.CUSTOMER_ID, S.USER).withColumnRenamed(S.PRODUCT_ID, S.ITEM))
        filled = filled.cache()
        io.write_parquet_atomic(ids(filled).select(S.USER, S.ITEM, S.PREDICTED_RATING,
                                                   F.col(cf.SUPPORT).alias(S.CF_SUPPORT),
                                                   F.col(cf.SOURCE).alias(S.SOURCE)),
                                io.dataset_path(root, "predictions"))
    events = rankers.interaction_events(reviews, index).cache()
    with timer.stage("recommendations"):
        rr = p.rerank
        use_rr = rr.method == "predicted_star" and not implicit
        if rr.method == "predicted_star" and implicit:
            log.warning("recommend: recsys.rerank.method = predicted_star on implicit feedback: no star to "
                        "re-rank by; the ranker's order is kept")
        ranking = rankers.recommend(events, p.ranker, p.ranking, max(p.top_n, rr.candidates) if use_rr else p.top_n,
                                    index.n_users, index.n_items, p.block_size, p.max_pairs)
        recs = ranking.recs
        if use_rr:  # the candidates are read twice (their stars, the re-rank): computed once
            ranking.cached.append(recs.cache())
            recs = rerank_by_star(spark, recs, filled, prior, scorer, index, p)
        summary["rerank"] = {"method": rr.method if use_rr else "none", "candidates": rr.candidates,
                             "weight": rr.weight, "min_star": rr.min_star}
        io.write_parquet_atomic(ids(recs).select(S.USER, F.col(cf.RANK).alias(S.RANK), S.ITEM,
                                                         F.col(cf.SCORE).alias(S.SCORE),
                                                         F.col(cf.SOURCE).alias(S.SOURCE)),
                                io.dataset_path(root, "recommendations"))
        ranking.release()
        written = io.read_parquet(spark, io.dataset_path(root, "recommendations"), "recommend")
        sources = {r[S.SOURCE]: int(r["count"]) for r in written.groupBy(S.SOURCE).count().collect()}
        n_nbr = io.read_parquet(spark, io.dataset_path(root, "neighbors"), "recommend")
        edges = [x / 10 for x in range(-10, 11)]
        hist = n_nbr.select(F.floor(F.col(S.COSINE) * 10).alias("b")).groupBy("b").count().collect()
        counts_by = {int(r["b"]): int(r["count"]) for r in hist}
        sim_hist = [(f"{edges[j + 10]:.1f}", counts_by.get(j, 0) + (counts_by.get(10, 0) if j == 9 else 0))
                    for j in range(-10, 10)]
        n_neighbor_rows = n_nbr.count()
        first_users = written.select(S.USER).distinct().orderBy(S.USER).limit(EXAMPLE_USERS)
        examples = [r.asDict() for r in written.join(first_users, on=S.USER, how="inner")
                    .orderBy(S.USER, S.RANK).collect()]
    titles = product_titles(raw, [t[0] for t in top_items] + [e[S.ITEM] for e in examples])
    summary["top_items"] = [{"item": t[0], "title": titles.get(t[0]), "bayes_rating": t[1], "n_ratings": t[2]}
                            for t in top_items]
    summary["examples"] = [{**e, "title": titles.get(e[S.ITEM])} for e in examples]
    if p.neighbors.measure_recall and p.neighbors.approximate:
        with timer.stage("approximate-mode recall"):
            exact = cf.user_neighbors(user_values(ratings, p, implicit)[0], p.similarity(exact=True),
                                      index.n_users, index.n_items)
            summary["approximate"] = {"recall_of_exact_topk": topk_recall(nb, exact),
                                      "max_item_degree": p.neighbors.max_item_degree,
                                      "min_similarity": p.neighbors.min_similarity}
    if p.evaluate.enabled:
        with timer.stage("ranking evaluation"):
            summary["ranking"] = evaluation.evaluate_rankers(events, p, index.n_users, index.n_items,
                                                             fill=None if implicit else choice,
                                                             # the grid only when the re-rank is on
                                                             rerank=not implicit and p.rerank.method != "none")
    summary["counts"] = {"users": index.n_users, "items": index.n_items, "ratings": n_ratings,
                         "neighbor_rows": n_neighbor_rows, "recommendation_rows": sum(sources.values())}
    summary["ids"] = {"source": index.source, "users_known_to_indexer": index.known_users,
                      "items_known_to_indexer": index.known_items}
    summary["recommendation_sources"] = sources
    summary["scorer"] = "none" if implicit else scorer.name
    summary["ranker"] = p.ranker
    summary["timings"] = timer.timings
    _report(spark, root, summary, sim_hist, top_items)
    for df in (reviews, ratings, pop, prior, filled, nb, events):
        df.unpersist()
    log.info("recommend: %s", {k: v for k, v in summary.items() if k in ("counts", "timings", "scorer")})
    return summary
