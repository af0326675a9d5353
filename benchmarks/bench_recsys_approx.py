"""Approximate mode: recall of the exact top-k when raters per item are capped / sims thresholded.

    .venv/bin/python benchmarks/bench_recsys_approx.py --users 22363 --k 50 --caps 20,50,100 [--threshold 0.1]

Exact top-k from the same kernel in one process (scipy); approximate top-k from the Spark
blockwise job with max_column_degree = cap. Recall = share of exact (user, neighbour) pairs
the approximate run also returns; the time of each Spark run is given next to the exact one.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_recsys_blocks import DATA, load_entries, scipy_topk  # noqa: E402

from _emit import emit  # noqa: E402
from reviewrec.config import load_config  # noqa: E402
from reviewrec.recommend import similarity  # noqa: E402
from reviewrec.runtime import setup_logging  # noqa: E402
from reviewrec.session import build_session  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=22363)
    ap.add_argument("--data", default=str(DATA), help="sequence file (5-core format)")
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--block-size", type=int, default=4096)
    ap.add_argument("--max-pairs", type=int, default=5_000_000)
    ap.add_argument("--caps", default="20,50,100")
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    setup_logging()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    rows, cols, n_cols = load_entries(args.data, args.users)
    r, n, _ = scipy_topk(rows, cols, n_cols, args.k)
    exact = set(zip(r.tolist(), n.tolist(), strict=False))
    cfg = load_config([str(REPO / "conf" / "local.yaml")], ["spark.app_name=bench-recsys-approx"])
    spark = build_session(cfg)
    import pandas as pd

    e = spark.createDataFrame(pd.DataFrame({"row": rows, "col": cols, "value": np.ones(rows.size)}),
                              "row long, col long, value double").cache()
    out = {"data": f"{args.data}, first {args.users} users", "k": args.k, "exact_pairs": len(exact), "runs": []}
    for cap in [int(c) for c in args.caps.split(",")]:
        t0 = time.perf_counter()
        approx = similarity.topk_similarity(e, similarity.SimilarityParams(k=args.k, block_size=args.block_size,
                                                                           max_pairs=args.max_pairs,
                                                                  max_column_degree=cap, threshold=args.threshold),
                                   n_rows=int(rows.max()) + 1, n_cols=n_cols).toPandas()
        secs = time.perf_counter() - t0
        got = set(zip(approx["row"].tolist(), approx["neighbor"].tolist(), strict=False))
        run = {"max_item_degree": cap, "threshold": args.threshold, "seconds": round(secs, 1),
               "recall_of_exact_topk": round(len(got & exact) / len(exact), 4), "pairs": len(got)}
        print(json.dumps(run), flush=True)
        out["runs"].append(run)
    spark.stop()
    emit(out, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
