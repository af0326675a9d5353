"""Fast unit tests of the model package: id bucketing, shards, epoch order, metrics, meta."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reviewrec.model import contract as C
from reviewrec.model.data import epoch_order, rank_shard, read_files
from reviewrec.model.evaluate import metrics_from_confusion
from reviewrec.model.net import bucket_ids, class_weights, drop_ids, expected_rating


def test_bucket_ids_unseen_go_to_zero_and_known_are_hashed():
    idx = np.array([0, 1, 5, 9, 10, -1, 99])
    b = bucket_ids(idx, known=10, buckets=4)  # known rows -> 1 + idx mod 3
    assert b.tolist() == [1, 2, 3, 1, 0, 0, 0]
    assert bucket_ids(np.arange(5), known=5, buckets=100).tolist() == [1, 2, 3, 4, 5]


def test_drop_ids_rate():
    rng = np.random.RandomState(0)
    b = drop_ids(np.full(10000, 7, np.int32), 0.25, rng)
    assert set(np.unique(b).tolist()) == {0, 7}
    assert abs((b == 0).mean() - 0.25) < 0.02
    assert drop_ids(np.array([3, 4]), 0.0, rng).tolist() == [3, 4]


def test_class_weights_balanced():
    w = class_weights(np.array([10, 30, 0, 20, 40]))
    # n / (k * n_c) with k = 4 present classes
    assert w == pytest.approx({0: 2.5, 1: 100 / 120, 2: 0.0, 3: 1.25, 4: 0.625})


def test_expected_rating():
    p = np.array([[1, 0, 0, 0, 0], [0, 0, 0.5, 0, 0.5], [0.2] * 5])
    assert expected_rating(p).tolist() == pytest.approx([1.0, 4.0, 3.0])


def test_epoch_order_is_a_function_of_seed_epoch_rank():
    a = epoch_order(50, seed=1, epoch=3, rank=0)
    assert sorted(a.tolist()) == list(range(50))
    assert np.array_equal(a, epoch_order(50, seed=1, epoch=3, rank=0))
    assert not np.array_equal(a, epoch_order(50, seed=1, epoch=4, rank=0))
    assert not np.array_equal(a, epoch_order(50, seed=1, epoch=3, rank=1))


def _write_split(tmp_path, n_files: int, rows_per_file: int, seq_len: int = 4) -> list[str]:
    files = []
    k = 0
    for f in range(n_files):
        ids = list(range(k, k + rows_per_file))
        k += rows_per_file
        t = pa.table({
            C.SEQ: pa.array([[i % 7 + 2] * seq_len for i in ids], pa.list_(pa.int32())),
            C.USER_IDX: pa.array(ids, pa.int32()),
            C.ITEM_IDX: pa.array([i % 3 for i in ids], pa.int32()),
            C.LABEL: pa.array([i % 5 for i in ids], pa.int32()),
            "review_id": pa.array([f"R{i}" for i in ids]),
        })
        d = tmp_path / "features" / "split=train"
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"part-{f:05d}.parquet"
        pq.write_table(t, p)
        files.append(str(p))
    return files


def test_rank_shards_cover_all_rows_once(tmp_path):
    files = _write_split(tmp_path, n_files=3, rows_per_file=5)
    assert C.split_files(str(tmp_path / "features"), "train") == files
    for size in (1, 2, 4):  # 4 > 3 files: row striping instead of file sharding
        users = [rank_shard(files, r, size, 4).user.tolist() for r in range(size)]
        flat = sorted(u for part in users for u in part)
        assert flat == list(range(15)), size
        assert all(len(p) > 0 for p in users)
    a = read_files(files[:1], seq_len=6)  # padded to 6 with zeros
    assert a.seq.shape == (5, 6) and a.seq[0].tolist() == [2, 2, 2, 2, 0, 0]
    assert a.label.tolist() == [0, 1, 2, 3, 4]


def test_metrics_from_confusion_match_a_per_row_reference():
    rng = np.random.RandomState(3)
    y = rng.randint(0, 5, 400)
    p = np.where(rng.rand(400) < 0.6, y, rng.randint(0, 5, 400))
    p[p == 2] = 3  # class 2 is never predicted: its precision is 0
    cm = np.zeros((5, 5), np.int64)
    np.add.at(cm, (y, p), 1)
    m = metrics_from_confusion(cm)
    assert m["accuracy"] == pytest.approx((y == p).mean())
    for c in range(5):
        tp = ((y == c) & (p == c)).sum()
        prec = tp / (p == c).sum() if (p == c).sum() else 0.0
        rec = tp / (y == c).sum()
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        row = m["per_class"][c]
        assert (row["precision"], row["recall"], row["f1"], row["support"]) == pytest.approx(
            (prec, rec, f1, (y == c).sum()))
    w = np.bincount(y, minlength=5) / len(y)
    assert m["weighted_f1"] == pytest.approx(sum(m["per_class"][c]["f1"] * w[c] for c in range(5)))
    assert m["macro_f1"] == pytest.approx(np.mean([r["f1"] for r in m["per_class"]]))
    assert m["per_class"][2]["precision"] == 0.0
    assert m["weighted_recall"] == pytest.approx(m["accuracy"])  # always true for weighted recall


def test_load_meta_accepts_sizes_in_a_sibling_file(tmp_path):
    d = tmp_path / "features_meta"
    d.mkdir()
    (d / "vocab.json").write_text(json.dumps({"<pad>": 0, "<oov>": 1, "good": 2, "bad": 3}))
    with pytest.raises(ValueError, match="num_users"):
        C.load_meta(str(d))
    (d / "meta.json").write_text(json.dumps({"n_users": 10, "num_items": 4, "seq_len": 7}))
    m = C.load_meta(str(d))
    assert (m.num_users, m.num_items, m.seq_len, m.vocab_size) == (10, 4, 7, 4)
    (d / "vocab.json").write_text(json.dumps({"vocab": {"<pad>": 0, "<oov>": 1, "x": 2}, "num_users": 3,
                                              "num_items": 2, "seq_len": 5, "vocab_size": 9}))
    m = C.load_meta(str(d))
    assert (m.num_users, m.seq_len, m.vocab_size, m.vocab["x"]) == (3, 5, 9, 2)
