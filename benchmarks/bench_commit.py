"""Dataset commit cost: the features dataset written with the earlier scheme (Parquet to a
temporary sibling, then renamed over the old output) vs a Delta overwrite commit (io.write_dataset).

    nice -n 10 .venv/bin/python benchmarks/bench_commit.py --rows 300000 [--rounds 3] [--root DIR]

The rows have the features' shape (review_id, user_idx, item_idx, label, a 64-id sequence,
split) and are cached in memory first, so a round times the write and its commit only. Each
round replaces the previous output (the case of a rerun). --root may be any Hadoop path
(hdfs://, s3a://). An s3a:// root is on the local S3 server (lib/s3.sh; state and port from
REVIEWREC_S3_DIR / REVIEWREC_S3_PORT), started for the run unless it is up (and then stopped), its
bucket created, with conf/s3.yaml pointed at it and its keys in the environment the JVM inherits,
as benchmarks/bench_s3.py does. Prints JSON (median seconds per scheme, all rounds, the load
average sampled during the run); RESULTS.md "Dataset commit".
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))
sys.path.insert(0, str(REPO / "benchmarks"))

from _emit import emit  # noqa: E402
from _s3bench import LoadSampler, s3_server  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from reviewrec import io  # noqa: E402
from reviewrec.config import load_config  # noqa: E402
from reviewrec.runtime import setup_logging  # noqa: E402
from reviewrec.session import build_session  # noqa: E402


def features_like(spark, rows: int, files_per_split: int):
    split = (F.when(F.col("id") % 10 < 8, "train").when(F.col("id") % 10 == 8, "val").otherwise("test"))
    return (spark.range(rows, numPartitions=4)
            .select(F.format_string("R%09d", "id").alias("review_id"),
                    (F.col("id") % 50_000).cast("int").alias("user_idx"),
                    (F.col("id") % 7_000).cast("int").alias("item_idx"),
                    (F.col("id") % 5).cast("int").alias("label"),
                    F.transform(F.sequence(F.lit(0), F.lit(63)), lambda i: ((F.col("id") * 31 + i) % 20_000)
                                .cast("int")).alias("seq"),
                    split.alias("split"))
            .repartition(3 * files_per_split, "split")
            .sortWithinPartitions("split", "review_id"))


def rename_commit(df, path: str) -> None:
    """The earlier scheme: write a temporary sibling, then rename it over the old output."""
    tmp = io._tmp_name(path)
    df.write.mode("overwrite").partitionBy("split").parquet(tmp)
    io._commit(io._FS(df.sparkSession, path), tmp, path)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--files-per-split", type=int, default=4)
    ap.add_argument("--root", default=None)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    setup_logging("WARNING")
    t_start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        sampler = stack.enter_context(LoadSampler(every=15))
        confs, sets = [str(REPO / "conf" / "local.yaml")], []
        if a.root and a.root.startswith("s3a://"):
            s3 = stack.enter_context(s3_server(a.root.split("://", 1)[1].split("/", 1)[0]))
            # s3a reads the keys from the environment the JVM inherits (conf/s3.yaml's providers).
            os.environ.update(s3.credentials)
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            confs.append(str(REPO / "conf" / "s3.yaml"))
            sets += s3.conf_sets()
        spark = build_session(load_config(confs, sets), "bench-commit")
        scratch = None if a.root else tempfile.mkdtemp(prefix="bench-commit-")
        root = a.root or scratch
        df = features_like(spark, a.rows, a.files_per_split).cache()
        n = df.count()
        times: dict[str, list[float]] = {"rename": [], "delta": []}
        try:
            for r in range(a.rounds + 1):  # round 0 warms both writers up and is not counted
                for scheme, write in (("rename", rename_commit),
                                      ("delta", lambda d, p: io.write_dataset(d, p, partition_by=["split"]))):
                    t0 = time.perf_counter()
                    write(df, f"{root}/features_{scheme}")
                    if r:
                        times[scheme].append(round(time.perf_counter() - t0, 2))
            assert io.read_dataset(spark, f"{root}/features_delta", "bench").count() == n
            assert len(io.history(spark, f"{root}/features_delta")) == a.rounds + 1
        finally:
            spark.stop()
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)
    loads = [v for _t, v in sampler.samples]
    emit({"rows": n, "root": a.root or "local temporary directory", "rounds": a.rounds,
          "median_s": {k: statistics.median(v) for k, v in times.items()}, "seconds": times,
          "delta_over_rename": round(statistics.median(times["delta"]) / statistics.median(times["rename"]), 2),
          "wall_seconds": round(time.perf_counter() - t_start, 1),
          "load_average_1m": {"min": min(loads), "max": max(loads), "samples": sampler.samples}}, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
