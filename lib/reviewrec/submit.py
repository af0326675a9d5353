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
    python -m reviewrec.submit s3a-keys [--conf F ...] [--set k=v ...]
        prints `ship` when a YARN submission of this config must carry the environment's s3a keys
        to the ApplicationMaster and executors (s3a_keys_needed), or nothing; a warning on stderr
        when the config's credentials providers cannot read them there.
    python -m reviewrec.submit s3a-keystore FILE
        writes the environment's AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN) to
        the Hadoop credential store FILE (JCEKS, owner-only), as fs.s3a.access.key /
        fs.s3a.secret.key (/ fs.s3a.session.token), through Hadoop's CredentialProviderFactory
        (write_s3a_keystore). The values never appear on a command line.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
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


# -- s3a keys for YARN containers ----------------------------------------------------------------
#
# A cluster-mode driver (the ApplicationMaster's container) and the executors on YARN do not
# inherit the submitting shell's environment, so s3a's environment-variable provider finds no
# keys there. The launcher writes the keys to a Hadoop credential store (JCEKS) in a private
# directory, ships it with --files (staged in the application's owner-only HDFS staging
# directory, localized as a private resource, removed with the application) and points s3a at
# it in every container's working directory; a client-mode driver reads the launcher's file.
# S3A's SimpleAWSCredentialsProvider (and TemporaryAWSCredentialsProvider, for temporary keys)
# read fs.s3a.access.key / fs.s3a.secret.key through the credential providers, so the config's
# provider list must hold one of them (conf/s3.yaml's does).

S3A_KEYSTORE_NAME = "reviewrec-s3a.jceks"
S3A_CREDENTIAL_PATH = "spark.hadoop.fs.s3a.security.credential.provider.path"
S3A_PROVIDERS = "spark.hadoop.fs.s3a.aws.credentials.provider"
# S3A's default provider list (unset fs.s3a.aws.credentials.provider) reads them too.
S3A_KEY_READERS = ("org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
                   "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider")
# alias in the store -> the environment variable it is read from
S3A_KEY_ALIASES = {"fs.s3a.access.key": "AWS_ACCESS_KEY_ID", "fs.s3a.secret.key": "AWS_SECRET_ACCESS_KEY",
                   "fs.s3a.session.token": "AWS_SESSION_TOKEN"}

# Run by `java` as a single source file: Hadoop's own API writes the store, taking the values from
# its environment (arguments: the provider URL, then alias / variable pairs).
KEYSTORE_WRITER = """
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.security.alias.CredentialProvider;
import org.apache.hadoop.security.alias.CredentialProviderFactory;

public class WriteS3aKeystore {
  public static void main(String[] args) throws Exception {
    Configuration conf = new Configuration(false);
    conf.set(CredentialProviderFactory.CREDENTIAL_PROVIDER_PATH, args[0]);
    List<CredentialProvider> providers = CredentialProviderFactory.getProviders(conf);
    CredentialProvider store = providers.get(0);
    for (int i = 1; i + 1 < args.length; i += 2) {
      String value = System.getenv(args[i + 1]);
      if (value != null && !value.isEmpty()) {
        store.createCredentialEntry(args[i], value.toCharArray());
      }
    }
    store.flush();
  }
}
"""


def s3a_keys_needed(cfg: Any, environ: Any = None) -> tuple[bool, str]:
    """(ship, warning) for a YARN submission: ship the environment's keys when both
    AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set, the config uses s3a (a run root or
    input on s3a://, or any spark.hadoop.fs.s3a.* setting) and its s3a credentials providers
    read the store (unset: S3A's defaults do). Providers that would not read it: nothing is
    shipped (the submission is as before) and the warning says so."""
    from reviewrec.objectstore import object_store_urls

    environ = os.environ if environ is None else environ
    if not (environ.get("AWS_ACCESS_KEY_ID") and environ.get("AWS_SECRET_ACCESS_KEY")):
        return False, ""
    conf = {str(k): str(v) for k, v in (cfg["spark"].get("conf") or {}).items()}
    if not (object_store_urls(cfg) or any(k.startswith("spark.hadoop.fs.s3a.") for k in conf)):
        return False, ""
    providers = [p.strip() for p in conf.get(S3A_PROVIDERS, "").split(",") if p.strip()]
    if providers and not set(providers) & set(S3A_KEY_READERS):
        return False, (f"warning: {S3A_PROVIDERS.removeprefix('spark.hadoop.')} = {','.join(providers)} cannot "
                       "read keys shipped to the YARN containers, so none are: add "
                       "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider (as conf/s3.yaml does)")
    return True, ""


def spark_jars_dir(environ: Any = None) -> str:
    """The directory of Spark's jars (Hadoop's client among them): $SPARK_HOME/jars, else the
    pyspark package's."""
    import importlib.util

    environ = os.environ if environ is None else environ
    if environ.get("SPARK_HOME") and os.path.isdir(os.path.join(environ["SPARK_HOME"], "jars")):
        return os.path.join(environ["SPARK_HOME"], "jars")
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.origin:
        raise RuntimeError("no Spark jars to write the s3a credential store with: set SPARK_HOME or install pyspark")
    return os.path.join(os.path.dirname(spec.origin), "jars")


def write_s3a_keystore(path: str, environ: Any = None) -> None:
    """The environment's s3a keys (S3A_KEY_ALIASES) in the JCEKS credential store `path` (mode 600,
    in a directory that must already be private), written by Hadoop's CredentialProviderFactory.
    The store's password is Hadoop's default (HADOOP_CREDSTORE_PASSWORD is left out, so every
    container opens it without one): its protection is the file's owner-only permissions."""
    from reviewrec.objectstore import redact_text, secret_values

    environ = dict(os.environ if environ is None else environ)
    environ.pop("HADOOP_CREDSTORE_PASSWORD", None)
    path = os.path.abspath(path)
    if os.path.exists(path):
        os.unlink(path)
    java = os.path.join(environ["JAVA_HOME"], "bin", "java") if environ.get("JAVA_HOME") else "java"
    with tempfile.TemporaryDirectory(prefix="reviewrec-keystore-") as src_dir:
        source = os.path.join(src_dir, "WriteS3aKeystore.java")
        with open(source, "w", encoding="utf-8") as fh:
            fh.write(KEYSTORE_WRITER)
        pairs = [x for alias, var in S3A_KEY_ALIASES.items() for x in (alias, var)]
        cmd = [java, "-cp", os.path.join(spark_jars_dir(environ), "*"), source, f"localjceks://file{path}", *pairs]
        out = subprocess.run(cmd, env=environ, capture_output=True, text=True, timeout=300)
    if out.returncode != 0 or not os.path.isfile(path):
        detail = redact_text((out.stderr or out.stdout or "").strip()[-2000:], secret_values(environ=environ))
        raise RuntimeError(f"writing the s3a credential store {path} failed ({out.returncode}): {detail}")
    os.chmod(path, 0o600)


def main(argv: list[str]) -> int:
    if len(argv) >= 1 and argv[0] == "s3a-keystore":
        if len(argv) != 2:
            print(__doc__, file=sys.stderr)
            return 2
        try:
            write_s3a_keystore(argv[1])
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0
    commands = ("packages", "master", "spark-conf", "cluster", "engine-conf", "s3a-keys")
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
    elif argv[0] == "s3a-keys":
        ship, warning = s3a_keys_needed(cfg)
        if warning:
            print(warning, file=sys.stderr)
        if ship:
            print("ship")
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
