"""Ingest throughput vs Spark's bare CSV reader on the same generated pds TSV.gz.

    .venv/bin/python benchmarks/bench_ingest.py --rows 1000000 [--files 2] [--rounds 2]

Measures, in one run on the same files and session: (a) spark.read.csv(sep=tab, header).count()
-- Spark's floor for touching every line -- and (b) the full ingest job (parse, validate,
quarantine, dedupe, category filter, Parquet writes, reconciliation). Reports rows/s/core for
both and their ratio, plus driver peak RSS. Results go to benchmarks/out/ingest.json; paste
the printed table into benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))

from reviewrec.config import load_config  # noqa: E402
from reviewrec.ingest import job as ingest_job  # noqa: E402
from reviewrec.runtime import peak_rss_mb, setup_logging  # noqa: E402
from reviewrec.session import build_session  # noqa: E402
from reviewrec.generate import generate_tsv  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "ingest"))
    args = ap.parse_args()
    setup_logging("WARNING")
    root = Path(args.out)
    raw = root / "raw"
    stamp = root / "raw.json"
    params = {"rows": args.rows, "files": args.files, "seed": 42}
    if not (stamp.exists() and json.loads(stamp.read_text()).get("params") == params):
        shutil.rmtree(root, ignore_errors=True)
        t = time.perf_counter()
        stats = generate_tsv(str(raw), args.rows, seed=42, customers=max(1000, args.rows // 5),
                             products=max(200, args.rows // 50), files=args.files)
        root.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps({"params": params, "stats": stats.as_dict(),
                                     "generate_s": round(time.perf_counter() - t, 1)}))
    gen = json.loads(stamp.read_text())
    cfg = load_config([str(REPO / "conf" / "local.yaml")], [f"run.root={root}", "input.categories=all"])
    spark = build_session(cfg, "bench-ingest")
    cores = spark.sparkContext.defaultParallelism if cfg["spark"]["master"] is None else int(
        cfg["spark"]["master"].removeprefix("local[").removesuffix("]") or os.cpu_count())
    # Warm-up: JVM, code paths, file cache.
    spark.read.csv(str(raw), sep="\t", header=True).count()
    rounds = []
    summary: dict = {}
    # Alternate the two measurements so that load from other processes hits both alike.
    for _ in range(args.rounds):
        t = time.perf_counter()
        n_csv = spark.read.csv(str(raw), sep="\t", header=True).count()
        t_csv = time.perf_counter() - t
        t = time.perf_counter()
        summary = ingest_job.run(spark, cfg)
        t_ingest = time.perf_counter() - t
        rounds.append({"csv_s": round(t_csv, 2), "ingest_s": round(t_ingest, 2),
                       "ratio": round((summary["input"]["records"] / t_ingest) / (n_csv / t_csv), 4),
                       "ingest_stage_s": summary["timings_s"]})
    spark.stop()
    records = summary["input"]["records"]
    best_csv = min(r["csv_s"] for r in rounds)
    best_ingest = min(r["ingest_s"] for r in rounds)
    ratios = sorted(r["ratio"] for r in rounds)
    res = {
        "rows_generated": gen["stats"]["lines_written"], "files": args.files, "cores": cores,
        "csv_count_rows": n_csv, "ingest_records": records, "rounds": rounds,
        "csv_rows_per_s_per_core_best": round(n_csv / best_csv / cores),
        "ingest_rows_per_s_per_core_best": round(records / best_ingest / cores),
        "ratio_median": ratios[len(ratios) // 2],
        "accepted": summary["accepted"], "quarantined": summary["quarantined"],
        "duplicates": summary["duplicates"], "driver_peak_rss_mb": round(peak_rss_mb()),
        "reconciled": summary["reconciled"], "load_avg_1m_at_end": round(os.getloadavg()[0], 1),
    }
    (root / "result.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))
    print(f"\n| measure | spark.read.csv().count() | ingest job |\n|---|---|---|\n"
          f"| rows | {n_csv:,} | {records:,} |\n"
          + "".join(f"| round {i + 1} wall s | {r['csv_s']} | {r['ingest_s']} (ratio {r['ratio']}) |\n"
                    for i, r in enumerate(rounds))
          + f"| best rows/s/core | {res['csv_rows_per_s_per_core_best']:,} "
          f"| {res['ingest_rows_per_s_per_core_best']:,} |\n"
          f"| median per-round throughput ratio ingest/csv | | {res['ratio_median']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
