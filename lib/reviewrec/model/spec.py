"""The train and evaluate stages' settings, built from the validated config only.

TrainSpec and EvaluateParams have no defaults of their own: every field comes from conf
`model:` (base.yaml plus overlays) or from the features metadata, so there is one place where a
default lives. Benchmarks and tests change a built spec with dataclasses.replace.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass

from reviewrec import io
from reviewrec import schema as S
from reviewrec.config import Config
from reviewrec.features.meta import FeaturesMeta
from reviewrec.features.meta import split_files as features_split_files
from reviewrec.model.net import NetParams

CHECKPOINTS = "model_checkpoints"  # <root>/model_checkpoints unless model.checkpoint_dir is set

# Fields that do not change the training trajectory: they stay out of the train hash.
_NOT_TRAJECTORY = ("files", "rank_dir", "checkpoint_dir", "epochs", "patience", "group_grads", "return_weights",
                   "return_model")


@dataclass(frozen=True)
class TrainSpec:
    """Everything a training rank needs (pickled to the Spark tasks by horovod.spark.run)."""

    features_dir: str
    net: NetParams
    num_users: int
    num_items: int
    checkpoint_dir: str | None
    optimizer: str
    learning_rate: float       # per worker; the ranks train with learning_rate x workers
    lr_decay: float            # epoch e (0-based) trains with learning_rate x workers x lr_decay^e
    batch_size: int
    epochs: int
    patience: int
    use_class_weights: bool
    label_smoothing: float
    id_dropout: float
    text_dropout: float
    seed: int
    deterministic: bool
    intra_op_threads: int
    inter_op_threads: int
    group_grads: bool
    max_steps_per_epoch: int   # 0: the whole (equalised) shard every epoch; benchmarks cap it
    validate: bool             # False: no validation split, no early stopping (benchmarks)
    return_weights: bool       # every rank returns its final weights (tests)
    return_model: bool         # rank 0 returns the saved model's bytes (the train job)
    files: tuple[tuple[str, tuple[str, ...]], ...]  # (split, its Parquet files) of one features version;
    #                            () = the current version's, read from the table's log by each rank;
    #                            names without a directory: files staged and shipped to the ranks (staging.py)
    rank_dir: str | None       # None: features and checkpoints are local or mounted paths; else where a
    #                            rank finds shipped files and keeps rank-local checkpoints ("" = the
    #                            rank's working directory, an executor's; staging.rank_dir)

    def split_files(self, split: str) -> list[str]:
        """The Parquet files the ranks read for `split`: the listed version's (shipped ones in the
        rank's directory), else the current one's."""
        if self.files:
            files = list(dict(self.files).get(split, ()))
            # A shipped file's bare name joins the rank's directory; a path stays as it is.
            return [os.path.join(self.rank_work_dir(), f) for f in files] if self.rank_dir is not None else files
        return features_split_files(self.features_dir, split)

    def rank_work_dir(self) -> str:
        """This rank's directory for shipped files and rank-local checkpoints (called in a rank)."""
        if self.rank_dir:
            return self.rank_dir
        # Horovod starts a rank in its Spark task's working directory and names it here.
        return os.environ.get("HOROVOD_SPARK_WORK_DIR") or os.getcwd()

    def train_hash(self) -> str:
        """Hash of what determines the training trajectory: a checkpoint is reused only if equal."""
        d = {k: v for k, v in asdict(self).items() if k not in _NOT_TRAJECTORY}
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


def net_from_config(cfg: Config, meta: FeaturesMeta) -> NetParams:
    m = cfg["model"]
    return NetParams(
        vocab_size=meta.vocab_size, seq_len=meta.seq_len, embedding_dim=m["embedding_dim"],
        lstm_units=m["lstm_units"], bidirectional=m["bidirectional"], dropout=float(m["dropout"]),
        user_buckets=m["user_buckets"], item_buckets=m["item_buckets"],
        user_embedding_dim=m["user_embedding_dim"], item_embedding_dim=m["item_embedding_dim"],
        pooling=m["pooling"], embedding_dropout=float(m["embedding_dropout"]), hidden_units=m["hidden_units"],
        ngram_buckets=m["ngram_buckets"], ngram_dim=m["ngram_dim"],
    )


def spec_from_config(cfg: Config, meta: FeaturesMeta) -> TrainSpec:
    m = cfg["model"]
    root = cfg["run"]["root"]
    if not 0 < m["lr_decay"] <= 1:
        raise ValueError(f"model.lr_decay = {m['lr_decay']!r}: must be in (0, 1]")
    return TrainSpec(
        features_dir=io.dataset_path(root, S.FEATURES), net=net_from_config(cfg, meta),
        num_users=meta.num_users, num_items=meta.num_items,
        checkpoint_dir=m["checkpoint_dir"] or io.dataset_path(root, CHECKPOINTS),
        optimizer=m["optimizer"], learning_rate=float(m["learning_rate"]), lr_decay=float(m["lr_decay"]),
        batch_size=m["batch_size"], epochs=m["epochs"], patience=m["early_stopping_patience"],
        use_class_weights=m["class_weights"], label_smoothing=float(m["label_smoothing"]),
        id_dropout=float(m["id_dropout"]), text_dropout=float(m["text_dropout"]), seed=m["seed"],
        deterministic=m["deterministic"], intra_op_threads=m["intra_op_threads"],
        inter_op_threads=m["inter_op_threads"], group_grads=m["group_grads"],
        max_steps_per_epoch=0, validate=True, return_weights=False, return_model=True, files=(), rank_dir=None,
    )


@dataclass(frozen=True)
class LaunchParams:
    """How the train job starts its Horovod ranks."""

    num_proc: int
    use_gloo: bool
    start_timeout: int
    ensemble_size: int

    @classmethod
    def from_config(cls, cfg: Config) -> LaunchParams:
        m = cfg["model"]
        return cls(num_proc=m["num_proc"], use_gloo=m["use_gloo"], start_timeout=m["start_timeout"],
                   ensemble_size=m["ensemble_size"])


@dataclass(frozen=True)
class EvaluateParams:
    """The evaluate stage's settings."""

    score_batch_size: int
    baseline_reg_params: tuple[float, ...]
    baseline_elastic_net: float
    baseline_max_iter: int
    bootstrap_reps: int
    seed: int

    @classmethod
    def from_config(cls, cfg: Config) -> EvaluateParams:
        m = cfg["model"]
        if m["bootstrap_reps"] < 0:
            raise ValueError(f"model.bootstrap_reps = {m['bootstrap_reps']}: 0 (no intervals) or the number "
                             "of resamples")
        return cls(score_batch_size=m["score_batch_size"],
                   baseline_reg_params=tuple(float(r) for r in m["baseline_reg_params"]),
                   baseline_elastic_net=float(m["baseline_elastic_net"]), baseline_max_iter=m["baseline_max_iter"],
                   bootstrap_reps=m["bootstrap_reps"], seed=m["seed"])
