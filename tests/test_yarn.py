"""reviewrec on YARN over HDFS: a ResourceManager with a NodeManager and a NameNode with a
DataNode (Hadoop's minicluster jars, one JVM on 127.0.0.1), started by `./spark-submit.sh yarn up`
for this module and always stopped after it, leaving no process behind.

Every job goes through the launcher's YARN branch as on EMR and Dataproc: the package zip
(--py-files), the confs (--files), the packed environment staged once on HDFS (--archives,
localized once by the NodeManager), the Delta and hadoop-aws jars (spark.jars). One pipeline runs
in cluster deploy mode (the driver in the ApplicationMaster's container) through two faults: an
executor container SIGKILLed while it runs a preprocess task, and the ApplicationMaster SIGKILLed
in a later stage, after which YARN's second attempt resumes the pipeline (run.skip_existing) and
completes. Its run root is on HDFS (hdfs://), so every stage reads and writes there: the train
job stages the features for the Horovod ranks and the model is read back through Hadoop's
FileSystem and shipped to the executors. The causal job runs in client deploy mode (a driver
outside YARN) on a run root on s3a:// (the test session's S3 server, tests/s3server.py) holding
the local run's reviews, reading the Delta table there and writing its report there.
Every output equals local mode's (the local run is shared with tests/test_cluster.py). The daily
Airflow DAG (dags/reviewrec_daily.py) runs a day against this YARN with `airflow dags test`, each
task's job an application of its own in cluster deploy mode, its run root on s3a:// (the test
session's S3 server, tests/s3server.py).

The cluster gets its own state directory and ports (19000, 19870, 18032-18035, 18088), so a
developer's YARN on the defaults is left alone.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO
from reference_runs import JOB_TIMEOUT, SMALL, clean_env, compare_runs, finish, spark_events, wait_for
from reference_runs import cmdline as _cmdline
from reference_runs import cwd_of as _cwd

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.spark]

PORTS = {"REVIEWREC_YARN_NN_PORT": "19000", "REVIEWREC_YARN_NN_HTTP_PORT": "19870",
         "REVIEWREC_YARN_RM_PORT": "18032", "REVIEWREC_YARN_WEB_PORT": "18088"}
NN = f"hdfs://127.0.0.1:{PORTS['REVIEWREC_YARN_NN_PORT']}"


def _read(p: Path) -> str:
    return p.read_text(errors="replace") if p.exists() else ""


class Yarn:
    def __init__(self, state: Path):
        self.state = state
        self.env = dict(clean_env(), **PORTS, REVIEWREC_YARN_DIR=str(state))

    def script(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        res = subprocess.run([str(REPO / "spark-submit.sh"), "yarn", *args], cwd=REPO, env=self.env,
                             capture_output=True, text=True, timeout=600)
        if check:
            assert res.returncode == 0, res.stderr + res.stdout
        return res

    def daemon(self) -> int:
        return int((self.state / "pids" / "yarn.pid").read_text())

    def processes(self) -> list[int]:
        """The daemon and every process under the state directory (containers, their Python
        workers, Horovod ranks)."""
        out = []
        for p in Path("/proc").iterdir():
            if p.name.isdigit() and (_cwd(int(p.name)).startswith(f"{self.state}/")
                                     or str(self.state) in " ".join(_cmdline(int(p.name))[-8:])):
                out.append(int(p.name))
        return out

    def app_dirs(self, app_id: str) -> list[Path]:
        """The container log directories of an application (one per container)."""
        return sorted(self.state.glob(f"target/test/data/*/yarn-*/*-logDir-nm-*/{app_id}/container_*"))

    def containers(self, role: str) -> list[dict]:
        """Running containers' JVMs: role 'executor' or 'am' (the cluster-mode driver)."""
        cls = {"executor": "org.apache.spark.executor.YarnCoarseGrainedExecutorBackend",
               "am": "org.apache.spark.deploy.yarn.ApplicationMaster"}[role]
        out = []
        for pid in self.processes():
            cmd = _cmdline(pid)
            if cls not in cmd:
                continue
            cwd = Path(_cwd(pid))  # .../appcache/<app>/<container>
            logs = self.app_dirs(cwd.parent.name)
            log = next((d for d in logs if d.name == cwd.name), None)
            stderr = _read(log / "stderr") if log else ""
            started = re.findall(r"Running task [\d.]+ in stage [\d.]+ \(TID (\d+)\)", stderr)
            done = set(re.findall(r"Finished task [\d.]+ in stage [\d.]+ \(TID (\d+)\)", stderr))
            out.append({"pid": pid, "container": cwd.name, "app": cwd.parent.name, "log": log,
                        "running": [t for t in started if t not in done]})
        return out

    def submit(self, job: str, root: str, sets: list[str], log: Path, spark_args: list[str],
               confs: tuple[str, ...] = (), env: dict[str, str] | None = None) -> subprocess.Popen:
        args = [str(REPO / "spark-submit.sh"), job, "--conf", "conf/yarn.yaml"]
        for c in confs:
            args += ["--conf", c]
        for s in [f"run.root={root}", *sets]:
            args += ["--set", s]
        fh = open(log, "w")  # noqa: SIM115 - the process owns it
        return subprocess.Popen(args + ["--", *spark_args], cwd=REPO, env={**self.env, **(env or {})}, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)


