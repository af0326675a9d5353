"""The train job: the star-rating LSTM trained data-parallel with horovod.spark.run.

Reads <root>/features (train + val splits) and <root>/features_meta; writes <root>/model:
    model.keras      the trained Keras model (best validation epoch), no optimizer state
    vocab.json       token -> id, as the features job wrote it
    features_meta.json  the sizes the model was built for (users, items, seq_len, vocab)
    metadata.json    config hash, network params, data counts, history, versions, timings

Every rank reads its own Parquet shards with pyarrow (data.rank_shard); the driver only
collects per-split counts. Rank 0 writes a checkpoint after every epoch to
<checkpoint_dir>/<train hash>/epoch-NNNN (model + optimizer state + history, moved into
place when complete); a rerun with the same training config resumes after the last
complete one. On clusters the checkpoint directory must be a shared mount.

With `model.ensemble_size` k > 1 the job runs horovod.spark.run k times, member j with seed
seed + j - 1 (so its own train hash and checkpoint directory: a rerun resumes each member), and
saves one model averaging the members' star distributions (net.build_ensemble); metadata.json
lists the members.
"""
from __future__ import annotations

import glob
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from pyspark.sql import SparkSession

from reviewrec import io
from reviewrec.config import Config
from reviewrec.model import contract as C
from reviewrec.model.data import Arrays, epoch_order, rank_shard
from reviewrec.model.net import (
    NetParams, bucket_ids, build_ensemble, build_model, class_weights, drop_ids, drop_text, make_optimizer,
)
from reviewrec.runtime import StageTimer, setup_logging
from reviewrec.schema import require_columns

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
CKPT_PREFIX = "epoch-"
STATE_FILE = "state.json"


@dataclass(frozen=True)
class TrainSpec:
    """Everything a rank needs (pickled to the Spark tasks by horovod.spark.run)."""

    features_dir: str
    net: NetParams
    num_users: int
    num_items: int
    checkpoint_dir: str | None = None
    optimizer: str = "rmsprop"
    learning_rate: float = 1e-3
    batch_size: int = 64
    epochs: int = 5
    patience: int = 2
    use_class_weights: bool = False
    id_dropout: float = 0.2
    text_dropout: float = 0.0
    label_smoothing: float = 0.0
    # Weight of the squared error of the expected rating (sum_s p(s)*s - star)^2 added to the
    # cross-entropy (0 = cross-entropy only); validation loss and early stopping use the sum.
    rating_loss_weight: float = 0.0
    # Epoch e (0-based) trains with learning_rate * size * lr_decay**e (1.0 = constant).
    lr_decay: float = 1.0
    # "epoch": the rate above, fixed within an epoch. "cosine": every step t of the T = epochs x
    # steps_per_epoch steps trains with learning_rate * size * (1 + cos(pi t / T)) / 2, from the
    # full rate down to ~0 at the end of the last epoch (lr_decay must stay 1.0).
    lr_schedule: str = "epoch"
    # A (vocab_size, embedding_dim) .npy that initialises the token embedding (word2vec); its
    # file name carries a digest of its content, so the train hash changes with it.
    embedding_init: str | None = None
    seed: int = 42
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    deterministic: bool = True
    max_steps_per_epoch: int = 0  # 0: the whole (equalised) shard every epoch
    # Horovod gradient exchange (README "Distributed training"): sparse embedding gradients are
    # summed per distinct row on each rank before the allgather (same update, fewer rows sent);
    # sparse_as_dense allreduces them as dense tensors instead; fp16 compresses dense allreduces.
    dedup_sparse_grads: bool = False
    sparse_as_dense: bool = False
    grad_compression: str = "none"
    # Exchange the gradients as a few Horovod groups (gradient_groups): the dense ones in one
    # grouped allreduce, the embeddings' rows in one grouped allgather per index dtype, instead
    # of one negotiation per tensor. Same sums, so the same trajectory (not in the train hash).
    group_grads: bool = False
    # Pin rank r's process to CPU r (local rank), only when local ranks <= CPUs and no GPU.
    pin_cpu: bool = False
    validate: bool = True
    # Temperature scaling: after training, T is fitted on the validation split (the grid value
    # with the lowest cross-entropy, summed over all ranks' shards) and the saved model's softmax
    # layer divided by it: p ~ softmax(logits / T). Argmax (accuracy, F1) unchanged; the
    # probabilities, so the expected rating, calibrated. Not in the train hash (after training).
    temperature_scaling: bool = False
    return_weights: bool = False  # tests: every rank returns its final weights
    return_model: bool = True     # rank 0 returns the saved model's bytes

    def train_hash(self) -> str:
        """Hash of what determines the training trajectory: a checkpoint is reused only if equal."""
        d = asdict(self)
        for k in ("checkpoint_dir", "return_weights", "return_model", "epochs", "patience", "pin_cpu",
                  "group_grads", "temperature_scaling"):
            if k == "epochs" and self.lr_schedule != "epoch":
                continue  # the cosine schedule's length is part of the trajectory
            d.pop(k)
        # Options added later leave the hash of a run that does not use them unchanged, so its
        # checkpoints stay resumable.
        for k, default in (("dedup_sparse_grads", False), ("sparse_as_dense", False), ("grad_compression", "none"),
                           ("rating_loss_weight", 0.0), ("lr_decay", 1.0), ("lr_schedule", "epoch")):
            if d[k] == default:
                d.pop(k)
        for k, default in (("embedding_dropout", 0.0), ("hidden_units", 0), ("ngram_buckets", 0), ("ngram_dim", 32),
                           ("ngram_order", 2)):
            if d["net"][k] == default:
                d["net"].pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- checkpoints
