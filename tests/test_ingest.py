"""Ingest: every malformed kind is quarantined with its reason, types are right, and every input
line is accounted for (accepted + quarantined + duplicates + excluded = input)."""
from __future__ import annotations

import datetime as dt
import gzip
import json
import random
import re

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from reviewrec import io
from reviewrec import schema as S
from reviewrec.config import load_config
from reviewrec.ingest import job as ingest_job
from reviewrec.ingest import merge as M
from reviewrec.ingest import parse as P
from reviewrec.generate import generate_tsv

from conftest import REPO, shared_data

pytestmark = pytest.mark.spark

GOOD = ["US", "111", "R1", "B01", "900", "Gadget", "Beauty", "5", "2", "3", "N", "Y",
        "Great", "Works well<br />really", "2015-08-31"]


def line(**over: str) -> str:
    f = list(GOOD)
    for k, v in over.items():
        f[S.PDS_COLUMNS.index(k)] = v
    return "\t".join(f)


CASES = [
    ("good", line(), P.OK),
    ("header", S.PDS_HEADER, P.HEADER),
    ("crlf", line(review_id="R2") + "\r", P.OK),
    ("14 columns", "\t".join(GOOD[:-1]), S.R_COLUMN_COUNT),
    ("16 columns", line(review_body="a\tb"), S.R_COLUMN_COUNT),
    ("blank line", "", P.BLANK),
    ("spaces only", "   ", P.BLANK),
    ("tab only", "\t", S.R_COLUMN_COUNT),
    ("undecodable", line(review_body="caf\ufffd"), S.R_UNDECODABLE),
    ("no review id", line(review_id=""), S.R_MISSING_ID),
    ("blank customer", line(customer_id="   "), S.R_MISSING_ID),
    ("no product", line(product_id=""), S.R_MISSING_ID),
    ("star 0", line(star_rating="0"), S.R_BAD_STAR),
    ("star 6", line(star_rating="6"), S.R_BAD_STAR),
    ("star 4.5", line(star_rating="4.5"), S.R_BAD_STAR),
    ("star words", line(star_rating="five"), S.R_BAD_STAR),
    ("star with line separator", line(star_rating="5\u2028"), S.R_BAD_STAR),
    ("votes N/A", line(helpful_votes="N/A"), S.R_BAD_VOTES),
    ("votes negative", line(total_votes="-3"), S.R_BAD_VOTES),
    ("votes overflow", line(total_votes="99999999999"), S.R_BAD_VOTES),
    ("date impossible", line(review_date="2014-02-30"), S.R_BAD_DATE),
    ("date format", line(review_date="31/12/2014"), S.R_BAD_DATE),
    ("date words", line(review_date="yesterday"), S.R_BAD_DATE),
    ("flag", line(verified_purchase="maybe"), S.R_BAD_FLAG),
]


def test_every_kind_gets_its_reason(spark):
    df = spark.createDataFrame([(i, c[1], "f.tsv") for i, c in enumerate(CASES)],
                               "i int, value string, source_file string")
    out = P.validate_fields(P.tsv_lines_to_fields(df.select("value", "source_file")))
    got = [r[P.KIND] for r in out.select(P.KIND).collect()]
    assert got == [c[2] for c in CASES], [(c[0], g) for c, g in zip(CASES, got, strict=False) if g != c[2]]


def test_good_row_is_typed(spark):
    df = spark.createDataFrame([(line(vine="y", verified_purchase=" N "), "f.tsv")], "value string, source_file string")
    row = P.validate_fields(P.tsv_lines_to_fields(df)).first()
    assert row[P.KIND] == P.OK
    assert row[S.STAR_RATING] == 5 and row[S.HELPFUL_VOTES] == 2 and row[S.TOTAL_VOTES] == 3
    assert row[S.VINE] is True and row[S.VERIFIED_PURCHASE] is False
    assert row[S.REVIEW_DATE] == dt.date(2015, 8, 31)
    assert row[S.REVIEW_BODY] == "Works well<br />really"  # text is left for the text stage
    assert row[P.RAW] == line(vine="y", verified_purchase=" N ")


