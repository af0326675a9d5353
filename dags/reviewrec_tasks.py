"""What each task of the daily DAG (reviewrec_daily.py) runs, for each target, from one job table
(reviewrec.jobs_table) and one argument builder (app_args). Imports neither Airflow nor Spark nor
a cloud SDK: the scheduler parses the DAG file constantly, and lib/airflow.sh and the tests use
these functions as they are.

Targets (the settings' `target`):
  local, yarn  the launcher, `<repo>/spark-submit.sh <job> <app_args> [-- <spark_args>]`, on the
               Airflow worker, which holds a clone of the repository and its .venv (REVIEWREC_HOME):
               the launcher zips the package, ships the confs, the packed environment and the
               jars exactly as it does by hand, so nothing is restated here to drift from it.
               local: Spark local mode (conf/local.yaml); yarn: a YARN conf (conf/yarn.yaml).
  emr          EmrAddStepsOperator: one command-runner step `spark-submit <arguments>` per job.
  dataproc     DataprocSubmitJobOperator: one PySpark job per job, the same arguments as fields.
  The arguments of emr and dataproc are the launcher's own (`./spark-submit.sh submit-args`),
  computed at deploy time by `./spark-submit.sh airflow bundle` (make_bundle below) with the
  local files mapped to where they are uploaded; only the day's --set is added per run.

Settings: a JSON object, from $REVIEWREC_DAG_CONFIG (a file's path, or the JSON itself), else
reviewrec_dag.json beside the DAG file, else the defaults (the local demo); DEFAULTS lists the keys.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
# The job table: reviewrec/jobs_table.py beside this file (a bundle for MWAA / Composer), else the
# repository's lib/ (a clone).
if not (_HERE / "reviewrec" / "jobs_table.py").is_file() and (_HERE.parent / "lib" / "reviewrec").is_dir():
    _lib = str(_HERE.parent / "lib")
    if _lib not in sys.path:
        sys.path.append(_lib)

from reviewrec.jobs_table import JOBS, JobSpec, report_location  # noqa: E402 - after the path above
from reviewrec.jobs_table import job as job_spec  # noqa: E402, F401 - for the DAG file

log = logging.getLogger(__name__)

DAG_ID = "reviewrec_daily"
TARGETS = ("local", "yarn", "emr", "dataproc")
SETTINGS_FILE = "reviewrec_dag.json"
SETTINGS_ENV = "REVIEWREC_DAG_CONFIG"

# Task timeouts in minutes (execution_timeout), per job; "default" for the others.
TIMEOUTS = {"default": 120, "generate": 30, "ingest": 120, "preprocess": 180, "eda": 60, "features": 120,
            "train": 480, "evaluate": 120, "recommend": 180}

DEFAULTS: dict[str, Any] = {
    "target": "local",
    # A clone of the repository on the Airflow worker (local, yarn); default $REVIEWREC_HOME, else
    # the directory above this file's.
    "repo": None,
    # --conf files given to every job (relative to the repository); default conf/local.yaml or
    # conf/yarn.yaml for those targets. emr / dataproc: set by the bundle.
    "conf": None,
    # The run root every job of every day reads and writes (--set run.root=...).
    "root": None,
    # Further --set key=value for every job.
    "sets": [],
    # spark-submit arguments after "--" (e.g. ["--deploy-mode", "cluster"]).
    "spark_args": [],
    # The config key the day goes to (YYYY-MM-DD, the data interval's first day) for the jobs that
    # read the day's input; null = none passed (every run reads all the input).
    "day_key": "input.day",
    # The synthetic demo: a generate task first, emitting the day's files (input.format synthetic).
    # Default: on for local and yarn, off for emr and dataproc (real input arrives by itself).
    "synthetic": None,
    # The demo's generator days: synthetic.days (synthetic.rows spread over them, rows / days a
    # day after them) from synthetic.start_day = start_date, so the DAG's days are the generator's.
    "synthetic_days": 30,
    # The data interval: one day, cron in UTC; the run for day D starts when D has ended.
    "schedule": "0 0 * * *",
    "start_date": "2024-01-01",
    "catchup": False,
    # Train (and evaluate) every this many days counted from start_date, when no model exists yet,
    # or when the run's params ask for it ({"train": true}); other days reuse the model.
    "train_every_days": 7,
    "retries": 2,
    "retry_delay_minutes": 5,
    "timeout_minutes": {},
    # The whole run must end within this many hours of being queued, else the deadline callback
    # logs an error (Airflow 3 has no task SLAs: DAG deadline alerts replace them). Off (null) by
    # default: with one, Airflow 3.3.2's `airflow dags test` fails when the run ends (it looks the
    # alert up by the wrong key), though every task has run.
    "deadline_hours": None,
    # Extra environment for the launcher's tasks (e.g. REVIEWREC_PYENV_ARCHIVE).
    "env": {},
    "emr": {"cluster_id": None, "aws_conn_id": "aws_default", "action_on_failure": "CONTINUE",
            "poll_seconds": 30},
    "dataproc": {"project_id": None, "region": None, "cluster_name": None,
                 "gcp_conn_id": "google_cloud_default"},
    # Written by the bundle (emr, dataproc): the code's URI and, per job, the launcher's
    # spark-submit arguments (without the executable and the day) with the files mapped there.
    "code_uri": None,
    "submit": {},
}


class SettingsError(ValueError):
    """A settings problem, naming the key and where the settings came from."""


def load_settings(environ: Mapping[str, str] | None = None, here: Path = _HERE) -> dict[str, Any]:
    """The DAG's settings: $REVIEWREC_DAG_CONFIG (a path or inline JSON), else reviewrec_dag.json
    beside the DAG, else the defaults; validated (SettingsError naming the key and the source)."""
    env = os.environ if environ is None else environ
    raw = env.get(SETTINGS_ENV, "").strip()
    if raw.startswith("{"):
        source, text = f"${SETTINGS_ENV}", raw
    elif raw:
        source = raw
        try:
            text = Path(raw).read_text(encoding="utf-8")
        except OSError as e:
            raise SettingsError(f"${SETTINGS_ENV}: cannot read {raw}: {e}") from e
    elif (here / SETTINGS_FILE).is_file():
        source = str(here / SETTINGS_FILE)
        text = (here / SETTINGS_FILE).read_text(encoding="utf-8")
    else:
        source, text = "defaults", "{}"
    try:
        given = json.loads(text)
    except json.JSONDecodeError as e:
        raise SettingsError(f"{source}: not valid JSON: {e}") from e
    return resolve_settings(given, source, env)


def resolve_settings(given: Mapping[str, Any], source: str = "settings",
                     environ: Mapping[str, str] | None = None, bundled: bool = True) -> dict[str, Any]:
    """The settings with their defaults, validated. `bundled=False`: emr / dataproc settings
    before the bundle has added the spark-submit arguments and the cluster (lib/airflow.sh)."""
    env = os.environ if environ is None else environ
    if not isinstance(given, Mapping):
        raise SettingsError(f"{source}: expected a JSON object of settings")
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise SettingsError(f"{source}: unknown setting(s) {unknown}; known: {sorted(DEFAULTS)}")
    s = json.loads(json.dumps(DEFAULTS))
    for k, v in given.items():
        if isinstance(DEFAULTS[k], dict) and k not in ("submit", "timeout_minutes", "env"):
            if not isinstance(v, Mapping):
                raise SettingsError(f"{source}: {k} must be an object")
            extra = sorted(set(v) - set(DEFAULTS[k]))
            if extra:
                raise SettingsError(f"{source}: unknown setting(s) {k}.{extra}; known: {sorted(DEFAULTS[k])}")
            s[k].update(v)
        else:
            s[k] = v
    target = s["target"]
    if target not in TARGETS:
        raise SettingsError(f"{source}: target = {target!r}; choose one of {list(TARGETS)}")
    for k in ("sets", "spark_args"):
        if not isinstance(s[k], list) or not all(isinstance(x, str) for x in s[k]):
            raise SettingsError(f"{source}: {k} must be a list of strings")
    for item in s["sets"]:
        if "=" not in item or item.split("=", 1)[0].strip() in ("run.root", s["day_key"]):
            raise SettingsError(f"{source}: sets item {item!r}: expected key=value, and not run.root or the day "
                                f"key (the settings' root and the DAG set those)")
    if s["conf"] is None:
        s["conf"] = {"local": ["conf/local.yaml"], "yarn": ["conf/yarn.yaml"]}.get(target, [])
    if isinstance(s["conf"], str):
        s["conf"] = [s["conf"]]
    if s["synthetic"] is None:
        s["synthetic"] = target in ("local", "yarn")
    if not isinstance(s["train_every_days"], int) or s["train_every_days"] < 1:
        raise SettingsError(f"{source}: train_every_days must be a whole number of at least 1")
    try:
        dt.date.fromisoformat(s["start_date"])
    except (TypeError, ValueError) as e:
        raise SettingsError(f"{source}: start_date = {s['start_date']!r} is not YYYY-MM-DD") from e
    bad = sorted(set(s["timeout_minutes"]) - {"default", *(j.name for j in JOBS)})
    if bad:
        raise SettingsError(f"{source}: timeout_minutes for unknown job(s) {bad}")
    if target in ("local", "yarn"):
        repo = s["repo"] or env.get("REVIEWREC_HOME") or str(_HERE.parent)
        s["repo"] = str(Path(repo).resolve())
        if s["root"] is None:
            runs = f"{s['repo']}/runs/daily"
            s["root"] = runs if target == "local" else f"file://{runs}"
    elif bundled:
        if not s["root"]:
            raise SettingsError(f"{source}: target {target} needs root (the run root on the cluster's store)")
        missing = [j.name for j in jobs_for(s) if j.name not in s["submit"]]
        if missing:
            raise SettingsError(f"{source}: no spark-submit arguments for {missing}: write the settings with "
                                f"./spark-submit.sh airflow bundle --target {target} ...")
        need = {"emr": ("cluster_id",), "dataproc": ("project_id", "region", "cluster_name")}[target]
        absent = [f"{target}.{k}" for k in need if not s[target].get(k)]
        if absent:
            raise SettingsError(f"{source}: target {target} needs {absent}")
    s["source"] = source
    return s


def jobs_for(settings: Mapping[str, Any]) -> list[JobSpec]:
    """The jobs a day's run runs, in the job table's order (generate only for the synthetic demo)."""
    return [j for j in JOBS if settings["synthetic"] or not j.synthetic_only]


def timeout_minutes(settings: Mapping[str, Any], job: JobSpec) -> int:
    t = {**TIMEOUTS, **settings["timeout_minutes"]}
    return int(t.get(job.name, t["default"]))


def day_args(settings: Mapping[str, Any], job: JobSpec, day: str) -> list[str]:
    """--set <day_key>=<day> for the jobs that read the day's input."""
    if job.daily_input and settings["day_key"]:
        return ["--set", f"{settings['day_key']}={day}"]
    return []


