"""The one SparkSession factory.

The master comes only from the config (conf/local.yaml sets local[2]) or from spark-submit;
nothing in the code hard-codes one. The session is created in a job's main() and passed down.

Every session is a Delta Lake session (datasets are Delta tables, reviewrec.io): Delta's SQL
extension and catalog, and the jars setup fetches (Delta Lake, hadoop-aws; reviewrec.jvm) as
spark.jars. jvm_conf() gives those properties without importing Spark, for the launcher, which
passes them to spark-submit (a JVM that spark-submit started takes jars only from its arguments).
"""
from __future__ import annotations

import json
import logging
import os
import socket
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from reviewrec.config import Config
from reviewrec.jvm import SETUP_HINT, JarsMissing, storage_jars

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

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


DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    # The tables' logs are small (one overwrite commit per version): rebuilding a snapshot's
    # state in Delta's default 50 tasks costs more than the work.
    "spark.databricks.delta.snapshotPartitions": "4",
    # Retention of replaced versions, for every table created (reviewrec.io: RETENTION_HOURS).
    "spark.databricks.delta.properties.defaults.deletedFileRetentionDuration": "interval 24 hours",
    "spark.databricks.delta.properties.defaults.logRetentionDuration": "interval 7 days",
    # VACUUM records itself in the history, which tells reviewrec.io when the next one is due.
    "spark.databricks.delta.vacuum.logging.enabled": "true",
}
DELTA_CLASS = "io.delta.tables.DeltaTable"
USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"  # as reviewrec.io's


def jvm_conf(text: Mapping[str, Any], job: str = "") -> dict[str, str]:
    """The Spark properties to set at JVM start: Delta's extension and catalog, spark.jars =
    the fetched storage jars (JarsMissing, naming the setup command, when they are not there)
    plus the text engine's (preprocess/sparknlp_jars.session_conf)."""
    from reviewrec.preprocess.sparknlp_jars import session_conf

    conf = dict(DELTA_CONF)
    engine = session_conf(text, job)
    jars = storage_jars() + [j for j in engine.pop("spark.jars", "").split(",") if j]
    conf.update(engine)
    conf["spark.jars"] = ",".join(jars)
    return conf


def require_delta(spark: SparkSession) -> None:
    """Delta Lake's classes are on the driver's classpath (a session started by spark-submit
    without the storage jars lacks them)."""
    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    try:
        jvm.java.lang.Class.forName(DELTA_CLASS, False, jvm.java.lang.Thread.currentThread().getContextClassLoader())
    except Exception as e:  # noqa: BLE001 - py4j wraps ClassNotFoundException
        raise JarsMissing(f"Delta Lake ({DELTA_CLASS}) is not on this Spark driver's classpath: every dataset is a "
                          f"Delta table. Submit with the jars {SETUP_HINT} fetches (./spark-submit.sh passes them; "
                          f"with spark-submit itself: --jars of `python -m reviewrec.submit engine-conf JOB`'s "
                          f"spark.jars)") from e


def build_session(cfg: Config, app_suffix: str = "") -> SparkSession:
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

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
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        # spark-submit started the JVM with the launcher's jars: only the SQL settings apply now.
        from reviewrec.preprocess.sparknlp_jars import session_conf

        jvm_settings = {**DELTA_CONF, **session_conf(cfg["text"], app_suffix)}
    else:
        jvm_settings = jvm_conf(cfg["text"], app_suffix)
    for key, value in jvm_settings.items():
        builder = builder.config(key, value)
    # Every dataset commit records the config hash (reviewrec.io, run.skip_existing).
    builder = builder.config(USER_METADATA_CONF, json.dumps({"config_hash": cfg.hash()}))
    spark = builder.getOrCreate()
    try:
        check_archives(spark)
        require_delta(spark)
    except (ClusterUnavailable, JarsMissing):
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
