"""pytest plugin: the local S3 server (lib/s3.sh, moto with credential checks on) for one test
session, on a free port with its own state directory, always stopped at the end, leaving no
process behind.

    def test_x(s3_server):
        s3_server.endpoint          # http://127.0.0.1:PORT
        s3_server.env()             # os.environ + the server's keys, for a launcher subprocess
        s3_server.client()          # a boto3 S3 client with those keys
        s3_server.bucket_conf(b)    # s3a settings for bucket b, for a running session's Hadoop conf
        with s3_server.keys_in(spark):  # those settings in the session for a block
"""
from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
BUCKET = "reviewrec-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def s3_script(state: Path, port: int, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REVIEWREC_S3_DIR": str(state), "REVIEWREC_S3_PORT": str(port)}
    out = subprocess.run(["bash", str(REPO / "lib" / "s3.sh"), *args], env=env, capture_output=True,
                         text=True, timeout=180)
    if check and out.returncode != 0:
        raise RuntimeError(f"lib/s3.sh {' '.join(args)} failed ({out.returncode}): {out.stderr[-2000:]}")
    return out


@dataclass
class S3Server:
    state: Path
    port: int
    bucket: str

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def credentials(self) -> dict[str, str]:
        from reviewrec.objectstore import read_credentials

        return read_credentials(str(self.state / "credentials"))

    @property
    def pid(self) -> int:
        return int((self.state / "moto.pid").read_text())

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, **self.credentials, **extra}

    @cached_property
    def _client(self) -> Any:
        from reviewrec.objectstore import s3_client

        return s3_client(self.endpoint, self.credentials)

    def client(self) -> Any:
        """A boto3 S3 client with this server's keys (one per server: the kill tests poll with it)."""
        return self._client

    def keys(self, prefix: str, bucket: str | None = None) -> list[str]:
        """The keys of every object under `prefix` in the bucket."""
        s3 = self.client()
        return [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket or self.bucket,
                                                                                  Prefix=prefix)
                for o in page.get("Contents", [])]

    def bucket_conf(self, bucket: str) -> dict[str, str]:
        """Per-bucket s3a settings (fs.s3a.bucket.<b>.*) with this server's keys: set on a running
        session's Hadoop configuration, they reach only that bucket."""
        c = self.credentials
        p = f"fs.s3a.bucket.{bucket}."
        return {p + "endpoint": self.endpoint, p + "path.style.access": "true",
                p + "connection.ssl.enabled": "false",
                p + "aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
                p + "access.key": c["AWS_ACCESS_KEY_ID"], p + "secret.key": c["AWS_SECRET_ACCESS_KEY"]}

    @contextmanager
    def keys_in(self, spark: Any, bucket: str | None = None) -> Iterator[None]:
        """The bucket's s3a settings and keys (bucket_conf) in a running session's Hadoop
        configuration for the block, so the product's readers (reviewrec.io) read the bucket."""
        hconf = spark.sparkContext._jsc.hadoopConfiguration()
        keys = self.bucket_conf(bucket or self.bucket)
        for k, v in keys.items():
            hconf.set(k, v)
        try:
            yield
        finally:
            for k in keys:
                hconf.unset(k)

    def download(self, prefix: str, dest: Path) -> list[Path]:
        """Every object under `prefix` in the bucket, as files under `dest` (keys relative to prefix)."""
        s3 = self.client()
        out = []
        for key in self.keys(prefix):
            target = dest / key[len(prefix):].lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(self.bucket, key, str(target))
            out.append(target)
        return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    state = tmp_path_factory.mktemp("s3-server")
    port = free_port()
    s3_script(state, port, "up", "--bucket", BUCKET)
    server = S3Server(state, port, BUCKET)
    pid = server.pid
    try:
        yield server
    finally:
        s3_script(state, port, "down", check=False)
        if _alive(pid):  # lib/s3.sh failed to stop it: do not leave it behind
            os.kill(pid, 9)
            raise RuntimeError(f"lib/s3.sh down left the S3 server (pid {pid}) running")
