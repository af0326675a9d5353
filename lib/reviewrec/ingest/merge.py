"""Which row of a review_id is kept, and what every other row counts as (docs/incremental.md).

The rule, applied by every run whatever the order of the days it is given:

* of all rows of one review_id ever received, the stored one is the greatest by (arrival day,
  then on the same day: the latest review_date, the most total votes, the most helpful votes,
  then the other columns in a fixed order: `rank_key`). A row without a day (input not in day
  directories) counts as the earliest day;
* `arrival_day` is the earliest day a row of the review arrived, `last_seen_day` the latest one
  (the stored row is a row of that day).

Both are maxima / minima over the rows received, so days merged one at a time in any order, or
all at once, or again, end with the same table. Every valid row of a run is counted as exactly
one of:

* accepted   - its review_id was not stored yet: inserted;
* correction - another version of a stored review that wins under the rule: replaces it;
* duplicate  - the same content as the version it meets (stored, or the day's kept row):
               nothing changes but, maybe, the review's arrival_day / last_seen_day;
* superseded - another version that loses under the rule (an older day's version arriving
               after a newer one, or a same-day version that ranks lower): dropped.

Within a run the rows are taken day by day in day order (the rows of one day first dedupe
among themselves, then meet what the earlier days left), which is what merging the days one by
one in order does. Pure transforms: Spark built-ins only, no I/O.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from reviewrec import schema as S
from reviewrec.config import DAY_DIR_PREFIX

ARRIVAL_DAY = "arrival_day"      # reviews: the first day a row of the review arrived
LAST_SEEN_DAY = "last_seen_day"  # reviews: the last day one arrived (the stored row is of that day)
KIND = "kind"                    # duplicates: duplicate | superseded
DAY = "_day"                     # a row's arrival day, from its file's dt=YYYY-MM-DD directory
CLASS = "_class"
FINAL = "_final"
CHANGE = "_change"               # against_stored: the row's upsert changes the stored review

ACCEPTED, CORRECTION, DUPLICATE, SUPERSEDED = "accepted", "correction", "duplicate", "superseded"
CLASSES = (ACCEPTED, CORRECTION, DUPLICATE, SUPERSEDED)
DAY_IN_PATH = rf"/{DAY_DIR_PREFIX}([0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}})/"
# No day (input outside day directories) orders before every day.
_NO_DAY = "0001-01-01"
# The columns compared after review_date and the votes, in this order.
_TIEBREAK = (S.CUSTOMER_ID, S.PRODUCT_ID, S.STAR_RATING, S.REVIEW_HEADLINE, S.REVIEW_BODY, S.MARKETPLACE,
             S.PRODUCT_PARENT, S.PRODUCT_TITLE, S.PRODUCT_CATEGORY, S.VINE, S.VERIFIED_PURCHASE)
CONTENT = S.REVIEWS_COLUMNS
REVIEWS_OUT = (*S.REVIEWS_COLUMNS, ARRIVAL_DAY, LAST_SEEN_DAY)


def day_of_file(source_file: Column) -> Column:
    """The date of the dt=YYYY-MM-DD directory in a file's path; null when there is none."""
    d = F.regexp_extract(source_file, DAY_IN_PATH, 1)
    return F.when(d != "", F.to_date(d))


def _dayval(c: Column) -> Column:
    return F.coalesce(c, F.lit(_NO_DAY).cast("date"))


def _undayval(c: Column) -> Column:
    return F.when(c != F.lit(_NO_DAY).cast("date"), c)


