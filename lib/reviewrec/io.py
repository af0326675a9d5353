"""Run-root paths, readers of datasets, and their commits.

Every dataset lives at <run.root>/<name>/ as a Delta Lake table. A write is one overwrite commit
in the table's _delta_log: the new version's Parquet files are written first, then one log entry
makes them current, and on every store (local disk, HDFS, S3 through s3a, GCS) that log entry
appears whole or not at all. A reader therefore sees the old version or the new one, never a
mix, and a crash mid-write leaves the old version current (the new files stay, unreferenced,
until VACUUM removes them). Each commit records the configuration hash of the run that wrote it
(commitInfo.userMetadata), so run.skip_existing can tell whether an output is current.

Retention: every table keeps the files of replaced versions for RETENTION_HOURS (so a reader
that started on an older version finishes it) and its log for 7 days (session.DELTA_CONF sets
both as the tables' properties); a write vacuums the table when a version replaced more than
RETENTION_HOURS ago still has files. Repeated runs therefore keep the files of the versions
replaced within the last RETENTION_HOURS (plus the current one), not every version written.

Outputs that are not tables (model/, features_meta/, report/ directories, JSON files) are small
and written by local libraries. A file is replaced by a rename on local disk and HDFS (atomic
there) and by a single PUT on an object store (atomic there). A directory (publish_dir) is
renamed into place on local disk and HDFS. On an object store, where renaming a directory is a
copy and a delete of every object, it is versioned instead: its files are uploaded under
<dir>/<version>/ (v<UTC time>-<random>), then one PUT of <dir>/_PUBLISHED, naming that version,
makes it current; the version before stays for readers that resolved it, older ones are deleted.
A crash before that PUT leaves the previous version current and whole. Readers of those files
on any file system: read_text, path_exists, file_stamp, download, dataset_exists (Hadoop's
FileSystem through the driver's JVM for remote paths), which read a path inside a published
directory from its current version (resolve). Directories that Spark reads by path (the
generator's input files, the staged Spark NLP models) keep plain paths (versioned=False).
"""
from __future__ import annotations

import glob
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

from pyspark.sql import DataFrame, SparkSession

from reviewrec.jobs_table import is_object_store

log = logging.getLogger(__name__)

TMP_MARK = ".__tmp_"
OLD_MARK = ".__old_"
DELTA = "delta"
DELTA_LOG = "_delta_log"
# Delta's session setting whose value every commit records as commitInfo.userMetadata.
USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"
RETENTION_HOURS = 24
# On an object store, the object naming a published directory's current version (publish_dir).
PUBLISHED = "_PUBLISHED"
VERSION_PREFIX = "v"


def dataset_path(root: str, name: str) -> str:
    return root.rstrip("/") + "/" + name.strip("/")


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _local(path: str) -> str:
    """file:///a, file:/a -> /a; other paths unchanged."""
    if path.startswith("file://"):
        return path[len("file://"):]
    return path[len("file:"):] if path.startswith("file:") else path


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

    def copy_to_local(self, src: str, local: str) -> None:
        """`src` (a file or a directory, recursively) to the local path `local`, streamed by
        Hadoop; the raw local file system, so no .crc files beside the copies."""
        self.fs.copyToLocalFile(False, self.p(src), self.p("file://" + os.path.abspath(local)), True)

    def stamp(self, path: str) -> tuple[int, int]:
        """(length, modification time in ms) of the file at `path`."""
        st = self.fs.getFileStatus(self.p(path))
        return int(st.getLen()), int(st.getModificationTime())

    def read_bytes(self, path: str) -> bytes:
        stream = self.fs.open(self.p(path))
        try:
            return bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
        finally:
            stream.close()

    def read_if_exists(self, path: str) -> bytes | None:
        """The file's bytes, or None when there is none: one open (on S3A a single HEAD when the
        object is missing), no directory probes."""
        from py4j.protocol import Py4JJavaError

        try:
            return self.read_bytes(path)
        except Py4JJavaError as e:
            if e.java_exception.getClass().getName() == "java.io.FileNotFoundException":
                return None
            raise

    def children(self, path: str) -> list[str]:
        return [str(s.getPath().getName()) for s in self.fs.listStatus(self.p(path))] if self.exists(path) else []


