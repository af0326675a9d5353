"""The function every Horovod rank runs (a Spark task under horovod.spark.run).

Each rank reads its own share of the train and val Parquet files (data.rank_shard), trains the
same network with hvd.DistributedOptimizer (learning rate x workers), and all ranks take the
same steps per epoch (the smallest shard's). Horovod's stock Keras callbacks broadcast rank 0's
variables, average the train metrics and set each epoch's learning rate; validation metrics are
summed exactly over the ranks (row-weighted). Every rank restores the last complete checkpoint,
rank 0 writes one after every epoch, and early stopping follows rank 0's decision.

Deterministic: the row order, id/text dropout and the network's initial weights are functions
of (seed, epoch, rank) only, so a resumed run trains on the batches an uninterrupted one would.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from typing import Any

import numpy as np

from reviewrec import schema as S
from reviewrec.model import checkpoints
from reviewrec.model.data import Arrays, epoch_order, rank_shard
from reviewrec.model.exchange import distributed_optimizer
from reviewrec.model.net import bucket_ids, build_model, class_weights, drop_ids, drop_text, make_optimizer
from reviewrec.model.spec import TrainSpec
from reviewrec.runtime import setup_logging

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"


def dataset(tf: Any, a: Arrays, users: np.ndarray, items: np.ndarray, batch: int, onehot: bool,
            seq: np.ndarray | None = None) -> Any:
    """In-memory batches of (seq, user, item) -> label (one-hot for label smoothing)."""
    x = {"seq": a.seq if seq is None else seq, "user": users.reshape(-1, 1), "item": items.reshape(-1, 1)}
    y = np.eye(S.NUM_STAR_CLASSES, dtype=np.float32)[a.label] if onehot else a.label
    # In-memory slices: nothing for tf.data's autotuner to tune, and its model thread makes the
    # iterator's destructor wait for its next wake-up (up to ~5 s at the end of every fit).
    opts = tf.data.Options()
    opts.autotune.enabled = False
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).with_options(opts)


def loss(tf: Any, label_smoothing: float) -> Any:
    """Sparse cross-entropy, or categorical with smoothing (which needs one-hot targets)."""
    if label_smoothing > 0:
        return tf.keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
    return "sparse_categorical_crossentropy"


def epoch_dataset(tf: Any, spec: TrainSpec, train: Arrays, epoch: int, rank: int, steps: int) -> Any:
    """This rank's batches of one epoch: its rows in epoch_order, ids and sequences dropped at
    the configured rates, all drawn from (seed, epoch, rank)."""
    part = train.take(epoch_order(len(train), spec.seed, epoch, rank)[: steps * spec.batch_size])
    rng = np.random.RandomState((spec.seed + 7919 * (epoch + 1) + 104729 * rank) % (2**32 - 1))
    users = drop_ids(bucket_ids(part.user, spec.num_users, spec.net.user_buckets), spec.id_dropout, rng)
    items = drop_ids(bucket_ids(part.item, spec.num_items, spec.net.item_buckets), spec.id_dropout, rng)
    seqs = drop_text(part.seq, spec.text_dropout, rng)
    return dataset(tf, part, users, items, spec.batch_size, spec.label_smoothing > 0, seqs)


def validate(tf: Any, hvd: Any, model: Any, spec: TrainSpec, val: Arrays) -> dict[str, float]:
    """val loss and accuracy over every rank's val shard (row-weighted sums, exact)."""
    if len(val):
        vu = bucket_ids(val.user, spec.num_users, spec.net.user_buckets)
        vi = bucket_ids(val.item, spec.num_items, spec.net.item_buckets)
        vl, va = model.evaluate(dataset(tf, val, vu, vi, 1024, spec.label_smoothing > 0), verbose=0)
    else:
        vl, va = 0.0, 0.0
    # Horovod: sums over the ranks, so the metrics are those of the whole val split.
    tot = hvd.allreduce(tf.constant([vl * len(val), va * len(val), float(len(val))], tf.float64),
                        op=hvd.Sum).numpy()
    return {"val_loss": float(tot[0] / max(tot[2], 1)), "val_accuracy": float(tot[1] / max(tot[2], 1))}


