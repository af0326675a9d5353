"""reviewrec on a real Spark standalone cluster: one master and two workers, each its own JVM,
started by `./spark-submit.sh cluster up` for this module and always stopped after it.

Every job goes through the launcher's cluster branch exactly as on EMR/Dataproc: the package as
build/py/<hash>/reviewrec.zip (--py-files), the confs (--files), the venv packed with venv-pack
(--archives, executors run ./environment/bin/python), client deploy mode. The run roots are on
the local disk, which the driver and both workers share (as a cluster shares HDFS/S3).

The shared pipeline runs with the packed environment, what a cluster of other machines needs. The
other applications (the causal job, the fault runs, Spark NLP) run with this machine's .venv
(REVIEWREC_PYENV_ARCHIVE=none, PYSPARK_PYTHON), which the workers here share: Spark unpacks an
archive (1.8 GB) in the client-mode driver and again in every executor, about 40 s and 20 s per
application here, which they would repeat to show nothing new.

The cluster gets its own state directory and ports (7177, 8180-8182), so a developer's cluster
on the defaults is left alone.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO
from reference_runs import JOB_TIMEOUT, SMALL, SOURCE, clean_env, compare_runs, finish, reconciled
from reference_runs import cmdline as _cmdline
from reference_runs import cwd_of as _cwd
from reference_runs import rows as _rows
from reference_runs import wait_for as _wait
from reviewrec import io

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.spark]

MASTER = "spark://127.0.0.1:7177"
# A finished application's work directory (the unpacked environment, ~1.8 GB per executor) is
# removed by its worker APP_TTL s after its last change, checked every APP_TTL s.
APP_TTL = 30
CLUSTER_SETS = [f"spark.master={MASTER}", "spark.conf.spark.master.ui.port=8180",
                "spark.conf.spark.worker.ui.port=8181", f"spark.conf.spark.worker.cleanup.appDataTtl={APP_TTL}"]
# A Horovod rank lost with its executor ends the train job within this many seconds.
RANK_LOSS_TIMEOUT = 180
# No archive: the executors run this machine's .venv (the workers share the machine).
MACHINE_VENV = {"REVIEWREC_PYENV_ARCHIVE": "none", "PYSPARK_PYTHON": str(REPO / ".venv" / "bin" / "python")}


def _clean_env(state: Path) -> dict[str, str]:
    """The caller's environment without the test process's Python wiring: what the driver and
    executors import must come from the launcher (zip, packed environment), not from here."""
    return dict(clean_env(), REVIEWREC_CLUSTER_DIR=str(state))


class Cluster:
    def __init__(self, state: Path):
        self.state = state
        self.env = _clean_env(state)

    def script(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        res = subprocess.run([str(REPO / "spark-submit.sh"), "cluster", *args], cwd=REPO, env=self.env,
                             capture_output=True, text=True, timeout=300)
        if check:
            assert res.returncode == 0, res.stderr + res.stdout
        return res

    def up(self) -> None:
        self.script("up", "--conf", "conf/standalone.yaml", *[a for s in CLUSTER_SETS for a in ("--set", s)])

    def down(self) -> None:
        self.script("down")

    def pid(self, name: str) -> int:
        return int((self.state / "pids" / f"{name}.pid").read_text())

    def processes(self) -> list[int]:
        """Live processes of this cluster: daemons (their SPARK_CONF_DIR is ours), executors and
        their Python workers (working directory under our work/)."""
        mine = []
        conf = f"SPARK_CONF_DIR={self.state}/conf".encode()
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            try:
                environ = (p / "environ").read_bytes()
            except OSError:
                environ = b""
            if conf in environ.split(b"\0") or _cwd(int(p.name)).startswith(f"{self.state}/work/"):
                mine.append(int(p.name))
        return mine

    def executors(self) -> list[dict]:
        """Executor JVMs: pid, working directory, and the task it is running (None when idle)."""
        out = []
        for pid in self.processes():
            cmd = _cmdline(pid)
            if "org.apache.spark.executor.CoarseGrainedExecutorBackend" not in cmd:
                continue
            cwd = Path(_cwd(pid))
            log = (cwd / "stderr").read_text(errors="replace") if (cwd / "stderr").exists() else ""
            started = re.findall(r"Running task [\d.]+ in stage [\d.]+ \(TID (\d+)\)", log)
            done = set(re.findall(r"Finished task [\d.]+ in stage [\d.]+ \(TID (\d+)\)", log))
            running = [t for t in started if t not in done]
            out.append({"pid": pid, "cwd": cwd, "running": running})
        return out

    def submit(self, job: str, root: Path, sets: list[str], log: Path, extra_env: dict | None = None,
               conf: str = "conf/standalone.yaml", packed_env: bool = False) -> subprocess.Popen:
        """`job` through the launcher; executors on the packed environment only with `packed_env`
        (else this machine's .venv, see the module's docstring)."""
        args = [str(REPO / "spark-submit.sh"), job, "--conf", conf]
        for s in (CLUSTER_SETS if conf.endswith("standalone.yaml") else []) + [f"run.root={root}"] + sets:
            args += ["--set", s]
        env = dict(self.env, **({} if packed_env else MACHINE_VENV), **(extra_env or {}))
        fh = open(log, "w")  # noqa: SIM115 - closed by the caller through finish()
        return subprocess.Popen(args, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def run(self, job: str, root: Path, sets: list[str], log: Path, **kw) -> str:
        proc = self.submit(job, root, sets, log, **kw)
        rc = finish(proc)
        text = log.read_text(errors="replace")
        assert rc == 0, f"{job} failed (rc {rc}); log {log}:\n{text[-4000:]}"
        return text


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state = tmp_path_factory.mktemp("standalone")
    c = Cluster(state)
    t0 = time.monotonic()
    try:
        c.up()
        # Packed once per set of pins, outside the clone; later runs reuse it.
        c.script("pack")
        print(f"cluster up and environment packed in {time.monotonic() - t0:.0f}s")
        yield c
    finally:
        c.down()
        left = (_wait(lambda: not c.processes() or None, 30, "the cluster's processes to exit")
                if c.processes() else True)
        # The last applications' directories are not the worker's to remove any more: keep their
        # executors' logs beside the daemons' and drop the unpacked environments.
        keep_executor_logs(state, state / "logs" / "executors")
        shutil.rmtree(state / "work", ignore_errors=True)
        assert left and not c.processes(), f"processes left after cluster down: {c.processes()}"


def app_dirs(state: Path) -> list[Path]:
    return sorted(state.glob("work/worker-*/app-*"))


def keep_executor_logs(state: Path, dest: Path) -> list[Path]:
    """Copies every executor's stderr (work/worker-N/app-*/E/stderr) under `dest`, same layout."""
    out = []
    for f in state.glob("work/worker-*/app-*/*/stderr"):
        d = dest / f.relative_to(state / "work")
        d.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, d)
        out.append(d)
    return out