def _published_version(fs: _FS, directory: str) -> str | None:
    """The version <directory>/_PUBLISHED names (publish_dir on an object store), or None."""
    data = fs.read_if_exists(f"{directory.rstrip('/')}/{PUBLISHED}")
    if data is None:
        return None
    version = data.decode("utf-8").strip()
    if not re.fullmatch(rf"{VERSION_PREFIX}\d{{8}}T\d{{6}}Z-[0-9a-f]{{8}}", version):
        raise ValueError(f"{directory}/{PUBLISHED} does not name a version: {version[:80]!r}")
    return version


def resolve(spark: SparkSession | None, path: str) -> str:
    """Where `path` is read: on an object store, a path inside (or at) a directory published by
    publish_dir maps into the directory's current version; any other path is itself. Each
    ancestor is probed once (an object GET or a HEAD that misses), nearest first."""
    if spark is None or not is_object_store(path):
        return path
    scheme, rest = path.split("://", 1)
    bucket, _, key = rest.partition("/")
    parts = [x for x in key.split("/") if x]
    fs = _FS(spark, path)
    for i in range(len(parts), 0, -1):
        directory = f"{scheme}://{bucket}/" + "/".join(parts[:i])
        version = _published_version(fs, directory)
        if version is not None:
            return "/".join([directory, version, *parts[i:]])
    return path


def path_exists(spark: SparkSession | None, path: str) -> bool:
    """A file or directory is at `path`, on any file system (local paths without Spark)."""
    if is_local(path):
        return os.path.exists(_local(path))
    if spark is None:
        raise ValueError(f"{path}: a remote file system is read through a SparkSession")
    path = resolve(spark, path)
    return _FS(spark, path).exists(path)


def read_text(spark: SparkSession | None, path: str) -> str:
    """The UTF-8 text of the file at `path`, on any file system (local paths without Spark);
    FileNotFoundError naming the path when there is none."""
    if is_local(path):
        with open(_local(path), encoding="utf-8") as fh:
            return fh.read()
    if spark is None:
        raise ValueError(f"{path}: a remote file system is read through a SparkSession")
    where = resolve(spark, path)
    fs = _FS(spark, where)
    if not fs.exists(where):
        raise FileNotFoundError(f"{path} not found")
    return fs.read_bytes(where).decode("utf-8")


def file_stamp(spark: SparkSession, path: str) -> tuple[int, int]:
    """(length, modification time in ms) of the file at `path` (any file system): a changed file
    has another stamp."""
    path = resolve(spark, path)
    return _FS(spark, path).stamp(path)


def download(spark: SparkSession, src: str, local: str) -> None:
    """Copy the file or directory at `src` (any file system) to the local path `local`."""
    src = resolve(spark, src)
    _FS(spark, src).copy_to_local(src, local)


def parent(path: str) -> str:
    """The directory holding `path` (a local path or a URL)."""
    if "://" not in path:
        return os.path.dirname(path.rstrip("/")) or "."
    return path.rstrip("/").rsplit("/", 1)[0]


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


def _commit_metadata(spark: SparkSession) -> str | None:
    return spark.conf.get(USER_METADATA_CONF, None) or None


def set_config_hash(spark: SparkSession, config_hash: str) -> None:
    """Record `config_hash` in every later commit of this session (commitInfo.userMetadata)."""
    spark.conf.set(USER_METADATA_CONF, json.dumps({"config_hash": config_hash}))


def write_dataset(df: DataFrame, path: str, partition_by: list[str] | None = None) -> None:
    """Replace the Delta table at `path` by `df` in one overwrite commit.

    The whole table is replaced whatever spark.sql.sources.partitionOverwriteMode says (under
    `dynamic`, a partitioned overwrite would replace only the partitions present in `df`), and
    the schema and partitioning may change from one version to the next."""
    writer = (df.write.format(DELTA)
              .mode("overwrite")
              .option("partitionOverwriteMode", "static")
              .option("overwriteSchema", "true"))
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(path)
    _apply_retention(df.sparkSession, path)
    log.info("wrote %s", path)


def write_parquet_atomic(df: DataFrame, path: str, partition_by: list[str] | None = None) -> None:
    """write_dataset under its earlier name."""
    write_dataset(df, path, partition_by)