def static_args(settings: Mapping[str, Any]) -> list[str]:
    """The job arguments every job and every day share: the confs, the run root, the synthetic
    demo's days (when it has days), the sets (last: they win)."""
    args: list[str] = []
    for c in settings["conf"]:
        args += ["--conf", c]
    args += ["--set", f"run.root={settings['root']}"]
    if settings["synthetic"] and settings["day_key"]:
        args += ["--set", f"synthetic.days={int(settings['synthetic_days'])}",
                 "--set", f"synthetic.start_day={settings['start_date']}"]
    for item in settings["sets"]:
        args += ["--set", item]
    return args


def app_args(settings: Mapping[str, Any], job: JobSpec, day: str) -> list[str]:
    """The job's arguments (after jobs/<job>.py) for one day: the one place they are made, for
    the launcher's tasks and, through the bundle, the EMR steps and Dataproc jobs."""
    return static_args(settings) + day_args(settings, job, day)


def launcher_argv(settings: Mapping[str, Any], job: JobSpec, day: str) -> list[str]:
    """The launcher's command line for one job and day (local and yarn targets)."""
    argv = [f"{settings['repo']}/spark-submit.sh", job.name, *app_args(settings, job, day)]
    if settings["spark_args"]:
        argv += ["--", *settings["spark_args"]]
    return argv


