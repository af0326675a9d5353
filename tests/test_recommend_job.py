"""The recommend job end to end on a small literal reviews dataset; its settings, its id space
(the features job's indexers), the scorer interface."""
from __future__ import annotations

import datetime as dt
import json
import os

import numpy as np
import pytest

from reviewrec import io
from reviewrec import schema as S
from reviewrec.config import load_config
from reviewrec.features.job import FeaturesParams
from reviewrec.recommend import scoring
from reviewrec.recommend.ids import I, U, id_index
from reviewrec.recommend.params import RecommendParams

pytestmark = [pytest.mark.spark, pytest.mark.slow]

# user -> {item: star}; u1 and u2 agree, u3 is their opposite, u4 rates one item only.
RATINGS = {
    "u1": {"p1": 5, "p2": 4, "p3": 1},
    "u2": {"p1": 5, "p2": 5, "p3": 2, "p4": 5},
    "u3": {"p1": 1, "p2": 2, "p3": 5, "p5": 4},
    "u4": {"p1": 4},
    "u5": {"p2": 3, "p4": 4, "p5": 2},
}


def _reviews(spark):
    rows = []
    day = dt.date(2015, 1, 1)
    for n, (u, items) in enumerate(sorted(RATINGS.items())):
        for m, (p, star) in enumerate(sorted(items.items())):
            rows.append((f"r{n}{m}", u, p, f"Title of {p}", "Beauty", star, day + dt.timedelta(days=3 * m + n)))
    return spark.createDataFrame(rows, "review_id string, customer_id string, product_id string, product_title string, "
                                       "product_category string, star_rating int, review_date date")


@pytest.fixture(scope="module")
def job_run(spark, tmp_path_factory):
    from reviewrec.recommend.job import run

    root = str(tmp_path_factory.mktemp("recs") / "run")
    io.write_parquet_atomic(_reviews(spark), f"{root}/reviews")
    cfg = load_config([], [f"run.root={root}", "recsys.neighbors.k=2", "recsys.top_n=3", "recsys.block_size=2",
                           "recsys.fill.top_popular=2", "recsys.als.iters=3", "recsys.evaluate.test_fraction=0.3",
                           "recsys.fill.method=cf"])
    summary = run(spark, cfg)
    return root, summary


def _centred_cosine() -> dict[tuple[str, str], float]:
    users = sorted(RATINGS)
    items = sorted({p for d in RATINGS.values() for p in d})
    m = np.zeros((len(users), len(items)))
    for a, u in enumerate(users):
        mean = np.mean(list(RATINGS[u].values()))
        for p, s in RATINGS[u].items():
            m[a, items.index(p)] = s - mean
    norms = np.linalg.norm(m, axis=1)
    out = {}
    for a in range(len(users)):
        for b in range(len(users)):
            dot = m[a] @ m[b]
            if a != b and dot != 0:
                out[(users[a], users[b])] = dot / (norms[a] * norms[b])
    return out


def test_outputs_and_neighbors(spark, job_run) -> None:
    root, summary = job_run
    nb = io.read_parquet(spark, f"{root}/neighbors", "recommend")
    assert tuple(nb.columns) == S.NEIGHBORS_COLUMNS
    want = _centred_cosine()
    got = {(r.user, r.neighbor): r.cosine for r in nb.collect()}
    for (u, v), c in got.items():
        assert c == pytest.approx(want[(u, v)])
    for u in RATINGS:  # the best two of each user (u4 has one rating: centred vector is zero)
        best = sorted(((v, c) for (a, v), c in want.items() if a == u), key=lambda t: (-round(t[1], 12), t[0]))[:2]
        assert sorted(v for (a, v) in got if a == u) == sorted(v for v, _ in best)
    assert not any(a == "u4" for a, _ in got)


