"""The recommend job's ranking evaluation on a run root with ingested reviews (e.g. Digital_Software).

    .venv/bin/python benchmarks/bench_recsys_ranking.py --root RUN_ROOT [--phases valid,test]
        [--also user_cf,blend] [--no-job] [--set recsys.key=value ...] [--out results.json]

Runs the recommend job on <root>/reviews (its ranker `recsys.ranker`, popularity beside it and,
on explicit data, the ranker re-ranked by the fill's predicted star: recsys.rerank's grid, the
setting chosen on the valid phase), then evaluates the `--also` rankers with the job's evaluation
code on the same events, with the fill the job chose on validation. `--no-job` skips the job and
chooses the fill itself (job.choose_fill on the time split). Prints the JSON and a Markdown table
(HR@10 / NDCG@10 / Recall@20 / liked HR@10 per phase). Spark local[2] (conf/local.yaml); the job
writes its outputs under the run root as it always does.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))

from _emit import emit  # noqa: E402
from reviewrec import io  # noqa: E402
from reviewrec.config import load_config  # noqa: E402
from reviewrec.features import transforms as X  # noqa: E402
from reviewrec.features.job import FeaturesParams  # noqa: E402
from reviewrec.recommend import evaluation, job, rankers  # noqa: E402
from reviewrec.recommend.ids import id_index  # noqa: E402
from reviewrec.recommend.params import RecommendParams  # noqa: E402
from reviewrec.recommend.scoring import CFScorer  # noqa: E402
from reviewrec.runtime import peak_rss_mb, setup_logging  # noqa: E402
from reviewrec.session import build_session  # noqa: E402

COLS = ("HR@10", "NDCG@10", "Recall@20", "liked_HR@10")


def table(ranking: dict[str, Any]) -> str:
    """Markdown: one row per method and phase."""
    lines = ["| method | phase | " + " | ".join(COLS) + " | users (liked) | setting |",
             "|---|---|" + "---|" * (len(COLS) + 2)]
    for phase, res in ranking["phases"].items():
        for m, v in {**res["methods"], **res.get("reranked", {})}.items():
            cells = " | ".join(f"{v[c]:.4f}" for c in COLS)
            users = f"{v['users']:,} ({v['liked_users']:,})"
            lines.append(f"| {m} | {phase} | {cells} | {users} | {v.get('setting', '')} |")
    return "\n".join(lines)


def merge(into: dict[str, Any], more: dict[str, Any]) -> None:
    """Add `more`'s methods (another evaluate_rankers result on the same split) to `into`."""
    for phase, res in more["phases"].items():
        dst = into["phases"].setdefault(phase, res)
        if dst is res:
            continue
        for key in ("methods", "seconds", "rerank", "reranked"):
            dst.setdefault(key, {}).update({m: v for m, v in res.get(key, {}).items() if m not in dst[key]})
    into.setdefault("rerank", {}).update(more.get("rerank", {}))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True, help="run root with reviews (the ingest job's output)")
    ap.add_argument("--phases", default="valid,test")
    ap.add_argument("--also", default="", help="further rankers to evaluate beside the job's")
    ap.add_argument("--no-job", action="store_true", help="only the evaluation (the fill chosen here)")
    ap.add_argument("--set", action="append", default=[], dest="sets", help="recsys.key=value")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    setup_logging()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    phases = [x for x in args.phases.split(",") if x]
    sets = ["spark.app_name=bench-recsys-ranking", f"run.root={args.root}",
            f"recsys.evaluate.phases=[{','.join(phases)}]", *args.sets]
    cfg = load_config([str(REPO / "conf" / "local.yaml")], sets)
    spark = build_session(cfg)
    p = RecommendParams.from_config(cfg["recsys"])
    out: dict[str, Any] = {"root": args.root, "sets": args.sets, "phases": phases, "load_start": os.getloadavg()}
    try:
        t0 = time.perf_counter()
        choice = None
        if not args.no_job:
            summary = job.run(spark, cfg)
            out["job"] = {k: summary.get(k) for k in ("ranker", "feedback", "fill", "rerank", "ranking", "counts",
                                                     "timings")}
            out["job_wall_s"] = round(time.perf_counter() - t0, 1)
            choice = summary.get("evaluation", {}).get("validation")
            ranking = summary["ranking"]
        reviews = io.read_parquet(spark, io.dataset_path(args.root, "reviews"), "bench_recsys_ranking")
        reviews = reviews.select(*job.REQUIRED).cache()
        index = id_index(spark, args.root, reviews, FeaturesParams.from_config(cfg))
        events = rankers.interaction_events(reviews, index).cache()
        if choice is None:
            implicit, _ = job.feedback_kind(reviews, p)
            if not implicit:
                f = p.evaluate.test_fraction
                split, _ = X.time_split(reviews, 1.0 - 2 * f, f)
                choice = job.choose_fill(spark, split, p, CFScorer(), index)
            out["fill"] = choice
        also = [x for x in args.also.split(",") if x]
        if args.no_job:
            ranking = evaluation.evaluate_rankers(events, p, index.n_users, index.n_items, phases=phases, fill=choice)
        if also:
            t1 = time.perf_counter()
            more = evaluation.evaluate_rankers(events, p, index.n_users, index.n_items, methods=also, phases=phases,
                                               fill=choice)
            merge(ranking, more)
            out["also_wall_s"] = round(time.perf_counter() - t1, 1)
        out["ranking"] = ranking
        out["fill_choice"] = {k: v for k, v in (choice or {}).items() if k in ("chosen", "damping_user",
                                                                                "damping_item")}
        out["driver_peak_rss_mb"] = round(peak_rss_mb())
        out["wall_s"] = round(time.perf_counter() - t0, 1)
        out["load_end"] = os.getloadavg()
        events.unpersist()
    finally:
        spark.stop()
    emit(out, args.out)
    print(table(out["ranking"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
