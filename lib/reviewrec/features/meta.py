"""What the features job leaves for the stages after it (train, evaluate, recommend).

    <root>/features/   a Delta table partitioned by split (train|val|test): the rows (schema.FEATURES_COLUMNS)
    <root>/features_meta/vocab.json   {"vocab": {lemma: id}, "vocab_size", "num_users", "num_items",
                                       "seq_len", "num_features", "pad_id", "oov_id", "num_classes"}
    <root>/features_meta/user_indexer/, item_indexer/   the fitted StringIndexerModels

FeaturesMeta is that vocab.json as one object: the features job writes it, the train job reads it
(from any file system: a remote run root through Hadoop's FileSystem) and copies it next to the
model, scoring reads the sizes back from the model's metadata. On a local run root the ranks read
the Parquet files of the features table's current version (split_files; the train job lists them
from the snapshot); on a remote one the train job stages them for the ranks (model/staging.py).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from reviewrec import io
from reviewrec import schema as S

VOCAB_FILE = "vocab.json"
USER_INDEXER = "user_indexer"
ITEM_INDEXER = "item_indexer"
IDF = "idf"


@dataclass(frozen=True)
class FeaturesMeta:
    """Sizes and vocabulary of one features run."""

    vocab: dict[str, int]  # lemma -> sequence id (2..; 0 = padding, 1 = out of vocabulary)
    vocab_size: int        # ids 0..vocab_size-1
    num_users: int         # user_idx of a customer unseen in training = num_users
    num_items: int         # item_idx of a product unseen in training = num_items
    seq_len: int
    num_features: int      # TF-IDF vector size

    def sizes(self) -> dict[str, int]:
        return {"vocab_size": self.vocab_size, "num_users": self.num_users, "num_items": self.num_items,
                "seq_len": self.seq_len, "num_features": self.num_features}

    def to_json(self) -> dict[str, Any]:
        return {"vocab": self.vocab, **self.sizes(), "pad_id": S.SEQ_PAD_ID, "oov_id": S.SEQ_OOV_ID,
                "num_classes": S.NUM_STAR_CLASSES}


def local_path(path: str) -> str:
    """A path for plain file APIs (a rank reading a table's log, checkpoints): `file://` stripped;
    a remote URL is an error (its readers go through Hadoop's FileSystem, reviewrec.io)."""
    if path.startswith("file://"):
        return path[len("file://"):]
    if "://" in path:
        raise ValueError(f"{path}: not a local or mounted path (plain file reads cannot open it)")
    return path


def write(spark: SparkSession | None, meta_dir: str, meta: FeaturesMeta) -> None:
    io.write_json_atomic(spark, io.dataset_path(meta_dir, VOCAB_FILE), meta.to_json())


def read(meta_dir: str, spark: SparkSession | None = None) -> FeaturesMeta:
    """The FeaturesMeta in `meta_dir`: a local path, or any URL Hadoop reads (with `spark`)."""
    path = io.dataset_path(meta_dir, VOCAB_FILE) if "://" in meta_dir else os.path.join(meta_dir, VOCAB_FILE)
    if not io.path_exists(spark, path):
        raise FileNotFoundError(f"{path} not found (written by the features job; run it first)")
    d = json.loads(io.read_text(spark, path))
    return FeaturesMeta(vocab=d["vocab"], vocab_size=int(d["vocab_size"]), num_users=int(d["num_users"]),
                        num_items=int(d["num_items"]), seq_len=int(d["seq_len"]),
                        num_features=int(d["num_features"]))


def split_frame(spark: SparkSession, features_dir: str, split: str) -> DataFrame:
    """The rows of one split (without the split column), for Spark readers; FileNotFoundError
    when the features table has no such split."""
    if not io.table_files(spark, features_dir, (S.SPLIT, split)):
        raise FileNotFoundError(f"{features_dir}: no {split!r} split")
    return (io.read_dataset(spark, features_dir, "features")
            .where(F.col(S.SPLIT) == split)
            .drop(S.SPLIT))


def split_files(features_dir: str, split: str) -> list[str]:
    """Sorted Parquet files of one split in the features table's current version, from its
    _delta_log (never a directory listing: files of replaced or uncommitted versions lie there
    too); empty when the split has none."""
    key = f"{os.sep}{S.SPLIT}={split}{os.sep}"
    return [f for f in io.log_files(local_path(features_dir)) if key in f]
