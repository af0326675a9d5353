"""A seed ensemble saved as one model: the mean of its members' star distributions.

With `model.ensemble_size` k > 1 the train job trains k networks (seeds seed .. seed + k - 1) and
saves one model.keras whose output averages theirs (net.build_ensemble), so evaluate and
recommend score it like a single network.
"""
from __future__ import annotations

import os
import tempfile

from pyspark.sql import SparkSession

from reviewrec.model.net import NetParams, build_ensemble
from reviewrec.model.rank import MODEL_FILE


def ensemble_model_bytes(net: NetParams, member_blobs: list[bytes]) -> bytes:
    """The members' saved model.keras bytes (as rank 0 returns them) -> one saved model.keras
    whose output is the mean of theirs."""
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


def ensemble_in_executor(spark: SparkSession, net: NetParams, member_blobs: list[bytes]) -> bytes:
    """ensemble_model_bytes in one Spark task: TensorFlow and the k loaded models live in an
    executor's Python (sized for the ranks' TensorFlow), not in the driver's, which holds only
    the bytes (on YARN the driver's Python counts against its container's memory overhead)."""
    return spark.sparkContext.parallelize([0], 1).map(lambda _: ensemble_model_bytes(net, member_blobs)).collect()[0]