def end_epoch(state: dict[str, Any], rec: dict[str, Any], spec: TrainSpec) -> bool:
    """Record an epoch in `state`; True when it is the best so far (lowest val loss)."""
    state["history"].append(rec)
    state["epoch"] = rec["epoch"]
    improved = "val_loss" not in rec or state["best_val_loss"] is None or \
        rec["val_loss"] < state["best_val_loss"] - 1e-4
    if improved:
        state.update(best_val_loss=rec.get("val_loss"), best_epoch=rec["epoch"], wait=0)
    else:
        state["wait"] += 1
    state["stopped_early"] = spec.validate and state["wait"] >= spec.patience
    return improved


def weights_digest(weights: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for w in weights:
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def saved_model_bytes(spec: TrainSpec, weights: list[np.ndarray]) -> bytes:
    """A fresh, uncompiled copy with `weights`, saved: no (Horovod-wrapped) optimizer inside."""
    plain = build_model(spec.net)
    plain.set_weights(weights)
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, MODEL_FILE)
        plain.save(p)
        with open(p, "rb") as fh:
            return fh.read()


def versions() -> dict[str, str]:
    import horovod
    import keras
    import pyspark
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "horovod": horovod.__version__,
            "pyspark": pyspark.__version__, "numpy": np.__version__}


def start_worker(spec: TrainSpec) -> tuple[Any, Any, Any]:
    """Threads, hvd.init, one GPU per process (if any), seeds: (tensorflow, horovod.tensorflow,
    horovod.tensorflow.keras)."""
    setup_logging()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(spec.intra_op_threads)  # before TF's context
    tf.config.threading.set_inter_op_parallelism_threads(spec.inter_op_threads)
    import horovod.tensorflow as hvd_tf
    import horovod.tensorflow.keras as hvd

    hvd.init()  # Horovod: initialize, then pin one GPU per process (NCCL does the allreduce there)
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        for g in gpus:
            tf.config.experimental.set_memory_growth(g, True)
        tf.config.set_visible_devices(gpus[hvd.local_rank()], "GPU")
    tf.keras.utils.set_random_seed(spec.seed)
    if spec.deterministic:
        tf.config.experimental.enable_op_determinism()
    return tf, hvd_tf, hvd