def _ckpt_root(spec: TrainSpec, size: int) -> str | None:
    if not spec.checkpoint_dir:
        return None
    return os.path.join(C._local(spec.checkpoint_dir), f"{spec.train_hash()}-np{size}")


def latest_checkpoint(ckpt_root: str | None) -> tuple[str, dict[str, Any]] | None:
    """(directory, state) of the last complete epoch checkpoint, or None."""
    if not ckpt_root or not os.path.isdir(ckpt_root):
        return None
    for d in sorted(glob.glob(os.path.join(ckpt_root, CKPT_PREFIX + "[0-9]*")), reverse=True):
        state_path = os.path.join(d, STATE_FILE)
        if os.path.isfile(state_path):
            with open(state_path, encoding="utf-8") as fh:
                return d, json.load(fh)
    return None


def _write_checkpoint(ckpt: Any, ckpt_root: str, epoch: int, state: dict[str, Any], keep: int = 2) -> str:
    """Rank 0: write to a temporary directory, then rename it to epoch-NNNN (complete or absent)."""
    os.makedirs(ckpt_root, exist_ok=True)
    final = os.path.join(ckpt_root, f"{CKPT_PREFIX}{epoch:04d}")
    tmp = os.path.join(ckpt_root, f".tmp-{uuid.uuid4().hex[:8]}")
    os.makedirs(tmp)
    ckpt.write(os.path.join(tmp, "ckpt"))
    with open(os.path.join(tmp, STATE_FILE), "w", encoding="utf-8") as fh:
        json.dump(state, fh, indent=1)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.rename(tmp, final)
    for old in sorted(glob.glob(os.path.join(ckpt_root, CKPT_PREFIX + "[0-9]*")))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


# --------------------------------------------------------------------------- the rank function
def _dataset(tf: Any, a: Arrays, users: np.ndarray, items: np.ndarray, batch: int, onehot: bool = False,
             seq: np.ndarray | None = None) -> Any:
    x = {"seq": a.seq if seq is None else seq, "user": users.reshape(-1, 1), "item": items.reshape(-1, 1)}
    y = np.eye(C.NUM_CLASSES, dtype=np.float32)[a.label] if onehot else a.label
    # In-memory slices: nothing for tf.data's autotuner to tune, and its model thread makes the
    # iterator's destructor wait for its next wake-up (up to ~5 s, seen at the end of every
    # model.fit/evaluate call: epochs came out as multiples of ~5.1 s; RESULTS.md issue 4).
    opts = tf.data.Options()
    opts.autotune.enabled = False
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).with_options(opts)


def _loss(tf: Any, label_smoothing: float, rating_weight: float = 0.0) -> Any:
    """Sparse cross-entropy, or (label smoothing needs one-hot targets) categorical with smoothing;
    with rating_weight > 0 plus rating_weight * (expected rating - true star)^2 per review."""
    if rating_weight < 0:
        raise ValueError(f"model.rating_loss_weight = {rating_weight!r}: must be >= 0")
    if rating_weight == 0:
        if label_smoothing > 0:
            return tf.keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
        return "sparse_categorical_crossentropy"
    stars = tf.range(1, C.NUM_CLASSES + 1, dtype=tf.float32)

    def ce_plus_rating_mse(y_true: Any, y_pred: Any) -> Any:
        if label_smoothing > 0:  # one-hot targets (smoothing happens inside the cross-entropy)
            ce = tf.keras.losses.categorical_crossentropy(y_true, y_pred, label_smoothing=label_smoothing)
            star = tf.reduce_sum(tf.cast(y_true, tf.float32) * stars, axis=-1)
        else:
            ce = tf.keras.losses.sparse_categorical_crossentropy(y_true, y_pred)
            star = tf.cast(tf.reshape(y_true, [-1]), tf.float32) + 1.0
        expected = tf.reduce_sum(y_pred * stars, axis=-1)
        return ce + rating_weight * tf.square(expected - star)

    return ce_plus_rating_mse


def epoch_learning_rate(spec: TrainSpec, size: int, epoch: int) -> float:
    """The learning rate of 0-based `epoch`: base * workers (Horovod's scaling) * lr_decay**epoch."""
    if not 0 < spec.lr_decay <= 1:
        raise ValueError(f"model.lr_decay = {spec.lr_decay!r}: must be in (0, 1]")
    return float(spec.learning_rate * size * spec.lr_decay ** epoch)


LR_SCHEDULES = ("epoch", "cosine")


def check_lr_schedule(spec: TrainSpec) -> None:
    if spec.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"model.lr_schedule = {spec.lr_schedule!r}: choose one of {LR_SCHEDULES}")
    if spec.lr_schedule == "cosine" and spec.lr_decay != 1.0:
        raise ValueError(f"model.lr_schedule = 'cosine' decays within the run; model.lr_decay = {spec.lr_decay!r} "
                         "must then be 1.0")


def step_learning_rate(spec: TrainSpec, size: int, epoch: int, step: int, steps: int) -> float:
    """The rate of 0-based `step` (of `steps`) in 0-based `epoch` under spec.lr_schedule: the epoch's
    rate (epoch_learning_rate) or the cosine from learning_rate * size down over spec.epochs epochs."""
    if spec.lr_schedule != "cosine":
        return epoch_learning_rate(spec, size, epoch)
    t, total = epoch * steps + step, max(spec.epochs * steps, 1)
    return float(spec.learning_rate * size * 0.5 * (1.0 + math.cos(math.pi * min(t, total) / total)))


