"""The day-by-day input: day directories, their files, the ledger of what was ingested, and the
Delta writes that merge a day (docs/incremental.md).

Input layout: Hive-style day directories under the input path, `<path>/dt=YYYY-MM-DD/...`.
The ledger is the Delta table <root>/ingest_days: one row per day (null: input outside day
directories) with the files ingested (name under the day directory, size) and the day's
reconciliation. A day's file already in the ledger with the same size is never read again; a
file of an ingested day whose size changed is an error (a day's files are immutable once
ingested: what they merged cannot be taken back).

Each commit that merges a day into reviews carries, in its userMetadata next to the config
hash, the day, its files and its counts: a run that died after that commit and before the
ledger's finds them there and completes the ledger without merging again.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from reviewrec import io
from reviewrec.config import DAY_DIR_PREFIX
from reviewrec.ingest.merge import DAY_IN_PATH

log = logging.getLogger(__name__)

LEDGER = "ingest_days"
LEDGER_SCHEMA = T.StructType([
    T.StructField("day", T.DateType(), True),
    T.StructField("files", T.StringType(), False),   # JSON [[name, size], ...], sorted
    T.StructField("counts", T.StringType(), False),  # JSON: the day's reconciliation
    T.StructField("config_hash", T.StringType(), True),
])
META_KEY = "ingest"


class InputChanged(RuntimeError):
    """A file of a day already ingested changed size."""


@dataclass(frozen=True)
class InputFile:
    path: str   # as the file system lists it (a URI)
    name: str   # its name under its day directory (its path when it is in none)
    day: str | None
    size: int


def day_dir(base: str, day: str) -> str:
    return base.rstrip("/") + f"/{DAY_DIR_PREFIX}{day}"


def _hidden(part: str) -> bool:
    # Spark's file index skips these names (InMemoryFileIndex.shouldFilterOutPathName).
    return (part.startswith("_") and "=" not in part) or part.startswith(".") or part.endswith("._COPYING_")


def _day_and_name(uri: str) -> tuple[str | None, str]:
    import re

    m = re.search(DAY_IN_PATH, uri)
    if not m:
        return None, uri
    return m.group(1), uri[m.end():]


def list_input(spark: SparkSession, path: str) -> list[InputFile]:
    """The data files at `path` (a file, a directory, recursively, or a glob), skipping the
    names Spark's readers skip, sorted by path."""
    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[attr-defined]
    p = jvm.org.apache.hadoop.fs.Path(path)
    fs = p.getFileSystem(conf)
    out: list[InputFile] = []
    for st in fs.globStatus(p) or []:
        root = st.getPath()
        if not st.isDirectory():
            out.append(_file(str(root.toString()), int(st.getLen())))
            continue
        root_uri = str(root.toString()).rstrip("/")
        it = fs.listFiles(root, True)
        while it.hasNext():
            f = it.next()
            uri = str(f.getPath().toString())
            rel = uri[len(root_uri):].lstrip("/") if uri.startswith(root_uri) else f.getPath().getName()
            if any(_hidden(part) for part in rel.split("/")):
                continue
            out.append(_file(uri, int(f.getLen())))
    return sorted(out, key=lambda f: f.path)


def _file(uri: str, size: int) -> InputFile:
    day, name = _day_and_name(uri)
    return InputFile(uri, name, day, size)


def day_files(spark: SparkSession, base: str, day: str) -> list[InputFile]:
    """The files of day `day` under `base`: FileNotFoundError naming the day's directory when it
    is missing or holds no data file (a scheduled run for a day whose data did not arrive fails)."""
    d = day_dir(base, day)
    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[attr-defined]
    p = jvm.org.apache.hadoop.fs.Path(d)
    if not p.getFileSystem(conf).exists(p):
        raise FileNotFoundError(f"input for day {day} not found: {d} does not exist (input.day = {day} reads "
                                f"<input path>/{DAY_DIR_PREFIX}YYYY-MM-DD/; did the day's data arrive?)")
    files = list_input(spark, d)
    if not files:
        raise FileNotFoundError(f"input for day {day} not found: {d} holds no data files")
    return files


# -- the ledger ------------------------------------------------------------------------------

def ledger_path(root: str) -> str:
    return io.dataset_path(root, LEDGER)


def read_ledger(spark: SparkSession, root: str) -> dict[str | None, dict[str, Any]]:
    """day (YYYY-MM-DD, None for undated input) -> {"files": {name: size}, "counts": {...}}."""
    path = ledger_path(root)
    if not io.is_table(spark, path):
        return {}
    out: dict[str | None, dict[str, Any]] = {}
    for r in io.read_dataset(spark, path, "ingest").collect():
        day = r["day"].isoformat() if r["day"] is not None else None
        out[day] = {"files": {n: s for n, s in json.loads(r["files"])}, "counts": json.loads(r["counts"])}
    return out


def ledger_rows(spark: SparkSession, days: dict[str | None, dict[str, Any]], config_hash: str) -> DataFrame:
    import datetime as dt

    rows = [(dt.date.fromisoformat(d) if d else None, json.dumps(sorted(v["files"].items())),
             json.dumps(v["counts"], sort_keys=True), config_hash) for d, v in sorted(days.items(), key=_day_order)]
    return spark.createDataFrame(rows, LEDGER_SCHEMA)


