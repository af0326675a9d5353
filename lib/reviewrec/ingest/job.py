"""The ingest job: read the configured input, validate, merge by review_id, account for every line.

    ./spark-submit.sh ingest                               # all the input: rebuild
    ./spark-submit.sh ingest --set input.day=2015-09-02    # one day: merge it (docs/incremental.md)

Outputs under run.root:
  reviews/       canonical typed reviews (schema.REVIEWS_SCHEMA), one row per review_id, plus
                 arrival_day (the first day a row of it arrived) and last_seen_day (the day of
                 the row stored); null days: input outside day directories
  quarantine/    source_file, reason, raw_record, arrival_day for every record not accepted
  duplicates/    the rows not kept (reviews columns, source_file, arrival_day, kind: duplicate
                 or superseded)
  ingest_days/   the ledger: per day, the files ingested and the day's reconciliation
  report/ingest.json   the reconciliation of the run (of the day with input.day), of every day
                       and in total: every input line is a header, blank, accepted, a
                       correction, a duplicate, superseded, quarantined or excluded by the
                       category filter, and they add up.

input.day unset: every file under the input path is read and the tables above are rebuilt
(`merge.classify` takes the days in day order). input.day set: only the files of
<input path>/dt=<day>/ that the ledger does not list are read; their quarantined and dropped
rows replace that day's (and those files') rows, and the day's kept rows are merged into
reviews (`merge.against_stored`, a Delta MERGE of only the rows that change). The rule for
which row of a review_id is kept is `reviewrec.ingest.merge`'s: order-independent, so days run
in any order, or all at once, end with the same reviews.
"""
from __future__ import annotations

import glob
import logging
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from reviewrec import io
from reviewrec import schema as S
from reviewrec.config import Config
from reviewrec.ingest import days as D
from reviewrec.ingest import merge as M
from reviewrec.ingest import parse as P
from reviewrec.runtime import StageTimer

log = logging.getLogger(__name__)

REVIEWS, QUARANTINE, DUPLICATES = "reviews", "quarantine", "duplicates"
REVIEWS_OUT_SCHEMA = T.StructType(list(S.REVIEWS_SCHEMA.fields) + [
    T.StructField(M.ARRIVAL_DAY, T.DateType(), True), T.StructField(M.LAST_SEEN_DAY, T.DateType(), True)])
# The numbers of a day's (or a run's) reconciliation, and its breakdowns.
COUNTS = ("lines", "header_lines", "blank_lines", "records", "accepted", "corrections", "duplicates", "superseded",
          "quarantined", "excluded_by_category")
DETAILS = ("quarantined_by_reason", "excluded_by_category_detail", "accepted_by_category_before_dedupe")
_CLASS_KEY = {M.ACCEPTED: "accepted", M.CORRECTION: "corrections", M.DUPLICATE: "duplicates",
              M.SUPERSEDED: "superseded"}


class ReconciliationError(RuntimeError):
    """Input lines and output rows do not add up: a bug, never a data problem."""


def raw_path(root: str) -> str:
    return io.dataset_path(root, "raw")


def read_fields(spark: SparkSession, fmt: str, path: str | list[str], category: str | None,
                base_path: str | None = None) -> DataFrame:
    """Read `path` (one path, or a list of files) in format `fmt` into the common 'fields' shape
    (see parse.py). `base_path`: the directory partition directories are found under."""
    reader = spark.read.option("basePath", base_path) if base_path else spark.read
    paths = [path] if isinstance(path, str) else list(path)
    if fmt in ("tsv", "synthetic"):
        lines = reader.text(paths).withColumn(S.SOURCE_FILE, F.input_file_name())
        return P.tsv_lines_to_fields(lines)
    if fmt == "parquet":
        return P.parquet_to_fields(reader.parquet(*paths), category)
    if fmt == "json":
        df = (reader
              .schema(P.MCAULEY_SCHEMA)
              .option("mode", "PERMISSIVE")
              .option("columnNameOfCorruptRecord", "_corrupt_record")
              .json(paths))
        return P.mcauley_to_fields(df, category)
    raise ValueError(f"unknown input format {fmt!r}")


def _exists(spark: SparkSession, path: str) -> bool:
    p = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path)  # type: ignore[attr-defined]
    return bool(p.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).exists(p))  # type: ignore[attr-defined]


