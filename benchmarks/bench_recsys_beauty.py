"""Amazon Beauty 5-core through the recommend job: leave-last-out, full ranking.

    .venv/bin/python benchmarks/bench_recsys_beauty.py [--data SEQUENCES.txt] [--phases valid,test]
        [--also user_cf,blend] [--no-job] [--set recsys.key=value ...] [--out results.json]

The sequence file (`user item item ...` per line, items in time order; default: the shared
Amazon Beauty 5-core) becomes reviews (benchmarks/sequence_eval.py) under a scratch run root,
and the recommend job runs on them as on any reviews: it detects implicit 5-core data, ranks with
`recsys.ranker` and evaluates itself leave-last-out against popularity (validation item and test
item). `--also` evaluates further rankers with the job's evaluation code on the same reviews;
`--no-job` runs only that evaluation (for a quick grid on the validation item). Settings are
chosen on the validation item only. Spark local[2] (conf/local.yaml).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))

import sequence_eval as seq  # noqa: E402
from _emit import emit  # noqa: E402
from reviewrec import io  # noqa: E402
from reviewrec.config import load_config  # noqa: E402
from reviewrec.recommend import job  # noqa: E402
from reviewrec.runtime import peak_rss_mb, setup_logging  # noqa: E402
from reviewrec.session import build_session  # noqa: E402

DATA = REPO / ".." / "shared" / "data" / "amazon_beauty_5core" / "Beauty.txt"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DATA), help="sequence file (5-core format)")
    ap.add_argument("--phases", default="valid,test")
    ap.add_argument("--also", default="", help="further rankers to evaluate beside the job's")
    ap.add_argument("--no-job", action="store_true", help="only the evaluation of --also rankers")
    ap.add_argument("--set", action="append", default=[], dest="sets", help="recsys.key=value")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    setup_logging()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    scratch = tempfile.mkdtemp(prefix="bench-beauty-")
    phases = [x for x in args.phases.split(",") if x]
    sets = ["spark.app_name=bench-recsys-beauty", f"run.root={scratch}/run",
            f"recsys.evaluate.phases=[{','.join(phases)}]", *args.sets]
    cfg = load_config([str(REPO / "conf" / "local.yaml")], sets)
    spark = build_session(cfg)
    data = Path(args.data).resolve()
    out = {"data": str(data), "sets": args.sets, "phases": phases}
    try:
        t0 = time.perf_counter()
        reviews = seq.read_sequences(spark, str(data))
        root = cfg["run"]["root"]
        io.write_parquet_atomic(reviews, io.dataset_path(root, "reviews"))
        if not args.no_job:
            summary = job.run(spark, cfg)
            out["job"] = {k: summary[k] for k in ("ranker", "feedback", "ranking", "counts", "timings")}
            out["job_wall_s"] = round(time.perf_counter() - t0, 1)
        also = [x for x in args.also.split(",") if x]
        if also:
            t1 = time.perf_counter()
            revs = io.read_parquet(spark, io.dataset_path(root, "reviews"), "bench_recsys_beauty")
            out["also"] = seq.evaluate(spark, revs, cfg, also, phases)
            out["also_wall_s"] = round(time.perf_counter() - t1, 1)
        out["driver_peak_rss_mb"] = round(peak_rss_mb())
    finally:
        spark.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    emit(out, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