def read_shards(hvd: Any, spec: TrainSpec) -> tuple[Arrays, Arrays | None, list[int], np.ndarray, int]:
    """This rank's train (and val) rows; every rank's train row count, the global star counts,
    and the steps per epoch (the smallest shard's: every rank must run as many)."""
    rank, size = hvd.rank(), hvd.size()
    train = rank_shard(spec.split_files(S.SPLIT_TRAIN), rank, size, spec.net.seq_len)
    val = rank_shard(spec.split_files(S.SPLIT_VAL), rank, size, spec.net.seq_len) \
        if spec.validate else None
    rows = hvd.allgather_object(len(train))  # Horovod: every rank's shard size and star counts
    counts = np.sum(hvd.allgather_object(np.bincount(train.label, minlength=S.NUM_STAR_CLASSES)), axis=0)
    if min(rows) == 0:
        raise ValueError(f"a rank has no training rows (rows per rank {rows}); fewer ranks or more data")
    steps = max(min(rows) // spec.batch_size, 1)
    return train, val, rows, counts, min(steps, spec.max_steps_per_epoch) if spec.max_steps_per_epoch else steps


def train_rank(spec: TrainSpec) -> dict[str, Any]:
    """Runs on every Horovod rank. Returns this rank's summary (rank 0's carries the model)."""
    tf, hvd_tf, hvd = start_worker(spec)
    rank, size = hvd.rank(), hvd.size()
    t_read = time.perf_counter()
    train, val, rows, counts, steps = read_shards(hvd_tf, spec)
    read_s = time.perf_counter() - t_read
    cw = class_weights(counts) if spec.use_class_weights else None

    model = build_model(spec.net)
    # Horovod: scale the learning rate by the number of workers (the effective batch grows) and
    # average the gradients over the ranks.
    opt = distributed_optimizer(tf, hvd, make_optimizer(spec.optimizer, spec.learning_rate * size), model,
                                spec.group_grads)
    model.compile(optimizer=opt, loss=loss(tf, spec.label_smoothing), metrics=["accuracy"])
    opt._create_all_weights(model.trainable_variables)  # slots exist now: a checkpoint restores them
    ckpt = tf.train.Checkpoint(model=model, optimizer=opt, epoch=tf.Variable(0, dtype=tf.int64, name="epoch"))
    ckpt_root = checkpoints.checkpoint_root(spec, size)
    state, resumed_from = checkpoints.resume(hvd_tf, ckpt, ckpt_root)
    best = checkpoints.load_best(ckpt_root) if rank == 0 and state["best_val_loss"] is not None else None

    # Horovod: rank 0's variables to every rank, train metrics averaged, each epoch's rate set.
    callbacks = [hvd.callbacks.BroadcastGlobalVariablesCallback(0), hvd.callbacks.MetricAverageCallback(),
                 hvd.callbacks.LearningRateScheduleCallback(initial_lr=spec.learning_rate * size,
                                                            multiplier=spec.lr_decay, momentum_correction=False)]
    # A run that already stopped early stays stopped: its rerun only re-exports the model.
    for epoch in range(spec.epochs if state["stopped_early"] else state["epoch"], spec.epochs):
        t0 = time.perf_counter()
        hist = model.fit(epoch_dataset(tf, spec, train, epoch, rank, steps), epochs=epoch + 1, initial_epoch=epoch,
                         class_weight=cw, verbose=0, callbacks=callbacks, shuffle=False)
        dt, samples = time.perf_counter() - t0, steps * spec.batch_size * size
        rec = {"epoch": epoch + 1, "loss": float(hist.history["loss"][-1]),
               "accuracy": float(hist.history["accuracy"][-1]), "seconds": round(dt, 3), "samples": samples,
               "samples_per_s": round(samples / dt, 2), "learning_rate": float(tf.keras.backend.get_value(opt.lr))}
        if val is not None:
            rec.update(validate(tf, hvd_tf, model, spec, val))
        if end_epoch(state, rec, spec) and rank == 0:
            best = model.get_weights()
            if ckpt_root:
                checkpoints.save_best(ckpt_root, best)
        ckpt.epoch.assign(epoch + 1)
        if rank == 0:
            log.info("epoch %d: %s", epoch + 1, rec)
            if ckpt_root:
                checkpoints.write(ckpt, ckpt_root, epoch + 1, state)
        if hvd_tf.broadcast_object(state["stopped_early"], root_rank=0):  # Horovod: rank 0's decision
            break

    final = model.get_weights()
    out: dict[str, Any] = {
        "rank": rank, "size": size, "local_rows": len(train), "rows_per_rank": rows,
        "val_rows_local": len(val) if val is not None else 0, "steps_per_epoch": steps,
        "class_counts": counts.tolist(), "class_weights": cw, "history": state["history"],
        "best_epoch": state["best_epoch"], "best_val_loss": state["best_val_loss"],
        "stopped_early": state["stopped_early"], "resumed_from": resumed_from, "read_seconds": round(read_s, 3),
        "weights_sha256": weights_digest(final), "checkpoint_root": ckpt_root, "versions": versions(),
    }
    if spec.return_weights:
        out["weights"] = final
    if rank == 0 and spec.return_model:
        out["model_bytes"] = saved_model_bytes(spec, best if best is not None else final)
    return out
