"""Daily increment cost vs a full rerun: day N+1's run on a root that holds days 1..N, against one
run over all N+1 days on a fresh root, per stage, in one process and one Spark application.

    nice -n 10 .venv/bin/python benchmarks/bench_daily.py [--rows 62000] [--days 31] [--out r.json]

The generator writes `--days` days (`--rows` new reviews in all, with its default re-sends:
cross-day duplicates and late corrections) once, as pds TSV.gz day directories; both roots read
them (input.format=tsv).

* Root A (the daily run): days 1..N-1 are brought in one at a time, ingest and preprocess with
  `input.day` (the warm-up: its total is reported, not its stages); then day N's run is timed
  per stage: ingest and preprocess with `input.day=N`, features, train, recommend over all data.
* Root B (a full rerun): ingest and preprocess with `input.day` unset over every day directory,
  then features, train, recommend.

The two roots run each stage one after the other (A's ingest, B's ingest, A's preprocess, ...),
which of them goes first alternating from stage to stage. The model is small (`model.epochs=1`,
the baseline's settings of tests/reference_runs.py SMALL; the train job trains on every run: no
retrain policy) and recommend's own evaluation is off. Reported per stage: wall seconds, the
ratio day N / full run, the totals with and without train, and train's share of each side's run
(where retraining dominates). Wall time only: the CPU seconds of this process tree miss the
processes that exit under parents outside it (Python workers, Horovod ranks) and came out
negative for some stages. RESULTS.md "Daily increment vs a full rerun".
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))
sys.path.insert(0, str(REPO / "benchmarks"))

from _emit import emit  # noqa: E402

from reviewrec import generate as G  # noqa: E402
from reviewrec.config import load_config  # noqa: E402
from reviewrec.features import job as features  # noqa: E402
from reviewrec.ingest import job as ingest  # noqa: E402
from reviewrec.model import train  # noqa: E402
from reviewrec.preprocess import job as preprocess  # noqa: E402
from reviewrec.recommend import job as recommend  # noqa: E402
from reviewrec.runtime import peak_rss_mb, setup_logging  # noqa: E402
from reviewrec.session import build_session  # noqa: E402

STAGES = (("ingest", ingest.run), ("preprocess", preprocess.run), ("features", features.run),
          ("train", train.run), ("recommend", recommend.run))
DAILY_INPUT = ("ingest", "preprocess")
# The small model (tests/reference_runs.py SMALL, one epoch) and no evaluation inside recommend.
SMALL = ["model.epochs=1", "model.baseline_reg_params=[0.01]", "model.baseline_max_iter=20",
         "model.bootstrap_reps=0", "recsys.evaluate.enabled=false", "ingest.log_examples=0"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=62_000, help="new reviews over all days")
    ap.add_argument("--days", type=int, default=31, help="days generated; the last is the timed day")
    ap.add_argument("--customers", type=int, default=None, help="default rows / 5")
    ap.add_argument("--products", type=int, default=None, help="default rows / 25")
    ap.add_argument("--start-day", default="2015-09-01")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--scratch", default=None, help="directory for the input and the two roots (default: temporary)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="further config key=value for every job")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.days < 2:
        ap.error("--days must be at least 2")
    setup_logging("WARNING")
    days = [(date.fromisoformat(a.start_day) + timedelta(days=i)).isoformat() for i in range(a.days)]
    synthetic = [f"synthetic.rows={a.rows}", f"synthetic.days={a.days}", f"synthetic.start_day={a.start_day}",
                 f"synthetic.seed={a.seed}", f"synthetic.customers={a.customers or max(a.rows // 5, 10)}",
                 f"synthetic.products={a.products or max(a.rows // 25, 10)}"]
    scratch = Path(a.scratch or tempfile.mkdtemp(prefix="bench-daily-"))
    scratch.mkdir(parents=True, exist_ok=True)
    raw = scratch / "gen" / "raw"
    roots = {"day": scratch / "daily", "full": scratch / "full"}

    def cfg(root: Path | None, day: str | None = None):
        sets = [*synthetic, *SMALL, *a.sets]
        if root is not None:
            sets += [f"run.root={root}", "input.format=tsv", f"input.path={raw}"]
        else:
            sets += [f"run.root={scratch / 'gen'}"]
        if day:
            sets.append(f"input.day={day}")
        return load_config([str(REPO / "conf" / "local.yaml")], sets)

    out: dict = {"rows": a.rows, "days": a.days, "timed_day": days[-1], "scratch": "temporary" if not a.scratch
                 else str(scratch), "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    t0 = time.perf_counter()
    gen = G.run(None, cfg(None))
    out["generate_s"] = round(time.perf_counter() - t0, 1)
    out["generated"] = {k: getattr(gen, k) for k in ("good_rows", "duplicate_rows", "cross_day_duplicates",
                                                       "corrections") if hasattr(gen, k)}
    spark = build_session(cfg(roots["full"]), "bench-daily")
    try:
        # Warm-up: days 1..N-1 on the daily root, ingest + preprocess each.
        t0 = time.perf_counter()
        for d in days[:-1]:
            c = cfg(roots["day"], d)
            ingest.run(spark, c)
            preprocess.run(spark, c)
            print(f"warm-up day {d}: {time.perf_counter() - t0:.0f} s so far", flush=True)
        out["warmup"] = {"days": len(days) - 1, "wall_s": round(time.perf_counter() - t0, 1)}
        print(f"warm-up: {out['warmup']}", flush=True)

        wall: dict[str, dict[str, float]] = {"day": {}, "full": {}}
        order: dict[str, list[str]] = {}
        summaries: dict[str, dict] = {"day": {}, "full": {}}
        for i, (name, fn) in enumerate(STAGES):
            order[name] = ["day", "full"] if i % 2 == 0 else ["full", "day"]
            for side in order[name]:
                day = days[-1] if side == "day" and name in DAILY_INPUT else None
                c = cfg(roots[side], day)
                t = time.perf_counter()
                res = fn(spark, c)
                wall[side][name] = round(time.perf_counter() - t, 2)
                if name in ("ingest", "preprocess") and isinstance(res, dict):
                    keep = ("accepted", "corrections", "duplicates", "quarantined", "total", "reviews", "mode",
                            "processed", "processed_new", "processed_text_changed")
                    summaries[side][name] = {k: (res[k]["reviews"] if k == "total" else res[k])
                                             for k in keep if k in res}
                print(f"{name} {side}: {wall[side][name]} s", flush=True)
    finally:
        spark.stop()
        if not a.keep:
            shutil.rmtree(scratch, ignore_errors=True)

    def tot(side: str, src: dict, without: tuple[str, ...] = ()) -> float:
        return round(sum(v for k, v in src[side].items() if k not in without), 2)

    def ratio(x: float, y: float) -> float | None:
        return round(x / y, 3) if y else None

    table = {}
    for name, _ in STAGES:
        table[name] = {"day_s": wall["day"][name], "full_s": wall["full"][name],
                       "ratio": ratio(wall["day"][name], wall["full"][name])}
    for label, without in (("total", ()), ("total_without_train", ("train",))):
        d, f = tot("day", wall, without), tot("full", wall, without)
        table[label] = {"day_s": d, "full_s": f, "ratio": ratio(d, f)}
    out["stages"] = table
    out["order"] = order
    out["train_share"] = {"day": ratio(wall["day"]["train"], table["total"]["day_s"]),
                          "full": ratio(wall["full"]["train"], table["total"]["full_s"])}
    out["job_summaries"] = summaries
    out["python_peak_rss_mib"] = round(peak_rss_mb())
    out["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    emit(out, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
