"""The train job's retrain policy (model.retrain, reviewrec.model.retrain): the real train job
once on tiny features, again with the policy set (it keeps the model, and evaluate scores the kept
one), and the job's decision (train.decide) on copies of that real model with one thing changed
at a time: the rows, the age, the settings, the features, the files.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest

from reviewrec import schema as S
from reviewrec.features import meta as M
from test_model_fixtures import TINY_MODEL, make_features

REPO = Path(__file__).resolve().parents[1]
# One rank, two epochs: the trained model's files are what the decisions read.
TRAIN = {**TINY_MODEL, "model.num_proc": 1, "model.epochs": 2, "model.early_stopping_patience": 2,
         "model.bootstrap_reps": 0, "model.baseline_reg_params": "[0.1]", "model.baseline_max_iter": 20}
POLICY = {"model.retrain.min_growth": 0.1, "model.retrain.max_age_days": 7}
NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


def _cfg(root: str, extra: dict | None = None):
    from reviewrec.config import load_config

    sets = {**TRAIN, "run.root": root, "model.checkpoint_dir": os.path.join(root, "ckpt"), **(extra or {})}
    return load_config([str(REPO / "conf" / "local.yaml")], [f"{k}={v}" for k, v in sets.items()])


def _files(model_dir: str) -> dict[str, tuple[str, int]]:
    """name -> (sha256, mtime in ns) of every file of the model directory."""
    out = {}
    for p in sorted(Path(model_dir).iterdir()):
        out[p.name] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return out


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("reviewrec"):
            self.lines.append(record.getMessage())


def grow_training_rows(spark, root: str, fraction: float) -> None:
    """A new version of <root>/features with `fraction` more training rows (copies of training rows
    under new review ids): the same vocabulary, indexes and sizes, so the same train hash."""
    from pyspark.sql import functions as F

    from reviewrec import io

    feats = os.path.join(root, S.FEATURES)
    df = io.read_dataset(spark, feats, "features")
    n = df.where(F.col(S.SPLIT) == S.SPLIT_TRAIN).count()
    extra = (df.where(F.col(S.SPLIT) == S.SPLIT_TRAIN).orderBy(S.REVIEW_ID).limit(int(n * fraction))
             .withColumn(S.REVIEW_ID, F.concat(F.col(S.REVIEW_ID), F.lit("-again"))))
    rows = df.unionByName(extra).collect()
    io.write_dataset(spark.createDataFrame(rows, df.schema).repartition(2).sortWithinPartitions(S.SPLIT, S.REVIEW_ID),
                     feats, partition_by=[S.SPLIT])


@pytest.fixture(scope="module")
def job(spark, tmp_path_factory):
    """On one run root of tiny features, in order: the train job with the policy off (it trains);
    with the policy set (it keeps the model); evaluate; then 15% more training rows and the train
    job with the policy again (it trains). Results, model files and decision records of each step;
    a copy of the kept model for the decision tests."""
    from reviewrec.model import evaluate, train

    base = tmp_path_factory.mktemp("retrain")
    root = str(base / "run")
    model_dir = os.path.join(root, S.MODEL)
    record = Path(root) / "report" / "train_decision.json"
    out: dict = {"root": root, "model_dir": model_dir, "seconds": {}}

    def step(name: str, fn):
        t0 = time.perf_counter()
        res = fn()
        out["seconds"][name] = round(time.perf_counter() - t0, 1)
        return res

    step("features", lambda: make_features(spark, root, n=400, seq_len=10))
    out["first"] = step("train", lambda: train.run(spark, _cfg(root)))
    out["first_record"] = json.loads(record.read_text())
    out["before"] = _files(model_dir)
    out["first_files_digest"] = files_digest(root)
    lines = _Lines()
    logging.getLogger("reviewrec").addHandler(lines)
    level = logging.getLogger("reviewrec").level
    logging.getLogger("reviewrec").setLevel(logging.INFO)
    try:
        out["again"] = step("train_again", lambda: train.run(spark, _cfg(root, POLICY)))
    finally:
        logging.getLogger("reviewrec").removeHandler(lines)
        logging.getLogger("reviewrec").setLevel(level)
    out["log"] = lines.lines
    out["after"] = _files(model_dir)
    out["record"] = json.loads(record.read_text())
    out["evaluate"] = step("evaluate", lambda: evaluate.run(spark, _cfg(root, POLICY)))
    out["after_evaluate"] = _files(model_dir)
    out["kept"] = str(base / "kept")
    shutil.copytree(model_dir, out["kept"])
    step("grow", lambda: grow_training_rows(spark, root, 0.15))
    out["grown"] = step("train_grown", lambda: train.run(spark, _cfg(root, POLICY)))
    out["grown_record"] = json.loads(record.read_text())
    out["grown_files"] = _files(model_dir)
    out["grown_files_digest"] = files_digest(root)
    print("retrain job fixture seconds:", out["seconds"])
    return out


@pytest.mark.spark
@pytest.mark.horovod
@pytest.mark.slow
def test_rerun_with_the_policy_keeps_the_model(job):
    first, again, rec = job["first"], job["again"], job["record"]
    # policy off: trained, and the model records what the policy compares later
    assert job["first_record"]["trained"] is True and job["first_record"]["reason"] == "policy_off"
    assert first["train_decision"]["reason"] == "policy_off"
    assert dt.datetime.fromisoformat(first["trained_at"]).tzinfo is not None
    assert len(first["settings_hash"]) == 12 and len(first["ids_digest"]) == 12
    assert len(first["history"]) == 2
    # policy on, nothing changed: skipped, the model's files untouched (bytes and times)
    assert job["after"] == job["before"] and set(job["before"]) >= {"model.keras", "metadata.json", "vocab.json"}
    assert rec["trained"] is False and rec["decision"] == "skip" and rec["reason"] == "current"
    n = rec["numbers"]
    rows = first["data_counts"]["train"]["rows"]
    assert n["rows_then"] == n["rows_now"] == rows > 0 and n["growth"] == 0
    assert 0 <= n["age_days"] < 0.1 and n["thresholds"] == {"min_growth": 0.1, "max_age_days": 7.0}
    assert n["settings_hash_model"] == n["settings_hash_now"] == first["settings_hash"]
    assert n["ids_digest_model"] == n["ids_digest_now"] == first["ids_digest"]
    assert "below min_growth 0.1" in rec["detail"] and "below max_age_days 7" in rec["detail"]
    # the job's result is the kept model's metadata plus the decision
    assert again["train_decision"]["trained"] is False
    assert again["train_hash"] == first["train_hash"] and again["weights_sha256"] == first["weights_sha256"]


@pytest.mark.spark
@pytest.mark.horovod
@pytest.mark.slow
def test_skip_logs_one_line_with_the_numbers(job):
    lines = [x for x in job["log"] if "skipped" in x]
    assert len(lines) == 1, job["log"]
    rows = job["first"]["data_counts"]["train"]["rows"]
    assert f"training rows {rows} then, {rows} now (growth +0.00%)" in lines[0]
    assert "min_growth 0.1, max_age_days 7.0" in lines[0] and "age 0.0" in lines[0]
    # nothing was trained: no Horovod stage ran
    assert not any("horovod" in x.lower() for x in job["log"]), job["log"]


@pytest.mark.spark
@pytest.mark.horovod
@pytest.mark.slow
def test_evaluate_after_a_skip_scores_the_kept_model(job):
    ev = job["evaluate"]
    assert ev["measured_on"]["model_train_hash"] == job["first"]["train_hash"]
    assert ev["history"] == job["first"]["history"] and 0 <= ev["models"]["lstm"]["accuracy"] <= 1
    assert job["after_evaluate"] == job["before"]


def files_digest(root: str) -> str:
    """The digest train.data_checkpoints records: the features' train and val files."""
    from reviewrec.model import train
    from reviewrec.model.spec import spec_from_config

    files = {s: tuple(M.split_files(os.path.join(root, S.FEATURES), s)) for s in S.SPLITS}
    spec = replace(spec_from_config(_cfg(root), M.read(os.path.join(root, S.FEATURES_META))),
                   files=tuple(files.items()))
    return train.training_files_digest(spec)


