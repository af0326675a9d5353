"""Dataset commits (Delta tables): a reader sees the old version or the new one, never a mix; a
writer that fails or is killed mid-write leaves the old version current; every commit is one
version and records the config hash; non-table outputs are replaced whole."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from conftest import REPO
from reviewrec import io

pytestmark = pytest.mark.spark


def _boom(x: int) -> int:
    if x == 7:
        raise RuntimeError("simulated executor crash while writing")
    return x


def _values(spark, path: str) -> list[int]:
    return sorted(r.v for r in io.read_dataset(spark, path, "a test").collect())


def _parquet_files(path: str) -> set[str]:
    return {os.path.join(d, f) for d, _, fs in os.walk(path) if "_delta_log" not in d
            for f in fs if f.endswith(".parquet")}


def test_failed_write_keeps_previous_version(spark, tmp_path):
    path = str(tmp_path / "ds")
    io.write_dataset(spark.range(5).withColumnRenamed("id", "v"), path)
    crash = F.udf(_boom, T.LongType())
    with pytest.raises(Exception, match="simulated executor crash"):
        io.write_dataset(spark.range(10).select(crash("id").alias("v")), path)
    assert _values(spark, path) == [0, 1, 2, 3, 4]
    assert [h["version"] for h in io.history(spark, path)] == [0]
    io.write_dataset(spark.range(3).withColumnRenamed("id", "v"), path)
    assert _values(spark, path) == [0, 1, 2]
    assert [h["version"] for h in io.history(spark, path)] == [1, 0]
    # The replaced version's files stay (retention) but are not read.
    assert set(io.table_files(spark, path)) < _parquet_files(path)
    assert sorted(os.listdir(tmp_path)) == ["ds"]


KILLED_WRITER = """
import os, sys, time
sys.path.insert(0, {lib!r})
from pyspark.sql import functions as F, types as T
from reviewrec import io
from reviewrec.config import load_config
from reviewrec.session import build_session

def stall(x):
    if x == 130:  # the second partition stalls here, its file open, until the test kills us
        open({marker!r}, "w").close()
        time.sleep(600)
    return x