def _delta_table(spark: SparkSession, path: str) -> Any:
    from delta.tables import DeltaTable

    return DeltaTable.forPath(spark, path)


def _apply_retention(spark: SparkSession, path: str) -> None:
    """Vacuum the table when files are due: a write older than the table's retention
    (delta.deletedFileRetentionDuration = RETENTION_HOURS, session.DELTA_CONF) replaced a version
    after the last vacuum. VACUUM lists every file of the table, so it runs only then."""
    import datetime as dt

    rows = _delta_table(spark, path).history().select("version", "timestamp", "operation").collect()
    cutoff = dt.datetime.now() - dt.timedelta(hours=RETENTION_HOURS)
    vacuumed = max((r["version"] for r in rows if r["operation"].startswith("VACUUM")), default=-1)
    if any(r["operation"] == "WRITE" and r["version"] > max(vacuumed, 0) and r["timestamp"] < cutoff for r in rows):
        _delta_table(spark, path).vacuum()


def table_version(spark: SparkSession, path: str) -> int:
    """The current version of the Delta table at `path`."""
    return int(_delta_table(spark, path).history(1).select("version").first()[0])


def history(spark: SparkSession, path: str) -> list[dict[str, Any]]:
    """The table's commits, newest first: version, operation, userMetadata (as a dict)."""
    rows = _delta_table(spark, path).history().select("version", "operation", "userMetadata").collect()
    return [{"version": int(r["version"]), "operation": r["operation"],
             "userMetadata": json.loads(r["userMetadata"]) if r["userMetadata"] else {}} for r in rows]


def config_hash_of(spark: SparkSession, path: str) -> str | None:
    """The config hash recorded by the last write (overwrite commit) of the table at `path`."""
    for h in history(spark, path):
        if h["operation"] == "WRITE":
            return h["userMetadata"].get("config_hash")
    return None


def table_files(spark: SparkSession, path: str, partition: tuple[str, str] | None = None) -> list[str]:
    """The Parquet files of the table's current version (the snapshot's file list, never a
    directory listing, which would include files of older or uncommitted versions), sorted;
    with `partition` = (column, value), only that partition's. Local tables give plain paths."""
    files = read_dataset(spark, path, "the job that writes it").inputFiles()
    if partition is not None:
        key = f"/{partition[0]}={partition[1]}/"
        files = [f for f in files if key in f]
    return sorted(_local(f) if f.startswith("file:") else f for f in files)


def log_files(table: str) -> list[str]:
    """The Parquet files of the current version of the local Delta table at `table`, read from
    its _delta_log alone (the last checkpoint, then the commits after it), sorted: for readers
    without a SparkSession (Horovod ranks, tools). FileNotFoundError when no version is committed."""
    import pyarrow.parquet as pq

    table = _local(table).rstrip("/")
    log_dir = os.path.join(table, DELTA_LOG)
    live: set[str] = set()
    start = -1
    last = os.path.join(log_dir, "_last_checkpoint")
    if os.path.isfile(last):
        with open(last, encoding="utf-8") as fh:
            start = int(json.load(fh)["version"])
        for part in sorted(glob.glob(os.path.join(log_dir, f"{start:020d}.checkpoint*.parquet"))):
            live.update(a["path"] for a in pq.read_table(part, columns=["add"]).column("add").to_pylist() if a)
    commits = sorted(n for n in (os.listdir(log_dir) if os.path.isdir(log_dir) else [])
                     if re.fullmatch(r"\d{20}\.json", n) and int(n[:20]) > start)
    if start < 0 and not commits:
        raise FileNotFoundError(f"{table}: no committed Delta table version ({log_dir})")
    for name in commits:
        with open(os.path.join(log_dir, name), encoding="utf-8") as fh:
            for line in fh:
                action = json.loads(line)
                if "add" in action:
                    live.add(action["add"]["path"])
                elif "remove" in action:
                    live.discard(action["remove"]["path"])
    return sorted(os.path.join(table, unquote(p)) for p in live)


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
    if resolve(spark, path) != path:
        raise ValueError(f"{path} is inside a published directory ({resolve(spark, path)}): write the directory "
                         "with publish_dir")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        fh.write(text)
    fs = _FS(spark, path)
    if is_object_store(path):
        # One PUT: the object appears whole, replacing the old one, with no moment without it.
        fs.copy_from_local(fh.name, path)
        os.unlink(fh.name)
        return
    tmp = _tmp_name(path)
    fs.copy_from_local(fh.name, tmp)
    os.unlink(fh.name)
    _commit(fs, tmp, path)