@pytest.mark.spark
@pytest.mark.horovod
@pytest.mark.slow
def test_grown_training_rows_retrain_from_epoch_one(job):
    """15% more training rows: the job trains, from epoch 1 (the earlier data's finished
    checkpoints carry the same train hash and are not resumed), and replaces the model."""
    first, md, rec = job["first"], job["grown"], job["grown_record"]
    assert rec["trained"] is True and rec["reason"] == "grew" and "+15.0%" in rec["detail"]
    rows = first["data_counts"]["train"]["rows"]
    assert rec["numbers"]["rows_then"] == rows and rec["numbers"]["rows_now"] == md["data_counts"]["train"]["rows"]
    assert md["data_counts"]["train"]["rows"] == rows + int(rows * 0.15)
    assert md["train_decision"] == {"reason": "grew", "detail": rec["detail"]}
    assert md["train_hash"] == first["train_hash"]  # the data are not in it ...
    assert md["resumed_from"] is None and [h["epoch"] for h in md["history"]] == [1, 2]  # ... yet a fresh training
    assert md["weights_sha256"] != first["weights_sha256"] and md["trained_at"] >= first["trained_at"]
    for f in ("model.keras", "metadata.json"):
        assert job["grown_files"][f][0] != job["before"][f][0], f
    # the checkpoints record the training files they were written for
    ckpt = Path(job["root"]) / "ckpt" / f"{md['train_hash']}-np1"
    assert json.loads((ckpt / "data.json").read_text())["files_digest"] == job["grown_files_digest"]
    assert job["grown_files_digest"] != job["first_files_digest"]


