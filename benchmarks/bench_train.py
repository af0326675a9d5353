"""Training throughput with 1 and 2 Horovod workers (one intra-op thread each), same data, one run.

    SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON=.venv/bin/python \\
    .venv/bin/python benchmarks/bench_train.py --root RUN_ROOT [--steps 60] [--epochs 2] [--procs 1 2] \
        [--cycle-time-ms 10] [--set model.group_grads=true]

Needs <root>/features and <root>/features_meta (the features job). For each
worker count it trains the configured network (conf/base.yaml `model:`) for `--epochs` epochs of
`--steps` steps per worker, with no checkpoints and no validation, and reports samples/s of the
epochs after the first (the first includes graph tracing). Global samples per step = batch * workers.
Prints one JSON document; the full time per epoch on the whole train split is estimated from the
measured rate (rows / samples_per_s) and stated as an estimate.

--independent N [N ...] also runs the same per-worker work as N separate processes at once
(each `train_rank` as its own Horovod job of size 1: no Spark, no gradient exchange) and reports
their summed samples/s. That is the machine's ceiling for N single-threaded workers of this
network; the Horovod ratio is read against it (Horovod ratio / independent ratio = the share
of the attainable speedup that the exchange keeps).

--launcher gloo starts the same ranks (the same `train_rank`, same spec, Gloo) with Horovod's own
launcher (horovod.runner.run on localhost) instead of horovod.spark.run, and counts the train rows
from the Parquet footers: no JVM and no Spark. It is for a machine that has Python, TensorFlow and
Horovod but no Java or Spark jars. What is timed, the epochs inside the ranks, is the same code
either way; only the process launch differs.

--cycle-time-ms sets HOROVOD_CYCLE_TIME for the ranks (how often each rank's background thread
negotiates with the others; Horovod's default is 1 ms).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from dataclasses import replace

from reviewrec import schema as S
from reviewrec.config import load_config
from reviewrec.features import meta as M
from reviewrec.model.rank import train_rank
from reviewrec.model.spec import spec_from_config
from reviewrec.model.train import run_horovod
from reviewrec.runtime import setup_logging

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _solo(spec, q) -> None:
    """One independent worker: train_rank as a Horovod job of size 1 in a fresh process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    q.put(train_rank(spec)["history"])


def independent(spec, n: int) -> dict:
    """n concurrent single-process trainings of `spec`; summed samples/s over epochs 2+."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_solo, args=(replace(spec, seed=spec.seed + i), q)) for i in range(n)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    hists = [q.get() for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode:
            raise RuntimeError(f"independent worker exited {p.exitcode}")
    wall = time.perf_counter() - t0
    rates = []
    for h in hists:
        timed = h[1:] or h
        rates.append(sum(e["samples"] for e in timed) / sum(e["seconds"] for e in timed))
    return {"samples_per_s": round(sum(rates), 2), "per_process": [round(r, 2) for r in rates],
            "epoch_seconds": [[e["seconds"] for e in h] for h in hists], "wall_s_incl_startup": round(wall, 1)}


def count_rows(features_dir: str, split: str) -> int:
    """Rows of one split of the features from its Parquet footers (no Spark)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in M.split_files(features_dir, split))


def _fixed_horovod_args():
    """horovod.runner._HorovodArgs with Horovod 0.28.1's two tuple defaults undone.

    Its __init__ sets `cycle_time_ms = None,` and `cache_capacity = None,` (trailing commas), so
    horovod.runner.run exports HOROVOD_CYCLE_TIME and HOROVOD_CACHE_CAPACITY = "(None,)" to the
    ranks, over whatever the environment held; the ranks parse both as 0, i.e. a background
    thread that never sleeps and no response cache (horovodrun's command line is not affected)."""
    import horovod.runner

    class Args(horovod.runner._HorovodArgs):
        def __init__(self) -> None:
            super().__init__()
            self.cycle_time_ms = None  # None: not exported, the ranks read the environment's
            self.cache_capacity = None

    return Args


def run_gloo(spec, n: int) -> list[dict]:
    """train_rank on n local ranks through Horovod's own launcher (no Spark); results in rank order."""
    from unittest import mock

    import horovod.runner

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # horovod.runner.run passes this environment on
    with mock.patch.object(horovod.runner, "_HorovodArgs", _fixed_horovod_args()):
        return horovod.runner.run(train_rank, args=(spec,), np=n, use_gloo=True, network_interfaces=["lo"],
                                  start_timeout=600, verbose=0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--steps", type=int, default=60, help="steps per worker per epoch")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--independent", type=int, nargs="*", default=[],
                    help="also run this many independent size-1 processes at once (the ceiling)")
    ap.add_argument("--launcher", choices=["spark", "gloo"], default="spark",
                    help="spark: horovod.spark.run in local Spark (as the train job); gloo: horovod.runner.run, no JVM")
    ap.add_argument("--cycle-time-ms", type=float, help="HOROVOD_CYCLE_TIME for the ranks (default: Horovod's)")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    a = ap.parse_args(argv)
    setup_logging("WARNING")
    if a.cycle_time_ms is not None:  # the ranks start with this process's environment
        os.environ["HOROVOD_CYCLE_TIME"] = f"{a.cycle_time_ms:g}"
    cfg = load_config([os.path.join(REPO, "conf", "local.yaml")], [f"run.root={a.root}", *a.overrides])
    meta = M.read(os.path.join(a.root, S.FEATURES_META))
    features_dir = os.path.join(a.root, S.FEATURES)
    if a.launcher == "spark":
        from reviewrec.session import build_session

        spark = build_session(cfg, "bench-train")
        n_train = M.split_frame(spark, features_dir, S.SPLIT_TRAIN).count()
    else:
        spark = None
        n_train = count_rows(features_dir, S.SPLIT_TRAIN)
    out: dict = {"root": a.root, "train_rows": n_train, "config_hash": cfg.hash(), "steps_per_worker": a.steps,
                 "epochs": a.epochs, "batch_size": cfg["model"]["batch_size"], "net": None,
                 "machine": f"{os.cpu_count()} cores, {platform.machine()}", "launcher": a.launcher,
                 "cpu_model": _cpu_model(), "horovod_cycle_time_ms": os.environ.get("HOROVOD_CYCLE_TIME"),
                 "runs": {}}
    # Timed epochs of `--steps` steps, no checkpoints, no validation, one TensorFlow thread a worker.
    spec = replace(spec_from_config(cfg, meta), epochs=a.epochs, max_steps_per_epoch=a.steps, checkpoint_dir=None,
                   validate=False, return_model=False, intra_op_threads=1, inter_op_threads=1)
    out["net"] = spec.net.to_dict()
    for n in a.procs:
        t0 = time.perf_counter()
        if spark is not None:
            res = run_horovod(spark, spec, n, verbose=0)
        else:
            res = run_gloo(spec, n)
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
    if a.independent:
        out["independent"] = {}
        for n in a.independent:
            out["independent"][str(n)] = independent(spec, n)
            print(json.dumps({f"independent_{n}": out["independent"][str(n)]}), file=sys.stderr, flush=True)
        ind = out["independent"]
        if "1" in ind and "2" in ind:
            out["independent_2_vs_1"] = round(ind["2"]["samples_per_s"] / ind["1"]["samples_per_s"], 3)
    for r in out["runs"].values():
        r["est_full_epoch_s"] = round(n_train / r["samples_per_s"], 1)
    print(json.dumps(out, indent=2))
    if spark is not None:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