def _parse(spark: SparkSession, fmt: str, files: list[D.InputFile], category: str | None,
           base_path: str | None) -> DataFrame:
    """Validated rows of `files` with their day (DAY), raw text kept only where quarantined."""
    parsed = P.validate_fields(read_fields(spark, fmt, [f.path for f in files], category, base_path))
    return (parsed
            .withColumn(P.RAW, F.when(~F.col(P.KIND).isin(P.OK, *P.NOT_RECORDS), F.col(P.RAW)))
            .withColumn(M.DAY, M.day_of_file(F.col(S.SOURCE_FILE)))
            .persist(StorageLevel.MEMORY_AND_DISK))


def _empty_counts() -> dict[str, Any]:
    return {**dict.fromkeys(COUNTS, 0), **{d: {} for d in DETAILS}}


def add_counts(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two reconciliations added (a day's files ingested in two runs; days into a total)."""
    out = _empty_counts()
    for k in COUNTS:
        out[k] = a.get(k, 0) + b.get(k, 0)
    for k in DETAILS:
        merged: dict[str, int] = dict(a.get(k, {}))
        for c, n in b.get(k, {}).items():
            merged[c] = merged.get(c, 0) + n
        out[k] = dict(sorted(merged.items()))
    return out


def reconciles(c: dict[str, Any]) -> bool:
    return (c["records"] == c["lines"] - c["header_lines"] - c["blank_lines"]
            == c["accepted"] + c["corrections"] + c["duplicates"] + c["superseded"] + c["quarantined"]
            + c["excluded_by_category"])


def _tally(parsed: DataFrame, cats: list[str] | None) -> dict[str | None, dict[str, Any]]:
    """Per day: lines, header and blank lines, records, quarantined (by reason), excluded by
    category, valid rows by category."""
    rows = D.count_by(parsed.select(
        M.DAY, P.KIND, F.when(F.col(P.KIND) == P.OK, F.col(S.PRODUCT_CATEGORY)).alias("cat")), M.DAY, P.KIND, "cat")
    out: dict[str | None, dict[str, Any]] = {}
    for (day, kind, cat), n in rows.items():
        c = out.setdefault(D.as_day(day), _empty_counts())
        c["lines"] += n
        if kind == P.HEADER:
            c["header_lines"] += n
        elif kind == P.BLANK:
            c["blank_lines"] += n
        elif kind != P.OK:
            c["quarantined"] += n
            c["quarantined_by_reason"][kind] = c["quarantined_by_reason"].get(kind, 0) + n
        elif cats is not None and cat not in cats:
            c["excluded_by_category"] += n
            c["excluded_by_category_detail"][str(cat)] = c["excluded_by_category_detail"].get(str(cat), 0) + n
        else:
            c["accepted_by_category_before_dedupe"][str(cat)] = \
                c["accepted_by_category_before_dedupe"].get(str(cat), 0) + n
    for c in out.values():
        c["records"] = c["lines"] - c["header_lines"] - c["blank_lines"]
        for k in DETAILS:
            c[k] = dict(sorted(c[k].items()))
    return out


def _classes(classified: DataFrame, per_day: dict[str | None, dict[str, Any]]) -> int:
    """Add each day's rows per class to `per_day`; the number of rows that change reviews
    (against_stored's CHANGE; 0 without it)."""
    change = F.col(M.CHANGE) if M.CHANGE in classified.columns else F.lit(False)
    changes = 0
    for (day, cls, ch), n in D.count_by(classified.withColumn("_ch", change), M.DAY, M.CLASS, "_ch").items():
        per_day.setdefault(D.as_day(day), _empty_counts())[_CLASS_KEY[cls]] += n
        changes += n if ch else 0
    return changes


def _check(per_day: dict[str | None, dict[str, Any]], where: str) -> None:
    for day, c in sorted(per_day.items(), key=lambda kv: kv[0] or ""):
        if not reconciles(c):
            parts = " + ".join(f"{k} {c[k]}" for k in COUNTS[4:])
            raise ReconciliationError(
                f"ingest of {where} does not reconcile for day {day or '(none)'}: {parts} != {c['records']} input "
                f"records ({c['lines']} lines - {c['header_lines']} headers - {c['blank_lines']} blank)")


def _quarantine_rows(parsed: DataFrame) -> DataFrame:
    return (parsed.filter(~F.col(P.KIND).isin(P.OK, *P.NOT_RECORDS))
            .select(F.col(S.SOURCE_FILE), F.col(P.KIND).alias(S.REASON), F.col(P.RAW).alias(S.RAW_RECORD),
                    F.col(M.DAY).alias(M.ARRIVAL_DAY)))


def _kept(parsed: DataFrame, cats: list[str] | None) -> DataFrame:
    return (P.filter_categories(parsed.filter(F.col(P.KIND) == P.OK), cats)
            .select(*S.REVIEWS_COLUMNS, S.SOURCE_FILE, M.DAY))


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    inp = cfg["input"]
    root = cfg["run"]["root"]
    base = raw_path(root) if inp["format"] == "synthetic" else inp["path"]
    if inp["format"] == "synthetic" and not _exists(spark, base):
        raise FileNotFoundError(f"synthetic input not found at {base}: run the generate job first "
                                "(./spark-submit.sh generate), or the pipeline job")
    # Every commit of the run records its config hash (run.skip_existing), whichever session runs it.
    with D.commit_metadata(spark, {"config_hash": cfg.hash()}):
        if inp.get("day"):
            return _run_day(spark, cfg, base, inp["day"])
        return _run_all(spark, cfg, base)


def _settings(cfg: Config) -> tuple[str, list[str] | None, str | None]:
    inp = cfg["input"]
    return inp["format"], None if inp["categories"] == "all" else list(inp["categories"]), inp.get("category")


def _run_all(spark: SparkSession, cfg: Config, base: str) -> dict[str, Any]:
    """Every file under `base`: reviews, quarantine, duplicates and the ledger rebuilt."""
    timer = StageTimer("ingest")
    root = cfg["run"]["root"]
    fmt, cats, category = _settings(cfg)
    with timer.stage("read+validate"):
        files = D.list_input(spark, base)
        if not files:
            raise FileNotFoundError(f"no input files at {base} (format {fmt})")
        # A directory: the partition directories under it (dt=..., product_category=...) are columns.
        base_path = base if not glob.has_magic(base) and _is_dir(spark, base) else None
        parsed = _parse(spark, fmt, files, category, base_path)
        per_day = _tally(parsed, cats)
    if sum(c["records"] for c in per_day.values()) == 0:
        raise ValueError(f"no input records found at {base} (format {fmt})")
    _warn_absent_categories(per_day, cats, base)
    with timer.stage("dedupe"):
        classified = M.classify(_kept(parsed, cats), cfg["ingest"]["dedupe"],
                                cfg["ingest"]["broadcast_duplicate_ids"]).persist(StorageLevel.MEMORY_AND_DISK)
        _classes(classified, per_day)
    _check(per_day, base)
    ledger = {day: {"files": {f.name: f.size for f in files if f.day == day}, "counts": c}
              for day, c in per_day.items()}
    with timer.stage("write"):
        io.write_dataset(_quarantine_rows(parsed), io.dataset_path(root, QUARANTINE))
        io.write_dataset(M.reviews_of(classified), io.dataset_path(root, REVIEWS))
        io.write_dataset(M.dropped_of(classified), io.dataset_path(root, DUPLICATES))
        io.write_dataset(D.ledger_rows(spark, ledger, cfg.hash()), D.ledger_path(root))
    _log_quarantine_examples(parsed, cfg["ingest"]["log_examples"])
    classified.unpersist()
    parsed.unpersist()
    total = _total(spark, root, ledger)
    summary = {"mode": "all", "day": None,
               "input": {"format": fmt, "path": base, "files": len(files),
                         **{k: total[k] for k in ("lines", "header_lines", "blank_lines", "records")}},
               **{k: total[k] for k in COUNTS[4:] + DETAILS},
               "reconciled": total["reconciled"],
               "days": _days_section(ledger), "total": total,
               "categories": "all" if cats is None else cats, "config_hash": cfg.hash(), "timings_s": timer.timings}
    return _finish(spark, cfg, summary, None)


def _is_dir(spark: SparkSession, path: str) -> bool:
    p = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path)  # type: ignore[attr-defined]
    fs = p.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())  # type: ignore[attr-defined]
    return bool(fs.exists(p) and fs.getFileStatus(p).isDirectory())


