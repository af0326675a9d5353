"""Run-root paths, readers of datasets, and atomic writers.

Every dataset lives at <run.root>/<name>/. Writers never write in place: output goes to a
sibling temporary path and is moved over the old one only when it is complete, through
Hadoop's FileSystem API so the same code serves file:, hdfs:, s3a: and gs:. A crash mid-write
leaves the previous output as the current one (plus a temporary directory that the next
commit cleans up). On object stores a rename is a copy, so "atomic" there means "never half
visible under the final name", which is what downstream readers rely on.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

TMP_MARK = ".__tmp_"
OLD_MARK = ".__old_"


def dataset_path(root: str, name: str) -> str:
    return root.rstrip("/") + "/" + name.strip("/")


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _local(path: str) -> str:
    return path[len("file://"):] if path.startswith("file://") else path


class _FS:
    """Minimal Hadoop FileSystem wrapper for one path's file system."""

    def __init__(self, spark: SparkSession, path: str):
        jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
        self._jvm = jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[attr-defined]
        self.fs = jvm.org.apache.hadoop.fs.Path(path).getFileSystem(self._conf)

    def p(self, path: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(path)

    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(self.p(path)))

    def rename(self, src: str, dst: str) -> bool:
        return bool(self.fs.rename(self.p(src), self.p(dst)))

    def delete(self, path: str) -> None:
        self.fs.delete(self.p(path), True)

    def mkdirs(self, path: str) -> None:
        self.fs.mkdirs(self.p(path))

    def siblings(self, path: str, mark: str) -> list[str]:
        parent = self.p(path).getParent()
        name = self.p(path).getName()
        if parent is None or not self.fs.exists(parent):
            return []
        return [str(s.getPath()) for s in self.fs.listStatus(parent)
                if str(s.getPath().getName()).startswith(name + mark)]

    def copy_from_local(self, local: str, dst: str) -> None:
        self.fs.copyFromLocalFile(False, True, self.p("file://" + os.path.abspath(local)), self.p(dst))


def _recover(fs: _FS, final: str) -> None:
    """Undo a commit that crashed between moving the old output away and the new one in."""
    if not fs.exists(final):
        olds = sorted(fs.siblings(final, OLD_MARK))
        if olds:
            log.warning("restoring %s from %s (an earlier commit was interrupted)", final, olds[-1])
            fs.rename(olds[-1], final)


def _commit(fs: _FS, tmp: str, final: str) -> None:
    _recover(fs, final)
    old = f"{final}{OLD_MARK}{uuid.uuid4().hex[:8]}"
    had_old = fs.exists(final)
    if had_old and not fs.rename(final, old):
        raise OSError(f"could not move {final} aside to {old}")
    if not fs.rename(tmp, final):
        if had_old:
            fs.rename(old, final)
        raise OSError(f"could not move {tmp} to {final}")
    if had_old:
        fs.delete(old)
    for stale in fs.siblings(final, TMP_MARK) + fs.siblings(final, OLD_MARK):
        fs.delete(stale)


def _tmp_name(final: str) -> str:
    return f"{final.rstrip('/')}{TMP_MARK}{uuid.uuid4().hex[:8]}"


def write_parquet_atomic(df: DataFrame, path: str, partition_by: list[str] | None = None) -> None:
    """Write `df` as Parquet to `path`, replacing what was there only once complete."""
    tmp = _tmp_name(path)
    writer = df.write.mode("overwrite")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.parquet(tmp)
    _commit(_FS(df.sparkSession, path), tmp, path)
    log.info("wrote %s", path)


def write_json_atomic(spark: SparkSession | None, path: str, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically (os.replace locally, rename through Hadoop else)."""
    write_text_atomic(spark, path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_text_atomic(spark: SparkSession | None, path: str, text: str) -> None:
    """Write `text` (UTF-8) to `path`, atomically, as write_json_atomic does."""
    if is_local(path):
        local = _local(path)
        os.makedirs(os.path.dirname(os.path.abspath(local)), exist_ok=True)
        tmp = f"{local}{TMP_MARK}{uuid.uuid4().hex[:8]}"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, local)
        return
    if spark is None:
        raise ValueError(f"writing {path} needs a SparkSession (remote file system)")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        fh.write(text)
    fs = _FS(spark, path)
    tmp = _tmp_name(path)
    fs.copy_from_local(fh.name, tmp)
    os.unlink(fh.name)
    _commit(fs, tmp, path)


@contextmanager
def publish_dir(spark: SparkSession | None, path: str) -> Iterator[str]:
    """Yield a local scratch directory; on success publish it as `path` atomically.

    Reports (PNG, HTML, JSON) are produced by local libraries; this puts them under the run
    root whatever file system that is, replacing the previous report only when complete.
    """
    if is_local(path):
        final = _local(path)
        os.makedirs(os.path.dirname(os.path.abspath(final)) or ".", exist_ok=True)
        scratch = f"{final.rstrip('/')}{TMP_MARK}{uuid.uuid4().hex[:8]}"
        os.makedirs(scratch)
        try:
            yield scratch
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        old = f"{final.rstrip('/')}{OLD_MARK}{uuid.uuid4().hex[:8]}"
        if os.path.exists(final):
            os.rename(final, old)
        os.rename(scratch, final)
        shutil.rmtree(old, ignore_errors=True)
        return
    if spark is None:
        raise ValueError(f"publishing {path} needs a SparkSession (remote file system)")
    scratch = tempfile.mkdtemp(prefix="reviewrec-report-")
    try:
        yield scratch
        fs = _FS(spark, path)
        tmp = _tmp_name(path)
        fs.copy_from_local(scratch, tmp)
        _commit(fs, tmp, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def dataset_exists(spark: SparkSession, path: str) -> bool:
    fs = _FS(spark, path)
    _recover(fs, path)
    return fs.exists(path)


def read_parquet(spark: SparkSession, path: str, produced_by: str) -> DataFrame:
    """Read a dataset, with an error that says which job produces it when it is missing."""
    if not dataset_exists(spark, path):
        raise FileNotFoundError(f"dataset not found: {path} (produced by the {produced_by} job; run it first)")
    return spark.read.parquet(path)
