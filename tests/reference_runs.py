"""The local-mode reference run the cluster tests compare against (pytest plugin, see conftest).

One `pipeline` + `causal` run in Spark local mode through the launcher, on the small config every
cluster test uses, once per test session: tests/test_cluster.py (standalone) and
tests/test_yarn.py (YARN over HDFS) assert that their runs equal it.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Small, every stage real: the model trains two short epochs (a checkpoint after each).
SMALL = ["synthetic.rows=1500", "synthetic.customers=300", "synthetic.products=80", "model.epochs=2",
         "model.baseline_reg_params=[0.01]", "model.baseline_max_iter=20", "model.bootstrap_reps=0",
         "recsys.evaluate.enabled=false"]
JOB_TIMEOUT = 2400
# Cluster vs local: baseline metrics (RMSE/MAE of the TF-IDF LR differ in the last bits: Spark ML
# sums in a different order) and causal estimates, relative.
METRIC_TOL = 1e-6
# Quarantined and duplicate rows name the raw file they came from, under each run's own root.
SOURCE = ("source_file",)
DATASETS = ("reviews", "tokens", "features", "popularity")
WITH_SOURCE = ("quarantine", "duplicates")


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def cwd_of(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def wait_for(pred: Callable[[], object], timeout: float, what: str, every: float = 0.5):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        got = pred()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def spark_events(logs: list[Path], event: str | None = None) -> list[dict]:
    """The events of Spark event logs (JSON lines), in order; only those of type `event` if given
    (e.g. "SparkListenerTaskEnd"). A line cut short by a killed driver is left out."""
    out = []
    for f in logs:
        lines = f.read_text(errors="replace").splitlines()
        for n, line in enumerate(lines, 1):
            if not line or (event and not line.startswith(f'{{"Event":"{event}"')):
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                if n < len(lines):
                    raise
    return out


def finish(proc: subprocess.Popen, timeout: float = JOB_TIMEOUT) -> int:
    """The job's exit code; a job that outlives `timeout` (or an interrupted test) is killed."""
    try:
        return proc.wait(timeout=timeout)
    except BaseException:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        raise


def clean_env() -> dict[str, str]:
    """The caller's environment without the test process's Python and cluster wiring."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "SPARK_CONF_DIR", "SPARK_HOME",
                         "HADOOP_CONF_DIR", "YARN_CONF_DIR")}


def run_job(job: str, root: Path, sets: list[str], log: Path, conf: str = "conf/local.yaml") -> str:
    args = [str(REPO / "spark-submit.sh"), job, "--conf", conf, "--set", f"run.root={root}"]
    for s in sets:
        args += ["--set", s]
    with open(log, "w") as fh:
        proc = subprocess.Popen(args, cwd=REPO, env=clean_env(), stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
        rc = finish(proc)
    text = log.read_text(errors="replace")
    assert rc == 0, f"{job} failed (rc {rc}); log {log}:\n{text[-4000:]}"
    return text


@pytest.fixture(scope="session")
def local_reference(tmp_path_factory) -> Path:
    """The pipeline and the causal job in local mode on SMALL: the root every cluster run equals."""
    base = tmp_path_factory.mktemp("local-reference")
    root = base / "local"
    t0 = time.monotonic()
    run_job("pipeline", root, SMALL, base / "pipeline.log")
    run_job("causal", root, SMALL, base / "causal.log")
    print(f"local reference pipeline + causal: {time.monotonic() - t0:.0f}s")
    return root


def rows(spark, path: str | Path, drop: tuple[str, ...] = ()) -> list[tuple]:
    """Every row of a dataset (the current version of its table), each value as its repr (vectors,
    arrays, exact floats), sorted."""
    from reviewrec import io

    df = io.read_dataset(spark, str(path), "the run")
    cols = sorted(c for c in df.columns if c not in drop)
    return sorted(tuple(repr(r[c]) for c in cols) for r in df.collect())


def close(a, b, where: str) -> None:
    """Same structure; numbers equal to METRIC_TOL (relative), strings equal except run paths."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            # The uplift section's tree ensembles (Spark ML, sampled per partition) differ
            # between local mode and a cluster; everything else is compared.
            if k not in ("seconds", "timings", "timings_s", "root", "path", "generated_at", "elapsed_s", "uplift",
                         "config_hash"):
                close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, (int, float)):
        assert abs(a - b) <= METRIC_TOL * max(1.0, abs(b)), (where, a, b)
    elif isinstance(a, str) and ("/cluster" in a or "/local" in a or "://" in a):
        pass
    else:
        assert a == b, (where, a, b)