def _stored(spark: SparkSession, path: str) -> DataFrame:
    if not io.is_table(spark, path):
        return spark.createDataFrame([], REVIEWS_OUT_SCHEMA)
    stored = io.read_dataset(spark, path, "ingest")
    if M.ARRIVAL_DAY not in stored.columns or M.LAST_SEEN_DAY not in stored.columns:
        raise ValueError(f"{path} was written before ingest merged days (no {M.ARRIVAL_DAY} column): rebuild it "
                         "once with one run over all the input (input.day unset), then run days")
    return stored.select(*M.REVIEWS_OUT)


def _run_day(spark: SparkSession, cfg: Config, base: str, day: str) -> dict[str, Any]:
    """The files of `day` not ingested yet, merged into reviews (module docstring)."""
    timer = StageTimer("ingest")
    root = cfg["run"]["root"]
    fmt, cats, category = _settings(cfg)
    reviews_path = io.dataset_path(root, REVIEWS)
    stored = _stored(spark, reviews_path)
    ledger = D.read_ledger(spark, root)
    files = D.day_files(spark, base, day)
    done = ledger.get(day, {}).get("files", {})
    todo = D.pending(files, done, day)
    names = sorted(f.name for f in todo)
    this_run: dict[str, Any] = {"files_read": len(todo), "files_already_ingested": len(files) - len(todo),
                                "reviews_changed": 0, "recovered_from_commit": False}
    if not todo:
        log.info("ingest: day %s is ingested already (its %d file(s) are in the ledger): nothing to do", day,
                 len(files))
        return _day_summary(spark, cfg, base, day, ledger, this_run, timer)
    applied = D.applied_commit(spark, reviews_path, day, names)
    if applied is not None:
        # An earlier run merged these files and died before the ledger: complete it.
        log.warning("ingest: day %s: the merge of %d file(s) was committed by an earlier run that stopped "
                    "before its ledger entry; completing the ledger from that commit", day, len(todo))
        counts = applied["counts"]
        this_run.update(recovered_from_commit=True, files_read=0)
    else:
        with timer.stage("read+validate"):
            parsed = _parse(spark, fmt, todo, category, D.day_dir(base, day))
            tally = _tally(parsed, cats)
        counts = tally.get(day, _empty_counts())
        _warn_absent_categories(tally, cats, D.day_dir(base, day))
        with timer.stage("dedupe"):
            day_rows = M.classify(_kept(parsed, cats), True, cfg["ingest"]["broadcast_duplicate_ids"])
            # Met once with the version of reviews read above; the counts, the dropped rows
            # and the merge all come from this.
            classified = M.against_stored(day_rows, stored).persist(StorageLevel.MEMORY_AND_DISK)
            per = {day: counts}
            n_changes = _classes(classified, per)
        _check(per, D.day_dir(base, day))
        with timer.stage("write"):
            # The day's quarantined and dropped rows (late files: those files') replace any that an
            # interrupted run of the same files left; with none to write, no run left any.
            sources = D.files_of_rows(parsed, S.SOURCE_FILE) if done else None
            with D.commit_metadata(spark, {D.META_KEY: {"day": day, "files": names, "counts": counts}}):
                dropped = counts["duplicates"] + counts["superseded"]
                for rows, name, n in ((_quarantine_rows(parsed), QUARANTINE, counts["quarantined"]),
                                      (M.dropped_of(classified), DUPLICATES, dropped)):
                    if n:
                        D.replace_rows(rows, io.dataset_path(root, name), day, M.ARRIVAL_DAY, sources,
                                       retention=bool(done))
                if n_changes:
                    D.upsert(M.upserts(classified), reviews_path, S.REVIEW_ID)
            this_run["reviews_changed"] = n_changes
        _log_quarantine_examples(parsed, cfg["ingest"]["log_examples"])
        classified.unpersist()
        parsed.unpersist()
    entry = ledger.get(day, {"files": {}, "counts": _empty_counts()})
    ledger[day] = {"files": {**entry["files"], **{f.name: f.size for f in todo}},
                   "counts": add_counts(entry["counts"], counts) if entry["files"] else counts}
    D.replace_rows(D.ledger_rows(spark, {day: ledger[day]}, cfg.hash()), D.ledger_path(root), day, "day")
    return _day_summary(spark, cfg, base, day, ledger, this_run, timer)