def test_rejected_rows_have_no_typed_values(spark):
    df = spark.createDataFrame([(line(star_rating="9"), "f.tsv")], "value string, source_file string")
    row = P.validate_fields(P.tsv_lines_to_fields(df)).first()
    assert row[P.KIND] == S.R_BAD_STAR
    assert row[S.REVIEW_ID] is None and row[S.STAR_RATING] is None


def test_parquet_rows(spark):
    rows = [("US", "1", "RA", "P1", "10", "t", 5, 0, 1, "N", "Y", "h", "b", dt.date(2014, 1, 2)),
            ("US", "2", "RB", "P2", "10", "t", 7, 0, 1, "N", "Y", "h", "b", dt.date(2014, 1, 2)),
            ("US", None, "RC", "P3", "10", "t", 3, 0, 1, "N", "N", "h", "b", dt.date(2014, 1, 2)),
            ("US", "4", "RD", "P4", "10", "t", 3, 0, 1, "N", "N", "h", "b", None)]
    cols = [c for c in S.PDS_COLUMNS if c != S.PRODUCT_CATEGORY]
    typed = spark.createDataFrame(rows, cols)
    out = P.validate_fields(P.parquet_to_fields(typed, "Digital_Software")).orderBy(P.RAW).collect()
    kinds = {json.loads(r[P.RAW])["review_id"]: r[P.KIND] for r in out}
    assert kinds == {"RA": P.OK, "RB": S.R_BAD_STAR, "RC": S.R_MISSING_ID, "RD": S.R_BAD_DATE}
    ok = [r for r in out if r[P.KIND] == P.OK][0]
    assert ok[S.PRODUCT_CATEGORY] == "Digital_Software" and ok[S.REVIEW_DATE] == dt.date(2014, 1, 2)
    with pytest.raises(ValueError, match="no product_category column"):
        P.parquet_to_fields(typed, None)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['star_rating'\]"):
        P.parquet_to_fields(typed.drop(S.STAR_RATING), "x")


def test_mcauley_json(spark, tmp_path):
    recs = [
        {"reviewerID": "A1", "asin": "X1", "overall": 4.0, "reviewText": "nice", "summary": "ok",
         "unixReviewTime": 1400000000, "helpful": [2, 5]},
        {"reviewerID": "A2", "asin": "X1", "overall": 4.5, "reviewText": "t", "summary": "s",
         "unixReviewTime": 1400000000},
        {"reviewerID": "A3", "overall": 3.0, "reviewText": "t", "summary": "s", "unixReviewTime": 1400000000},
        {"reviewerID": "A4", "asin": "X2", "overall": 1.0, "reviewText": "t", "summary": "s",
         "unixReviewTime": 1500000000, "vote": "1,204", "verified": True},
    ]
    p = tmp_path / "beauty.json"
    p.write_text("\n".join(json.dumps(r) for r in recs[:2]) + "\n{not json\n"
                 + "\n".join(json.dumps(r) for r in recs[2:]) + "\n")
    out = P.validate_fields(ingest_job.read_fields(spark, "json", str(p), "Beauty")).collect()
    kinds = sorted(r[P.KIND] for r in out)
    assert kinds == sorted([P.OK, S.R_BAD_STAR, S.R_MALFORMED_JSON, S.R_MISSING_ID, P.OK])
    a1 = [r for r in out if r[S.REVIEW_ID] == "A1_X1"][0]
    assert (a1[S.STAR_RATING], a1[S.HELPFUL_VOTES], a1[S.TOTAL_VOTES]) == (4, 2, 5)
    assert a1[S.REVIEW_DATE] == dt.date(2014, 5, 13) and a1[S.PRODUCT_CATEGORY] == "Beauty"
    a4 = [r for r in out if r[S.REVIEW_ID] == "A4_X2"][0]
    assert a4[S.HELPFUL_VOTES] == 1204 and a4[S.VERIFIED_PURCHASE] is True
    bad = [r for r in out if r[P.KIND] == S.R_MALFORMED_JSON][0]
    assert bad[P.RAW] == "{not json"