# ----------------------------------------------------------------------------------------------
# The whole system on the cluster, equal to local mode


def _rank_executors(cluster: Cluster) -> list[int]:
    """Executor JVMs that host a Horovod rank (the rank's working directory is its executor's)."""
    rank_dirs = {_cwd(p) for p in cluster.processes() if "horovod.spark.task.gloo_exec_fn" in _cmdline(p)}
    return [e["pid"] for e in cluster.executors() if str(e["cwd"]) in rank_dirs]


@pytest.fixture(scope="module")
def runs(cluster, local_reference, tmp_path_factory):
    """The pipeline and the causal job on the cluster, beside the local-mode run of the same config
    (tests/reference_runs.py, shared with tests/test_yarn.py). On the cluster an executor is
    SIGKILLed while it runs a preprocess task; the job must recover."""
    base = tmp_path_factory.mktemp("runs")
    out: dict = {"logs": base, "faults": {}, "local": local_reference}

    t0 = time.monotonic()
    root = base / "cluster"
    log = base / "cluster-pipeline.log"
    proc = cluster.submit("pipeline", root, SMALL, log, packed_env=True)
    try:
        _wait(lambda: "[preprocess] preprocess+write ..." in _log(log), JOB_TIMEOUT, "the preprocess stage")
        victim = _wait(lambda: next((e for e in cluster.executors() if e["running"]), None), 300,
                       "an executor running a preprocess task")
        os.kill(victim["pid"], signal.SIGKILL)
        out["faults"]["executor_killed"] = {"pid": victim["pid"], "tasks": victim["running"],
                                            "log_offset": len(_log(log))}
        assert finish(proc) == 0, _log(log)[-4000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # The pipeline is the cluster's first application: its directories, and its executors' logs
    # before the workers remove them.
    out["pipeline_apps"] = app_dirs(cluster.state)
    out["pipeline_executor_logs"] = keep_executor_logs(cluster.state, base / "pipeline-executors")
    cluster.run("causal", root, SMALL, base / "cluster-causal.log")
    out["cluster"], out["cluster_seconds"] = root, round(time.monotonic() - t0, 1)
    print(f"pipeline + causal on the cluster: {out['cluster_seconds']}s")
    return out




def test_pipeline_ran_on_the_cluster_with_the_packed_environment(runs, cluster):
    log = (runs["logs"] / "cluster-pipeline.log").read_text(errors="replace")
    assert f"on {MASTER}" in log  # the session's master
    assert re.search(r"--archives \S+reviewrec-env-\w+-\w+\.tar\.gz#environment", log)
    assert re.search(r"--py-files build/py/[0-9a-f]{16}/reviewrec\.zip", log)
    # Executors in both workers unpacked the archive and ran its interpreter.
    assert {p.parent.name for p in runs["pipeline_apps"]} == {"worker-1", "worker-2"}
    for w in ("worker-1", "worker-2"):
        stderr = "".join(p.read_text(errors="replace") for p in runs["pipeline_executor_logs"] if p.parts[-4] == w)
        assert "Unpacking an archive" in stderr and "#environment" in stderr, w
    # Horovod's two ranks ran in the executors with the packed interpreter.
    meta = json.loads((runs["cluster"] / "model" / "metadata.json").read_text())
    assert meta["num_proc"] == 2
    # Event logs for the history server.
    assert list((cluster.state / "events").iterdir())


def test_workers_remove_finished_applications_work_directories(runs):
    """The pipeline's directories (each executor's holds the unpacked environment) are gone
    within the TTL and one check interval of its end. A running application's are kept: the
    pipeline ran for minutes longer than the TTL with its environment in them."""
    gone = lambda: not any(p.exists() for p in runs["pipeline_apps"]) or None  # noqa: E731
    _wait(gone, 2 * APP_TTL + 60, f"the workers to remove {[str(p) for p in runs['pipeline_apps']]}", every=2)


def test_cluster_results_equal_local(runs, spark):
    c, l = runs["cluster"], runs["local"]  # noqa: E741
    # Ingest's reconciliation, every dataset row for row, the vocabulary, the LSTM's weights hash,
    # the metrics, the neighbours, the recommendations and the causal report (reference_runs).
    compare_runs(spark, str(c), str(l), read_text=lambda p: Path(p).read_text())
    # The features' files of the current version (part-NNNNN-<write id>.parquet in each split=...):
    # the same parts, each with the same rows in the same order (the ranks read them so).
    def parts(root: Path) -> dict[tuple[str, str], Path]:
        return {(p.parent.name, p.name.split("-")[1]): p for p in map(Path, io.log_files(str(root / "features")))}

    files_c, files_l = parts(c), parts(l)
    assert sorted(files_c) == sorted(files_l) and len(files_c) >= 3
    for key, path in files_c.items():
        ordered = [spark.read.parquet(str(p)).select("review_id").collect() for p in (path, files_l[key])]
        assert ordered[0] == ordered[1], key


def test_executor_sigkill_mid_preprocess_the_job_finishes_with_the_same_output(runs, spark):
    f = runs["faults"]["executor_killed"]
    text = (runs["logs"] / "cluster-pipeline.log").read_text(errors="replace")
    after = text[f["log_offset"]:]
    # The kill hit a running preprocess task: the driver lost it with the executor and ran it again.
    assert "ExecutorLostFailure" in after or "Lost task" in after, after[:3000]
    assert "pipeline: preprocess done" in after
    assert _rows(spark, runs["cluster"] / "tokens") == _rows(spark, runs["local"] / "tokens")


def test_horovod_rank_executor_killed_fails_named_then_resumes(cluster, runs, tmp_path):
    """A rank's executor SIGKILLed mid-epoch 2: the train job ends with Horovod's error within
    RANK_LOSS_TIMEOUT; the rerun resumes from epoch 1's checkpoint and ends with the same weights
    as an undisturbed run from a copy of that checkpoint."""
    root = tmp_path / "run"
    _copy(runs["cluster"], root, ["features", "features_meta"])
    log = tmp_path / "train-killed.log"
    proc = cluster.submit("train", root, SMALL, log)
    try:
        rank_execs = _wait(lambda: _rank_executors(cluster) or None, JOB_TIMEOUT, "the Horovod ranks")
        ckpt = _wait(lambda: next(iter(root.glob("model_checkpoints/*/epoch-0001")), None), 600,
                     "epoch 1's checkpoint", every=0.02)
        os.kill(rank_execs[-1], signal.SIGKILL)
        killed_at = time.monotonic()
        assert sorted(p.name for p in ckpt.parent.glob("epoch-*")) == ["epoch-0001"]  # mid-epoch 2
        rc = finish(proc, timeout=RANK_LOSS_TIMEOUT + 60)
        took = time.monotonic() - killed_at
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = _log(log)
    assert rc != 0 and took <= RANK_LOSS_TIMEOUT, (rc, took)
    assert "Horovod detected that one or more processes exited with non-zero status" in text, text[-3000:]
    assert not (root / "model" / "model.keras").exists()
    # Epoch 1's checkpoint alone, for the undisturbed run below.
    pristine = tmp_path / "epoch-0001"
    shutil.copytree(ckpt.parent, pristine, ignore=shutil.ignore_patterns("epoch-0002*", ".tmp-*"))
    cluster.run("train", root, SMALL, tmp_path / "train-rerun.log")
    meta = json.loads((root / "model" / "metadata.json").read_text())
    assert str(meta["resumed_from"]).endswith("epoch-0001"), meta["resumed_from"]
    assert [h["epoch"] for h in meta["history"]] == [1, 2]
    # The undisturbed run: the same job from epoch 1's checkpoint alone.
    shutil.rmtree(ckpt.parent)
    shutil.copytree(pristine, ckpt.parent)
    shutil.rmtree(root / "model")
    cluster.run("train", root, SMALL, tmp_path / "train-undisturbed.log")
    again = json.loads((root / "model" / "metadata.json").read_text())
    assert str(again["resumed_from"]).endswith("epoch-0001"), again["resumed_from"]
    timing = ("seconds", "samples_per_s")
    assert [{k: v for k, v in h.items() if k not in timing} for h in again["history"]] \
        == [{k: v for k, v in h.items() if k not in timing} for h in meta["history"]]
    assert again["weights_sha256"] == meta["weights_sha256"]


# ----------------------------------------------------------------------------------------------
# Faults


def _reconciled(root: Path) -> dict:
    return reconciled(json.loads((root / "report" / "ingest.json").read_text()))


def _copy(src: Path, dst: Path, names: list[str]) -> None:
    for n in names:
        s, d = src / n, dst / n
        d.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if s.is_dir() else shutil.copy)(s, d)