# -- the decision on copies of the real model --------------------------------------------------------
@pytest.fixture()
def model(job, tmp_path):
    """A copy of the trained model in a run root of its own whose features are the job's (the same
    files): model(rows=, age_days=, edit=) sets its training rows and age (from NOW) and returns
    its directory."""
    root = tmp_path / "run"
    root.mkdir()
    for d in (S.FEATURES, S.FEATURES_META):
        os.symlink(os.path.join(job["root"], d), root / d)
    model_dir = root / S.MODEL
    shutil.copytree(job["kept"], model_dir)

    def make(rows: int = 1000, age_days: float = 1.0, edit=None) -> str:
        md_path = model_dir / "metadata.json"
        md = json.loads(md_path.read_text())
        md["data_counts"]["train"]["rows"] = rows
        md["trained_at"] = (NOW - dt.timedelta(days=age_days)).isoformat(timespec="seconds")
        if edit:
            edit(md)
        md_path.write_text(json.dumps(md, indent=2))
        return str(model_dir)

    return make


def decide(spark, model_dir: str, rows_now: int, extra: dict | None = None, policy: dict | None = POLICY):
    """The decision the train job takes (train.decide) for the features beside `model_dir`."""
    from reviewrec.model import train
    from reviewrec.model.spec import LaunchParams, spec_from_config

    root = os.path.dirname(model_dir)
    cfg = _cfg(root, {**(policy or {}), **(extra or {})})
    meta_dir = os.path.join(root, S.FEATURES_META)
    meta = M.read(meta_dir)
    decision, _ = train.decide(spark, cfg, model_dir, meta_dir, meta, spec_from_config(cfg, meta),
                               LaunchParams.from_config(cfg), {"train": {"rows": rows_now}}, NOW)
    return decision


@pytest.mark.spark
@pytest.mark.horovod
def test_skip_when_growth_below_threshold_and_young(spark, model):
    d = decide(spark, model(rows=1000, age_days=1.0), 1099)
    assert (d.train, d.reason) == (False, "current")
    assert d.numbers["rows_then"] == 1000 and d.numbers["rows_now"] == 1099
    assert d.numbers["growth"] == pytest.approx(0.099) and d.numbers["age_days"] == pytest.approx(1.0)


@pytest.mark.spark
@pytest.mark.horovod
def test_train_when_growth_at_or_above_threshold(spark, model):
    d = decide(spark, model(rows=1000), 1100)
    assert (d.train, d.reason) == (True, "grew") and "+10.0%" in d.detail
    assert decide(spark, model(rows=1000), 1500).train
    # a shrink as large counts as a change too (the data were replaced, not grown)
    assert (decide(spark, model(rows=1000), 800).reason, decide(spark, model(rows=1000), 950).reason) == \
        ("grew", "current")


@pytest.mark.spark
@pytest.mark.horovod
def test_train_when_too_old(spark, model):
    d = decide(spark, model(rows=1000, age_days=7.5), 1000)
    assert (d.train, d.reason) == (True, "too_old") and d.numbers["age_days"] == pytest.approx(7.5)
    assert decide(spark, model(rows=1000, age_days=7.0), 1000).reason == "too_old"
    assert decide(spark, model(rows=1000, age_days=6.9), 1000).reason == "current"
    # no trained_at (a model from before the policy): its age is unknown, so it is retrained
    assert decide(spark, model(edit=lambda md: md.pop("trained_at")), 1000).reason == "age_unknown"


