"""The one SparkSession factory.

The master comes only from the config (conf/local.yaml sets local[2]) or from spark-submit;
nothing in the code hard-codes one. The session is created in a job's main() and passed down.
"""
from __future__ import annotations

import logging
import os
import sys

from pyspark.sql import SparkSession

from reviewrec.config import Config

log = logging.getLogger(__name__)


def build_session(cfg: Config, app_suffix: str = "") -> SparkSession:
    spark_cfg = cfg["spark"]
    master = spark_cfg.get("master")
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
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("REVIEWREC_SPARK_LOG_LEVEL", "WARN"))
    log.info("Spark %s session %s on %s", spark.version, name, spark.sparkContext.master)
    return spark