# Every input record ends in exactly one of these (report/ingest.json).
RECONCILED = ("accepted", "corrections", "duplicates", "superseded", "quarantined", "excluded_by_category")


def reconciled(rep: dict) -> dict:
    """An ingest report whose records add up: each one accepted, a correction, a duplicate,
    superseded, quarantined or excluded."""
    assert rep["reconciled"] is True, rep
    assert sum(rep[k] for k in RECONCILED) == rep["input"]["records"], rep
    return rep


def compare_runs(spark, cluster_root: str, local_root: str, read_text: Callable[[str], str],
                 causal_root: str | None = None, causal_text: Callable[[str], str] | None = None) -> None:
    """A cluster run's outputs equal the local reference's: ingest reconciliation, every dataset
    row for row, the LSTM's weights to the last bit, the metrics, the neighbours, the filled
    matrix's recommendations and the causal report. `read_text` reads a file under cluster_root
    (local disk, HDFS, ...); the causal report is read under `causal_root` with `causal_text`
    when the causal job ran on another root."""
    def report(root: str, name: str, reader: Callable[[str], str]) -> dict:
        return json.loads(reader(f"{root}/{name}"))

    local_text = lambda p: Path(p).read_text()  # noqa: E731
    ing_c = report(cluster_root, "report/ingest.json", read_text)
    ing_l = report(local_root, "report/ingest.json", local_text)
    for rep in (ing_c, ing_l):
        reconciled(rep)
    for k in (*RECONCILED, "quarantined_by_reason"):
        assert ing_c[k] == ing_l[k], k
    assert ing_c["input"]["records"] == ing_l["input"]["records"]
    for name in DATASETS:
        assert rows(spark, f"{cluster_root}/{name}") == rows(spark, f"{local_root}/{name}"), name
    for name in WITH_SOURCE:
        assert rows(spark, f"{cluster_root}/{name}", SOURCE) == rows(spark, f"{local_root}/{name}", SOURCE), name
    assert json.loads(read_text(f"{cluster_root}/features_meta/vocab.json")) \
        == json.loads(local_text(f"{local_root}/features_meta/vocab.json"))
    # The LSTM trained by Horovod (2 ranks over Gloo, deterministic ops) on the same files: the
    # same weights to the last bit, so the same metrics; the baselines score the same to rounding.
    wc = report(cluster_root, "model/metadata.json", read_text)
    wl = report(local_root, "model/metadata.json", local_text)
    assert wc["weights_sha256"] == wl["weights_sha256"]
    assert wc["num_proc"] == 2
    mc = report(cluster_root, "report/model/metrics.json", read_text)["models"]
    ml = report(local_root, "report/model/metrics.json", local_text)["models"]
    assert mc.keys() == ml.keys() and "lstm" in mc, sorted(mc)
    for model in ml:
        for k, v in ml[model].items():
            if isinstance(v, float):
                assert abs(mc[model][k] - v) <= METRIC_TOL, (model, k, mc[model][k], v)
    from reviewrec import io

    # Neighbours: the same pairs; the cosines agree to float rounding (summation order).
    nc, nl = (sorted(io.read_dataset(spark, f"{r}/neighbors", "recommend").collect())
              for r in (cluster_root, local_root))
    assert [r[:-1] for r in nc] == [r[:-1] for r in nl] and nc
    assert max(abs(a[-1] - b[-1]) for a, b in zip(nc, nl, strict=True)) <= 1e-12
    # Recommendations: the same items for every user.
    rc, rl = (io.read_dataset(spark, f"{r}/recommendations", "recommend") for r in (cluster_root, local_root))
    key = [x for x in rc.columns if x in ("customer_id", "user", "product_id", "item", "rank")]
    assert sorted(tuple(r) for r in rc.select(*key).collect()) == sorted(tuple(r) for r in rl.select(*key).collect())
    # The causal study: the same estimates.
    studies = sorted(p.parent.name for p in Path(local_root).glob("report/causal/*/causal.json"))
    assert studies
    for s in studies:
        close(report(causal_root or cluster_root, f"report/causal/{s}/causal.json", causal_text or read_text),
              report(local_root, f"report/causal/{s}/causal.json", local_text), s)
