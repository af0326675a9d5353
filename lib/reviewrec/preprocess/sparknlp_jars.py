"""Where the sparknlp text engine's jars come from, and the Spark properties it needs.

Imports nothing from Spark, so the launcher (python -m reviewrec.submit engine-conf) can use it
on a machine without pyspark. See preprocess/sparknlp_engine.py for the engine and docs/text.md.
"""
from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from typing import Any

from reviewrec.jvm import cache_dir

ARTIFACT = "com.johnsnowlabs.nlp:spark-nlp_2.12"
DEFAULT_VERSION = "5.5.3"
DEFAULT_PACKAGE = f"{ARTIFACT}:{DEFAULT_VERSION}"
JARS_FROM_CACHE = "cache"
KRYO = "org.apache.spark.serializer.KryoSerializer"
# Jobs that need Spark NLP whatever text.engine says.
JOBS = ("train_text_models",)
SETUP_HINT = "./spark-submit.sh setup (needs mvn and Maven Central)"


class SparkNLPUnavailable(RuntimeError):
    """The Spark NLP jar (or Python package, or a model) is not available to this Spark session."""


def version_of(package: str | None) -> str:
    """The version of Maven coordinates group:artifact:version (the default pin without one)."""
    parts = (package or DEFAULT_PACKAGE).split(":")
    return parts[2] if len(parts) == 3 and parts[2] else DEFAULT_VERSION


def jar_dir(version: str) -> str:
    return os.path.join(cache_dir(), "sparknlp", version, "jars")


def resolve_jars(jar: str | None, package: str | None = None) -> list[str]:
    """The local jar files text.sparknlp_jar names ([] for null: --packages brings them).

    Raises SparkNLPUnavailable naming the artifact, the path and the command that provides it."""
    if not jar:
        return []
    if jar == JARS_FROM_CACHE:
        version = version_of(package)
        d = jar_dir(version)
        manifest = os.path.join(os.path.dirname(d), "MANIFEST")
        if not os.path.isfile(manifest):
            raise SparkNLPUnavailable(
                f"text.engine=sparknlp: {ARTIFACT}:{version} is missing: no fetched jars in {d} "
                f"(written by {SETUP_HINT}). Provide it one of these ways: run that setup; or copy "
                f"spark-nlp_2.12-{version}.jar and its runtime dependencies (lib/sparknlp/pom.xml: "
                f"`mvn dependency:copy-dependencies -f lib/sparknlp/pom.xml -DoutputDirectory=DIR` on a "
                f"machine that reaches Maven) into a directory and set text.sparknlp_jar=DIR; or set "
                f"text.sparknlp_jar=/path/to/spark-nlp-assembly-{version}.jar; or text.sparknlp_jar=null "
                f"to let spark-submit fetch --packages {ARTIFACT}:{version}. "
                f"Or use text.engine=builtin, which needs nothing outside the Python environment.")
        with open(manifest, encoding="utf-8") as fh:
            names = [n.strip() for n in fh if n.strip()]
        paths = [os.path.join(d, n) for n in names]
        missing = [p for p in paths if not os.path.isfile(p)]
        if missing:
            raise SparkNLPUnavailable(f"text.engine=sparknlp: {len(missing)} of the fetched jars are gone "
                                      f"(e.g. {missing[0]}); delete {os.path.dirname(d)} and rerun {SETUP_HINT}")
        return paths
    if os.path.isdir(jar):
        paths = sorted(glob.glob(os.path.join(jar, "*.jar")))
        if not paths:
            raise SparkNLPUnavailable(f"text.sparknlp_jar = {jar} is a directory without jars: put "
                                      f"{ARTIFACT}:{version_of(package)} and its dependencies there")
        return paths
    if not os.path.isfile(jar):
        raise SparkNLPUnavailable(
            f"text.engine=sparknlp: text.sparknlp_jar = {jar}: that file does not exist, so "
            f"{ARTIFACT}:{version_of(package)} is missing. Point text.sparknlp_jar at "
            f"spark-nlp-assembly-{version_of(package)}.jar or at a directory holding the jars that "
            f"lib/sparknlp/pom.xml lists, or set text.sparknlp_jar=cache to use the ones "
            f"{SETUP_HINT} fetches. Or use text.engine=builtin, which needs nothing outside the "
            f"Python environment.")
    return [os.path.abspath(jar)]


def session_conf(text: Mapping[str, Any], job: str = "") -> dict[str, str]:
    """Spark properties the sparknlp engine needs, from the config's `text:` section: {} unless
    text.engine is sparknlp with pos_lemma on, or `job` is one of JOBS (they always use Spark
    NLP). spark.jars (the local jars; absent when
    text.sparknlp_jar is null, or when they are missing: require_sparknlp then says what is
    missing), the Kryo serializer and text.sparknlp_driver_memory."""
    uses = text.get("engine") == "sparknlp" and text.get("pos_lemma", True)
    if not uses and job not in JOBS:
        return {}
    conf = {"spark.serializer": KRYO, "spark.kryoserializer.buffer.max": "512m",
            "spark.driver.memory": str(text.get("sparknlp_driver_memory") or "4g")}
    try:
        jars = resolve_jars(text.get("sparknlp_jar"), text.get("sparknlp_package"))
    except SparkNLPUnavailable:
        jars = []
    if jars:
        conf["spark.jars"] = ",".join(jars)
    return conf
