"""reviewrec's daily batch: one task per job of the job table (reviewrec.jobs_table), in its order,
for the day that has just ended.

    generate (synthetic demo only) >> ingest >> preprocess >> eda >> features
      >> train_due >> train >> evaluate >> recommend

* The day: `ds`, the run's logical date, which for a scheduled run is the first day of its data
  interval (the day that ended); the jobs that read the day's input get `--set input.day=<ds>`
  (the settings' day_key).
* Training runs on a schedule: train_due (a short-circuit) lets train and evaluate through every
  train_every_days days, when no model exists yet, or when the run's params say {"train": true};
  otherwise they are skipped and recommend runs on the model there is.
* Each task: retries, an execution_timeout per job; the run: a deadline alert when deadline_hours
  is set (Airflow 3 has no task SLAs). The task log ends with the path of the job's report.
* Targets by settings (reviewrec_tasks.py, `./spark-submit.sh airflow ...`): local and yarn run the
  launcher (BashOperator), emr adds a step per job (EmrAddStepsOperator), dataproc submits a job
  per job (DataprocSubmitJobOperator); all from the same job list and the same arguments.

Only Airflow and the two small modules beside it are imported here: the scheduler parses this file
constantly. The target's operators are imported for that target alone.
"""
from __future__ import annotations

import datetime as dt
import logging
import sys
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, DeadlineAlert, DeadlineReference, Param, SyncCallback
from airflow.timetables.interval import CronDataIntervalTimetable

# The scheduler puts the DAG folder on sys.path; a DagBag or `python reviewrec_daily.py` may not.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parent))
import reviewrec_tasks as T  # noqa: E402 - after the path above

log = logging.getLogger(__name__)

settings = T.load_settings()


def _report(job_name: str):  # noqa: ANN202 - an Airflow callback
    def log_report(context: Any) -> None:
        log.info("reviewrec %s report: %s", job_name, T.report_path(settings, T.job_spec(job_name)))
    return log_report


def _check_training(**context: Any) -> bool:
    day = context["ds"]
    forced = (context.get("params") or {}).get("train")
    root = str(settings["root"])

    def model_exists() -> bool | None:
        local = T.model_exists_locally(root)
        if local is not None:
            return local
        if root.startswith(("s3://", "s3a://")):
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            bucket, _, key = root.split("://", 1)[1].partition("/")
            return S3Hook(aws_conn_id=settings["emr"]["aws_conn_id"]).check_for_key(
                f"{key.rstrip('/')}/model/metadata.json", bucket_name=bucket)
        if root.startswith("gs://"):
            from airflow.providers.google.cloud.hooks.gcs import GCSHook

            bucket, _, key = root[len("gs://"):].partition("/")
            return GCSHook(gcp_conn_id=settings["dataproc"]["gcp_conn_id"]).exists(
                bucket, f"{key.rstrip('/')}/model/metadata.json")
        return None

    due, why = T.train_due(settings, day, forced, model_exists)
    log.info("training %s: %s", "due" if due else "not due", why)
    return due


def _task(job: T.JobSpec, day: str) -> Any:
    common: dict[str, Any] = {"task_id": job.name,
                              "execution_timeout": dt.timedelta(minutes=T.timeout_minutes(settings, job))}
    if job.name == "recommend":
        # Runs after a skipped train/evaluate (a day off the training schedule), not after a failure.
        common["trigger_rule"] = "none_failed"
    target = settings["target"]
    if target in ("local", "yarn"):
        from airflow.providers.standard.operators.bash import BashOperator

        return BashOperator(bash_command=T.launcher_command(settings, job, day),
                            env=dict(settings["env"]) or None, append_env=True, **common)
    # The launcher's command echoes the report's path; the remote targets log it when the job is done.
    common["on_success_callback"] = _report(job.name)
    if target == "emr":
        from airflow.providers.amazon.aws.operators.emr import EmrAddStepsOperator

        emr = settings["emr"]
        return EmrAddStepsOperator(job_flow_id=emr["cluster_id"], aws_conn_id=emr["aws_conn_id"],
                                   steps=[T.emr_step(settings, job, day)], wait_for_completion=True,
                                   waiter_delay=int(emr["poll_seconds"]),
                                   waiter_max_attempts=max(1, T.timeout_minutes(settings, job) * 60
                                                           // int(emr["poll_seconds"])),
                                   **common)
    from airflow.providers.google.cloud.operators.dataproc import DataprocSubmitJobOperator

    dp = settings["dataproc"]
    return DataprocSubmitJobOperator(job=T.dataproc_job(settings, job, day), region=dp["region"],
                                     project_id=dp["project_id"], gcp_conn_id=dp["gcp_conn_id"], **common)


with DAG(
    dag_id=T.DAG_ID,
    description="reviewrec: the day's reviews through every job of the job table",
    schedule=CronDataIntervalTimetable(settings["schedule"], timezone="UTC"),
    start_date=dt.datetime.fromisoformat(settings["start_date"]).replace(tzinfo=dt.UTC),
    catchup=bool(settings["catchup"]),
    # Days run one at a time and in order: each day's ingest merges into the same run root.
    max_active_runs=1,
    default_args={"retries": int(settings["retries"]),
                  "retry_delay": dt.timedelta(minutes=float(settings["retry_delay_minutes"]))},
    params={"train": Param(None, type=["null", "boolean"],
                           description="true / false: train today or not, whatever the schedule says")},
    deadline=DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT,
                           interval=dt.timedelta(hours=float(settings["deadline_hours"])),
                           callback=SyncCallback("reviewrec_tasks.log_deadline_missed"))
    if settings["deadline_hours"] else None,
    tags=["reviewrec", settings["target"]],
    doc_md=__doc__,
) as dag:
    DAY = "{{ ds }}"
    previous = None
    for spec in T.jobs_for(settings):
        if spec.name == "train":
            from airflow.providers.standard.operators.python import ShortCircuitOperator

            gate = ShortCircuitOperator(task_id="train_due", python_callable=_check_training,
                                        ignore_downstream_trigger_rules=False)
            previous = previous >> gate if previous is not None else gate
        op = _task(spec, DAY)
        if previous is not None:
            previous >> op
        previous = op