def test_recommendations_exclude_seen_and_are_ranked(spark, job_run) -> None:
    root, summary = job_run
    recs = io.read_parquet(spark, f"{root}/recommendations", "recommend")
    assert tuple(recs.columns) == S.RECOMMENDATIONS_COLUMNS
    rows = recs.collect()
    assert rows, "no recommendations written"
    for r in rows:
        assert r.item not in RATINGS[r.user], f"{r.user} was recommended seen item {r.item}"
    by_user: dict[str, list] = {}
    for r in rows:
        by_user.setdefault(r.user, []).append(r)
    for lst in by_user.values():
        lst.sort(key=lambda r: r.rank)
        assert [r.rank for r in lst] == list(range(1, len(lst) + 1))
        assert all(a.score >= b.score for a, b in zip(lst, lst[1:], strict=False) if a.source == b.source)
    assert {r.source for r in rows} <= {"item_cf", "popular"}  # recsys.ranker's default
    pred = io.read_parquet(spark, f"{root}/predictions", "recommend")
    assert tuple(pred.columns) == S.PREDICTIONS_COLUMNS
    assert pred.where("predicted_rating < 1 or predicted_rating > 5").count() == 0
    # u1's neighbour u2 rated p4 one point above u2's mean (4.25) -> u1 mean 3.33 + 0.75
    p = pred.where("user = 'u1' and item = 'p4'").first()
    assert p is not None and p.predicted_rating == pytest.approx(10 / 3 + 0.75) and p.source == "user_cf"


def test_popularity_and_report(spark, job_run) -> None:
    root, summary = job_run
    pop = io.read_parquet(spark, f"{root}/popularity", "recommend")
    overall = {r.product_id: r for r in pop.where("scope = 'overall'").collect()}
    stars = [s for d in RATINGS.values() for s in d.values()]
    mu = float(np.mean(stars))
    p1 = [d["p1"] for d in RATINGS.values() if "p1" in d]
    assert overall["p1"].bayes_rating == pytest.approx((sum(p1) + 10 * mu) / (len(p1) + 10))
    assert pop.where("scope = 'category' and product_category = 'Beauty'").count() == len(overall)
    rep = f"{root}/report/recs"
    for f in ("summary.json", "index.html", "neighbor_similarity.png", "popularity.png", "rating_error.png"):
        assert os.path.exists(f"{rep}/{f}"), f
    js = json.load(open(f"{rep}/summary.json"))
    assert js["scorer"] == "cf" and js["counts"]["users"] == 5  # recsys.fill.method = cf
    assert js["fill"] == {"used": "cf", "how": "recsys.fill.method = cf"}
    assert "features job not run" in js["ids"]["source"]
    ev = js["evaluation"]["methods"]
    assert set(ev) >= {"filled", "als_explicit", "global_mean", "bias", "bias_als"}
    va = js["evaluation"]["validation"]
    assert va["chosen"] in ("bias", "bias_als", "cf") and va["rmse"][va["chosen"]] == min(
        va["rmse"][m] for m in ("bias", "bias_als", "cf"))
    iv = js["evaluation"]["intervals"]["bias"]["global_mean"]
    assert iv["rmse_diff_lo"] <= iv["rmse_diff"] <= iv["rmse_diff_hi"]
    assert ev["global_mean"]["n"] == js["evaluation"]["test_pairs_warm_item"]
    assert js["feedback"]["kind"] == "explicit"
    rk = js["ranking"]
    assert rk["split"] == "time" and set(rk["phases"]) == {"valid", "test"}
    for res in rk["phases"].values():
        assert set(res["methods"]) == {"item_cf", "popularity"}
        assert set(res["methods"]["item_cf"]) >= {"HR@10", "NDCG@10", "Recall@20", "coverage@10", "liked_HR@10"}
    html = open(f"{rep}/index.html", encoding="utf-8").read()
    assert "Ranking, test" in html and "popularity" in html
    # titles beside ids: the most popular items and the example lists
    assert [t["title"] for t in js["top_items"]] == [f"Title of {t['item']}" for t in js["top_items"]]
    assert js["examples"] and all(e["title"] == f"Title of {e['item']}" for e in js["examples"])
    assert {e["user"] for e in js["examples"]} == {"u1", "u2", "u3"}
    assert f"<td>Title of {js['examples'][0]['item']}</td>" in html


def test_cf_scorer_and_its_resolution(spark, tmp_path) -> None:
    """Without a model the cells are filled by CF, else the item's Bayesian average; `require`
    makes a missing model an error. (The model scorer: tests/test_recommend_model_fill.py.)"""
    cands = spark.createDataFrame([("x", "a", 3.0, 2.0), ("x", "b", 3.5, 2.0), ("y", "c", None, 2.5)],
                                  "customer_id string, product_id string, cf_pred double, fallback_rating double")
    missing = str(tmp_path / "model")
    cf_scorer = scoring.resolve_scorer(spark, missing, "auto")
    assert cf_scorer.name == "cf"
    got = {r.product_id: r[S.PREDICTED_RATING] for r in cf_scorer.score(spark, cands).collect()}
    assert got == {"a": 3.0, "b": 3.5, "c": 2.5}
    with pytest.raises(FileNotFoundError, match="no trained model"):
        scoring.resolve_scorer(spark, missing, "require")
    assert scoring.resolve_scorer(spark, missing, "never").name == "cf"


