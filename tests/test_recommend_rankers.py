"""The top-N rankers (recommend.rankers) against a numpy reference, the held-out splits and the
ranking evaluation (recommend.evaluation), and the job on implicit 5-core data."""
from __future__ import annotations

import datetime as dt
import json
import logging

import numpy as np
import pytest

from reviewrec import io
from reviewrec.config import load_config
from reviewrec.recommend import evaluation, rankers
from reviewrec.recommend.params import EvaluateParams, RankingParams, RecommendParams

pytestmark = [pytest.mark.spark]

RP = RankingParams(user_k=3, user_shrink=1.0, item_k=50, item_shrink=2.0, recency_tau=1.5,
                   transition_weight=0.7, transition_shrink=1.0, blend_user_weight=0.3)


def _sequences(seed: int = 3, n_users: int = 14, n_items: int = 9) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_users):
        k = int(rng.integers(3, 7))
        # a loose chain: next item near the previous one, so transitions and co-occurrence differ
        s = [int(rng.integers(n_items))]
        while len(s) < k:
            nxt = int((s[-1] + rng.choice([1, 1, 2, 4])) % n_items)
            if nxt not in s:
                s.append(nxt)
            elif len(set(range(n_items)) - set(s)) == 0:
                break
            else:
                s.append(int(rng.choice(sorted(set(range(n_items)) - set(s)))))
        out.append(s)
    return out


def _events(spark, seqs: list[list[int]]):
    rows = [(u, i, p, len(s), 5.0) for u, s in enumerate(seqs) for p, i in enumerate(s)]
    return spark.createDataFrame(rows, "u long, i long, pos int, n int, value double")


def _item_cf_reference(seqs: list[list[int]], n_items: int, rp: RankingParams) -> np.ndarray:
    """W @ (shrunk item cosine + transition_weight * T), the user's items set to -inf."""
    x = np.zeros((len(seqs), n_items))
    w = np.zeros_like(x)
    t = np.zeros((n_items, n_items))
    for u, s in enumerate(seqs):
        for p, i in enumerate(s):
            x[u, i] = 1.0
            w[u, i] += np.exp(-(len(s) - 1 - p) / rp.recency_tau)
            if p + 1 < len(s) and s[p + 1] != i:
                t[i, s[p + 1]] += 1.0
    norm = np.sqrt(x.sum(0))
    cos = (x.T @ x) / (np.outer(norm, norm) + rp.item_shrink)
    np.fill_diagonal(cos, 0.0)
    trans = t / (t.sum(1, keepdims=True) + rp.transition_shrink)
    scores = w @ (cos + rp.transition_weight * trans)
    scores[x > 0] = -np.inf
    return scores


def _user_cf_reference(seqs: list[list[int]], n_items: int, rp: RankingParams) -> np.ndarray:
    x = np.zeros((len(seqs), n_items))
    for u, s in enumerate(seqs):
        x[u, s] = 1.0
    norm = np.sqrt(x.sum(1))
    cos = (x @ x.T) / (np.outer(norm, norm) + rp.user_shrink)
    np.fill_diagonal(cos, 0.0)
    keep = np.zeros_like(cos)
    for u in range(len(seqs)):  # top user_k neighbours (ties: lower index)
        order = sorted(range(len(seqs)), key=lambda v: (-round(cos[u, v], 12), v))
        for v in [v for v in order if cos[u, v] > 0][:rp.user_k]:
            keep[u, v] = cos[u, v]
    scores = keep @ x
    scores[x > 0] = -np.inf
    return scores


def _lists(recs) -> dict[int, list[tuple[int, float, str]]]:
    out: dict[int, list[tuple[int, float, str]]] = {}
    for r in sorted(recs.collect(), key=lambda r: (r.u, r.rank)):
        out.setdefault(int(r.u), []).append((int(r.i), float(r.score), r.source))
    return out


def _scored_order(scores: np.ndarray, u: int) -> list[int]:
    row = scores[u]
    return sorted([i for i in range(len(row)) if np.isfinite(row[i]) and row[i] > 0], key=lambda i: (-row[i], i))


def _blend_reference(item: np.ndarray, user: np.ndarray, w: float) -> np.ndarray:
    """w * user / its row maximum + (1 - w) * item / its row maximum over the unseen items."""
    def scaled(x: np.ndarray) -> np.ndarray:
        z = np.where(np.isfinite(x), x, 0.0)
        top = z.max(axis=1, keepdims=True)
        return np.divide(z, top, out=np.zeros_like(z), where=top > 0)
    out = w * scaled(user) + (1 - w) * scaled(item)
    out[~np.isfinite(item)] = -np.inf
    return out


