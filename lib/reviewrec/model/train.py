"""The train job: the star-rating LSTM trained data-parallel with horovod.spark.run.

Reads <root>/features (train + val splits) and <root>/features_meta; writes <root>/model:
    model.keras         the trained Keras model (best validation epoch), no optimizer state
    vocab.json          the features metadata the model was built for (features.meta.FeaturesMeta)
    metadata.json       config hash, train hash, network, data counts, history, versions, timings

Every rank reads its own Parquet shards (rank.train_rank); the driver only collects per-split
counts. On a run root the ranks cannot open (hdfs://, s3a://, gs://, ...) the driver first
stages the train and val files on its local disk and ships them to the ranks (staging.py), and
the ranks keep their checkpoints locally (checkpoints.py); the model is written to the run root
through Hadoop's FileSystem (io.publish_dir). A rerun with the same training settings resumes
after the last complete per-epoch checkpoint (checkpoints.py). With `model.ensemble_size` k > 1
the job runs horovod.spark.run k times, member j with seed seed + j - 1 (its own train hash and
checkpoints), and saves one model averaging the members' star distributions (ensemble.py);
metadata.json lists the members.

With `model.retrain` set (retrain.py, docs/scheduling.md "Retraining") the job first decides
whether the model at <root>/model is still current for these features and settings, and if so
keeps it and trains nothing; every run writes its decision to <root>/report/train_decision.json.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from typing import Any

from pyspark.sql import SparkSession

from reviewrec import io
from reviewrec import schema as S
from reviewrec.config import Config
from reviewrec.features import meta as features_meta
from reviewrec.model import checkpoints, retrain, staging
from reviewrec.model.ensemble import ensemble_in_executor
from reviewrec.model.rank import MODEL_FILE, train_rank
from reviewrec.model.spec import LaunchParams, TrainSpec, spec_from_config
from reviewrec.runtime import StageTimer
from reviewrec.session import horovod_rank_launch

log = logging.getLogger(__name__)

METADATA_FILE = retrain.METADATA_FILE
REQUIRED_COLUMNS = (S.REVIEW_ID, S.USER_IDX, S.ITEM_IDX, S.SEQ, S.LABEL)


def run_horovod(spark: SparkSession, spec: TrainSpec, num_proc: int, use_gloo: bool = True,
                start_timeout: int = 600, verbose: int = 1) -> list[dict[str, Any]]:
    """horovod.spark.run(train_rank) on `num_proc` Spark tasks; per-rank results in rank order."""
    import horovod.spark

    # Local runs talk over loopback: a laptop's hostname may not resolve to a usable address.
    nics = ["lo"] if spark.sparkContext.master.startswith("local") else None
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ logging quietened unless set
    env, executable = horovod_rank_launch(spark, env)  # on a cluster: the executors' Python
    return horovod.spark.run(train_rank, args=(spec,), num_proc=num_proc, use_gloo=use_gloo, nics=nics, env=env,
                             start_timeout=start_timeout, verbose=verbose, executable=executable)


def split_counts(spark: SparkSession, features_dir: str) -> dict[str, dict[str, int]]:
    """Rows and per-star counts per split (a small aggregate, the only thing the driver collects)."""
    counts: dict[str, dict[str, int]] = {}
    for split in S.SPLITS:
        try:
            df = features_meta.split_frame(spark, features_dir, split)
        except FileNotFoundError:
            continue
        per = {str(int(r[S.LABEL]) + 1): int(r["count"]) for r in df.groupBy(S.LABEL).count().collect()}
        counts[split] = {"rows": sum(per.values()), **{f"star_{k}": v for k, v in sorted(per.items())}}
    return counts


def train_member(spark: SparkSession, spec: TrainSpec, launch: LaunchParams, member: int) -> tuple[dict, bytes]:
    """One network (ensemble member `member`, 1-based, seed spec.seed + member - 1): its summary
    and saved model bytes. All ranks must end with the same weights."""
    results = run_horovod(spark, spec, launch.num_proc, use_gloo=launch.use_gloo, start_timeout=launch.start_timeout)
    r0 = results[0]
    digests = sorted({r["weights_sha256"] for r in results})
    if len(digests) != 1:
        which = f" (ensemble member {member}, seed {spec.seed})" if launch.ensemble_size > 1 else ""
        raise RuntimeError(f"ranks ended with different weights{which}: {digests}")
    summary = {"member": member, "seed": spec.seed, "train_hash": spec.train_hash(), "history": r0["history"],
               "best_epoch": r0["best_epoch"], "best_val_loss": r0["best_val_loss"],
               "stopped_early": r0["stopped_early"], "resumed_from": r0["resumed_from"], "weights_sha256": digests[0],
               "num_proc": len(results), "rows_per_rank": r0["rows_per_rank"],
               "steps_per_epoch": r0["steps_per_epoch"], "class_weights": r0["class_weights"],
               "versions": r0["versions"]}
    return summary, r0["model_bytes"]


@contextmanager
def ranks_files(spark: SparkSession, spec: TrainSpec, timer: StageTimer) -> Iterator[TrainSpec]:
    """`spec` as the ranks can use it: unchanged when the features and checkpoints are local or
    mounted paths; else with the train (and val) files staged and shipped to the ranks and the
    checkpoints kept in the ranks' own directories (TrainSpec.rank_dir)."""
    remote_ckpt = bool(spec.checkpoint_dir) and not io.is_local(spec.checkpoint_dir or "")
    # What the snapshot listed decides (a path without a scheme may be on the default file system).
    local_files = all(io.is_local(f) for _, fs in spec.files for f in fs)
    if local_files and not remote_ckpt:
        yield spec
        return
    spec = replace(spec, rank_dir=staging.rank_dir(spark))
    if remote_ckpt:
        log.info("train: %s is not on a local file system: the ranks keep their checkpoints in their working "
                 "directories (a rerun in another application starts over; model.checkpoint_dir)",
                 spec.checkpoint_dir)
    if local_files:
        yield spec
        return
    splits = (S.SPLIT_TRAIN, S.SPLIT_VAL) if spec.validate else (S.SPLIT_TRAIN,)
    listed = dict(spec.files)
    # The staged files stay on the driver while the application runs: every executor, one that
    # joins later too, fetches them from it before its next task.
    local = os.path.join(staging.driver_dir(spark), f"staged-{uuid.uuid4().hex[:12]}")
    os.makedirs(local)
    with timer.stage("stage"):
        staged = staging.stage_splits(spark, {s: listed.get(s, ()) for s in splits}, local)
    yield replace(spec, files=staged.files)