def report_path(settings: Mapping[str, Any], job: JobSpec) -> str:
    return report_location(str(settings["root"]), job)


def launcher_command(settings: Mapping[str, Any], job: JobSpec, day: str) -> str:
    """The BashOperator's command: the launcher from the repository, then the report's path (the
    task fails with the job: `set -e`)."""
    return (f"set -euo pipefail; cd {shlex.quote(settings['repo'])}; "
            f"{shlex.join(launcher_argv(settings, job, day))}; "
            f"echo {shlex.quote(f'reviewrec {job.name} report: {report_path(settings, job)}')}")


def submit_argv(settings: Mapping[str, Any], job: JobSpec, day: str) -> list[str]:
    """spark-submit's arguments for one job and day on emr / dataproc: the bundle's (the
    launcher's, files mapped) plus the day's --set."""
    return [*settings["submit"][job.name], *day_args(settings, job, day)]


def emr_step(settings: Mapping[str, Any], job: JobSpec, day: str) -> dict[str, Any]:
    """The EMR step (command-runner.jar) running spark-submit with the job's arguments."""
    return {"Name": f"reviewrec-{job.name}-{day}",
            "ActionOnFailure": settings["emr"]["action_on_failure"],
            "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-submit", *submit_argv(settings, job, day)]}}


