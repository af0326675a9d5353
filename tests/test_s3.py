"""s3a:// run roots against the local S3 server (tests/s3server.py starts lib/s3.sh's moto with
credential checks on, and always stops it).

- ingest through the launcher with run.root and input.path on s3a:// (keys from the environment)
  gives the same datasets and reconciliation as the same job on local disk;
- the preflight names the URL and which of bucket, credentials or endpoint failed, in seconds,
  and through the launcher before any Spark job runs;
- no object-store key (the environment's, or a conf's) appears in the job's output, the effective
  configuration it prints, the Spark event log or any object it wrote;
- the ingest driver killed while it writes the reviews table on s3a://, before the commit: the
  new version's objects are in the bucket, the table's log still names the previous version, whose
  rows are read; the rerun commits the new input's reviews;
- lib/s3.sh: a taken port is named with its owner, `up` is idempotent and adds buckets;
- train, evaluate and recommend (the model filling the matrix) on an s3a:// run root holding a
  copy of the shared local reference run's reviews and features: the same model (weights hash),
  metrics and recommendations as that run, and the model's predictions are the local model's,
  with the Horovod ranks and the Python workers given no object-store key.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from pyspark.sql import functions as F
from s3server import S3Server, free_port, s3_script
from reference_runs import RECONCILED, spark_events, wait_for

from reviewrec import objectstore
from reviewrec.config import load_config

REPO = Path(__file__).resolve().parents[1]
ROWS = 2000
# Recognisable keys a conf carries for a bucket the jobs never touch: they must be redacted.
CANARY_ACCESS = "AKIARRCANARYACCESS42"
CANARY_SECRET = "rr-canary-secret-Zq8Xv3Lm0Pw7Tk2Hn5Bf"
CANARY_BUCKET = "reviewrec-elsewhere"
DATASETS = ("reviews", "quarantine", "duplicates")


def _settings(raw: str, root: str) -> list[str]:
    return [f"run.root={root}", "input.format=tsv", f"input.path={raw}"]


def launch(server: S3Server, job: str, sets: list[str], events: Path, confs: tuple[str, ...] = (),
           **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """./spark-submit.sh JOB in local mode with conf/s3.yaml pointed at the server and the Spark
    event log on; the server's keys only in the environment."""
    events.mkdir(parents=True, exist_ok=True)
    args = ["./spark-submit.sh", job, "--conf", "conf/local.yaml", "--conf", "conf/s3.yaml"]
    for c in confs:
        args += ["--conf", c]
    for s in [f"spark.conf.spark.hadoop.fs.s3a.endpoint={server.endpoint}", "spark.conf.spark.eventLog.enabled=true",
              f"spark.conf.spark.eventLog.dir=file://{events}", *sets]:
        args += ["--set", s]
    t0 = time.perf_counter()
    out = subprocess.run(args, cwd=REPO, env=server.env(**env), capture_output=True, text=True, timeout=900)
    return out, time.perf_counter() - t0


def read_table(spark, path: Path):
    """A downloaded or local dataset, its source_file column reduced to the file's name (the
    input's URL differs between the two runs by design)."""
    from pyspark.sql import functions as F

    df = (spark.read.format("delta").load(str(path)) if (path / "_delta_log").is_dir()
          else spark.read.parquet(str(path)))
    if "source_file" in df.columns:
        df = df.withColumn("source_file", F.regexp_extract("source_file", r"[^/]+$", 0))
    return df


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reviewrec import generate

    root = tmp_path_factory.mktemp("s3-gen")
    cfg = load_config([str(REPO / "conf" / "local.yaml")], [f"run.root={root}", f"synthetic.rows={ROWS}"])
    generate.run(None, cfg)
    return root / "raw"


