"""Fast unit tests of the model package: id bucketing, shards, epoch order, metrics, meta."""
from __future__ import annotations

import json
import os
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reviewrec.model import contract as C
from reviewrec.model.data import epoch_order, rank_shard, read_files
from reviewrec.model.evaluate import metrics_from_confusion
from reviewrec.model.net import (
    NetParams, bucket_ids, build_ensemble, build_model, class_weights, drop_ids, drop_text, expected_rating,
)


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


def _two_models(n: int, seed: int, agree: float = 0.9):
    """Labels and two models' predictions on the same n rows; b copies a on a share `agree` of
    the rows, so the two are strongly correlated (as two models of the same reviews are)."""
    rng = np.random.RandomState(seed)
    y = rng.choice(5, n, p=[0.25, 0.07, 0.08, 0.15, 0.45])
    a = np.where(rng.rand(n) < 0.78, y, rng.randint(0, 5, n))
    b = np.where(rng.rand(n) < agree, a, np.where(rng.rand(n) < 0.5, y, rng.randint(0, 5, n)))
    joint = np.zeros((5, 5, 5), np.int64)
    np.add.at(joint, (y, a, b), 1)
    return y, a, b, joint


def _acc_f1(y, p):
    cm = np.zeros((5, 5), np.int64)
    np.add.at(cm, (y, p), 1)
    m = metrics_from_confusion(cm)
    return m["accuracy"], m["macro_f1"], m["weighted_f1"]


def test_paired_bootstrap_matches_a_row_bootstrap_and_is_paired():
    """Multinomial draws over the joint cells give the same intervals as resampling the rows
    themselves (reference: rows resampled with numpy, metrics_from_confusion), and the paired
    interval of a difference is much narrower than resampling each model on its own would give."""
    from reviewrec.model.evaluate import paired_bootstrap

    y, a, b, joint = _two_models(2000, 5)
    res = paired_bootstrap(joint, ["a", "b"], "a", reps=3000, seed=1)
    rng = np.random.RandomState(9)
    ref_a, ref_d, unpaired_d = [], [], []
    for _ in range(3000):
        i, j = rng.randint(0, len(y), len(y)), rng.randint(0, len(y), len(y))
        ma, mb, mb_other = _acc_f1(y[i], a[i]), _acc_f1(y[i], b[i]), _acc_f1(y[j], b[j])
        ref_a.append(ma)
        ref_d.append(np.subtract(ma, mb))
        unpaired_d.append(np.subtract(ma, mb_other))
    ref_a, ref_d, unpaired_d = map(np.array, (ref_a, ref_d, unpaired_d))
    for k, key in enumerate(["accuracy", "macro_f1", "weighted_f1"]):
        lo, hi = np.percentile(ref_a[:, k], [2.5, 97.5])
        assert res["models"]["a"][key] == pytest.approx([lo, hi], abs=0.004), key
        lo, hi = np.percentile(ref_d[:, k], [2.5, 97.5])
        d = res["differences"]["b"][key]
        assert d["interval"] == pytest.approx([lo, hi], abs=0.004), key
        assert d["estimate"] == pytest.approx(_acc_f1(y, a)[k] - _acc_f1(y, b)[k])
        width = d["interval"][1] - d["interval"][0]
        assert width < 0.6 * np.subtract(*np.percentile(unpaired_d[:, k], [97.5, 2.5])), key
    assert res["rows"] == 2000 and res["reference"] == "a" and set(res["differences"]) == {"b"}


def test_paired_bootstrap_says_ahead_only_when_the_interval_clears_zero():
    from reviewrec.model.evaluate import paired_bootstrap

    # a is right on 300 more of 20,000 rows than b, and they agree elsewhere: clearly ahead
    y = np.repeat(np.arange(5), 4000)
    a = y.copy()
    b = y.copy()
    b[::20] = (y[::20] + 1) % 5   # b wrong on 1,000 rows
    a[::20][::3] = b[::20][::3]   # a shares 334 of those mistakes
    joint = np.zeros((5, 5, 5), np.int64)
    np.add.at(joint, (y, a, b), 1)
    big = paired_bootstrap(joint, ["a", "b"], "a", reps=500)
    acc = big["differences"]["b"]["accuracy"]
    assert acc["estimate"] == pytest.approx(666 / 20000) and acc["ahead"] and acc["interval"][0] > 0
    assert acc["share_not_ahead"] == 0.0
    # the same 2-point lead on 100 rows (3 rows out of 100 against 1): not shown
    ys = np.zeros(100, int)
    a_s, b_s = ys.copy(), ys.copy()
    b_s[:3] = 1
    a_s[0] = 1
    small = np.zeros((5, 5, 5), np.int64)
    np.add.at(small, (ys, a_s, b_s), 1)
    res = paired_bootstrap(small, ["a", "b"], "a", reps=2000)["differences"]["b"]["accuracy"]
    assert res["estimate"] == pytest.approx(0.02) and not res["ahead"] and res["interval"][0] <= 0
    assert 0.05 < res["share_not_ahead"] < 0.5
    with pytest.raises(ValueError, match="names"):
        paired_bootstrap(joint, ["a"], "a")
    with pytest.raises(ValueError, match="empty"):
        paired_bootstrap(np.zeros((5, 5, 5)), ["a", "b"], "a")