def weights_digest(weights: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for w in weights:
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


COMPRESSIONS = ("none", "fp16")


def dedup_indexed_slices(tf: Any, g: Any) -> Any:
    """An IndexedSlices gradient with one row per distinct index (duplicate rows summed); a
    dense gradient or None unchanged. The represented dense gradient is the same, so the
    update is too; an embedding gradient of B x T lookups shrinks to the distinct tokens."""
    if not isinstance(g, tf.IndexedSlices):
        return g
    uniq, pos = tf.unique(g.indices)
    values = tf.math.unsorted_segment_sum(g.values, pos, tf.shape(uniq)[0])
    return tf.IndexedSlices(values, uniq, g.dense_shape)


def gradient_groups(tf: Any, model: Any, sparse_as_dense: bool) -> list[list[Any]]:
    """The trainable variables as Horovod groups of one gradient kind each: the dense ones, then
    the Embedding layers' (IndexedSlices unless sparse_as_dense) by the dtype of their indices
    (the n-gram bag looks up int64 ids, the others int32). Horovod 0.28.1's grouped_allreduce
    breaks on a group that mixes dense tensors and IndexedSlices, and its grouped allgather
    needs one dtype."""
    emb: dict[int, str] = {}
    if not sparse_as_dense:
        for layer in model.layers:
            if isinstance(layer, tf.keras.layers.Embedding):
                for w in layer.trainable_weights:
                    emb[id(w)] = str(layer.input.dtype)
    groups: dict[str, list[Any]] = {"dense": []}
    for w in model.trainable_variables:
        groups.setdefault(emb.get(id(w), "dense"), []).append(w)
    return [g for g in groups.values() if g]


def distributed_optimizer(tf: Any, hvd: Any, opt: Any, spec: TrainSpec, model: Any) -> Any:
    """hvd.DistributedOptimizer with the configured gradient exchange (see TrainSpec); `model`'s
    variables make the groups of group_grads."""
    if spec.grad_compression not in COMPRESSIONS:
        raise ValueError(f"model.grad_compression = {spec.grad_compression!r}: choose one of {COMPRESSIONS}")
    compression = hvd.Compression.fp16 if spec.grad_compression == "fp16" else hvd.Compression.none
    groups = gradient_groups(tf, model, spec.sparse_as_dense) if spec.group_grads else None
    dopt = hvd.DistributedOptimizer(opt, compression=compression, sparse_as_dense=spec.sparse_as_dense,
                                    groups=groups)
    if spec.dedup_sparse_grads and not spec.sparse_as_dense:
        # Horovod allgathers IndexedSlices as they come; sum duplicate rows first (on every
        # rank, before the exchange). _allreduce_grads is the per-optimizer function
        # horovod.keras calls with the local gradients (horovod 0.28, pinned).
        reduce = dopt._allreduce_grads

        def dedup_then_reduce(grads: Any, vars: Any = None, **kw: Any) -> Any:
            return reduce([dedup_indexed_slices(tf, g) for g in grads], vars, **kw)

        dopt._allreduce_grads = dedup_then_reduce
    return dopt


def pin_to_cpu(local_rank: int, local_size: int) -> list[int] | None:
    """Pin this process to one CPU of those it may use (local rank r -> the r-th), if there are
    at least as many as local ranks; else leave it to the scheduler. Returns the CPUs set."""
    allowed = sorted(os.sched_getaffinity(0))
    if local_size > len(allowed):
        log.warning("pin_cpu: %d local ranks but %d usable CPUs: not pinning", local_size, len(allowed))
        return None
    cpu = allowed[local_rank]
    # sched_setaffinity acts on one thread: set every thread there is now (Horovod's background
    # thread, TensorFlow's pools); threads started later inherit it from their creator.
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), {cpu})
        except ProcessLookupError:  # the thread ended meanwhile
            pass
    return [cpu]


def _StepRate(tf: Any, opt: Any, spec: TrainSpec, size: int, epoch: int, steps: int) -> Any:
    """A Keras callback that sets the optimizer's rate before every step (step_learning_rate)."""

    class StepRate(tf.keras.callbacks.Callback):
        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            tf.keras.backend.set_value(opt.learning_rate, step_learning_rate(spec, size, epoch, batch, steps))

    return StepRate()


