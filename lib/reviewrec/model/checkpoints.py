"""Per-epoch training checkpoints: <checkpoint_dir>/<train hash>-np<workers>/epoch-NNNN.

Rank 0 writes each epoch's checkpoint (tf.train.Checkpoint of model + optimizer + epoch, and
state.json: history, best epoch, early-stopping counter) to a temporary directory and renames it
into place, so an epoch directory is complete or absent; the last two are kept. The weights of
the best validation epoch so far go to best_weights.npz beside them. Every rank restores from
the directory rank 0 finds, so on a multi-host cluster a resume needs it on a shared mount.

A checkpoint_dir on a remote file system (the default <root>/model_checkpoints of an hdfs:// or
s3a:// run root) cannot be written by the ranks, which have no Hadoop client: they then keep
their checkpoints in their own working directory (RANK_LOCAL under TrainSpec.rank_work_dir, an
executor's directory that goes with its application), so a rerun in a new application starts
from epoch 0; set model.checkpoint_dir to a local path (same machine) or a shared mount to resume.
"""
from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import uuid
from typing import Any

import numpy as np

from reviewrec.features.meta import local_path
from reviewrec.model.spec import TrainSpec

log = logging.getLogger(__name__)

PREFIX = "epoch-"
RANK_LOCAL = "model_checkpoints"
STATE_FILE = "state.json"
BEST_FILE = "best_weights.npz"


def fresh_state() -> dict[str, Any]:
    return {"epoch": 0, "history": [], "best_val_loss": None, "best_epoch": 0, "wait": 0, "stopped_early": False}


def checkpoint_root(spec: TrainSpec, size: int) -> str | None:
    if not spec.checkpoint_dir:
        return None
    name = f"{spec.train_hash()}-np{size}"
    if "://" in spec.checkpoint_dir and not spec.checkpoint_dir.startswith("file:"):
        return os.path.join(spec.rank_work_dir(), RANK_LOCAL, name)
    return os.path.join(local_path(spec.checkpoint_dir), name)


def latest(ckpt_root: str | None) -> tuple[str, dict[str, Any]] | None:
    """(directory, state) of the last complete epoch checkpoint, or None."""
    if not ckpt_root or not os.path.isdir(ckpt_root):
        return None
    for d in sorted(glob.glob(os.path.join(ckpt_root, PREFIX + "[0-9]*")), reverse=True):
        state_path = os.path.join(d, STATE_FILE)
        if os.path.isfile(state_path):
            with open(state_path, encoding="utf-8") as fh:
                return d, json.load(fh)
    return None


def resume(hvd: Any, ckpt: Any, ckpt_root: str | None) -> tuple[dict[str, Any], str | None]:
    """Every rank restores `ckpt` from the last complete checkpoint rank 0 finds (a shared mount):
    (its state, its directory), or (fresh_state(), None) when there is none."""
    found = hvd.broadcast_object(latest(ckpt_root) if hvd.rank() == 0 else None, root_rank=0)
    if not found:
        return fresh_state(), None
    path, state = found
    ckpt.read(os.path.join(path, "ckpt")).assert_existing_objects_matched()
    log.info("rank %d: resumed from %s (epoch %d complete)", hvd.rank(), path, state["epoch"])
    return state, path


def write(ckpt: Any, ckpt_root: str, epoch: int, state: dict[str, Any], keep: int = 2) -> str:
    """Write epoch `epoch` (1-based) to a temporary directory, then rename it to epoch-NNNN."""
    os.makedirs(ckpt_root, exist_ok=True)
    final = os.path.join(ckpt_root, f"{PREFIX}{epoch:04d}")
    tmp = os.path.join(ckpt_root, f".tmp-{uuid.uuid4().hex[:8]}")
    os.makedirs(tmp)
    ckpt.write(os.path.join(tmp, "ckpt"))
    with open(os.path.join(tmp, STATE_FILE), "w", encoding="utf-8") as fh:
        json.dump(state, fh, indent=1)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.rename(tmp, final)
    for old in sorted(glob.glob(os.path.join(ckpt_root, PREFIX + "[0-9]*")))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_best(ckpt_root: str, weights: list[np.ndarray]) -> None:
    os.makedirs(ckpt_root, exist_ok=True)
    path = os.path.join(ckpt_root, BEST_FILE)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:6]}.npz"
    np.savez(tmp, **{f"w{i}": w for i, w in enumerate(weights)})
    os.replace(tmp, path)


def load_best(ckpt_root: str | None) -> list[np.ndarray] | None:
    path = os.path.join(ckpt_root, BEST_FILE) if ckpt_root else None
    if not path or not os.path.isfile(path):
        return None
    with np.load(path) as z:
        return [z[f"w{i}"] for i in range(len(z.files))]
