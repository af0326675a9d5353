"""Distributed training for real on CPU (Gloo): a tiny model with num_proc=1 and num_proc=2,
kill-and-resume of the train job, scoring in executors, and the evaluate job's report.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from reviewrec import schema as S
from reviewrec.features import meta as M
from test_model_fixtures import TINY_MODEL, make_features

REPO = Path(__file__).resolve().parents[1]
TINY = {**TINY_MODEL, "model.id_dropout": 0.2, "model.dropout": 0.1}

pytestmark = [pytest.mark.spark, pytest.mark.horovod, pytest.mark.slow]


@pytest.fixture(scope="module")
def feats_root(spark, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("model") / "run")
    make_features(spark, root, n=800, seq_len=12)
    return root


def _cfg(root: str, extra: dict | None = None):
    from reviewrec.config import load_config

    sets = {**TINY, "run.root": root, **(extra or {})}
    return load_config([str(REPO / "conf" / "local.yaml")], [f"{k}={v}" for k, v in sets.items()])


@pytest.fixture(scope="module")
def trained(spark, feats_root):
    """trained(num_proc, **TrainSpec changes) -> per-rank results of 4 epochs (cached per args)."""
    from reviewrec.model.spec import spec_from_config
    from reviewrec.model.train import run_horovod

    spec0 = spec_from_config(_cfg(feats_root), M.read(os.path.join(feats_root, S.FEATURES_META)))
    cache: dict = {}

    def get(num_proc: int, net: dict | None = None, **changes):
        spec = replace(spec0, epochs=4, checkpoint_dir=None, return_weights=True, return_model=False, patience=10,
                       **changes)
        if net:
            spec = replace(spec, net=replace(spec.net, **net))
        key = (num_proc, spec)
        if key not in cache:
            cache[key] = run_horovod(spark, spec, num_proc)
        return cache[key]

    return get


@pytest.mark.parametrize("num_proc", [1, 2])
def test_ranks_end_identical_and_loss_decreases(spark, feats_root, trained, num_proc):
    results = trained(num_proc)
    assert [r["rank"] for r in results] == list(range(num_proc))
    assert {r["size"] for r in results} == {num_proc}
    # every rank read a disjoint share of the train split, together all of it
    n_train = M.split_frame(spark, os.path.join(feats_root, S.FEATURES), "train").count()
    assert sum(results[0]["rows_per_rank"]) == n_train
    assert sum(r["local_rows"] for r in results) == n_train
    # identical weights on every rank after training (broadcast + averaged gradients)
    assert len({r["weights_sha256"] for r in results}) == 1
    for r in results[1:]:
        for a, b in zip(results[0]["weights"], r["weights"], strict=False):
            np.testing.assert_array_equal(a, b)
    # the weights moved away from a fresh initialisation, and the loss went down
    hist = results[0]["history"]
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    assert hist[-1]["loss"] < hist[0]["loss"] - 0.05
    assert hist[-1]["val_loss"] < hist[0]["val_loss"]
    # metrics are averaged across ranks: every rank reports the same history
    for r in results[1:]:
        assert r["history"][-1]["loss"] == pytest.approx(hist[-1]["loss"], rel=1e-6)
        assert r["history"][-1]["val_loss"] == pytest.approx(hist[-1]["val_loss"], rel=1e-9)


def test_grouped_gradients_give_the_same_training(trained):
    """Exchanging the gradients in groups (one grouped allreduce of the dense ones, one grouped
    allgather of the embedding rows per index dtype a step) changes how often the ranks
    negotiate, not the update: the same weights as the per-tensor exchange (to float rounding),
    on every rank."""
    base = trained(2)
    grouped = trained(2, group_grads=True)
    assert len({r["weights_sha256"] for r in grouped}) == 1
    for a, b in zip(base[0]["weights"], grouped[0]["weights"], strict=False):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert [h["loss"] for h in grouped[0]["history"]] == pytest.approx([h["loss"] for h in base[0]["history"]],
                                                                       rel=1e-4)


def test_lr_decay_and_optional_layers_train_identically_on_two_ranks(trained):
    """lr_decay sets every epoch's rate (learning_rate x 2 workers x decay^epoch, Horovod's
    LearningRateScheduleCallback) on both ranks; with embedding dropout, a hidden layer and the
    n-gram bag (int64 ids), its gradients exchanged in groups, the ranks still end identical,
    the loss falls, and the result differs from the default."""
    base = trained(2)
    res = trained(2, lr_decay=0.5, group_grads=True, net={"embedding_dropout": 0.2, "hidden_units": 8,
                                                          "ngram_buckets": 16})
    hist = res[0]["history"]
    rates = [h["learning_rate"] for h in hist]
    assert rates == pytest.approx([float(TINY["model.learning_rate"]) * 2 * 0.5 ** e for e in range(4)], rel=1e-6)
    assert [h["learning_rate"] for h in res[1]["history"]] == rates
    # the default run keeps one rate throughout
    assert len({h["learning_rate"] for h in base[0]["history"]}) == 1
    assert len({r["weights_sha256"] for r in res}) == 1
    assert hist[-1]["loss"] < hist[0]["loss"] - 0.05
    assert res[0]["weights_sha256"] != base[0]["weights_sha256"]


def _processes_with(marker: str) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if marker.encode() in (p / "environ").read_bytes():
                pids.append(int(p.name))
        except OSError:
            continue
    return pids


def _train_job(root: str, ckpt: str, marker: str, epochs: int) -> subprocess.Popen:
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable,
               REVIEWREC_TEST_MARK=marker, TF_CPP_MIN_LOG_LEVEL="2")
    sets = {**TINY, "run.root": root, "model.checkpoint_dir": ckpt, "model.epochs": epochs,
            "model.early_stopping_patience": epochs, "model.num_proc": 1}
    args = [sys.executable, str(REPO / "jobs" / "train.py"), "--conf", str(REPO / "conf" / "local.yaml")]
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    return subprocess.Popen(args, env=env, cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


@pytest.fixture(scope="module")
def killed_and_resumed(feats_root, tmp_path_factory):
    """Run the train job, SIGKILL it (whole process tree) once epoch 1's checkpoint exists,
    then rerun it to completion."""
    ckpt = str(tmp_path_factory.mktemp("ckpt"))
    epochs = 6
    marker = f"kill-{uuid.uuid4().hex}"
    proc = _train_job(feats_root, ckpt, marker, epochs)
    deadline = time.time() + 600
    done_at_kill: list[str] = []
    try:
        while time.time() < deadline and proc.poll() is None:
            done_at_kill = sorted(str(p) for p in Path(ckpt).glob("*/epoch-*") if (p / "state.json").exists())
            if done_at_kill:
                break
            time.sleep(0.1)
        tail = proc.stderr.read()[-3000:] if proc.poll() is not None else ""
        assert done_at_kill, f"no checkpoint appeared; job exit {proc.poll()}: {tail}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for pid in _processes_with(marker):  # anything of ours that left the process group
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    time.sleep(1)
    done_after_kill = sorted(p.name for p in Path(ckpt).glob("*/epoch-*") if (p / "state.json").exists())
    assert not (Path(feats_root) / "model").exists()  # the killed run never saved a model
    marker2 = f"resume-{uuid.uuid4().hex}"
    proc2 = _train_job(feats_root, ckpt, marker2, epochs)
    _, err = proc2.communicate(timeout=900)
    assert proc2.returncode == 0, err.decode()[-4000:]
    with open(os.path.join(feats_root, "model", "metadata.json")) as fh:
        md = json.load(fh)
    return {"after_kill": done_after_kill, "epochs": epochs, "metadata": md, "ckpt": ckpt}


def test_kill_after_epoch_one_then_rerun_resumes(killed_and_resumed):
    k = killed_and_resumed
    md = k["metadata"]
    done = k["after_kill"]
    assert done and len(done) < k["epochs"], done  # killed mid-training
    last = int(done[-1].split("-")[-1])
    assert md["resumed_from"].endswith(f"epoch-{last:04d}")
    assert [h["epoch"] for h in md["history"]] == list(range(1, k["epochs"] + 1))
    # epochs before the kill come from the checkpoint, the rest were run by the rerun
    assert md["history"][-1]["loss"] < md["history"][0]["loss"]
    for f in ("model.keras", "vocab.json", "metadata.json"):
        assert (Path(md["training"]["features_dir"]).parent / "model" / f).exists(), f
    # the job trained with the settings built from its config, nothing else
    from reviewrec.model.spec import spec_from_config

    root = str(Path(md["training"]["features_dir"]).parent)
    cfg = _cfg(root, {"model.checkpoint_dir": k["ckpt"], "model.epochs": k["epochs"],
                      "model.early_stopping_patience": k["epochs"], "model.num_proc": 1})
    want = spec_from_config(cfg, M.read(os.path.join(root, S.FEATURES_META)))
    assert md["training"] == json.loads(json.dumps({f: v for f, v in vars(want).items() if f not in ("net", "files")}))
    assert md["net"] == vars(want.net) and md["train_hash"] == want.train_hash()
    assert md["versions"]["horovod"] == "0.28.1"
    assert md["data_counts"]["train"]["rows"] > 0 and md["config_hash"]


def test_score_in_executors_matches_local_prediction(spark, feats_root, killed_and_resumed):
    from reviewrec.model.data import read_files
    from reviewrec.model.score import load_metadata, load_model, predict_arrays, score

    model_dir = os.path.join(feats_root, "model")
    test_dir = os.path.join(feats_root, S.FEATURES)
    df = M.split_frame(spark, test_dir, "test")
    # The executors load the model shipped to them, not from the driver's path: a copy of the
    # model directory, removed once scored and before the rows are computed, scores them all.
    copy = Path(feats_root).parent / f"model-copy-{uuid.uuid4().hex[:6]}"
    shutil.copytree(model_dir, copy)
    lazy = score(spark, df, str(copy)).orderBy("review_id")
    shutil.rmtree(copy)
    out = lazy.collect()
    assert len(out) == df.count() > 0
    assert "tfidf" in out[0].asDict()  # other columns pass through
    probs = np.array([r[S.STAR_PROBS] for r in out])
    assert probs.shape[1] == 5 and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    exp = np.array([r[S.EXPECTED_RATING] for r in out])
    assert np.allclose(exp, probs @ np.arange(1, 6), atol=1e-5)
    assert [r[S.PREDICTED_STAR] for r in out] == (probs.argmax(axis=1) + 1).tolist()
    # reference: the same rows predicted in this process
    md = load_metadata(model_dir)
    a = read_files(M.split_files(test_dir, "test"), md["net"]["seq_len"])
    import pyarrow.parquet as pq
    ids = np.concatenate([pq.read_table(f, columns=["review_id"]).column(0).to_numpy(zero_copy_only=False)
                          for f in M.split_files(test_dir, "test")])
    ref = predict_arrays(load_model(model_dir), a.seq, a.user, a.item, md["features_meta"]["num_users"],
                         md["features_meta"]["num_items"], md["net"]["user_buckets"], md["net"]["item_buckets"])
    ref = ref[np.argsort(ids)]
    np.testing.assert_allclose(probs, ref, atol=1e-5)


def test_evaluate_report(spark, feats_root, killed_and_resumed):
    from reviewrec.model import evaluate

    cfg = _cfg(feats_root, {"model.baseline_reg_params": "[0.01, 0.1]", "model.baseline_max_iter": 30})
    res = evaluate.run(spark, cfg)
    out = Path(feats_root) / "report" / "model"
    for f in ("metrics.json", "index.html", "confusion_lstm.png", "confusion_tfidf_lr.png",
              "confusion_majority.png", "training_curves.png", "comparison.png"):
        assert (out / f).stat().st_size > 0, f
    saved = json.loads((out / "metrics.json").read_text())
    assert set(saved["models"]) == {"lstm", "majority", "tfidf_lr"}
    # the job evaluated with the settings built from its config
    from dataclasses import asdict

    from reviewrec.model.spec import EvaluateParams

    assert saved["params"] == json.loads(json.dumps(asdict(EvaluateParams.from_config(cfg))))
    assert saved["params"]["baseline_reg_params"] == [0.01, 0.1]
    test = M.split_frame(spark, os.path.join(feats_root, "features"), "test")
    n = test.count()
    for name, m in saved["models"].items():
        cm = np.array(m["confusion"])
        assert cm.sum() == n and m["accuracy"] == pytest.approx(np.trace(cm) / n), name
        assert 0 <= m["rmse"] and 0 <= m["mae"] <= m["rmse"] + 1e-12
    # majority baseline: the most frequent training star, checked directly
    train = M.split_frame(spark, os.path.join(feats_root, "features"), "train")
    top = train.groupBy("label").count().orderBy("count", ascending=False).first()["label"]
    assert saved["models"]["majority"]["accuracy"] == pytest.approx(test.filter(f"label = {top}").count() / n)
    # the words carry the star: both learned models beat the majority class
    assert saved["models"]["tfidf_lr"]["accuracy"] > saved["models"]["majority"]["accuracy"]
    assert saved["models"]["lstm"]["accuracy"] > saved["models"]["majority"]["accuracy"]
    assert len(saved["models"]["tfidf_lr"]["params"]["selection"]) == 2
    # bootstrap intervals: on the same n rows, around each model's reported numbers; the LSTM's
    # differences are the reported metrics' differences
    boot = saved["bootstrap"]
    assert boot["rows"] == n and boot["reps"] == 1000 and boot["reference"] == "lstm"
    for name, m in saved["models"].items():
        for key in ("accuracy", "macro_f1", "weighted_f1"):
            lo, hi = boot["models"][name][key]
            assert lo <= m[key] + 1e-9 and m[key] - 1e-9 <= hi, (name, key)
    # the majority class always predicts one star, but the resampled label mix moves its accuracy
    assert boot["models"]["majority"]["accuracy"][0] < boot["models"]["majority"]["accuracy"][1]
    for base in ("majority", "tfidf_lr"):
        for key in ("accuracy", "macro_f1", "weighted_f1"):
            d = boot["differences"][base][key]
            assert d["estimate"] == pytest.approx(saved["models"]["lstm"][key] - saved["models"][base][key])
            assert d["ahead"] == (d["interval"][0] > 0)
    # RMSE / MAE from per-group error sums: around the reported values, lower error is ahead
    for name, m in saved["models"].items():
        for key in ("rmse", "mae"):
            lo, hi = boot["models"][name][key]
            assert lo <= m[key] + 1e-9 and m[key] - 1e-9 <= hi, (name, key)
    for base in ("majority", "tfidf_lr"):
        for key in ("rmse", "mae"):
            d = boot["differences"][base][key]
            assert d["estimate"] == pytest.approx(saved["models"]["lstm"][key] - saved["models"][base][key])
            assert d["ahead"] == (d["interval"][1] < 0)
    assert 0 < boot["error_groups"] <= n
    assert boot["differences"]["majority"]["accuracy"]["ahead"]  # the words carry the star
    assert boot["differences"]["majority"]["rmse"]["ahead"]
    html = (out / "index.html").read_text()
    assert "paired bootstrap" in html and "lstm − tfidf_lr" in html
    # the training table marks the one epoch whose weights were saved
    best = saved["measured_on"]["model_best_epoch"]
    rows = [r for r in html.split("<tr>") if "<td>yes</td></tr>" in r]
    assert len(rows) == 1 and rows[0].startswith(f"<td>lstm</td><td>{best}</td>")
    assert "bootstrap" in res["timings"]
    assert res["measured_on"]["model_train_hash"] == saved["measured_on"]["model_train_hash"]


@pytest.fixture(scope="module")
def ensemble_runs(spark, feats_root, tmp_path_factory):
    """The train job with model.ensemble_size=2 (1 rank, 2 epochs) on a copy of the features,
    then the same job again (each member resumes from its own checkpoints)."""
    import shutil

    from reviewrec.model import train

    root = str(tmp_path_factory.mktemp("ensemble") / "run")
    for d in ("features", "features_meta"):
        shutil.copytree(os.path.join(feats_root, d), os.path.join(root, d))
    ckpt = str(tmp_path_factory.mktemp("ensemble_ckpt"))
    cfg = _cfg(root, {"model.ensemble_size": 2, "model.num_proc": 1, "model.epochs": 2,
                      "model.early_stopping_patience": 2, "model.checkpoint_dir": ckpt})
    first = train.run(spark, cfg)
    model_path = os.path.join(root, "model", "model.keras")
    first_bytes = Path(model_path).read_bytes()
    again = train.run(spark, cfg)
    return {"root": root, "ckpt": ckpt, "first": first, "again": again, "first_bytes": first_bytes}


def test_ensemble_trains_each_member_with_its_seed_and_resumes_them(spark, ensemble_runs):
    """Two members, seeds 42 and 43: two trainings with their own train hash, checkpoints and
    weights; the saved model averages them and scores in executors; a rerun trains nothing
    and saves the same model."""
    import tensorflow as tf

    from reviewrec.model.data import read_files
    from reviewrec.model.score import predict_arrays, score

    md, again = ensemble_runs["first"], ensemble_runs["again"]
    members = md["ensemble"]["members"]
    assert md["ensemble"]["size"] == 2 and [mb["seed"] for mb in members] == [42, 43]
    assert len({mb["train_hash"] for mb in members}) == 2 and len({mb["weights_sha256"] for mb in members}) == 2
    assert md["train_hash"] not in {mb["train_hash"] for mb in members}
    for mb in members:
        assert [h["epoch"] for h in mb["history"]] == [1, 2] and mb["resumed_from"] is None
        assert (Path(ensemble_runs["ckpt"]) / f"{mb['train_hash']}-np1" / "epoch-0002" / "state.json").exists()
    assert set(md["timings"]) >= {"horovod_member_1", "horovod_member_2", "ensemble"}
    # the rerun resumed both members after their last epoch and trained nothing more
    assert [mb["resumed_from"].endswith("epoch-0002") for mb in again["ensemble"]["members"]] == [True, True]
    assert [mb["history"] for mb in again["ensemble"]["members"]] == [mb["history"] for mb in members]
    assert again["weights_sha256"] == md["weights_sha256"] and again["train_hash"] == md["train_hash"]

    model_dir = os.path.join(ensemble_runs["root"], "model")
    ens = tf.keras.models.load_model(os.path.join(model_dir, "model.keras"), compile=False)
    test_dir = os.path.join(ensemble_runs["root"], S.FEATURES)
    a = read_files(M.split_files(test_dir, "test"), md["net"]["seq_len"])
    fm, net = md["features_meta"], md["net"]

    def predict(model):
        return predict_arrays(model, a.seq, a.user, a.item, fm["num_users"], fm["num_items"],
                              net["user_buckets"], net["item_buckets"])

    parts = [predict(ens.get_layer(f"member_{j}")) for j in (1, 2)]
    assert np.abs(parts[0] - parts[1]).max() > 1e-3
    np.testing.assert_allclose(predict(ens), (parts[0] + parts[1]) / 2, atol=1e-6)
    first = Path(ensemble_runs["root"]) / "first.keras"
    first.write_bytes(ensemble_runs["first_bytes"])
    np.testing.assert_allclose(predict(tf.keras.models.load_model(first, compile=False)), predict(ens), atol=0)
    # executors score with it like with one network
    df = M.split_frame(spark, test_dir, "test")
    probs = np.array([r[S.STAR_PROBS] for r in score(spark, df, model_dir).collect()])
    assert probs.shape == (df.count(), 5) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)

    # the evaluate job reports each member alone, from the same scoring pass, as computed here
    from reviewrec.model import evaluate

    res = evaluate.run(spark, _cfg(ensemble_runs["root"], {"model.baseline_reg_params": "[0.1]",
                                                           "model.baseline_max_iter": 20,
                                                           "model.bootstrap_reps": 0}))
    got = res["ensemble_members"]
    assert [g["seed"] for g in got] == [42, 43]
    stars = np.arange(1, 6)
    for g, p in zip(got, parts, strict=False):
        assert g["accuracy"] == pytest.approx((p.argmax(axis=1) == a.label).mean(), abs=1e-9)
        assert g["rmse"] == pytest.approx(np.sqrt(((p @ stars - (a.label + 1)) ** 2).mean()), abs=1e-5)
    mean = (parts[0] + parts[1]) / 2
    assert res["models"]["lstm"]["accuracy"] == pytest.approx((mean.argmax(axis=1) == a.label).mean(), abs=1e-9)
    html = (Path(ensemble_runs["root"]) / "report" / "model" / "index.html").read_text()
    assert "each member alone" in html and "member 2 (seed 43)" in html
    assert html.count("<td>yes</td>") == 2  # each member's saved epoch
    # model.bootstrap_reps = 0: no intervals, no bootstrap stage
    assert res["bootstrap"] is None and "paired bootstrap" not in html and "bootstrap" not in res["timings"]