def test_grouped_error_bootstrap_matches_a_row_bootstrap_of_rmse_and_mae():
    """With one row per group the grouped bootstrap is the row bootstrap (reference: rows
    resampled with numpy); with the rows summed into random groups of ~4 it stays close; the
    paired RMSE difference is narrower than the unpaired one, and lower error counts as ahead."""
    from reviewrec.model.evaluate import grouped_error_bootstrap

    rng = np.random.RandomState(4)
    n = 3000
    star = rng.choice(5, n, p=[0.25, 0.07, 0.08, 0.15, 0.45]) + 1
    ea = rng.normal(0, 0.6, n) * (1 + (star <= 2))           # model a's expected-rating errors
    eb = ea + rng.normal(0.05, 0.3, n)                       # b: a's errors, worse and noisier
    errs = np.stack([ea, eb], axis=1)
    ref_r, ref_m, ref_d, unpaired = [], [], [], []
    for _ in range(3000):
        i, j = rng.randint(0, n, n), rng.randint(0, n, n)
        ra, rb = np.sqrt((errs[i] ** 2).mean(axis=0))
        ref_r.append(ra)
        ref_m.append(np.abs(errs[i, 0]).mean())
        ref_d.append(ra - rb)
        unpaired.append(ra - np.sqrt((errs[j, 1] ** 2).mean()))
    want = {"rmse": np.percentile(ref_r, [2.5, 97.5]), "mae": np.percentile(ref_m, [2.5, 97.5]),
            "diff": np.percentile(ref_d, [2.5, 97.5])}
    ones = grouped_error_bootstrap(np.ones(n), errs ** 2, np.abs(errs), ["a", "b"], "a", reps=3000, seed=2)
    assert ones["models"]["a"]["rmse"] == pytest.approx(want["rmse"], abs=0.004)
    assert ones["models"]["a"]["mae"] == pytest.approx(want["mae"], abs=0.004)
    d = ones["differences"]["b"]["rmse"]
    assert d["interval"] == pytest.approx(want["diff"], abs=0.003)
    assert d["estimate"] == pytest.approx(np.sqrt((ea ** 2).mean()) - np.sqrt((eb ** 2).mean()))
    assert d["interval"][1] < 0 and d["ahead"] and d["share_not_ahead"] == 0.0  # a's error is lower
    paired_w = d["interval"][1] - d["interval"][0]
    assert paired_w < 0.5 * np.subtract(*np.percentile(unpaired, [97.5, 2.5]))
    # rows pooled into 750 random groups: per-group sums, about the same intervals
    g = rng.randint(0, 750, n)
    sums = lambda x: np.stack([np.bincount(g, x[:, k], minlength=750) for k in range(2)], axis=1)  # noqa: E731
    grouped = grouped_error_bootstrap(np.bincount(g, minlength=750), sums(errs ** 2), sums(np.abs(errs)),
                                      ["a", "b"], "a", reps=3000, seed=3)
    assert grouped["models"]["a"]["rmse"] == pytest.approx(want["rmse"], abs=0.008)
    assert grouped["differences"]["b"]["rmse"]["interval"] == pytest.approx(want["diff"], abs=0.006)
    with pytest.raises(ValueError, match="must be"):
        grouped_error_bootstrap(np.ones(3), np.ones((3, 1)), np.ones((3, 1)), ["a", "b"], "a")


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


# --------------------------------------------------------------------------- issue 4 additions
def test_drop_text_replaces_a_fraction_of_rows_by_the_empty_sequence():
    rng = np.random.RandomState(1)
    seq = np.arange(2, 2 + 20000 * 3, dtype=np.int32).reshape(20000, 3)
    out = drop_text(seq, 0.3, rng)
    empty = (out == 0).all(axis=1)
    assert abs(empty.mean() - 0.3) < 0.015
    # rows not dropped are untouched, dropped rows are all padding (not partly)
    assert np.array_equal(out[~empty], seq[~empty])
    assert ((out == 0).any(axis=1) == empty).all()
    assert drop_text(seq, 0.0, rng) is seq


def _tiny_net(pooling: str, seq_len: int = 6) -> NetParams:
    return NetParams(vocab_size=30, seq_len=seq_len, embedding_dim=4, lstm_units=3, pooling=pooling,
                     user_buckets=4, item_buckets=4, user_embedding_dim=2, item_embedding_dim=2)


def _pool_model(tf, p: NetParams):
    """The tiny network up to the pooled text vector (before dropout)."""
    m = build_model(p)
    return m, tf.keras.Model(m.inputs, m.get_layer("dropout").input)


def _x(seq):
    seq = np.asarray(seq, np.int32)
    n = seq.shape[0]
    return {"seq": seq, "user": np.ones((n, 1), np.int32), "item": np.ones((n, 1), np.int32)}