def _review(rid: str, body: str, date: str = "2014-01-01", total: int = 0, star: int = 5) -> tuple:
    return ("US", "c1", rid, "p1", "9", "t", "Beauty", star, 0, total, False, True, "h", body,
            dt.date.fromisoformat(date))


def _rows_of(spark, rows: list[tuple], days: list[str | None]):
    schema = T.StructType([*S.REVIEWS_SCHEMA.fields, T.StructField(S.SOURCE_FILE, T.StringType()),
                           T.StructField(M.DAY, T.DateType())])
    return spark.createDataFrame([(*r, "f", dt.date.fromisoformat(d) if d else None)
                                  for r, d in zip(rows, days, strict=True)], schema)


def test_classify_keeps_the_latest_day_then_date_votes_and_columns(spark):
    """One run over rows of several days: the rule of reviewrec.ingest.merge, and every row counted."""
    rows = [_review("R1", "a", "2014-01-01", 1), _review("R1", "b", "2015-01-01"),  # same day: later date wins
            _review("R2", "c"),
            _review("R3", "y"), _review("R3", "x"),  # same day, date and votes: the body decides
            _review("R4", "old", "2015-06-01"), _review("R4", "new", "2010-01-01"),  # a later day wins, any date
            _review("R5", "same"), _review("R5", "same"), _review("R5", "same")]  # re-sent unchanged
    days = [None, None, None, None, None, "2015-09-01", "2015-09-02", "2015-09-01", "2015-09-01", "2015-09-03"]
    out = M.classify(_rows_of(spark, rows, days), broadcast_limit=0).collect()
    kept = {r[S.REVIEW_ID]: (r[S.REVIEW_BODY], str(r[M.ARRIVAL_DAY]), str(r[M.LAST_SEEN_DAY]))
            for r in out if r[M.FINAL]}
    assert kept == {"R1": ("b", "None", "None"), "R2": ("c", "None", "None"), "R3": ("x", "None", "None"),
                    "R4": ("new", "2015-09-01", "2015-09-02"), "R5": ("same", "2015-09-01", "2015-09-03")}
    classes = sorted((r[S.REVIEW_ID], r[S.REVIEW_BODY], r[M.CLASS]) for r in out)
    assert classes == [("R1", "a", M.SUPERSEDED), ("R1", "b", M.ACCEPTED), ("R2", "c", M.ACCEPTED),
                       ("R3", "x", M.ACCEPTED), ("R3", "y", M.SUPERSEDED), ("R4", "new", M.CORRECTION),
                       ("R4", "old", M.ACCEPTED), ("R5", "same", M.ACCEPTED), ("R5", "same", M.DUPLICATE),
                       ("R5", "same", M.DUPLICATE)]
    assert M.classify(_rows_of(spark, rows, days), dedupe=False).filter(M.FINAL).count() == len(rows)


