"""CF scoring, top-N with seen items excluded, popularity, ranking metrics: small literal data."""
from __future__ import annotations

import math
import sys

import pytest

from conftest import REPO
from reviewrec.recommend import cf, evaluation, rankers
from reviewrec.recommend.ids import IdIndex, number_rows
from reviewrec.recommend.metrics import ranking_metrics, rating_errors
from reviewrec.recommend.popularity import bayesian_popularity

sys.path.insert(0, str(REPO / "benchmarks"))
from sequence_eval import read_sequences  # noqa: E402

pytestmark = pytest.mark.spark


def test_ranking_metrics_hand_computed(spark) -> None:
    recs = spark.createDataFrame([
        (1, 1, 10), (1, 2, 11), (1, 3, 12),  # user 1: relevant 11 at rank 2 -> HR 1, NDCG 1/log2(3)
        (2, 1, 20), (2, 2, 21), (2, 3, 22),  # user 2: relevant 22 at rank 3 (outside @2), 99 not listed
        (3, 1, 10),                          # user 3: no hit
    ], "u long, rank int, i long")
    truth = spark.createDataFrame([(1, 11), (2, 22), (2, 99), (3, 30), (4, 40)], "u long, i long")
    m = ranking_metrics(recs, truth, ks=(2, 3), n_items=20)
    assert m["users"] == 4  # user 4 has no list and counts as a miss
    assert m["HR@2"] == pytest.approx(1 / 4)
    assert m["HR@3"] == pytest.approx(2 / 4)
    assert m["Recall@3"] == pytest.approx((1 + 0.5) / 4)
    ndcg_u1 = (1 / math.log2(3)) / 1.0
    ndcg_u2_at3 = (1 / math.log2(4)) / (1 + 1 / math.log2(3))  # two relevant items: IDCG has two terms
    assert m["NDCG@2"] == pytest.approx(ndcg_u1 / 4)
    assert m["NDCG@3"] == pytest.approx((ndcg_u1 + ndcg_u2_at3) / 4)
    assert m["coverage@2"] == pytest.approx(4 / 20)  # items 10, 11, 20, 21


def test_rating_errors(spark) -> None:
    pred = spark.createDataFrame([(1, 1, 4.0), (1, 2, 2.0)], "u long, i long, pred double")
    truth = spark.createDataFrame([(1, 1, 5.0), (1, 2, 1.0), (2, 1, 3.0)], "u long, i long, rating double")
    e = rating_errors(pred, truth)
    assert e["rmse"] == pytest.approx(1.0)
    assert e["mae"] == pytest.approx(1.0)
    assert e["n"] == 2 and e["coverage"] == pytest.approx(2 / 3)


def test_user_cf_scores_top_n_excludes_seen_and_pads_with_popular(spark) -> None:
    inter = spark.createDataFrame([
        (0, 0, 1.0), (0, 1, 1.0),
        (1, 0, 1.0), (1, 1, 1.0), (1, 2, 1.0),
        (2, 1, 1.0), (2, 3, 1.0),
        (3, 4, 1.0),
    ], "u long, i long, value double")
    nb = spark.createDataFrame([(0, 1, 0.8), (0, 2, 0.5)], "row long, neighbor long, sim double")
    scores = {(r.u, r.i): r.score for r in cf.user_cf_scores(nb, inter, seen=inter).collect()}
    # user 0 has seen 0 and 1: only 2 (from neighbour 1) and 3 (from neighbour 2) remain
    assert scores == {(0, 2): pytest.approx(0.8), (0, 3): pytest.approx(0.5)}
    popular = spark.createDataFrame([(1, 3.0), (4, 2.0), (0, 2.0), (2, 1.0), (3, 0.5)], "i long, score double")
    top = cf.top_n(cf.user_cf_scores(nb, inter, seen=inter), 3, cf.SRC_USER_CF, seen=inter, popular=popular)
    got = {(r.u, r.rank): (r.i, r.source) for r in top.collect()}
    assert got[(0, 1)] == (2, "user_cf") and got[(0, 2)] == (3, "user_cf") and got[(0, 3)] == (4, "popular")
    # user 3 has no neighbours: popular items in order (ties by item index), its own item 4 excluded
    assert [got[(3, r)][0] for r in (1, 2, 3)] == [1, 0, 2]
    seen = {(r.u, r.i) for r in inter.collect()}
    assert not any((u, i) in seen for (u, _), (i, _) in got.items())


def test_recency_weights(spark) -> None:
    events = spark.createDataFrame([(0, 5, 0, 2), (0, 6, 1, 2), (1, 5, 0, 1)], "u long, i long, pos int, n int")
    w = {(r.u, r.i): r.value for r in cf.recency_weights(events, tau=1.0).collect()}
    assert w == pytest.approx({(0, 6): 1.0, (0, 5): math.exp(-1), (1, 5): 1.0})
    assert {r.value for r in cf.recency_weights(events, tau=0.0).collect()} == {1.0}


def test_predict_ratings_mean_centred(spark) -> None:
    ratings = spark.createDataFrame([(0, 0, 4.0), (0, 1, 2.0), (1, 0, 5.0), (1, 2, 3.0)],
                                    "u long, i long, value double")
    centred, means = cf.centre(ratings)
    nb = spark.createDataFrame([(0, 1, 0.5)], "row long, neighbor long, sim double")
    p = cf.predict_ratings(cf.user_cf_scores(nb, centred, seen=ratings), means).collect()
    # user 0 mean 3; neighbour 1 rated item 2 one below their mean 4 -> 3 + (0.5 * -1) / 0.5 = 2
    assert [(r.u, r.i, round(r.pred, 9)) for r in p] == [(0, 2, 2.0)]


