"""The pipeline job: every stage in order, on one run root, with stage timings.

Each stage is a job's `run(spark, cfg)`. With run.skip_existing, a stage whose outputs exist
and whose marker and datasets (their last Delta commit's userMetadata) record the same config
hash is skipped, so a rerun after a failure resumes where it stopped.
At the end, <root>/report/index.html links every stage's report with its headline numbers
(`reviewrec.report.index`).
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession

from reviewrec import io
from reviewrec.config import Config
from reviewrec.jobs_table import JOB_NAMES, JOBS  # noqa: F401 - exported: the same jobs, Spark-free
from reviewrec.report import index
from reviewrec.runtime import peak_rss_mb

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    name: str
    target: str  # "module:function" with signature run(spark, cfg)
    outputs: tuple[str, ...]
    when: Callable[[Config], bool] = lambda cfg: True

    def load(self) -> Callable[[SparkSession, Config], Any]:
        mod, fn = self.target.split(":")
        return getattr(importlib.import_module(mod), fn)


STAGES: tuple[Stage, ...] = (
    Stage("generate", "reviewrec.generate:run", ("raw",), lambda cfg: cfg["input"]["format"] == "synthetic"),
    Stage("ingest", "reviewrec.ingest.job:run", ("reviews", "quarantine", "report/ingest.json")),
    Stage("preprocess", "reviewrec.preprocess.job:run", ("tokens", "report/preprocess.json")),
    Stage("eda", "reviewrec.eda:run", ("report/eda",)),
    Stage("features", "reviewrec.features.job:run", ("features", "features_meta/vocab.json", "report/features.json")),
    Stage("train", "reviewrec.model.train:run", ("model/model.keras", "model/metadata.json")),
    Stage("evaluate", "reviewrec.model.evaluate:run", ("report/model",)),
    Stage("recommend", "reviewrec.recommend.job:run",
          ("popularity", "neighbors", "predictions", "recommendations", "report/recs")),
)

# The daily DAG (dags/) runs reviewrec.jobs_table.JOBS, which imports nothing: the same stages.
if [(s.name, s.target, s.outputs) for s in STAGES] != [(j.name, j.target, j.outputs) for j in JOBS]:
    raise ImportError("reviewrec.pipeline.STAGES and reviewrec.jobs_table.JOBS list different jobs, code or outputs")


def _marker(root: str, stage: str) -> str:
    return io.dataset_path(root, f"_stages/{stage}.json")


def _done(spark: SparkSession, cfg: Config, stage: Stage) -> bool:
    root = cfg["run"]["root"]
    if not all(io.dataset_exists(spark, io.dataset_path(root, o)) for o in stage.outputs):
        return False
    try:
        marker = json.loads(spark.sparkContext.wholeTextFiles(_marker(root, stage.name)).first()[1])
    except Exception:  # noqa: BLE001 - no marker, unreadable marker: not done
        return False
    if marker.get("config_hash") != cfg.hash():
        return False
    # Each dataset's last commit records the config that wrote it.
    tables = [io.dataset_path(root, o) for o in stage.outputs if io.is_table(spark, io.dataset_path(root, o))]
    return all(io.config_hash_of(spark, t) == cfg.hash() for t in tables)


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    root = cfg["run"]["root"]
    timings: dict[str, float] = {}
    skipped: list[str] = []
    io.set_config_hash(spark, cfg.hash())
    for stage in STAGES:
        if not stage.when(cfg):
            continue
        if cfg["run"]["skip_existing"] and _done(spark, cfg, stage):
            log.info("pipeline: %s skipped (outputs exist for config %s)", stage.name, cfg.hash())
            skipped.append(stage.name)
            continue
        log.info("pipeline: stage %s", stage.name)
        t0 = time.perf_counter()
        stage.load()(spark, cfg)
        timings[stage.name] = round(time.perf_counter() - t0, 2)
        io.write_json_atomic(spark, _marker(root, stage.name),
                             {"stage": stage.name, "config_hash": cfg.hash(), "seconds": timings[stage.name]})
        log.info("pipeline: %s done in %.1fs (driver peak RSS %.0f MiB)", stage.name, timings[stage.name],
                 peak_rss_mb())
    summary = {"config_hash": cfg.hash(), "stage_seconds": timings, "skipped_stages": skipped, "root": root}
    io.write_json_atomic(spark, io.dataset_path(root, "report/pipeline.json"), summary)
    page = index.write(spark, root)
    shown = os.path.abspath(page) if "://" not in page else page
    log.info("pipeline finished: %s", json.dumps(timings))
    print(f"\nreviewrec pipeline done. Report: {shown}")
    return summary