# spark-submit options -> the Dataproc PySparkJob field (lists) or Spark property they set.
_LIST_FIELDS = {"--py-files": "python_file_uris", "--files": "file_uris", "--archives": "archive_uris",
                "--jars": "jar_file_uris"}
_PROPERTY_OPTIONS = {"--deploy-mode": "spark.submit.deployMode", "--packages": "spark.jars.packages",
                     "--name": "spark.app.name", "--driver-memory": "spark.driver.memory",
                     "--executor-memory": "spark.executor.memory", "--executor-cores": "spark.executor.cores",
                     "--num-executors": "spark.executor.instances", "--queue": "spark.yarn.queue"}


def pyspark_job(argv: Sequence[str]) -> dict[str, Any]:
    """spark-submit's arguments as a Dataproc PySparkJob: --py-files/--files/--archives/--jars as
    URI lists, --conf (and options that are Spark properties) as properties, the main file and
    its arguments. ValueError naming an option it cannot carry over (or a master other than yarn)."""
    job: dict[str, Any] = {"properties": {}}
    i = 0
    while i < len(argv):
        a = argv[i]
        if not a.startswith("--"):
            job["main_python_file_uri"] = a
            job["args"] = list(argv[i + 1:])
            return job
        if i + 1 >= len(argv):
            raise ValueError(f"spark-submit option {a} has no value")
        v = argv[i + 1]
        if a == "--master":
            if v != "yarn":
                raise ValueError(f"a Dataproc job runs on the cluster's YARN, not --master {v}")
        elif a in _LIST_FIELDS:
            job.setdefault(_LIST_FIELDS[a], []).extend(v.split(","))
        elif a == "--conf":
            k, sep, val = v.partition("=")
            if not sep:
                raise ValueError(f"--conf {v!r}: expected key=value")
            job["properties"][k] = val
        elif a in _PROPERTY_OPTIONS:
            job["properties"][_PROPERTY_OPTIONS[a]] = v
        else:
            raise ValueError(f"spark-submit option {a} has no Dataproc PySparkJob field here")
        i += 2
    raise ValueError("spark-submit arguments without the application's main file")


def dataproc_job(settings: Mapping[str, Any], job: JobSpec, day: str) -> dict[str, Any]:
    """The Dataproc job (DataprocSubmitJobOperator's `job`) running the job's arguments."""
    d = settings["dataproc"]
    return {"reference": {"project_id": d["project_id"]},
            "placement": {"cluster_name": d["cluster_name"]},
            "labels": {"app": "reviewrec", "job": job.name},
            "pyspark_job": pyspark_job(submit_argv(settings, job, day))}


def training_day(settings: Mapping[str, Any], day: str) -> bool:
    """The day falls on the training schedule: every train_every_days days from start_date."""
    start = dt.date.fromisoformat(settings["start_date"])
    return (dt.date.fromisoformat(day) - start).days % int(settings["train_every_days"]) == 0


def model_exists_locally(root: str) -> bool | None:
    """Whether <root>/model/metadata.json exists, for a run root on this worker's disk; None for
    a remote store (the DAG asks its hook)."""
    if "://" in root and not root.startswith("file://"):
        return None
    return Path(root.removeprefix("file://"), "model", "metadata.json").is_file()