def _run(model, x):
    """An eager call (no predict(): tracing a tf.function per tiny model costs seconds)."""
    return model(x, training=False).numpy()


@pytest.mark.parametrize("pooling,width", [("last", 6), ("mean", 6), ("last_max_mean", 18)])
def test_pooling_shapes_ignore_padding_and_empty_sequence_gives_zeros(pooling, width):
    tf = pytest.importorskip("tensorflow")
    tf.keras.utils.set_random_seed(0)
    _, pooled = _pool_model(tf, _tiny_net(pooling))
    x = _x([[5, 7, 9, 0, 0, 0], [0] * 6])
    v = _run(pooled, x)
    assert v.shape == (2, width)  # BiLSTM(3): 6 per pooled vector
    assert np.abs(v[1]).max() == 0.0  # the empty sequence -> zeros from every pooling
    # Padding is masked: the same tokens padded to a longer sequence pool to the same vector.
    _, pooled9 = _pool_model(tf, _tiny_net(pooling, seq_len=9))
    pooled9.set_weights(pooled.get_weights())
    v9 = _run(pooled9, _x([[5, 7, 9] + [0] * 6]))
    np.testing.assert_allclose(v9[0], v[0], atol=1e-6)


def test_masked_max_and_mean_pool_against_numpy():
    tf = pytest.importorskip("tensorflow")
    tf.keras.utils.set_random_seed(1)
    m, pooled = _pool_model(tf, _tiny_net("last_max_mean"))
    seq = np.array([[4, 6, 8, 10, 0, 0]], np.int32)
    # the per-step BiLSTM outputs of the 4 real steps
    steps = _run(tf.keras.Model(m.inputs, m.get_layer("bilstm").output[0]), _x(seq))[0, :4]
    v = _run(pooled, _x(seq))[0]
    # all-negative outputs must still give their max, not the padding's 0
    assert v[6:12] == pytest.approx(steps.max(axis=0), abs=1e-6)
    assert v[12:18] == pytest.approx(steps.mean(axis=0), abs=1e-6)


def test_pooled_model_saves_and_loads_without_custom_objects(tmp_path):
    tf = pytest.importorskip("tensorflow")
    m = build_model(_tiny_net("last_max_mean"))
    x = _x([[3, 4, 0, 0, 0, 0], [0] * 6])
    m.save(tmp_path / "m.keras")
    m2 = tf.keras.models.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(_run(m2, x), _run(m, x), atol=1e-7)


def test_unknown_pooling_is_an_error():
    pytest.importorskip("tensorflow")
    with pytest.raises(ValueError, match="model.pooling = 'median'"):
        build_model(_tiny_net("median"))


def test_word2vec_init_rows_follow_the_vocabulary_ids(spark, tmp_path):
    """Ids that share contexts get close vectors, row i is id i, padding is zero, unseen ids keep
    a small random row; the network takes the matrix only with the right shape."""
    from reviewrec.model.train import init_embedding, word2vec_matrix

    rng = np.random.RandomState(0)
    rows = []
    for _ in range(400):  # ids 2/3 are interchangeable (context 4 5), 6/7 too (context 8 9)
        a = [int(rng.choice([2, 3])), 4, 5] if rng.rand() < 0.5 else [int(rng.choice([6, 7])), 8, 9]
        rows.append((a + [0, 0],))
    df = spark.createDataFrame(rows, f"{C.SEQ} array<int>")
    m, info = word2vec_matrix(spark, df, vocab_size=12, dim=8, window=2, iterations=5, seed=3)
    assert m.shape == (12, 8) and info["words"] == 8  # ids 2..9 (0 = padding is not a word)
    assert np.abs(m[0]).max() == 0.0
    assert 0 < np.abs(m[10:]).max() <= 0.05  # never-seen ids: the uniform init

    def cos(i, j):
        return float(m[i] @ m[j] / np.linalg.norm(m[i]) / np.linalg.norm(m[j]))

    assert cos(2, 3) > cos(2, 7) + 0.2 and cos(6, 7) > cos(6, 3) + 0.2

    pytest.importorskip("tensorflow")
    model = build_model(NetParams(vocab_size=12, seq_len=5, embedding_dim=8, lstm_units=2,
                                  user_buckets=3, item_buckets=3, user_embedding_dim=2, item_embedding_dim=2))
    p = tmp_path / "init.npy"
    np.save(p, m)
    init_embedding(model, str(p))
    np.testing.assert_array_equal(model.get_layer("tok_emb").get_weights()[0], m)
    np.save(p, m[:, :4])
    with pytest.raises(ValueError, match=r"shape \(12, 4\).*\(12, 8\)"):
        init_embedding(model, str(p))


