"""Column names and schemas of every dataset reviewrec reads or writes.

Code refers to columns through these constants, never through string literals, so a rename
happens in one place and a typo is an AttributeError instead of an AnalysisException at run time.
"""
from __future__ import annotations

from pyspark.sql import types as T

# -- amazon-reviews-pds columns, in the order of the TSV header -----------------------------
MARKETPLACE = "marketplace"
CUSTOMER_ID = "customer_id"
REVIEW_ID = "review_id"
PRODUCT_ID = "product_id"
PRODUCT_PARENT = "product_parent"
PRODUCT_TITLE = "product_title"
PRODUCT_CATEGORY = "product_category"
STAR_RATING = "star_rating"
HELPFUL_VOTES = "helpful_votes"
TOTAL_VOTES = "total_votes"
VINE = "vine"
VERIFIED_PURCHASE = "verified_purchase"
REVIEW_HEADLINE = "review_headline"
REVIEW_BODY = "review_body"
REVIEW_DATE = "review_date"

PDS_COLUMNS: tuple[str, ...] = (
    MARKETPLACE, CUSTOMER_ID, REVIEW_ID, PRODUCT_ID, PRODUCT_PARENT, PRODUCT_TITLE,
    PRODUCT_CATEGORY, STAR_RATING, HELPFUL_VOTES, TOTAL_VOTES, VINE, VERIFIED_PURCHASE,
    REVIEW_HEADLINE, REVIEW_BODY, REVIEW_DATE,
)
PDS_HEADER = "\t".join(PDS_COLUMNS)

# -- McAuley JSON lines (reviews_<Category>.json / 5-core files) ------------------------------
MC_REVIEWER_ID = "reviewerID"
MC_ASIN = "asin"
MC_OVERALL = "overall"
MC_REVIEW_TEXT = "reviewText"
MC_SUMMARY = "summary"
MC_UNIX_TIME = "unixReviewTime"
MC_HELPFUL = "helpful"
MC_CATEGORY = "category"

# -- the canonical `reviews` dataset (output of ingest) ---------------------------------------
REVIEWS_SCHEMA = T.StructType([
    T.StructField(MARKETPLACE, T.StringType(), True),
    T.StructField(CUSTOMER_ID, T.StringType(), False),
    T.StructField(REVIEW_ID, T.StringType(), False),
    T.StructField(PRODUCT_ID, T.StringType(), False),
    T.StructField(PRODUCT_PARENT, T.StringType(), True),
    T.StructField(PRODUCT_TITLE, T.StringType(), True),
    T.StructField(PRODUCT_CATEGORY, T.StringType(), True),
    T.StructField(STAR_RATING, T.IntegerType(), False),
    T.StructField(HELPFUL_VOTES, T.IntegerType(), True),
    T.StructField(TOTAL_VOTES, T.IntegerType(), True),
    T.StructField(VINE, T.BooleanType(), True),
    T.StructField(VERIFIED_PURCHASE, T.BooleanType(), True),
    T.StructField(REVIEW_HEADLINE, T.StringType(), True),
    T.StructField(REVIEW_BODY, T.StringType(), True),
    T.StructField(REVIEW_DATE, T.DateType(), False),
])
REVIEWS_COLUMNS: tuple[str, ...] = tuple(f.name for f in REVIEWS_SCHEMA.fields)

# -- the `quarantine` dataset ---------------------------------------------------------------
SOURCE_FILE = "source_file"
RAW_RECORD = "raw_record"
REASON = "reason"

QUARANTINE_SCHEMA = T.StructType([
    T.StructField(SOURCE_FILE, T.StringType(), True),
    T.StructField(REASON, T.StringType(), False),
    T.StructField(RAW_RECORD, T.StringType(), True),
])