spark = build_session(load_config([{conf!r}], ["spark.conf.spark.sql.shuffle.partitions=2"]), "killed-writer")
df = spark.range(100, 140, numPartitions=2).select(F.udf(stall, T.LongType())("id").alias("v"))
io.write_dataset(df, {path!r})
"""


@pytest.mark.slow
def test_writer_killed_mid_write_leaves_old_version_current(spark, tmp_path):
    """A writer process killed (SIGKILL, JVM and Python workers) while writing: the new
    version's files exist but were never committed; readers get the old version's files."""
    path, marker = str(tmp_path / "ds"), str(tmp_path / "stalled")
    io.write_dataset(spark.range(5).withColumnRenamed("id", "v"), path)
    old_files = io.table_files(spark, path)
    script = KILLED_WRITER.format(lib=str(REPO / "lib"), marker=marker, path=path,
                                  conf=str(REPO / "conf" / "local.yaml"))
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        new_complete: list[str] = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None and not (os.path.exists(marker) and new_complete):
            time.sleep(0.5)
            for f in _parquet_files(path) - set(old_files) - set(new_complete):
                try:
                    pq.read_table(f)
                except Exception:  # noqa: BLE001 - the stalled partition's file is still open
                    continue
                new_complete.append(f)
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
        assert os.path.exists(marker) and new_complete, "the writer never reached the middle of its write"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # The kill landed mid-write: a finished file of the new version (values >= 100) is on disk ...
    assert min(pq.read_table(new_complete[0]).column("v").to_pylist()) >= 100
    # ... uncommitted: the log still has one version, whose files are the ones read.
    assert [h["version"] for h in io.history(spark, path)] == [0]
    assert io.table_files(spark, path) == old_files == io.log_files(path)
    assert _values(spark, path) == [0, 1, 2, 3, 4]


def test_partitioned_overwrite_replaces_every_partition(spark, tmp_path):
    """conf/base.yaml sets partitionOverwriteMode=dynamic; a dataset write still replaces the
    whole table, not only the partitions the new data has."""
    assert spark.conf.get("spark.sql.sources.partitionOverwriteMode") == "dynamic"
    path = str(tmp_path / "features")
    io.write_dataset(spark.createDataFrame([(1, "train"), (2, "val"), (3, "test")], "v long, split string"),
                     path, partition_by=["split"])
    io.write_dataset(spark.createDataFrame([(10, "train"), (11, "train")], "v long, split string"),
                     path, partition_by=["split"])
    assert _values(spark, path) == [10, 11]
    assert io.table_files(spark, path, ("split", "val")) == []
    assert len(io.table_files(spark, path, ("split", "train"))) >= 1


def test_history_records_the_config_hash_and_skip_existing_uses_it(spark, tmp_path):
    from reviewrec import pipeline
    from reviewrec.config import load_config

    root = str(tmp_path / "run")
    path = io.dataset_path(root, "ds")
    cfg_a = load_config([], [f"run.root={root}"])
    cfg_b = load_config([], [f"run.root={root}", "synthetic.seed=7"])
    before = spark.conf.get(io.USER_METADATA_CONF, None)
    try:
        stage = pipeline.Stage("s", "unused:run", ("ds",))
        io.set_config_hash(spark, cfg_a.hash())
        io.write_dataset(spark.range(2).withColumnRenamed("id", "v"), path)
        io.write_json_atomic(spark, pipeline._marker(root, "s"), {"config_hash": cfg_a.hash()})
        assert pipeline._done(spark, cfg_a, stage)
        assert not pipeline._done(spark, cfg_b, stage)
        # The dataset rewritten under another config: the marker alone no longer makes it current.
        io.set_config_hash(spark, cfg_b.hash())
        io.write_dataset(spark.range(3).withColumnRenamed("id", "v"), path)
        assert not pipeline._done(spark, cfg_a, stage)
        assert [(h["version"], h["userMetadata"]["config_hash"]) for h in io.history(spark, path)] == \
            [(1, cfg_b.hash()), (0, cfg_a.hash())]
        assert io.config_hash_of(spark, path) == cfg_b.hash()
    finally:
        if before is not None:
            spark.conf.set(io.USER_METADATA_CONF, before)


def test_read_missing_or_uncommitted_dataset_names_path_and_producer(spark, tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}/reviews.*ingest job"):
        io.read_dataset(spark, str(tmp_path / "reviews"), "ingest")
    # A first write that died before its commit: files, no version.
    part = tmp_path / "tokens" / "part-00000-x.snappy.parquet"
    part.parent.mkdir()
    spark.range(3).toPandas().to_parquet(part)
    assert not io.dataset_exists(spark, str(tmp_path / "tokens"))
    with pytest.raises(FileNotFoundError, match="tokens.*preprocess job"):
        io.read_parquet(spark, str(tmp_path / "tokens"), "preprocess")
    # A partitioned one (split=train/part-*.parquet) is unfinished too; day directories of raw
    # text input (dt=YYYY-MM-DD/*.tsv.gz, the generator's output) are a finished output.
    part = tmp_path / "features" / "split=train" / "part-00000-x.snappy.parquet"
    part.parent.mkdir(parents=True)
    spark.range(3).toPandas().to_parquet(part)
    assert not io.dataset_exists(spark, str(tmp_path / "features"))
    day = tmp_path / "raw" / "dt=2015-09-01" / "part-00000.tsv.gz"
    day.parent.mkdir(parents=True)
    day.write_bytes(b"")
    assert io.dataset_exists(spark, str(tmp_path / "raw"))


def test_json_and_report_dir_are_atomic(tmp_path):
    p = str(tmp_path / "r" / "s.json")
    io.write_json_atomic(None, p, {"a": 1})
    assert json.load(open(p)) == {"a": 1}
    rep = str(tmp_path / "report")
    with io.publish_dir(None, rep) as d:
        open(os.path.join(d, "index.html"), "w").write("v1")
    with pytest.raises(ValueError):
        with io.publish_dir(None, rep) as d:
            open(os.path.join(d, "index.html"), "w").write("half")
            raise ValueError("plot failed")
    assert open(os.path.join(rep, "index.html")).read() == "v1"
    assert sorted(os.listdir(tmp_path)) == ["r", "report"]
