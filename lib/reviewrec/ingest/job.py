"""The ingest job: read the configured input, validate, dedupe, filter, write atomically.

Outputs under run.root:
  reviews/      canonical typed reviews (schema.REVIEWS_SCHEMA), one row per review_id
  quarantine/   source_file, reason, raw_record for every row not accepted
  duplicates/   the rows dropped by deduplication (same columns as reviews + source_file)
  report/ingest.json   the reconciliation: every input line is a header, blank, accepted,
                       quarantined, a duplicate, or excluded by the category filter, and they
                       add up.
"""
from __future__ import annotations

import logging
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from reviewrec import io
from reviewrec import schema as S
from reviewrec.config import Config
from reviewrec.ingest import parse as P
from reviewrec.runtime import StageTimer

log = logging.getLogger(__name__)


class ReconciliationError(RuntimeError):
    """Input lines and output rows do not add up: a bug, never a data problem."""


def raw_path(root: str) -> str:
    return io.dataset_path(root, "raw")


def read_fields(spark: SparkSession, fmt: str, path: str, category: str | None) -> DataFrame:
    """Read `path` in format `fmt` into the common 'fields' shape (see parse.py)."""
    if fmt in ("tsv", "synthetic"):
        lines = spark.read.text(path).withColumn(S.SOURCE_FILE, F.input_file_name())
        return P.tsv_lines_to_fields(lines)
    if fmt == "parquet":
        return P.parquet_to_fields(spark.read.parquet(path), category)
    if fmt == "json":
        df = (spark.read
              .schema(P.MCAULEY_SCHEMA)
              .option("mode", "PERMISSIVE")
              .option("columnNameOfCorruptRecord", "_corrupt_record")
              .json(path))
        return P.mcauley_to_fields(df, category)
    raise ValueError(f"unknown input format {fmt!r}")


def _tally(parsed: DataFrame) -> dict[tuple[str, str | None], int]:
    rows = (parsed
            .groupBy(P.KIND, F.when(F.col(P.KIND) == P.OK, F.col(S.PRODUCT_CATEGORY)).alias("cat"))
            .count()
            .collect())
    return {(r[P.KIND], r["cat"]): int(r["count"]) for r in rows}


