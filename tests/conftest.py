"""Shared fixtures: one local[2] SparkSession for the whole run, temp run roots, real data paths."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["s3server", "reference_runs", "airflow_venv", "model_runs"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Python workers start from the environment: let them import test modules (UDFs defined in
# tests are pickled by reference) and the package, whether or not it is pip-installed.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(REPO / "tests"), str(REPO / "lib")] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)


def pytest_configure(config: pytest.Config) -> None:
    for marker in (
        "spark: needs the shared SparkSession",
        "slow: takes more than ~20 s",
        "integration: reads the real data in ../shared/data",
        "horovod: runs distributed training with horovod",
        "gpu: needs a GPU",
        "cluster: runs on the Spark standalone cluster tests/test_cluster.py starts",
    ):
        config.addinivalue_line("markers", marker)


def shared_data(*parts: str) -> Path:
    """Path under ../shared/data; skips the test (with the path) when the data is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not present: {p} (tests read it from ../shared/data)")
    return p


@pytest.fixture(scope="session")
def spark():
    from reviewrec.config import load_config
    from reviewrec.session import build_session

    cfg = load_config(
        [str(REPO / "conf" / "local.yaml")],
        ["spark.conf.spark.sql.shuffle.partitions=4", "spark.app_name=reviewrec-tests"],
    )
    session = build_session(cfg, "pytest")
    yield session
    session.stop()


@pytest.fixture()
def run_root(tmp_path: Path) -> str:
    return str(tmp_path / "run")