@contextmanager
def publish_dir(spark: SparkSession | None, path: str, versioned: bool = True) -> Iterator[str]:
    """Yield a local scratch directory; on success publish it as `path` atomically.

    Reports (PNG, HTML, JSON) and the model are produced by local libraries; this puts them
    under the run root whatever file system that is, replacing the previous one only when
    complete: by renames on local disk and HDFS, by a new version and one PUT naming it on an
    object store (the module's docstring). versioned=False keeps plain paths on an object store
    (uploaded, then renamed into place: not atomic there) for directories read by path listing
    (the generator's input files) or written once and never replaced (content-addressed models).
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
        if versioned and is_object_store(path):
            _publish_version(fs, scratch, path.rstrip("/"))
            return
        tmp = _tmp_name(path)
        fs.copy_from_local(scratch, tmp)
        _commit(fs, tmp, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _publish_version(fs: _FS, scratch: str, final: str) -> None:
    """`scratch` uploaded as a new version of the object-store directory `final`, made current by
    one PUT of final/_PUBLISHED; then every entry but the pointer, the new version and the one it
    replaced (a reader may still be reading it) is deleted."""
    import datetime as dt

    previous = _published_version(fs, final)
    version = f"{VERSION_PREFIX}{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    fs.copy_from_local(scratch, f"{final}/{version}")
    with tempfile.NamedTemporaryFile("w", suffix=PUBLISHED, delete=False) as fh:
        fh.write(version + "\n")
    try:
        fs.copy_from_local(fh.name, f"{final}/{PUBLISHED}")  # the commit: one PUT
    finally:
        os.unlink(fh.name)
    log.info("published %s/ as version %s", final, version)
    for name in fs.children(final):
        if name not in (PUBLISHED, version, previous):
            fs.delete(f"{final}/{name}")


def is_table(spark: SparkSession, path: str) -> bool:
    """A committed Delta table is at `path`."""
    from delta.tables import DeltaTable

    if not _FS(spark, path).exists(dataset_path(path, DELTA_LOG)):
        return False
    return bool(DeltaTable.isDeltaTable(spark, path))


def _uncommitted_table(fs: _FS, path: str) -> bool:
    """`path` is a directory of table files without a committed version (a first write that
    crashed before its commit)."""
    if not fs.fs.getFileStatus(fs.p(path)).isDirectory():
        return False
    names = [str(s.getPath().getName()) for s in fs.fs.listStatus(fs.p(path))]
    if any(n == DELTA_LOG or n.endswith(".parquet") for n in names):
        return True
    # Partition directories (k=v) of table files; day directories of raw input (dt=YYYY-MM-DD
    # holding text files) are not a table's.
    return any("=" in n and _holds_parquet(fs, f"{path.rstrip('/')}/{n}") for n in names)


def _holds_parquet(fs: _FS, path: str) -> bool:
    files = fs.fs.listFiles(fs.p(path), True)
    while files.hasNext():
        if str(files.next().getPath().getName()).endswith(".parquet"):
            return True
    return False


def dataset_exists(spark: SparkSession, path: str) -> bool:
    """A dataset (a committed Delta table) or another output (a file, a published directory)
    is at `path`."""
    path = resolve(spark, path)
    fs = _FS(spark, path)
    _recover(fs, path)
    if not fs.exists(path):
        return False
    if not fs.fs.getFileStatus(fs.p(path)).isDirectory():
        return True
    return is_table(spark, path) or not _uncommitted_table(fs, path)


def read_dataset(spark: SparkSession, path: str, produced_by: str) -> DataFrame:
    """The current version of the Delta table at `path`, with an error that says which job
    produces it when there is none."""
    if not dataset_exists(spark, path) or not is_table(spark, path):
        raise FileNotFoundError(f"dataset not found: {path} (produced by the {produced_by} job; run it first)")
    return spark.read.format(DELTA).load(path)


def read_parquet(spark: SparkSession, path: str, produced_by: str) -> DataFrame:
    """read_dataset under its earlier name."""
    return read_dataset(spark, path, produced_by)