def rank_key(col=F.col, day: Column | None = None) -> Column:  # noqa: ANN001 - name -> Column
    """The struct that orders the rows of one review_id: the smaller wins. `col` maps a
    content column name to the Column (e.g. a prefixed one); with `day`, the day comes first."""
    fields = [(-F.datediff(col(S.REVIEW_DATE), F.lit("1970-01-01").cast("date"))).alias("k_date"),
              (-col(S.TOTAL_VOTES)).alias("k_total"), (-col(S.HELPFUL_VOTES)).alias("k_helpful")]
    fields += [col(c).alias(f"k_{c}") for c in _TIEBREAK]
    if day is not None:
        fields.insert(0, (-F.datediff(_dayval(day), F.lit("1970-01-01").cast("date"))).alias("k_day"))
    return F.struct(*fields)


def identical(a=F.col, b=F.col) -> Column:  # noqa: ANN001 - name -> Column
    """Every content column equal (null equal to null)."""
    out = F.lit(True)
    for c in CONTENT:
        out = out & a(c).eqNullSafe(b(c))
    return out


def _content_struct(col=F.col) -> Column:  # noqa: ANN001
    return F.struct(*[col(c).alias(c) for c in CONTENT])


def classify(kept: DataFrame, dedupe: bool = True, broadcast_limit: int = 2_000_000) -> DataFrame:
    """The valid rows of one run (content columns, source_file, DAY) -> the same rows plus
    CLASS, and FINAL (the row that ends stored) with ARRIVAL_DAY / LAST_SEEN_DAY set on it.

    The days of the run in day order, from nothing stored. Most review_ids occur once: only the
    ids seen more than once (an aggregation that shuffles ids alone; up to `broadcast_limit` of
    them broadcast to the join) have their rows ranked. dedupe False: every row is kept."""
    plain = (kept.withColumn(CLASS, F.lit(ACCEPTED)).withColumn(FINAL, F.lit(True))
             .withColumn(ARRIVAL_DAY, F.col(DAY)).withColumn(LAST_SEEN_DAY, F.col(DAY)))
    if not dedupe:
        return plain
    dup_ids = (kept.groupBy(S.REVIEW_ID).count().filter(F.col("count") > 1)
               .select(S.REVIEW_ID, F.lit(True).alias("_rep")))
    n = dup_ids.count()
    if n == 0:
        return plain
    flagged = kept.join(F.broadcast(dup_ids) if n <= broadcast_limit else dup_ids, on=S.REVIEW_ID, how="left")
    unique = (flagged.filter(F.col("_rep").isNull()).drop("_rep")
              .withColumn(CLASS, F.lit(ACCEPTED)).withColumn(FINAL, F.lit(True))
              .withColumn(ARRIVAL_DAY, F.col(DAY)).withColumn(LAST_SEEN_DAY, F.col(DAY)))
    multi = flagged.filter(F.col("_rep")).drop("_rep").withColumn("_dv", _dayval(F.col(DAY)))
    in_day = Window.partitionBy(S.REVIEW_ID, "_dv").orderBy(rank_key())
    ranked = (multi.withColumn("_rank", F.row_number().over(in_day))
              .withColumn("_winner", F.first(_content_struct()).over(in_day)))
    losers = (ranked.filter(F.col("_rank") > 1)
              .withColumn(CLASS, F.when(identical(b=lambda c: F.col("_winner")[c]), F.lit(DUPLICATE))
                          .otherwise(F.lit(SUPERSEDED)))
              .withColumn(FINAL, F.lit(False)))
    by_day = Window.partitionBy(S.REVIEW_ID).orderBy("_dv")
    whole = Window.partitionBy(S.REVIEW_ID)
    winners = (ranked.filter(F.col("_rank") == 1)
               .withColumn("_prev", F.lag(_content_struct()).over(by_day))
               .withColumn(CLASS, F.when(F.col("_prev").isNull(), F.lit(ACCEPTED))
                           .when(identical(b=lambda c: F.col("_prev")[c]), F.lit(DUPLICATE))
                           .otherwise(F.lit(CORRECTION)))
               .withColumn(FINAL, F.col("_dv") == F.max("_dv").over(whole))
               .withColumn(ARRIVAL_DAY, _undayval(F.min("_dv").over(whole)))
               .withColumn(LAST_SEEN_DAY, _undayval(F.max("_dv").over(whole))))
    cols = plain.columns
    return unique.select(*cols).unionByName(winners.select(*cols)).unionByName(
        losers.withColumn(ARRIVAL_DAY, F.lit(None).cast("date"))
              .withColumn(LAST_SEEN_DAY, F.lit(None).cast("date")).select(*cols))


