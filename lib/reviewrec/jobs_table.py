"""The jobs of a run, in the order they run: one table for the pipeline job and the daily DAG.

Pure Python that imports nothing, so Airflow's scheduler, which parses DAG files over and over,
reads it without Spark, TensorFlow or the rest of the package (dags/reviewrec_daily.py).
`reviewrec.pipeline.STAGES` is the same list with each stage's code; it checks at import that
the two agree.

Each job is `jobs/<name>.py`; `report` is where its report lands under run.root
(report_location says where that is on an object store).
"""
from __future__ import annotations

from dataclasses import dataclass

# URL schemes of object stores: there a published directory is versioned (reviewrec.io).
OBJECT_STORES = ("s3a", "s3", "s3n", "gs", "abfs", "abfss", "wasbs")


def is_object_store(path: str) -> bool:
    return path.split("://", 1)[0] in OBJECT_STORES if "://" in path else False


@dataclass(frozen=True)
class JobSpec:
    name: str
    target: str  # "module:function" with signature run(spark, cfg)
    outputs: tuple[str, ...]
    report: str
    # generate: only for synthetic input (it stands in for the files a day brings).
    synthetic_only: bool = False
    # Reads the day's new input (the DAG passes input.day).
    daily_input: bool = False
    # Runs on the training schedule, not every day (the model and its evaluation).
    on_training_schedule: bool = False


JOBS: tuple[JobSpec, ...] = (
    JobSpec("generate", "reviewrec.generate:run", ("raw",), "report/generate.json",
            synthetic_only=True, daily_input=True),
    JobSpec("ingest", "reviewrec.ingest.job:run", ("reviews", "quarantine", "report/ingest.json"),
            "report/ingest.json", daily_input=True),
    JobSpec("preprocess", "reviewrec.preprocess.job:run", ("tokens", "report/preprocess.json"),
            "report/preprocess.json", daily_input=True),
    JobSpec("eda", "reviewrec.eda:run", ("report/eda",), "report/eda/index.html"),
    JobSpec("features", "reviewrec.features.job:run",
            ("features", "features_meta/vocab.json", "report/features.json"), "report/features.json"),
    JobSpec("train", "reviewrec.model.train:run", ("model/model.keras", "model/metadata.json"),
            "model/metadata.json", on_training_schedule=True),
    JobSpec("evaluate", "reviewrec.model.evaluate:run", ("report/model",), "report/model/index.html",
            on_training_schedule=True),
    JobSpec("recommend", "reviewrec.recommend.job:run",
            ("popularity", "neighbors", "predictions", "recommendations", "report/recs"),
            "report/recs/index.html"),
)

JOB_NAMES: tuple[str, ...] = tuple(j.name for j in JOBS)


def job(name: str) -> JobSpec:
    """The job called `name`; KeyError naming the jobs there are."""
    for j in JOBS:
        if j.name == name:
            return j
    raise KeyError(f"no job {name!r} in the job table; jobs: {', '.join(JOB_NAMES)}")


def report_location(root: str, spec: JobSpec) -> str:
    """Where the job's report is under run root `root`, for a person to open: on an object store,
    a report inside a directory the job publishes is in the version its _PUBLISHED names."""
    root = root.rstrip("/")
    published = next((o for o in spec.outputs if spec.report.startswith(o + "/")), None)
    if published and is_object_store(root):
        return f"{root}/{published}/<version named in {published}/_PUBLISHED>/{spec.report[len(published) + 1:]}"
    return f"{root}/{spec.report}"