def test_bayesian_popularity(spark) -> None:
    rev = spark.createDataFrame([
        ("a", 5, "X"), ("a", 5, "X"), ("b", 5, "X"), ("c", 1, "Y"), ("c", 2, "Y"),
    ], "product_id string, star_rating int, product_category string")
    got = {r.product_id: r for r in bayesian_popularity(rev, prior_weight=2.0).collect()}
    mu = 18 / 5
    assert got["a"].bayes_rating == pytest.approx((10 + 2 * mu) / 4)
    assert got["b"].bayes_rating == pytest.approx((5 + 2 * mu) / 3)
    assert got["a"].rank == 1 and got["b"].rank == 2 and got["c"].rank == 3
    cat = {r.product_id: r for r in bayesian_popularity(rev, prior_weight=2.0, by_category=True).collect()}
    assert cat["c"].bayes_rating == pytest.approx((3 + 2 * 1.5) / 4)  # damped to Y's own mean 1.5
    assert cat["c"].rank == 1 and cat["c"].product_category == "Y"


def test_sequences_leave_last_out(spark, tmp_path) -> None:
    p = tmp_path / "seq.txt"
    p.write_text("1 10 11 12 13\n2 20 21 22\n3 30 31\n")
    reviews = read_sequences(spark, str(p))
    got = sorted((r.customer_id, r.product_id, str(r.review_date), r.star_rating) for r in reviews.collect())
    assert got[:3] == [("1", "10", "2000-01-01", 5), ("1", "11", "2000-01-02", 5), ("1", "12", "2000-01-03", 5)]
    users = reviews.select("customer_id", reviews.customer_id.cast("long").alias("u")).distinct()
    items = reviews.select("product_id", reviews.product_id.cast("long").alias("i")).distinct()
    ev = rankers.interaction_events(reviews, IdIndex(users, items, 4, 32, 4, 32, "ids as numbers"))
    hist, truth, _ = evaluation.holdout(ev, "leave_last_out", "valid", 0.2)
    assert sorted((r.u, r.i) for r in truth.collect()) == [(1, 12), (2, 21)]  # user 3 is too short
    assert sorted((r.u, r.i, r.n) for r in hist.collect()) == [(1, 10, 2), (1, 11, 2), (2, 20, 1)]
    _, t2, _ = evaluation.holdout(ev, "leave_last_out", "test", 0.2)
    assert sorted((r.u, r.i) for r in t2.collect()) == [(1, 13), (2, 22)]
    bad = tmp_path / "bad.txt"
    bad.write_text("1 10 x 12\n")
    with pytest.raises(ValueError, match="non-integer"):
        read_sequences(spark, str(bad))


def test_number_rows_follows_the_order_across_partitions(spark) -> None:
    ids = [f"c{n:03d}" for n in range(200)]
    df = spark.createDataFrame([(c,) for c in reversed(ids)], "customer_id string").repartition(7)
    got = sorted((r.u, r.customer_id) for r in number_rows(df, ["customer_id"], "u", 5).collect())
    assert got == [(5 + n, c) for n, c in enumerate(ids)]
    desc = {r.customer_id: r.u for r in number_rows(df, [df.customer_id.desc()], "u", 0).collect()}
    assert desc["c199"] == 0 and desc["c000"] == 199


def test_transition_neighbors_and_add_neighbors(spark) -> None:
    # user 1: 10 -> 11 -> 12 -> 11; user 2: 10 -> 11 -> 10; user 3: 12 (no step); 10 -> 10 is not a step
    ev = spark.createDataFrame([(1, 10, 0), (1, 11, 1), (1, 12, 2), (1, 11, 3), (2, 10, 0), (2, 11, 1),
                                (2, 10, 2), (3, 12, 0), (4, 10, 0), (4, 10, 1)], "u long, i long, pos int")
    got = {(r.row, r.neighbor): r.sim for r in cf.transition_neighbors(ev, shrink=1.0).collect()}
    # c(10,11)=2 (out 2); c(11,12)=1, c(11,10)=1 (out 2); c(12,11)=1 (out 1)
    assert got == pytest.approx({(10, 11): 2 / 3, (11, 12): 1 / 3, (11, 10): 1 / 3, (12, 11): 1 / 2})
    # the top-1 successor of each item: 11's two tie at 1/3, the lower index stays
    top1 = {(r.row, r.neighbor): r.sim for r in cf.transition_neighbors(ev, shrink=1.0, k=1).collect()}
    assert top1 == pytest.approx({(10, 11): 2 / 3, (11, 10): 1 / 3, (12, 11): 1 / 2})
    cos = spark.createDataFrame([(10, 11, 0.5), (10, 12, 0.25)], "row long, neighbor long, sim double")
    tr = spark.createDataFrame([(10, 11, 1.0), (11, 10, 0.5)], "row long, neighbor long, sim double")
    both = {(r.row, r.neighbor): r.sim for r in cf.add_neighbors(cos, tr, 0.5).collect()}
    assert both == pytest.approx({(10, 11): 1.0, (10, 12): 0.25, (11, 10): 0.25})