def against_stored(day_rows: DataFrame, stored: DataFrame) -> DataFrame:
    """One day's classified rows (`classify` of that day alone) met with the stored reviews:
    every row of the day with its final CLASS; the kept row of each review_id (FINAL) also
    carries the row to upsert into reviews (REVIEWS_OUT, prefixed "_u_") and CHANGE.

    A FINAL row of the day is accepted when its id is not stored; else a duplicate (the same
    content), a correction (wins under the rule) or superseded. CHANGE marks the rows that
    change a stored row: a new review, a correction, or a duplicate / superseded row that moves
    the stored review's arrival_day or last_seen_day (`upserts`)."""
    t = stored.select(*[F.col(c).alias(f"_t_{c}") for c in REVIEWS_OUT])
    tc = lambda c: F.col(f"_t_{c}")  # noqa: E731
    met = day_rows.filter(F.col(FINAL)).join(t, F.col(S.REVIEW_ID) == tc(S.REVIEW_ID), "left")
    present = tc(S.REVIEW_ID).isNotNull()
    day_v, t_arr, t_last = _dayval(F.col(DAY)), _dayval(tc(ARRIVAL_DAY)), _dayval(tc(LAST_SEEN_DAY))
    wins = rank_key(day=F.col(DAY)) < rank_key(col=tc, day=tc(LAST_SEEN_DAY))
    met = met.withColumn(CLASS, F.when(~present, F.lit(ACCEPTED)).when(identical(b=tc), F.lit(DUPLICATE))
                         .when(wins, F.lit(CORRECTION)).otherwise(F.lit(SUPERSEDED)))
    take_new = ~present | (F.col(CLASS) == CORRECTION)
    upsert = [*[F.when(take_new, F.col(c)).otherwise(tc(c)).alias(f"_u_{c}") for c in CONTENT],
              _undayval(F.when(~present, day_v).otherwise(F.least(day_v, t_arr))).alias(f"_u_{ARRIVAL_DAY}"),
              _undayval(F.when(~present, day_v).otherwise(F.greatest(day_v, t_last))).alias(f"_u_{LAST_SEEN_DAY}"),
              (take_new | (day_v < t_arr) | (day_v > t_last)).alias(CHANGE)]
    cols = day_rows.columns
    losers = day_rows.filter(~F.col(FINAL)).select(
        *cols, *[F.lit(None).cast(f.dataType).alias(f"_u_{f.name}") for f in stored.select(*REVIEWS_OUT).schema],
        F.lit(False).alias(CHANGE))
    return met.select(*cols, *upsert).unionByName(losers)


def upserts(met: DataFrame) -> DataFrame:
    """The rows of an `against_stored` result to upsert into reviews: REVIEWS_OUT."""
    return met.filter(F.col(CHANGE)).select(*[F.col(f"_u_{c}").alias(c) for c in REVIEWS_OUT])


def reviews_of(classified: DataFrame) -> DataFrame:
    """The stored rows of a `classify`d run: REVIEWS_OUT."""
    return classified.filter(F.col(FINAL)).select(*REVIEWS_OUT)


def dropped_of(classified: DataFrame) -> DataFrame:
    """The rows not kept as a review's version: duplicates and superseded rows, with their day."""
    return (classified.filter(F.col(CLASS).isin(DUPLICATE, SUPERSEDED))
            .select(*S.REVIEWS_COLUMNS, S.SOURCE_FILE, F.col(DAY).alias(ARRIVAL_DAY), F.col(CLASS).alias(KIND)))
