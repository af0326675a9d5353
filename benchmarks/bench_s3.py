"""Dataset write time on local disk vs s3a:// (the local S3 server, moto) through the project's
dataset writer (reviewrec.io.write_dataset, else write_parquet_atomic: the commit every job uses).

The `reviews` dataset of ROWS generated reviews is ingested once on local disk and cached; then
each target gets REPEATS replacing writes of it (the first creates, later ones replace the
previous version, as a rerun does), the targets alternating. The S3 server is started for the run
(lib/s3.sh through benchmarks/_s3bench.py, its own state directory and port) and stopped at the end.

    .venv/bin/python benchmarks/bench_s3.py [--rows 100000] [--repeats 3] [--out result.json]

moto keeps objects in memory on this machine: the figures show the request pattern's cost
(S3A's listing, copy-as-rename, the commit protocol's extra objects), not S3's latency or
bandwidth, which a real bucket adds per request.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))
sys.path.insert(0, str(REPO / "benchmarks"))

BUCKET = "reviewrec-bench"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out")
    args = ap.parse_args()

    from _emit import emit
    from _s3bench import s3_server

    work = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    with s3_server(BUCKET, state=str(work / "s3"), port=free_port()) as s3:
        # s3a reads the keys from the environment the JVM inherits, as in conf/s3.yaml.
        os.environ.update(s3.credentials)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        from reviewrec import generate, io
        from reviewrec.config import load_config
        from reviewrec.ingest.job import run as ingest
        from reviewrec.session import build_session

        root = work / "run"
        confs = [str(REPO / "conf" / "local.yaml"), str(REPO / "conf" / "s3.yaml")]
        sets = [f"run.root={root}", f"synthetic.rows={args.rows}", "spark.app_name=bench-s3", *s3.conf_sets()]
        generate.run(None, load_config(confs, sets))
        cfg = load_config(confs, [*sets, "input.format=tsv", f"input.path={root}/raw"])
        spark = build_session(cfg, "bench")
        ingest(spark, cfg)
        reviews = io.read_dataset(spark, io.dataset_path(str(root), "reviews"), "ingest").cache()
        n = reviews.count()
        write = io.write_dataset
        targets = {"local disk": str(work / "out" / "reviews"), "s3a (moto)": f"s3a://{BUCKET}/out/reviews"}
        seconds: dict[str, list[float]] = {name: [] for name in targets}
        # The targets alternate, so a change in the machine's load falls on both.
        for _ in range(args.repeats):
            for name, target in targets.items():
                t0 = time.perf_counter()
                write(reviews, target)
                seconds[name].append(round(time.perf_counter() - t0, 2))
        results = {name: {"seconds": s, "median_s": statistics.median(s), "path": targets[name]}
                   for name, s in seconds.items()}
        results["load_average_1m_at_end"] = os.getloadavg()[0]
        spark.stop()
        emit({"rows_generated": args.rows, "reviews_rows": n, "repeats": args.repeats, "writes": results,
              "writer": f"reviewrec.io.{write.__name__}"}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