def test_rankers_match_numpy_and_differ(spark) -> None:
    seqs, n_items = _sequences(), 9
    events = _events(spark, seqs)
    got = {}
    for name in ("item_cf", "user_cf", "blend"):
        # 4 users per block and 3 products per chunk: several blocks, several chunks per block
        ranking = rankers.recommend(events, name, RP, 5, len(seqs), n_items, block_size=4, max_pairs=3)
        got[name] = _lists(ranking.recs)
        ranking.release()
    want = {"item_cf": _item_cf_reference(seqs, n_items, RP), "user_cf": _user_cf_reference(seqs, n_items, RP)}
    want["blend"] = _blend_reference(want["item_cf"], want["user_cf"], RP.blend_user_weight)
    differ = 0
    for u in range(len(seqs)):
        for name, ref in want.items():
            scored = [(i, s) for i, s, src in got[name][u] if src == name]
            assert [i for i, _ in scored] == _scored_order(ref, u)[:5], f"{name}, user {u}"
            for i, s in scored:
                assert s == pytest.approx(ref[u, i]), f"{name}, user {u}, item {i}"
            assert all(i not in seqs[u] for i, _, _ in got[name][u])
        differ += [i for i, _, _ in got["item_cf"][u]] != [i for i, _, _ in got["user_cf"][u]]
    assert differ >= len(seqs) // 3  # the two rankers disagree on this data


def test_score_block_chunks_and_rankers_against_dense() -> None:
    """The block kernel alone: the same top n whatever the chunking, against dense products."""
    import scipy.sparse as sp

    rng = np.random.default_rng(11)
    n_u, n_i, n = 30, 25, 4
    seen = (rng.random((n_u, n_i)) < 0.15).astype(float)
    hist = sp.csr_matrix(seen * rng.uniform(0.1, 1.0, seen.shape))
    item_w = sp.csr_matrix((rng.random((n_i, n_i)) < 0.2) * rng.uniform(0.0, 1.0, (n_i, n_i)))
    nbrs = sp.csr_matrix((rng.random((n_u, n_u)) < 0.2) * rng.uniform(0.05, 1.0, (n_u, n_u)))
    user_r = sp.csr_matrix(seen)
    dense = {"item_cf": hist.toarray() @ item_w.toarray(), "user_cf": nbrs.toarray() @ seen}
    for x in dense.values():
        x[seen > 0] = -np.inf
    dense["blend"] = _blend_reference(dense["item_cf"], dense["user_cf"], 0.3)
    for x in dense.values():  # an item nobody scored is no candidate
        x[x == 0] = -np.inf
    for name, ref in dense.items():
        runs = [rankers.score_block(hist, nbrs, item_w, user_r, name, n, 0.3, mp) for mp in (1, 7, 10**6)]
        for rows, items, scores in runs:
            got = {}
            for r, i, s in zip(rows, items, scores, strict=True):
                got.setdefault(int(r), []).append((int(i), float(s)))
            for u in range(n_u):
                want = sorted([i for i in range(n_i) if np.isfinite(ref[u, i])], key=lambda i: (-ref[u, i], i))[:n]
                assert [i for i, _ in got.get(u, [])] == want, f"{name}, user {u}"
                assert [s for _, s in got.get(u, [])] == pytest.approx([ref[u, i] for i in want])
    # a wrong exclusion would surface here: each user's list holds none of its items
    rows, items, _ = rankers.score_block(hist, nbrs, item_w, user_r, "blend", n, 0.3, 5)
    assert not seen[rows, items].any()


def test_neighbour_matrix_names_a_row_outside_the_index(spark) -> None:
    ok = spark.createDataFrame([(0, 1, 0.5), (5, 2, 0.25)], "row long, neighbor long, sim double")
    m = rankers.collect_csr(ok, 6, 3, block_size=4)
    assert m.shape == (6, 3) and m.toarray()[5, 2] == 0.25 and m.toarray()[0, 1] == 0.5 and m.nnz == 2
    bad = spark.createDataFrame([(0, 1, 0.5), (6, 2, 0.25)], "row long, neighbor long, sim double")
    with pytest.raises(ValueError, match=r"row 6 outside \[0, 6\)"):
        rankers.collect_csr(bad, 6, 3, block_size=4)


def test_leave_last_out_and_popularity_hit_rate(spark) -> None:
    seqs, n_items = _sequences(seed=5, n_users=12, n_items=20), 20
    events = _events(spark, seqs)
    hist, truth, _ = evaluation.holdout(events, "leave_last_out", "valid", 0.2)
    h = {(r.u, r.pos): r.i for r in hist.collect()}
    assert {int(r.u): int(r.i) for r in truth.collect()} == {u: s[-2] for u, s in enumerate(seqs)}
    assert h == {(u, p): i for u, s in enumerate(seqs) for p, i in enumerate(s[:-2])}
    assert {r.n for r in hist.where("u = 0").collect()} == {len(seqs[0]) - 2}
    p = RecommendParams(top_n=3, evaluate=EvaluateParams(split="leave_last_out"))
    out = evaluation.evaluate_rankers(events, p, len(seqs), n_items, methods=("popularity",), phases=("test",))
    assert out["split"] == "leave_last_out"
    got = out["phases"]["test"]["methods"]["popularity"]
    # reference: popularity on the histories (all but the last item), ties by item index, seen excluded
    counts = np.zeros(n_items)
    for s in seqs:
        counts[list(set(s[:-1]))] += 1
    hits = ndcg = 0.0
    for s in seqs:
        ranked = [i for i in sorted(range(n_items), key=lambda i: (-counts[i], i)) if i not in s[:-1]]
        if s[-1] in ranked[:10]:
            hits += 1
            ndcg += 1 / np.log2(ranked.index(s[-1]) + 2)
    assert 0 < hits < len(seqs)
    assert got["HR@10"] == pytest.approx(hits / len(seqs))
    assert got["NDCG@10"] == pytest.approx(ndcg / len(seqs))
    assert got["liked_HR@10"] == pytest.approx(got["HR@10"])  # every star is 5: every target is liked


