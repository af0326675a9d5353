"""Training throughput with 1 and 2 Horovod workers (one intra-op thread each), same data, one run.

    SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON=.venv/bin/python \\
    .venv/bin/python benchmarks/bench_train.py --root /tmp/t4/ds [--steps 60] [--epochs 2] [--procs 1 2]

Needs <root>/features and <root>/features_meta (the features job, or model/standin.py). For each
worker count it trains the configured network (conf/base.yaml `model:`) for `--epochs` epochs of
`--steps` steps per worker, with no checkpoints and no validation, and reports samples/s of the
epochs after the first (the first includes graph tracing). Global samples per step = batch * workers.
Prints one JSON document; the full time per epoch on the whole train split is estimated from the
measured rate (rows / samples_per_s) and stated as an estimate.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

from reviewrec.config import load_config
from reviewrec.model import contract as C
from reviewrec.model.train import run_horovod, spec_from_config
from reviewrec.runtime import setup_logging
from reviewrec.session import build_session

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--steps", type=int, default=60, help="steps per worker per epoch")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    a = ap.parse_args(argv)
    setup_logging("WARNING")
    cfg = load_config([os.path.join(REPO, "conf", "local.yaml")], [f"run.root={a.root}", *a.overrides])
    spark = build_session(cfg, "bench-train")
    meta = C.load_meta(os.path.join(a.root, C.FEATURES_META))
    n_train = spark.read.parquet(C.split_path(os.path.join(a.root, C.FEATURES), C.TRAIN)).count()
    out: dict = {"root": a.root, "train_rows": n_train, "config_hash": cfg.hash(), "steps_per_worker": a.steps,
                 "epochs": a.epochs, "batch_size": cfg["model"]["batch_size"], "net": None,
                 "machine": f"{os.cpu_count()} cores, {platform.machine()}", "runs": {}}
    for n in a.procs:
        spec = spec_from_config(cfg, meta, epochs=a.epochs, max_steps_per_epoch=a.steps, checkpoint_dir=None,
                                validate=False, return_model=False, intra_op_threads=1, inter_op_threads=1)
        out["net"] = spec.net.to_dict()
        t0 = time.perf_counter()
        res = run_horovod(spark, spec, n, verbose=0, cycle_time_ms=cfg["model"]["horovod_cycle_time_ms"])
        wall = time.perf_counter() - t0
        hist = res[0]["history"]
        timed = hist[1:] or hist
        samples = sum(h["samples"] for h in timed)
        secs = sum(h["seconds"] for h in timed)
        out["runs"][str(n)] = {"samples_per_s": round(samples / secs, 2), "epoch_seconds": [h["seconds"] for h in hist],
                               "samples_per_epoch": hist[0]["samples"], "wall_s_incl_startup": round(wall, 1),
                               "read_seconds_rank0": res[0]["read_seconds"]}
        print(json.dumps({n: out["runs"][str(n)]}), file=sys.stderr, flush=True)
    if "1" in out["runs"] and "2" in out["runs"]:
        out["speedup_2_vs_1"] = round(out["runs"]["2"]["samples_per_s"] / out["runs"]["1"]["samples_per_s"], 3)
    for n, r in out["runs"].items():
        r["est_full_epoch_s"] = round(n_train / r["samples_per_s"], 1)
    print(json.dumps(out, indent=2))
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
