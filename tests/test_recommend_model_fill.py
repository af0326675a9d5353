"""Filling the user-item matrix with the trained rating model: `model.score.score_candidates`
on a tiny model trained by the train job (Horovod, num_proc=1), and the recommend job end to
end with `recsys.fill.use_model=require`.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from reviewrec import io

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.spark, pytest.mark.horovod, pytest.mark.slow]


@pytest.fixture()
def trained_root(tiny_model_root):
    """<root>/reviews, tokens, features, features_meta and model: the session's tiny model (tests/model_runs.py)."""
    return tiny_model_root


def _id_maps(spark, root: str) -> tuple[dict, dict]:
    rows = (io.read_parquet(spark, f"{root}/features", "features")
            .select("customer_id", "user_idx", "product_id", "item_idx").collect())
    return {r.customer_id: r.user_idx for r in rows}, {r.product_id: r.item_idx for r in rows}


def _candidates(spark):
    # C3/P2 are in the data; CNEW / PNEW are not (-> the reserved index); "seq" and "user_idx"
    # are caller columns that must come back untouched.
    rows = [("C3", "P2", 1, "keep-a", 7), ("C3", "P5", 2, "keep-b", 8), ("C10", "P2", 3, "keep-c", 9),
            ("CNEW", "P2", 4, "keep-d", 10), ("C10", "PNEW", 5, "keep-e", 11), ("CNEW", "PNEW", 6, "keep-f", 12)]
    return spark.createDataFrame(rows, "customer_id string, product_id string, n int, seq string, user_idx int")


def _reference(root: str, users: list[str], items: list[str], umap: dict, imap: dict) -> np.ndarray:
    """Expected rating predicted in this process: zero (all-padding) sequence, ids as in training."""
    from reviewrec.model.score import load_metadata, load_model, predict_arrays

    md = load_metadata(f"{root}/model")
    fm, net = md["features_meta"], md["net"]
    u = np.array([umap.get(x, fm["num_users"]) for x in users])
    i = np.array([imap.get(x, fm["num_items"]) for x in items])
    # unseen ids must take the reserved index: the features' own mapping never contains it
    assert max(umap.values()) < fm["num_users"] and max(imap.values()) < fm["num_items"]
    seq = np.zeros((len(users), int(net["seq_len"])), np.int32)
    probs = predict_arrays(load_model(f"{root}/model"), seq, u, i, fm["num_users"], fm["num_items"],
                           net["user_buckets"], net["item_buckets"])
    return probs @ np.arange(1, 6)


def test_score_candidates_matches_local_prediction(spark, trained_root):
    from reviewrec.model.score import score_candidates

    umap, imap = _id_maps(spark, trained_root)
    cands = _candidates(spark)
    out = score_candidates(spark, cands, f"{trained_root}/model").orderBy("n").collect()
    assert [r.n for r in out] == [1, 2, 3, 4, 5, 6]  # nothing dropped, order restorable
    assert list(out[0].asDict()) == ["customer_id", "product_id", "n", "seq", "user_idx", "predicted_rating"]
    assert [r.seq for r in out] == [f"keep-{c}" for c in "abcdef"] and [r.user_idx for r in out] == list(range(7, 13))
    got = np.array([r.predicted_rating for r in out])
    want = _reference(trained_root, [r.customer_id for r in out], [r.product_id for r in out], umap, imap)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.all((got >= 1) & (got <= 5))
    # the ids matter: the reserved index gives another prediction than a known id
    assert abs(got[0] - got[3]) > 1e-6 or abs(got[2] - got[4]) > 1e-6