@pytest.mark.spark
@pytest.mark.horovod
def test_only_one_threshold_set(spark, model):
    # max_age_days alone: a schedule, whatever the growth
    d = decide(spark, model(rows=1000, age_days=2), 5000, policy={"model.retrain.max_age_days": 3})
    assert (d.train, d.reason) == (False, "current")
    assert decide(spark, model(rows=1000, age_days=4), 1000, policy={"model.retrain.max_age_days": 3}).train
    # min_growth alone: growth, whatever the age
    d = decide(spark, model(rows=1000, age_days=400), 1050, policy={"model.retrain.min_growth": 0.1})
    assert (d.train, d.reason) == (False, "current")
    assert decide(spark, model(rows=1000, age_days=1), 1200, policy={"model.retrain.min_growth": 0.1}).train


@pytest.mark.spark
@pytest.mark.horovod
def test_train_when_settings_changed(spark, model):
    path = model(rows=1000)
    for change in ({"model.learning_rate": 0.02}, {"model.epochs": 3}, {"model.lstm_units": 16},
                   {"model.num_proc": 2}, {"model.ensemble_size": 2}, {"model.seed": 7}):
        d = decide(spark, path, 1000, change)
        assert (d.train, d.reason) == (True, "settings_changed"), change
        assert d.numbers["settings_hash_model"] != d.numbers["settings_hash_now"]
    # how the job runs is no training setting: the model stays current
    for same in ({"model.group_grads": "true"}, {"model.start_timeout": 60}, {"model.score_batch_size": 7}):
        assert decide(spark, path, 1000, same).reason == "current", same


@pytest.mark.spark
@pytest.mark.horovod
def test_train_when_no_model_or_unreadable(spark, model):
    path = model(rows=1000)
    assert decide(spark, path, 1000).reason == "current"
    (Path(path) / "model.keras").unlink()
    d = decide(spark, path, 1000)
    assert (d.train, d.reason) == (True, "model_unreadable") and "model.keras" in d.detail
    (Path(path) / "metadata.json").write_text("{not json")
    assert decide(spark, path, 1000).reason == "model_unreadable"
    (Path(path) / "metadata.json").write_text("{}")
    assert decide(spark, path, 1000).reason == "model_unreadable"
    shutil.rmtree(path)
    d = decide(spark, path, 1000)
    assert (d.train, d.reason) == (True, "no_model")
    os.mkdir(path)
    assert decide(spark, path, 1000).reason == "no_model"


@pytest.mark.spark
@pytest.mark.horovod
def test_train_when_the_features_differ(spark, model):
    path = model(rows=1000)
    digest = json.loads((Path(path) / "metadata.json").read_text())["ids_digest"]
    vocab_path = Path(path) / "vocab.json"
    vocab = json.loads(vocab_path.read_text())
    (a, ia), (b, ib) = list(vocab["vocab"].items())[:2]
    vocab["vocab"][a], vocab["vocab"][b] = ib, ia  # two lemmas' ids swapped: same sizes, another vocabulary
    vocab_path.write_text(json.dumps(vocab))
    d = decide(spark, path, 1000)
    assert (d.train, d.reason) == (True, "features_changed") and "vocabulary" in d.detail
    # the customer/product indexes: another size, or the same size in another order
    path = model(rows=1000)
    shutil.copy(Path(path).parent / S.FEATURES_META / M.VOCAB_FILE, vocab_path)
    assert decide(spark, path, 1000).reason == "current"
    d = decide(spark, model(edit=lambda md: md.update(ids_digest="0" * 12)), 1000)
    assert (d.reason, "indexes" in d.detail) == ("features_changed", True)
    vocab["vocab"][a], vocab["vocab"][b] = ia, ib
    vocab["num_users"] += 1
    vocab_path.write_text(json.dumps(vocab))
    d = decide(spark, model(edit=lambda md: md.update(ids_digest=digest)), 1000)
    assert (d.reason, "customers" in d.detail) == ("features_changed", True)


@pytest.mark.spark
@pytest.mark.horovod
def test_policy_off_always_trains(spark, model):
    d = decide(spark, model(rows=1000, age_days=0.5), 1000, policy={})
    assert (d.train, d.reason) == (True, "policy_off")