def test_time_holdout_keeps_new_items_of_known_users(spark) -> None:
    rows = [(0, 0, 0, 3, 4.0, dt.date(2020, 1, 1)), (0, 1, 1, 3, 5.0, dt.date(2020, 1, 2)),
            (0, 2, 2, 3, 2.0, dt.date(2020, 1, 9)), (1, 1, 0, 2, 3.0, dt.date(2020, 1, 1)),
            (1, 0, 1, 2, 5.0, dt.date(2020, 1, 9)), (2, 2, 0, 1, 5.0, dt.date(2020, 1, 10)),
            (3, 0, 0, 2, 4.0, dt.date(2020, 1, 2)), (3, 0, 1, 2, 5.0, dt.date(2020, 1, 9)),
            (4, 3, 0, 1, 5.0, dt.date(2020, 1, 2))]
    events = spark.createDataFrame(rows, "u long, i long, pos int, n int, value double, review_date date")
    hist, truth, info = evaluation.holdout(events, "time", "valid", 0.3)
    # train = the days up to 40% of the reviews (2020-01-02, 5 of 9), validation = up to 70%
    # (2020-01-09): item 2 is new there, user 3 rated item 0 again (seen, not a target), and the
    # 2020-01-10 review is the test set's
    assert info["history_until"] == "2020-01-02"
    assert sorted((r.u, r.i, r.value) for r in truth.collect()) == [(1, 0, 5.0)]
    assert {(r.u, r.n) for r in hist.collect()} == {(0, 2), (1, 1), (3, 1), (4, 1)}


def test_job_on_implicit_five_core_data(spark, tmp_path, caplog) -> None:
    """Every star is 5: the job says it has no rating to fill, finds neighbours on binary
    interactions, ranks by item-CF and evaluates leave-last-out (the data is 5-core)."""
    from reviewrec.recommend.job import run

    seqs = [[(u + j * (1 + u % 3)) % 8 for j in range(6)] for u in range(10)]
    seqs = [list(dict.fromkeys(s)) for s in seqs]
    seqs = [s + [i for i in range(8) if i not in s][:6 - len(s)] for s in seqs]
    day = dt.date(2016, 3, 1)
    rows = [(f"r{u}-{p}", f"c{u}", f"p{i}", "Beauty", 5, day + dt.timedelta(days=p))
            for u, s in enumerate(seqs) for p, i in enumerate(s)]
    reviews = spark.createDataFrame(rows, "review_id string, customer_id string, product_id string, "
                                          "product_category string, star_rating int, review_date date")
    root = str(tmp_path / "run")
    io.write_parquet_atomic(reviews, f"{root}/reviews")
    cfg = load_config([], [f"run.root={root}", "recsys.top_n=3", "recsys.block_size=4", "recsys.als.iters=2",
                           "recsys.ranking.item_k=20", "recsys.evaluate.phases=[test]"])
    with caplog.at_level(logging.WARNING):
        summary = run(spark, cfg)
    assert summary["feedback"]["kind"] == "implicit" and "every star_rating is 5" in summary["feedback"]["why"]
    assert any("no rating fill" in r.getMessage() for r in caplog.records)
    assert io.read_parquet(spark, f"{root}/predictions", "recommend").count() == 0
    assert summary["counts"]["neighbor_rows"] > 0  # centred cosine would find none
    assert "evaluation" not in summary
    rk = summary["ranking"]
    assert rk["split"] == "leave_last_out" and set(rk["phases"]["test"]["methods"]) == {"item_cf", "popularity"}
    assert rk["phases"]["test"]["targets"] == len(seqs)
    recs = io.read_parquet(spark, f"{root}/recommendations", "recommend").collect()
    assert recs and {r.source for r in recs} <= {"item_cf", "popular"}
    # rank 1 is the item-CF reference's best item (product ids: the index order does not matter)
    want = _item_cf_reference(seqs, 8, RankingParams(item_k=20))
    top = {r.user: r.item for r in recs if r.rank == 1}
    checked = 0
    for u in range(len(seqs)):
        row = want[u]
        best = np.nanmax(np.where(np.isfinite(row), row, np.nan))
        if (np.isclose(row, best)).sum() == 1:
            assert top[f"c{u}"] == f"p{int(np.argmax(np.where(np.isfinite(row), row, -1)))}"
            checked += 1
    assert checked >= 1
    js = json.load(open(f"{root}/report/recs/summary.json"))
    assert js["ranker"] == "item_cf" and js["scorer"] == "none"