def test_merging_days_one_at_a_time_in_any_order_ends_as_one_run(spark):
    """merge.against_stored, day by day in two orders (the upserts applied as the job's MERGE
    applies them), ends where merge.classify of every day at once ends: a rule that let the
    last run win would keep R1's "v1" when day 1 comes last."""
    rows = {"2015-09-01": [_review("R1", "v1", star=2), _review("R2", "same"), _review("R3", "x")],
            "2015-09-02": [_review("R2", "same"), _review("R4", "only")],
            "2015-09-03": [_review("R1", "v2", star=4), _review("R3", "x", total=9), _review("R3", "y")]}
    schema = T.StructType([*S.REVIEWS_SCHEMA.fields, T.StructField(M.ARRIVAL_DAY, T.DateType()),
                           T.StructField(M.LAST_SEEN_DAY, T.DateType())])

    def run(order: list[str]) -> dict:
        stored: dict[str, tuple] = {}
        for day in order:
            day_rows = M.classify(_rows_of(spark, rows[day], [day] * len(rows[day])))
            met = M.against_stored(day_rows, spark.createDataFrame(list(stored.values()), schema))
            for r in M.upserts(met).collect():
                stored[r[S.REVIEW_ID]] = tuple(r)
        return stored

    every = [(r, d) for d in rows for r in rows[d]]
    at_once = {r[S.REVIEW_ID]: tuple(r) for r in M.reviews_of(M.classify(
        _rows_of(spark, [r for r, _ in every], [d for _, d in every]))).collect()}
    assert run(["2015-09-01", "2015-09-02", "2015-09-03"]) == run(["2015-09-03", "2015-09-01", "2015-09-02"]) \
        == at_once
    assert at_once["R1"][S.REVIEWS_COLUMNS.index(S.REVIEW_BODY)] == "v2"
    assert at_once["R3"][S.REVIEWS_COLUMNS.index(S.TOTAL_VOTES)] == 9  # day 3: the most votes, then the body
    assert at_once["R2"][-2:] == (dt.date(2015, 9, 1), dt.date(2015, 9, 2))


# ---------------------------------------------------------------------------------------------
# Whole-job fuzz test: generator defects + random byte-level mutations, checked line by line
# against an independent Python reference classifier.

_LINE_SPLIT = re.compile(rb"\r\n|\r|\n")  # Hadoop's line terminators, as Spark's text reader uses


def _split_lines(data: bytes) -> list[bytes]:
    parts = _LINE_SPLIT.split(data)
    return parts[:-1] if parts and parts[-1] == b"" else parts


def ref_kind(raw: bytes) -> str:
    """Reference classification of one input line, written independently of parse.py."""
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        return S.R_UNDECODABLE
    if s == S.PDS_HEADER:
        return P.HEADER
    if s.strip(" ") == "":
        return P.BLANK
    f = s.split("\t")
    if len(f) != 15:
        return S.R_COLUMN_COUNT
    if any(f[i].strip(" ") == "" for i in (1, 2, 3)):
        return S.R_MISSING_ID
    if f[7].strip(" ") not in {"1", "2", "3", "4", "5"}:
        return S.R_BAD_STAR
    if not all(re.fullmatch(r"[0-9]{1,9}", f[i].strip(" "), re.ASCII) for i in (8, 9)):
        return S.R_BAD_VOTES
    try:
        d = f[14].strip(" ")
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", d, re.ASCII):
            raise ValueError
        dt.date.fromisoformat(d)
    except ValueError:
        return S.R_BAD_DATE
    if f[10].strip(" ").upper() not in ("Y", "N") or f[11].strip(" ").upper() not in ("Y", "N"):
        return S.R_BAD_FLAG
    return P.OK


def ref_content(raw: bytes) -> tuple:
    """A valid line's typed content, as validate_fields types it (ids trimmed, numbers and flags
    read), written independently of parse.py."""
    f = raw.decode("utf-8").split("\t")
    return (f[0], f[1].strip(" "), f[2].strip(" "), f[3].strip(" "), f[4], f[5], f[6], int(f[7].strip(" ")),
            int(f[8].strip(" ")), int(f[9].strip(" ")), f[10].strip(" ").upper() == "Y",
            f[11].strip(" ").upper() == "Y", f[12], f[13], dt.date.fromisoformat(f[14].strip(" ")))


def ref_key(c: tuple) -> tuple:
    """The same-day order of reviewrec.ingest.merge.rank_key (the smallest is kept): the latest
    review_date, the most total then helpful votes, then customer, product, star, headline, body,
    marketplace, parent, title, category, vine, verified, each ascending."""
    return (-c[14].toordinal(), -c[9], -c[8], c[1], c[3], c[7], c[12], c[13], c[0], c[4], c[5], c[6], c[10], c[11])


