"""Feature transforms on literal rows, and the features job end to end on a tiny run root."""
from __future__ import annotations

import datetime as dt
import json
import math

import pytest
from pyspark.ml.feature import HashingTF
from pyspark.sql import functions as F

from reviewrec import schema as S
from reviewrec.features import transforms as X

pytestmark = pytest.mark.spark

D = dt.date


def test_time_cutoffs_boundaries():
    counts = [(D(2015, 1, 3), 1), (D(2015, 1, 1), 5), (D(2015, 1, 2), 3), (D(2015, 1, 4), 1)]
    # cumulative 5, 8 (= 80% -> last train day), 9 (= 90% -> last val day), 10
    assert X.time_cutoffs(counts, 0.8, 0.1) == (D(2015, 1, 2), D(2015, 1, 3))
    # a day is never split: 50% falls inside the first day
    assert X.time_cutoffs(counts, 0.5, 0.3) == (D(2015, 1, 1), D(2015, 1, 2))
    with pytest.raises(ValueError, match="must be in"):
        X.time_cutoffs(counts, 0.9, 0.2)


def test_assign_time_split_includes_cut_days(spark):
    df = spark.createDataFrame([(i, D(2015, 1, i)) for i in range(1, 6)], "id int, review_date date")
    out = X.assign_time_split(df, D(2015, 1, 2), D(2015, 1, 4))
    got = [r[S.SPLIT] for r in out.orderBy("id").collect()]
    assert got == ["train", "train", "val", "val", "test"]


