"""Re-ranking the ranker's candidates by a predicted star (recsys.rerank, rankers.rerank): the
order it must give on planted stars, that it never adds an item, its settings, and its scoring
beside the plain ranker in the evaluation."""
from __future__ import annotations

import datetime as dt

import pytest

from reviewrec.config import load_config
from reviewrec.recommend import evaluation, rankers
from reviewrec.recommend.params import EvaluateParams, RecommendParams, RerankParams

pytestmark = [pytest.mark.spark]


def _recs(spark, lists: dict[int, list[int]]):
    rows = [(u, r + 1, i, float(100 - r), "item_cf") for u, items in lists.items() for r, i in enumerate(items)]
    return spark.createDataFrame(rows, "u long, rank int, i long, score double, source string")


def _stars(spark, stars: dict[tuple[int, int], float]):
    return spark.createDataFrame([(u, i, s) for (u, i), s in stars.items()], "u long, i long, star double")


def _order(df) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for r in df.orderBy("u", "rank").collect():
        out.setdefault(r.u, []).append(r.i)
    return out


def _orders(recs, stars, settings: dict[str, dict]) -> dict[str, dict[int, list[tuple[int, float, str]]]]:
    """Every setting's re-ranked lists in one Spark action: {setting: {u: [(i, score, source)]}}."""
    from pyspark.sql import functions as F

    df = None
    for name, kw in settings.items():
        one = rankers.rerank(recs, stars, **kw).withColumn("setting", F.lit(name))
        df = one if df is None else df.unionByName(one)
    out: dict[str, dict[int, list]] = {name: {} for name in settings}
    for r in df.orderBy("setting", "u", "rank").collect():
        out[r.setting].setdefault(r.u, []).append((r.i, r.score, r.source))
    return out


def _items(lists: dict[int, list]) -> dict[int, list[int]]:
    return {u: [t[0] for t in rows] for u, rows in lists.items()}


def test_rerank_moves_the_planted_star_up_and_keeps_the_ranker_order_otherwise(spark) -> None:
    recs = _recs(spark, {0: [10, 11, 12, 13], 1: [20, 21, 22, 23]})
    # user 0: the ranker's last candidate is the only one predicted 5 stars; user 1: flat stars
    stars = _stars(spark, {(0, 10): 1.0, (0, 11): 1.0, (0, 12): 1.0, (0, 13): 5.0,
                           (1, 20): 3.0, (1, 21): 3.0, (1, 22): 3.0, (1, 23): 3.0})
    got = _orders(recs, stars, {
        "w0": dict(n=4, weight=0.0, candidates=4), "w1": dict(n=4, weight=1.0, candidates=4),
        "w.5": dict(n=4, weight=0.5, candidates=4), "w.3": dict(n=4, weight=0.3, candidates=4),
        "filter": dict(n=4, weight=0.0, min_star=4.0, candidates=4)})
    assert _items(got["w0"]) == {0: [10, 11, 12, 13], 1: [20, 21, 22, 23]}
    # weight 1: by star alone, ties in the ranker's order
    assert _items(got["w1"]) == {0: [13, 10, 11, 12], 1: [20, 21, 22, 23]}
    # weight 0.5, M = 4: item 13 = 0.5 * 0.25 + 0.5 * 1 = 0.625 beats 10 (0.5), 11 (0.375), 12 (0.25)
    assert _items(got["w.5"])[0] == [13, 10, 11, 12]
    assert {i: sc for i, sc, _ in got["w.5"][0]} == pytest.approx({13: 0.625, 10: 0.5, 11: 0.375, 12: 0.25})
    # weight 0.3: 13 = 0.7 * 0.25 + 0.3 = 0.475 passes 12 (0.35), not 11 (0.525) or 10 (0.7)
    assert _items(got["w.3"])[0] == [10, 11, 13, 12]
    # the filter alone: candidates predicted below 4 stars go after the others
    assert _items(got["filter"])[0] == [13, 10, 11, 12]
    # the source stays the ranker's
    assert {src for lists in got.values() for rows in lists.values() for _, _, src in rows} == {"item_cf"}


