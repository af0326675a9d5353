"""The JVM artifacts lib/bootstrap.sh fetches with Maven into the cache outside the clone.

Imports nothing from Spark, so the launcher (python -m reviewrec.submit) can use it on a machine
without pyspark.

    storage   Delta Lake + hadoop-aws (lib/storage/pom.xml): every session's spark.jars
    yarn      Hadoop's YARN/HDFS minicluster (lib/yarn/pom.xml): the daemons of lib/yarn.sh only
"""
from __future__ import annotations

import os

# The directories bootstrap.sh fills (rr_storage_key / rr_yarn_key there): keep in step with the
# versions in lib/storage/pom.xml and lib/yarn/pom.xml.
DELTA_VERSION = "3.3.2"
HADOOP_VERSION = "3.3.4"
STORAGE_KEY = f"delta-{DELTA_VERSION}_hadoop-{HADOOP_VERSION}"
SETUP_HINT = "./spark-submit.sh setup (needs mvn and Maven Central)"


class JarsMissing(RuntimeError):
    """Jars that setup fetches are not in the cache."""


def cache_dir() -> str:
    """${REVIEWREC_CACHE:-${XDG_CACHE_HOME:-~/.cache}/reviewrec}, as in lib/bootstrap.sh."""
    if os.environ.get("REVIEWREC_CACHE"):
        return os.environ["REVIEWREC_CACHE"]
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "reviewrec")


def fetched_jars(kind: str, key: str) -> list[str]:
    """The jar files of <cache>/<kind>/<key>/jars listed in its MANIFEST; JarsMissing naming the
    directory and the setup command when they are not there."""
    d = os.path.join(cache_dir(), kind, key)
    manifest = os.path.join(d, "MANIFEST")
    if not os.path.isfile(manifest):
        raise JarsMissing(f"no fetched {kind} jars in {d} (written by {SETUP_HINT})")
    with open(manifest, encoding="utf-8") as fh:
        paths = [os.path.join(d, "jars", n.strip()) for n in fh if n.strip()]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise JarsMissing(f"{len(missing)} of the fetched {kind} jars are gone (e.g. {missing[0]}); "
                          f"delete {d} and rerun {SETUP_HINT}")
    return paths


def storage_jars() -> list[str]:
    """Delta Lake and hadoop-aws with their runtime dependencies (Spark's own jars excluded)."""
    return fetched_jars("storage", STORAGE_KEY)