def _mutate(line: bytes, r: random.Random) -> bytes:
    ops = [b"\t", b"\n", b"\r", b"\xff", b"\xc3", b" ", b"", b"\t\t", b"\r\n", "\u2028".encode()]
    out = bytearray(line)
    for _ in range(r.randint(1, 3)):
        i = r.randrange(len(out) + 1)
        if r.random() < 0.3 and len(out) > 1:
            del out[i - 1]
        else:
            out[i:i] = r.choice(ops)
    return bytes(out)


@pytest.mark.slow
def test_fuzz_ingest_reconciles_exactly(spark, tmp_path):
    root = str(tmp_path / "run")
    raw = tmp_path / "run" / "raw"
    stats = generate_tsv(str(raw), 3000, seed=11, malformed_fraction=0.08, duplicate_fraction=0.03, files=2)
    # A third, uncompressed file: random byte-level mutations of generated lines.
    r = random.Random(2024)
    src = gzip.open(raw / "part-00000.tsv.gz", "rb").read()
    good = [ln for ln in _split_lines(src)[1:] if ref_kind(ln) == P.OK][:400]
    fuzz = b"\n".join([S.PDS_HEADER.encode()] + [(_mutate(ln, r) if r.random() < 0.6 else ln) for ln in good]) + b"\n"
    fuzz += b"\n  \n\r\n"  # trailing empty lines (one of spaces): blank, not records
    (raw / "part-fuzz.tsv").write_bytes(fuzz)

    expected: dict[str, int] = {}
    ids_ok: list[str] = []
    contents: dict[str, list[tuple]] = {}
    for f in sorted(raw.iterdir()):
        data = gzip.open(f, "rb").read() if f.suffix == ".gz" else f.read_bytes()
        for ln in _split_lines(data):
            k = ref_kind(ln)
            expected[k] = expected.get(k, 0) + 1
            if k == P.OK:
                ids_ok.append(ln.split(b"\t")[2].strip(b" ").decode())
                contents.setdefault(ids_ok[-1], []).append(ref_content(ln))
    exp_dups = len(ids_ok) - len(set(ids_ok))
    # Of the repeats of an id, those equal to the row kept are duplicates, the others superseded.
    exp_superseded = sum(sum(c != min(cs, key=ref_key) for c in cs) for cs in contents.values())

    cfg = load_config([str(REPO / "conf" / "local.yaml")], [f"run.root={root}", "input.categories=all"])
    summary = ingest_job.run(spark, cfg)

    records = sum(n for k, n in expected.items() if k not in P.NOT_RECORDS)
    assert summary["input"]["records"] == records
    assert summary["input"]["header_lines"] == expected[P.HEADER] == 3
    assert summary["input"]["blank_lines"] == expected[P.BLANK] >= 3
    assert summary["input"]["lines"] == records + 3 + expected[P.BLANK]
    assert summary["quarantined_by_reason"] == {k: n for k, n in expected.items() if k not in (P.OK, *P.NOT_RECORDS)}
    assert summary["duplicates"] + summary["superseded"] == exp_dups
    assert summary["superseded"] == exp_superseded > 0 and summary["duplicates"] >= stats.duplicate_rows
    assert summary["accepted"] == len(set(ids_ok)) and summary["corrections"] == 0  # one (undated) day
    assert (summary["accepted"] + summary["quarantined"] + summary["duplicates"] + summary["superseded"]
            + summary["excluded_by_category"]) == records
    assert summary["reconciled"] is True
    # The generator's own defects are all there (the fuzz file adds more on top).
    for reason, n in stats.malformed_lines.items():
        assert summary["quarantined_by_reason"][reason] >= n

    reviews = io.read_dataset(spark, f"{root}/reviews", "ingest")
    assert reviews.count() == reviews.select(S.REVIEW_ID).distinct().count() == summary["accepted"]
    assert reviews.filter(F.col(S.STAR_RATING).isNull() | F.col(S.REVIEW_DATE).isNull()).count() == 0
    q = io.read_dataset(spark, f"{root}/quarantine", "ingest")
    assert q.count() == summary["quarantined"]
    assert q.filter(F.col(S.RAW_RECORD).isNull() | F.col(S.SOURCE_FILE).isNull()).count() == 0
    assert q.filter(F.trim(F.col(S.RAW_RECORD)) == "").count() == 0
    assert set(q.columns) == {S.SOURCE_FILE, S.REASON, S.RAW_RECORD, M.ARRIVAL_DAY}
    assert io.read_dataset(spark, f"{root}/duplicates", "ingest").count() == exp_dups
    kept = {r[S.REVIEW_ID]: r for r in reviews.collect()}
    for rid, cs in contents.items():  # the row kept is the reference's first by the rule
        best = min(cs, key=ref_key)
        assert (kept[rid][S.REVIEW_BODY], kept[rid][S.TOTAL_VOTES]) == (best[13], best[9]), rid
    on_disk = json.loads((tmp_path / "run" / "report" / "ingest.json").read_text())
    assert on_disk["accepted"] == summary["accepted"]


