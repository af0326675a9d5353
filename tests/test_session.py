"""The session factory: local Python workers run the driver's interpreter."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
from reviewrec.config import load_config
from reviewrec.session import build_session
cfg = load_config([sys.argv[1]], ["spark.app_name=session-test"])
spark = build_session(cfg, "t")
def where(_):
    import sys
    return sys.executable
print("WORKER=" + spark.sparkContext.parallelize([0], 1).map(where).first())
spark.stop()
"""


@pytest.mark.spark
@pytest.mark.slow
def test_local_workers_use_the_driver_interpreter(tmp_path: Path) -> None:
    # A PATH whose first python3 is NOT the driver's (a shim that exits with an error), and no
    # PYSPARK_PYTHON: without the factory's default, the worker would start the shim and fail.
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "python3").write_text("#!/bin/sh\necho 'wrong interpreter' >&2\nexit 3\n")
    (shim / "python3").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")}
    env["PATH"] = f"{shim}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(REPO / "lib")
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(REPO / "conf" / "local.yaml")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    worker = [ln for ln in out.stdout.splitlines() if ln.startswith("WORKER=")]
    assert worker == [f"WORKER={sys.executable}"], out.stdout