def test_defaults_are_the_config_defaults() -> None:
    base = load_config([])
    assert RecommendParams() == RecommendParams.from_config(base["recsys"])
    with pytest.raises(ValueError, match="use_model"):
        RecommendParams.from_config({**base["recsys"], "fill": {**base["recsys"]["fill"], "use_model": "maybe"}})


def _review_rows() -> list[tuple[str, str, dt.date]]:
    day = dt.date(2015, 1, 1)
    return [(u, p, day + dt.timedelta(days=3 * m + n))
            for n, (u, items) in enumerate(sorted(RATINGS.items())) for m, p in enumerate(sorted(items))]


def _expected_ids(labels: list[str], all_ids: set[str]) -> dict[str, int]:
    """Indexer labels in order, then the ids it does not know in id order."""
    return {**{x: n for n, x in enumerate(labels)},
            **{x: len(labels) + n for n, x in enumerate(sorted(all_ids - set(labels)))}}


def test_ids_without_features_are_fitted_on_the_features_time_split(spark, tmp_path) -> None:
    cfg = load_config([], [f"run.root={tmp_path}", "features.train_fraction=0.6", "features.val_fraction=0.2"])
    index = id_index(spark, str(tmp_path), _reviews(spark), FeaturesParams.from_config(cfg))
    # the time split by hand: the oldest days up to the one where 60% of the reviews are reached
    rows = _review_rows()
    per_day: dict[dt.date, int] = {}
    for _, _, d in rows:
        per_day[d] = per_day.get(d, 0) + 1
    seen, cut = 0, None
    for d in sorted(per_day):
        seen += per_day[d]
        if seen >= 0.6 * len(rows):
            cut = d
            break
    train = [r for r in rows if r[2] <= cut]

    def labels(col: int) -> list[str]:  # StringIndexer frequencyDesc: most frequent first, ties by id
        counts: dict[str, int] = {}
        for r in train:
            counts[r[col]] = counts.get(r[col], 0) + 1
        return sorted(counts, key=lambda x: (-counts[x], x))

    want_u = _expected_ids(labels(0), {r[0] for r in rows})
    want_i = _expected_ids(labels(1), {r[1] for r in rows})
    assert {r.customer_id: r[U] for r in index.users.collect()} == want_u
    assert {r.product_id: r[I] for r in index.items.collect()} == want_i
    assert (index.known_users, index.n_users) == (len(labels(0)), len(RATINGS))
    assert (index.known_items, index.n_items) == (3, 5)  # p4 and p5 are first rated after the cut
    assert "fitted" in index.source and "features job not run" in index.source


def test_ids_come_from_the_features_indexers(spark, tmp_path) -> None:
    from pyspark.ml.feature import StringIndexer

    reviews = _reviews(spark)
    root = str(tmp_path)
    meta = f"{root}/{S.FEATURES_META}"
    # indexers of another (smaller) fit, as the features job saves them: the index must follow them
    StringIndexer(inputCol="customer_id", outputCol="user_idx", handleInvalid="keep").fit(
        reviews.where("customer_id in ('u3', 'u5', 'u2')")).save(f"{meta}/user_indexer")
    items_ix = StringIndexer(inputCol="product_id", outputCol="item_idx", handleInvalid="keep").fit(
        reviews.where("product_id != 'p1'"))
    items_ix.save(f"{meta}/item_indexer")
    index = id_index(spark, root, reviews, FeaturesParams.from_config(load_config([])))
    user_labels = ["u2", "u3", "u5"]  # 4, 4 and 3 reviews: frequency order, ties by id
    assert {r.customer_id: r[U] for r in index.users.collect()} == _expected_ids(user_labels, set(RATINGS))
    assert {r.product_id: r[I] for r in index.items.collect()} == _expected_ids(
        list(items_ix.labelsArray[0]), {p for d in RATINGS.values() for p in d})
    assert (index.known_users, index.n_users, index.known_items, index.n_items) == (3, 5, 4, 5)
    assert meta in index.source
