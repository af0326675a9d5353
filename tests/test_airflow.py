"""The daily DAG (dags/reviewrec_daily.py) in Apache Airflow, from its own venv (lib/airflow.sh):
it imports with no errors and nothing heavy, its EMR and Dataproc operators carry exactly the
spark-submit arguments the launcher runs, and its tasks bring days in for real in local mode
(day 1, day 2, day 2 again: the same end as one run over both days). The DAG's whole day against
YARN in cluster deploy mode is in tests/test_yarn.py (it needs that module's cluster).

The Airflow venv and the session's metadata DB: tests/airflow_venv.py.
"""
from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO
from airflow_venv import airflow_env, dags_test
from reference_runs import SMALL, clean_env
from reviewrec.jobs_table import job as spec

sys.path.insert(0, str(REPO / "dags"))
import reviewrec_tasks as T  # noqa: E402 - the DAG's own helpers, Airflow-free

ARCHIVE = "s3://bucket/envs/reviewrec-env.tar.gz"
DAY = "2024-03-05"
HEAVY = ("pyspark", "py4j", "tensorflow", "keras", "horovod", "numpy", "pandas", "scipy", "sklearn", "pyarrow",
         "matplotlib")
# The jobs' code: none of it is imported by the DAG (the job table is).
REVIEWREC_ALLOWED = {"reviewrec", "reviewrec.jobs_table"}

INSPECT = r'''
import json, sys
from airflow.dag_processing.dagbag import DagBag
loaded_before = set(sys.modules)
bag = DagBag(dag_folder=sys.argv[1])
new = sorted(set(sys.modules) - loaded_before)
dag = bag.get_dag("reviewrec_daily")
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "new_modules": new,
       "all_modules": sorted(sys.modules)}
if dag is not None:
    ctx = {"ds": sys.argv[2]}
    ops = {}
    for t in dag.tasks:
        d = {"type": type(t).__name__, "upstream": sorted(t.upstream_task_ids), "retries": t.retries,
             "timeout_s": t.execution_timeout.total_seconds() if t.execution_timeout else None,
             "trigger_rule": str(t.trigger_rule)}
        if d["type"] == "BashOperator":
            d["bash_command"] = t.render_template(t.bash_command, ctx)
            d["env"] = t.env
        elif d["type"] == "EmrAddStepsOperator":
            d["steps"] = t.render_template(t.steps, ctx)
            d["job_flow_id"] = t.job_flow_id
            d["wait_for_completion"] = t.wait_for_completion
        elif d["type"] == "DataprocSubmitJobOperator":
            d["job"] = t.render_template(t.job, ctx)
            d["region"] = t.region
            d["project_id"] = t.project_id
        ops[t.task_id] = d
    out["ops"] = ops
    out["order"] = [t.task_id for t in dag.topological_sort()] if hasattr(dag, "topological_sort") else None
    out["max_active_runs"] = dag.max_active_runs
    deadlines = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline] if dag.deadline else []
    out["deadline"] = deadlines[0].interval.total_seconds() if deadlines else None
print("INSPECT-RESULT " + json.dumps(out))
'''


