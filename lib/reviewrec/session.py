"""The one SparkSession factory.

The master comes only from the config (conf/local.yaml sets local[2]) or from spark-submit;
nothing in the code hard-codes one. The session is created in a job's main() and passed down.
"""
from __future__ import annotations

import logging
import os
import socket
import sys

from pyspark import SparkConf
from pyspark.sql import SparkSession

from reviewrec.config import Config

log = logging.getLogger(__name__)


class ClusterUnavailable(RuntimeError):
    """The cluster the config names cannot be used (master down, environment archive missing)."""


def check_master_reachable(master: str, timeout: float = 3.0) -> None:
    """For a standalone master spark://host:port, fail within `timeout` seconds naming the URL
    when nothing listens there (Spark itself retries for about a minute before giving up)."""
    if not master.startswith("spark://"):
        return
    for hostport in master[len("spark://"):].rstrip("/").split(","):
        host, _, port = hostport.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=timeout).close()
            return
        except (OSError, ValueError) as e:
            err = e
    raise ClusterUnavailable(f"the Spark master {master} is not reachable ({err}); is the cluster up? "
                             "(./spark-submit.sh cluster status)")


def check_archives(spark: SparkSession) -> None:
    """Every spark.archives entry exists (through Hadoop's FS API, so s3:// and gs:// too), checked
    before any stage runs: executors would otherwise fail on their first task, one by one."""
    archives = spark.sparkContext.getConf().get("spark.archives", "") or ""
    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    hconf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[attr-defined]
    for entry in filter(None, (a.strip() for a in archives.split(","))):
        path = entry.split("#", 1)[0]
        p = jvm.org.apache.hadoop.fs.Path(path if "://" in path else "file://" + os.path.abspath(path))
        if not p.getFileSystem(hconf).exists(p):
            raise ClusterUnavailable(f"environment archive not found: {path} (spark.archives)")


def build_session(cfg: Config, app_suffix: str = "") -> SparkSession:
    spark_cfg = cfg["spark"]
    master = spark_cfg.get("master")
    check_master_reachable(master or SparkConf().get("spark.master", ""))
    if master and master.startswith("local"):
        # Local runs bind to loopback: a laptop's or CI box's hostname may not resolve.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # Local Python workers run the driver's interpreter (the project's venv, with pandas,
        # pyarrow and TensorFlow), not whatever `python3` is first on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    name = spark_cfg["app_name"] + (f"-{app_suffix}" if app_suffix else "")
    builder = SparkSession.builder.appName(name)
    if master:
        builder = builder.master(master)
    for key, value in (spark_cfg.get("conf") or {}).items():
        builder = builder.config(key, str(value).lower() if isinstance(value, bool) else str(value))
    from reviewrec.preprocess.sparknlp_jars import session_conf

    for key, value in session_conf(cfg["text"], app_suffix).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    try:
        check_archives(spark)
    except ClusterUnavailable:
        spark.stop()
        raise
    spark.sparkContext.setLogLevel(os.environ.get("REVIEWREC_SPARK_LOG_LEVEL", "WARN"))
    log.info("Spark %s session %s on %s", spark.version, name, spark.sparkContext.master)
    return spark


# The driver's own interpreter settings: ranks on a cluster take the executors' instead.
DRIVER_ONLY_ENV = ("PYTHONPATH", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "VIRTUAL_ENV", "PYTHONHOME")


def horovod_rank_launch(spark: SparkSession, env: dict[str, str]) -> tuple[dict[str, str], str | None]:
    """(env, executable) for horovod.spark.run's ranks in this session's executors.

    horovod.spark.run starts each rank as `<executable> -m horovod.spark.task.gloo_exec_fn` from
    the Spark task's working directory, with the task's environment overlaid by `env`.
    Local mode: the driver's environment and interpreter (one machine, one venv). On a cluster
    the driver's interpreter and PYTHONPATH are paths on the driver's machine, so the ranks run
    spark.pyspark.python (./environment/bin/python from the packed archive) with PYTHONPATH =
    the --py-files archives, which Spark puts in every executor's working directory."""
    if spark.sparkContext.master.startswith("local"):
        return env, None
    env = {k: v for k, v in env.items() if k not in DRIVER_ONLY_ENV}
    includes = list(getattr(spark.sparkContext, "_python_includes", None) or [])
    if includes:
        env["PYTHONPATH"] = os.pathsep.join(includes)
    return env, spark.sparkContext.getConf().get("spark.pyspark.python", None)