def hdfs_text(path: str) -> str:
    """A file on this YARN's HDFS, through WebHDFS."""
    rel = path[len(NN):] if path.startswith(NN) else path
    url = (f"http://127.0.0.1:{PORTS['REVIEWREC_YARN_NN_HTTP_PORT']}/webhdfs/v1{rel}"
           f"?op=OPEN&user.name={os.environ.get('USER', 'root')}")
    with urllib.request.urlopen(url, timeout=30) as r:  # noqa: S310 - loopback
        return r.read().decode()


@pytest.fixture(scope="module")
def yarn(tmp_path_factory):
    y = Yarn(tmp_path_factory.mktemp("yarn"))
    t0 = time.monotonic()
    try:
        y.script("up")
        # A healthy YARN's status exits 0 before its first application too.
        assert "applications run since up: 0" in y.script("status").stdout
        env_url = y.script("env-archive").stdout.strip()
        print(f"yarn up and environment staged ({env_url}) in {time.monotonic() - t0:.0f}s")
        yield y
    finally:
        y.script("down", check=False)
        left = y.processes()
        if left:
            wait_for(lambda: not y.processes() or None, 30, "YARN's processes to exit")
        assert not y.processes(), f"processes left after yarn down: {y.processes()}"


def _app_id(text: str) -> str:
    m = re.search(r"Submitted application (application_\d+_\d+)", text)
    assert m, text[-3000:]
    return m.group(1)


