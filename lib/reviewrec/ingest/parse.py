"""Pure transforms that turn raw records of any source into canonical, typed review rows.

Every source is first brought to the same shape, "fields": the 15 pds columns as strings plus
`_raw` (the raw record, for quarantine), `source_file` and `_kind` ("header" for TSV header
lines, "blank" for empty TSV lines, a quarantine reason found while reading, or null).
`validate_fields` then assigns each row its first failing check as `_kind` ("ok" if none) and
types the columns. All of it is Spark built-ins: no Python UDF touches a row.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from reviewrec import schema as S

KIND = "_kind"
RAW = "_raw"
OK = "ok"
HEADER = "header"
BLANK = "blank"
# Lines that are not records: counted in the reconciliation, never quarantined.
NOT_RECORDS = (HEADER, BLANK)
_ID_COLS = (S.CUSTOMER_ID, S.REVIEW_ID, S.PRODUCT_ID)
_MAX_INT_DIGITS = 9  # votes must fit an int


def tsv_lines_to_fields(lines: DataFrame, line_col: str = "value") -> DataFrame:
    """pds TSV lines -> fields. Input: `line_col` (one physical line) and `source_file`.

    Tabs split columns; there is no quoting in pds files, so a tab or newline inside a review
    shows up as a wrong column count. Invalid UTF-8 was decoded by Spark's text reader into
    U+FFFD, which is how undecodable bytes are recognised. An empty line (or one of spaces only,
    e.g. the trailing newlines of a file) is "blank": not a record.
    """
    line = F.regexp_replace(F.col(line_col), "\r$", "")
    parts = F.split(line, "\t", -1)
    return lines.select(
        *[F.get(parts, i).alias(c) for i, c in enumerate(S.PDS_COLUMNS)],
        line.alias(RAW),
        F.col(S.SOURCE_FILE),
        F.when(line == S.PDS_HEADER, F.lit(HEADER))
        .when(F.trim(line) == "", F.lit(BLANK))
        .when(F.instr(line, "\ufffd") > 0, F.lit(S.R_UNDECODABLE))
        .when(F.size(parts) != len(S.PDS_COLUMNS), F.lit(S.R_COLUMN_COUNT))
        .alias(KIND),
    )


def _yn(c: Column) -> Column:
    return F.when(c.isNull(), F.lit(None)).when(c.cast("boolean"), F.lit("Y")).otherwise(F.lit("N"))


def parquet_to_fields(df: DataFrame, category: str | None) -> DataFrame:
    """pds Parquet rows (typed; product_category from the partition directory or `category`)
    -> fields. The raw record kept for quarantine is the row as JSON."""
    cols = set(df.columns)
    missing = [c for c in S.PDS_COLUMNS if c not in cols and c != S.PRODUCT_CATEGORY]
    if missing:
        raise ValueError(f"pds Parquet input lacks column(s) {missing}; has {sorted(cols)}")
    if category is not None:
        cat = F.lit(category)
    elif S.PRODUCT_CATEGORY in cols:
        cat = F.col(S.PRODUCT_CATEGORY).cast("string")
    else:
        raise ValueError(
            "pds Parquet input has no product_category column (it is the partition directory "
            "product_category=... in the pds layout): point input.path at the parent of those "
            "directories, or set input.category"
        )

    def as_str(c: str) -> Column:
        t = df.schema[c].dataType
        if isinstance(t, T.DateType):
            return F.date_format(F.col(c), "yyyy-MM-dd")
        return F.col(c).cast("string")

    fields = [cat.alias(c) if c == S.PRODUCT_CATEGORY else as_str(c).alias(c) for c in S.PDS_COLUMNS]
    return df.select(
        *fields,
        F.to_json(F.struct(*[F.col(c) for c in df.columns])).alias(RAW),
        F.input_file_name().alias(S.SOURCE_FILE),
        F.lit(None).cast("string").alias(KIND),
    )


MCAULEY_SCHEMA = T.StructType([
    T.StructField(S.MC_REVIEWER_ID, T.StringType()),
    T.StructField(S.MC_ASIN, T.StringType()),
    T.StructField("reviewerName", T.StringType()),
    T.StructField(S.MC_HELPFUL, T.ArrayType(T.LongType())),
    T.StructField("vote", T.StringType()),
    T.StructField("verified", T.BooleanType()),
    T.StructField(S.MC_REVIEW_TEXT, T.StringType()),
    T.StructField(S.MC_OVERALL, T.DoubleType()),
    T.StructField(S.MC_SUMMARY, T.StringType()),
    T.StructField(S.MC_UNIX_TIME, T.LongType()),
    T.StructField(S.MC_CATEGORY, T.StringType()),
    T.StructField("_corrupt_record", T.StringType()),
])


def mcauley_to_fields(df: DataFrame, category: str | None) -> DataFrame:
    """McAuley JSON lines (read with MCAULEY_SCHEMA, PERMISSIVE) -> fields.

    review_id is `reviewerID_asin` (McAuley data has no review id; one review per user and item).
    helpful [h, t] gives helpful/total votes (2014 files); `vote` gives helpful votes (2018).
    """
    overall = F.col(S.MC_OVERALL)
    star = F.when(overall == F.floor(overall), overall.cast("int").cast("string")).otherwise(overall.cast("string"))
    vote = F.regexp_replace(F.col("vote"), ",", "")
    helpful = F.coalesce(F.col(S.MC_HELPFUL).getItem(0).cast("string"), vote, F.lit("0"))
    total = F.coalesce(F.col(S.MC_HELPFUL).getItem(1).cast("string"), vote, F.lit("0"))
    rid = F.when(F.col(S.MC_REVIEWER_ID).isNotNull() & F.col(S.MC_ASIN).isNotNull(),
                 F.concat_ws("_", F.col(S.MC_REVIEWER_ID), F.col(S.MC_ASIN)))
    cat = F.lit(category) if category is not None else F.col(S.MC_CATEGORY)
    out = {
        S.MARKETPLACE: F.lit("US"),
        S.CUSTOMER_ID: F.col(S.MC_REVIEWER_ID),
        S.REVIEW_ID: rid,
        S.PRODUCT_ID: F.col(S.MC_ASIN),
        S.PRODUCT_PARENT: F.col(S.MC_ASIN),
        S.PRODUCT_TITLE: F.lit(None).cast("string"),
        S.PRODUCT_CATEGORY: cat,
        S.STAR_RATING: star,
        S.HELPFUL_VOTES: helpful,
        S.TOTAL_VOTES: total,
        S.VINE: F.lit("N"),
        S.VERIFIED_PURCHASE: F.coalesce(_yn(F.col("verified")), F.lit("N")),
        S.REVIEW_HEADLINE: F.col(S.MC_SUMMARY),
        S.REVIEW_BODY: F.col(S.MC_REVIEW_TEXT),
        S.REVIEW_DATE: F.from_unixtime(F.col(S.MC_UNIX_TIME), "yyyy-MM-dd"),
    }
    corrupt = F.col("_corrupt_record")
    return df.select(
        *[out[c].alias(c) for c in S.PDS_COLUMNS],
        F.coalesce(corrupt, F.to_json(F.struct(*[F.col(c) for c in df.columns if c != "_corrupt_record"]))).alias(RAW),
        F.input_file_name().alias(S.SOURCE_FILE),
        F.when(corrupt.isNotNull(), F.lit(S.R_MALFORMED_JSON)).alias(KIND),
    )


def _blank(c: Column) -> Column:
    return c.isNull() | (F.trim(c) == "")


def _count_ok(c: Column) -> Column:
    # \z, not $: Java's $ also matches before a trailing line terminator (\u2028, \r, ...).
    return c.rlike(rf"^[0-9]{{1,{_MAX_INT_DIGITS}}}\z")


def _parse_date(c: Column) -> Column:
    # try_to_timestamp: an impossible date ("2014-02-30") is null, not an error, with ANSI on too.
    return F.to_date(F.try_to_timestamp(c, F.lit("yyyy-MM-dd")))


def validate_fields(fields: DataFrame) -> DataFrame:
    """Assign every row its first failing check, then type the columns.

    Output: the canonical REVIEWS_COLUMNS (typed; null for rows that are not ok), `_kind`
    ("header", "blank", "ok" or a reason from schema.REASONS), `_raw` and `source_file`.
    Check order: reading problems (header, bytes, column count, JSON), ids, star, votes, date,
    Y/N flags.
    """
    c = {name: F.col(name) for name in S.PDS_COLUMNS}
    date = _parse_date(F.trim(c[S.REVIEW_DATE]))
    flags_ok = (
        F.upper(F.trim(c[S.VINE])).isin("Y", "N") & F.upper(F.trim(c[S.VERIFIED_PURCHASE])).isin("Y", "N")
    )
    kind = (
        F.when(F.col(KIND).isNotNull(), F.col(KIND))
        .when(_blank(c[S.CUSTOMER_ID]) | _blank(c[S.REVIEW_ID]) | _blank(c[S.PRODUCT_ID]), F.lit(S.R_MISSING_ID))
        .when(~F.coalesce(F.trim(c[S.STAR_RATING]).rlike(r"^[1-5]\z"), F.lit(False)), F.lit(S.R_BAD_STAR))
        .when(~F.coalesce(_count_ok(F.trim(c[S.HELPFUL_VOTES])) & _count_ok(F.trim(c[S.TOTAL_VOTES])), F.lit(False)),
              F.lit(S.R_BAD_VOTES))
        .when(~F.coalesce(F.trim(c[S.REVIEW_DATE]).rlike(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\z"), F.lit(False))
              | date.isNull(), F.lit(S.R_BAD_DATE))
        .when(~F.coalesce(flags_ok, F.lit(False)), F.lit(S.R_BAD_FLAG))
        .otherwise(F.lit(OK))
    )
    ok = F.col(KIND) == OK
    typed = {
        S.CUSTOMER_ID: F.trim(c[S.CUSTOMER_ID]),
        S.REVIEW_ID: F.trim(c[S.REVIEW_ID]),
        S.PRODUCT_ID: F.trim(c[S.PRODUCT_ID]),
        S.STAR_RATING: F.trim(c[S.STAR_RATING]).cast("int"),
        S.HELPFUL_VOTES: F.trim(c[S.HELPFUL_VOTES]).cast("int"),
        S.TOTAL_VOTES: F.trim(c[S.TOTAL_VOTES]).cast("int"),
        S.VINE: F.upper(F.trim(c[S.VINE])) == "Y",
        S.VERIFIED_PURCHASE: F.upper(F.trim(c[S.VERIFIED_PURCHASE])) == "Y",
        S.REVIEW_DATE: _parse_date(F.trim(c[S.REVIEW_DATE])),
    }
    staged = fields.withColumn(KIND, kind)
    return staged.select(
        *[F.when(ok, typed.get(name, F.col(name))).cast(f.dataType).alias(name)
          for name, f in zip(S.REVIEWS_COLUMNS, S.REVIEWS_SCHEMA.fields, strict=False)],
        F.col(KIND), F.col(RAW), F.col(S.SOURCE_FILE),
    )


def filter_categories(df: DataFrame, categories: list[str] | None) -> DataFrame:
    """Keep rows whose product_category is in `categories` (None keeps all)."""
    if categories is None:
        return df
    return df.filter(F.col(S.PRODUCT_CATEGORY).isin(list(categories)))
