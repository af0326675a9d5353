"""The pipeline on the Spark standalone cluster (2 workers x 1 core), on YARN over HDFS (cluster
deploy mode, 2 executors x 1 core) and in local[2], same data, one run.

    .venv/bin/python benchmarks/bench_cluster.py [--rows 100000] [--epochs 2] \
        [--managers standalone,yarn,local] [--out benchmarks/out/cluster.json]

Starts each cluster (`./spark-submit.sh cluster up`, `./spark-submit.sh yarn up`) unless it is
up (and stops it again only if it started it), then runs `./spark-submit.sh pipeline` once per
manager on the same generated rows, each in its own run root: under --work (default
/tmp/reviewrec-bench-cluster) for standalone and local, on HDFS (hdfs:///bench/yarn) for YARN,
whose executors read the same TSV files from the local disk (file://). Through the cluster
branch: packed environment via --archives (for YARN staged once on HDFS), package via
--py-files, two executor JVMs; local mode: one JVM, local[2]. Every run uses the same
spark.sql.shuffle.partitions (8) and default parallelism (4). Reports each stage's wall time (the
pipeline's report/pipeline.json), the total including the JVM/application start-up (for YARN
in cluster mode: the ApplicationMaster's container and its localization), each ratio to local,
and what the standalone run spent on shipping the environment (fetch + unpack in each executor).
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


def _hdfs_text(path: str) -> str:
    """A file on the YARN of `./spark-submit.sh yarn up` (WebHDFS on its default port)."""
    import urllib.request

    rel = path.split("://", 1)[1]
    rel = rel[rel.index("/"):]
    url = f"http://127.0.0.1:9870/webhdfs/v1{rel}?op=OPEN&user.name={os.environ.get('USER', 'root')}"
    with urllib.request.urlopen(url, timeout=60) as r:  # noqa: S310 - loopback
        return r.read().decode()


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
    ap.add_argument("--managers", default="standalone,local", help="of standalone, yarn, local (local is the baseline)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "cluster.json"))
    args = ap.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    launcher = str(REPO / "spark-submit.sh")
    state = _state()

    managers = [m for m in args.managers.split(",") if m]
    if "local" not in managers:
        managers.append("local")
    started = []
    for m, verb in (("standalone", "cluster"), ("yarn", "yarn")):
        if m in managers and subprocess.run([launcher, verb, "status"], cwd=REPO, env=_env(),
                                            capture_output=True).returncode != 0:
            subprocess.run([launcher, verb, "up"], cwd=REPO, env=_env(), check=True)
            started.append(verb)
    subprocess.run([launcher, "cluster", "pack"], cwd=REPO, env=_env(), check=True, capture_output=True)
    sets = [f"synthetic.rows={args.rows}", f"synthetic.customers={max(300, args.rows // 5)}",
            f"synthetic.products={max(80, args.rows // 25)}", f"model.epochs={args.epochs}"]
    raw = work / "raw-source"
    confs = {"standalone": ("conf/standalone.yaml", []), "yarn": ("conf/yarn.yaml", ["--", "--deploy-mode", "cluster"]),
             "local": ("conf/local.yaml", [])}
    results = {}
    try:
        # The same generated rows for every run: generate once, copy into each local run root
        # (YARN reads them in place).
        gen_root = work / "gen"
        sets_args = sum((["--set", s] for s in sets + [f"run.root={gen_root}"]), [])
        _run([launcher, "generate", "--conf", "conf/local.yaml", *sets_args], work / "generate.log")
        shutil.move(str(gen_root / "raw"), raw)
        for mode in managers:
            conf, extra = confs[mode]
            if mode == "yarn":
                root, path = "hdfs:///bench/yarn", f"file://{raw}"
            else:
                root = str(work / mode)
                Path(root).mkdir()
                shutil.copytree(raw, Path(root) / "raw")
                path = f"{root}/raw"
            # input.format=tsv reads the files as they are (no generate stage in any run).
            run_sets = sets + [f"run.root={root}", "input.format=tsv", f"input.path={path}"]
            log = work / f"{mode}.log"
            wall = _run([launcher, "pipeline", "--conf", conf, *sum((["--set", s] for s in run_sets), []), *extra], log)
            read = _hdfs_text if mode == "yarn" else (lambda p: Path(p).read_text())
            summary = json.loads(read(f"{root}/report/pipeline.json"))
            text = log.read_text(errors="replace")
            results[mode] = {"wall_seconds": round(wall, 1), "stage_seconds": summary["stage_seconds"],
                             "ingest": json.loads(read(f"{root}/report/ingest.json"))["accepted"]}
            app = re.search(r"(app-\d{14}-\d{4})", text)
            if mode == "standalone" and app:
                results[mode]["app_id"] = app.group(1)
                results[mode]["archive_to_first_task_seconds"] = _archive_seconds(state, app.group(1))
    finally:
        for verb in started:
            subprocess.run([launcher, verb, "down"], cwd=REPO, env=_env())
    loc = results["local"]
    stages = list(loc["stage_seconds"])
    others = [m for m in managers if m != "local"]
    table = [{"stage": s, "local_s": loc["stage_seconds"][s],
              **{f"{m}_s": results[m]["stage_seconds"].get(s) for m in others},
              **{f"{m}_ratio": round(results[m]["stage_seconds"][s] / loc["stage_seconds"][s], 2)
                 if loc["stage_seconds"][s] and results[m]["stage_seconds"].get(s) else None for m in others}}
             for s in stages]
    out = {"rows": args.rows, "epochs": args.epochs, "results": results, "table": table,
           "total": {**{f"{m}_s": results[m]["wall_seconds"] for m in managers},
                     **{f"{m}_ratio": round(results[m]["wall_seconds"] / loc["wall_seconds"], 2) for m in others}},
           "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                    text=True).stdout.strip(),
           "cpus": os.cpu_count()}
    emit(out, args.out)
    head = " | ".join(f"{m} (s) | {m} / local" for m in others)
    print(f"\n| stage | local[2] (s) | {head} |\n|---|---|" + "---|---|" * len(others))
    for r in table:
        cells = " | ".join(f"{r[m + '_s']} | {r[m + '_ratio']}" for m in others)
        print(f"| {r['stage']} | {r['local_s']} | {cells} |")
    cells = " | ".join(f"{results[m]['wall_seconds']} | {out['total'][m + '_ratio']}" for m in others)
    print(f"| whole job (wall, incl. start-up) | {loc['wall_seconds']} | {cells} |")


if __name__ == "__main__":
    main()