def test_class_weights_and_label_smoothing_change_what_the_network_learns():
    """Balanced class weights raise the predicted share of a rare class; label smoothing makes
    the targets one-hot with mass moved off the true class, so predictions get less confident."""
    tf = pytest.importorskip("tensorflow")
    from reviewrec.model.data import Arrays
    from reviewrec.model.train import _dataset, _loss

    rng = np.random.RandomState(0)
    n = 600
    label = np.where(rng.rand(n) < 0.1, 0, 4).astype(np.int32)  # star 1 is rare
    # a weak, noisy text signal: token 2 leans to star 1, token 3 to star 5
    tok = np.where(rng.rand(n) < 0.6, np.where(label == 0, 2, 3), np.where(label == 0, 3, 2))
    seq = np.zeros((n, 3), np.int32)
    seq[:, 0] = tok
    a = Arrays(seq, np.zeros(n, np.int64), np.zeros(n, np.int64), label)
    ids = np.ones(n, np.int32)
    cw = class_weights(np.bincount(label, minlength=5))
    p = NetParams(vocab_size=5, seq_len=3, embedding_dim=4, lstm_units=2, bidirectional=False, dropout=0.0,
                  user_buckets=2, item_buckets=2, user_embedding_dim=1, item_embedding_dim=1)

    def fit(weights, smoothing):
        tf.keras.utils.set_random_seed(5)
        m = build_model(p)
        m.compile(optimizer=tf.keras.optimizers.legacy.Adam(0.05), loss=_loss(tf, smoothing))
        m.fit(_dataset(tf, a, ids, ids, 100, onehot=smoothing > 0), epochs=6, class_weight=weights, verbose=0)
        return _run(m, {"seq": seq, "user": ids.reshape(-1, 1), "item": ids.reshape(-1, 1)})

    plain, weighted, smoothed = fit(None, 0.0), fit(cw, 0.0), fit(None, 0.2)
    assert (weighted.argmax(1) == 0).mean() > (plain.argmax(1) == 0).mean() + 0.2
    assert smoothed.max(1).mean() < plain.max(1).mean() - 0.02
    y = next(iter(_dataset(tf, a, ids, ids, 4, onehot=True)))[1].numpy()
    assert y.tolist() == np.eye(5)[label[:4]].tolist()


def test_dedup_indexed_slices_sums_duplicate_rows_into_the_same_dense_gradient():
    tf = pytest.importorskip("tensorflow")
    from reviewrec.model.train import dedup_indexed_slices

    rng = np.random.RandomState(0)
    idx = np.array([5, 0, 5, 2, 0, 0, 9, 5], np.int32)  # padding id 0 and token 5 repeat
    vals = rng.randn(len(idx), 3).astype(np.float32)
    g = tf.IndexedSlices(tf.constant(vals), tf.constant(idx), tf.constant([10, 3]))
    d = dedup_indexed_slices(tf, g)
    assert isinstance(d, tf.IndexedSlices)
    assert sorted(d.indices.numpy().tolist()) == [0, 2, 5, 9]  # one row per distinct index
    np.testing.assert_allclose(tf.convert_to_tensor(d).numpy(), tf.convert_to_tensor(g).numpy(), atol=1e-6)
    row5 = d.values.numpy()[d.indices.numpy().tolist().index(5)]
    np.testing.assert_allclose(row5, vals[[0, 2, 7]].sum(axis=0), atol=1e-6)
    dense = tf.constant(vals)
    assert dedup_indexed_slices(tf, dense) is dense and dedup_indexed_slices(tf, None) is None


def test_pin_to_cpu_pins_every_thread_of_the_process_or_refuses_when_cpus_are_short():
    """In a child process (pinning this one would slow the rest of the suite)."""
    import subprocess
    import sys

    code = r"""
import json, os, threading, time
from reviewrec.model.train import pin_to_cpu
ev = threading.Event()
t = threading.Thread(target=ev.wait); t.start()   # a thread that exists before pinning
cpus = sorted(os.sched_getaffinity(0))
out = {"cpus": cpus, "refused": pin_to_cpu(0, len(cpus) + 1), "after_refusal": sorted(os.sched_getaffinity(0))}
out["pinned"] = pin_to_cpu(len(cpus) - 1, len(cpus))
out["threads"] = sorted({tuple(sorted(os.sched_getaffinity(int(tid)))) for tid in os.listdir("/proc/self/task")})
ev.set(); t.join()
print(json.dumps(out))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["refused"] is None and out["after_refusal"] == out["cpus"]
    last = out["cpus"][-1]
    assert out["pinned"] == [last]
    assert out["threads"] == [[last]]  # the main thread and the earlier thread alike


def test_training_datasets_run_without_the_tf_data_autotuner():
    """The autotuner's model thread held every model.fit/evaluate for up to ~5 s at its end."""
    tf = pytest.importorskip("tensorflow")
    from reviewrec.model.data import Arrays
    from reviewrec.model.train import _dataset

    a = Arrays(np.ones((5, 3), np.int32), np.zeros(5, np.int64), np.zeros(5, np.int64), np.arange(5, dtype=np.int32))
    ds = _dataset(tf, a, np.ones(5, np.int32), np.ones(5, np.int32), 2)
    assert ds.options().autotune.enabled is False
    assert [b[1].numpy().tolist() for b in ds] == [[0, 1], [2, 3], [4]]  # same batches as before