def _log(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


@pytest.fixture(scope="module")
def ingested(runs) -> Path:
    """What the ingest fault runs must equal: the cluster pipeline's run root, whose generate and
    ingest stages ran undisturbed (its executor is killed later, in preprocess). The fault runs
    copy from it and never write to it."""
    return runs["cluster"]


def _uncommitted(table: Path) -> list[Path]:
    """Parquet files in the table's directory that its current version does not reference."""
    try:
        live = set(io.log_files(str(table)))
    except FileNotFoundError:
        live = set()
    return [p for p in table.rglob("*.parquet") if "_delta_log" not in p.parts and str(p) not in live]


def test_driver_killed_mid_write_keeps_the_previous_output(cluster, ingested, spark, tmp_path):
    base = ingested
    root = tmp_path / "run"
    # The previous run's output is in place; the job rewrites it from other input (one raw file
    # fewer), so new reviews differ from the old ones.
    _copy(base, root, ["reviews", "quarantine", "duplicates", "report/ingest.json", "report/generate.json"])
    raw = sorted(p.name for p in (base / "raw").iterdir() if p.name.startswith("part-"))
    assert len(raw) >= 2, raw
    _copy(base, root, [f"raw/{n}" for n in raw[1:]])
    old_files = io.log_files(str(root / "reviews"))
    log = tmp_path / "ingest-killed.log"
    proc = cluster.submit("ingest", root, SMALL, log)
    try:
        _wait(lambda: _uncommitted(root / "reviews") or None, 600, "the reviews write to start", every=0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # launcher, spark-submit JVM and Python driver
        proc.wait()
    # killed in the write stage, after the quarantine's commit (ingest commits it first)
    assert "[ingest] write ..." in _log(log) and f"wrote {root / 'quarantine'}" in _log(log)
    # The kill landed mid-write, before the commit: the new version's files are on disk, the
    # table's log still has the one version copied from the previous run, whose files are read.
    assert _uncommitted(root / "reviews")
    assert [h["version"] for h in io.history(spark, str(root / "reviews"))] == [0]
    assert io.table_files(spark, str(root / "reviews")) == old_files
    assert _rows(spark, root / "reviews") == _rows(spark, base / "reviews")
    # The quarantine, written and committed before the reviews write began, is the new input's:
    # each dataset is its own commit.
    assert [h["version"] for h in io.history(spark, str(root / "quarantine"))] == [1, 0]
    # The rerun commits version 1 with the new input's reviews, which differ from the old ones.
    cluster.run("ingest", root, SMALL, tmp_path / "ingest-rerun.log")
    rep = _reconciled(root)
    assert 0 < rep["accepted"] < _reconciled(base)["accepted"]
    assert [h["version"] for h in io.history(spark, str(root / "reviews"))] == [1, 0]
    new = _rows(spark, root / "reviews")
    assert len(new) == rep["accepted"] and new != _rows(spark, base / "reviews")


def test_worker_stopped_for_good_mid_job_finishes_on_the_other(cluster, ingested, spark, tmp_path):
    base = ingested
    root = tmp_path / "run"
    _copy(base, root, ["raw", "report/generate.json"])
    log = tmp_path / "ingest.log"
    proc = cluster.submit("ingest", root, SMALL, log)
    try:
        _wait(lambda: "[ingest] read+validate ..." in _log(log), 600, "the ingest job to start")
        on_w2 = _wait(lambda: next((e for e in cluster.executors()
                                    if e["running"] and "/work/worker-2/" in str(e["cwd"])), None),
                      300, "worker-2's executor to run a task")
        executor_id, tids = on_w2["cwd"].name, on_w2["running"]
        worker = cluster.pid("worker-2")
        os.kill(worker, signal.SIGTERM)  # what stop-worker.sh does; the worker stops its executors
        _wait(lambda: not Path(f"/proc/{worker}").exists() and not Path(f"/proc/{on_w2['pid']}").exists() or None,
              60, "worker-2 and its executor to exit")
        rc = finish(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        cluster.up()  # both workers again for the tests after this one
    text = _log(log)
    assert rc == 0, text[-3000:]
    # The driver saw that executor go, with the task it was running, and ran that task again.
    assert re.search(rf"Lost executor {executor_id} on ", text), text[-3000:]
    lost = re.findall(rf"Lost task (\d+)\.(\d+) in stage (\S+) \(TID (\d+)\) \(\S+ executor {executor_id}\)", text)
    assert any(tid in tids for *_, tid in lost), (tids, lost)
    rep = _reconciled(root)
    assert rep["accepted"] == _reconciled(base)["accepted"]
    assert _rows(spark, root / "reviews") == _rows(spark, base / "reviews")
    assert _rows(spark, root / "quarantine", SOURCE) == _rows(spark, base / "quarantine", SOURCE)


def test_sparknlp_engine_on_the_cluster_equals_local(cluster, ingested, spark, tmp_path):
    """preprocess on the sparknlp engine: the jars (spark.jars) and the trained models reach the
    executors, and the tokens equal local mode's."""
    out = {}
    for mode, conf in (("cluster", "conf/standalone.yaml"), ("local", "conf/local.yaml")):
        root = tmp_path / mode
        _copy(ingested, root, ["reviews"])
        text = cluster.run("preprocess", root, SMALL + ["text.engine=sparknlp"], tmp_path / f"{mode}.log", conf=conf)
        if mode == "cluster":  # first, while the workers keep the application's directories (APP_TTL)
            # This application's executors (app ids sort by start time; an earlier test's may linger).
            app = max(p.name for p in cluster.state.glob("work/worker-*/app-*"))
            stderr = "".join(p.read_text(errors="replace") for p in cluster.state.glob(f"work/worker-*/{app}/*/stderr"))
            # Every executor started with Spark NLP's jar on its own classpath (the launcher's
            # extraClassPath for a cluster on this machine).
            commands = re.findall(r'Spark Executor Command: .*"-cp" "([^"]+)"', stderr)
            assert commands and all(re.search(r"spark-nlp_2\.12-[\d.]+\.jar", cp) for cp in commands), stderr[-2000:]
        assert "spark-nlp_2.12-" in text  # the launcher passed the jar
        report = json.loads((root / "report" / "preprocess.json").read_text())
        assert report["engine"] == "sparknlp", report
        out[mode] = _rows(spark, root / "tokens")
    assert out["cluster"] == out["local"] and len(out["local"]) > 1000


def test_missing_environment_archive_and_unreadable_input_fail_before_any_stage(cluster, tmp_path):
    events_before = set((cluster.state / "events").iterdir())
    missing = tmp_path / "no-such-env.tar.gz"
    res = subprocess.run([str(REPO / "spark-submit.sh"), "ingest", "--conf", "conf/standalone.yaml",
                          *[a for s in CLUSTER_SETS + [f"run.root={tmp_path / 'r1'}"] for a in ("--set", s)]],
                         cwd=REPO, env=dict(cluster.env, REVIEWREC_PYENV_ARCHIVE=str(missing)),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and f"environment archive not found: {missing}" in res.stderr
    gone = tmp_path / "gone" / "reviews.tsv"
    res = subprocess.run([str(REPO / "spark-submit.sh"), "ingest", "--conf", "conf/standalone.yaml",
                          *[a for s in CLUSTER_SETS + [f"run.root={tmp_path / 'r2'}", "input.format=tsv",
                                                        f"input.path={gone}"] for a in ("--set", s)]],
                         cwd=REPO, env=cluster.env, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and str(gone) in res.stderr
    # Neither reached the cluster: no application, no event log.
    assert set((cluster.state / "events").iterdir()) == events_before


def test_master_down_fails_within_seconds_naming_the_url(cluster, tmp_path):
    cluster.down()
    t0 = time.monotonic()
    res = subprocess.run([str(REPO / "spark-submit.sh"), "ingest", "--conf", "conf/standalone.yaml",
                          *[a for s in CLUSTER_SETS + [f"run.root={tmp_path}"] for a in ("--set", s)]],
                         cwd=REPO, env=cluster.env, capture_output=True, text=True, timeout=120)
    took = time.monotonic() - t0
    assert res.returncode != 0 and f"the Spark master {MASTER} is not reachable" in res.stderr
    assert took < 20, took
    # The same check in the job itself (a job started without the launcher).
    t0 = time.monotonic()
    res = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "jobs/ingest.py", "--conf", "conf/standalone.yaml",
                          *[a for s in CLUSTER_SETS + [f"run.root={tmp_path}"] for a in ("--set", s)]],
                         cwd=REPO, env=dict(cluster.env, PYTHONPATH=str(REPO / "lib")),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and f"the Spark master {MASTER} is not reachable" in res.stderr
    assert time.monotonic() - t0 < 30
