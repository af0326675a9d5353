"""Fast unit tests of the model package: id bucketing, shards, epoch order, network, metrics, settings."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reviewrec import schema as S
from reviewrec.config import load_config
from reviewrec.features import meta as M
from reviewrec.model.data import epoch_order, rank_shard, read_files
from reviewrec.model.metrics import metrics_from_confusion
from reviewrec.model.net import (
    NetParams, bucket_ids, build_ensemble, build_model, class_weights, drop_ids, drop_text, expected_rating,
)
from reviewrec.model.spec import EvaluateParams, LaunchParams, TrainSpec, net_from_config, spec_from_config

META = M.FeaturesMeta(vocab={"good": 2, "bad": 3}, vocab_size=4, num_users=10, num_items=5, seq_len=6,
                      num_features=16)


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
            S.SEQ: pa.array([[i % 7 + 2] * seq_len for i in ids], pa.list_(pa.int32())),
            S.USER_IDX: pa.array(ids, pa.int32()),
            S.ITEM_IDX: pa.array([i % 3 for i in ids], pa.int32()),
            S.LABEL: pa.array([i % 5 for i in ids], pa.int32()),
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
    # The split's files are those of the current version in the table's log, not what lies in
    # the directory: version 0 also had `replaced`, version 1 removed it, `uncommitted` never made it.
    table = tmp_path / "features"
    for extra in ("part-replaced.parquet", "part-uncommitted.parquet"):
        shutil.copy(files[0], table / "split=train" / extra)

    def action(kind: str, name: str) -> str:
        return json.dumps({kind: {"path": f"split=train/{name}", "dataChange": True}}) + "\n"

    (table / "_delta_log").mkdir()
    (table / "_delta_log" / f"{0:020d}.json").write_text(
        "".join(action("add", os.path.basename(f)) for f in files + ["part-replaced.parquet"]))
    (table / "_delta_log" / f"{1:020d}.json").write_text(action("remove", "part-replaced.parquet"))
    assert M.split_files(str(table), "train") == files
    for size in (1, 2, 4):  # 4 > 3 files: row striping instead of file sharding
        users = [rank_shard(files, r, size, 4).user.tolist() for r in range(size)]
        flat = sorted(u for part in users for u in part)
        assert flat == list(range(15)), size
        assert all(len(p) > 0 for p in users)
    a = read_files(files[:1], seq_len=6)  # padded to 6 with zeros
    assert a.seq.shape == (5, 6) and a.seq[0].tolist() == [2, 2, 2, 2, 0, 0]
    assert a.label.tolist() == [0, 1, 2, 3, 4]


@pytest.mark.spark
def test_staged_files_give_every_rank_the_shard_it_reads_from_the_table(spark, tmp_path, monkeypatch):
    """The driver's staging of a remote features table (read through Spark, written locally,
    shipped with addFile) gives each rank, for any number of ranks, the rows in the order it
    reads from the table's own files, from the Spark files directory, not the driver's."""
    from pyspark import SparkFiles
    from pyspark.sql import functions as F

    from reviewrec import io
    from reviewrec.model import staging
    from reviewrec.model.data import TRAIN_COLUMNS

    rng = np.random.RandomState(5)
    rows = [([int(x) for x in rng.randint(2, 50, size=int(rng.randint(1, 5)))], int(rng.randint(0, 40)),
             int(rng.randint(0, 9)), int(rng.randint(0, 5)), f"R{k:04d}", "train" if k % 4 else "val", k % 3)
            for k in range(700)]
    df = spark.createDataFrame(rows, "seq array<int>, user_idx int, item_idx int, label int, review_id string, "
                                     "split string, shard int")
    # Rows in no sorted order inside each file: a staging that reorders them fails below.
    table = str(tmp_path / "features")
    io.write_dataset(df.repartitionByRange(3, "shard").sortWithinPartitions(F.rand(3)).drop("shard"), table,
                     partition_by=["split"])
    local = {s: io.table_files(spark, table, ("split", s)) for s in ("train", "val")}
    assert len(local["train"]) == 3 and local["val"]
    ids = pq.read_table(local["train"][0], columns=["review_id"]).column(0).to_pylist()
    assert ids != sorted(ids) and ids != sorted(ids, reverse=True)
    monkeypatch.setattr(staging, "BATCH_ROWS", 64)  # several batches per file
    d = os.path.join(staging.driver_dir(spark), f"staged-{tmp_path.name}")
    os.makedirs(d)
    staged = staging.stage_splits(spark, {s: tuple("file://" + f for f in fs) for s, fs in local.items()}, d)
    assert sorted(os.listdir(d)) == sorted(n for _, names in staged.files for n in names)
    assert staged.rows == 700 and staged.bytes > 0
    # The driver keeps what it shipped while the application runs: the next tasks (whose executor
    # fetches every added file first) and later jobs of the same application still run.
    assert os.path.dirname(d) == staging.driver_dir(spark)
    assert spark.sparkContext.parallelize(range(8), 4).map(lambda x: x * x).sum() == 140
    spec = replace(spec_from_config(load_config([]), META), files=staged.files, rank_dir=staging.rank_dir(spark))
    for split, files in local.items():
        shipped = spec.split_files(split)
        assert len(shipped) == len(files)
        assert all(os.path.dirname(p) == SparkFiles.getRootDirectory() and os.path.isfile(p) for p in shipped)
        for a, b in zip(shipped, files, strict=True):
            got, want = pq.read_table(a), pq.read_table(b, columns=list(TRAIN_COLUMNS))
            assert got.column_names == list(TRAIN_COLUMNS)
            assert got.to_pylist() == want.to_pylist()
        for size in (1, 2, 3, 4):  # 4 > 3 files: every rank takes every 4th row
            for rank in range(size):
                x, y = rank_shard(shipped, rank, size, 6), rank_shard(files, rank, size, 6)
                for f in ("seq", "user", "item", "label"):
                    np.testing.assert_array_equal(getattr(x, f), getattr(y, f))


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


def _net(**kw) -> NetParams:
    """base.yaml's network, with `kw` changed."""
    return replace(net_from_config(load_config([]), META), **kw)