def test_rating_loss_adds_the_weighted_squared_error_of_the_expected_rating():
    """Per review: cross-entropy + w * (sum_s p(s) s - star)^2, for integer and (label-smoothed)
    one-hot targets; w = 0 is the plain cross-entropy, w < 0 an error."""
    tf = pytest.importorskip("tensorflow")
    from reviewrec.model.train import _loss

    p = np.array([[0.7, 0.1, 0.1, 0.05, 0.05], [0.05, 0.05, 0.1, 0.3, 0.5], [0.2, 0.2, 0.2, 0.2, 0.2]], np.float32)
    y = np.array([0, 4, 2], np.int32)
    ce = -np.log(p[np.arange(3), y])
    se = (p @ np.arange(1, 6) - (y + 1)) ** 2
    w = 0.4
    got = _loss(tf, 0.0, w)(tf.constant(y.reshape(-1, 1)), tf.constant(p)).numpy()
    np.testing.assert_allclose(got, ce + w * se, rtol=1e-5)
    # label smoothing: the cross-entropy against smoothed targets, the star from the one-hot
    onehot = np.eye(5, dtype=np.float32)[y]
    smooth = onehot * 0.9 + 0.1 / 5
    ce_s = -(smooth * np.log(p)).sum(axis=1)
    got_s = _loss(tf, 0.1, w)(tf.constant(onehot), tf.constant(p)).numpy()
    np.testing.assert_allclose(got_s, ce_s + w * se, rtol=1e-5)
    assert _loss(tf, 0.0, 0.0) == "sparse_categorical_crossentropy"
    with pytest.raises(ValueError, match="rating_loss_weight = -0.1"):
        _loss(tf, 0.0, -0.1)


def test_epoch_learning_rate_scales_by_workers_and_decays_per_epoch():
    from reviewrec.model.train import TrainSpec, epoch_learning_rate

    spec = TrainSpec(features_dir="x", net=_tiny_net("last"), num_users=1, num_items=1, learning_rate=0.002,
                     lr_decay=0.5)
    assert [epoch_learning_rate(spec, 2, e) for e in range(3)] == pytest.approx([0.004, 0.002, 0.001])
    assert epoch_learning_rate(replace(spec, lr_decay=1.0), 1, 5) == pytest.approx(0.002)
    with pytest.raises(ValueError, match="lr_decay = 1.5"):
        epoch_learning_rate(replace(spec, lr_decay=1.5), 1, 0)


def test_cosine_schedule_decays_every_step_from_the_scaled_rate_to_zero_over_the_epochs():
    from reviewrec.config import load_config
    from reviewrec.model.train import TrainSpec, spec_from_config, step_learning_rate

    spec = TrainSpec(features_dir="x", net=_tiny_net("last"), num_users=1, num_items=1, learning_rate=0.002,
                     epochs=2, lr_schedule="cosine")
    rates = [step_learning_rate(spec, 2, e, b, 4) for e in range(2) for b in range(4)]
    # 0.004 x (1 + cos(pi t / 8)) / 2 for t = 0..7: strictly falling, across the epoch boundary too
    assert rates == pytest.approx([0.002 * (1 + np.cos(np.pi * t / 8)) for t in range(8)])
    assert rates[0] == pytest.approx(0.004) and rates[4] == pytest.approx(0.002) and rates[-1] < 0.0002
    assert all(a > b for a, b in zip(rates, rates[1:]))
    # a run resumed at epoch 2 of a 3-epoch schedule takes up where the cosine was
    three = replace(spec, epochs=3)
    assert step_learning_rate(three, 1, 2, 0, 10) == pytest.approx(0.002 * 0.5 * (1 + np.cos(np.pi * 20 / 30)))
    # "epoch" (the default) keeps the per-epoch rate whatever the step
    flat = replace(spec, lr_schedule="epoch", lr_decay=0.5)
    assert [step_learning_rate(flat, 2, 1, b, 4) for b in range(4)] == pytest.approx([0.002] * 4)
    # the schedule's length shapes the trajectory, so with cosine `epochs` is in the train hash
    assert spec.train_hash() != three.train_hash()
    assert replace(flat, epochs=3).train_hash() == flat.train_hash()
    meta = C.FeaturesMeta(vocab={}, num_users=3, num_items=2, seq_len=6, num_features=16, vocab_size=10)
    with pytest.raises(ValueError, match="lr_schedule = 'linear'"):
        spec_from_config(load_config((), ["model.lr_schedule=linear"]), meta)
    with pytest.raises(ValueError, match="lr_decay = 0.5 must then be 1.0"):
        spec_from_config(load_config((), ["model.lr_schedule=cosine", "model.lr_decay=0.5"]), meta)
    assert spec_from_config(load_config((), ["model.lr_schedule=cosine"]), meta).lr_schedule == "cosine"


# TrainSpec(features_dir="/f", net=_tiny_net("last"), num_users=10, num_items=5).train_hash() as
# computed by the code of commit d233542, before the four options below existed.
PRE_OPTIONS_HASH = "ecdf4ead3037"