def test_time_split_by_whole_days_and_reports_the_cut_offs(spark):
    """time_split (what the features job and the recommender's evaluation use): the oldest 60% of
    the rows train, the next 20% val, the rest test, never splitting a day."""
    rows = [(i, D(2015, 1, 1 + i // 2)) for i in range(10)]  # two reviews a day for 5 days
    df = spark.createDataFrame(rows, "id int, review_date date")
    out, info = X.time_split(df, 0.6, 0.2)
    assert info == {"method": "time", "train_until": "2015-01-03", "val_until": "2015-01-04"}
    got = [r[S.SPLIT] for r in out.orderBy("id").collect()]
    assert got == ["train"] * 6 + ["val"] * 2 + ["test"] * 2
    _, two = X.time_split(df, 0.8, 0.0)  # no val share: train, then test
    assert two["train_until"] == two["val_until"] == "2015-01-04"


def test_random_split_is_seeded_and_partition_independent(spark):
    df = spark.range(4000).select(F.format_string("R%05d", "id").alias(S.REVIEW_ID))
    a = X.assign_random_split(df.repartition(1), 0.8, 0.1, seed=7)
    b = X.assign_random_split(df.repartition(7), 0.8, 0.1, seed=7)
    rows_a = sorted((r[0], r[1]) for r in a.collect())
    assert rows_a == sorted((r[0], r[1]) for r in b.collect())
    share = {s: n / 4000 for s, n in a.groupBy(S.SPLIT).count().collect()}
    assert abs(share["train"] - 0.8) < 0.03 and abs(share["val"] - 0.1) < 0.02 and abs(share["test"] - 0.1) < 0.02
    c = X.assign_random_split(df, 0.8, 0.1, seed=8)
    assert sorted((r[0], r[1]) for r in c.collect()) != rows_a


def test_indexer_unseen_gets_reserved_index(spark):
    train = spark.createDataFrame([("u1",), ("u1",), ("u2",), ("u1",)], [S.CUSTOMER_ID])
    model = X.fit_indexer(train, S.CUSTOMER_ID, S.USER_IDX)
    df = spark.createDataFrame([("u2",), ("u1",), ("u3",)], [S.CUSTOMER_ID])
    got = [(r[0], r[1]) for r in X.apply_indexer(df, model).collect()]
    assert got == [("u2", 1), ("u1", 0), ("u3", 2)]  # 2 = number of training labels
    assert dict(X.apply_indexer(df, model).dtypes)[S.USER_IDX] == "int"


def test_star_labels(spark):
    df = spark.createDataFrame([(1,), (3,), (5,)], [S.STAR_RATING])
    got = [(r[S.LABEL], r[S.LABEL_ONEHOT]) for r in X.star_labels(df).collect()]
    assert got == [(0, [1.0, 0.0, 0.0, 0.0, 0.0]), (2, [0.0, 0.0, 1.0, 0.0, 0.0]), (4, [0.0, 0.0, 0.0, 0.0, 1.0])]


def test_pad_truncate(spark):
    df = spark.createDataFrame([(1, [5, 6, 7]), (2, [1, 2, 3, 4, 5, 6, 7]), (3, [])], "id int, s array<int>")
    got = [r[0] for r in df.orderBy("id").select(X.pad_truncate(F.col("s"), 5)).collect()]
    assert got == [[5, 6, 7, 0, 0], [1, 2, 3, 4, 5], [0, 0, 0, 0, 0]]


def test_token_sequences_keep_order_and_mark_oov(spark):
    long = [f"w{i}" for i in range(25)]  # more than 10 positions: order must be numeric
    df = spark.createDataFrame([
        ("R1", ["good", "zzz", "bad", "good"]),
        ("R2", []),
        ("R3", long),
    ], "review_id string, lemmas array<string>")
    vocab = X.vocabulary_frame(["good", "bad"] + long, df)
    out = {r[S.REVIEW_ID]: r[S.SEQ] for r in X.token_sequences(df, vocab, 6).collect()}
    assert out["R1"] == [2, 1, 3, 2, 0, 0]
    assert out["R2"] == [0] * 6
    assert out["R3"] == [4, 5, 6, 7, 8, 9]


def test_vocabulary_min_count_and_order(spark):
    df = spark.createDataFrame([(["a", "b", "c"],), (["a", "b"],), (["a", "d"],)], "lemmas array<string>")
    cv = X.fit_vocabulary(df, min_count=2, vocab_size=10)
    assert list(cv.vocabulary) == ["a", "b"]
    assert list(X.fit_vocabulary(df, min_count=1, vocab_size=1).vocabulary) == ["a"]


def test_tfidf_matches_reference(spark):
    docs = [["good", "good", "cheap"], ["cheap", "broken"], ["good"]]
    df = spark.createDataFrame([(d,) for d in docs], "lemmas array<string>")
    tf = X.hashing_tf(df, 1 << 10)
    out = X.fit_idf(tf, 0).transform(tf).collect()
    h = HashingTF(numFeatures=1 << 10)
    n = len(docs)
    for row, doc in zip(out, docs, strict=False):
        for term in set(doc):
            df_t = sum(term in d for d in docs)
            expected = doc.count(term) * math.log((n + 1) / (df_t + 1))
            assert row[S.TFIDF][h.indexOf(term)] == pytest.approx(expected)


def _write_inputs(spark, root):
    from reviewrec import io

    rows, toks = [], []
    words = ["great", "cheap", "broken", "love", "return"]
    for i in range(20):
        rid = f"R{i:02d}"
        # users u0..u4 only before the cut; the last days bring new users/items
        user = f"u{i % 5}" if i < 16 else f"new{i}"
        rows.append(("US", user, rid, f"p{i % 3}" if i < 16 else "pNEW", None, "t", "Beauty", 1 + i % 5,
                     0, 0, False, True, "h", "b", D(2015, 1, 1) + dt.timedelta(days=i)))
        toks.append((rid, [words[i % 5], words[(i + 1) % 5], "rare" if i == 0 else "great"], ["X"] * 3))
    # Written out of id order, so the features' order inside a file is not the input's by chance.
    order = [7, 19, 2, 13, 0, 11, 5, 17, 9, 1, 15, 3, 18, 8, 12, 4, 16, 10, 6, 14]
    rows, toks = [rows[i] for i in order], [toks[i] for i in order]
    io.write_parquet_atomic(spark.createDataFrame(rows, S.REVIEWS_SCHEMA), io.dataset_path(root, "reviews"))
    io.write_parquet_atomic(spark.createDataFrame(toks, S.TOKENS_SCHEMA), io.dataset_path(root, "tokens"))


@pytest.mark.slow
def test_features_job_end_to_end(spark, run_root):
    from reviewrec import io
    from reviewrec.config import load_config
    from reviewrec.features import meta as M
    from reviewrec.features.job import run

    _write_inputs(spark, run_root)
    cfg = load_config([], [f"run.root={run_root}", "features.num_features=64", "features.seq_len=4",
                           "features.min_count=2", "features.files_per_split=2"])
    summary = run(spark, cfg)
    assert summary["split"]["rows"] == {"train": 16, "val": 2, "test": 2}
    assert summary["split"]["train_until"] == "2015-01-16"
    assert summary["total_words"] == 60

    meta = M.read(f"{run_root}/features_meta")
    assert (meta.num_users, meta.num_items, meta.seq_len, meta.num_features) == (5, 3, 4, 64)
    assert set(meta.vocab) == {"great", "cheap", "broken", "love", "return"}  # "rare" is below min_count
    assert sorted(meta.vocab.values()) == [2, 3, 4, 5, 6] and meta.vocab["great"] == 2
    for split in S.SPLITS:
        files = M.split_files(f"{run_root}/features", split)
        assert files, split
        # Inside each file the rows are in review_id order (the train job reads them in file order).
        for path in files:
            ids = [r[S.REVIEW_ID] for r in spark.read.parquet(path).select(S.REVIEW_ID).collect()]
            assert ids == sorted(ids), (path, ids)

    feats = io.read_dataset(spark, f"{run_root}/features", "features")
    assert set(S.FEATURES_COLUMNS) == set(feats.columns)
    rows = {r[S.REVIEW_ID]: r for r in feats.collect()}
    assert rows["R00"][S.SEQ] == [meta.vocab["great"], meta.vocab["cheap"], S.SEQ_OOV_ID, S.SEQ_PAD_ID]
    assert rows["R00"][S.SPLIT] == "train" and rows["R15"][S.SPLIT] == "train"
    assert rows["R16"][S.SPLIT] == "val" and rows["R19"][S.SPLIT] == "test"
    # test-time customers and products never seen in training -> the reserved index
    assert rows["R19"][S.USER_IDX] == meta.num_users and rows["R19"][S.ITEM_IDX] == meta.num_items
    assert rows["R03"][S.USER_IDX] < meta.num_users
    assert rows["R03"][S.LABEL] == 3 and rows["R03"][S.LABEL_ONEHOT] == [0.0, 0.0, 0.0, 1.0, 0.0]
    assert rows["R03"][S.TFIDF].size == 64
    with open(f"{run_root}/report/features.json", encoding="utf-8") as fh:
        assert json.load(fh)["vocabulary"]["sequence_vocab_size"] == 5


def test_features_job_rejects_stale_tokens(spark, run_root):
    from reviewrec import io
    from reviewrec.config import load_config
    from reviewrec.features.job import run

    _write_inputs(spark, run_root)
    tokens = (io.read_dataset(spark, io.dataset_path(run_root, "tokens"), "preprocess")
              .filter(F.col(S.REVIEW_ID) != "R05"))
    io.write_parquet_atomic(tokens.localCheckpoint(), io.dataset_path(run_root, "tokens"))
    cfg = load_config([], [f"run.root={run_root}"])
    with pytest.raises(ValueError, match="tokens covers 19 of the 20 reviews"):
        run(spark, cfg)
