"""spark-submit.sh: cluster submissions ship lib/, the confs and the environment; jobs fail fast
on bad config before Spark starts."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from reviewrec.submit import packages_for

from conftest import REPO
from reference_runs import SMALL


def _fake_submit(tmp_path: Path) -> dict[str, str]:
    fake = tmp_path / "fake-spark-submit"
    fake.write_text("#!/usr/bin/env bash\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\n")
    fake.chmod(0o755)
    env = dict(os.environ)
    env.update(SPARK_SUBMIT=str(fake), REVIEWREC_SUBMIT_PYTHON=sys.executable)
    return env


def _launch(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / "spark-submit.sh"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cluster_submission_ships_lib_confs_and_env(tmp_path):
    env = _fake_submit(tmp_path)
    env["REVIEWREC_PYENV_ARCHIVE"] = "s3://b/envs/reviewrec.tar.gz"
    res = _launch(["ingest", "--conf", "conf/emr.yaml", "--set", "synthetic.rows=5", "--",
                   "--deploy-mode", "cluster"], env)
    assert res.returncode == 0, res.stderr
    argv = res.stdout.splitlines()
    assert argv[argv.index("--master") + 1] == "yarn"
    pyzip = argv[argv.index("--py-files") + 1]
    assert re.fullmatch(r"build/py/[0-9a-f]{16}/reviewrec\.zip", pyzip), pyzip
    shipped = argv[argv.index("--files") + 1].split(",")
    assert shipped[:2] == ["conf/base.yaml", "conf/emr.yaml"] and shipped[2].startswith("conf/studies/")
    # The Spark NLP models, for a driver that imports the package from the zip.
    assert "lib/sparknlp/models/ud_ewt.tar.xz" in shipped
    assert argv[argv.index("--archives") + 1] == "s3://b/envs/reviewrec.tar.gz#environment"
    assert "spark.pyspark.python=./environment/bin/python" in argv
    assert argv[argv.index("--deploy-mode") + 1] == "cluster"
    job = argv.index("jobs/ingest.py")
    # The job finds the shipped conf by base name in its YARN working directory.
    assert argv[job + 1:] == ["--conf", "emr.yaml", "--set", "synthetic.rows=5"]
    assert "--packages" not in argv
    with zipfile.ZipFile(REPO / pyzip) as z:
        names = set(z.namelist())
    assert {"reviewrec/__init__.py", "reviewrec/config.py", "reviewrec/ingest/job.py"} <= names
    # The same package gives the same zip, which is reused, not rewritten: a driver that is
    # importing from it (another job from this checkout) keeps a whole file.
    inode = os.stat(REPO / pyzip).st_ino
    again = _launch(["ingest", "--conf", "conf/emr.yaml", "--set", "synthetic.rows=5", "--",
                     "--deploy-mode", "cluster"], env).stdout.splitlines()
    assert again[again.index("--py-files") + 1] == pyzip and os.stat(REPO / pyzip).st_ino == inode


def test_standalone_master_comes_from_the_conf_and_client_mode_reads_confs_in_place(tmp_path):
    import socket

    env = _fake_submit(tmp_path)
    env["REVIEWREC_PYENV_ARCHIVE"] = str(tmp_path / "env.tar.gz")
    (tmp_path / "env.tar.gz").write_bytes(b"packed")
    with socket.socket() as listener:  # a live "master" port, so the reachability probe passes
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"spark://127.0.0.1:{listener.getsockname()[1]}"
        res = _launch(["ingest", "--conf", "conf/standalone.yaml", "--set", f"spark.master={url}"], env)
    assert res.returncode == 0, res.stderr
    argv = res.stdout.splitlines()
    assert argv[argv.index("--master") + 1] == url
    assert argv[argv.index("--py-files") + 1].endswith("/reviewrec.zip")
    assert argv[argv.index("--archives") + 1] == f"{tmp_path / 'env.tar.gz'}#environment"
    confs = [argv[i + 1] for i, a in enumerate(argv[:argv.index("jobs/ingest.py")]) if a == "--conf"]
    assert "spark.pyspark.python=./environment/bin/python" in confs
    assert "spark.executor.memory=4g" in confs and "spark.driver.memory=4g" in confs
    # A client-mode driver runs on this machine and reads the conf where it is.
    assert argv[argv.index("jobs/ingest.py") + 1:] == ["--conf", "conf/standalone.yaml", "--set", f"spark.master={url}"]


def test_cluster_submission_fails_fast_naming_a_down_master_or_a_missing_archive(tmp_path):
    import socket
    import time

    env = _fake_submit(tmp_path)
    env["REVIEWREC_PYENV_ARCHIVE"] = "none"
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    res = _launch(["ingest", "--conf", "conf/standalone.yaml", "--set", f"spark.master=spark://127.0.0.1:{port}"], env)
    assert res.returncode != 0 and time.perf_counter() - t0 < 30
    assert f"spark://127.0.0.1:{port} is not reachable" in res.stderr
    env["REVIEWREC_PYENV_ARCHIVE"] = str(tmp_path / "no-such-env.tar.gz")
    res = _launch(["ingest", "--conf", "conf/emr.yaml"], env)
    assert res.returncode != 0
    assert f"environment archive not found: {tmp_path / 'no-such-env.tar.gz'}" in res.stderr
    assert "--master" not in res.stdout  # nothing was submitted


def test_help_is_the_usage_text_only():
    res = subprocess.run([str(REPO / "spark-submit.sh"), "--help"], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0
    lines = res.stdout.splitlines()
    assert lines[0] == "reviewrec launcher." and "-- --deploy-mode cluster" in lines[-1]
    for code in ("set -euo pipefail", "RR_ROOT=", "source ", "usage()"):
        assert code not in res.stdout
    assert "cluster up|down|status|pack" in res.stdout


def test_unknown_job_and_bad_arguments_are_explained(tmp_path):
    env = _fake_submit(tmp_path)
    res = _launch(["ingestt", "--conf", "conf/emr.yaml"], env)
    assert res.returncode != 0 and "unknown job 'ingestt'" in res.stderr and "ingest" in res.stderr
    res = _launch(["ingest", "--conf", "conf/emr.yaml", "--bogus"], env)
    assert res.returncode != 0 and "unexpected argument '--bogus'" in res.stderr


def test_packages_only_for_sparknlp_without_local_jar():
    assert packages_for({"text": {"engine": "builtin"}}) == ""
    assert packages_for({"text": {"engine": "sparknlp", "sparknlp_jar": None,
                                  "sparknlp_package": "com.johnsnowlabs.nlp:spark-nlp_2.12:5.5.3"}}) \
        == "com.johnsnowlabs.nlp:spark-nlp_2.12:5.5.3"
    assert packages_for({"text": {"engine": "sparknlp", "sparknlp_jar": "/jars/nlp.jar",
                                  "sparknlp_package": "x"}}) == ""


def test_job_rejects_bad_config_before_starting_spark(tmp_path):
    res = subprocess.run([sys.executable, str(REPO / "jobs" / "ingest.py"), "--conf", "conf/local.yaml",
                          "--set", "input.formt=tsv"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "unknown config key 'input.formt'" in res.stderr and "--set input.formt=tsv" in res.stderr
    assert "SparkContext" not in res.stderr and "Spark 3.5" not in res.stderr


@pytest.mark.spark
@pytest.mark.slow
def test_pipeline_end_to_end_and_skip_existing(spark, local_reference):
    """The shared local run (tests/reference_runs.py: `./spark-submit.sh pipeline` on SMALL) ran
    every stage and wrote every stage's outputs; the same config again with run.skip_existing on
    that root finds every stage done and runs none; a different config finds none done."""
    from reviewrec.config import load_config
    from reviewrec.pipeline import STAGES, _done, run

    first = json.loads((local_reference / "report" / "pipeline.json").read_text())
    assert list(first["stage_seconds"]) == [s.name for s in STAGES] and first["skipped_stages"] == []
    for s in STAGES:
        for out in s.outputs:
            assert (local_reference / out).exists(), out
    assert (local_reference / "report" / "eda" / "index.html").exists()
    sets = [f"run.root={local_reference}", *SMALL, "run.skip_existing=true"]
    same = load_config([str(REPO / "conf" / "local.yaml")], sets)
    assert same.hash() == first["config_hash"]
    changed = load_config([str(REPO / "conf" / "local.yaml")], sets + ["synthetic.seed=7"])
    assert all(_done(spark, same, s) for s in STAGES if s.when(same))
    assert not any(_done(spark, changed, s) for s in STAGES if s.when(changed))
    again = run(spark, same)
    assert again["stage_seconds"] == {} and again["skipped_stages"] == [s.name for s in STAGES]


def test_cluster_up_names_a_port_that_is_taken(tmp_path):
    import socket

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["REVIEWREC_CLUSTER_DIR"] = str(tmp_path / "state")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        res = _launch(["cluster", "up", "--conf", "conf/standalone.yaml", "--set", f"spark.master=spark://127.0.0.1:{port}",
                       "--set", "spark.conf.spark.master.ui.port=1", "--set", "spark.conf.spark.worker.ui.port=2"], env)
    assert res.returncode != 0
    assert f"port {port} on 127.0.0.1 (master) is already in use" in res.stderr
    assert not list((tmp_path / "state" / "pids").glob("*.pid"))  # nothing was started
    res = _launch(["cluster", "status"], env)
    assert res.returncode == 3 and "cluster: down" in res.stdout