def _day_summary(spark: SparkSession, cfg: Config, base: str, day: str, ledger: dict[str | None, dict[str, Any]],
                 this_run: dict[str, Any], timer: StageTimer) -> dict[str, Any]:
    """The report of a day's run: the day's reconciliation (all its files, whichever run read
    them), this run's part, every day's and the total."""
    fmt, cats, _ = _settings(cfg)
    c = ledger[day]["counts"]
    total = _total(spark, cfg["run"]["root"], ledger)
    summary = {"mode": "day", "day": day,
               "input": {"format": fmt, "path": D.day_dir(base, day), "files": len(ledger[day]["files"]),
                         **{k: c[k] for k in ("lines", "header_lines", "blank_lines", "records")}},
               **{k: c[k] for k in COUNTS[4:] + DETAILS},
               "reconciled": reconciles(c), "this_run": this_run,
               "days": _days_section(ledger), "total": total,
               "categories": "all" if cats is None else cats, "config_hash": cfg.hash(), "timings_s": timer.timings}
    return _finish(spark, cfg, summary, day)


def _days_section(ledger: dict[str | None, dict[str, Any]]) -> dict[str, Any]:
    return {day or "undated": {**v["counts"], "files": len(v["files"]), "reconciled": reconciles(v["counts"])}
            for day, v in sorted(ledger.items(), key=lambda kv: kv[0] or "")}