def train_rank(spec: TrainSpec) -> dict[str, Any]:
    """Runs on every Horovod rank (a Spark task). Returns this rank's summary."""
    setup_logging()
    import tensorflow as tf

    # Threads must be fixed before TensorFlow creates its context.
    tf.config.threading.set_intra_op_parallelism_threads(spec.intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(spec.inter_op_threads)
    import horovod.tensorflow as hvd_tf
    import horovod.tensorflow.keras as hvd

    # Horovod: initialize, then pin one GPU per process (NCCL does the allreduce there).
    hvd.init()
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        for g in gpus:
            tf.config.experimental.set_memory_growth(g, True)
        tf.config.set_visible_devices(gpus[hvd.local_rank()], "GPU")
    rank, size = hvd.rank(), hvd.size()
    pinned = pin_to_cpu(hvd.local_rank(), hvd.local_size()) if spec.pin_cpu and not gpus else None
    tf.keras.utils.set_random_seed(spec.seed)
    if spec.deterministic:
        tf.config.experimental.enable_op_determinism()

    check_lr_schedule(spec)
    t_read = time.perf_counter()
    train = rank_shard(C.split_files(spec.features_dir, C.TRAIN), rank, size, spec.net.seq_len)
    val = (rank_shard(C.split_files(spec.features_dir, C.VAL), rank, size, spec.net.seq_len)
           if spec.validate else None)
    read_s = time.perf_counter() - t_read
    local_counts = np.bincount(train.label, minlength=C.NUM_CLASSES)[:C.NUM_CLASSES]
    # Horovod: every rank must run the same number of steps; equalise on the smallest shard.
    sizes = hvd_tf.allgather_object(len(train))
    global_counts = np.sum(hvd_tf.allgather_object(local_counts), axis=0)
    steps = max(min(sizes) // spec.batch_size, 1)
    if spec.max_steps_per_epoch:
        steps = min(steps, spec.max_steps_per_epoch)
    if min(sizes) == 0:
        raise ValueError(f"a rank has no training rows (rows per rank {sizes}); fewer ranks or more data")
    cw = class_weights(global_counts) if spec.use_class_weights else None

    model = build_model(spec.net)
    if spec.embedding_init and rank == 0:  # the broadcast below hands it to the other ranks
        init_embedding(model, C._local(spec.embedding_init))
    # Horovod: scale the learning rate by the number of workers (the effective batch grows).
    opt = distributed_optimizer(tf, hvd, make_optimizer(spec.optimizer, spec.learning_rate * size), spec, model)
    onehot = spec.label_smoothing > 0
    model.compile(optimizer=opt, loss=_loss(tf, spec.label_smoothing, spec.rating_loss_weight),
                  metrics=["accuracy"])
    # Create the optimizer's slots now so that a checkpoint restores them immediately and the
    # broadcast below covers them.
    opt._create_all_weights(model.trainable_variables)
    epoch_var = tf.Variable(0, dtype=tf.int64, name="epoch")
    ckpt = tf.train.Checkpoint(model=model, optimizer=opt, epoch=epoch_var)

    ckpt_root = _ckpt_root(spec, size)
    state: dict[str, Any] = {"epoch": 0, "history": [], "best_val_loss": None, "best_epoch": 0, "wait": 0}
    resumed_from = None
    if rank == 0:
        found = latest_checkpoint(ckpt_root)
        if found:
            path, st = found
            ckpt.read(os.path.join(path, "ckpt")).assert_existing_objects_matched()
            state, resumed_from = st, path
            log.info("rank 0: resumed from %s (epoch %d complete)", path, st["epoch"])
    # Horovod: everyone starts from rank 0's state (fresh init or the restored checkpoint).
    state = hvd_tf.broadcast_object(state, root_rank=0)
    hvd_tf.broadcast_variables(model.variables + opt.variables(), root_rank=0)

    best_path = os.path.join(ckpt_root, "best_weights.npz") if ckpt_root else None
    best_weights = None
    if rank == 0 and best_path and os.path.isfile(best_path) and state["best_val_loss"] is not None:
        with np.load(best_path) as z:
            best_weights = [z[f"w{i}"] for i in range(len(z.files))]

    if val is not None:  # the validation ids, bucketed once (no id dropout on val)
        vu = bucket_ids(val.user, spec.num_users, spec.net.user_buckets)
        vi = bucket_ids(val.item, spec.num_items, spec.net.item_buckets)
    callbacks = [hvd.callbacks.MetricAverageCallback()]  # Horovod: average train metrics over ranks
    epoch_seconds: list[float] = []
    stopped_early = False
    # A run that already stopped early stays stopped: its rerun only re-exports the model.
    first = spec.epochs if state.get("stopped_early") else int(state["epoch"])
    for epoch in range(first, spec.epochs):
        order = epoch_order(len(train), spec.seed, epoch, rank)[: steps * spec.batch_size]
        part = train.take(order)
        rng = np.random.RandomState((spec.seed + 7919 * (epoch + 1) + 104729 * rank) % (2**32 - 1))
        users = drop_ids(bucket_ids(part.user, spec.num_users, spec.net.user_buckets), spec.id_dropout, rng)
        items = drop_ids(bucket_ids(part.item, spec.num_items, spec.net.item_buckets), spec.id_dropout, rng)
        seqs = drop_text(part.seq, spec.text_dropout, rng)
        ds = _dataset(tf, part, users, items, spec.batch_size, onehot, seqs)
        # The rate is a function of (epoch, step) only, so a resumed run gets the same.
        epoch_callbacks = list(callbacks)
        if spec.lr_schedule == "cosine":
            epoch_callbacks.append(_StepRate(tf, opt, spec, size, epoch, steps))
        elif spec.lr_decay != 1.0:
            tf.keras.backend.set_value(opt.learning_rate, epoch_learning_rate(spec, size, epoch))
        t0 = time.perf_counter()
        hist = model.fit(ds, epochs=epoch + 1, initial_epoch=epoch, class_weight=cw, verbose=0,
                         callbacks=epoch_callbacks, shuffle=False)
        dt = time.perf_counter() - t0
        epoch_seconds.append(dt)
        rec = {"epoch": epoch + 1, "loss": float(hist.history["loss"][-1]),
               "accuracy": float(hist.history["accuracy"][-1]), "seconds": round(dt, 3),
               "samples": int(steps * spec.batch_size * size),
               "samples_per_s": round(steps * spec.batch_size * size / dt, 2),
               "learning_rate": float(tf.keras.backend.get_value(opt.learning_rate))}
        if val is not None:
            vl, va = model.evaluate(_dataset(tf, val, vu, vi, 1024, onehot), verbose=0) if len(val) else (0.0, 0.0)
            # Horovod: exact global validation metrics (row-weighted sums over ranks).
            tot = hvd_tf.allreduce(tf.constant([vl * len(val), va * len(val), float(len(val))], tf.float64),
                                   op=hvd_tf.Sum).numpy()
            rec["val_loss"] = float(tot[0] / max(tot[2], 1))
            rec["val_accuracy"] = float(tot[1] / max(tot[2], 1))
        state["history"].append(rec)
        state["epoch"] = epoch + 1
        improved = val is None or state["best_val_loss"] is None or rec["val_loss"] < state["best_val_loss"] - 1e-4
        if improved:
            state["best_val_loss"] = rec.get("val_loss")
            state["best_epoch"] = epoch + 1
            state["wait"] = 0
            if rank == 0:
                best_weights = model.get_weights()
                if best_path:
                    os.makedirs(ckpt_root, exist_ok=True)  # type: ignore[arg-type]
                    tmp = f"{best_path}.tmp-{uuid.uuid4().hex[:6]}.npz"
                    np.savez(tmp, **{f"w{i}": w for i, w in enumerate(best_weights)})
                    os.replace(tmp, best_path)
        else:
            state["wait"] += 1
        stop = val is not None and state["wait"] >= spec.patience
        state["stopped_early"] = bool(stop)
        epoch_var.assign(epoch + 1)
        if rank == 0:
            log.info("epoch %d: %s", epoch + 1, rec)
            if ckpt_root:
                _write_checkpoint(ckpt, ckpt_root, epoch + 1, state)
        # Horovod: all ranks take rank 0's decision.
        if hvd_tf.broadcast_object(bool(stop), root_rank=0):
            stopped_early = True
            break

    final_weights = model.get_weights()
    out: dict[str, Any] = {
        "rank": rank, "size": size, "local_rows": len(train), "rows_per_rank": sizes,
        "val_rows_local": len(val) if val is not None else 0, "steps_per_epoch": steps,
        "class_counts": global_counts.tolist(), "class_weights": cw, "history": state["history"],
        "best_epoch": state["best_epoch"], "best_val_loss": state["best_val_loss"],
        "stopped_early": stopped_early or bool(state.get("stopped_early")),
        "resumed_from": resumed_from, "epoch_seconds": epoch_seconds, "read_seconds": round(read_s, 3),
        "weights_sha256": weights_digest(final_weights), "checkpoint_root": ckpt_root,
        "pinned_cpus": pinned, "horovod_cycle_time_ms": os.environ.get("HOROVOD_CYCLE_TIME"),
        "versions": _versions(),  # what the rank ran with (the driver need not import TensorFlow)
    }
    if spec.return_weights:
        out["weights"] = final_weights
    calibration = None
    if spec.temperature_scaling and val is not None:
        # Every rank scores its own val shard with rank 0's best weights.
        model.set_weights(hvd_tf.broadcast_object(best_weights if rank == 0 and best_weights is not None
                                                  else final_weights, root_rank=0))
        probs = (model.predict(_dataset(tf, val, vu, vi, 1024), verbose=0) if len(val)
                 else np.zeros((0, C.NUM_CLASSES)))
        sums = hvd_tf.allreduce(tf.constant(np.append(temperature_nll_sums(probs, val.label), len(val)), tf.float64),
                                op=hvd_tf.Sum).numpy()
        calibration = fit_temperature(sums[:-1], sums[-1])
        out["calibration"] = calibration
    if rank == 0 and spec.return_model:
        # A fresh, uncompiled copy: the saved model carries no (Horovod-wrapped) optimizer.
        plain = build_model(spec.net)
        plain.set_weights(best_weights if best_weights is not None else final_weights)
        if calibration:
            apply_temperature(plain, calibration["temperature"])
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, MODEL_FILE)
            plain.save(p)
            with open(p, "rb") as fh:
                out["model_bytes"] = fh.read()
    return out


TEMPERATURES = np.round(np.arange(0.5, 3.0 + 1e-9, 0.01), 2)


def temperature_nll_sums(probs: np.ndarray, labels: np.ndarray, temps: np.ndarray = TEMPERATURES) -> np.ndarray:
    """Summed cross-entropy of `labels` under softmax(log(probs) / T), one sum per T in `temps`
    (log p differs from the logits by a per-row constant, which the softmax ignores)."""
    if len(labels) == 0:
        return np.zeros(len(temps))
    logp = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, 1.0))
    logp -= logp.max(axis=1, keepdims=True)  # <= 0, so exp(logp / T) cannot overflow
    true = logp[np.arange(len(labels)), labels]
    # one T at a time: memory stays O(rows x classes) whatever the val shard's size
    return np.array([(np.log(np.exp(logp / t).sum(axis=1)) - true / t).sum() for t in temps])