@pytest.fixture(scope="module")
def s3_ingest(s3_server: S3Server, raw: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """ingest through the launcher: input and run root on s3a://, a conf carrying canary keys."""
    work = tmp_path_factory.mktemp("s3-ingest")
    s3 = s3_server.client()
    for f in sorted(raw.iterdir()):
        s3.upload_file(str(f), s3_server.bucket, f"input/{f.name}")
    canary = work / "canary.yaml"
    canary.write_text(yaml.safe_dump({"spark": {"conf": {
        f"spark.hadoop.fs.s3a.bucket.{CANARY_BUCKET}.access.key": CANARY_ACCESS,
        f"spark.hadoop.fs.s3a.bucket.{CANARY_BUCKET}.secret.key": CANARY_SECRET}}}))
    root = f"s3a://{s3_server.bucket}/run"
    out, seconds = launch(s3_server, "ingest", _settings(f"s3a://{s3_server.bucket}/input", root), work / "events",
                          confs=(str(canary),))
    assert out.returncode == 0, out.stderr[-4000:]
    local = work / "downloaded"
    files = s3_server.download("run/", local)
    return {"out": out, "seconds": seconds, "events": work / "events", "local": local, "files": files,
            "root": root}


@pytest.mark.spark
@pytest.mark.slow
def test_ingest_on_s3a_gives_the_local_datasets(spark, s3_ingest: dict, raw: Path, tmp_path: Path) -> None:
    from pyspark.testing import assertDataFrameEqual

    from reviewrec.ingest.job import run as ingest

    root = tmp_path / "run"
    cfg = load_config([str(REPO / "conf" / "local.yaml")], _settings(str(raw), str(root)))
    ingest(spark, cfg)
    got = s3_ingest["local"]
    for name in DATASETS:
        assert (got / name).is_dir(), f"{name} was not written to {s3_ingest['root']}"
        remote, here = read_table(spark, got / name), read_table(spark, root / name)
        assert remote.count() == here.count()
        assertDataFrameEqual(remote, here)
    assert read_table(spark, got / "reviews").count() > ROWS // 2
    assert read_table(spark, got / "quarantine").count() > 0
    report = json.loads((got / "report" / "ingest.json").read_text())
    expected = json.loads((root / "report" / "ingest.json").read_text())
    assert report["input"]["records"] == expected["input"]["records"] > 0
    assert report["reconciled"] is True
    for key in (*RECONCILED, "quarantined_by_reason"):
        assert key in expected
        assert report[key] == expected[key], key


@pytest.mark.spark
@pytest.mark.slow
def test_no_object_store_key_in_any_output(s3_ingest: dict, s3_server: S3Server) -> None:
    keys = s3_server.credentials
    secrets = {"the environment's access key": keys["AWS_ACCESS_KEY_ID"],
               "the environment's secret key": keys["AWS_SECRET_ACCESS_KEY"],
               "a conf's access key": CANARY_ACCESS, "a conf's secret key": CANARY_SECRET}
    out = s3_ingest["out"]
    logs = out.stdout + out.stderr
    events = s3_ingest["events"]
    texts = {"job output": logs.encode()}
    texts.update({f"event log {f.name}": f.read_bytes() for f in events.iterdir()})
    texts.update({f"object {f.relative_to(s3_ingest['local'])}": f.read_bytes() for f in s3_ingest["files"]})
    for what, secret in secrets.items():
        for where, blob in texts.items():
            assert secret.encode() not in blob, f"{what} appears in {where}"
    # The places searched did carry the configuration: the keys' names are there, redacted.
    name = f"fs.s3a.bucket.{CANARY_BUCKET}.secret.key"
    assert re.search(rf"spark\.conf\.spark\.hadoop\.{re.escape(name)} = '\*+\(redacted\)'", logs), \
        "the effective configuration does not list the conf's key"
    env = next(iter(spark_events(sorted(events.iterdir()), "SparkListenerEnvironmentUpdate")))
    assert env["Spark Properties"], env.keys()
    props = dict(env["Spark Properties"]) | dict(env.get("Hadoop Properties") or [])
    assert props[f"spark.hadoop.{name}"] == "*********(redacted)"
    assert spark_events(sorted(events.iterdir()), "SparkListenerJobStart")
    assert "reviews" in {f.relative_to(s3_ingest["local"]).parts[0] for f in s3_ingest["files"]}


@pytest.mark.spark
@pytest.mark.slow
def test_driver_killed_committing_on_s3a_keeps_the_previous_version(spark, s3_ingest: dict, s3_server: S3Server,
                                                                     tmp_path: Path) -> None:
    """The ingest run above, copied to another prefix, is the previous output; ingest runs again
    there on the input without its first file (so the new reviews differ from the old) and its
    driver is SIGKILLed as soon as the new reviews' first Parquet object is in the bucket. The
    kill landed before the commit: new objects that the table's log does not name, the log at the
    copied version alone, the old rows read. The rerun commits the new input's reviews."""
    from reviewrec import io
    from reviewrec.ingest.job import run as ingest

    s3, bucket = s3_server.client(), s3_server.bucket

    def copy(keys: list[str], src: str, dst: str) -> None:
        for key in keys:
            s3.copy_object(Bucket=bucket, Key=dst + key[len(src):], CopySource={"Bucket": bucket, "Key": key})

    copy(s3_server.keys("run/"), "run/", "killed/")
    inputs = sorted(s3_server.keys("input/"))
    assert len(inputs) >= 2, inputs
    copy(inputs[1:], "input/", "input-fewer/")
    root, table = f"s3a://{bucket}/killed", "killed/reviews/"
    parquet = lambda: {k for k in s3_server.keys(table) if k.endswith(".parquet") and "/_delta_log/" not in k}  # noqa: E731
    log_entries = lambda: sorted(k.rsplit("/", 1)[1] for k in s3_server.keys(table + "_delta_log/")  # noqa: E731
                                 if k.endswith(".json"))
    old_objects = parquet()
    assert old_objects and log_entries() == ["00000000000000000000.json"]
    sets = _settings(f"s3a://{bucket}/input-fewer", root)
    args = ["./spark-submit.sh", "ingest", "--conf", "conf/local.yaml", "--conf", "conf/s3.yaml",
            "--set", f"spark.conf.spark.hadoop.fs.s3a.endpoint={s3_server.endpoint}"]
    for x in sets:
        args += ["--set", x]
    log = tmp_path / "ingest-killed.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(args, cwd=REPO, env=s3_server.env(), stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        new = wait_for(lambda: parquet() - old_objects, 600, "the new reviews' first object", every=0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher, the driver's JVM and its Python
        proc.wait()
    text = log.read_text()
    # Killed in the reviews' write, after the quarantine's commit (ingest commits it first).
    assert "[ingest] write ..." in text and f"wrote {root}/quarantine" in text, text[-3000:]
    # The kill landed before the commit: the new version's objects are in the bucket, unnamed by the
    # log, which still holds the copied version alone; that version's files are the ones read.
    assert new <= parquet() and log_entries() == ["00000000000000000000.json"], (new, log_entries())
    with s3_server.keys_in(spark, bucket):
        live = {f.split(f"{bucket}/", 1)[1] for f in io.table_files(spark, f"{root}/reviews")}
        assert live == old_objects and not live & new
        before = sorted(tuple(r) for r in io.read_dataset(spark, f"{root}/reviews", "ingest").collect())
        assert before == sorted(tuple(r) for r in io.read_dataset(spark, s3_ingest["root"] + "/reviews", "i").collect())
        # The rerun (in this process: the kill is what needed a process of its own) commits
        # version 1: the new input's reviews, fewer than and other than the old.
        ingest(spark, load_config([str(REPO / "conf" / "local.yaml"), str(REPO / "conf" / "s3.yaml")], sets))
        assert [h["version"] for h in io.history(spark, f"{root}/reviews")] == [1, 0]
        after = sorted(tuple(r) for r in io.read_dataset(spark, f"{root}/reviews", "ingest").collect())
    rep = json.loads(s3.get_object(Bucket=bucket, Key="killed/report/ingest.json")["Body"].read())
    assert rep["reconciled"] is True and len(after) == rep["accepted"] < len(before), (rep["accepted"], len(before))
    assert after != before


@pytest.mark.spark
def test_published_directories_on_s3a_are_versioned_and_a_crash_keeps_the_current_one(
        spark, s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """io.publish_dir on s3a://: each publish uploads a version, one PUT of _PUBLISHED makes it
    current, and the readers (read_text, path_exists, file_stamp, download, dataset_exists, the
    report index) read that version only. A publish that dies after uploading its version and
    before that PUT leaves the old version current and whole (the new objects are in the bucket:
    the fault landed after the upload); one that dies while its files are made uploads nothing."""
    from reviewrec import io
    from reviewrec.report import index

    s3, bucket = s3_server.client(), s3_server.bucket
    report = f"s3a://{bucket}/published/report"
    model = f"{report}/model"

    def publish(n: int, fail: str | None = None) -> None:
        with io.publish_dir(spark, model) as d:
            (Path(d) / "metrics.json").write_text(json.dumps({"models": {"lstm": {"accuracy": n / 10}}}))
            (Path(d) / "index.html").write_text(f"<h1>model {n}</h1>")
            if fail == "while made":
                raise RuntimeError("died while the files were made")
            (Path(d) / "weights.bin").write_bytes(bytes([n]) * 1000 * n)

    def state() -> tuple[str, str, bytes]:
        local = tmp_path / f"down-{time.monotonic_ns()}"
        io.download(spark, model, str(local))
        return (io.read_text(spark, f"{model}/metrics.json"), io.read_text(spark, f"{model}/index.html"),
                (local / "weights.bin").read_bytes())

    def versions() -> set[str]:
        return {k.split("/")[3] for k in s3_server.keys("published/report/model/")} - {"_PUBLISHED"}

    def pointer() -> str:
        return s3.get_object(Bucket=bucket, Key="published/report/model/_PUBLISHED")["Body"].read().decode().strip()

    with s3_server.keys_in(spark):
        publish(1)
        v1 = pointer()
        one = state()
        assert one == ('{"models": {"lstm": {"accuracy": 0.1}}}', "<h1>model 1</h1>", bytes([1]) * 1000)
        assert versions() == {v1} and io.resolve(spark, f"{model}/index.html") == f"{model}/{v1}/index.html"
        assert io.path_exists(spark, f"{model}/weights.bin") and io.dataset_exists(spark, model)
        assert io.file_stamp(spark, f"{model}/weights.bin")[0] == 1000
        # A reader of the report index is sent to the current version's page.
        assert index.read_reports(spark, report)["model"]["href"] == f"model/{v1}/index.html"
        # Dies after the upload, before the pointer's PUT: the new version's objects are there,
        # the pointer and every reader still on version 1.
        put = io._FS.copy_from_local

        def dies_at_the_pointer(fs, local: str, dst: str) -> None:
            if dst.endswith("/" + io.PUBLISHED):
                raise OSError("the driver died before the commit")
            put(fs, local, dst)

        monkeypatch.setattr(io._FS, "copy_from_local", dies_at_the_pointer)
        with pytest.raises(OSError, match="before the commit"):
            publish(2)
        monkeypatch.setattr(io._FS, "copy_from_local", put)
        orphan = versions() - {v1}
        assert len(orphan) == 1 and pointer() == v1 and state() == one
        with pytest.raises(RuntimeError):
            publish(3, fail="while made")
        assert versions() == {v1} | orphan and state() == one
        # The next publish: current; the one it replaced stays for readers that resolved it, the
        # unfinished one is gone; the one after drops version 1.
        publish(4)
        v4 = pointer()
        assert state()[2] == bytes([4]) * 4000 and versions() == {v1, v4}
        publish(5)
        assert state()[2] == bytes([5]) * 5000 and versions() == {v4, pointer()}
        # A file is never written into a published directory behind its version's back.
        with pytest.raises(ValueError, match="inside a published directory"):
            io.write_json_atomic(spark, f"{model}/metrics.json", {})


@pytest.mark.spark
def test_preflight_names_the_url_and_what_failed(spark, s3_server: S3Server) -> None:
    bucket = s3_server.bucket
    ok = f"s3a://{bucket}/preflight/run"
    objectstore.probe(spark, ok, s3_server.bucket_conf(bucket))  # reachable, root not there yet: fine

    missing = "s3a://reviewrec-missing/run"
    wrong = {**s3_server.bucket_conf(bucket), f"fs.s3a.bucket.{bucket}.secret.key": "not-the-secret-key-0000"}
    closed = {**s3_server.bucket_conf(bucket), f"fs.s3a.bucket.{bucket}.endpoint": f"http://127.0.0.1:{free_port()}"}
    cases = [(missing, s3_server.bucket_conf("reviewrec-missing"), "the bucket 'reviewrec-missing' does not exist"),
             (ok, wrong, "the credentials were rejected"),
             (ok, closed, "is unreachable")]
    for url, conf, words in cases:
        t0 = time.perf_counter()
        with pytest.raises(objectstore.ObjectStoreUnavailable) as err:
            objectstore.probe(spark, url, conf)
        seconds = time.perf_counter() - t0
        assert str(err.value).startswith(f"{url}: "), err.value
        assert words in str(err.value)
        assert "not-the-secret-key-0000" not in str(err.value)
        assert seconds < 15, f"{words}: {seconds:.1f}s"


@pytest.mark.spark
@pytest.mark.slow
def test_launcher_stops_before_any_stage(s3_server: S3Server, raw: Path, tmp_path: Path) -> None:
    url = "s3a://reviewrec-missing/run"
    events = tmp_path / "events"
    out, seconds = launch(s3_server, "ingest", _settings(str(raw), url), events)
    logs = out.stdout + out.stderr  # spark-submit passes the driver's Python log on as its stdout
    assert out.returncode == 1, logs[-3000:]
    said = f"ERROR reviewrec: {url}: the bucket 'reviewrec-missing' does not exist at {s3_server.endpoint}"
    assert said in logs
    assert "Traceback" not in logs
    # Within seconds of the session's start (S3A's own retries would take minutes).
    started = re.search(r"^(\d\d):(\d\d):(\d\d) INFO reviewrec.session: Spark .* session", logs, re.M)
    failed = re.search(r"^(\d\d):(\d\d):(\d\d) ERROR reviewrec: s3a://", logs, re.M)
    assert started and failed, logs[-3000:]
    t0, t1 = (int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3]) for m in (started, failed))
    assert 0 <= (t1 - t0) % 86400 < 30, (started[0], failed[0])
    # Before any stage: the session started and logged, no job was submitted.
    kinds = {e["Event"] for e in spark_events(sorted(events.iterdir()))}
    assert "SparkListenerApplicationStart" in kinds
    assert not kinds & {"SparkListenerJobStart", "SparkListenerStageSubmitted"}
    assert seconds < 300


