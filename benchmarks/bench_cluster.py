"""The pipeline on the Spark standalone cluster (2 workers x 1 core), on YARN (cluster deploy
mode, 2 executors x 1 core) with its run root on HDFS and on s3a:// (the local S3 server), and
in local[2], same data, one run.

    .venv/bin/python benchmarks/bench_cluster.py [--rows 100000] [--epochs 2] \
        [--managers standalone,yarn,yarn-s3a,local] [--out benchmarks/out/cluster.json]

Starts each cluster (`./spark-submit.sh cluster up`, `./spark-submit.sh yarn up`, for yarn-s3a
also `./spark-submit.sh s3 up`) unless it is up (and stops it again only if it started it), then
runs `./spark-submit.sh pipeline` once per manager on the same generated rows, each in its own
run root: under --work (default /tmp/reviewrec-bench-cluster) for standalone and local, on HDFS
(hdfs:///bench/yarn) for yarn, on the S3 server (s3a://BUCKET/bench/yarn, conf/s3.yaml, the
server's keys in the launcher's environment, which ships them to the containers in a credential
store) for yarn-s3a; both YARN runs' executors read the same TSV files from the local disk
(file://). Through the cluster branch: packed environment via --archives (for YARN staged once
on HDFS before the runs, timed apart), package via --py-files, two executor JVMs; local mode:
one JVM, local[2]. Every run uses the same spark.sql.shuffle.partitions (8) and default
parallelism (4). Reports each stage's wall time (the pipeline's report/pipeline.json), the total
including the JVM/application start-up, each ratio to local, the load average during each run,
what the standalone run spent on shipping the environment (fetch + unpack in each executor), and
for YARN where the time before the first stage goes (the client's application reports, the
ApplicationMaster's and executors' container logs, the environment's download and unpack into
the NodeManager's public cache).

The state directories and ports are the daemons' (REVIEWREC_CLUSTER_DIR, REVIEWREC_YARN_DIR and
REVIEWREC_YARN_* ports, REVIEWREC_S3_DIR / REVIEWREC_S3_PORT).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _emit import emit  # noqa: E402
from _s3bench import LoadSampler, s3_server  # noqa: E402

BUCKET = "reviewrec-bench"
YARN_MANAGERS = ("yarn", "yarn-s3a")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "SPARK_CONF_DIR", "SPARK_HOME")}


def _hdfs_text(path: str) -> str:
    """A file on the YARN of `./spark-submit.sh yarn up` (WebHDFS on its default port)."""
    import urllib.request

    rel = path.split("://", 1)[1]
    rel = rel[rel.index("/"):]
    port = os.environ.get("REVIEWREC_YARN_NN_HTTP_PORT", "9870")
    url = f"http://127.0.0.1:{port}/webhdfs/v1{rel}?op=OPEN&user.name={os.environ.get('USER', 'root')}"
    with urllib.request.urlopen(url, timeout=60) as r:  # noqa: S310 - loopback
        return r.read().decode()


def _state() -> Path:
    cache = os.environ.get("REVIEWREC_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "reviewrec")
    return Path(os.environ.get("REVIEWREC_CLUSTER_DIR") or os.path.join(cache, "cluster"))


def _cache() -> Path:
    return Path(os.environ.get("REVIEWREC_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "reviewrec"))


def _yarn_state() -> Path:
    return Path(os.environ.get("REVIEWREC_YARN_DIR") or _cache() / "yarn-cluster")


def _run(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, cwd=REPO, env=env or _env(), stdout=fh, stderr=subprocess.STDOUT).returncode
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


_SPARK_LINE = re.compile(r"^(\d\d/\d\d/\d\d \d\d:\d\d:\d\d) (?:INFO|WARN|ERROR) (\S+?): (.*)$", re.M)
_PY_LINE = re.compile(r"^(\d\d:\d\d:\d\d) (?:INFO|WARNING|ERROR) (\S+): (.*)$", re.M)


def _spark_lines(text: str) -> list[tuple[float, str]]:
    """(epoch seconds, message) of Spark's log lines (yy/MM/dd HH:mm:ss, this machine's zone: UTC)."""
    return [(datetime.strptime(m.group(1), "%y/%m/%d %H:%M:%S").replace(tzinfo=UTC).timestamp(),
             f"{m.group(2)}: {m.group(3)}") for m in _SPARK_LINE.finditer(text)]


def _py_lines(text: str, t0: float) -> list[tuple[float, str]]:
    """(epoch seconds, message) of the package's log lines (HH:MM:SS on the day of t0, UTC)."""
    day = datetime.fromtimestamp(t0, UTC).strftime("%Y-%m-%d")
    out = []
    for m in _PY_LINE.finditer(text):
        t = datetime.strptime(f"{day} {m.group(1)}", "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
        out.append((t + 86400 if t < t0 - 3600 else t, f"{m.group(2)}: {m.group(3)}"))
    return out


def _first(lines: list[tuple[float, str]], needle: str) -> float | None:
    return next((t for t, msg in lines if needle in msg), None)


def _last(lines: list[tuple[float, str]], needle: str) -> float | None:
    return next((t for t, msg in reversed(lines) if needle in msg), None)


def _stage_marks(text: str, t0: float, t1: float) -> dict[str, float | None]:
    """Seconds from the launcher's start to the first stage, and from the last stage's end to the
    launcher's exit (the package's `pipeline: stage` / `pipeline finished` log lines)."""
    lines = _py_lines(text, t0)
    first, done = _first(lines, "pipeline: stage "), _last(lines, "pipeline finished")
    return {"to_first_stage_s": round(first - t0, 1) if first else None,
            "after_last_stage_s": round(t1 - done, 1) if done else None}


def _container_logs(state: Path, app_id: str) -> dict[str, Path]:
    """container id -> its stderr, from the NodeManager's log directory under the YARN state."""
    found = sorted(state.glob(f"target/test/data/*/yarn-*/*-logDir-nm-*/{app_id}/container_*/stderr"))
    if not found:
        for root, dirs, files in os.walk(state / "target"):
            dirs[:] = [d for d in dirs if d not in ("filecache", "usercache", "nmPrivate")]
            if Path(root).parent.name == app_id and "stderr" in files:
                found.append(Path(root) / "stderr")
    return {p.parent.name: p for p in found}


def _env_unpack(state: Path) -> list[dict]:
    """The packed environment in the NodeManager's public cache: when its download from HDFS began,
    the first and last inode change (ctime) of its unpacked files, i.e. when the unpack started
    and ended (tar keeps the archive's mtimes, not ctimes), and when it was moved into place."""
    out = []
    for env_dir in sorted(state.glob("target/test/data/*/yarn-*/*-localDir-nm-*/filecache/*/reviewrec-env*")):
        lo, hi, n = float("inf"), 0.0, 0
        for root, _dirs, files in os.walk(env_dir):
            for f in files:
                try:
                    c = os.lstat(os.path.join(root, f)).st_ctime
                except OSError:
                    continue
                lo, hi, n = min(lo, c), max(hi, c), n + 1
        if n:
            # The numbered cache directory: created (mtime, its one entry made) when the download
            # began, renamed from N_tmp into place (ctime) when the resource was localized.
            st = os.stat(env_dir.parent)
            out.append({"dir": str(env_dir.relative_to(state)), "files": n, "download_started": st.st_mtime,
                        "first_ctime": lo, "last_ctime": hi, "localized": st.st_ctime})
    return out


def _yarn_timeline(state: Path, app_id: str, t0: float, t1: float, client_log: str) -> dict:
    """Where a cluster-mode application's time before its first stage went, in seconds from the
    launcher's start (t0): the client's log (uploads, submission, the ResourceManager's start
    time, RUNNING), each container's launch and logs, and the environment's download and unpack
    into the NodeManager's public cache."""
    def rel(t: float | None) -> float | None:
        return round(t - t0, 1) if t else None

    marks: dict[str, float | None] = {}
    client = _spark_lines(client_log)
    marks["spark_submit_first_log"] = rel(client[0][0] if client else None)
    marks["client_uploads_start"] = rel(_first(client, "Uploading resource"))
    marks["client_submitting"] = rel(_first(client, "Submitting application"))
    marks["client_saw_running"] = rel(_first(client, "state: RUNNING"))
    # The ResourceManager's submission time, from the application report the client prints (the
    # minicluster's web UI and REST API answer 404 here).
    started = re.search(r"start time: (\d{13})", client_log)
    marks["rm_app_started"] = rel(int(started.group(1)) / 1000 if started else None)
    marks["client_saw_finished"] = rel(_first(client, "state: FINISHED"))
    logs = _container_logs(state, app_id)
    containers = {}
    for cid, path in logs.items():
        text = path.read_text(errors="replace")
        sl = _spark_lines(text)
        launch = path.with_name("launch_container.sh")
        # The NodeManager copies the launch script into the log directory when it launches the
        # container, after its resources are localized.
        c = {"launched": rel(launch.stat().st_mtime if launch.exists() else None),
             "first_log": rel(sl[0][0] if sl else None)}
        if cid.endswith("_000001"):  # the ApplicationMaster, with the driver (its Python logs to stdout)
            out = path.with_name("stdout")
            pl = _py_lines(text + (out.read_text(errors="replace") if out.exists() else ""), t0)
            pl.sort()
            c.update({"user_app_started": rel(_first(sl, "Starting the user application")),
                      "spark_context": rel(_first(sl, "Running Spark version")),
                      "am_registered": rel(_first(sl, "Registering the ApplicationMaster")),
                      "executors_requested": rel(_first(sl, "Will request")),
                      "executor_registered_first": rel(_first(sl, "Registered executor")),
                      "first_stage": rel(_first(pl, "pipeline: stage ")),
                      "pipeline_finished": rel(_last(pl, "pipeline finished"))})
        else:
            c.update({"registered_with_driver": rel(_first(sl, "Successfully registered with driver")),
                      "first_task": rel(_first(sl, "Running task"))})
        containers[cid] = c
    unpack = [{**u, **{k: rel(u[k]) for k in ("download_started", "first_ctime", "last_ctime", "localized")}}
              for u in _env_unpack(state) if t0 <= u["last_ctime"] <= t1]
    return {"app_id": app_id, "marks_s": marks, "containers_s": containers, "env_unpacked_in_this_run": unpack,
            "launcher_exit_s": rel(t1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--work", default="/tmp/reviewrec-bench-cluster")
    ap.add_argument("--managers", default="standalone,local",
                    help="of standalone, yarn, yarn-s3a, local (local is the baseline), run in this order")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "cluster.json"))
    args = ap.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    launcher = str(REPO / "spark-submit.sh")
    state = _state()
    ystate = _yarn_state()

    managers = [m for m in args.managers.split(",") if m]
    unknown = set(managers) - {"standalone", "yarn", "yarn-s3a", "local"}
    if unknown:
        sys.exit(f"unknown managers {sorted(unknown)}")
    if "local" not in managers:
        managers.append("local")
    t_start = time.time()
    started = []
    setup: dict[str, float] = {}
    results: dict[str, dict] = {}
    with contextlib.ExitStack() as stack:
        sampler = stack.enter_context(LoadSampler(every=30))
        for verb, wanted in (("cluster", ("standalone",)), ("yarn", YARN_MANAGERS)):
            status = subprocess.run([launcher, verb, "status"], cwd=REPO, env=_env(), capture_output=True, text=True)
            # `yarn status` exits non-zero while it runs but no application has run yet: its output says.
            running = status.returncode == 0 or f"{verb}: running" in status.stdout
            if any(m in managers for m in wanted) and not running:
                t = time.perf_counter()
                subprocess.run([launcher, verb, "up"], cwd=REPO, env=_env(), check=True)
                setup[f"{verb} up"] = round(time.perf_counter() - t, 1)
                started.append(verb)
        stack.callback(lambda: [subprocess.run([launcher, v, "down"], cwd=REPO, env=_env()) for v in started])
        s3 = stack.enter_context(s3_server(BUCKET)) if "yarn-s3a" in managers else None
        t = time.perf_counter()
        subprocess.run([launcher, "cluster", "pack"], cwd=REPO, env=_env(), check=True, capture_output=True)
        setup["cluster pack (cached unless the pins changed)"] = round(time.perf_counter() - t, 1)
        if any(m in managers for m in YARN_MANAGERS):
            # Staged once on HDFS before the runs, as `yarn env-archive` does at a cluster's first
            # submit; the NodeManager then localizes it into its public cache at the first application.
            t = time.perf_counter()
            subprocess.run([launcher, "yarn", "env-archive"], cwd=REPO, env=_env(), check=True, capture_output=True)
            setup["yarn env-archive (stage the environment on HDFS)"] = round(time.perf_counter() - t, 1)
        sets = [f"synthetic.rows={args.rows}", f"synthetic.customers={max(300, args.rows // 5)}",
                f"synthetic.products={max(80, args.rows // 25)}", f"model.epochs={args.epochs}"]
        raw = work / "raw-source"
        yarn_extra = ["--", "--deploy-mode", "cluster"]
        confs = {"standalone": (["conf/standalone.yaml"], []), "yarn": (["conf/yarn.yaml"], yarn_extra),
                 "yarn-s3a": (["conf/yarn.yaml", "conf/s3.yaml"], yarn_extra), "local": (["conf/local.yaml"], [])}
        # The same generated rows for every run: generate once, copy into each local run root
        # (YARN reads them in place).
        gen_root = work / "gen"
        sets_args = sum((["--set", x] for x in sets + [f"run.root={gen_root}"]), [])
        _run([launcher, "generate", "--conf", "conf/local.yaml", *sets_args], work / "generate.log")
        shutil.move(str(gen_root / "raw"), raw)
        for mode in managers:
            conf, extra = confs[mode]
            env = _env()
            extra_sets: list[str] = []
            if mode == "yarn":
                root, path = "hdfs:///bench/yarn", f"file://{raw}"
            elif mode == "yarn-s3a":
                assert s3 is not None
                root, path = f"s3a://{BUCKET}/bench/yarn", f"file://{raw}"
                env.update(s3.credentials)
                extra_sets = s3.conf_sets()
            else:
                root = str(work / mode)
                Path(root).mkdir()
                shutil.copytree(raw, Path(root) / "raw")
                path = f"{root}/raw"
            # input.format=tsv reads the files as they are (no generate stage in any run).
            run_sets = sets + [f"run.root={root}", "input.format=tsv", f"input.path={path}", *extra_sets]
            log = work / f"{mode}.log"
            t0 = time.time()
            wall = _run([launcher, "pipeline", *sum((["--conf", c] for c in conf), []),
                         *sum((["--set", x] for x in run_sets), []), *extra], log, env)
            t1 = time.time()
            read = {"yarn": _hdfs_text, "yarn-s3a": s3.read_text if s3 else None}.get(mode) or (
                lambda p: Path(p).read_text())
            summary = json.loads(read(f"{root}/report/pipeline.json"))
            text = log.read_text(errors="replace")
            results[mode] = {"wall_seconds": round(wall, 1), "stage_seconds": summary["stage_seconds"],
                             "ingest": json.loads(read(f"{root}/report/ingest.json"))["accepted"],
                             "start_utc": time.strftime("%H:%M:%S", time.gmtime(t0)),
                             "end_utc": time.strftime("%H:%M:%S", time.gmtime(t1)), "root": root,
                             **_stage_marks(text, t0, t1)}
            app = re.search(r"(app-\d{14}-\d{4})", text)
            if mode == "standalone" and app:
                results[mode]["app_id"] = app.group(1)
                results[mode]["archive_to_first_task_seconds"] = _archive_seconds(state, app.group(1))
            yapp = re.search(r"(application_\d+_\d+)", text)
            if mode in YARN_MANAGERS and yapp:
                try:
                    results[mode]["yarn"] = _yarn_timeline(ystate, yapp.group(1), t0, t1, text)
                except Exception as e:  # noqa: BLE001 - keep the run's figures
                    results[mode]["yarn"] = {"app_id": yapp.group(1), "error": repr(e), "containers_s": {}}
                am = next((c for cid, c in results[mode]["yarn"]["containers_s"].items() if cid.endswith("_000001")),
                          {})
                if am.get("first_stage") is not None:
                    results[mode]["to_first_stage_s"] = am["first_stage"]
                if am.get("pipeline_finished") is not None:
                    results[mode]["after_last_stage_s"] = round(wall - am["pipeline_finished"], 1)
            Path(args.out + ".partial").write_text(json.dumps(results, indent=2, default=str))
    for r in results.values():
        r["load_average_1m"] = sampler.between(r["start_utc"], r["end_utc"])
    loc = results["local"]
    stages = list(loc["stage_seconds"])
    others = [m for m in managers if m != "local"]
    table = [{"stage": st, "local_s": loc["stage_seconds"][st],
              **{f"{m}_s": results[m]["stage_seconds"].get(st) for m in others},
              **{f"{m}_ratio": round(results[m]["stage_seconds"][st] / loc["stage_seconds"][st], 2)
                 if loc["stage_seconds"][st] and results[m]["stage_seconds"].get(st) else None for m in others}}
             for st in stages]
    out = {"rows": args.rows, "epochs": args.epochs, "managers": managers, "setup_seconds": setup,
           "results": results, "table": table,
           "total": {**{f"{m}_s": results[m]["wall_seconds"] for m in managers},
                     **{f"{m}_ratio": round(results[m]["wall_seconds"] / loc["wall_seconds"], 2) for m in others}},
           "benchmark_wall_seconds": round(time.time() - t_start, 1),
           "load_samples": sampler.samples,
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
