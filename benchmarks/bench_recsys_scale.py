"""Neighbours and the recommend job's rankers at scale on generated data: wall time, peak memory, growth.

    .venv/bin/python benchmarks/bench_recsys_scale.py --users 100000,300000,1000000 \
        [--rankers neighbors,item_cf,user_cf,blend] [--ratings-per-user 10] [--items 200000] [--k 20] \
        [--max-item-degree 200] [--top-n 10] [--ranker-timeout SECONDS] [--out r.json]

Data, generated in Spark (nothing on the driver): rating j belongs to user j mod U (so U users
x 10 ratings = 10M ratings at 1M users); its item is floor(exp(x ln(I + 1))) - 1 with x
uniform, i.e. P(item i) ~ 1/(i + 1): Zipf item popularity with exponent 1. Duplicate (user,
item) pairs are dropped. With exponent 1 the most popular item has ~8% of all ratings, so the
exact all-pairs cost (sum of squared item degrees) is ~1e12 products at 1M users: the run
uses the approximate mode (--max-item-degree raters sampled per item); --max-item-degree 0
runs exact. `--top-n N` (0: skip) also times user-CF lists from those neighbours made with
Spark joins (recommend.cf.user_cf_scores with seen items excluded, then top_n: how the job's
fill scores its CF predictions) and writes them.

`--rankers` (default: neighbors) chooses what is measured per user count: `neighbors` is the
above (the fill's neighbours, then user-CF lists from them by joins); `item_cf`, `user_cf`,
`blend` and `popularity` are the recommend job's rankers as the job calls them
(recommend.rankers.recommend with the config's recsys.ranking settings, block size and
max_pairs: top-n lists padded with popular items, seen items excluded), on the same ratings as
events (u, i, pos = the rating's order within its user, n = the user's ratings). The user-user
cosine of the job's user_cf and blend is exact unless `--set recsys.ranking.max_item_degree=N`:
exact, it costs the sum of squared item degrees, reported per user count as
`exact_user_pair_products` (item-CF's item-item cost, `exact_item_pair_products`, is the sum of
squared user degrees). `--ranker-timeout` cancels a ranker's Spark jobs after that many seconds
and records it as not finished. Each ranker's output is written as Parquet and counted.

Peak memory: the largest summed RSS of this process and all its descendants (driver JVM, Python
workers), sampled every 0.5 s, per measured step.
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

from pyspark.sql import Window  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from _emit import emit  # noqa: E402
from reviewrec.config import load_config  # noqa: E402
from reviewrec.recommend import cf, rankers, similarity  # noqa: E402
from reviewrec.recommend.ids import I, U  # noqa: E402
from reviewrec.recommend.params import RANKERS, RecommendParams  # noqa: E402
from reviewrec.runtime import setup_logging  # noqa: E402
from reviewrec.session import build_session  # noqa: E402


NEIGHBORS = "neighbors"


class PeakRSS:
    """The largest summed RSS of this process and its descendants, and at that moment each
    process's RSS in GiB by kind (`at_peak`: driver JVM, this Python process, Python workers)."""

    def __init__(self) -> None:
        self.peak = 0
        self.at_peak: dict[str, list[float]] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _kind(p: psutil.Process, me: psutil.Process) -> str:
        if p.pid == me.pid:
            return "python_driver"
        try:
            return "jvm" if "java" in p.name() else "python_workers"
        except psutil.Error:
            return "other"

    def _sample(self) -> tuple[int, dict[str, list[float]]]:
        me = psutil.Process()
        total, kinds = 0, {}
        for p in [me, *me.children(recursive=True)]:
            try:
                rss = p.memory_info().rss
            except psutil.Error:
                continue
            total += rss
            kinds.setdefault(self._kind(p, me), []).append(round(rss / 2**30, 2))
        return total, kinds

    def _run(self) -> None:
        while not self._stop.is_set():
            total, kinds = self._sample()
            if total > self.peak:
                self.peak, self.at_peak = total, {k: sorted(v, reverse=True) for k, v in kinds.items()}
            time.sleep(0.5)

    def __enter__(self) -> PeakRSS:
        self.peak = 0
        self.at_peak = {}
        self._stop.clear()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def generate(spark, n_users: int, per_user: int, n_items: int, seed: int):  # noqa: ANN001, ANN201
    """row (user), col (item), value 1, pos (the rating's order within its user), n (the user's ratings)."""
    item = (F.floor(F.exp(F.rand(seed) * F.log(F.lit(float(n_items + 1))))) - 1).cast("long")
    order = Window.partitionBy("row").orderBy("_j")
    return (spark.range(n_users * per_user)
            .select((F.col("id") % n_users).alias("row"), item.alias("col"), F.col("id").alias("_j"))
            .groupBy("row", "col").agg(F.min("_j").alias("_j"))
            .withColumn("value", F.lit(1.0))
            .withColumn("pos", (F.row_number().over(order) - 1).cast("int"))
            .withColumn("n", F.count(F.lit(1)).over(Window.partitionBy("row")).cast("int"))
            .drop("_j"))


