"""A successful run prints no traceback: py4j's resend of a command over a connection the JVM
closed (what Horovod's Spark thread leaves behind in the train stage) is logged in one line.

The driver runs in a child process (this file as a script) with the project's logging, closes
the socket of its pooled py4j connection, then runs a Spark job: py4j finds the connection
dead, resends the command on a new one, and the job succeeds."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.spark]


def child() -> None:
    import socket

    sys.path.insert(0, str(REPO / "lib"))
    from pyspark.sql import SparkSession

    from reviewrec.runtime import setup_logging

    setup_logging()
    spark = (SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false").getOrCreate())
    client = spark.sparkContext._gateway._gateway_client
    conn = client._get_connection()
    conn.socket.shutdown(socket.SHUT_RDWR)  # the JVM's end is gone, as after Horovod's thread
    client._give_back_connection(conn)
    print("rows", spark.range(3).count(), flush=True)
    spark.stop()


def test_py4j_resend_is_one_line_not_a_traceback():
    res = subprocess.run([str(REPO / ".venv" / "bin" / "python"), __file__], cwd=REPO, capture_output=True,
                         text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "rows 3" in res.stdout
    # the fault landed: py4j resent the command, and said so in one line
    assert "py4j: a connection closed by the JVM was replaced and the command resent (" in res.stderr
    assert "Traceback" not in res.stderr and "Exception while sending command" not in res.stderr


if __name__ == "__main__":
    child()
