"""s3a keys on YARN (docs/cluster.md, "s3a run roots on YARN"), without a cluster: the launcher
writes the environment's keys to a Hadoop credential store (JCEKS), ships it with --files and
points s3a at it in the containers' working directories (and, for a client-mode driver, at the
launcher's own file); the key values appear in no argument, no output, and not in plain text in
the store; spark-submit runs without them in its environment; the store's private directory is
gone once spark-submit has exited."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from reviewrec.config import load_config
from reviewrec.submit import S3A_KEYSTORE_NAME, s3a_keys_needed, spark_jars_dir

from conftest import REPO
from reference_runs import clean_env

FAKE_KEY = "AKIAFAKEYARNKEY0001"
FAKE_SECRET = "fakeYarnSecretKey/0001+NotARealOne0000"
CONTAINER_PATH = "localjceks://file${user.dir}/" + S3A_KEYSTORE_NAME
S3A_JOB = ["ingest", "--conf", "conf/yarn.yaml", "--conf", "conf/s3.yaml", "--set", "run.root=s3a://bucket/runs/x",
           "--set", "spark.conf.spark.hadoop.fs.s3a.endpoint=http://127.0.0.1:1"]

# What a container does with the shipped file: Hadoop's Configuration.getPassword through the
# provider path the launcher set, from the directory the store is in.
READER = """
import org.apache.hadoop.conf.Configuration;
public class ReadS3aKeys {
  public static void main(String[] args) throws Exception {
    Configuration conf = new Configuration(false);
    conf.set("hadoop.security.credential.provider.path", args[0]);
    boolean same = System.getenv("EXPECT_KEY").equals(new String(conf.getPassword("fs.s3a.access.key")))
        && System.getenv("EXPECT_SECRET").equals(new String(conf.getPassword("fs.s3a.secret.key")))
        && conf.getPassword("fs.s3a.session.token") == null;
    System.out.println(same ? "same keys" : "other keys");
  }
}
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in clean_env().items() if not k.startswith("AWS_")}
    env.update(REVIEWREC_PYENV_ARCHIVE="none", REVIEWREC_SUBMIT_PYTHON=sys.executable,
               AWS_ACCESS_KEY_ID=FAKE_KEY, AWS_SECRET_ACCESS_KEY=FAKE_SECRET, **extra)
    return env


def _launch(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / "spark-submit.sh"), *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def _conf(args: list[str], key: str) -> list[str]:
    return [args[i + 1].split("=", 1)[1] for i, a in enumerate(args[:-1])
            if a == "--conf" and args[i + 1].startswith(key + "=")]


def _assert_no_key(*texts: str | bytes) -> None:
    for text in texts:
        blob = text.encode() if isinstance(text, str) else text
        for value in (FAKE_KEY, FAKE_SECRET):
            assert value.encode() not in blob


def test_which_configs_ship_the_keys() -> None:
    keys = {"AWS_ACCESS_KEY_ID": FAKE_KEY, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET}
    yarn, s3 = str(REPO / "conf" / "yarn.yaml"), str(REPO / "conf" / "s3.yaml")
    assert s3a_keys_needed(load_config([yarn, s3], ["run.root=s3a://b/r"]), keys) == (True, "")
    # conf/s3.yaml's settings alone (an hdfs root, an s3a input a job may read): shipped too.
    assert s3a_keys_needed(load_config([yarn, s3]), keys) == (True, "")
    assert s3a_keys_needed(load_config([yarn], ["run.root=s3a://b/r"]), keys) == (True, "")
    # No s3a anywhere, or no keys in the environment: nothing is shipped.
    assert s3a_keys_needed(load_config([yarn]), keys) == (False, "")
    assert s3a_keys_needed(load_config([yarn, s3], ["run.root=s3a://b/r"]), {"AWS_ACCESS_KEY_ID": FAKE_KEY}) == \
        (False, "")
    # Providers that cannot read a store: none shipped (the submission as before), a warning naming the fix.
    env_only = "spark.conf.spark.hadoop.fs.s3a.aws.credentials.provider=" \
               "com.amazonaws.auth.EnvironmentVariableCredentialsProvider"
    ship, warning = s3a_keys_needed(load_config([yarn, s3], ["run.root=s3a://b/r", env_only]), keys)
    assert not ship and "SimpleAWSCredentialsProvider" in warning