def split_duplicates(kept: DataFrame, broadcast_limit: int) -> tuple[DataFrame, DataFrame]:
    """(reviews, duplicates): one row per review_id, and the rows dropped for it.

    Duplicates are rare, so instead of sorting every row by review_id (a window over all the
    data) only the ids seen more than once are found (an aggregation that shuffles ids alone),
    and only their rows are ranked. Up to `broadcast_limit` such ids are broadcast to the join.
    """
    counts = kept.groupBy(S.REVIEW_ID).count()
    dup_ids = counts.filter(F.col("count") > 1).select(S.REVIEW_ID, F.lit(True).alias("_dup"))
    n = dup_ids.count()
    if n == 0:
        return kept, kept.limit(0)
    log.info("%d review_ids occur more than once; keeping the latest row of each", n)
    flagged = kept.join(F.broadcast(dup_ids) if n <= broadcast_limit else dup_ids, on=S.REVIEW_ID, how="left")
    ranked = P.rank_duplicates(flagged.filter(F.col("_dup")))
    unique = flagged.filter(F.col("_dup").isNull())
    return (unique.unionByName(ranked.filter(F.col("_dup_rank") == 1), allowMissingColumns=True),
            ranked.filter(F.col("_dup_rank") > 1))


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    timer = StageTimer("ingest")
    root = cfg["run"]["root"]
    inp = cfg["input"]
    fmt = inp["format"]
    path = raw_path(root) if fmt == "synthetic" else inp["path"]
    cats = None if inp["categories"] == "all" else list(inp["categories"])
    if fmt == "synthetic" and not io.dataset_exists(spark, path):
        raise FileNotFoundError(f"synthetic input not found at {path}: run the generate job first "
                                "(./spark-submit.sh generate), or the pipeline job")

    with timer.stage("read+validate"):
        parsed = P.validate_fields(read_fields(spark, fmt, path, inp.get("category")))
        # Accepted rows do not need their raw text: cache only what later steps read.
        parsed = (parsed
                  .withColumn(P.RAW, F.when(~F.col(P.KIND).isin(P.OK, *P.NOT_RECORDS), F.col(P.RAW)))
                  .persist(StorageLevel.MEMORY_AND_DISK))
        tally = _tally(parsed)
    lines = sum(tally.values())
    headers = sum(n for (k, _), n in tally.items() if k == P.HEADER)
    blanks = sum(n for (k, _), n in tally.items() if k == P.BLANK)
    records = lines - headers - blanks
    if records == 0:
        raise ValueError(f"no input records found at {path} (format {fmt})")
    quarantined = {k: n for (k, _), n in tally.items() if k not in (P.OK, *P.NOT_RECORDS)}
    ok_by_cat = {c: n for (k, c), n in tally.items() if k == P.OK}
    excluded = {c: n for c, n in ok_by_cat.items() if cats is not None and c not in cats}
    if cats is not None:
        absent = [c for c in cats if c not in ok_by_cat]
        if absent:
            log.warning("categories %s have no rows in %s (categories present: %s)", absent, path,
                        sorted(ok_by_cat, key=str))

    with timer.stage("write quarantine"):
        io.write_parquet_atomic(
            parsed.filter(~F.col(P.KIND).isin(P.OK, *P.NOT_RECORDS))
                  .select(F.col(S.SOURCE_FILE), F.col(P.KIND).alias(S.REASON), F.col(P.RAW).alias(S.RAW_RECORD)),
            io.dataset_path(root, "quarantine"),
        )

    kept = P.filter_categories(parsed.filter(F.col(P.KIND) == P.OK), cats)
    with timer.stage("dedupe+write reviews"):
        if cfg["ingest"]["dedupe"]:
            reviews, dups = split_duplicates(kept, cfg["ingest"]["broadcast_duplicate_ids"])
        else:
            reviews, dups = kept, kept.limit(0)
        io.write_parquet_atomic(reviews.select(*S.REVIEWS_COLUMNS), io.dataset_path(root, "reviews"))
        io.write_parquet_atomic(dups.select(*S.REVIEWS_COLUMNS, S.SOURCE_FILE), io.dataset_path(root, "duplicates"))
    parsed.unpersist()

    accepted = io.read_dataset(spark, io.dataset_path(root, "reviews"), "ingest").count()
    n_dups = io.read_dataset(spark, io.dataset_path(root, "duplicates"), "ingest").count()
    total = accepted + sum(quarantined.values()) + n_dups + sum(excluded.values())
    summary = {
        "input": {"format": fmt, "path": path, "lines": lines, "header_lines": headers,
                  "blank_lines": blanks, "records": records},
        "accepted": accepted,
        "quarantined": sum(quarantined.values()),
        "quarantined_by_reason": dict(sorted(quarantined.items())),
        "duplicates": n_dups,
        "excluded_by_category": sum(excluded.values()),
        "excluded_by_category_detail": dict(sorted(excluded.items(), key=lambda kv: str(kv[0]))),
        "accepted_by_category_before_dedupe": {str(c): n for c, n in
                                               sorted(ok_by_cat.items(), key=lambda kv: str(kv[0]))
                                               if c not in excluded},
        "reconciled": total == records,
        "categories": "all" if cats is None else cats,
        "config_hash": cfg.hash(),
        "timings_s": timer.timings,
    }
    if total != records:
        raise ReconciliationError(
            f"ingest does not reconcile: accepted {accepted} + quarantined {summary['quarantined']} + "
            f"duplicates {n_dups} + excluded {summary['excluded_by_category']} = {total} != {records} input records "
            f"({lines} lines - {headers} headers - {blanks} blank)"
        )
    _log_quarantine_examples(spark, root, quarantined, cfg["ingest"]["log_examples"])
    io.write_json_atomic(spark, io.dataset_path(root, "report/ingest.json"), summary)
    log.info("ingest: %d records -> %d accepted, %d quarantined %s, %d duplicates, %d excluded by category",
             records, accepted, summary["quarantined"], summary["quarantined_by_reason"], n_dups,
             summary["excluded_by_category"])
    return summary


def _log_quarantine_examples(spark: SparkSession, root: str, quarantined: dict[str, int], k: int) -> None:
    if not quarantined or k <= 0:
        return
    q = io.read_dataset(spark, io.dataset_path(root, "quarantine"), "ingest")
    for reason, n in sorted(quarantined.items()):
        for row in q.filter(F.col(S.REASON) == reason).limit(k).collect():
            raw = (row[S.RAW_RECORD] or "")
            log.warning("quarantined (%s, %d rows) in %s: %s", reason, n, row[S.SOURCE_FILE],
                        raw[:200] + ("..." if len(raw) > 200 else ""))