def test_new_training_options_at_their_defaults_keep_the_train_hash():
    """Checkpoints of runs made before embedding_dropout / hidden_units / ngram_buckets /
    rating_loss_weight / lr_decay existed stay resumable: at the defaults the hash is the one those runs computed
    (value from the code of commit d233542), and each option changes it when set."""
    from reviewrec.model.train import TrainSpec

    spec = TrainSpec(features_dir="/f", net=_tiny_net("last"), num_users=10, num_items=5)
    assert spec.train_hash() == PRE_OPTIONS_HASH
    changed = {replace(spec, rating_loss_weight=0.3).train_hash(), replace(spec, lr_decay=0.7).train_hash(),
               replace(spec, net=replace(spec.net, embedding_dropout=0.2)).train_hash(),
               replace(spec, net=replace(spec.net, hidden_units=8)).train_hash(),
               replace(spec, net=replace(spec.net, ngram_buckets=64)).train_hash(),
               replace(spec, net=replace(spec.net, ngram_order=3)).train_hash(),
               replace(spec, lr_schedule="cosine").train_hash()}
    assert len(changed) == 7 and PRE_OPTIONS_HASH not in changed
    # the gradient grouping changes how the ranks exchange the same sums, not the trajectory
    assert replace(spec, group_grads=True).train_hash() == PRE_OPTIONS_HASH


@pytest.mark.parametrize("pooling", ["last", "last_max_mean"])
def test_embedding_dropout_and_hidden_layer_build_save_and_keep_the_empty_sequence(tmp_path, pooling):
    """The optional layers are where they should be, act only in training, survive save/load
    without custom objects, and the padding mask still reaches the LSTM (padding-invariant)."""
    tf = pytest.importorskip("tensorflow")
    tf.keras.utils.set_random_seed(2)
    p = replace(_tiny_net(pooling), embedding_dropout=0.5, hidden_units=7)
    m = build_model(p)
    assert m.get_layer("emb_dropout").rate == 0.5
    assert m.get_layer("hidden").units == 7 and m.get_layer("stars").input.shape[-1] == 7
    x = _x([[3, 4, 5, 0, 0, 0], [0] * 6])
    a, b = _run(m, x), _run(m, x)
    np.testing.assert_array_equal(a, b)  # dropout is off at inference
    trained_mode = m(x, training=True).numpy()
    assert not np.allclose(trained_mode, a)
    m.save(tmp_path / "m.keras")
    m2 = tf.keras.models.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(_run(m2, x), a, atol=1e-7)
    m9 = build_model(replace(p, seq_len=9))
    m9.set_weights(m.get_weights())
    np.testing.assert_allclose(_run(m9, _x([[3, 4, 5] + [0] * 6]))[0], a[0], atol=1e-6)
    assert "emb_dropout" not in [layer.name for layer in build_model(_tiny_net(pooling)).layers]


def _ngram_ref(seq: np.ndarray, n: int, vocab: int, buckets: int) -> np.ndarray:
    """Reference buckets of every run of n adjacent tokens (0 where one of them is padding), in
    Python integers (no overflow): pairs 1 + (a V + b) mod (B - 1); triples reduce the pair first,
    1 + (((a V + b) mod (B - 1)) V + c + 7919) mod (B - 1)."""
    m = buckets - 1
    out = np.zeros((seq.shape[0], seq.shape[1] - n + 1), np.int64)
    for r in range(seq.shape[0]):
        for t in range(out.shape[1]):
            w = [int(v) for v in seq[r, t:t + n]]
            if all(w):
                h = w[0] * vocab + w[1]
                out[r, t] = 1 + (h % m if n == 2 else ((h % m) * vocab + w[2] + 7919) % m)
    return out


@pytest.mark.parametrize("n", [2, 3])
def test_ngram_ids_hash_adjacent_real_tokens_and_zero_runs_touching_padding(n):
    tf = pytest.importorskip("tensorflow")
    from reviewrec.model.net import bigram_ids, trigram_ids

    fn = bigram_ids if n == 2 else trigram_ids
    seq = np.array([[3, 4, 5, 0], [0, 0, 0, 0], [5, 5, 6, 29], [4, 3, 0, 9]], dtype=np.int32)
    got = fn(tf, tf.constant(seq), 30, 11).numpy()
    np.testing.assert_array_equal(got, _ngram_ref(seq, n, 30, 11))
    assert got.dtype == np.int64 and not got[1].any() and (got[2] > 0).all()
    if n == 2:
        assert got[0, 0] != got[3, 0]  # (3, 4) and (4, 3) are different pairs
    else:
        assert got[0, 0] > 0 and not got[3].any()  # every triple of row 3 touches the padding
    # ids near the int32 limit: no overflow (the pair's product fits int64, the triple reduces it first)
    v = 2_000_000_000
    big = np.array([[v - 1, v - 2, v - 3]], dtype=np.int32)
    np.testing.assert_array_equal(fn(tf, tf.constant(big), v, 1 << 20).numpy(), _ngram_ref(big, n, v, 1 << 20))