# Quarantine reasons: the closed set a quarantined row can carry.
R_COLUMN_COUNT = "wrong_column_count"
R_BAD_DATE = "bad_date"
R_BAD_STAR = "star_not_in_1_5"
R_BAD_VOTES = "non_numeric_votes"
R_MISSING_ID = "missing_id"
R_UNDECODABLE = "undecodable_bytes"
R_BAD_FLAG = "bad_y_n_flag"
R_MALFORMED_JSON = "malformed_json"
REASONS: tuple[str, ...] = (
    R_COLUMN_COUNT, R_UNDECODABLE, R_MALFORMED_JSON, R_MISSING_ID, R_BAD_STAR, R_BAD_VOTES,
    R_BAD_DATE, R_BAD_FLAG,
)


def missing_columns(actual: list[str] | tuple[str, ...], required: tuple[str, ...] | list[str]) -> list[str]:
    """Required column names absent from `actual`, in `required` order."""
    have = set(actual)
    return [c for c in required if c not in have]


def require_columns(df_columns: list[str], required: tuple[str, ...] | list[str], what: str) -> None:
    """Raise a ValueError naming every missing column and the dataset it was expected in."""
    missing = missing_columns(df_columns, required)
    if missing:
        raise ValueError(
            f"{what}: missing required column(s) {missing}; present: {sorted(df_columns)}"
        )

# -- the `tokens` dataset (output of preprocess) ----------------------------------------------
LEMMAS = "lemmas"
POS = "pos"
TOKENS_SCHEMA = T.StructType([
    T.StructField(REVIEW_ID, T.StringType(), False),
    T.StructField(LEMMAS, T.ArrayType(T.StringType()), True),
    T.StructField(POS, T.ArrayType(T.StringType()), True),
])

# -- the `features` dataset (output of features; read by train, evaluate, recommend) ----------
FEATURES = "features"
FEATURES_META = "features_meta"
USER_IDX = "user_idx"
ITEM_IDX = "item_idx"
TFIDF = "tfidf"
SEQ = "seq"
LABEL = "label"
LABEL_ONEHOT = "label_onehot"
SPLIT = "split"
SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST = "train", "val", "test"
SPLITS: tuple[str, ...] = (SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST)
SEQ_PAD_ID, SEQ_OOV_ID = 0, 1  # seq ids: 0 = padding, 1 = out of vocabulary, 2.. = vocabulary
NUM_STAR_CLASSES = 5  # label = star_rating - 1
FEATURES_COLUMNS: tuple[str, ...] = (
    REVIEW_ID, CUSTOMER_ID, PRODUCT_ID, USER_IDX, ITEM_IDX, TFIDF, SEQ, LABEL, LABEL_ONEHOT,
    STAR_RATING, REVIEW_DATE, SPLIT,
)

# -- the trained model (output of train) and the columns its scoring adds ----------------------
MODEL = "model"
STAR_PROBS = "star_probs"              # array<float>: p(star = 1..5)
EXPECTED_RATING = "expected_rating"    # double: sum_s p(s) * s
PREDICTED_STAR = "predicted_star"      # int: the most probable star
MEMBER_STAR_PROBS = "member_star_probs"  # array<array<float>>: an ensemble's members' p(star)

# -- recommend job outputs: neighbors, predictions, recommendations ----------------------------
USER = "user"
NEIGHBOR = "neighbor"
COSINE = "cosine"
ITEM = "item"
RANK = "rank"
SCORE = "score"
SOURCE = "source"
PREDICTED_RATING = "predicted_rating"
CF_SUPPORT = "cf_support"
CF_PRED = "cf_pred"                    # a candidate cell's CF prediction (may be null)
FALLBACK_RATING = "fallback_rating"    # the item's Bayesian-average rating, where CF has none
NEIGHBORS_COLUMNS: tuple[str, ...] = (USER, NEIGHBOR, COSINE)
RECOMMENDATIONS_COLUMNS: tuple[str, ...] = (USER, RANK, ITEM, SCORE, SOURCE)
PREDICTIONS_COLUMNS: tuple[str, ...] = (USER, ITEM, PREDICTED_RATING, CF_SUPPORT, SOURCE)