def _tiny_net(pooling: str, seq_len: int = 6) -> NetParams:
    return _net(vocab_size=30, seq_len=seq_len, embedding_dim=4, lstm_units=3, pooling=pooling,
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


def test_class_weights_and_label_smoothing_change_what_the_network_learns():
    """Balanced class weights raise the predicted share of a rare class; label smoothing makes
    the targets one-hot with mass moved off the true class, so predictions get less confident."""
    tf = pytest.importorskip("tensorflow")
    from reviewrec.model.data import Arrays
    from reviewrec.model.rank import dataset, loss

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
    p = _net(vocab_size=5, seq_len=3, embedding_dim=4, lstm_units=2, bidirectional=False, dropout=0.0,
             user_buckets=2, item_buckets=2, user_embedding_dim=1, item_embedding_dim=1)

    def fit(weights, smoothing):
        tf.keras.utils.set_random_seed(5)
        m = build_model(p)
        m.compile(optimizer=tf.keras.optimizers.legacy.Adam(0.05), loss=loss(tf, smoothing))
        m.fit(dataset(tf, a, ids, ids, 100, onehot=smoothing > 0), epochs=6, class_weight=weights, verbose=0)
        return _run(m, {"seq": seq, "user": ids.reshape(-1, 1), "item": ids.reshape(-1, 1)})

    plain, weighted, smoothed = fit(None, 0.0), fit(cw, 0.0), fit(None, 0.2)
    assert (weighted.argmax(1) == 0).mean() > (plain.argmax(1) == 0).mean() + 0.2
    assert smoothed.max(1).mean() < plain.max(1).mean() - 0.02
    y = next(iter(dataset(tf, a, ids, ids, 4, onehot=True)))[1].numpy()
    assert y.tolist() == np.eye(5)[label[:4]].tolist()


def test_training_datasets_run_without_the_tf_data_autotuner():
    """The autotuner's model thread held every model.fit/evaluate for up to ~5 s at its end."""
    tf = pytest.importorskip("tensorflow")
    from reviewrec.model.data import Arrays
    from reviewrec.model.rank import dataset

    a = Arrays(np.ones((5, 3), np.int32), np.zeros(5, np.int64), np.zeros(5, np.int64), np.arange(5, dtype=np.int32))
    ds = dataset(tf, a, np.ones(5, np.int32), np.ones(5, np.int32), 2, onehot=False)
    assert ds.options().autotune.enabled is False
    assert [b[1].numpy().tolist() for b in ds] == [[0, 1], [2, 3], [4]]  # same batches as before


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


def _bigram_ref(seq: np.ndarray, vocab: int, buckets: int) -> np.ndarray:
    """Reference buckets 1 + (a V + b) mod (B - 1) of every adjacent pair (0 where one of them is
    padding), in Python integers (no overflow)."""
    out = np.zeros((seq.shape[0], seq.shape[1] - 1), np.int64)
    for r in range(seq.shape[0]):
        for t in range(out.shape[1]):
            a, b = int(seq[r, t]), int(seq[r, t + 1])
            if a and b:
                out[r, t] = 1 + (a * vocab + b) % (buckets - 1)
    return out


def test_bigram_ids_hash_adjacent_real_tokens_and_zero_pairs_touching_padding():
    tf = pytest.importorskip("tensorflow")
    from reviewrec.model.net import bigram_ids

    seq = np.array([[3, 4, 5, 0], [0, 0, 0, 0], [5, 5, 6, 29], [4, 3, 0, 9]], dtype=np.int32)
    got = bigram_ids(tf, tf.constant(seq), 30, 11).numpy()
    np.testing.assert_array_equal(got, _bigram_ref(seq, 30, 11))
    assert got.dtype == np.int64 and not got[1].any() and (got[2] > 0).all()
    assert got[0, 0] != got[3, 0]  # (3, 4) and (4, 3) are different pairs
    # ids near the int32 limit: no overflow (the pair's product fits int64)
    v = 2_000_000_000
    big = np.array([[v - 1, v - 2, v - 3]], dtype=np.int32)
    np.testing.assert_array_equal(bigram_ids(tf, tf.constant(big), v, 1 << 20).numpy(), _bigram_ref(big, v, 1 << 20))


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
    dtype of their ids (the n-gram bag's are int64), every trainable variable exactly once."""
    tf = pytest.importorskip("tensorflow")
    from reviewrec.model.net import build_model
    from reviewrec.model.exchange import gradient_groups

    m = build_model(replace(_tiny_net("last_max_mean"), ngram_buckets=13, ngram_dim=3))
    groups = gradient_groups(tf, m)
    names = [sorted(v.name.split("/")[0] for v in g) for g in groups]
    assert names[1:] == [["item_emb", "tok_emb", "user_emb"], ["bigram_emb"]]
    assert not any("emb" in n for n in names[0])
    assert sorted(id(v) for g in groups for v in g) == sorted(id(v) for v in m.trainable_variables)


def test_ensemble_outputs_the_mean_of_its_members_and_saves_as_one_model(tmp_path):
    """build_ensemble / ensemble_model_bytes: members with different weights (the n-gram bag and
    masked pooling included), output = mean of the members' star distributions, member j's
    weights in the nested model member_j, loadable without custom objects."""
    tf = pytest.importorskip("tensorflow")
    from reviewrec.model.ensemble import ensemble_model_bytes

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
    for j in range(1, len(members) + 1):
        np.testing.assert_allclose(_run(ens.get_layer(f"member_{j}"), x), outs[j - 1], atol=1e-6)
    assert [i.name for i in ens.inputs] == ["seq", "user", "item"]
    with pytest.raises(ValueError, match=">= 2 members"):
        build_ensemble(p, [members[0].get_weights()])


# --------------------------------------------------------------------------- settings
def test_features_meta_round_trips_through_vocab_json(tmp_path):
    d = str(tmp_path / "features_meta")
    M.write(None, d, META)
    assert M.read(d) == META
    assert M.read("file://" + d) == META
    with pytest.raises(FileNotFoundError, match="features job"):
        M.read(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="s3://bucket/features_meta/vocab.json: a remote file system is read "
                                         "through a SparkSession"):
        M.read("s3://bucket/features_meta")


def test_stage_settings_come_from_the_config_and_nothing_else():
    """Every `model:` key of base.yaml reaches a stage's settings (TrainSpec, NetParams,
    LaunchParams, EvaluateParams) with its value, and no settings class has defaults of its own:
    the config is the one place where a default lives."""
    from dataclasses import MISSING, fields

    from reviewrec.features.job import FeaturesParams

    for cls in (TrainSpec, NetParams, LaunchParams, EvaluateParams, FeaturesParams):
        assert all(f.default is MISSING and f.default_factory is MISSING for f in fields(cls)), cls
    cfg = load_config([])
    m = cfg["model"]
    spec, net = spec_from_config(cfg, META), net_from_config(cfg, META)
    assert spec.net == net
    launch, ev = LaunchParams.from_config(cfg), EvaluateParams.from_config(cfg)
    renamed = {"early_stopping_patience": "patience", "class_weights": "use_class_weights"}
    got = {**{k: v for k, v in vars(net).items()}, **vars(spec), **vars(launch), **vars(ev)}
    got = {k: list(v) if isinstance(v, tuple) else v for k, v in got.items()}
    for key in m:
        name = renamed.get(key, key)
        if key == "checkpoint_dir":  # null: <root>/model_checkpoints
            assert spec.checkpoint_dir == "runs/default/model_checkpoints"
            continue
        if key == "retrain":  # the train job's retrain policy (reviewrec.model.retrain)
            from reviewrec.model.retrain import RetrainPolicy

            assert vars(RetrainPolicy.from_config(cfg)) == m[key]
            continue
        assert name in got, f"model.{key} reaches no stage's settings"
        assert got[name] == m[key], key
    # the sizes come from the features metadata
    assert (net.vocab_size, net.seq_len, spec.num_users, spec.num_items) == (4, 6, 10, 5)
    assert spec.features_dir == "runs/default/features"
    assert vars(FeaturesParams.from_config(cfg)) == cfg["features"]
    # the library's own defaults, where a function has any, are the config's
    import inspect

    from reviewrec.model.score import score, score_candidates
    from reviewrec.model.train import run_horovod

    for fn in (score, score_candidates):
        assert inspect.signature(fn).parameters["batch_size"].default == m["score_batch_size"]
    hv = inspect.signature(run_horovod).parameters
    assert (hv["use_gloo"].default, hv["start_timeout"].default) == (m["use_gloo"], m["start_timeout"])
    with pytest.raises(ValueError, match="lr_decay = 1.5"):
        spec_from_config(load_config([], ["model.lr_decay=1.5"]), META)
    with pytest.raises(ValueError, match="bootstrap_reps = -1"):
        EvaluateParams.from_config(load_config([], ["model.bootstrap_reps=-1"]))


def test_train_hash_follows_the_trajectory_only():
    """A checkpoint is reused only by a run that would train the same way: the hash changes with
    every setting that shapes the trajectory, not with where checkpoints go, how long the run may
    last, or how the ranks exchange the same gradient sums."""
    spec = spec_from_config(load_config([]), META)
    same = [replace(spec, checkpoint_dir="/elsewhere"), replace(spec, epochs=20), replace(spec, patience=5),
            replace(spec, group_grads=True), replace(spec, return_weights=True), replace(spec, return_model=False)]
    assert {s.train_hash() for s in same} == {spec.train_hash()}
    changed = [replace(spec, seed=1), replace(spec, lr_decay=0.5), replace(spec, learning_rate=0.01),
               replace(spec, features_dir="/f"), replace(spec, net=replace(spec.net, ngram_buckets=64)),
               replace(spec, net=replace(spec.net, hidden_units=8)), replace(spec, text_dropout=0.0)]
    assert len({s.train_hash() for s in changed} | {spec.train_hash()}) == len(changed) + 1
