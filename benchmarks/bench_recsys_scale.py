"""Blockwise top-k user similarity at scale on generated data: wall time, peak memory, growth.

    .venv/bin/python benchmarks/bench_recsys_scale.py --users 100000,300000,1000000 \
        [--ratings-per-user 10] [--items 200000] [--k 20] [--max-item-degree 200] [--top-n 10] [--out r.json]

Data, generated in Spark (nothing on the driver): rating j belongs to user j mod U (so U users
x 10 ratings = 10M ratings at 1M users); its item is floor(exp(x ln(I + 1))) - 1 with x
uniform, i.e. P(item i) ~ 1/(i + 1): Zipf item popularity with exponent 1. Duplicate (user,
item) pairs are dropped. With exponent 1 the most popular item has ~8% of all ratings, so the
exact all-pairs cost (sum of squared item degrees) is ~1e12 products at 1M users: the run
uses the approximate mode (--max-item-degree raters sampled per item); --max-item-degree 0
runs exact. `--top-n N` (0: skip) also times user-CF recommendations from those neighbours as
the recommend job makes them (recommend.cf.user_cf_scores with seen items excluded, then top_n)
and writes them. Peak memory: the largest summed RSS of this process and all its descendants
(driver JVM, Python workers), sampled every 0.5 s.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))

from pyspark.sql import functions as F  # noqa: E402

from _emit import emit  # noqa: E402
from reviewrec.config import load_config  # noqa: E402
from reviewrec.recommend import similarity  # noqa: E402
from reviewrec.recommend import cf  # noqa: E402
from reviewrec.runtime import setup_logging  # noqa: E402
from reviewrec.session import build_session  # noqa: E402


class PeakRSS:
    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _total(self) -> int:
        me = psutil.Process()
        total = 0
        for p in [me, *me.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._total())
            time.sleep(0.5)

    def __enter__(self) -> PeakRSS:
        self.peak = 0
        self._stop.clear()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def generate(spark, n_users: int, per_user: int, n_items: int, seed: int):  # noqa: ANN001, ANN201
    item = (F.floor(F.exp(F.rand(seed) * F.log(F.lit(float(n_items + 1))))) - 1).cast("long")
    return (spark.range(n_users * per_user)
            .select((F.col("id") % n_users).alias("row"), item.alias("col"))
            .dropDuplicates(["row", "col"])
            .withColumn("value", F.lit(1.0)))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", default="100000,300000,1000000")
    ap.add_argument("--ratings-per-user", type=int, default=10)
    ap.add_argument("--items", type=int, default=200000)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--max-item-degree", type=int, default=200)
    ap.add_argument("--block-size", type=int, default=16384)
    ap.add_argument("--top-n", type=int, default=10)
    ap.add_argument("--max-pairs", type=int, default=5_000_000)
    ap.add_argument("--driver-memory", default="8g")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    setup_logging()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    cfg = load_config([str(REPO / "conf" / "local.yaml")],
                      ["spark.app_name=bench-recsys-scale", f"spark.conf.spark.driver.memory={args.driver_memory}"])
    spark = build_session(cfg)
    results = []
    tmp = tempfile.mkdtemp(prefix="bench-recsys-scale-")
    try:
        for n in [int(x) for x in args.users.split(",")]:
            data_path = f"{tmp}/ratings_{n}"
            generate(spark, n, args.ratings_per_user, args.items, 11).write.parquet(data_path)
            e = spark.read.parquet(data_path)
            stats = e.agg(F.count(F.lit(1)).alias("nnz"), F.countDistinct("col").alias("items")).first()
            top = e.groupBy("col").count().agg(F.max("count")).first()[0]
            params = similarity.SimilarityParams(k=args.k, block_size=args.block_size, max_pairs=args.max_pairs,
                                        max_column_degree=args.max_item_degree or None)
            with PeakRSS() as mem:
                t0 = time.perf_counter()
                similarity.topk_similarity(e, params, n_rows=n, n_cols=args.items).write.parquet(f"{tmp}/nb_{n}")
                wall = time.perf_counter() - t0
            rows = spark.read.parquet(f"{tmp}/nb_{n}").count()
            rec = {}
            if args.top_n > 0:
                ratings = e.select(F.col("row").alias(cf.U), F.col("col").alias(cf.I), F.col("value").alias(cf.VALUE))
                with PeakRSS() as mem2:
                    t0 = time.perf_counter()
                    scores = cf.user_cf_scores(spark.read.parquet(f"{tmp}/nb_{n}"), ratings, seen=ratings)
                    cf.top_n(scores, args.top_n, cf.SRC_USER_CF).write.parquet(f"{tmp}/rec_{n}")
                    rec_wall = time.perf_counter() - t0
                recs = spark.read.parquet(f"{tmp}/rec_{n}")
                rec = {"top_n": args.top_n, "recommend_wall_s": round(rec_wall, 1),
                       "recommend_peak_rss_gib": round(mem2.peak / 2**30, 2), "recommendation_rows": recs.count(),
                       "users_with_recommendations": recs.select(cf.U).distinct().count()}
            r = {"users": n, "ratings": int(stats["nnz"]), "items_used": int(stats["items"]),
                 "largest_item_degree": int(top), "k": args.k, "max_item_degree": args.max_item_degree,
                 "block_size": args.block_size, "wall_s": round(wall, 1),
                 "peak_rss_gib": round(mem.peak / 2**30, 2), "neighbor_rows": rows, **rec}
            print(json.dumps(r), flush=True)
            results.append(r)
    finally:
        spark.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    out = {"results": results}
    if len(results) > 1:
        out["growth"] = [{"from": a["users"], "to": b["users"], "users_x": round(b["users"] / a["users"], 1),
                          "time_x": round(b["wall_s"] / a["wall_s"], 2),
                          **({"recommend_time_x": round(b["recommend_wall_s"] / a["recommend_wall_s"], 2)}
                             if "recommend_wall_s" in a else {})}
                         for a, b in zip(results, results[1:], strict=False)]
    emit(out, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
