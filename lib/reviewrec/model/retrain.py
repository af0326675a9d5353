"""The train job's retrain policy (`model.retrain` in conf/base.yaml, docs/scheduling.md "Retraining").

With `min_growth` and `max_age_days` both null the train job trains on every run. With either
set, and a model at <root>/model, the job keeps that model (and trains nothing) when all of:

  * its metadata.json and vocab.json read, and model.keras is there;
  * it was trained with the same training settings (`settings_hash`: the train hash's fields
    without the data's sizes, plus the epochs, the patience, the workers and the ensemble size);
  * the features are the ones it was built for: the same sequence vocabulary and seq_len
    (vocab.json) and the same customer and product indexes (`ids_digest` of the indexers);
  * the training rows changed by less than `min_growth` (|now - then| / then) since it, when set;
  * it is younger than `max_age_days` (from its `trained_at`), when set.

Anything else trains. `decide` returns the Decision, which the job logs and writes to
<root>/report/train_decision.json (`write_record`), trained or not.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from reviewrec import io
from reviewrec import schema as S
from reviewrec.config import Config
from reviewrec.features import meta as features_meta
from reviewrec.features.meta import FeaturesMeta
from reviewrec.model.rank import MODEL_FILE
from reviewrec.model.spec import LaunchParams, TrainSpec

log = logging.getLogger(__name__)

RECORD = "report/train_decision.json"
METADATA_FILE = "metadata.json"  # the train job's (train.METADATA_FILE, which imports this module)

# TrainSpec fields that are no training setting: where the data and checkpoints are, what the
# ranks return, and the data's own sizes (compared through the features, below).
_NOT_SETTINGS = ("features_dir", "files", "rank_dir", "checkpoint_dir", "return_weights", "return_model",
                 "group_grads", "num_users", "num_items")
_NET_DATA = ("vocab_size",)  # set by the features' vocabulary, compared with it


@dataclass(frozen=True)
class RetrainPolicy:
    """`model.retrain`: both None = train on every run."""

    min_growth: float | None
    max_age_days: float | None

    @classmethod
    def from_config(cls, cfg: Config) -> RetrainPolicy:
        r = cfg["model"]["retrain"]
        g, a = r["min_growth"], r["max_age_days"]
        return cls(min_growth=None if g is None else float(g), max_age_days=None if a is None else float(a))

    @property
    def active(self) -> bool:
        return self.min_growth is not None or self.max_age_days is not None


@dataclass(frozen=True)
class Decision:
    """Whether the train job trains, and why (`reason` a short code, `detail` a sentence)."""

    train: bool
    reason: str
    detail: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"trained": self.train, "decision": "train" if self.train else "skip", "reason": self.reason,
                "detail": self.detail, "numbers": self.numbers}


def training_settings(training: Mapping[str, Any], net: Mapping[str, Any], num_proc: int,
                      ensemble_size: int) -> dict[str, Any]:
    """The settings a model's training depends on apart from the data: `training` = a TrainSpec's
    fields without the net (as metadata.json's "training"), `net` = its NetParams (metadata's "net")."""
    return {"training": {k: v for k, v in sorted(training.items()) if k not in _NOT_SETTINGS and k != "net"},
            "net": {k: v for k, v in sorted(net.items()) if k not in _NET_DATA},
            "num_proc": int(num_proc), "ensemble_size": int(ensemble_size)}


def settings_hash(settings: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


def spec_settings_hash(spec: TrainSpec, launch: LaunchParams) -> str:
    """The settings hash of the training the job would run now."""
    d = asdict(spec)
    return settings_hash(training_settings(d, d["net"], launch.num_proc, launch.ensemble_size))


def metadata_settings_hash(md: Mapping[str, Any]) -> str:
    """The settings hash of a saved model, from its metadata.json (KeyError if it lacks the fields)."""
    ens = md.get("ensemble")
    size = int(ens["size"]) if ens else 1
    return settings_hash(training_settings(md["training"], md["net"], md["num_proc"], size))


def ids_digest(spark: Any, meta_dir: str) -> str:
    """A digest of the customer and product indexes the features job fitted (<meta_dir>/user_indexer,
    item_indexer): their labels in index order, hashed by Spark from the saved StringIndexerModels'
    data (one row each; the labels never reach the driver)."""
    from pyspark.sql import functions as F

    parts = []
    for name in (features_meta.USER_INDEXER, features_meta.ITEM_INDEXER):
        if not io.path_exists(spark, io.dataset_path(io.dataset_path(meta_dir, name), "metadata")):
            raise FileNotFoundError(f"{io.dataset_path(meta_dir, name)}: no saved StringIndexerModel (written by the "
                                    "features job)")
        path = io.dataset_path(meta_dir, name) + "/data"
        df = spark.read.parquet("file://" + os.path.abspath(features_meta.local_path(path)) if io.is_local(path)
                                else path)
        col = F.col("labelsArray") if "labelsArray" in df.columns else F.array(F.col("labels"))
        row = df.select(F.sha2(F.to_json(col), 256).alias("h"), F.size(col[0]).alias("n")).first()
        parts.append(f"{name}:{row['n']}:{row['h']}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def ids_misfit(spark: Any, model_dir: str) -> str:
    """'' when the customer and product indexes of the features beside the model (<root>/
    features_meta) are the ones the model was trained on: the same sizes and, when the model
    recorded its `ids_digest`, the same ids in the same order; else what differs. A model scored
    through other indexes gives one customer's or product's embedding to another (the features
    job refits them on every run; a run that skips training keeps the older model)."""
    meta_dir = io.dataset_path(io.parent(model_dir), S.FEATURES_META)
    model_meta, now = features_meta.read(model_dir, spark), features_meta.read(meta_dir, spark)
    model_ids = json.loads(io.read_text(spark, io.dataset_path(model_dir, METADATA_FILE))).get("ids_digest")
    ids_now = ids_digest(spark, meta_dir) if model_ids is not None else None
    return _ids_change(model_meta, now, model_ids, ids_now, meta_dir)


def _ids_change(model_meta: FeaturesMeta, now: FeaturesMeta, model_ids: str | None, ids_now: str | None,
                meta_dir: str) -> str:
    """'' when the indexes' sizes are the model's and the digests (where both are known) agree;
    else what differs."""
    if (model_meta.num_users, model_meta.num_items) != (now.num_users, now.num_items):
        return (f"the customer/product indexes differ (model {model_meta.num_users} customers, "
                f"{model_meta.num_items} products; the features at {meta_dir} {now.num_users}, {now.num_items})")
    if model_ids is not None and ids_now is not None and model_ids != ids_now:
        return (f"the customer and product indexes at {meta_dir} are not the ones the model was trained on "
                f"(ids digest: model {model_ids}, features {ids_now})")
    return ""


def _age_days(trained_at: Any, now: dt.datetime) -> float | None:
    try:
        then = dt.datetime.fromisoformat(str(trained_at))
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=dt.UTC)
    return (now - then).total_seconds() / 86400.0


def _features_change(model_meta: FeaturesMeta, now: FeaturesMeta, model_ids: str | None, ids_now: str | None) -> str:
    """'' when the model fits the features; else what differs."""
    if model_meta.vocab != now.vocab or model_meta.vocab_size != now.vocab_size or model_meta.seq_len != now.seq_len:
        added = len(set(now.vocab) - set(model_meta.vocab))
        dropped = len(set(model_meta.vocab) - set(now.vocab))
        return (f"the sequence vocabulary differs (model {model_meta.vocab_size} ids, seq_len {model_meta.seq_len}; "
                f"features {now.vocab_size} ids, seq_len {now.seq_len}; {added} lemmas new, {dropped} gone, the "
                "others' ids may have moved)")
    change = _ids_change(model_meta, now, model_ids, ids_now, "features_meta")
    if change:
        return change
    if model_ids is None or ids_now is None:
        return (f"the customer/product indexes cannot be compared (ids digest: model {model_ids}, "
                f"features {ids_now})")
    return ""


def decide(spark: Any, policy: RetrainPolicy, model_dir: str, *, features: FeaturesMeta, ids_now: str | None,
           settings_now: str, train_rows: int, now: dt.datetime | None = None) -> Decision:
    """Train or keep the model at `model_dir`, for features `features` (their ids digest `ids_now`)
    with `train_rows` training rows and the training settings hash `settings_now`, at `now` (UTC)."""
    now = now or dt.datetime.now(dt.UTC)
    th = {"min_growth": policy.min_growth, "max_age_days": policy.max_age_days}
    numbers: dict[str, Any] = {"thresholds": th, "rows_now": train_rows, "settings_hash_now": settings_now}
    if not policy.active:
        return Decision(True, "policy_off", "model.retrain.min_growth and max_age_days are null: every run trains",
                        numbers)
    meta_path = io.dataset_path(model_dir, METADATA_FILE)
    if not io.path_exists(spark, meta_path):
        return Decision(True, "no_model", f"no model at {model_dir}", numbers)
    keras = io.dataset_path(model_dir, MODEL_FILE)
    try:
        md = json.loads(io.read_text(spark, meta_path))
        model_meta = features_meta.read(model_dir, spark)
        model_settings = metadata_settings_hash(md)
        rows_then = int(md["data_counts"]["train"]["rows"])
        if not io.path_exists(spark, keras):
            raise FileNotFoundError(keras)
    except Exception as e:  # noqa: BLE001 - any unreadable model is retrained, with the reason recorded
        return Decision(True, "model_unreadable", f"the model at {model_dir} is unreadable "
                        f"({type(e).__name__}: {e})", numbers)
    age = _age_days(md.get("trained_at"), now)
    growth = (train_rows - rows_then) / rows_then if rows_then > 0 else None
    numbers.update({"rows_then": rows_then, "growth": None if growth is None else round(growth, 6),
                    "age_days": None if age is None else round(age, 4), "trained_at": md.get("trained_at"),
                    "settings_hash_model": model_settings, "model_train_hash": md.get("train_hash"),
                    "ids_digest_model": md.get("ids_digest"), "ids_digest_now": ids_now})
    if model_settings != settings_now:
        return Decision(True, "settings_changed", f"the training settings changed (settings hash {model_settings} "
                        f"-> {settings_now})", numbers)
    change = _features_change(model_meta, features, md.get("ids_digest"), ids_now)
    if change:
        return Decision(True, "features_changed", f"the model does not fit the features: {change}", numbers)
    if policy.min_growth is not None:
        if growth is None:
            return Decision(True, "grew", f"the model was trained on {rows_then} training rows", numbers)
        if abs(growth) >= policy.min_growth:
            return Decision(True, "grew", f"the training rows changed by {growth:+.1%} ({rows_then} -> "
                            f"{train_rows}), at least model.retrain.min_growth = {policy.min_growth:g}", numbers)
    if policy.max_age_days is not None:
        if age is None:
            return Decision(True, "age_unknown", f"the model's trained_at ({md.get('trained_at')!r}) gives no age",
                            numbers)
        if age >= policy.max_age_days:
            return Decision(True, "too_old", f"the model is {age:.2f} days old, at least model.retrain.max_age_days"
                            f" = {policy.max_age_days:g}", numbers)
    why = []
    if policy.min_growth is not None:
        why.append(f"training rows {rows_then} -> {train_rows} ({growth:+.1%}, below min_growth "
                   f"{policy.min_growth:g})")
    if policy.max_age_days is not None:
        why.append(f"model {age:.2f} days old (below max_age_days {policy.max_age_days:g})")
    return Decision(False, "current", "the model is current: " + "; ".join(why), numbers)


def write_record(spark: Any, root: str, decision: Decision, model_dir: str, at: dt.datetime) -> dict[str, Any]:
    """<root>/report/train_decision.json: this run's decision (overwritten by every run)."""
    rec = {**decision.to_json(), "model": model_dir, "at": at.isoformat(timespec="seconds")}
    io.write_json_atomic(spark, io.dataset_path(root, RECORD), rec)
    return rec