def test_cluster_mode_ships_the_keys_in_a_credential_store(tmp_path: Path) -> None:
    res = _launch(["submit-args", *S3A_JOB, "--", "--deploy-mode", "cluster"],
                  _env(REVIEWREC_YARN_DIR=str(tmp_path / "no-yarn")))
    assert res.returncode == 0, res.stderr
    args = res.stdout.splitlines()
    store = Path(next(f for f in args[args.index("--files") + 1].split(",") if f.endswith(S3A_KEYSTORE_NAME)))
    try:
        _assert_no_key(res.stdout, res.stderr, store.read_bytes())
        assert f"remove {store.parent}" in res.stderr
        # Owner-only, in a directory of its own.
        assert stat.S_IMODE(store.stat().st_mode) == 0o600
        assert stat.S_IMODE(store.parent.stat().st_mode) == 0o700
        # Every container opens the copy YARN put in its working directory; nothing else carries keys.
        assert _conf(args, "spark.hadoop.fs.s3a.security.credential.provider.path") == [CONTAINER_PATH]
        providers = _conf(args, "spark.hadoop.fs.s3a.aws.credentials.provider")[-1].split(",")
        assert "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider" in providers
        assert not [a for a in args if "AWS_" in a or a.startswith(("spark.yarn.appMasterEnv.AWS",
                                                                     "spark.executorEnv.AWS"))]
        # What a container reads from it: the environment's keys, through Hadoop's API.
        (tmp_path / "ReadS3aKeys.java").write_text(READER)
        shutil.copy(store, tmp_path / S3A_KEYSTORE_NAME)
        java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else "java"
        read = subprocess.run([java, "-cp", os.path.join(spark_jars_dir(), "*"), "ReadS3aKeys.java", CONTAINER_PATH],
                              cwd=tmp_path, env=dict(os.environ, EXPECT_KEY=FAKE_KEY, EXPECT_SECRET=FAKE_SECRET),
                              capture_output=True, text=True, timeout=300)
        assert read.stdout.strip() == "same keys", read.stderr[-2000:]
    finally:
        shutil.rmtree(store.parent, ignore_errors=True)


def test_client_mode_submission_runs_without_the_keys_and_removes_the_store(tmp_path: Path) -> None:
    """The launcher's real path with a stand-in spark-submit: it sees the store but no AWS_*
    variable; the client-mode driver is pointed at the launcher's file; the store is gone after."""
    seen = tmp_path / "seen"
    fake = tmp_path / "fake-spark-submit"
    fake.write_text("#!/usr/bin/env bash\n"
                    f"printf '%s\\n' \"$@\" > {seen}.args\n"
                    f"env | grep '^AWS_' > {seen}.env\n"
                    "prev=\n"
                    "for a in \"$@\"; do\n"
                    "  if [ \"$prev\" = --files ]; then IFS=, read -ra shipped <<< \"$a\"\n"
                    "    for f in \"${shipped[@]}\"; do\n"
                    f"      case \"$f\" in *.jceks) cp \"$f\" {seen}.jceks ;; esac\n"
                    "    done\n"
                    "  fi\n"
                    "  prev=$a\n"
                    "done\n")
    fake.chmod(0o755)
    res = _launch([*S3A_JOB, "--", "--deploy-mode", "client"],
                  _env(SPARK_SUBMIT=str(fake), REVIEWREC_YARN_DIR=str(tmp_path / "no-yarn")))
    assert res.returncode == 0, res.stderr
    args = Path(f"{seen}.args").read_text().splitlines()
    store = Path(next(f for f in args[args.index("--files") + 1].split(",") if f.endswith(S3A_KEYSTORE_NAME)))
    assert Path(f"{seen}.jceks").stat().st_size > 0, "the store was not there while spark-submit ran"
    assert not store.parent.exists(), "the store's directory outlived spark-submit"
    assert Path(f"{seen}.env").read_text() == ""
    assert _conf(args, "spark.hadoop.fs.s3a.security.credential.provider.path") == \
        [f"{CONTAINER_PATH},localjceks://file{store}"]
    _assert_no_key(res.stdout, res.stderr, Path(f"{seen}.args").read_text(), Path(f"{seen}.jceks").read_bytes())
