"""Multi-million-row run: generate -> ingest -> preprocess -> features, with wall time and peak
RSS of the driver and the workers per stage.

    .venv/bin/python benchmarks/bench_text_scale.py \
        --rows 500000 2000000 --root runs/scale --out scale.json

Each stage runs as its own job process (`.venv/bin/python jobs/<stage>.py --conf
conf/local.yaml --conf <extra.yaml>`), exactly as `./spark-submit.sh <stage>` runs it locally.
A sampler walks the job's process tree every `--interval` seconds (psutil) and keeps, per
role, the peak resident set size:
  * driver_python: the job's own Python process (the PySpark driver program);
  * jvm: the Spark JVM (in local mode it is both the driver and the executors, capped by
    spark.driver.memory = `--driver-memory`);
  * workers: the Python worker processes the JVM starts (pyspark.daemon and its forks): the
    largest single one and the largest sum at one instant.
"Flat driver memory" means these peaks do not grow with the row count (compare the sizes).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
STAGES = ("generate", "ingest", "preprocess", "features")


def _role(p: psutil.Process, top: int) -> str:
    if p.pid == top:
        return "driver_python"
    name = p.name()
    if "java" in name:
        return "jvm"
    if "python" in name:
        return "workers"
    return "other"


class Sampler(threading.Thread):
    """Peak RSS per role over a process tree, sampled every `interval` seconds."""

    def __init__(self, pid: int, interval: float):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak: dict[str, float] = {}
        self.peak_single_worker = 0.0
        self.max_workers = 0
        self.samples = 0
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            top = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self.stop.is_set():
            try:
                procs = [top, *top.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            now: dict[str, float] = {}
            workers = 0
            for p in procs:
                try:
                    rss = p.memory_info().rss / 2**20
                    role = _role(p, self.pid)
                except psutil.NoSuchProcess:
                    continue
                now[role] = now.get(role, 0.0) + rss
                if role == "workers":
                    workers += 1
                    self.peak_single_worker = max(self.peak_single_worker, rss)
            for k, v in now.items():
                self.peak[k] = max(self.peak.get(k, 0.0), v)
            self.max_workers = max(self.max_workers, workers)
            self.samples += 1
            self.stop.wait(self.interval)


def run_stage(stage: str, confs: list[str], overrides: list[str], interval: float, log_path: str) -> dict:
    cmd = [os.path.join(REPO, ".venv", "bin", "python"), os.path.join(REPO, "jobs", f"{stage}.py")]
    for c in confs:
        cmd += ["--conf", c]
    for o in overrides:
        cmd += ["--set", o]
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1",
               PYSPARK_PYTHON=os.path.join(REPO, ".venv", "bin", "python"))
    t0 = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        s = Sampler(proc.pid, interval)
        s.start()
        rc = proc.wait()
        s.stop.set()
        s.join()
    wall = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"stage {stage} failed with exit code {rc}; see {log_path}")
    return {"wall_s": round(wall, 1), "peak_rss_mib": {k: round(v, 1) for k, v in sorted(s.peak.items())},
            "peak_single_worker_mib": round(s.peak_single_worker, 1), "max_python_workers": s.max_workers,
            "samples": s.samples, "command": " ".join(cmd)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[500_000, 2_000_000])
    ap.add_argument("--root", default="/tmp/reviewrec-scale")
    ap.add_argument("--out", default=None)
    ap.add_argument("--driver-memory", default="2g")
    ap.add_argument("--files", type=int, default=8, help="synthetic.files (TSV.gz files generated)")
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    args = ap.parse_args()

    os.makedirs(args.root, exist_ok=True)
    extra = os.path.join(args.root, "scale.yaml")
    with open(extra, "w", encoding="utf-8") as fh:
        fh.write(f"spark:\n  conf:\n    spark.driver.memory: {args.driver_memory}\n")
    confs = [os.path.join(REPO, "conf", "local.yaml"), extra]
    results: dict[str, dict] = {}
    for rows in args.rows:
        root = os.path.join(args.root, f"rows{rows}")
        # Customers and products grow with the rows (pds categories have nearly one customer
        # per review and tens of reviews per product), so the indexers see realistic sizes.
        over = [f"run.root={root}", f"synthetic.rows={rows}", f"synthetic.files={args.files}",
                f"synthetic.customers={max(1000, rows // 2)}", f"synthetic.products={max(100, rows // 50)}",
                "input.categories=all", *args.overrides]
        res: dict[str, dict] = {}
        for stage in args.stages:
            print(f"rows {rows:,}: {stage} ...", flush=True)
            res[stage] = run_stage(stage, confs, over, args.interval, os.path.join(args.root, f"{rows}-{stage}.log"))
            print(f"  {json.dumps(res[stage]['peak_rss_mib'])} {res[stage]['wall_s']} s", flush=True)
            results[str(rows)] = {"stages": res}
            if args.out:  # after every stage, so a run cut short still leaves its numbers
                with open(args.out, "w", encoding="utf-8") as fh:
                    json.dump({"driver_memory": args.driver_memory, "results": results}, fh, indent=2)
        reports = {}
        for name in ("generate", "ingest", "preprocess", "features"):
            path = os.path.join(root, "report", f"{name}.json")
            if os.path.exists(path):
                with open(path, encoding="utf-8") as fh:
                    reports[name] = json.load(fh)
        results[str(rows)] = {"stages": res, "reports": reports}
        if args.out:
            with open(args.out, "w", encoding="utf-8") as fh:
                json.dump({"driver_memory": args.driver_memory, "load_average_1m_at_end": os.getloadavg()[0],
                           "results": results}, fh, indent=2)
    print(json.dumps({r: {s: (v["wall_s"], v["peak_rss_mib"]) for s, v in x["stages"].items()}
                      for r, x in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