def test_an_indexer_of_other_data_is_refused(spark, trained_root, tmp_path):
    """The ids come from <root>/features_meta's indexers (no features dataset needed); an
    indexer fitted on other data (fewer users) does not belong to this model."""
    from pyspark.ml.feature import StringIndexer

    from reviewrec.model.score import score_candidates

    root = str(tmp_path / "run")
    shutil.copytree(f"{trained_root}/model", f"{root}/model")
    shutil.copytree(f"{trained_root}/features_meta", f"{root}/features_meta")
    out = score_candidates(spark, _candidates(spark), f"{root}/model").orderBy("n").collect()
    umap, imap = _id_maps(spark, trained_root)
    want = _reference(trained_root, [r.customer_id for r in out], [r.product_id for r in out], umap, imap)
    np.testing.assert_allclose([r.predicted_rating for r in out], want, atol=1e-5)
    # Indexes refitted since the model (a features run whose train run was skipped): fewer
    # customers, or the same customers in another order, would give the model's embeddings to
    # other customers. Either is an error that says so.
    train = io.read_parquet(spark, f"{trained_root}/features", "features").where("split = 'train'")
    for fitted in (StringIndexer(inputCol="customer_id", outputCol="x").fit(train.where("customer_id < 'C2'")),
                   StringIndexer(inputCol="customer_id", outputCol="x", stringOrderType="alphabetDesc").fit(train)):
        shutil.rmtree(f"{root}/features_meta/user_indexer")
        fitted.save(f"{root}/features_meta/user_indexer")
        with pytest.raises(ValueError, match="indexes .* are not the ones the model was trained on .* retrain"):
            score_candidates(spark, _candidates(spark), f"{root}/model")
    assert len(fitted.labelsArray[0]) == json.loads(Path(f"{root}/model/vocab.json").read_text())["num_users"]


def test_score_candidates_errors_name_what_is_missing(spark, trained_root, tmp_path):
    from reviewrec.model.score import score_candidates

    with pytest.raises(ValueError, match="product_id"):
        score_candidates(spark, _candidates(spark).drop("product_id"), f"{trained_root}/model")
    empty = tmp_path / "run" / "model"
    empty.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=f"{empty}/metadata.json"):
        score_candidates(spark, _candidates(spark), str(empty))
    shutil.rmtree(empty)
    shutil.copytree(f"{trained_root}/model", empty)  # a model without the features' metadata beside it
    with pytest.raises(FileNotFoundError, match=f"{empty.parent}/features_meta/vocab.json not found .*features job"):
        score_candidates(spark, _candidates(spark), str(empty)).collect()
    shutil.copytree(f"{trained_root}/features_meta", empty.parent / "features_meta")  # ... without its indexers
    shutil.rmtree(empty.parent / "features_meta" / "user_indexer")
    with pytest.raises(FileNotFoundError, match="user_indexer: no saved StringIndexerModel"):
        score_candidates(spark, _candidates(spark), str(empty)).collect()


def test_recommend_job_fills_from_the_model(spark, trained_root):
    from reviewrec.config import load_config
    from reviewrec.model.score import score_candidates
    from reviewrec.recommend.job import run

    cfg = load_config([str(REPO / "conf" / "local.yaml")],
                      [f"run.root={trained_root}", "recsys.fill.use_model=require", "recsys.neighbors.k=5",
                       "recsys.fill.neighbor_items=5", "recsys.fill.top_popular=3", "recsys.top_n=3",
                       "recsys.block_size=32", "recsys.als.iters=2"])
    summary = run(spark, cfg)
    assert summary["scorer"] == "model"
    pred = io.read_parquet(spark, f"{trained_root}/predictions", "recommend")
    rows = pred.collect()
    assert rows and {r.source for r in rows} == {"model"}
    recs = io.read_parquet(spark, f"{trained_root}/recommendations", "recommend")
    # the lists come from the ranker (interaction scores), the model fills the matrix
    assert {r.source for r in recs.collect()} <= {"item_cf", "popular"}
    # the filled cells carry exactly the model's expected rating for (user, item)
    sample = spark.createDataFrame([(r.user, r.item) for r in rows[:20]], "customer_id string, product_id string")
    want = {(r.customer_id, r.product_id): r.predicted_rating
            for r in score_candidates(spark, sample, f"{trained_root}/model").collect()}
    for r in rows[:20]:
        assert r.predicted_rating == pytest.approx(want[(r.user, r.item)], abs=1e-6)
    ev = json.load(open(f"{trained_root}/report/recs/summary.json"))["evaluation"]
    assert ev["scorer"] == "model"
    # the model fill and the CF fill of the same cells are both scored
    assert ev["methods"]["filled"]["n"] == ev["methods"]["cf_filled"]["n"] == ev["test_pairs_warm_item"] > 0
    assert ev["methods"]["filled"]["rmse"] != ev["methods"]["cf_filled"]["rmse"]