def test_retrain_keys_validated_and_out_of_the_hash():
    from reviewrec.config import ConfigError, load_config
    from reviewrec.model.retrain import RetrainPolicy

    base = load_config([str(REPO / "conf" / "local.yaml")])
    assert base["model"]["retrain"] == {"min_growth": None, "max_age_days": None}
    assert not RetrainPolicy.from_config(base).active
    on = load_config([str(REPO / "conf" / "local.yaml")],
                     ["model.retrain.min_growth=0.1", "model.retrain.max_age_days=7"])
    assert RetrainPolicy.from_config(on) == RetrainPolicy(0.1, 7.0) and RetrainPolicy.from_config(on).active
    # run.skip_existing's markers stay valid when the policy is turned on
    assert on.hash() == base.hash()
    for bad in ("model.retrain.min_growth=-0.1", "model.retrain.max_age_days=-1", "model.retrain.min_growth=true",
                "model.retrain.max_age_days=week", "model.retrain.often=1"):
        with pytest.raises(ConfigError, match="model.retrain"):
            load_config([str(REPO / "conf" / "local.yaml")], [bad])


def test_checkpoints_of_other_training_data_are_not_resumed(tmp_path):
    """The checkpoint directory is named by the train hash, which leaves the data out: a training
    on new features of the same sizes must start from epoch 1, not resume the earlier data's
    finished epochs (a retrain that trains nothing); a rerun on the same files resumes."""
    from reviewrec.model import checkpoints, train
    from reviewrec.model.spec import spec_from_config

    meta = M.FeaturesMeta(vocab={"good": 2, "bad": 3}, vocab_size=4, num_users=5, num_items=3, seq_len=6,
                          num_features=16)
    ckpt = tmp_path / "ckpt"
    spec = spec_from_config(_cfg(str(tmp_path / "run"), {"model.checkpoint_dir": str(ckpt)}), meta)
    old = replace(spec, files=(("train", ("/r/features/split=train/part-0-a.parquet",)),
                               ("val", ("/r/features/split=val/part-0-b.parquet",))))
    new = replace(spec, files=(("train", ("/r/features/split=train/part-0-c.parquet",)),
                               ("val", ("/r/features/split=val/part-0-b.parquet",))))
    assert old.train_hash() == new.train_hash()  # what the checkpoints are named by
    d_old, d_new = train.training_files_digest(old), train.training_files_digest(new)
    assert d_old != d_new
    root = Path(checkpoints.checkpoint_root(old, 2))

    def epoch(n: int) -> Path:
        e = root / f"epoch-{n:04d}"
        e.mkdir(parents=True)
        (e / "state.json").write_text(json.dumps({**checkpoints.fresh_state(), "epoch": n}))
        return e

    train.data_checkpoints(old, 2, d_old)
    assert json.loads((root / "data.json").read_text()) == {"files_digest": d_old}
    epoch(1), epoch(2)
    train.data_checkpoints(old, 2, d_old)  # the same files: a rerun resumes
    assert checkpoints.latest(str(root))[1]["epoch"] == 2
    train.data_checkpoints(new, 2, d_new)  # other files: nothing to resume
    assert checkpoints.latest(str(root)) is None
    assert json.loads((root / "data.json").read_text()) == {"files_digest": d_new}
    epoch(1)
    (root / "data.json").unlink()  # written before the files were recorded: unknown data
    train.data_checkpoints(new, 2, d_new)
    assert checkpoints.latest(str(root)) is None and (root / "data.json").exists()
    # rank-local checkpoints (a remote checkpoint_dir) are left alone
    train.data_checkpoints(replace(new, checkpoint_dir="s3a://bucket/ckpt"), 2, d_old)


@pytest.mark.spark
@pytest.mark.horovod
def test_recommend_does_not_score_a_kept_model_through_refitted_indexes(spark, model):
    """A run that keeps the model while the features job refitted the customer/product indexes
    (a daily run between trainings, new customers): recommend fills by CF and says why
    (use_model auto), or stops naming the model (require), instead of giving the model's
    embeddings to other ids."""
    from reviewrec.recommend.scoring import CFScorer, ModelScorer, resolve_scorer

    path = model(rows=1000)
    assert isinstance(resolve_scorer(spark, path, "auto"), ModelScorer)
    path = model(edit=lambda md: md.update(ids_digest="0" * 12))  # the indexes it was trained on differ
    lines = _Lines()
    logging.getLogger("reviewrec").addHandler(lines)
    try:
        assert isinstance(resolve_scorer(spark, path, "auto"), CFScorer)
    finally:
        logging.getLogger("reviewrec").removeHandler(lines)
    assert any("is not used" in m and "ids digest: model 000000000000" in m for m in lines.lines), lines.lines
    with pytest.raises(ValueError, match=f"use_model = require, but the model at {path} does not fit"):
        resolve_scorer(spark, path, "require")
