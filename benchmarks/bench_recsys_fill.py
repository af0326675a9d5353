"""Rating error of the filled user-item matrix on a time split: model fill vs CF fill vs ALS vs
the global mean (the recommend job's `recsys.evaluate` step alone, without the full job).

    .venv/bin/python benchmarks/bench_recsys_fill.py --root RUN_ROOT [--set recsys.key=value ...] [--out r.json]

RUN_ROOT holds `reviews` (ingest job) and, for the model fill, `model` (train job) with the
features' indexers in `features_meta` (features job). recsys.fill.use_model defaults to
`require` here, so a missing model is an error instead of a silent CF run.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))

from reviewrec import io  # noqa: E402
from _emit import emit  # noqa: E402
from reviewrec.config import load_config  # noqa: E402
from reviewrec.features.job import FeaturesParams  # noqa: E402
from reviewrec.recommend import job  # noqa: E402
from reviewrec.recommend.ids import id_index  # noqa: E402
from reviewrec.recommend.params import RecommendParams  # noqa: E402
from reviewrec.recommend.scoring import resolve_scorer  # noqa: E402
from reviewrec.runtime import peak_rss_mb, setup_logging  # noqa: E402
from reviewrec.session import build_session  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    setup_logging()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    cfg = load_config([str(REPO / "conf" / "local.yaml")],
                      ["spark.app_name=bench-recsys-fill", f"run.root={args.root}", "recsys.fill.use_model=require",
                       *args.sets])
    spark = build_session(cfg)
    t0 = time.perf_counter()
    reviews = io.read_parquet(spark, io.dataset_path(args.root, "reviews"), "ingest").select(*job.REQUIRED).cache()
    p = RecommendParams.from_config(cfg["recsys"])
    scorer = resolve_scorer(spark, io.dataset_path(args.root, "model"), p.fill.use_model)
    index = id_index(spark, args.root, reviews, FeaturesParams.from_config(cfg))
    out = job.time_split_eval(spark, reviews, p, scorer, index)
    out["ids"] = index.source
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["driver_peak_rss_mb"] = round(peak_rss_mb())
    out["settings"] = {k: v for k, v in cfg.flat().items() if k.startswith("recsys.")}
    spark.stop()
    emit(out, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