def test_rerank_never_adds_items_and_only_reorders_the_top_candidates(spark) -> None:
    recs = _recs(spark, {0: [1, 2, 3, 4, 5, 6]})
    # a 5-star item the ranker never proposed, and a 5-star one beyond the candidate cut (rank 6)
    stars = _stars(spark, {(0, 99): 5.0, (0, 6): 5.0, (0, 5): 4.0, (0, 2): 1.0})
    got = _orders(recs, stars, {"n10": dict(n=10, weight=1.0, candidates=5),
                                "n3": dict(n=3, weight=1.0, candidates=5)})
    top = _items(got["n10"])[0]
    assert sorted(top) == [1, 2, 3, 4, 5]  # n = 10 > M = 5: still only the top-5 candidates
    assert top[0] == 5 and top[-1] == 2  # missing stars take the default 3.0
    assert _items(got["n3"])[0] == [5, 1, 3]


def test_rerank_settings_are_validated_naming_the_key() -> None:
    with pytest.raises(ValueError, match=r"recsys.rerank.method = 'stars'"):
        RerankParams(method="stars")
    with pytest.raises(ValueError, match=r"recsys.rerank.weights must be in \[0, 1\]"):
        RerankParams(weights=(0.5, 1.5))
    with pytest.raises(ValueError, match=r"recsys.rerank.min_star must be in \[0, 5\]"):
        RerankParams(min_star=6.0)
    with pytest.raises(ValueError, match=r"recsys.rerank.candidates must be >= 1"):
        RerankParams(candidates=0)
    cfg = load_config([], ["recsys.rerank.method=predicted_star", "recsys.rerank.weights=[0.3]"])
    p = RecommendParams.from_config(cfg["recsys"])
    assert p.rerank.method == "predicted_star" and p.rerank.weights == (0.3,)
    base = load_config([])["recsys"]
    assert RecommendParams.from_config(base).rerank == RerankParams()
    assert RerankParams().method == "none"  # the default: the ranker's own order
    with pytest.raises(ValueError, match="recsys.rerank.method"):
        RecommendParams.from_config({**base, "rerank": {**base["rerank"], "method": "star"}})
    assert evaluation.mcnemar_p(0, 0) == 1.0
    assert evaluation.mcnemar_p(5, 0) == pytest.approx(2 / 32)
    assert evaluation.mcnemar_p(3, 3) == 1.0


def test_evaluation_scores_the_rerank_beside_the_plain_ranker(spark, monkeypatch) -> None:
    """History: item 0 rated 1 star by everybody, item 1 rated 5. The target users rated only
    item 2; their held-out item is 1, rated 5. The ranker (fixed here: the rankers have their own
    tests) proposes 0 then 1; the star re-rank, fitted on the history, must put 1 first."""
    monkeypatch.setattr(evaluation.rankers, "recommend",
                        lambda *a, **k: rankers.Ranking(recs=_recs(spark, {u: [0, 1] for u in range(10, 14)})))
    day = dt.date(2020, 1, 1)
    rows = []
    for u in range(6):
        rows += [(u, 0, 1.0, day), (u, 1, 5.0, day + dt.timedelta(days=1)), (u, 2, 3.0, day + dt.timedelta(days=2))]
    rows += [(6, 0, 1.0, day), (6, 2, 3.0, day + dt.timedelta(days=1))]
    for u in range(10, 14):
        rows += [(u, 2, 3.0, day), (u, 1, 5.0, day + dt.timedelta(days=30))]
    n_of = {}
    for u, *_ in rows:
        n_of[u] = n_of.get(u, 0) + 1
    pos: dict[int, int] = {}
    ev = []
    for u, i, v, d in sorted(rows, key=lambda r: (r[0], r[3])):
        ev.append((u, i, pos.get(u, 0), n_of[u], v, d))
        pos[u] = pos.get(u, 0) + 1
    events = spark.createDataFrame(ev, "u long, i long, pos int, n int, value double, review_date date")
    p = RecommendParams(
        evaluate=EvaluateParams(split="time", test_fraction=0.15, phases=("test",)),
        rerank=RerankParams(candidates=5, weight=1.0, weights=(0.0, 1.0), min_stars=(4.0,)))
    out = evaluation.evaluate_rankers(events, p, 14, 3, methods=("item_cf",), phases=("test",),
                                      fill={"chosen": "bias", "damping_user": 0.0, "damping_item": 0.0})
    res = out["phases"]["test"]
    assert res["targets"] == 4 and res["liked_targets"] == 4
    assert set(res["methods"]) == {"item_cf"}  # the re-rank rows are beside the rankers, not among them
    plain = res["methods"]["item_cf"]
    assert plain["HR@10"] == 1.0 and plain["NDCG@10"] == pytest.approx(1 / 1.5849625007211563)
    grid = res["rerank"]["item_cf"]
    assert set(grid) == {"weight=0", "weight=1", "min_star=4"}
    for k in ("HR@10", "NDCG@10", "Recall@20", "liked_HR@10"):  # weight 0: the plain lists exactly
        assert grid["weight=0"][k] == pytest.approx(plain[k])
    assert grid["weight=1"]["NDCG@10"] == pytest.approx(1.0)
    assert grid["min_star=4"]["NDCG@10"] == pytest.approx(1.0)
    assert grid["weight=1"]["discordant"] == {"gained": 0, "lost": 0, "mcnemar_p": 1.0}
    # no valid phase: the configured weight (1.0) is the `+rerank` row
    assert out["rerank"]["item_cf"]["setting"] == "weight=1"
    assert res["reranked"]["item_cf+rerank"]["NDCG@10"] == pytest.approx(1.0)
    assert res["rerank_star"] == "bias"