def _inspect(airflow: dict[str, Path], settings: dict | None, dags: Path = REPO / "dags", day: str = DAY) -> dict:
    env = {**airflow_env(airflow["home"], settings), **airflow["exports"]}
    out = subprocess.run([str(airflow["python"]), "-c", INSPECT, str(dags), day], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    line = next((x for x in out.stdout.splitlines() if x.startswith("INSPECT-RESULT ")), None)
    assert line, f"the DAG inspection failed (rc {out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return json.loads(line[len("INSPECT-RESULT "):])


def _assert_light(result: dict, launcher: bool) -> None:
    """No import errors; no Spark, TensorFlow, numpy or pandas in the parsing process; of the
    package only the job table; for the launcher's targets nothing but Airflow besides."""
    assert result["errors"] == {}, result["errors"]
    tops = {m.split(".")[0] for m in result["all_modules"]}
    assert not tops & set(HEAVY), sorted(tops & set(HEAVY))
    ours = {m for m in result["all_modules"] if m == "reviewrec" or m.startswith("reviewrec.")}
    assert ours == REVIEWREC_ALLOWED, sorted(ours)
    if launcher:
        new_tops = {m.split(".")[0] for m in result["new_modules"] if not m.startswith("unusual_prefix_")}
        assert new_tops <= {"airflow", "reviewrec", "reviewrec_tasks", "packaging"}, sorted(new_tops)


def test_job_table_is_the_pipelines_stages():
    from reviewrec import jobs_table, pipeline

    assert [(s.name, s.target, s.outputs) for s in pipeline.STAGES] \
        == [(j.name, j.target, j.outputs) for j in jobs_table.JOBS]
    for j in jobs_table.JOBS:
        assert (REPO / "jobs" / f"{j.name}.py").is_file(), j.name
    # The job table imports nothing of the package (a fresh interpreter, the module alone).
    code = ("import sys; sys.path.insert(0, 'lib'); import reviewrec.jobs_table; "
            "print(sorted(m for m in sys.modules if m.startswith(('reviewrec', 'pyspark', 'yaml'))))")
    mods = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert mods.strip() == "['reviewrec', 'reviewrec.jobs_table']"


def test_settings_are_validated_naming_the_key():
    with pytest.raises(T.SettingsError, match="unknown setting.*'taget'"):
        T.resolve_settings({"taget": "emr"}, "x.json")
    with pytest.raises(T.SettingsError, match="target = 'k8s'"):
        T.resolve_settings({"target": "k8s"}, "x.json")
    with pytest.raises(T.SettingsError, match="no spark-submit arguments .*airflow bundle"):
        T.resolve_settings({"target": "emr", "root": "s3://b/r", "emr": {"cluster_id": "j-1"}}, "x.json")
    with pytest.raises(T.SettingsError, match="run.root"):
        T.resolve_settings({"sets": ["run.root=/x"]}, "x.json")


def test_training_schedule_and_the_day_argument():
    s = T.resolve_settings({"start_date": "2024-03-01", "train_every_days": 7, "root": "/nonexistent/r"})
    assert T.train_due(s, "2024-03-08", None, lambda: True)[0]          # day 7: on the schedule
    assert not T.train_due(s, "2024-03-09", None, lambda: True)[0]      # off it, a model exists
    assert T.train_due(s, "2024-03-09", None, lambda: False)[0]         # off it, no model yet
    assert not T.train_due(s, "2024-03-08", False, lambda: True)[0]     # the run's params win
    assert T.train_due(s, "2024-03-09", True, lambda: True)[0]
    jobs = {j.name: j for j in T.jobs_for(s)}
    assert T.day_args(s, jobs["ingest"], DAY) == ["--set", f"input.day={DAY}"]
    assert T.day_args(s, jobs["features"], DAY) == []
    # The synthetic demo's generator days start at the DAG's start date.
    assert "synthetic.start_day=2024-03-01" in T.app_args(s, jobs["generate"], DAY)
    real = T.resolve_settings({"start_date": "2024-03-01", "synthetic": False, "root": "/r"})
    assert [j.name for j in T.jobs_for(real)][0] == "ingest"


def test_submit_args_prints_what_the_launcher_runs(tmp_path):
    """`./spark-submit.sh submit-args` (the bundle's source) prints exactly the command a job line
    runs: here the launcher runs a spark-submit that prints its arguments."""
    fake = tmp_path / "spark-submit"
    fake.write_text("#!/usr/bin/env bash\nprintf '%s\\n' \"$0\" \"$@\"\n")
    fake.chmod(0o755)
    env = clean_env()
    env.update(SPARK_SUBMIT=str(fake), REVIEWREC_PYENV_ARCHIVE=ARCHIVE,
               REVIEWREC_YARN_DIR=str(tmp_path / "no-yarn"))
    line = ["ingest", "--conf", "conf/emr.yaml", "--set", "run.root=s3://b/r", "--", "--deploy-mode", "cluster"]
    ran = subprocess.run([str(REPO / "spark-submit.sh"), *line], cwd=REPO, env=env, capture_output=True, text=True)
    printed = subprocess.run([str(REPO / "spark-submit.sh"), "submit-args", *line], cwd=REPO, env=env,
                             capture_output=True, text=True)
    assert ran.returncode == 0 and printed.returncode == 0, ran.stderr + printed.stderr
    assert printed.stdout == ran.stdout
    assert printed.stdout.splitlines()[-5:] == ["jobs/ingest.py", "--conf", "emr.yaml", "--set", "run.root=s3://b/r"]
    # Local mode too (no cluster conf): the .venv's spark-submit with the jars.
    local = subprocess.run([str(REPO / "spark-submit.sh"), "submit-args", "eda", "--set", "run.root=/r"], cwd=REPO,
                           env=clean_env(), capture_output=True, text=True)
    argv = local.stdout.splitlines()
    assert argv[0].endswith(".venv/bin/spark-submit")
    assert argv[-5:] == ["jobs/eda.py", "--conf", "conf/local.yaml", "--set", "run.root=/r"]


def _bundle(tmp_path: Path, target: str, extra: dict) -> tuple[Path, dict]:
    settings = tmp_path / f"{target}-settings.json"
    settings.write_text(json.dumps({**extra, "day_key": "input.day"}))
    out = tmp_path / f"bundle-{target}"
    env = clean_env()
    env["REVIEWREC_PYENV_ARCHIVE"] = ARCHIVE
    p = subprocess.run([str(REPO / "spark-submit.sh"), "airflow", "bundle", "--target", target,
                        "--code-uri", f"{'s3' if target == 'emr' else 'gs'}://bucket/reviewrec/code/v1",
                        "--root", f"{'s3' if target == 'emr' else 'gs'}://bucket/reviewrec/runs/prod",
                        "--conf", f"conf/{target}.yaml", "--set", "recsys.top_n=20", "--settings", str(settings),
                        "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return out, json.loads((out / "dags" / "reviewrec_dag.json").read_text())


def _launcher_ran(command: str, tmp_path: Path) -> list[str]:
    """What the yarn target's task runs: its bash command, with a spark-submit that prints its
    arguments in place of the cluster's."""
    fake = tmp_path / "spark-submit"
    fake.write_text("#!/usr/bin/env bash\nprintf 'ARG %s\\n' \"$@\"\n")
    fake.chmod(0o755)
    env = clean_env()
    env.update(SPARK_SUBMIT=str(fake), REVIEWREC_PYENV_ARCHIVE=ARCHIVE, REVIEWREC_YARN_DIR=str(tmp_path / "no-yarn"))
    p = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return [x[4:] for x in p.stdout.splitlines() if x.startswith("ARG ")]


def test_emr_and_dataproc_operators_get_the_launchers_arguments(airflow, tmp_path):
    """Per job, the EMR step's and the Dataproc job's spark-submit arguments are the ones the
    launcher runs for the same conf and day (the yarn target's task), with the shipped files at
    their uploaded URIs: the same package zip, confs, models, jars, archive and Spark conf."""
    for target, extra in (("emr", {"emr": {"cluster_id": "j-2AXXXXXXGAPLF"}}),
                          ("dataproc", {"dataproc": {"project_id": "proj", "region": "europe-west1",
                                                     "cluster_name": "reviewrec"}})):
        out, written = _bundle(tmp_path, target, extra)
        uploads = dict(line.split(" -> ") for line in (out / "UPLOADS").read_text().splitlines())
        # The uploaded files are the launcher's, byte for byte.
        for local, uri in uploads.items():
            rel = uri.split("/code/v1/", 1)[1]
            assert hashlib.sha256((out / "upload" / rel).read_bytes()).digest() \
                == hashlib.sha256(Path(local).read_bytes()).digest(), local
        # The bundled DAG folder imports in Airflow with nothing heavy (the provider aside).
        remote = _inspect(airflow, None, dags=out / "dags")
        _assert_light(remote, launcher=False)
        # The same settings on the yarn target: the launcher itself.
        local_settings = {"target": "yarn", "conf": [f"conf/{target}.yaml"], "root": written["root"],
                          "sets": ["recsys.top_n=20"], "spark_args": ["--deploy-mode", "cluster"], "synthetic": False,
                          "day_key": written["day_key"]}
        local = _inspect(airflow, local_settings)
        _assert_light(local, launcher=True)
        jobs = [j.name for j in T.jobs_for(T.resolve_settings(local_settings))]
        assert [t for t in remote["ops"] if t != "train_due"] == jobs
        # Every job's arguments come from the same launcher call; two are run here (one that
        # takes the day, one that does not) to keep the test's time down.
        for name in ("ingest", "recommend"):
            ran = _launcher_ran(local["ops"][name]["bash_command"], tmp_path)
            expected, _ = T.map_local_paths(ran, REPO, written["code_uri"])
            assert (f"input.day={DAY}" in expected) == (name == "ingest" and written["day_key"] is not None), name
            op = remote["ops"][name]
            if target == "emr":
                assert op["type"] == "EmrAddStepsOperator" and op["job_flow_id"] == "j-2AXXXXXXGAPLF"
                step = op["steps"][0]["HadoopJarStep"]
                assert step["Jar"] == "command-runner.jar"
                assert step["Args"] == ["spark-submit", *expected], name
            else:
                assert op["type"] == "DataprocSubmitJobOperator" and op["region"] == "europe-west1"
                job = op["job"]["pyspark_job"]
                opts = dict(zip(ran[::2], ran[1::2], strict=False))
                main = ran.index(f"jobs/{name}.py")
                assert job["main_python_file_uri"] == f"{written['code_uri']}/jobs/{name}.py"
                assert job["args"] == ran[main + 1:], name
                assert job["python_file_uris"] == [f"{written['code_uri']}/{opts['--py-files']}"]
                assert job["file_uris"] == [f"{written['code_uri']}/{f}" for f in opts["--files"].split(",")]
                assert job["archive_uris"] == [f"{ARCHIVE}#environment"]
                confs = dict(ran[i + 1].split("=", 1) for i in range(main) if ran[i] == "--conf")
                jars = confs.pop("spark.jars").split(",")
                assert job["properties"]["spark.jars"].split(",") \
                    == [uploads[j] for j in jars]
                assert {k: v for k, v in job["properties"].items() if k not in ("spark.jars",
                                                                                  "spark.submit.deployMode")} == confs
                assert job["properties"]["spark.submit.deployMode"] == "cluster"
                assert job == T.pyspark_job(expected)


def test_dag_parses_light_and_in_job_table_order(airflow):
    settings = {"target": "local", "root": "/tmp/reviewrec-unused", "start_date": "2024-03-01", "deadline_hours": 20}
    r = _inspect(airflow, settings)
    _assert_light(r, launcher=True)
    ops = r["ops"]
    chain = ["generate", "ingest", "preprocess", "eda", "features", "train_due", "train", "evaluate", "recommend"]
    assert list(ops) == chain
    for before, after in zip(chain, chain[1:], strict=False):
        assert ops[after]["upstream"] == [before], (after, ops[after]["upstream"])
    assert ops["train_due"]["type"] == "ShortCircuitOperator"
    assert ops["recommend"]["trigger_rule"] in ("none_failed", "TriggerRule.NONE_FAILED")
    assert ops["train"]["timeout_s"] == T.TIMEOUTS["train"] * 60 and ops["ingest"]["retries"] == 2
    assert r["max_active_runs"] == 1 and r["deadline"] == 20 * 3600
    argv = shlex.split(ops["ingest"]["bash_command"].split("; ")[2])
    assert argv[:2] == [f"{REPO}/spark-submit.sh", "ingest"] and argv[-2:] == ["--set", f"input.day={DAY}"]


DAYS = ("2024-03-04", "2024-03-05")
# Days brought in by ingest and preprocess alone (a backfill's days before its last full day).
INCREMENTAL_ONLY = "eda|features|train_due|train|evaluate|recommend"
TABLES = ("reviews", "tokens", "quarantine", "duplicates", "ingest_days")


def _rows(spark, path: Path, drop: tuple[str, ...] = ()) -> list[tuple]:
    from reviewrec import io

    df = io.read_dataset(spark, str(path), "the run")
    cols = sorted(c for c in df.columns if c not in drop)
    return sorted(tuple(repr(r[c]) for c in cols) for r in df.collect())


def test_dag_tasks_bring_in_day_1_day_2_and_a_rerun_of_day_2_like_one_run_over_both(airflow, spark, tmp_path):
    """The DAG's own tasks, local target, small data: `airflow dags test` for day 1, day 2 and
    day 2 again (generate, ingest and preprocess run, each its own Spark application; the later
    tasks, and the rerun's generate and preprocess, marked successful by --skip). The rerun's
    ingest changes no table (the same Delta versions) and reads no file (a preprocess rerun that
    tokenises nothing is tests/test_incremental.py's); the root ends with the reviews, tokens and
    quarantine of one run over both days (the jobs in this process on another root), each day's
    ledger row, and each task's log naming its report."""
    from reviewrec import generate as G
    from reviewrec import io
    from reviewrec.config import load_config
    from reviewrec.ingest import job as ingest
    from reviewrec.preprocess import job as prep

    root = tmp_path / "run"
    # The chain without POS + lemma: the same by-day path at a fraction of the tagging time.
    sets = [*SMALL, "synthetic.rows=800", "text.pos_lemma=false"]
    settings = {"target": "local", "root": str(root), "start_date": DAYS[0], "day_key": "input.day",
                "synthetic_days": len(DAYS), "sets": sets, "retries": 0}
    logs, versions, t0 = {}, [], time.monotonic()
    # The rerun of day 2 is ingest's: its files are there (no generate) and nothing new reaches
    # preprocess.
    skips = [INCREMENTAL_ONLY, INCREMENTAL_ONLY, f"generate|preprocess|{INCREMENTAL_ONLY}"]
    for i, day in enumerate((*DAYS, DAYS[1])):
        rc, logs[i] = dags_test(airflow, day, settings, tmp_path / f"dags-test-{i}.log", "--skip", skips[i])
        assert rc == 0, logs[i][-5000:]
        versions.append({t: io.table_version(spark, str(root / t)) if (root / t / "_delta_log").is_dir() else None
                         for t in TABLES})
    print(f"airflow dags test: days 1, 2 and day 2 again in {time.monotonic() - t0:.0f}s")
    for i, day in enumerate((*DAYS, DAYS[1])):
        text = logs[i]
        for j in ("generate", "ingest", "preprocess") if i < 2 else ("ingest",):
            assert re.search(rf"spark-submit\.sh {j} --conf conf/local\.yaml --set run\.root={re.escape(str(root))}"
                             rf" .*--set '?input\.day={day}'?;", text), (day, j)
            assert f"reviewrec {j} finished in" in text, (day, j)
            assert f"reviewrec {j} report: {root}/{spec(j).report}" in text, (day, j)
        for j in skips[i].split("|"):
            assert f"spark-submit.sh {j} " not in text, (day, j)
    assert not (root / "features").exists() and not (root / "report" / "eda").exists()
    # Day 2 again: nothing read, nothing written.
    assert versions[2] == versions[1] and versions[1]["reviews"] > versions[0]["reviews"], versions
    rerun = json.loads((root / "report" / "ingest.json").read_text())
    assert rerun["this_run"]["files_read"] == 0 and rerun["this_run"]["files_already_ingested"] > 0, rerun
    ledger = io.read_dataset(spark, str(root / "ingest_days"), "ingest").toPandas()
    assert sorted(str(d) for d in ledger["day"]) == list(DAYS), ledger
    # One run over both days (input.day unset), the jobs called here on another root.
    whole = tmp_path / "whole"
    cfg = load_config([str(REPO / "conf" / "local.yaml")],
                      [f"run.root={whole}", f"synthetic.days={len(DAYS)}", f"synthetic.start_day={DAYS[0]}", *sets])
    G.run(None, cfg)
    ingest.run(spark, cfg)
    prep.run(spark, cfg)
    for name, drop in (("reviews", ()), ("tokens", ()), ("quarantine", ("source_file",))):
        dag_rows = _rows(spark, root / name, drop)
        assert dag_rows, name
        assert dag_rows == _rows(spark, whole / name, drop), name


def test_airflow_commands_name_what_is_wrong(tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess:
        env = clean_env()
        env["REVIEWREC_PYENV_ARCHIVE"] = ARCHIVE
        return subprocess.run([str(REPO / "spark-submit.sh"), "airflow", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)

    r = run("dags-test", "2024-3-5")
    assert r.returncode != 0 and "the day must be YYYY-MM-DD, got '2024-3-5'" in r.stderr
    r = run("bundle", "--target", "local", "--code-uri", "s3://b/c", "--root", "s3://b/r", "--conf", "conf/emr.yaml")
    assert r.returncode != 0 and "--target emr or --target dataproc" in r.stderr
    r = run("bundle", "--target", "emr", "--root", "s3://b/r", "--conf", "conf/emr.yaml")
    assert r.returncode != 0 and "--code-uri" in r.stderr
    # Client deploy mode: the driver would run this machine's Python on the cluster.
    settings = tmp_path / "s.json"
    settings.write_text(json.dumps({"emr": {"cluster_id": "j-1"}}))
    r = run("bundle", "--target", "emr", "--code-uri", "s3://b/c", "--root", "s3://b/r", "--conf", "conf/emr.yaml",
            "--settings", str(settings), "--out", str(tmp_path / "out"), "--", "--deploy-mode", "client")
    assert r.returncode != 0 and "spark.pyspark.driver.python names a path on this machine" in r.stderr, r.stderr
    r = run("frobnicate")
    assert r.returncode == 2 and "usage: ./spark-submit.sh airflow" in r.stderr
    with pytest.raises(ValueError, match="--supervise has no Dataproc PySparkJob field"):
        T.pyspark_job(["--master", "yarn", "--supervise", "true", "main.py"])
    with pytest.raises(ValueError, match="not --master local"):
        T.pyspark_job(["--master", "local[2]", "main.py"])