@pytest.fixture(scope="module")
def yarn_runs(yarn, local_reference, s3_server, tmp_path_factory):
    """The pipeline on YARN in cluster deploy mode (run root on HDFS) with an executor container
    and then the ApplicationMaster SIGKILLed; the causal job in client deploy mode on a run root on
    s3a:// holding the local reference's reviews (equal to the pipeline's, test_yarn_results_equal_local)."""
    base = tmp_path_factory.mktemp("yarn-runs")
    root = f"{NN}/runs/cluster"
    out: dict = {"logs": base, "root": root, "faults": {}}
    log = base / "pipeline.log"
    t0 = time.monotonic()
    proc = yarn.submit("pipeline", root, SMALL + ["run.skip_existing=true"], log, ["--deploy-mode", "cluster"])
    try:
        app = wait_for(lambda: re.search(r"Submitted application (application_\d+_\d+)", _read(log)), 600,
                       "the application to be submitted").group(1)
        out["app"] = app

        def am_log(name: str, attempt: int = 1) -> str:
            return "".join(_read(d / name) for d in yarn.app_dirs(app) if d.name.endswith(f"_{attempt:02d}_000001"))

        # Fault 1: an executor container killed while it runs a preprocess task.
        wait_for(lambda: "[preprocess] preprocess+write ..." in am_log("stdout"), JOB_TIMEOUT, "the preprocess stage")
        victim = wait_for(lambda: next((c for c in yarn.containers("executor") if c["running"]), None), 300,
                          "an executor running a preprocess task")
        os.kill(victim["pid"], signal.SIGKILL)
        out["faults"]["executor"] = victim
        # Fault 2: the ApplicationMaster (the driver) killed once the features stage runs.
        wait_for(lambda: "pipeline: stage features" in am_log("stdout"), JOB_TIMEOUT, "the features stage")
        am = wait_for(lambda: next((c for c in yarn.containers("am") if c["app"] == app), None), 60,
                      "the ApplicationMaster's process")
        os.kill(am["pid"], signal.SIGKILL)
        out["faults"]["am"] = am
        assert finish(proc, JOB_TIMEOUT) == 0, _read(log)[-4000:]
        out["attempt1"] = {"stdout": am_log("stdout", 1), "stderr": am_log("stderr", 1)}
        out["attempt2"] = {"stdout": am_log("stdout", 2), "stderr": am_log("stderr", 2)}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    out["pipeline_seconds"] = round(time.monotonic() - t0, 1)
    # The causal job in client deploy mode: the driver runs here, the executors in YARN, the
    # run root on s3a:// (the keys in the launcher's environment, as on a host with keys).
    t0 = time.monotonic()
    s3, prefix = s3_server.client(), "runs/causal"
    for f in sorted((local_reference / "reviews").rglob("*")):
        if f.is_file() and not f.name.startswith("."):  # not Hadoop's local .crc files
            s3.upload_file(str(f), s3_server.bucket, f"{prefix}/{f.relative_to(local_reference)}")
    out["causal_root"] = f"s3a://{s3_server.bucket}/{prefix}"
    clog = base / "causal.log"
    endpoint = f"spark.conf.spark.hadoop.fs.s3a.endpoint={s3_server.endpoint}"
    proc = yarn.submit("causal", out["causal_root"], [*SMALL, endpoint], clog, [], confs=("conf/s3.yaml",),
                       env=s3_server.credentials)
    assert finish(proc, JOB_TIMEOUT) == 0, _read(clog)[-4000:]
    out["causal_seconds"] = round(time.monotonic() - t0, 1)
    print(f"YARN: pipeline (cluster mode, 2 faults) {out['pipeline_seconds']}s, causal (client mode) "
          f"{out['causal_seconds']}s")
    return out


def test_pipeline_ran_in_cluster_mode_with_the_environment_staged_on_hdfs(yarn_runs):
    log = _read(yarn_runs["logs"] / "pipeline.log")
    assert "--deploy-mode cluster" in log and "--master yarn" in log
    # The packed environment from HDFS (not uploaded per application), the package zip, the jars.
    assert re.search(rf"--archives {NN}/reviewrec/envs/reviewrec-env-\w+-\w+\.tar\.gz#environment", log)
    assert re.search(r"--py-files build/py/[0-9a-f]{16}/reviewrec\.zip", log)
    assert "Source and destination file systems are the same. Not copying" in log
    assert "final status: SUCCEEDED" in log
    # The driver ran in the ApplicationMaster's container with the packed interpreter.
    a2 = yarn_runs["attempt2"]["stdout"]
    assert "on yarn" in a2 and "reviewrec pipeline finished" in a2, a2[-3000:]


def test_yarn_results_equal_local(yarn_runs, local_reference, spark, s3_server):
    """Every output on HDFS equals the local run's, the model included: trained on the train and val
    rows the driver staged for the ranks, read back from HDFS and shipped to the executors to score;
    the causal report on s3a:// equals the local run's."""
    from reviewrec import io

    root = yarn_runs["root"]
    assert root.startswith(f"{NN}/")
    croot = yarn_runs["causal_root"]
    with s3_server.keys_in(spark):  # the causal report on s3a, through the product's readers
        s3_text = lambda url: io.read_text(spark, url)  # noqa: E731
        compare_runs(spark, root, str(local_reference), read_text=hdfs_text, causal_root=croot, causal_text=s3_text)
        # The causal job read the reviews on s3a:// (the launcher's driver, the executors in YARN).
        for study in (p.parent.name for p in local_reference.glob("report/causal/*/causal.json")):
            report = s3_text(f"{croot}/report/causal/{study}/causal.json")
            assert json.loads(report)["input"] == f"{croot}/reviews"
            for key in s3_server.credentials.values():
                assert key not in report and key not in _read(yarn_runs["logs"] / "causal.log")
    # The train job staged the train and val rows from HDFS for the ranks and said so.
    attempt2 = yarn_runs["attempt2"]["stdout"]
    staged = re.search(r"train: staged (\d+) rows \(train (\d+), val (\d+) files\)", attempt2)
    assert staged, attempt2[-3000:]
    fit = io.read_dataset(spark, f"{root}/features", "features").where("split in ('train', 'val')").count()
    assert int(staged[1]) == fit > 0


