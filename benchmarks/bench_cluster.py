"""The pipeline on the Spark standalone cluster (2 workers x 1 core) vs local[2], same data, one run.

    .venv/bin/python benchmarks/bench_cluster.py [--rows 100000] [--epochs 2] [--out benchmarks/out/cluster.json]

Starts the cluster with `./spark-submit.sh cluster up` unless one is up at conf/standalone.yaml's
master (and stops it again only if it started it), then runs `./spark-submit.sh pipeline` twice
on the same generated rows, each in its own run root under --work (default /tmp/reviewrec-bench-
cluster): once through the cluster branch (--conf conf/standalone.yaml: packed environment via
--archives, package via --py-files, two executor JVMs), once in local mode (--conf
conf/local.yaml: one JVM, local[2]). Both runs use the same spark.sql.shuffle.partitions (8) and
default parallelism (4). Reports each stage's wall time (the pipeline's report/pipeline.json),
the total including the JVM/application start-up, the cluster/local ratio, and what the cluster
run spent on shipping the environment (fetch + unpack in each executor, from the executor logs).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _emit import emit  # noqa: E402


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "SPARK_CONF_DIR", "SPARK_HOME")}


def _state() -> Path:
    cache = os.environ.get("REVIEWREC_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "reviewrec")
    return Path(os.environ.get("REVIEWREC_CLUSTER_DIR") or os.path.join(cache, "cluster"))


def _run(cmd: list[str], log: Path) -> float:
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, cwd=REPO, env=_env(), stdout=fh, stderr=subprocess.STDOUT).returncode
    took = time.perf_counter() - t0
    if rc != 0:
        sys.exit(f"{' '.join(cmd)} failed (rc {rc}); log {log}")
    return took


def _archive_seconds(state: Path, app_id: str) -> dict[str, float]:
    """Per executor: seconds from fetching the environment archive to its first task."""
    out = {}
    for err in sorted(state.glob(f"work/worker-*/{app_id}/*/stderr")):
        text = err.read_text(errors="replace")
        stamp_re = r"^(\d\d/\d\d/\d\d \d\d:\d\d:\d\d) INFO (.*)$"
        stamps = [(m.group(1), m.group(2)) for m in re.finditer(stamp_re, text, re.M)]
        fetch = next((t for t, msg in stamps if "Fetching" in msg and "#environment" in msg), None)
        first = next((t for t, msg in stamps if msg.startswith("Executor: Running task")), None)
        if fetch and first:
            f = datetime.strptime(fetch, "%y/%m/%d %H:%M:%S")
            r = datetime.strptime(first, "%y/%m/%d %H:%M:%S")
            out[str(err.parent.relative_to(state / "work"))] = (r - f).total_seconds()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--work", default="/tmp/reviewrec-bench-cluster")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "cluster.json"))
    args = ap.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    launcher = str(REPO / "spark-submit.sh")
    state = _state()

    started = subprocess.run([launcher, "cluster", "status"], cwd=REPO, env=_env(), capture_output=True).returncode != 0
    if started:
        subprocess.run([launcher, "cluster", "up"], cwd=REPO, env=_env(), check=True)
    subprocess.run([launcher, "cluster", "pack"], cwd=REPO, env=_env(), check=True, capture_output=True)
    sets = [f"synthetic.rows={args.rows}", f"synthetic.customers={max(300, args.rows // 5)}",
            f"synthetic.products={max(80, args.rows // 25)}", f"model.epochs={args.epochs}"]
    raw = work / "raw-source"
    try:
        # The same generated rows for both: generate once, copy into each run root.
        gen_root = work / "gen"
        sets_args = sum((["--set", s] for s in sets + [f"run.root={gen_root}"]), [])
        _run([launcher, "generate", "--conf", "conf/local.yaml", *sets_args], work / "generate.log")
        shutil.move(str(gen_root / "raw"), raw)
        results = {}
        for mode, conf in (("cluster", "conf/standalone.yaml"), ("local", "conf/local.yaml")):
            root = work / mode
            root.mkdir()
            shutil.copytree(raw, root / "raw")
            # input.format=tsv reads the copied files as they are (no generate stage in either run).
            run_sets = sets + [f"run.root={root}", "input.format=tsv", f"input.path={root / 'raw'}"]
            log = work / f"{mode}.log"
            wall = _run([launcher, "pipeline", "--conf", conf, *sum((["--set", s] for s in run_sets), [])], log)
            summary = json.loads((root / "report" / "pipeline.json").read_text())
            text = log.read_text(errors="replace")
            app = re.search(r"(app-\d{14}-\d{4})", text)
            results[mode] = {"wall_seconds": round(wall, 1), "stage_seconds": summary["stage_seconds"],
                             "ingest": json.loads((root / "report" / "ingest.json").read_text())["accepted"]}
            if mode == "cluster" and app:
                results[mode]["app_id"] = app.group(1)
                results[mode]["archive_to_first_task_seconds"] = _archive_seconds(state, app.group(1))
    finally:
        if started:
            subprocess.run([launcher, "cluster", "down"], cwd=REPO, env=_env())
    c, loc = results["cluster"], results["local"]
    stages = list(loc["stage_seconds"])
    table = [{"stage": s, "cluster_s": c["stage_seconds"].get(s), "local_s": loc["stage_seconds"][s],
              "ratio": round(c["stage_seconds"][s] / loc["stage_seconds"][s], 2) if loc["stage_seconds"][s] else None}
             for s in stages]
    out = {"rows": args.rows, "epochs": args.epochs, "results": results, "table": table,
           "total": {"cluster_s": c["wall_seconds"], "local_s": loc["wall_seconds"],
                     "ratio": round(c["wall_seconds"] / loc["wall_seconds"], 2)},
           "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                    text=True).stdout.strip(),
           "cpus": os.cpu_count()}
    emit(out, args.out)
    print("\n| stage | cluster (s) | local[2] (s) | cluster / local |\n|---|---|---|---|")
    for r in table:
        print(f"| {r['stage']} | {r['cluster_s']} | {r['local_s']} | {r['ratio']} |")
    print(f"| whole job (wall, incl. start-up) | {c['wall_seconds']} | {loc['wall_seconds']} "
          f"| {out['total']['ratio']} |")


if __name__ == "__main__":
    main()