def as_events(e):  # noqa: ANN001, ANN201
    """Generated ratings as the rankers' events: u, i, pos, n, value, review_date (2000-01-01 + pos days)."""
    return e.select(F.col("row").alias(U), F.col("col").alias(I), F.col("pos").alias(rankers.POS),
                    F.col("n").alias(rankers.N), F.col("value").alias(cf.VALUE),
                    F.date_add(F.lit("2000-01-01").cast("date"), F.col("pos")).alias("review_date"))


class Deadline:
    """Cancels the Spark jobs started in this thread under `group` once `seconds` have passed."""

    def __init__(self, spark, group: str, seconds: float | None) -> None:  # noqa: ANN001
        self.sc = spark.sparkContext
        self.group = group
        self.seconds = seconds
        self.fired = False
        self._timer: threading.Timer | None = None

    def _fire(self) -> None:
        self.fired = True
        self.sc.cancelJobGroup(self.group)

    def __enter__(self) -> Deadline:
        self.sc.setJobGroup(self.group, self.group, interruptOnCancel=True)
        if self.seconds:
            self._timer = threading.Timer(self.seconds, self._fire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.sc.setLocalProperty("spark.jobGroup.id", None)


def measure_neighbors(spark, e, n: int, args, tmp: str) -> dict:  # noqa: ANN001
    """Neighbours (degree cap + blockwise top-k, written as Parquet), then user-CF top-n from them."""
    params = similarity.SimilarityParams(k=args.k, block_size=args.block_size, max_pairs=args.max_pairs,
                                         max_column_degree=args.max_item_degree or None)
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        similarity.topk_similarity(e, params, n_rows=n, n_cols=args.items).write.parquet(f"{tmp}/nb_{n}")
        wall = time.perf_counter() - t0
    out = {"neighbors_wall_s": round(wall, 1), "neighbors_peak_rss_gib": round(mem.peak / 2**30, 2),
           "neighbor_rows": spark.read.parquet(f"{tmp}/nb_{n}").count()}
    if args.top_n > 0:
        ratings = e.select(F.col("row").alias(cf.U), F.col("col").alias(cf.I), F.col("value").alias(cf.VALUE))
        with PeakRSS() as mem2:
            t0 = time.perf_counter()
            scores = cf.user_cf_scores(spark.read.parquet(f"{tmp}/nb_{n}"), ratings, seen=ratings)
            cf.top_n(scores, args.top_n, cf.SRC_USER_CF).write.parquet(f"{tmp}/rec_neighbors_{n}")
            rec_wall = time.perf_counter() - t0
        recs = spark.read.parquet(f"{tmp}/rec_neighbors_{n}")
        out.update({"top_n": args.top_n, "recommend_wall_s": round(rec_wall, 1),
                    "recommend_peak_rss_gib": round(mem2.peak / 2**30, 2), "recommendation_rows": recs.count(),
                    "users_with_recommendations": recs.select(cf.U).distinct().count()})
    out["wall_s"] = round(out["neighbors_wall_s"] + out.get("recommend_wall_s", 0.0), 1)
    out["peak_rss_gib"] = max(out["neighbors_peak_rss_gib"], out.get("recommend_peak_rss_gib", 0.0))
    return out


def measure_job_ranker(spark, e, ranker: str, n: int, args, p: RecommendParams, tmp: str) -> dict:  # noqa: ANN001
    """The recommend job's `ranker` (rankers.recommend) on the ratings as events: top-n lists written."""
    events = as_events(e).cache()
    events.count()
    path = f"{tmp}/rec_{ranker}_{n}"
    status = "done"
    with PeakRSS() as mem, Deadline(spark, f"bench-recsys-scale-{ranker}-{n}", args.ranker_timeout) as dl:
        t0 = time.perf_counter()
        ranking = None
        try:
            ranking = rankers.recommend(events, ranker, p.ranking, args.top_n or p.top_n, n, args.items,
                                        p.block_size, p.max_pairs)
            ranking.recs.write.parquet(path)
        except Exception as exc:  # noqa: BLE001 - a cancelled ranker is a result, anything else is raised
            if not dl.fired:
                raise
            status = f"cancelled after {args.ranker_timeout:g} s ({type(exc).__name__})"
        finally:
            wall = time.perf_counter() - t0
            if ranking is not None:
                ranking.release()
    events.unpersist()
    out = {"status": status, "wall_s": round(wall, 1), "peak_rss_gib": round(mem.peak / 2**30, 2),
           "rss_at_peak_gib": mem.at_peak,
           "top_n": args.top_n or p.top_n, "block_size": p.block_size, "max_pairs": p.max_pairs,
           "ranking": {k: getattr(p.ranking, k) for k in ("user_k", "user_shrink", "max_item_degree", "item_k",
                                                          "item_shrink",
                                                          "recency_tau", "transition_weight",
                                                          "blend_user_weight")}}
    if status == "done":
        recs = spark.read.parquet(path)
        out.update({"recommendation_rows": recs.count(),
                    "users_with_recommendations": recs.select(U).distinct().count(),
                    "sources": {r["source"]: int(r["count"]) for r in recs.groupBy("source").count().collect()}})
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", default="100000,300000,1000000")
    ap.add_argument("--rankers", default="neighbors",
                    help="comma-separated: neighbors (the fill's neighbours + user-CF lists), the job's item_cf, "
                         "user_cf, blend, popularity")
    ap.add_argument("--ratings-per-user", type=int, default=10)
    ap.add_argument("--items", type=int, default=200000)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--max-item-degree", type=int, default=200)
    ap.add_argument("--block-size", type=int, default=16384)
    ap.add_argument("--top-n", type=int, default=10)
    ap.add_argument("--max-pairs", type=int, default=5_000_000)
    ap.add_argument("--ranker-timeout", type=float, default=None,
                    help="cancel a ranker's Spark jobs after this many seconds (recorded as not finished)")
    ap.add_argument("--driver-memory", default="8g")
    ap.add_argument("--set", action="append", default=[], dest="sets", help="recsys.key=value for the job's rankers")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    names = [x for x in args.rankers.split(",") if x]
    bad = [x for x in names if x not in (NEIGHBORS, *RANKERS)]
    if bad:
        ap.error(f"--rankers: {bad}; choose from {(NEIGHBORS, *RANKERS)}")
    setup_logging()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    cfg = load_config([str(REPO / "conf" / "local.yaml")],
                      ["spark.app_name=bench-recsys-scale", f"spark.conf.spark.driver.memory={args.driver_memory}",
                       *args.sets])
    p = RecommendParams.from_config(cfg["recsys"])
    spark = build_session(cfg)
    results = []
    tmp = tempfile.mkdtemp(prefix="bench-recsys-scale-")
    out: dict = {"rankers": names, "load_start": os.getloadavg()}
    t_all = time.perf_counter()
    try:
        for n in [int(x) for x in args.users.split(",")]:
            data_path = f"{tmp}/ratings_{n}"
            generate(spark, n, args.ratings_per_user, args.items, 11).write.parquet(data_path)
            e = spark.read.parquet(data_path)
            stats = e.agg(F.count(F.lit(1)).alias("nnz"), F.countDistinct("col").alias("items")).first()
            deg = e.groupBy("col").count().agg(F.max("count").alias("top"),
                                               F.sum(F.col("count") * F.col("count")).alias("sq")).first()
            udeg = e.groupBy("row").count().agg(F.sum(F.col("count") * F.col("count")).alias("sq")).first()
            r = {"users": n, "ratings": int(stats["nnz"]), "items_used": int(stats["items"]),
                 "largest_item_degree": int(deg["top"]), "exact_user_pair_products": int(deg["sq"]),
                 "exact_item_pair_products": int(udeg["sq"]), "k": args.k, "max_item_degree": args.max_item_degree,
                 "block_size": args.block_size, "rankers": {}}
            for name in names:
                log_load = os.getloadavg()
                if name == NEIGHBORS:
                    m = measure_neighbors(spark, e, n, args, tmp)
                else:
                    m = measure_job_ranker(spark, e, name, n, args, p, tmp)
                m["load_at_start"] = [round(x, 2) for x in log_load]
                r["rankers"][name] = m
                print(json.dumps({"users": n, "ranker": name, **m}), flush=True)
            print(json.dumps({k: v for k, v in r.items() if k != "rankers"}), flush=True)
            results.append(r)
    finally:
        spark.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    out.update({"results": results, "wall_s": round(time.perf_counter() - t_all, 1), "load_end": os.getloadavg()})
    if len(results) > 1:
        out["growth"] = [{"from": a["users"], "to": b["users"], "users_x": round(b["users"] / a["users"], 1),
                          **{f"{name}_time_x": round(b["rankers"][name]["wall_s"] / a["rankers"][name]["wall_s"], 2)
                             for name in names
                             if a["rankers"][name].get("status", "done") == "done"
                             and b["rankers"][name].get("status", "done") == "done"}}
                         for a, b in zip(results, results[1:], strict=False)]
    if len(names) > 1:
        base = NEIGHBORS if NEIGHBORS in names else names[0]
        def ratio(r: dict, name: str) -> float:
            return round(r["rankers"][name]["wall_s"] / r["rankers"][base]["wall_s"], 2)

        out["ratio_to_" + base] = [
            {"users": r["users"], **{f"{name}_time_x": ratio(r, name) for name in names
                                     if name != base and r["rankers"][name].get("status", "done") == "done"
                                     and r["rankers"][base].get("status", "done") == "done"}}
            for r in results]
    emit(out, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