CHECKPOINT_DATA_FILE = "data.json"


def training_files_digest(spec: TrainSpec) -> str:
    """A digest of the train and val files listed for the ranks (a features version's own names)."""
    listed = dict(spec.files)
    return hashlib.sha256(json.dumps({s: sorted(listed.get(s, ())) for s in (S.SPLIT_TRAIN, S.SPLIT_VAL)},
                                     sort_keys=True).encode()).hexdigest()[:16]


def data_checkpoints(spec: TrainSpec, num_proc: int, digest: str) -> None:
    """Keep the ranks from resuming checkpoints written for other training data. The checkpoint
    directory is named by the train hash, which leaves the data out (a rerun after a failure
    resumes); features with more rows but the same sizes keep that hash, and their training
    would resume the earlier data's finished checkpoints, training nothing. The driver records
    the train and val files' digest beside the checkpoints and clears checkpoints recorded for
    other files (or none) before the ranks start. Rank-local checkpoints (a remote
    checkpoint_dir) start over in every application and are left alone."""
    ckpt = spec.checkpoint_dir
    if not ckpt or ("://" in ckpt and not ckpt.startswith("file:")):
        return
    ckpt_root = checkpoints.checkpoint_root(spec, num_proc)
    if ckpt_root is None:
        return
    marker = os.path.join(ckpt_root, CHECKPOINT_DATA_FILE)
    try:
        if os.path.isdir(ckpt_root):
            try:
                with open(marker, encoding="utf-8") as fh:
                    recorded = json.load(fh).get("files_digest")
            except (OSError, ValueError):
                recorded = None
            if recorded == digest:
                return
            log.info("train: the checkpoints at %s were written for other training data (files %s, now %s): "
                     "training starts from epoch 1", ckpt_root, recorded, digest)
            shutil.rmtree(ckpt_root)
        os.makedirs(ckpt_root, exist_ok=True)
        with open(marker, "w", encoding="utf-8") as fh:
            json.dump({"files_digest": digest}, fh)
    except OSError as e:  # the driver cannot reach the ranks' checkpoint directory: as before
        log.warning("train: could not record the training data beside the checkpoints at %s (%s)", ckpt_root, e)


