"""The features dataset the model reads (written by the features job, issue 3).

    <root>/features        review_id, customer_id, product_id, user_idx (int), item_idx (int),
                           tfidf (ml vector), seq (array<int>, fixed length, 0 = pad, 1 = OOV),
                           label (int 0..4 = star - 1), label_onehot, star_rating (int),
                           review_date (date), split (train / val / test)
    <root>/features_meta/  vocab.json (token -> id) plus user/item index sizes, seq_len and
                           num_features (in vocab.json or in a sibling *.json)

Each split is its own set of Parquet files: either a `split=<name>` partition directory or a
`<name>/` subdirectory. Training ranks list those files and read their share directly.
"""
from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from typing import Any

# The features contract itself lives in reviewrec.schema (written by the features job); the
# model code uses these names for it.
from reviewrec.schema import (
    FEATURES, FEATURES_META, ITEM_IDX, LABEL, LABEL_ONEHOT, SEQ, SPLIT, SPLITS, TFIDF, USER_IDX,
)
from reviewrec.schema import NUM_STAR_CLASSES as NUM_CLASSES
from reviewrec.schema import SEQ_OOV_ID as OOV_ID
from reviewrec.schema import SEQ_PAD_ID as PAD_ID
from reviewrec.schema import SPLIT_TEST as TEST
from reviewrec.schema import SPLIT_TRAIN as TRAIN
from reviewrec.schema import SPLIT_VAL as VAL

MODEL = "model"
REPORT_MODEL = "report/model"

# Columns a training rank reads from the shards; everything else stays on disk.
TRAIN_COLUMNS = (SEQ, USER_IDX, ITEM_IDX, LABEL)
REQUIRED_COLUMNS = ("review_id", USER_IDX, ITEM_IDX, SEQ, LABEL)

# Output columns of score().
PROBS = "star_probs"
EXPECTED_RATING = "expected_rating"
PREDICTED_STAR = "predicted_star"

# Names the features job may give the sizes under (first hit wins).
_SIZE_KEYS = {
    "num_users": ("num_users", "n_users", "user_index_size", "users", "user_size"),
    "num_items": ("num_items", "n_items", "item_index_size", "items", "item_size"),
    "seq_len": ("seq_len", "sequence_length", "max_len"),
    "num_features": ("num_features", "n_features", "tfidf_size", "tfidf_num_features"),
    "vocab_size": ("vocab_size", "n_vocab"),
}
_VOCAB_KEYS = ("vocab", "token_to_id", "tokens")


@dataclass(frozen=True)
class FeaturesMeta:
    """What the model needs to know about the features: sizes and the vocabulary."""

    vocab: dict[str, int]
    num_users: int
    num_items: int
    seq_len: int
    num_features: int
    vocab_size: int  # ids 0..vocab_size-1 (includes PAD and OOV)

    def to_dict(self) -> dict[str, Any]:
        return {"num_users": self.num_users, "num_items": self.num_items, "seq_len": self.seq_len,
                "num_features": self.num_features, "vocab_size": self.vocab_size}


def _local(path: str) -> str:
    if path.startswith("file://"):
        return path[len("file://"):]
    if "://" in path:
        raise ValueError(f"{path}: training ranks and the model loader read local or mounted paths "
                         "(use a shared mount such as /dbfs or an NFS path on clusters)")
    return path


def _find(d: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        if k in d:
            return d[k]
    for v in d.values():  # one level of nesting, e.g. {"sizes": {...}}
        if isinstance(v, dict) and not all(isinstance(x, int) for x in v.values()):
            for k in keys:
                if k in v:
                    return v[k]
    return None


def load_meta(meta_dir: str) -> FeaturesMeta:
    """Read <root>/features_meta: vocab.json plus sizes from any *.json in the directory."""
    d = _local(meta_dir)
    vocab_path = os.path.join(d, "vocab.json")
    if not os.path.isfile(vocab_path):
        raise FileNotFoundError(f"{vocab_path} not found (produced by the features job; run it first)")
    with open(vocab_path, encoding="utf-8") as fh:
        raw = json.load(fh)
    docs = [raw] + [json.load(open(p, encoding="utf-8")) for p in sorted(glob.glob(os.path.join(d, "*.json")))
                    if os.path.basename(p) != "vocab.json"]
    vocab = _find(raw, _VOCAB_KEYS) if isinstance(raw, dict) else None
    if not isinstance(vocab, dict):
        vocab = {k: v for k, v in raw.items() if isinstance(v, int) and not isinstance(v, bool)}
    sizes: dict[str, Any] = {}
    for name, keys in _SIZE_KEYS.items():
        for doc in docs:
            if isinstance(doc, dict) and (v := _find(doc, keys)) is not None:
                sizes[name] = int(v)
                break
    missing = [k for k in ("num_users", "num_items", "seq_len") if k not in sizes]
    if missing:
        raise ValueError(f"{d}: features meta lacks {missing} (looked for {[_SIZE_KEYS[m] for m in missing]})")
    vocab_size = max(sizes.get("vocab_size", 0), (max(vocab.values()) + 1) if vocab else 2, 2)
    return FeaturesMeta(vocab=vocab, num_users=sizes["num_users"], num_items=sizes["num_items"],
                        seq_len=sizes["seq_len"], num_features=sizes.get("num_features", 0),
                        vocab_size=vocab_size)


def split_files(features_dir: str, split: str) -> list[str]:
    """Sorted Parquet files of one split (`split=<name>/` partition or `<name>/` subdirectory)."""
    d = _local(features_dir).rstrip("/")
    for sub in (f"{SPLIT}={split}", split):
        files = sorted(glob.glob(os.path.join(d, sub, "**", "*.parquet"), recursive=True))
        if files:
            return files
    return []


def split_path(features_dir: str, split: str) -> str:
    """The directory of one split, for Spark readers (partition column or subdirectory)."""
    d = _local(features_dir).rstrip("/")
    for sub in (f"{SPLIT}={split}", split):
        if os.path.isdir(os.path.join(d, sub)):
            return os.path.join(d, sub)
    raise FileNotFoundError(f"{features_dir}: no {split!r} split (neither {SPLIT}={split}/ nor {split}/)")