def test_s3_script_port_taken_and_idempotent_up(s3_server: S3Server, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        out = s3_script(tmp_path / "state", port, "up", check=False)
    assert out.returncode == 1
    assert re.search(rf"port {port} on 127\.0\.0\.1 is already in use by .*python.*pid=\d+", out.stderr), out.stderr
    assert not (tmp_path / "state" / "moto.pid").exists()

    pid = s3_server.pid
    again = s3_script(s3_server.state, s3_server.port, "up", "--bucket", "reviewrec-extra")
    assert "already up" in again.stderr
    assert s3_server.pid == pid
    status = s3_script(s3_server.state, s3_server.port, "status")
    assert f"running (pid {pid}, endpoint {s3_server.endpoint}" in status.stdout
    assert re.search(r"buckets: .*reviewrec-extra", status.stdout)


def test_config_hash_and_printout_leave_keys_out(caplog: pytest.LogCaptureFixture) -> None:
    local = str(REPO / "conf" / "local.yaml")
    secret = f"spark.conf.spark.hadoop.fs.s3a.secret.key={CANARY_SECRET}"
    plain, with_key = load_config([local]), load_config([local], [secret])
    assert plain.hash() == with_key.hash()
    with caplog.at_level("INFO"):
        with_key.log_effective()
    text = caplog.text
    assert "spark.conf.spark.hadoop.fs.s3a.secret.key = '*********(redacted)'" in text
    assert CANARY_SECRET not in text
    assert objectstore.redact_text(f"--set {secret.split('=')[0]}={CANARY_SECRET}") == \
        f"--set {secret.split('=')[0]}=*********(redacted)"


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.horovod
def test_train_evaluate_recommend_on_s3a_equal_the_local_reference(spark, s3_server: S3Server,
                                                                   local_reference: Path) -> None:
    """The reference run's reviews, features and features_meta copied to s3a://, then train, evaluate
    and recommend in this session (local mode, the reference's SMALL settings and shuffle
    partitions), the bucket's keys only in the session's Hadoop configuration: the ranks read
    the features the driver staged, the executors the model it shipped."""
    from reference_runs import METRIC_TOL, SMALL

    from reviewrec import io
    from reviewrec.model import evaluate, train
    from reviewrec.model.score import score_candidates
    from reviewrec.recommend import job as recommend

    t0 = time.perf_counter()
    bucket, prefix = s3_server.bucket, "trained"
    root = f"s3a://{bucket}/{prefix}"
    s3 = s3_server.client()
    for name in ("reviews", "features", "features_meta"):
        for f in sorted((local_reference / name).rglob("*")):
            if f.is_file() and not f.name.startswith("."):  # not Hadoop's local .crc files
                s3.upload_file(str(f), bucket, f"{prefix}/{f.relative_to(local_reference)}")
    partitions = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "8")  # conf/local.yaml's, as the reference ran
    try:
        with s3_server.keys_in(spark, bucket):
            cfg = load_config([str(REPO / "conf" / "local.yaml"), str(REPO / "conf" / "s3.yaml")],
                              [*SMALL, f"run.root={root}", "recsys.fill.use_model=require"])
            copied = time.perf_counter()
            md = train.run(spark, cfg)
            trained = time.perf_counter()
            evaluate.run(spark, cfg)
            recommend.run(spark, cfg)
            done = time.perf_counter()
            text = lambda rel: io.read_text(spark, f"{root}/{rel}")  # noqa: E731
            ref = lambda rel: (local_reference / rel).read_text()  # noqa: E731
            # The same network to the last bit, trained on the staged copy of the same files.
            want = json.loads(ref("model/metadata.json"))
            assert json.loads(text("model/metadata.json"))["weights_sha256"] == md["weights_sha256"] \
                == want["weights_sha256"]
            untimed = lambda hs: [{k: v for k, v in h.items() if k not in ("seconds", "samples_per_s")}  # noqa: E731
                                  for h in hs]
            assert md["num_proc"] == 2 and untimed(md["history"]) == untimed(want["history"])
            assert md["timings"]["stage"] > 0
            got_m, want_m = (json.loads(t("report/model/metrics.json"))["models"] for t in (text, ref))
            assert got_m.keys() == want_m.keys() and "lstm" in got_m
            for model, metrics in want_m.items():
                for k, v in metrics.items():
                    if isinstance(v, float):
                        assert abs(got_m[model][k] - v) <= METRIC_TOL, (model, k, got_m[model][k], v)
                    elif k in ("confusion", "support"):
                        assert got_m[model][k] == v, (model, k)
            keys_of = lambda df: sorted(tuple(r) for r in df.select("user", "rank", "item").collect())  # noqa: E731
            recs = io.read_dataset(spark, f"{root}/recommendations", "recommend")
            assert keys_of(recs) == keys_of(io.read_dataset(spark, str(local_reference / "recommendations"), "r"))
            # The matrix filled by the model read from s3a: the local model's expected ratings.
            preds = io.read_dataset(spark, f"{root}/predictions", "recommend")
            assert {r["source"] for r in preds.select("source").distinct().collect()} == {"model"}
            cells = (preds.orderBy("user", "item").limit(300)
                     .select(F.col("user").alias("customer_id"), F.col("item").alias("product_id"),
                             F.col("predicted_rating").alias("got")))
            diff = (score_candidates(spark, cells, str(local_reference / "model"))
                    .select(F.max(F.abs(F.col("got") - F.col("predicted_rating"))).alias("d"), F.count("*").alias("n"))
                    .first())
            assert diff["n"] == min(300, preds.count()) > 0 and diff["d"] <= 1e-6, diff
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", partitions)
    print(f"s3a train/evaluate/recommend: copy {copied - t0:.1f}s, train {trained - copied:.1f}s (staging "
          f"{md['timings']['stage']:.1f}s), evaluate + recommend {done - trained:.1f}s, checks "
          f"{time.perf_counter() - done:.1f}s")
