"""Atomic outputs: a failed write leaves the previous output current; interrupted commits recover."""
from __future__ import annotations

import os

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from reviewrec import io

pytestmark = pytest.mark.spark


def _boom(x: int) -> int:
    if x == 7:
        raise RuntimeError("simulated executor crash while writing")
    return x


def test_failed_write_keeps_previous_output(spark, tmp_path):
    path = str(tmp_path / "ds")
    io.write_parquet_atomic(spark.range(5).withColumnRenamed("id", "v"), path)
    crash = F.udf(_boom, T.LongType())
    with pytest.raises(Exception, match="simulated executor crash"):
        io.write_parquet_atomic(spark.range(10).select(crash("id").alias("v")), path)
    assert sorted(r.v for r in spark.read.parquet(path).collect()) == [0, 1, 2, 3, 4]
    # The next successful write replaces it and clears the leftovers of the failed one.
    io.write_parquet_atomic(spark.range(3).withColumnRenamed("id", "v"), path)
    assert sorted(r.v for r in spark.read.parquet(path).collect()) == [0, 1, 2]
    assert sorted(os.listdir(tmp_path)) == ["ds"]


def test_interrupted_commit_is_recovered(spark, tmp_path):
    path = str(tmp_path / "ds")
    io.write_parquet_atomic(spark.range(4).withColumnRenamed("id", "v"), path)
    # A crash between "move old aside" and "move new in": only the old copy exists.
    os.rename(path, path + io.OLD_MARK + "deadbeef")
    assert io.dataset_exists(spark, path)
    assert spark.read.parquet(path).count() == 4


def test_read_missing_dataset_names_path_and_producer(spark, tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}/reviews.*ingest job"):
        io.read_parquet(spark, str(tmp_path / "reviews"), "ingest")


def test_json_and_report_dir_are_atomic(tmp_path):
    p = str(tmp_path / "r" / "s.json")
    io.write_json_atomic(None, p, {"a": 1})
    assert open(p).read().strip().startswith("{")
    rep = str(tmp_path / "report")
    with io.publish_dir(None, rep) as d:
        open(os.path.join(d, "index.html"), "w").write("v1")
    with pytest.raises(ValueError):
        with io.publish_dir(None, rep) as d:
            open(os.path.join(d, "index.html"), "w").write("half")
            raise ValueError("plot failed")
    assert open(os.path.join(rep, "index.html")).read() == "v1"
    assert sorted(os.listdir(tmp_path)) == ["r", "report"]
