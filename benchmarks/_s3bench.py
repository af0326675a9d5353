"""The local S3 server (lib/s3.sh, moto with credential checks) for a benchmark: started if it is
not up (its state directory and port from REVIEWREC_S3_DIR / REVIEWREC_S3_PORT, or given), the
bucket created, and stopped at the end only if this benchmark started it. Also load-average
sampling, which the benchmarks report beside their figures.

    with s3_server(bucket="reviewrec-bench") as s3:
        s3.endpoint, s3.credentials, s3.conf_sets()   # http://127.0.0.1:PORT, the keys, --set args
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _cache() -> Path:
    return Path(os.environ.get("REVIEWREC_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "reviewrec"))


@dataclass
class S3Server:
    state: Path
    port: int
    bucket: str
    started: bool = False

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def credentials(self) -> dict[str, str]:
        import sys

        sys.path.insert(0, str(REPO / "lib"))
        from reviewrec.objectstore import read_credentials

        return read_credentials(str(self.state / "credentials"))

    def conf_sets(self) -> list[str]:
        """--set values pointing conf/s3.yaml's s3a at this server."""
        return [f"spark.conf.spark.hadoop.fs.s3a.endpoint={self.endpoint}"]

    def client(self) -> Any:
        from reviewrec.objectstore import s3_client

        return s3_client(self.endpoint, self.credentials)

    def read_text(self, url: str) -> str:
        """An object's text by its s3a://bucket/key URL."""
        bucket, key = url.split("://", 1)[1].split("/", 1)
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def _script(state: Path, port: int, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REVIEWREC_S3_DIR": str(state), "REVIEWREC_S3_PORT": str(port)}
    out = subprocess.run(["bash", str(REPO / "lib" / "s3.sh"), *args], env=env, capture_output=True, text=True,
                         timeout=300)
    if check and out.returncode != 0:
        raise RuntimeError(f"lib/s3.sh {' '.join(args)} failed ({out.returncode}): {out.stderr[-2000:]}")
    return out


@contextlib.contextmanager
def s3_server(bucket: str, state: str | None = None, port: int | None = None) -> Iterator[S3Server]:
    st = Path(state or os.environ.get("REVIEWREC_S3_DIR") or _cache() / "s3")
    running = None
    env_file = st / "s3.env"
    if env_file.exists():
        running = next((int(line.split("=", 1)[1]) for line in env_file.read_text().splitlines()
                        if line.startswith("RR_S3_PORT=")), None)
    p = port or running or int(os.environ.get("REVIEWREC_S3_PORT") or 9878)
    up = _script(st, p, "status", check=False).returncode == 0
    _script(st, p, "up", "--bucket", bucket)
    server = S3Server(st, p, bucket, started=not up)
    try:
        yield server
    finally:
        if server.started:
            _script(st, p, "down", check=False)


@dataclass
class LoadSampler:
    """The 1-minute load average every `every` seconds, in a thread, with wall-clock stamps."""
    every: float = 30.0
    samples: list[tuple[str, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> LoadSampler:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while True:
            self.samples.append((time.strftime("%H:%M:%S", time.gmtime()), round(os.getloadavg()[0], 2)))
            if self._stop.wait(self.every):
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.strftime("%H:%M:%S", time.gmtime()), round(os.getloadavg()[0], 2)))

    def between(self, start: str, end: str) -> dict[str, Any]:
        """min / max / mean of the samples with start <= stamp <= end (HH:MM:SS UTC, one day)."""
        vals = [v for t, v in self.samples if start <= t <= end]
        if not vals:
            return {}
        return {"min": min(vals), "max": max(vals), "mean": round(sum(vals) / len(vals), 2), "samples": len(vals)}