def fit_temperature(nll_sums: np.ndarray, n: float, temps: np.ndarray = TEMPERATURES) -> dict[str, float]:
    """The temperature with the lowest summed val cross-entropy (ties: the first, i.e. lowest T),
    and the mean cross-entropy before (T = 1) and after."""
    nll_sums = np.asarray(nll_sums, np.float64)
    i = int(np.argmin(nll_sums))
    one = int(np.argmin(np.abs(temps - 1.0)))
    n = max(float(n), 1.0)
    return {"temperature": float(temps[i]), "val_rows": int(n), "val_loss_t1": float(nll_sums[one] / n),
            "val_loss_calibrated": float(nll_sums[i] / n)}


def apply_temperature(model: Any, temperature: float) -> None:
    """softmax((x W + b) / T) = softmax(x (W / T) + b / T): T goes into the softmax layer's
    weights, so the saved model needs nothing new to load or score."""
    stars = model.get_layer("stars")
    stars.set_weights([w / np.float32(temperature) for w in stars.get_weights()])


def init_embedding(model: Any, path: str) -> None:
    """Set the token embedding from a (vocab_size, embedding_dim) .npy; the shape must match."""
    w = np.load(path)
    layer = model.get_layer("tok_emb")
    want = tuple(layer.get_weights()[0].shape)
    if tuple(w.shape) != want:
        raise ValueError(f"{path}: embedding init has shape {tuple(w.shape)}, the network's token "
                         f"embedding is {want} (vocab_size, model.embedding_dim)")
    layer.set_weights([w.astype(np.float32)])


