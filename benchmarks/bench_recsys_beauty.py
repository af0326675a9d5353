"""Amazon Beauty 5-core, leave-last-out, full ranking: popularity, user-CF, item-CF, blend, ALS.

    .venv/bin/python benchmarks/bench_recsys_beauty.py [--data SEQUENCES.txt] [--phase valid|test|both]
        [--methods popularity,user_cf,...] [--set field=value ...] [--out results.json]

--data: any sequence file in the 5-core format (`user item item ...` per line, items in time
order; default: the shared Amazon Beauty 5-core). Spark local[2] (conf/local.yaml). --set overrides SeqSettings fields (user_k, item_shrink,
recency_tau, ...); settings were tuned on the validation phase and the test phase is run
once with them.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))

from _emit import emit  # noqa: E402
from reviewrec.config import load_config  # noqa: E402
import sequence_eval as seq  # noqa: E402
from reviewrec.runtime import peak_rss_mb, setup_logging  # noqa: E402
from reviewrec.session import build_session  # noqa: E402

DATA = REPO / ".." / "shared" / "data" / "amazon_beauty_5core" / "Beauty.txt"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DATA), help="sequence file (5-core format)")
    ap.add_argument("--phase", default="both", choices=("valid", "test", "both"))
    ap.add_argument("--methods", default=",".join(seq.METHODS))
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    setup_logging()
    fields = {f.name: f.type for f in dataclasses.fields(seq.SeqSettings)}
    over = {}
    for item in args.sets:
        k, v = item.split("=", 1)
        if k not in fields:
            raise SystemExit(f"unknown setting {k!r}; known: {sorted(fields)}")
        over[k] = float(v) if fields[k] == "float" else int(v)
    settings = dataclasses.replace(seq.SeqSettings(), **over)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    cfg = load_config([str(REPO / "conf" / "local.yaml")], ["spark.app_name=bench-recsys-beauty"])
    spark = build_session(cfg)
    t0 = time.perf_counter()
    data = Path(args.data).resolve()
    events = seq.read_sequences(spark, str(data)).cache()
    phases = ("valid", "test") if args.phase == "both" else (args.phase,)
    out = {"data": str(data), "results": []}
    for ph in phases:
        out["results"].append(seq.evaluate(spark, events, ph, settings, tuple(args.methods.split(","))))
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["driver_peak_rss_mb"] = round(peak_rss_mb())
    spark.stop()
    emit(out, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