def train_due(settings: Mapping[str, Any], day: str, forced: bool | None,
              model_exists: Callable[[], bool | None]) -> tuple[bool, str]:
    """(train today?, why): forced by the run's params, no model yet, or a training day."""
    if forced is not None:
        return bool(forced), f"the run's params say train={forced}"
    exists = model_exists()
    if exists is False:
        return True, f"no model under {settings['root']} yet"
    if training_day(settings, day):
        every = settings["train_every_days"]
        return True, f"{day} is a training day (every {every} days from {settings['start_date']})"
    return False, (f"{day} is not a training day (every {settings['train_every_days']} days from "
                   f"{settings['start_date']}) and a model exists: train and evaluate are skipped")


def log_deadline_missed(**context: Any) -> None:
    """The deadline alert's callback: an error line in the log (swap in a notifier to page)."""
    log.error("reviewrec_daily: the run did not finish within its deadline: %s", context)


# --- the bundle: deploy-time arguments for emr / dataproc -----------------------------------

_PATH_LIST_OPTIONS = ("--py-files", "--files", "--archives", "--jars")
_PATH_LIST_CONFS = ("spark.jars",)


def _is_local(p: str) -> bool:
    return "://" not in p or p.startswith("file://")


def map_local_paths(argv: Sequence[str], repo: Path, code_uri: str) -> tuple[list[str], dict[str, str]]:
    """The launcher's spark-submit arguments (without the executable) with every local file they
    ship (the package zip, the confs, the models, the jars, the job's main file) replaced by its
    URI under code_uri: repository files keep their path there (build/py/<hash>/reviewrec.zip,
    conf/base.yaml, jobs/ingest.py), others go to deps/<name>. Returns (arguments, {local file:
    URI}). ValueError naming a local path that no upload could serve (an extraClassPath, a local
    Python, a file that is not there)."""
    code_uri = code_uri.rstrip("/")
    uploads: dict[str, str] = {}

    def remote(p: str) -> str:
        path, hash_, alias = p.partition("#")
        local = Path(path.removeprefix("file://"))
        local = local if local.is_absolute() else repo / local
        if not local.is_file():
            raise ValueError(f"the launcher ships {p}, which is not a file here")
        try:
            rel = local.resolve().relative_to(repo.resolve()).as_posix()
        except ValueError:
            rel = f"deps/{local.name}"
        uri = f"{code_uri}/{rel}"
        if uri in uploads.values() and uploads.get(str(local)) != uri:
            raise ValueError(f"two shipped files would both be uploaded as {uri}")
        uploads[str(local)] = uri
        return uri + hash_ + alias

    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if not a.startswith("--"):
            out += [remote(a) if _is_local(a) else a, *argv[i + 1:]]
            return out, uploads
        v = argv[i + 1]
        if a in _PATH_LIST_OPTIONS:
            v = ",".join(remote(x) if _is_local(x) else x for x in v.split(","))
        elif a == "--conf":
            k, _, val = v.partition("=")
            if k in _PATH_LIST_CONFS:
                v = f"{k}=" + ",".join(remote(x) if _is_local(x) else x for x in val.split(","))
            elif k.endswith("extraClassPath") or k == "spark.pyspark.driver.python":
                raise ValueError(f"--conf {k} names a path on this machine ({val}); submit in cluster deploy mode "
                                 f"to a cluster that is not this machine's")
        out += [a, v]
        i += 2
    raise ValueError("spark-submit arguments without the application's main file")


def make_bundle(settings: Mapping[str, Any], repo: Path, code_uri: str,
                submit_args: Callable[[list[str]], list[str]]) -> tuple[dict[str, Any], dict[str, str]]:
    """The emr / dataproc settings with each job's spark-submit arguments, and the files to upload
    ({local file: URI}). `submit_args(launcher arguments)` runs `./spark-submit.sh submit-args`:
    the launcher decides every argument, as it does for the local and yarn targets."""
    out = {k: v for k, v in settings.items() if k not in ("source", "repo")}
    spark_args = list(settings["spark_args"])
    if not any(a == "--deploy-mode" or a.startswith("--deploy-mode=") for a in spark_args):
        spark_args = ["--deploy-mode", "cluster", *spark_args]
    out["spark_args"] = spark_args
    submit: dict[str, list[str]] = {}
    uploads: dict[str, str] = {}
    for job in jobs_for(settings):
        argv = submit_args([job.name, *static_args(settings), "--", *spark_args])
        mapped, files = map_local_paths(argv[1:], repo, code_uri)
        submit[job.name] = mapped
        uploads.update(files)
    zips = {a[a.index("--py-files") + 1] for a in submit.values() if "--py-files" in a}
    if len(zips) > 1:
        raise ValueError(f"the jobs got different package zips {sorted(zips)}: lib/reviewrec changed while the "
                         f"bundle was made; make it again")
    out["submit"] = submit
    out["code_uri"] = code_uri.rstrip("/")
    return out, uploads