def task_ends(yarn: Yarn, app: str, attempt: int) -> list[dict]:
    """The application attempt's task-end events from its Spark event log (the driver logs at
    WARN: its log names lost tasks, not finished ones)."""
    logs = sorted((yarn.state / "events").glob(f"{app}_{attempt}*"))
    assert logs, f"no event log for {app} attempt {attempt} in {yarn.state / 'events'}"
    return spark_events(logs[:1], "SparkListenerTaskEnd")


def test_executor_container_killed_mid_preprocess_its_tasks_are_rerun(yarn, yarn_runs):
    """Each task the killed executor was running ended with ExecutorLostFailure (the driver's log
    names it), and its partition ran again to success on another executor."""
    victim = yarn_runs["faults"]["executor"]
    driver = yarn_runs["attempt1"]["stderr"]
    ends = task_ends(yarn, yarn_runs["app"], 1)
    assert victim["running"]
    for tid in map(int, victim["running"]):
        assert re.search(rf"Lost task [\d.]+ in stage [\d.]+ \(TID {tid}\)[^\n]*ExecutorLostFailure", driver), \
            (tid, driver[-4000:])
        lost = next(e for e in ends if e["Task Info"]["Task ID"] == tid)
        assert lost["Task End Reason"]["Reason"] == "ExecutorLostFailure", lost["Task End Reason"]
        assert "Exit status: 137" in lost["Task End Reason"]["Loss Reason"], lost["Task End Reason"]
        # A partition lost with its executor runs again in the same stage, possibly in a later attempt
        # of it (a resubmitted stage runs only its missing partitions: its task indices are not the
        # partitions', hence the partition's ID).
        executor, stage = lost["Task Info"]["Executor ID"], lost["Stage ID"]
        partition = lost["Task Info"]["Partition ID"]
        reruns = [e for e in ends if e["Stage ID"] == stage and e["Task Info"]["Partition ID"] == partition
                  and e["Task Info"]["Task ID"] > tid and e["Task End Reason"]["Reason"] == "Success"]
        assert reruns and all(e["Task Info"]["Executor ID"] != executor for e in reruns), (tid, reruns)
    assert "pipeline: preprocess done" in yarn_runs["attempt1"]["stdout"]


def test_application_master_killed_the_second_attempt_resumes_and_completes(yarn_runs):
    a1, a2 = yarn_runs["attempt1"]["stdout"], yarn_runs["attempt2"]["stdout"]
    # The first attempt died in the features stage: it never finished it.
    assert "pipeline: stage features" in a1 and "reviewrec pipeline finished" not in a1
    # The second resumed: the stages the first completed were skipped (their outputs exist for the
    # same config), the rest ran.
    for stage in ("generate", "ingest", "preprocess", "eda"):
        assert re.search(rf"pipeline: {stage} skipped", a2), (stage, a2[-3000:])
    for stage in ("features", "train", "evaluate", "recommend"):
        assert re.search(rf"pipeline: {stage} done", a2), (stage, a2[-3000:])