def test_trigram_bag_adds_the_triples_to_the_pairs_mean_and_saves(tmp_path):
    """ngram_order 3: a review's triples join its pairs in the bag (the same table), so moving
    only the triple's bucket changes an order-3 prediction and not an order-2 one."""
    tf = pytest.importorskip("tensorflow")
    from reviewrec.model.net import bigram_ids, trigram_ids

    tf.keras.utils.set_random_seed(4)
    p2 = replace(_tiny_net("last_max_mean"), ngram_buckets=13, ngram_dim=3)
    p3 = replace(p2, ngram_order=3)
    m2, m3 = build_model(p2), build_model(p3)
    m3.set_weights(m2.get_weights())  # no new weights: the same table serves both orders
    x = _x([[3, 4, 5, 0, 0, 0], [0] * 6])
    tri = int(trigram_ids(tf, tf.constant([[3, 4, 5]]), p3.vocab_size, 13).numpy()[0, 0])
    assert tri not in bigram_ids(tf, tf.constant([[3, 4, 5]]), p3.vocab_size, 13).numpy()[0]
    a2, a3 = _run(m2, x), _run(m3, x)
    assert not np.allclose(a2[0], a3[0], atol=1e-4)  # the triple is in the order-3 mean
    for m in (m2, m3):
        emb = m.get_layer("bigram_emb")
        w = emb.get_weights()[0]
        w[tri] += 5.0
        emb.set_weights([w])
    np.testing.assert_allclose(_run(m2, x), a2, atol=1e-7)
    b3 = _run(m3, x)
    assert not np.allclose(a3[0], b3[0], atol=1e-3)
    np.testing.assert_allclose(a3[1], b3[1], atol=1e-7)  # the empty sequence has no triples
    m3.save(tmp_path / "m3.keras")
    np.testing.assert_allclose(_run(tf.keras.models.load_model(tmp_path / "m3.keras", compile=False), x), b3,
                               atol=1e-7)
    with pytest.raises(ValueError, match="ngram_order = 4"):
        build_model(replace(p3, ngram_order=4))


@pytest.mark.parametrize("pooling", ["last", "last_max_mean"])
def test_ngram_bag_feeds_the_softmax_only_from_real_tokens_and_saves(tmp_path, pooling):
    """The bag changes the prediction of a review with text, not that of the empty sequence (its
    mean over no steps is 0); it is padding-invariant and loads without custom objects."""
    tf = pytest.importorskip("tensorflow")
    tf.keras.utils.set_random_seed(3)
    p = replace(_tiny_net(pooling), ngram_buckets=13, ngram_dim=3)
    m = build_model(p)
    assert m.get_layer("bigram_emb").input_dim == 13 and m.get_layer("bigram_emb").output_dim == 3
    assert m.get_layer("bag_concat").output.shape[-1] == 3 + p.embedding_dim
    x = _x([[3, 4, 5, 0, 0, 0], [0] * 6])
    a = _run(m, x)
    emb = m.get_layer("bigram_emb")
    emb.set_weights([emb.get_weights()[0] + 5.0])
    b = _run(m, x)
    assert not np.allclose(a[0], b[0], atol=1e-3)  # the bigram bag reaches the softmax
    np.testing.assert_allclose(a[1], b[1], atol=1e-7)  # ... but not for the empty sequence
    m.save(tmp_path / "m.keras")
    m2 = tf.keras.models.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(_run(m2, x), b, atol=1e-7)
    m9 = build_model(replace(p, seq_len=9))
    m9.set_weights(m.get_weights())
    np.testing.assert_allclose(_run(m9, _x([[3, 4, 5] + [0] * 6]))[0], b[0], atol=1e-6)
    with pytest.raises(ValueError, match="ngram_buckets = 1"):
        build_model(replace(p, ngram_buckets=1))


def test_gradient_groups_keep_one_kind_and_index_dtype_per_group():
    """group_grads: dense variables in one group, the embeddings' (sparse) ones grouped by the
    dtype of their ids (the n-gram bag's are int64), every trainable variable exactly once;
    with sparse_as_dense a single group."""
    tf = pytest.importorskip("tensorflow")
    from reviewrec.model.net import build_model
    from reviewrec.model.train import gradient_groups

    m = build_model(replace(_tiny_net("last_max_mean"), ngram_buckets=13, ngram_dim=3))
    groups = gradient_groups(tf, m, sparse_as_dense=False)
    names = [sorted(v.name.split("/")[0] for v in g) for g in groups]
    assert names[1:] == [["item_emb", "tok_emb", "user_emb"], ["bigram_emb"]]
    assert not any("emb" in n for n in names[0])
    assert sorted(id(v) for g in groups for v in g) == sorted(id(v) for v in m.trainable_variables)
    assert [len(g) for g in gradient_groups(tf, m, sparse_as_dense=True)] == [len(m.trainable_variables)]


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _draw(rng, probs: np.ndarray) -> np.ndarray:
    return (rng.random_sample((len(probs), 1)) > np.cumsum(probs, axis=1)).sum(axis=1)