def _combined(members: list[dict[str, Any]], key: str) -> str:
    """An ensemble's hash: the digest of its members' `key` values, in member order."""
    return hashlib.sha256("+".join(mb[key] for mb in members).encode()).hexdigest()


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    timer = StageTimer("train")
    root = cfg["run"]["root"]
    features_dir = io.dataset_path(root, S.FEATURES)
    meta_dir = io.dataset_path(root, S.FEATURES_META)
    if not io.dataset_exists(spark, features_dir):
        raise FileNotFoundError(f"dataset not found: {features_dir} (produced by the features job; run it first)")
    S.require_columns(io.read_dataset(spark, features_dir, "features").columns, REQUIRED_COLUMNS,
                      f"features at {features_dir}")
    # Horovod: the ranks read the files of the features' current version, listed here once.
    files = {split: tuple(io.table_files(spark, features_dir, (S.SPLIT, split))) for split in S.SPLITS}
    if not files[S.SPLIT_TRAIN]:
        raise FileNotFoundError(f"{features_dir}: no train split files")
    meta = features_meta.read(meta_dir, spark)
    spec, launch = replace(spec_from_config(cfg, meta), files=tuple(files.items())), LaunchParams.from_config(cfg)
    with timer.stage("counts"):
        counts = split_counts(spark, features_dir)
    model_dir = io.dataset_path(root, S.MODEL)
    started = dt.datetime.now(dt.UTC)
    with timer.stage("decide"):
        decision, ids = decide(spark, cfg, model_dir, meta_dir, meta, spec, launch, counts, started)
    if not decision.train:
        return keep_model(spark, root, model_dir, decision, started)
    if decision.reason != "policy_off":
        log.info("train: training (%s): %s", decision.reason, decision.detail)
    members: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    files_digest = training_files_digest(spec)
    with ranks_files(spark, spec, timer) as ranks_spec:
        for j in range(1, launch.ensemble_size + 1):
            spec_j = replace(ranks_spec, seed=spec.seed + j - 1)
            if launch.ensemble_size > 1:
                log.info("train: ensemble member %d/%d (seed %d, train hash %s)", j, launch.ensemble_size,
                         spec_j.seed, spec_j.train_hash())
            data_checkpoints(spec_j, launch.num_proc, files_digest)
            with timer.stage("horovod" if launch.ensemble_size == 1 else f"horovod_member_{j}"):
                summary, blob = train_member(spark, spec_j, launch, j)
            members.append(summary)
            blobs.append(blob)
    first = members[0]
    if launch.ensemble_size == 1:
        model_bytes, train_hash, weights = blobs[0], first["train_hash"], first["weights_sha256"]
    else:
        with timer.stage("ensemble"):
            model_bytes = ensemble_in_executor(spark, spec.net, blobs)
        train_hash, weights = _combined(members, "train_hash")[:12], _combined(members, "weights_sha256")
    metadata = {
        "config_hash": cfg.hash(), "train_hash": train_hash, "num_proc": first["num_proc"],
        # For the retrain policy (retrain.py): when this job started, the settings apart from the
        # data, the customer/product indexes the model was built for, and why it trained.
        "trained_at": started.isoformat(timespec="seconds"),
        "settings_hash": retrain.spec_settings_hash(spec, launch), "ids_digest": ids,
        "train_decision": {k: decision.to_json()[k] for k in ("reason", "detail")},
        "net": spec.net.to_dict(), "features_meta": meta.sizes(),
        "training": {k: v for k, v in asdict(spec).items() if k not in ("net", "files")},
        "data_counts": counts, "rows_per_rank": first["rows_per_rank"], "steps_per_epoch": first["steps_per_epoch"],
        # The first member's training (the only one when ensemble_size is 1).
        **{k: first[k] for k in ("class_weights", "history", "best_epoch", "best_val_loss", "stopped_early",
                                 "resumed_from")},
        "weights_sha256": weights,
        "ensemble": {"size": len(members), "members": [
            {k: mb[k] for k in ("member", "seed", "train_hash", "history", "best_epoch", "best_val_loss",
                                "stopped_early", "resumed_from", "weights_sha256")} for mb in members]}
        if len(members) > 1 else None,
        "versions": first["versions"], "timings": timer.timings, "model_file": MODEL_FILE,
    }
    with timer.stage("save"):
        with io.publish_dir(spark, model_dir) as d:
            with open(os.path.join(d, MODEL_FILE), "wb") as fh:
                fh.write(model_bytes)
            features_meta.write(None, d, meta)
            metadata["timings"] = timer.timings
            io.write_json_atomic(None, os.path.join(d, METADATA_FILE), metadata)
    for mb in members:
        log.info("train: %sbest epoch %s (val loss %s), %d epochs run", f"member {mb['member']} (seed {mb['seed']}): "
                 if len(members) > 1 else "", mb["best_epoch"], mb["best_val_loss"], len(mb["history"]))
    log.info("train: model at %s%s", model_dir,
             f" (mean of {len(members)} members' star distributions)" if len(members) > 1 else "")
    retrain.write_record(spark, root, decision, model_dir, started)
    return metadata