# --------------------------------------------------------------------------- word2vec init
def word2vec_matrix(spark: SparkSession, train_df: Any, vocab_size: int, dim: int, window: int = 5,
                    iterations: int = 1, seed: int = 42, partitions: int = 1) -> tuple[np.ndarray, dict[str, Any]]:
    """Spark ML Word2Vec on the training split's token-id sequences -> (vocab_size, dim) matrix.

    The words are the sequence ids (as strings), so the rows line up with the features
    vocabulary without a lookup; padding is left out, OOV (id 1) is a word like any other.
    Ids Word2Vec never saw (absent from train after the features job's minDF) keep a small
    random row; row 0 (padding) is zero. The driver collects only the vectors (vocab x dim)."""
    from pyspark.ml.feature import Word2Vec
    from pyspark.sql import functions as F

    words = train_df.select(
        F.transform(F.filter(F.col(C.SEQ), lambda t: t != C.PAD_ID), lambda t: t.cast("string")).alias("w"))
    w2v = Word2Vec(vectorSize=dim, windowSize=window, minCount=1, maxIter=iterations, seed=seed,
                   numPartitions=partitions, inputCol="w", outputCol="v")
    vecs = w2v.fit(words).getVectors().collect()
    rng = np.random.RandomState(seed)
    m = rng.uniform(-0.05, 0.05, (vocab_size, dim)).astype(np.float32)
    m[C.PAD_ID] = 0.0
    seen_ids: list[int] = []
    for r in vecs:
        i = int(r["word"])
        if 0 <= i < vocab_size:
            m[i] = np.asarray(r["vector"].toArray(), dtype=np.float32)
            seen_ids.append(i)
    # Word2Vec vectors are larger than the uniform init; scale them to the same spread so the
    # LSTM starts in its usual range.
    seen = np.array(seen_ids, dtype=np.int64)
    if len(seen):
        m[seen] *= (0.05 / np.sqrt(3.0)) / max(float(m[seen].std()), 1e-8)
    return m, {"words": len(seen_ids), "vocab_size": vocab_size, "dim": dim, "window": window,
               "iterations": iterations}


def embedding_init_path(spark: SparkSession, features_dir: str, directory: str, vocab_size: int, dim: int,
                        window: int, iterations: int, seed: int) -> tuple[str, dict[str, Any]]:
    """The word2vec init for these training files and settings: computed once, then reused from
    <directory>/w2v-<key>.npy (the key hashes the train files' names, sizes and mtimes and the
    settings), so a rerun resumes with the same init and the same train hash."""
    files = C.split_files(features_dir, C.TRAIN)
    src = [(os.path.basename(f), os.path.getsize(f), int(os.path.getmtime(f))) for f in files]
    key = hashlib.sha256(json.dumps([src, vocab_size, dim, window, iterations, seed]).encode()).hexdigest()[:12]
    d = C._local(directory)
    path = os.path.join(d, f"w2v-{key}.npy")
    info_path = path[:-4] + ".json"
    if os.path.isfile(path) and os.path.isfile(info_path):
        with open(info_path, encoding="utf-8") as fh:
            return path, {**json.load(fh), "reused": True}
    m, info = word2vec_matrix(spark, spark.read.parquet(C.split_path(features_dir, C.TRAIN)), vocab_size, dim,
                              window, iterations, seed)
    os.makedirs(d, exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:6]}.npy"
    np.save(tmp, m)
    with open(info_path, "w", encoding="utf-8") as fh:
        json.dump(info, fh)
    os.replace(tmp, path)
    return path, {**info, "reused": False}


# --------------------------------------------------------------------------- driver side
def ensemble_in_executor(spark: SparkSession, net: NetParams, member_blobs: list[bytes]) -> bytes:
    """ensemble_model_bytes in one Spark task: TensorFlow and the k loaded models live in an
    executor's Python (sized for the ranks' TensorFlow), not in the driver's, which holds only
    the bytes (on YARN the driver's Python counts against its container's memory overhead)."""
    out = spark.sparkContext.parallelize([0], 1).map(lambda _: ensemble_model_bytes(net, member_blobs)).collect()
    return out[0]


