"""The review-text fill (recommend.review_fill): a cell's document is made of the user's and the
item's other reviews known at the cut, never the cell's own review or a later one; an empty
document is the empty text; the scores are the model's, on that text and the ids."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from reviewrec import schema as S

D0 = dt.date(2015, 1, 1)

pytestmark = [pytest.mark.spark]


def _split(spark):
    """Reviews with markers as lemmas (each review's lemmas name it) and a split column:
    C1 reviewed P1..P5 in train, P9 in train (the pair's own earlier review), P9 again in test
    (the held-out cell), P6 in test; P9 was reviewed by C2 (train), C3 (val), C5 (test); C4 only P4."""
    rows = [  # review_id, customer, product, day, split
        ("R01", "C1", "P1", 1, "train"), ("R02", "C1", "P2", 2, "train"), ("R03", "C1", "P3", 3, "train"),
        ("R04", "C1", "P4", 4, "train"), ("R05", "C1", "P5", 5, "val"), ("R06", "C1", "P9", 6, "train"),
        ("R07", "C2", "P9", 1, "train"), ("R08", "C3", "P9", 7, "val"), ("R09", "C1", "P9", 20, "test"),
        ("R10", "C5", "P9", 21, "test"), ("R11", "C1", "P6", 22, "test"), ("R12", "C4", "P7", 3, "train"),
    ]
    split = spark.createDataFrame(
        [(r, c, p, D0 + dt.timedelta(days=d), 4, "Digital_Software", s) for r, c, p, d, s in rows],
        f"{S.REVIEW_ID} string, {S.CUSTOMER_ID} string, {S.PRODUCT_ID} string, {S.REVIEW_DATE} date, "
        f"{S.STAR_RATING} int, {S.PRODUCT_CATEGORY} string, {S.SPLIT} string")
    tokens = spark.createDataFrame([(r, [f"{r}a", f"{r}b", f"{r}c"]) for r, *_ in rows],
                                   f"{S.REVIEW_ID} string, {S.LEMMAS} array<string>")
    return split, tokens


def _doc(spark, known, cells, spec, seq_len=48):
    from reviewrec.recommend.review_fill import cell_documents

    df = spark.createDataFrame(cells, f"{S.CUSTOMER_ID} string, {S.PRODUCT_ID} string")
    rows = cell_documents(df, known, spec, seq_len, S.LEMMAS).collect()
    return {(r[S.CUSTOMER_ID], r[S.PRODUCT_ID]): r for r in rows}


def test_documents_hold_the_other_reviews_known_at_the_cut_only(spark):
    from reviewrec.recommend.review_fill import DocSpec, known_reviews

    split, tokens = _split(spark)
    known = known_reviews(split, tokens, (S.SPLIT_TRAIN, S.SPLIT_VAL))
    docs = _doc(spark, known, [("C1", "P9"), ("C4", "P9"), ("C9", "P8")], DocSpec("user+item", 3))
    c1 = docs[("C1", "P9")]
    # user side: C1's 3 most recent other reviews (R03, R04, R05) oldest first; item side: P9's by
    # others known at the cut (R07, R08); 48 tokens / (2 sides x 3 reviews) = 8 >= 3 lemmas each
    assert c1[S.SEQ] == [f"{r}{x}" for r in ("R03", "R04", "R05", "R07", "R08") for x in "abc"]
    assert (c1["n_user_reviews"], c1["n_item_reviews"]) == (3, 2)
    held_out_or_later = {"R06", "R09", "R10", "R11"}  # the pair's own reviews and the test reviews
    assert not {t[:3] for t in c1[S.SEQ]} & held_out_or_later
    # a user with other reviews and P9's: C4 has R12; an unknown user and item: the empty text
    assert docs[("C4", "P9")][S.SEQ] == ["R12a", "R12b", "R12c"] + [f"{r}{x}" for r in ("R07", "R06", "R08")
                                                                     for x in "abc"]  # by date
    assert docs[("C9", "P8")][S.SEQ] == [] and docs[("C9", "P8")]["n_user_reviews"] == 0


def test_documents_per_side_budget_and_k(spark):
    from reviewrec.recommend.review_fill import DocSpec, known_reviews

    split, tokens = _split(spark)
    known = known_reviews(split, tokens, (S.SPLIT_TRAIN,))  # validation cells: train reviews only
    item1 = _doc(spark, known, [("C1", "P9")], DocSpec("item", 1))[("C1", "P9")]
    assert item1[S.SEQ] == ["R07a", "R07b", "R07c"]  # R08 is val, R06 is the pair's own
    user1 = _doc(spark, known, [("C1", "P9")], DocSpec("user", 1), seq_len=2)[("C1", "P9")]
    assert user1[S.SEQ] == ["R04a", "R04b"]  # the most recent train review of another item, cut to 2
    both = _doc(spark, known, [("C1", "P9")], DocSpec("user+item", 3), seq_len=12)[("C1", "P9")]
    assert both[S.SEQ] == ["R02a", "R02b", "R03a", "R03b", "R04a", "R04b", "R07a", "R07b"]  # 12 / 6 = 2 each


def test_mean_pool_scores_each_picked_review_on_its_own(spark):
    from reviewrec.recommend.review_fill import DocSpec, known_reviews, review_documents

    split, tokens = _split(spark)
    known = known_reviews(split, tokens, (S.SPLIT_TRAIN, S.SPLIT_VAL))
    cells = spark.createDataFrame([("C1", "P9"), ("C9", "P8")], f"{S.CUSTOMER_ID} string, {S.PRODUCT_ID} string")
    rows = review_documents(cells, known, DocSpec("user+item", 2, "mean"), 2, S.LEMMAS).collect()
    got = sorted((r["side"], r[S.REVIEW_ID], tuple(r[S.SEQ])) for r in rows)
    assert got == [("item", "R07", ("R07a", "R07b")), ("item", "R08", ("R08a", "R08b")),
                   ("user", "R04", ("R04a", "R04b")), ("user", "R05", ("R05a", "R05b"))]  # none for (C9, P8)


def test_token_ids_follow_the_model_vocabulary(spark):
    from reviewrec.recommend.review_fill import known_reviews, review_token_ids

    split, tokens = _split(spark)
    ids = review_token_ids(known_reviews(split, tokens, (S.SPLIT_TRAIN,)), {"R01a": 2, "R01c": 3}, 2)
    got = {r[S.REVIEW_ID]: r["ids"] for r in ids.collect()}
    assert got["R01"] == [2, 1] and got["R02"] == [1, 1]  # out of vocabulary = 1, first seq_len lemmas
    assert "R09" not in got and "R05" not in got


# -- the model ------------------------------------------------------------------------------
@pytest.fixture()
def trained_root(tiny_model_root):
    """The session's tiny model (tests/model_runs.py): its words carry the star, so text moves the scores."""
    return tiny_model_root


@pytest.mark.horovod
@pytest.mark.slow
def test_scores_are_the_models_on_the_document_and_the_ids(spark, trained_root):
    from pyspark.sql import functions as F

    from reviewrec import io
    from reviewrec.features import transforms as X
    from reviewrec.model.score import load_metadata, load_model, predict_arrays, score_candidates
    from reviewrec.recommend.review_fill import (DocSpec, ReviewTextScorer, cell_documents, known_reviews,
                                                 model_vocab, predict_cells, review_documents, review_token_ids,
                                                 score_documents)
    from reviewrec.recommend.ids import I, U

    model = f"{trained_root}/model"
    reviews = io.read_parquet(spark, f"{trained_root}/reviews", "ingest")
    tokens = io.read_parquet(spark, f"{trained_root}/tokens", "preprocess")
    split = X.assign_time_split(reviews, D0 + dt.timedelta(days=10**4), D0 + dt.timedelta(days=10**4))
    vocab, seq_len = model_vocab(spark, model)
    known = review_token_ids(known_reviews(split, tokens, (S.SPLIT_TRAIN,)), vocab, seq_len).cache()
    feats = io.read_parquet(spark, f"{trained_root}/features", "features")
    cells = feats.select(S.CUSTOMER_ID, S.PRODUCT_ID, S.USER_IDX, S.ITEM_IDX).distinct().orderBy(
        S.CUSTOMER_ID, S.PRODUCT_ID).limit(40).cache()
    docs = cell_documents(cells.select(S.CUSTOMER_ID, S.PRODUCT_ID), known, DocSpec("item", 3), seq_len)
    got = {(r[S.CUSTOMER_ID], r[S.PRODUCT_ID]): r for r in score_documents(spark, docs, model).collect()}
    rows = cells.collect()
    assert len(got) == len(rows) == 40 and all(len(got[k][S.SEQ]) > 0 for k in got)  # every item has others

    # the same numbers in this process, from the same token ids and the training ids
    md = load_metadata(model)
    fm, net = md["features_meta"], md["net"]
    seq = np.zeros((len(rows), seq_len), np.int32)
    for n, r in enumerate(rows):
        s = got[(r[S.CUSTOMER_ID], r[S.PRODUCT_ID])][S.SEQ]
        seq[n, :len(s)] = s
    probs = predict_arrays(load_model(model), seq, np.array([r[S.USER_IDX] for r in rows]),
                           np.array([r[S.ITEM_IDX] for r in rows]), fm["num_users"], fm["num_items"],
                           net["user_buckets"], net["item_buckets"])
    want = probs @ np.arange(1, 6)
    have = np.array([got[(r[S.CUSTOMER_ID], r[S.PRODUCT_ID])][S.PREDICTED_RATING] for r in rows])
    np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-4)

    # the empty text is the model fill; the documents move the scores away from it
    empty = {(r[S.CUSTOMER_ID], r[S.PRODUCT_ID]): r[S.PREDICTED_RATING]
             for r in score_candidates(spark, cells.select(S.CUSTOMER_ID, S.PRODUCT_ID), model).collect()}
    no_text = score_documents(spark, cells.select(S.CUSTOMER_ID, S.PRODUCT_ID).withColumn(
        S.SEQ, F.array().cast("array<int>")), model)
    assert all(abs(r[S.PREDICTED_RATING] - empty[(r[S.CUSTOMER_ID], r[S.PRODUCT_ID])]) < 1e-5
               for r in no_text.collect())
    diffs = np.array([abs(got[k][S.PREDICTED_RATING] - empty[k]) for k in empty])
    assert diffs.mean() > 0.05, diffs

    # the mean pool: each picked review read on its own with the cell's ids, the expected stars averaged
    spec = DocSpec("item", 3, "mean")
    ids = {(r[S.CUSTOMER_ID], r[S.PRODUCT_ID]): (r[S.USER_IDX], r[S.ITEM_IDX]) for r in rows}
    per = review_documents(cells.select(S.CUSTOMER_ID, S.PRODUCT_ID), known, spec, seq_len).collect()
    seq = np.zeros((len(per), seq_len), np.int32)
    for n, r in enumerate(per):
        seq[n, :len(r[S.SEQ])] = r[S.SEQ]
    cell_of = [(r[S.CUSTOMER_ID], r[S.PRODUCT_ID]) for r in per]
    probs = predict_arrays(load_model(model), seq, np.array([ids[c][0] for c in cell_of]),
                           np.array([ids[c][1] for c in cell_of]), fm["num_users"], fm["num_items"],
                           net["user_buckets"], net["item_buckets"])
    stars = probs @ np.arange(1, 6)
    mean = predict_cells(spark, cells.select(S.CUSTOMER_ID, S.PRODUCT_ID), known, spec, model, seq_len).collect()
    assert len(mean) == 40
    for r in mean:
        c = (r[S.CUSTOMER_ID], r[S.PRODUCT_ID])
        mine = [stars[n] for n, x in enumerate(cell_of) if x == c]
        assert r["n_item_reviews"] == len(mine) == 3
        assert abs(r[S.PREDICTED_RATING] - np.mean(mine)) < 1e-4

    # the RatingScorer on (u, i) cells: the same predictions
    index_cells = cells.select(F.col(S.USER_IDX).cast("long").alias(U), F.col(S.ITEM_IDX).cast("long").alias(I),
                               S.CUSTOMER_ID, S.PRODUCT_ID)
    scored = ReviewTextScorer(model, known, None, DocSpec("item", 3)).score(spark, index_cells).collect()
    assert len(scored) == 40
    for r in scored:
        assert abs(r[S.PREDICTED_RATING] - got[(r[S.CUSTOMER_ID], r[S.PRODUCT_ID])][S.PREDICTED_RATING]) < 1e-5