def decide(spark: SparkSession, cfg: Config, model_dir: str, meta_dir: str, meta: features_meta.FeaturesMeta,
           spec: TrainSpec, launch: LaunchParams, counts: dict[str, dict[str, int]],
           now: dt.datetime) -> tuple[retrain.Decision, str | None]:
    """The retrain policy's decision for this run, and the features' ids digest (recorded in a
    new model's metadata whether or not the policy is on, so turning it on later compares it)."""
    try:
        ids = retrain.ids_digest(spark, meta_dir)
    except Exception as e:  # noqa: BLE001 - no digest: a later policy run retrains rather than guess
        log.warning("train: no digest of the customer/product indexers (%s: %s)", type(e).__name__, e)
        ids = None
    decision = retrain.decide(spark, retrain.RetrainPolicy.from_config(cfg), model_dir, features=meta, ids_now=ids,
                              settings_now=retrain.spec_settings_hash(spec, launch),
                              train_rows=counts.get(S.SPLIT_TRAIN, {}).get("rows", 0), now=now)
    return decision, ids


def keep_model(spark: SparkSession, root: str, model_dir: str, decision: retrain.Decision,
               now: dt.datetime) -> dict[str, Any]:
    """The skip: one log line with the numbers, the record, and the kept model's metadata."""
    n, th = decision.numbers, decision.numbers["thresholds"]
    growth = "n/a" if n.get("growth") is None else f"{n['growth']:+.2%}"
    age = "n/a" if n.get("age_days") is None else f"{n['age_days']:.2f} days"
    log.info("train: skipped, the model at %s is kept: training rows %s then, %s now (growth %s), age %s "
             "(thresholds: min_growth %s, max_age_days %s); same settings (%s) and features (record: %s)",
             model_dir, n.get("rows_then"), n.get("rows_now"), growth, age, th["min_growth"], th["max_age_days"],
             n.get("settings_hash_model"), io.dataset_path(root, retrain.RECORD))
    rec = retrain.write_record(spark, root, decision, model_dir, now)
    md = json.loads(io.read_text(spark, io.dataset_path(model_dir, METADATA_FILE)))
    return {**md, "train_decision": rec}