def ensemble_model_bytes(net: NetParams, member_blobs: list[bytes]) -> bytes:
    """The saved members (model.keras bytes, as rank 0 returns them) -> one saved model.keras
    whose output is the mean of theirs (net.build_ensemble)."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as d:
        weights = []
        for j, blob in enumerate(member_blobs, start=1):
            p = os.path.join(d, f"member-{j}.keras")
            with open(p, "wb") as fh:
                fh.write(blob)
            weights.append(tf.keras.models.load_model(p, compile=False).get_weights())
        p = os.path.join(d, MODEL_FILE)
        build_ensemble(net, weights).save(p)
        with open(p, "rb") as fh:
            return fh.read()


def run_horovod(spark: SparkSession, spec: TrainSpec, num_proc: int, use_gloo: bool = True,
                start_timeout: int = 600, verbose: int = 1,
                cycle_time_ms: float | None = None) -> list[dict[str, Any]]:
    """horovod.spark.run(train_rank) on `num_proc` Spark tasks; per-rank results in rank order.

    cycle_time_ms: HOROVOD_CYCLE_TIME for the ranks (how often each rank's background thread
    negotiates with the others); None leaves the environment's, else Horovod's 1 ms."""
    import horovod.spark

    master = spark.sparkContext.master
    # Local runs talk over loopback: a laptop's hostname may not resolve to a usable address.
    nics = ["lo"] if master.startswith("local") else None
    return horovod.spark.run(train_rank, args=(spec,), num_proc=num_proc, use_gloo=use_gloo,
                             nics=nics, env=rank_env(cycle_time_ms), start_timeout=start_timeout,
                             verbose=verbose)


def rank_env(cycle_time_ms: float | None) -> dict[str, str]:
    """The environment the ranks start with: this process's, TensorFlow's C++ logging quietened
    unless set, and HOROVOD_CYCLE_TIME = cycle_time_ms when it is not None."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if cycle_time_ms is not None:
        if not cycle_time_ms > 0:
            raise ValueError(f"model.horovod_cycle_time_ms = {cycle_time_ms!r}: must be > 0 (or null)")
        env["HOROVOD_CYCLE_TIME"] = f"{float(cycle_time_ms):g}"
    return env


def spec_from_config(cfg: Config, meta: C.FeaturesMeta, **overrides: Any) -> TrainSpec:
    m = cfg["model"]
    root = cfg["run"]["root"]
    net = NetParams(
        vocab_size=meta.vocab_size, seq_len=meta.seq_len, embedding_dim=m["embedding_dim"],
        lstm_units=m["lstm_units"], bidirectional=m["bidirectional"], dropout=m["dropout"],
        user_buckets=m["user_buckets"], item_buckets=m["item_buckets"],
        user_embedding_dim=m["user_embedding_dim"], item_embedding_dim=m["item_embedding_dim"],
        pooling=m["pooling"], embedding_dropout=float(m["embedding_dropout"]), hidden_units=int(m["hidden_units"]),
        ngram_buckets=int(m["ngram_buckets"]), ngram_dim=int(m["ngram_dim"]),
        ngram_order=int(m["ngram_order"]),
    )
    spec = TrainSpec(
        features_dir=io.dataset_path(root, C.FEATURES), net=net, num_users=meta.num_users,
        num_items=meta.num_items,
        checkpoint_dir=m["checkpoint_dir"] or io.dataset_path(root, "model_checkpoints"),
        optimizer=m["optimizer"], learning_rate=float(m["learning_rate"]), batch_size=m["batch_size"],
        epochs=m["epochs"], patience=m["early_stopping_patience"], use_class_weights=m["class_weights"],
        id_dropout=float(m["id_dropout"]), text_dropout=float(m["text_dropout"]),
        label_smoothing=float(m["label_smoothing"]), rating_loss_weight=float(m["rating_loss_weight"]),
        lr_decay=float(m["lr_decay"]), lr_schedule=m["lr_schedule"], seed=m["seed"],
        intra_op_threads=m["intra_op_threads"], inter_op_threads=m["inter_op_threads"],
        deterministic=m["deterministic"],
        max_steps_per_epoch=m["max_steps_per_epoch"], dedup_sparse_grads=m["dedup_sparse_grads"],
        sparse_as_dense=m["sparse_as_dense"], grad_compression=m["grad_compression"], pin_cpu=m["pin_cpu"],
        group_grads=m["group_grads"], temperature_scaling=m["temperature_scaling"],
    )
    spec = replace(spec, **overrides) if overrides else spec
    check_lr_schedule(spec)  # on the driver, before any Spark task starts
    return spec


def _versions() -> dict[str, str]:
    import horovod
    import keras
    import pyspark
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "horovod": horovod.__version__,
            "pyspark": pyspark.__version__, "numpy": np.__version__}


