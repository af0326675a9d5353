"""Helpers for spark-submit.sh and lib/cluster.sh that need the effective config
(run as `python -m reviewrec.submit`).

    python -m reviewrec.submit packages [--conf F ...] [--set k=v ...]
        prints the --packages coordinates the config needs (Spark NLP's when text.engine is
        sparknlp and no local jar is configured), or nothing.
    python -m reviewrec.submit master [--conf F ...] [--set k=v ...]
        prints the master spark-submit gets: spark.master, or `yarn` when the config sets none
        (EMR, Dataproc).
    python -m reviewrec.submit spark-conf [--conf F ...] [--set k=v ...]
        prints spark.conf as key=value lines, for spark-submit --conf (settings such as
        spark.driver.memory only take effect when the JVM starts).
    python -m reviewrec.submit cluster [--conf F ...] [--set k=v ...]
        prints the standalone cluster's settings as shell assignments (lib/cluster.sh).
    python -m reviewrec.submit engine-conf JOB [--conf F ...] [--set k=v ...]
        prints the Spark properties JOB needs at JVM start as key=value lines: Delta Lake's SQL
        extension and catalog, spark.jars (the fetched Delta Lake and hadoop-aws jars, plus Spark
        NLP's for the sparknlp engine), serializer, driver memory (session.jvm_conf).
"""
from __future__ import annotations

import re
import shlex
import sys
from typing import Any

from reviewrec.cli import parse_args
from reviewrec.config import ConfigError, load_config

# A standalone worker holds exactly one executor of the config's size: cores and memory per
# worker are spark.executor.cores / spark.executor.memory. Defaults fit 2 cores / 24 GiB.
WORKER_DEFAULTS = {"spark.executor.cores": "1", "spark.executor.memory": "4g",
                   "spark.master.ui.port": "8080", "spark.worker.ui.port": "8081",
                   "spark.worker.cleanup.appDataTtl": "600", "spark.deploy.maxExecutorRetries": "3"}


def packages_for(cfg: object) -> str:
    text = cfg.get("text") if hasattr(cfg, "get") else None  # type: ignore[union-attr]
    if not text or text.get("engine") != "sparknlp":
        return ""
    if text.get("sparknlp_jar"):
        return ""
    return str(text.get("sparknlp_package", ""))


def master_for(cfg: Any) -> str:
    """The master spark-submit is given: the config's spark.master, else YARN."""
    return str(cfg["spark"].get("master") or "yarn")


def spark_conf_lines(cfg: Any) -> list[str]:
    out = []
    for key, value in (cfg["spark"].get("conf") or {}).items():
        v = str(value).lower() if isinstance(value, bool) else str(value)
        out.append(f"{key}={v}")
    return out


def parse_standalone_master(url: str) -> tuple[str, int]:
    """(host, port) of a spark://host:port URL; ValueError naming the URL otherwise."""
    m = re.fullmatch(r"spark://([^:/,]+):(\d+)/?", url or "")
    if not m:
        raise ValueError(f"spark.master = {url!r} is not a standalone master URL spark://host:port")
    return m.group(1), int(m.group(2))


def cluster_settings(cfg: Any) -> dict[str, str]:
    """What lib/cluster.sh starts for this config."""
    host, port = parse_standalone_master(cfg["spark"].get("master") or "")
    conf = {**WORKER_DEFAULTS, **{k: str(v) for k, v in (cfg["spark"].get("conf") or {}).items()}}
    memory = conf["spark.executor.memory"].strip().lower()
    if not re.fullmatch(r"\d+[kmgt]", memory):
        raise ValueError(f"spark.executor.memory = {memory!r}: expected a size such as 4g or 3072m")
    return {
        "RR_MASTER_URL": f"spark://{host}:{port}",
        "RR_MASTER_HOST": host,
        "RR_MASTER_PORT": str(port),
        "RR_MASTER_UI_PORT": conf["spark.master.ui.port"],
        "RR_WORKER_UI_PORT": conf["spark.worker.ui.port"],
        "RR_WORKER_CORES": str(int(conf["spark.executor.cores"])),
        "RR_WORKER_MEMORY": memory,
        "RR_APP_DATA_TTL": str(_positive_int(conf, "spark.worker.cleanup.appDataTtl")),
        "RR_MAX_EXECUTOR_RETRIES": str(_positive_int(conf, "spark.deploy.maxExecutorRetries")),
    }


def _positive_int(conf: dict[str, str], key: str) -> int:
    try:
        value = int(conf[key])
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{key} = {conf[key]!r}: expected a whole number of at least 1")
    return value


def main(argv: list[str]) -> int:
    commands = ("packages", "master", "spark-conf", "cluster", "engine-conf")
    if not argv or argv[0] not in commands or (argv[0] == "engine-conf" and len(argv) < 2):
        print(__doc__, file=sys.stderr)
        return 2
    job = argv.pop(1) if argv[0] == "engine-conf" else ""
    args = parse_args("submit", argv[1:])
    try:
        cfg = load_config(args.conf, args.overrides)
    except ConfigError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    if argv[0] == "packages":
        print(packages_for(cfg))
    elif argv[0] == "master":
        print(master_for(cfg))
    elif argv[0] == "spark-conf":
        print("\n".join(spark_conf_lines(cfg)))
    elif argv[0] == "engine-conf":
        from reviewrec.jvm import JarsMissing
        from reviewrec.session import jvm_conf

        try:
            print("\n".join(f"{k}={v}" for k, v in jvm_conf(cfg["text"], job).items()))
        except JarsMissing as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    else:
        try:
            settings = cluster_settings(cfg)
        except ValueError as e:
            print(f"configuration error: {e}", file=sys.stderr)
            return 2
        print("\n".join(f"{k}={shlex.quote(v)}" for k, v in settings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
