"""The features' training files for Horovod ranks that cannot open the run root.

On a local (or mounted) run root the ranks read the Parquet files of the features' current
version themselves (data.rank_shard). On HDFS, S3, GCS, ... they would need the store's client
and credentials; instead the driver stages them: for each listed file, in the listed order, it
reads the file through Spark (any Hadoop file system, the session's credentials) and writes a
local Parquet file with the same rows in the same order (checked against Parquet's row index),
only the columns training reads, streamed partition by partition (toLocalIterator) and written
in batches of BATCH_ROWS rows, so the driver never holds more than one partition. Empty files
stay as empty files: the number of files decides how rank_shard shares them out. Each staged
file is shipped with SparkContext.addFile under a name unique to this staging; a rank finds it
in its Spark files directory (TrainSpec.rank_dir), so rank r reads the rows it would have read
from the run root and training ends with the same weights as on a local copy of the run root.
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from reviewrec.model.data import TRAIN_COLUMNS

log = logging.getLogger(__name__)

BATCH_ROWS = 8192
_ROW_INDEX = "__row_index"
_DRIVER_DIRS: dict[str, str] = {}


@dataclass(frozen=True)
class Staged:
    """What a staging shipped: (split, file names in the ranks' Spark files directory), in the
    order of the files they copy, and its size."""

    files: tuple[tuple[str, tuple[str, ...]], ...]
    rows: int
    bytes: int
    seconds: float


def driver_dir(spark: SparkSession) -> str:
    """The driver's directory for the files this application ships with SparkContext.addFile
    (staged features, downloaded and shipped models). Spark serves an added file from its path
    for as long as the application runs, and every executor fetches it before its next task,
    including executors that join later (a lost executor's replacement): so these files live as
    long as the application, and the driver's JVM removes the directory when it exits."""
    import tempfile

    app = spark.sparkContext.applicationId
    if app not in _DRIVER_DIRS:
        jdir = spark.sparkContext._jvm.org.apache.spark.util.Utils.createTempDir(  # type: ignore[attr-defined]
            tempfile.gettempdir(), "reviewrec-shipped")
        _DRIVER_DIRS[app] = str(jdir.getAbsolutePath())
    return _DRIVER_DIRS[app]


def rank_dir(spark: SparkSession) -> str:
    """Where a rank finds the files SparkContext.addFile shipped: "" = its working directory (an
    executor's, where Spark puts them); in local mode the driver's Spark files directory, the
    one its in-process executor fetches into."""
    from pyspark import SparkFiles

    return SparkFiles.getRootDirectory() if spark.sparkContext.master.startswith("local") else ""


def stage_file(spark: SparkSession, src: str, dst: str, columns: tuple[str, ...] = TRAIN_COLUMNS) -> int:
    """`columns` of the Parquet file `src` (any file system) as the local Parquet file `dst`,
    row for row in `src`'s order; its row count. RuntimeError if Spark delivers the rows out of
    the file's order (the ranks' shards and the weights depend on it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.sql.pandas.types import to_arrow_schema

    df = spark.read.parquet(src).select(F.col("_metadata.row_index").alias(_ROW_INDEX), *columns)
    schema = to_arrow_schema(df.drop(_ROW_INDEX).schema)
    n = 0
    batch: list[Any] = []

    def flush(writer: Any) -> None:
        cols = list(zip(*batch, strict=True)) if batch else [[] for _ in columns]
        writer.write_table(pa.table([pa.array(c, type=f.type) for c, f in zip(cols, schema, strict=True)],
                                    schema=schema))
        batch.clear()

    with pq.ParquetWriter(dst, schema) as writer:
        for row in df.toLocalIterator():
            if row[0] != n:
                raise RuntimeError(f"staging {src}: row {row[0]} of the file arrived as row {n}")
            batch.append(tuple(row[1:]))
            n += 1
            if len(batch) == BATCH_ROWS:
                flush(writer)
        if batch or n == 0:  # an empty file stays a file (with the schema)
            flush(writer)
    return n


def stage_splits(spark: SparkSession, files: dict[str, tuple[str, ...]], local_dir: str) -> Staged:
    """Stage each split's `files` (in order) in the driver's `local_dir` and ship them to the
    executors (SparkContext.addFile). `local_dir` must stay as long as the application runs
    (driver_dir): every executor fetches the files from it before its next task."""
    t0 = time.perf_counter()
    tag = uuid.uuid4().hex[:12]
    shipped: list[tuple[str, tuple[str, ...]]] = []
    rows = size = 0
    for split, paths in files.items():
        names = []
        for j, src in enumerate(paths):
            name = f"features-{tag}-{split}-{j:05d}.parquet"
            dst = os.path.join(local_dir, name)
            rows += stage_file(spark, src, dst)
            size += os.path.getsize(dst)
            spark.sparkContext.addFile(dst)
            names.append(name)
        shipped.append((split, tuple(names)))
    staged = Staged(tuple(shipped), rows, size, round(time.perf_counter() - t0, 3))
    log.info("train: staged %d rows (%s files) for the ranks, %.2f MiB, in %.1f s", rows,
             ", ".join(f"{s} {len(n)}" for s, n in shipped), size / 2**20, staged.seconds)
    return staged