def write_bundle(settings_json: Mapping[str, Any], repo: Path, code_uri: str, out: Path,
                 submit_args: Callable[[list[str]], list[str]]) -> dict[str, Any]:
    """out/dags: what goes to the managed Airflow's DAG folder (this DAG, this module, the job
    table, reviewrec_dag.json with every job's spark-submit arguments); out/upload: the files
    those arguments name, laid out as under code_uri (copy the folder there); out/UPLOADS: local
    file -> URI. Returns the settings written."""
    import shutil

    settings = resolve_settings(settings_json, "bundle settings", bundled=False)
    if settings["target"] not in ("emr", "dataproc"):
        raise SettingsError(f"bundle: target must be emr or dataproc, not {settings['target']!r}")
    if not settings["root"]:
        raise SettingsError("bundle: --root (the run root on the cluster's store) is required")
    written, uploads = make_bundle(settings, repo, code_uri, submit_args)
    resolve_settings(written, "bundle settings")  # what the DAG will read, checked now
    if out.exists():
        shutil.rmtree(out)
    (out / "dags" / "reviewrec").mkdir(parents=True)
    shutil.copy2(_HERE / "reviewrec_daily.py", out / "dags" / "reviewrec_daily.py")
    shutil.copy2(_HERE / "reviewrec_tasks.py", out / "dags" / "reviewrec_tasks.py")
    shutil.copy2(_HERE / ".airflowignore", out / "dags" / ".airflowignore")
    lib = repo / "lib" / "reviewrec"
    for name in ("__init__.py", "jobs_table.py"):
        shutil.copy2(lib / name, out / "dags" / "reviewrec" / name)
    (out / "dags" / SETTINGS_FILE).write_text(json.dumps(written, indent=2) + "\n", encoding="utf-8")
    prefix = code_uri.rstrip("/") + "/"
    for local, uri in sorted(uploads.items()):
        dest = out / "upload" / uri[len(prefix):]
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(local, dest)
    (out / "UPLOADS").write_text("".join(f"{local} -> {uri}\n" for local, uri in sorted(uploads.items())),
                                 encoding="utf-8")
    return written


def _main(argv: list[str]) -> int:
    """python dags/reviewrec_tasks.py bundle SETTINGS_JSON CODE_URI OUT (lib/airflow.sh bundle)."""
    import subprocess

    if len(argv) != 4 or argv[0] != "bundle":
        print(_main.__doc__, file=sys.stderr)
        return 2
    repo = _HERE.parent
    env = dict(os.environ)
    # The arguments for the remote cluster: not this machine's `yarn up` (its HDFS, its classpath).
    env["REVIEWREC_YARN_DIR"] = str(repo / "build" / "no-local-yarn")

    def submit_args(args: list[str]) -> list[str]:
        p = subprocess.run([str(repo / "spark-submit.sh"), "submit-args", *args], cwd=repo, env=env,
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise SettingsError(f"./spark-submit.sh submit-args {shlex.join(args)} failed:\n{p.stderr.strip()}")
        return p.stdout.splitlines()

    try:
        written = write_bundle(json.loads(argv[1]), repo, argv[2], Path(argv[3]), submit_args)
    except (SettingsError, ValueError) as e:
        print(f"bundle: {e}", file=sys.stderr)
        return 1
    out = Path(argv[3])
    print(f"bundle for {written['target']} in {out}: {len(written['submit'])} jobs")
    print(f"  copy {out}/upload/ to {written['code_uri']}/ (the files of {out}/UPLOADS)")
    print(f"  copy {out}/dags/ into the Airflow DAG folder")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