def test_max_app_attempts_1_fails_naming_the_lost_attempt(yarn, yarn_runs, tmp_path):
    log = tmp_path / "causal.log"
    proc = yarn.submit("causal", yarn_runs["root"], SMALL, log,
                       ["--deploy-mode", "cluster", "--conf", "spark.yarn.maxAppAttempts=1"])
    try:
        app = wait_for(lambda: re.search(r"Submitted application (application_\d+_\d+)", _read(log)), 600,
                       "the application to be submitted").group(1)
        am = wait_for(lambda: next((c for c in yarn.containers("am") if c["app"] == app), None), 600,
                      "the ApplicationMaster's process")
        os.kill(am["pid"], signal.SIGKILL)
        rc = finish(proc, 600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = _read(log)
    attempt = app.replace("application_", "appattempt_") + "_000001"
    assert rc != 0
    assert re.search(rf"failed 1 times [^\n]*due to AM Container for {attempt} exited with", text), text[-3000:]


DAG_DAY = "2024-03-05"
DAG_JOBS = ("ingest", "preprocess", "features", "recommend")


def test_the_daily_dag_runs_a_day_on_yarn_each_job_an_application_in_cluster_mode(yarn, airflow, s3_server, spark,
                                                                                  tmp_path):
    """`airflow dags test` (dags/reviewrec_daily.py, target yarn) for one day with the run's params
    saying no training and the generate and eda tasks marked successful (train, its faults, eda
    and generate on YARN are the pipeline's above), the run root on s3a:// (the test's S3 server;
    its keys in the scheduler's environment, as on a worker with keys): every other task submits
    its job to this YARN in cluster deploy mode as an application of its own, the driver in its
    ApplicationMaster; the day's input, written to the bucket here by the generator as the DAG's
    generate task would, as an upstream system delivers a day, is ingested (reconciled) and
    carried through to the recommendations on the bucket; each task's log names its report; the
    keys are in no task log, container log or object."""
    from airflow_venv import dags_test
    from reviewrec import generate as G
    from reviewrec import io
    from reviewrec.config import load_config
    from reviewrec.jobs_table import job as spec
    from reviewrec.jobs_table import report_location

    root = f"s3a://{s3_server.bucket}/runs/dag"
    keys = s3_server.credentials
    # One executor of two cores per application (one container start less each; the data is small),
    # the chain without POS + lemma (tagged in the pipeline above); no retries: a failed task fails
    # the test at once.
    settings = {"target": "yarn", "root": root, "start_date": DAG_DAY, "day_key": "input.day", "synthetic_days": 1,
                "conf": ["conf/yarn.yaml", "conf/s3.yaml"], "spark_args": ["--deploy-mode", "cluster"], "retries": 0,
                "sets": [*SMALL, "text.pos_lemma=false",
                         f"spark.conf.spark.hadoop.fs.s3a.endpoint={s3_server.endpoint}",
                         "spark.conf.spark.executor.instances=1", "spark.conf.spark.executor.cores=2"]}
    # The day's files, as the generate task's job makes them (the same settings and day).
    cfg = load_config([str(REPO / "conf" / "local.yaml")],
                      [f"run.root={root}", "synthetic.days=1", f"synthetic.start_day={DAG_DAY}", *settings["sets"],
                       f"input.day={DAG_DAY}"])
    with s3_server.keys_in(spark):
        assert G.run(spark, cfg).good_rows > 500
    t0 = time.monotonic()
    rc, text = dags_test(airflow, DAG_DAY, settings, tmp_path / "dags-test.log", "--params", '{"train": false}',
                         "--skip", "generate|eda", base={**yarn.env, **keys}, timeout=JOB_TIMEOUT)
    print(f"airflow dags test {DAG_DAY} on YARN: {time.monotonic() - t0:.0f}s")
    assert rc == 0, text[-5000:]
    apps = {}
    for j in DAG_JOBS:
        cmd = re.search(rf"spark-submit\.sh {j} --conf conf/yarn\.yaml --conf conf/s3\.yaml --set "
                        rf"run\.root={re.escape(root)} [^\n]*-- --deploy-mode cluster; "
                        rf"echo 'reviewrec {j} report: ([^']+)'", text)
        assert cmd and cmd[1] == report_location(root, spec(j)), (j, cmd)
        # The task's own output: from its command to the report line.
        part = text[cmd.end():text.index(f"reviewrec {j} report: {cmd[1]}", cmd.end())]
        app = re.findall(r"Submitted application (application_\d+_\d+)", part)
        assert len(app) == 1 and "final status: SUCCEEDED" in part, (j, part[-2000:])
        apps[j] = app[0]
        am_stdout = "".join(_read(d / "stdout") for d in yarn.app_dirs(app[0]) if d.name.endswith("_01_000001"))
        assert f"reviewrec {j} finished in" in am_stdout and "on yarn" in am_stdout, (j, am_stdout[-2000:])
    assert len(set(apps.values())) == len(DAG_JOBS), apps
    for j in ("generate", "eda", "train", "evaluate"):
        assert f"spark-submit.sh {j} " not in text, j
    assert "training not due: the run's params say train=False" in text
    assert re.search(rf"--set '?input\.day={DAG_DAY}'? -- --deploy-mode cluster", text)
    s3 = s3_server.client()
    prefix = root.split(f"{s3_server.bucket}/", 1)[1]

    def obj(rel: str) -> str:
        return s3.get_object(Bucket=s3_server.bucket, Key=f"{prefix}/{rel}")["Body"].read().decode()

    ingest = json.loads(obj(spec("ingest").report))
    assert ingest["reconciled"] is True and ingest["accepted"] > 500, ingest
    assert ingest["mode"] == "day" and ingest["day"] == DAG_DAY and list(ingest["days"]) == [DAG_DAY], ingest
    # The recommend report, published as a version of report/recs/ (the task log says so), read
    # through the product's resolution of the version _PUBLISHED names.
    assert f"reviewrec recommend report: {root}/report/recs/<version named in report/recs/_PUBLISHED>/index.html" \
        in text
    with s3_server.keys_in(spark):
        assert "<h1>" in io.read_text(spark, f"{root}/{spec('recommend').report}")
    assert re.fullmatch(r"v\d{8}T\d{6}Z-[0-9a-f]{8}\n", obj("report/recs/_PUBLISHED"))
    # The keys: in no task log, no container log of these applications, no object of the run.
    logs = [text] + [_read(d / name) for a in apps.values() for d in yarn.app_dirs(a) for name in ("stdout", "stderr")]
    objects = s3_server.keys(prefix)
    assert objects and any(k.endswith(".parquet") for k in objects)
    for key in (keys["AWS_ACCESS_KEY_ID"], keys["AWS_SECRET_ACCESS_KEY"]):
        assert not any(key in t for t in logs)
        assert not any(key in obj(k[len(prefix) + 1:]) for k in objects if k.endswith((".json", ".html", ".txt")))


def test_resource_manager_down_fails_within_seconds_naming_the_address(yarn, tmp_path):
    conf = tmp_path / "hadoop-conf"
    conf.mkdir()
    (conf / "yarn-site.xml").write_text("<configuration><property><name>yarn.resourcemanager.address</name>"
                                        "<value>127.0.0.1:18099</value></property></configuration>")
    t0 = time.monotonic()
    res = subprocess.run([str(REPO / "spark-submit.sh"), "ingest", "--conf", "conf/yarn.yaml"], cwd=REPO,
                         env=dict(yarn.env, HADOOP_CONF_DIR=str(conf)), capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert "the YARN ResourceManager 127.0.0.1:18099" in res.stderr and "is not reachable" in res.stderr, res.stderr
    assert time.monotonic() - t0 < 30


def test_yarn_up_is_idempotent_and_names_a_taken_port(yarn, tmp_path):
    res = yarn.script("up")
    assert "yarn already up" in res.stderr
    # Another state directory on the same ports: the port and its owner are named.
    other = dict(yarn.env, REVIEWREC_YARN_DIR=str(tmp_path / "other"))
    res = subprocess.run([str(REPO / "spark-submit.sh"), "yarn", "up"], cwd=REPO, env=other,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    assert f"port {PORTS['REVIEWREC_YARN_NN_PORT']} on 127.0.0.1 (NameNode) is already in use by" in res.stderr
    assert f'pid={yarn.daemon()}' in res.stderr