def test_fit_temperature_recovers_the_temperature_the_labels_were_drawn_at():
    """Labels drawn from softmax(z / 2) while the model says softmax(z): the fitted T is ~2 and
    lowers the cross-entropy; labels drawn from the model's own probabilities give T ~1; the
    per-T sums of two shards add up to those of the whole (what the ranks allreduce)."""
    from reviewrec.model.train import TEMPERATURES, fit_temperature, temperature_nll_sums

    rng = np.random.RandomState(3)
    z = rng.normal(size=(6000, 5)) * 3
    p = _softmax(z)
    hot = _draw(rng, _softmax(z / 2))
    fit = fit_temperature(temperature_nll_sums(p, hot), len(hot))
    assert 1.8 <= fit["temperature"] <= 2.2
    assert fit["val_loss_calibrated"] < fit["val_loss_t1"] - 0.05
    own = fit_temperature(temperature_nll_sums(p, _draw(rng, p)), 6000)
    assert 0.9 <= own["temperature"] <= 1.1
    a, b = temperature_nll_sums(p[:2500], hot[:2500]), temperature_nll_sums(p[2500:], hot[2500:])
    np.testing.assert_allclose(a + b, temperature_nll_sums(p, hot), rtol=1e-12)
    assert len(temperature_nll_sums(p[:0], hot[:0])) == len(TEMPERATURES)


def test_temperature_in_the_softmax_layer_equals_softmax_of_logits_over_t():
    """What the train job bakes into the saved model: the stars layer's kernel and bias / T give
    p ~ p_old^(1/T) normalised, i.e. softmax(logits / T); the argmax does not move."""
    tf = pytest.importorskip("tensorflow")
    from reviewrec.model.train import apply_temperature

    tf.keras.utils.set_random_seed(5)
    m = build_model(_tiny_net("last_max_mean"))
    x = {"seq": np.random.RandomState(0).randint(0, 30, (64, 6)).astype(np.int32),
         "user": np.arange(64).reshape(-1, 1) % 4, "item": np.arange(64).reshape(-1, 1) % 3}
    before = m.predict(x, verbose=0).astype(np.float64)
    apply_temperature(m, 1.7)
    after = m.predict(x, verbose=0)
    want = before ** (1 / 1.7)
    want /= want.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(after, want, rtol=1e-4, atol=1e-6)
    assert (after.argmax(1) == before.argmax(1)).all()


def test_ensemble_outputs_the_mean_of_its_members_and_saves_as_one_model(tmp_path):
    """build_ensemble / ensemble_model_bytes: members with different weights (the n-gram bag and
    masked pooling included), output = mean of the members' star distributions, member j's
    weights in the nested model member_j, loadable without custom objects."""
    tf = pytest.importorskip("tensorflow")
    from reviewrec.model.train import ensemble_model_bytes

    p = replace(_tiny_net("last_max_mean"), ngram_buckets=11, ngram_dim=3)
    members = []
    for seed in (0, 1, 2):
        tf.keras.utils.set_random_seed(seed)
        members.append(build_model(p))
    x = _x([[3, 4, 5, 0, 0, 0], [7, 8, 0, 0, 0, 0], [0] * 6])
    outs = np.stack([_run(m, x) for m in members])
    assert np.abs(outs[0] - outs[1]).max() > 1e-3  # the members differ
    blobs = []
    for j, m in enumerate(members):
        m.save(tmp_path / f"m{j}.keras")
        blobs.append((tmp_path / f"m{j}.keras").read_bytes())
    (tmp_path / "ens.keras").write_bytes(ensemble_model_bytes(p, blobs))
    ens = tf.keras.models.load_model(tmp_path / "ens.keras", compile=False)
    got = _run(ens, x)
    np.testing.assert_allclose(got, outs.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)
    for j, m in enumerate(members, start=1):
        np.testing.assert_allclose(_run(ens.get_layer(f"member_{j}"), x), outs[j - 1], atol=1e-6)
    assert [i.name for i in ens.inputs] == ["seq", "user", "item"]
    with pytest.raises(ValueError, match=">= 2 members"):
        build_ensemble(p, [members[0].get_weights()])


def test_rank_env_sets_the_cycle_time_keeps_the_callers_settings_and_rejects_non_positive(monkeypatch):
    from reviewrec.model.train import rank_env

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    monkeypatch.setenv("HOROVOD_CYCLE_TIME", "3")
    monkeypatch.setenv("SOME_USER_VAR", "x")
    env = rank_env(7.5)
    assert env["HOROVOD_CYCLE_TIME"] == "7.5"
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "0" and env["SOME_USER_VAR"] == "x"
    assert rank_env(None)["HOROVOD_CYCLE_TIME"] == "3"  # None leaves the environment's
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    monkeypatch.delenv("HOROVOD_CYCLE_TIME")
    env = rank_env(None)
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "2" and "HOROVOD_CYCLE_TIME" not in env
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ  # a copy: the caller's environment is untouched
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="horovod_cycle_time_ms"):
            rank_env(bad)