def _day_order(item: tuple[str | None, Any]) -> str:
    return item[0] or ""


def pending(files: list[InputFile], done: dict[str, int], day: str) -> list[InputFile]:
    """The files of `day` not ingested yet; InputChanged when one already ingested changed size."""
    changed = [f"{f.name} ({done[f.name]} -> {f.size} bytes)" for f in files
               if f.name in done and done[f.name] != f.size]
    if changed:
        raise InputChanged(
            f"day {day}: file(s) already ingested changed since: {', '.join(changed)}. A day's files are "
            "immutable once ingested (what they merged into reviews cannot be taken back); deliver changes as "
            "new files (late corrections), or rebuild every day with one run over all of them (input.day unset)")
    gone = sorted(set(done) - {f.name for f in files})
    if gone:
        log.warning("day %s: %d file(s) ingested earlier are no longer there (their reviews stay): %s", day,
                    len(gone), gone[:5])
    return [f for f in files if f.name not in done]


# -- commits ---------------------------------------------------------------------------------

@contextmanager
def commit_metadata(spark: SparkSession, extra: dict[str, Any]) -> Iterator[None]:
    """Delta commits inside carry `extra` in their userMetadata beside the config hash."""
    before = spark.conf.get(io.USER_METADATA_CONF, None)
    base = json.loads(before) if before else {}
    spark.conf.set(io.USER_METADATA_CONF, json.dumps({**base, **extra}, sort_keys=True))
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(io.USER_METADATA_CONF)
        else:
            spark.conf.set(io.USER_METADATA_CONF, before)


def applied_commit(spark: SparkSession, path: str, day: str | None, names: list[str]) -> dict[str, Any] | None:
    """The ingest metadata of the commit of `path` that merged `day`'s files `names`, if one did."""
    if not io.is_table(spark, path):
        return None
    for h in io.history(spark, path):
        meta = h["userMetadata"].get(META_KEY)
        if meta and meta.get("day") == day and sorted(meta.get("files", [])) == sorted(names):
            return meta
    return None


def _sql_string(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def replace_rows(df: DataFrame, path: str, day: str | None, day_col: str,
                 files: list[str] | None = None, retention: bool = True) -> None:
    """Replace, in the table at `path`, the rows of `day` (and, given `files`, only those whose
    source_file is one of them) by `df`, in one commit: rerunning it leaves the same rows. A
    table not there yet is created. `retention` False: no VACUUM check (the rows of a day not
    written before replace no file, so no file is due)."""
    spark = df.sparkSession
    if not io.is_table(spark, path):
        io.write_dataset(df, path)
        return
    cond = f"{day_col} = DATE{_sql_string(day)}" if day else f"{day_col} IS NULL"
    if files is not None:
        cond += f" AND source_file IN ({', '.join(_sql_string(f) for f in files)})" if files else " AND FALSE"
    (df.write.format(io.DELTA).mode("overwrite").option("replaceWhere", cond)
     .option("partitionOverwriteMode", "static").save(path))
    if retention:
        apply_retention(spark, path)
    log.info("replaced the rows of %s in %s", cond, path)


def upsert(source: DataFrame, path: str, key: str) -> None:
    """MERGE `source` into the table at `path` by `key`: matched rows replaced by the source's,
    the others inserted, in one commit. A table not there yet is created from `source`."""
    from delta.tables import DeltaTable

    spark = source.sparkSession
    if not io.is_table(spark, path):
        io.write_dataset(source, path)
        return
    (DeltaTable.forPath(spark, path).alias("t")
     .merge(source.alias("s"), f"t.`{key}` = s.`{key}`")
     .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())
    apply_retention(spark, path)
    log.info("merged into %s", path)


def apply_retention(spark: SparkSession, path: str) -> None:
    """io's retention for tables changed by MERGE and replaceWhere too: VACUUM when a commit that
    replaced files is older than io.RETENTION_HOURS and came after the last VACUUM."""
    import datetime as dt

    from delta.tables import DeltaTable

    table = DeltaTable.forPath(spark, path)
    rows = table.history().select("version", "timestamp", "operation").collect()
    cutoff = dt.datetime.now() - dt.timedelta(hours=io.RETENTION_HOURS)
    vacuumed = max((r["version"] for r in rows if r["operation"].startswith("VACUUM")), default=-1)
    if any(r["operation"] in ("WRITE", "MERGE", "DELETE", "UPDATE") and r["version"] > max(vacuumed, 0)
           and r["timestamp"] < cutoff for r in rows):
        table.vacuum()


def count_by(df: DataFrame, *cols: str) -> dict[tuple, int]:
    return {tuple(r[c] for c in cols): int(r["count"]) for r in df.groupBy(*cols).count().collect()}


def as_day(d: Any) -> str | None:
    return d.isoformat() if d is not None else None


def files_of_rows(df: DataFrame, col: str) -> list[str]:
    return sorted(r[0] for r in df.select(col).distinct().collect() if r[0] is not None)