def test_category_filter_is_counted(spark, tmp_path):
    root = str(tmp_path / "run")
    stats = generate_tsv(str(tmp_path / "run" / "raw"), 1500, seed=2, malformed_fraction=0.0, duplicate_fraction=0.0)
    cfg = load_config([str(REPO / "conf" / "local.yaml")], [f"run.root={root}"])  # default: the paper's 4
    s = ingest_job.run(spark, cfg)
    assert s["excluded_by_category"] > 0
    assert set(s["excluded_by_category_detail"]) == {"Digital_Software", "Toys"}
    assert s["accepted"] + s["excluded_by_category"] == stats.good_rows
    reviews = io.read_dataset(spark, f"{root}/reviews", "ingest")
    cats = {r[0] for r in reviews.select(S.PRODUCT_CATEGORY).distinct().collect()}
    assert cats == {"Beauty", "Electronics", "Grocery", "Health & Personal Care"}


def test_missing_synthetic_input_names_the_path(spark, tmp_path):
    cfg = load_config([str(REPO / "conf" / "local.yaml")], [f"run.root={tmp_path}/empty"])
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}/empty/raw.*generate"):
        ingest_job.run(spark, cfg)


@pytest.mark.integration
@pytest.mark.slow
def test_real_pds_parquet_digital_software(spark, tmp_path):
    path = shared_data("amazon_reviews_pds", "Digital_Software")
    root = str(tmp_path / "run")
    cfg = load_config([str(REPO / "conf" / "local.yaml")], [
        f"run.root={root}", "input.format=parquet", f"input.path={path}",
        "input.category=Digital_Software", "input.categories=all"])
    s = ingest_job.run(spark, cfg)
    assert s["input"]["records"] == 102_084
    assert s["accepted"] == 102_084 and s["quarantined"] == 0 and s["duplicates"] == 0
    reviews = io.read_dataset(spark, f"{root}/reviews", "ingest")
    stars = {r[0]: r[1] for r in reviews.groupBy(S.STAR_RATING).count().collect()}
    assert stars == {5: 46_410, 4: 16_693, 3: 8_308, 2: 6_890, 1: 23_783}
    assert reviews.filter(F.col(S.VERIFIED_PURCHASE)).count() == 70_860
    assert reviews.select(S.CUSTOMER_ID).distinct().count() == 94_314
    assert [f.name for f in reviews.schema] == [*S.REVIEWS_COLUMNS, M.ARRIVAL_DAY, M.LAST_SEEN_DAY]
    assert reviews.filter(F.col(M.ARRIVAL_DAY).isNotNull()).count() == 0  # no day directories
