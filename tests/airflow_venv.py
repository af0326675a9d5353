"""The Airflow venv for the DAG's tests (a pytest plugin, conftest.py): made once by
`./spark-submit.sh airflow setup` (cached in ~/.cache/reviewrec/airflow: ~2.5 GB, 2-4 minutes the
first time), not by the project's setup: only these tests need it, and a scheduler host has it
apart from the jobs' environment. The test session gets its own AIRFLOW_HOME (metadata DB) in a
temporary directory, shared by tests/test_airflow.py (local target) and tests/test_yarn.py (the
DAG against YARN).
"""
from __future__ import annotations

import json
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from reference_runs import clean_env

REPO = Path(__file__).resolve().parents[1]


def airflow_env(home: Path, settings: dict | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of `./spark-submit.sh airflow ...`: `base` (default: a clean environment),
    the session's AIRFLOW_HOME and the DAG's settings (REVIEWREC_DAG_CONFIG) when given."""
    env = dict(base) if base is not None else clean_env()
    env["REVIEWREC_AIRFLOW_HOME"] = str(home)
    env.pop("REVIEWREC_DAG_CONFIG", None)
    if settings is not None:
        env["REVIEWREC_DAG_CONFIG"] = json.dumps(settings)
    return env


@pytest.fixture(scope="session")
def airflow(tmp_path_factory) -> dict:
    """The Airflow venv (made once, cached) and a metadata DB of this test session's own."""
    home = tmp_path_factory.mktemp("airflow-home")
    t0 = time.monotonic()
    p = subprocess.run([str(REPO / "spark-submit.sh"), "airflow", "setup"], cwd=REPO, env=airflow_env(home),
                       capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, f"airflow setup failed:\n{p.stderr[-4000:]}"
    env_lines = subprocess.run([str(REPO / "spark-submit.sh"), "airflow", "env"], cwd=REPO, env=airflow_env(home),
                               capture_output=True, text=True, check=True).stdout
    # `export KEY=value` lines (shell-quoted): AIRFLOW_HOME, the DAG folder, the DB, the venv.
    exports = dict(shlex.split(line[len("export "):])[0].split("=", 1) for line in env_lines.splitlines()
                   if line.startswith("export ") and not line.startswith("export PATH="))
    venv = Path(exports["REVIEWREC_AIRFLOW_VENV"])
    assert exports["AIRFLOW_HOME"] == str(home)
    print(f"airflow setup: {time.monotonic() - t0:.0f}s ({venv})")
    return {"home": home, "venv": venv, "python": venv / "bin" / "python", "exports": exports}


def dags_test(airflow: dict, day: str, settings: dict, log: Path, *args: str, base: dict[str, str] | None = None,
              timeout: float = 1800) -> tuple[int, str]:
    """`./spark-submit.sh airflow dags-test DAY ARGS` with these settings; its exit code and output
    (also written to `log`)."""
    from reference_runs import finish

    env = airflow_env(airflow["home"], settings, base)
    with open(log, "w") as fh:
        proc = subprocess.Popen([str(REPO / "spark-submit.sh"), "airflow", "dags-test", day, *args], cwd=REPO,
                                env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        rc = finish(proc, timeout=timeout)
    return rc, log.read_text(errors="replace")