def split_counts(spark: SparkSession, features_dir: str) -> dict[str, dict[str, int]]:
    """Rows and per-star counts per split (a small aggregate, the only thing the driver collects)."""
    counts: dict[str, dict[str, int]] = {}
    for split in C.SPLITS:
        try:
            df = spark.read.parquet(C.split_path(features_dir, split))
        except FileNotFoundError:
            continue
        rows = df.groupBy(C.LABEL).count().collect()
        per = {str(int(r[C.LABEL]) + 1): int(r["count"]) for r in rows}
        counts[split] = {"rows": sum(per.values()), **{f"star_{k}": v for k, v in sorted(per.items())}}
    return counts


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    timer = StageTimer("train")
    root = cfg["run"]["root"]
    m = cfg["model"]
    features_dir = io.dataset_path(root, C.FEATURES)
    meta_dir = io.dataset_path(root, C.FEATURES_META)
    if not io.dataset_exists(spark, features_dir):
        raise FileNotFoundError(f"dataset not found: {features_dir} (produced by the features job; run it first)")
    cols = spark.read.parquet(features_dir).columns
    require_columns(cols, list(C.REQUIRED_COLUMNS), f"features at {features_dir}")
    meta = C.load_meta(meta_dir)
    spec = spec_from_config(cfg, meta)
    init_info = None
    if m["embedding_init"] == "word2vec":
        with timer.stage("word2vec"):
            path, init_info = embedding_init_path(
                spark, features_dir, spec.checkpoint_dir or io.dataset_path(root, "model_checkpoints"),
                meta.vocab_size, spec.net.embedding_dim, m["word2vec_window"], m["word2vec_iterations"], m["seed"])
        spec = replace(spec, embedding_init=path)
        log.info("train: token embedding initialised from word2vec %s (%s)", path, init_info)
    with timer.stage("counts"):
        counts = split_counts(spark, features_dir)
    if not C.split_files(features_dir, C.TRAIN):
        raise FileNotFoundError(f"{features_dir}: no train split files")
    n_members = int(m["ensemble_size"])
    members: list[dict[str, Any]] = []
    member_blobs: list[bytes] = []
    for j in range(n_members):
        spec_j = replace(spec, seed=spec.seed + j)
        stage = "horovod" if n_members == 1 else f"horovod_member_{j + 1}"
        if n_members > 1:
            log.info("train: ensemble member %d/%d (seed %d, train hash %s)", j + 1, n_members, spec_j.seed,
                     spec_j.train_hash())
        with timer.stage(stage):
            results = run_horovod(spark, spec_j, m["num_proc"], use_gloo=m["use_gloo"],
                                  start_timeout=m["start_timeout"], cycle_time_ms=m["horovod_cycle_time_ms"])
        r0 = results[0]
        digests = sorted({r["weights_sha256"] for r in results})
        if len(digests) != 1:
            which = f" (ensemble member {j + 1}, seed {spec_j.seed})" if n_members > 1 else ""
            raise RuntimeError(f"ranks ended with different weights{which}: {digests}")
        members.append({
            "member": j + 1, "seed": spec_j.seed, "train_hash": spec_j.train_hash(), "history": r0["history"],
            "best_epoch": r0["best_epoch"], "best_val_loss": r0["best_val_loss"],
            "stopped_early": r0["stopped_early"], "resumed_from": r0["resumed_from"], "weights_sha256": digests[0],
            "calibration": r0.get("calibration"),
        })
        member_blobs.append(r0["model_bytes"])
    first = members[0]
    if n_members == 1:
        model_bytes, train_hash = member_blobs[0], spec.train_hash()
    else:
        with timer.stage("ensemble"):
            model_bytes = ensemble_in_executor(spark, spec.net, member_blobs)
        train_hash = hashlib.sha256("+".join(mb["train_hash"] for mb in members).encode()).hexdigest()[:12]
    metadata = {
        "config_hash": cfg.hash(), "train_hash": train_hash, "num_proc": len(results),
        "net": spec.net.to_dict(), "features_meta": meta.to_dict(),
        "training": {k: v for k, v in asdict(spec).items() if k not in ("net",)},
        "data_counts": counts, "rows_per_rank": r0["rows_per_rank"], "steps_per_epoch": r0["steps_per_epoch"],
        "embedding_init": init_info,
        # The first member's training (the only one when ensemble_size is 1).
        "class_weights": r0["class_weights"], "history": first["history"], "best_epoch": first["best_epoch"],
        "best_val_loss": first["best_val_loss"], "stopped_early": first["stopped_early"],
        "resumed_from": first["resumed_from"],
        # An ensemble's: the digest of its members' weight digests, in member order.
        "weights_sha256": first["weights_sha256"] if n_members == 1 else hashlib.sha256(
            "+".join(mb["weights_sha256"] for mb in members).encode()).hexdigest(),
        "calibration": first["calibration"],
        "ensemble": {"size": n_members, "members": members} if n_members > 1 else None,
        "versions": r0["versions"],
        "timings": timer.timings, "model_file": MODEL_FILE,
    }
    with timer.stage("save"):
        with io.publish_dir(spark, io.dataset_path(root, C.MODEL)) as d:
            with open(os.path.join(d, MODEL_FILE), "wb") as fh:
                fh.write(model_bytes)
            shutil.copy(os.path.join(C._local(meta_dir), "vocab.json"), os.path.join(d, "vocab.json"))
            with open(os.path.join(d, "features_meta.json"), "w", encoding="utf-8") as fh:
                json.dump(meta.to_dict(), fh, indent=2)
            metadata["timings"] = timer.timings
            with open(os.path.join(d, METADATA_FILE), "w", encoding="utf-8") as fh:
                json.dump(metadata, fh, indent=2, default=str)
    for mb in members:
        log.info("train: %sbest epoch %s (val loss %s), %d epochs run", f"member {mb['member']} (seed {mb['seed']}): "
                 if n_members > 1 else "", mb["best_epoch"], mb["best_val_loss"], len(mb["history"]))
    log.info("train: model at %s%s", io.dataset_path(root, C.MODEL),
             f" (mean of {n_members} members' star distributions)" if n_members > 1 else "")
    return metadata