def test_job_rerank_uses_the_fill_star(spark) -> None:
    from reviewrec.recommend.job import PairScorer, rerank_by_star

    recs = _recs(spark, {0: [1, 2, 3], 1: [3, 1, 2]})
    prior = spark.createDataFrame([(1, 3.0, 1.0), (2, 3.0, 1.0), (3, 3.0, 1.0)],
                                  "i long, fallback_rating double, score double")
    filled = spark.createDataFrame([], "u long, i long, predicted_rating double, support long, source string")
    star = {1: 1.0, 2: 2.0, 3: 5.0}

    def predict(pairs):
        m = spark.createDataFrame(list(star.items()), "i long, pred double")
        return pairs.join(m, on="i", how="left").select("u", "i", "pred")

    p = RecommendParams(top_n=2, rerank=RerankParams(method="predicted_star", candidates=3, weight=1.0))
    got = _order(rerank_by_star(spark, recs, filled, prior, PairScorer("bias", predict), None, p))
    assert got == {0: [3, 2], 1: [3, 2]}


def test_the_setting_is_chosen_on_valid_and_reported_on_test() -> None:
    def row(liked: float) -> dict:
        return {"HR@10": liked, "NDCG@10": 0.0, "Recall@20": 0.0, "liked_HR@10": liked, "users": 1}

    def phase(plain: float, grid: dict[str, float]) -> dict:
        return {"methods": {"item_cf": row(plain)},
                "rerank": {"item_cf": {k: {**row(v), "weight": 0.5, "min_star": 0.0} for k, v in grid.items()}}}

    p = RecommendParams()
    out = {"phases": {"valid": phase(0.2, {"weight=0.1": 0.2, "weight=0.5": 0.3}),
                      "test": phase(0.4, {"weight=0.1": 0.5, "weight=0.5": 0.1})}}
    chosen = evaluation._choose_rerank(out, p, ["valid", "test"])
    # the best on valid, whatever test says
    assert chosen["item_cf"]["setting"] == "weight=0.5"
    assert out["phases"]["test"]["reranked"]["item_cf+rerank"]["liked_HR@10"] == 0.1
    # a tie with the plain ranker on valid keeps the plain ranker
    out = {"phases": {"valid": phase(0.3, {"weight=0.1": 0.3}), "test": phase(0.4, {"weight=0.1": 0.5})}}
    assert evaluation._choose_rerank(out, p, ["valid", "test"])["item_cf"]["setting"] == "plain"
    assert out["phases"]["test"]["reranked"]["item_cf+rerank"]["liked_HR@10"] == 0.4