def _total(spark: SparkSession, root: str, ledger: dict[str | None, dict[str, Any]]) -> dict[str, Any]:
    """Every day's reconciliation added, and the check that every stored review was accepted
    exactly once: the days' accepted rows add up to the rows of reviews."""
    total = _empty_counts()
    for v in ledger.values():
        total = add_counts(total, v["counts"])
    reviews = io.read_dataset(spark, io.dataset_path(root, REVIEWS), "ingest").count()
    total["reviews"] = reviews
    total["reconciled"] = reconciles(total) and total["accepted"] == reviews
    if total["accepted"] != reviews:
        raise ReconciliationError(f"ingest: the days' accepted rows add up to {total['accepted']} but "
                                  f"{root}/reviews has {reviews} rows")
    return total


def _finish(spark: SparkSession, cfg: Config, summary: dict[str, Any], day: str | None) -> dict[str, Any]:
    root = cfg["run"]["root"]
    if not summary["reconciled"] or not summary["total"]["reconciled"]:
        raise ReconciliationError(f"ingest does not reconcile: {summary}")
    io.write_json_atomic(spark, io.dataset_path(root, "report/ingest.json"), summary)
    t = summary["total"]
    log.info("ingest%s: %d records -> %d accepted, %d corrections, %d duplicates, %d superseded, %d quarantined %s, "
             "%d excluded by category; in total %d reviews from %d day(s)", f" of day {day}" if day else "",
             summary["input"]["records"], summary["accepted"], summary["corrections"], summary["duplicates"],
             summary["superseded"], summary["quarantined"], summary["quarantined_by_reason"],
             summary["excluded_by_category"], t["reviews"], len(summary["days"]))
    return summary


def _warn_absent_categories(per_day: dict[str | None, dict[str, Any]], cats: list[str] | None, where: str) -> None:
    if cats is None:
        return
    present = {c for v in per_day.values() for d in ("accepted_by_category_before_dedupe",
                                                     "excluded_by_category_detail") for c in v[d]}
    absent = [c for c in cats if c not in present]
    if absent:
        log.warning("categories %s have no rows in %s (categories present: %s)", absent, where, sorted(present))


def _log_quarantine_examples(parsed: DataFrame, k: int) -> None:
    """Up to `k` quarantined rows per reason to the log (one query), so a broken feed is visible."""
    if k <= 0:
        return
    from pyspark.sql import Window

    bad = parsed.filter(~F.col(P.KIND).isin(P.OK, *P.NOT_RECORDS))
    per = Window.partitionBy(P.KIND).orderBy(S.SOURCE_FILE, P.RAW)
    rows = (bad.select(P.KIND, S.SOURCE_FILE, P.RAW, F.row_number().over(per).alias("_n"),
                       F.count(F.lit(1)).over(Window.partitionBy(P.KIND)).alias("_of"))
            .filter(F.col("_n") <= k).orderBy(P.KIND, "_n").collect())
    for row in rows:
        raw = (row[P.RAW] or "")
        log.warning("quarantined (%s, %d rows) in %s: %s", row[P.KIND], row["_of"], row[S.SOURCE_FILE],
                    raw[:200] + ("..." if len(raw) > 200 else ""))
