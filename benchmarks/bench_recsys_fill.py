"""Rating error of the filled user-item matrix on a held-out split: model fill vs the bias
baseline, bias + ALS, CF fill, ALS, the item Bayesian average and the global mean (the recommend
job's `recsys.evaluate` rating step alone, without the full job), and the review-text fill
(recommend.review_fill: the model given the user's and the item's other reviews as text).

    .venv/bin/python benchmarks/bench_recsys_fill.py --root RUN_ROOT [--split time|random] [--seed N]
        [--set recsys.key=value ...] [--out r.json]

--split time (the default, the job's own evaluation): the latest recsys.evaluate.test_fraction of
the reviews by review_date are the test set, the same fraction before them val. --split random:
train / val / test = 80 / 10 / 10% of the reviews by a hash of review_id with --seed
(recommend.job.random_split). Either way the fill is chosen on val, the methods are fitted on
train + val and scored on the test pairs whose user and item both occur in train + val.

RUN_ROOT holds `reviews` (ingest job) and, for the model fill, `model` (train job) with the
features' indexers in `features_meta` (features job); the review-text fill (output key
`review_text`, left out with --no-review-text) also reads `tokens` (preprocess job): its document
construction is chosen on val with documents from the train reviews, and it is scored on the same
warm test pairs with documents from train + val, against the global mean, the bias baseline and
the model on the empty text. recsys.fill.use_model defaults to
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
from reviewrec import schema as S  # noqa: E402
from _emit import emit  # noqa: E402
from reviewrec.config import load_config  # noqa: E402
from reviewrec.features import transforms as X  # noqa: E402
from reviewrec.features.job import FeaturesParams  # noqa: E402
from reviewrec.recommend import job, review_fill  # noqa: E402
from reviewrec.recommend.ids import id_index  # noqa: E402
from reviewrec.recommend.params import RecommendParams  # noqa: E402
from reviewrec.recommend.scoring import resolve_scorer  # noqa: E402
from reviewrec.runtime import peak_rss_mb, setup_logging  # noqa: E402
from reviewrec.session import build_session  # noqa: E402

RANDOM_SEED = 20261207
RANDOM_FRACTIONS = (0.8, 0.1, 0.1)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--out", default=None)
    ap.add_argument("--split", choices=("time", "random"), default="time")
    ap.add_argument("--seed", type=int, default=RANDOM_SEED, help="the random split's seed")
    ap.add_argument("--no-review-text", action="store_true", help="leave out the review-text fill (needs tokens)")
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
    if args.split == "random":
        split = job.random_split(reviews, args.seed, *RANDOM_FRACTIONS[:2]).cache()
        out = {"split": {"method": "random", "seed": args.seed, "fractions": RANDOM_FRACTIONS,
                         "reviews": {r[0]: int(r[1]) for r in split.groupBy(S.SPLIT).count().collect()}}}
    else:
        split = None
        out = {"split": {"method": "time", "test_fraction": p.evaluate.test_fraction}}
    if not args.no_review_text:  # first: it needs no CF or ALS, and fails early if the model cannot score
        t1 = time.perf_counter()
        f = p.evaluate.test_fraction
        rsplit = split if split is not None else X.time_split(reviews, 1.0 - 2 * f, f)[0]
        tokens = io.read_parquet(spark, io.dataset_path(args.root, "tokens"), "preprocess")
        out["review_text"] = review_fill.evaluate(spark, rsplit, tokens, io.dataset_path(args.root, "model"), index)
        out["review_text"]["wall_s"] = round(time.perf_counter() - t1, 1)
    out.update(job.time_split_eval(spark, reviews, p, scorer, index, split=split))
    out["ids"] = index.source
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["driver_peak_rss_mb"] = round(peak_rss_mb())
    out["settings"] = {k: v for k, v in cfg.flat().items() if k.startswith("recsys.")}
    spark.stop()
    emit(out, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
