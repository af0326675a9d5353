"""The preprocess job: <root>/reviews -> <root>/tokens (review_id, lemmas, pos, text_hash).

    ./spark-submit.sh preprocess [--set text.engine=builtin|sparknlp] [--set text.pos_lemma=false]
    ./spark-submit.sh preprocess --set input.day=2015-09-02     # only what the day changed

`TextParams` holds the `text:` settings; `preprocess(reviews, params)` is the chain as a
library call, and `run` is the job around it (read, preprocess, write, summary).

input.day unset: every review is tokenised and tokens replaced (one overwrite commit).
input.day set (docs/incremental.md): only the reviews whose text the tokens do not cover yet
are tokenised and merged into tokens by review_id (a Delta MERGE; nothing to do, no commit):
the reviews the day's ingest inserted or replaced (reviews.last_seen_day on or after the day)
whose text (headline + body, as the chain reads it: `text_hash`) differs from the one their
tokens were made from, plus any review without tokens. A correction of the star alone keeps its
tokens. Tokens made with other text settings (or without text_hash) are rebuilt whole.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from reviewrec import io
from reviewrec import schema as S
from reviewrec.config import Config
from reviewrec.runtime import StageTimer, peak_rss_mb
from reviewrec.preprocess.builtin_engine import pos_lemma_builtin
from reviewrec.preprocess.transforms import (TEXT, drop_repeats, drop_short, lowercase, no_pos_lemma,
                                             remove_stop_words, resolve_stop_words, review_text, strip_html,
                                             tokenize)

log = logging.getLogger(__name__)

TOKENS_DATASET = "tokens"
ENGINES = ("builtin", "sparknlp")
# tokens: xxhash64 of the text the chain read (headline + body), to tell a changed text.
TEXT_HASH = "text_hash"
# reviews (reviewrec.ingest.merge.LAST_SEEN_DAY): the day of the stored version of a review.
LAST_SEEN_DAY = "last_seen_day"
# The userMetadata key of tokens' commits that records the text settings they were made with.
META_KEY = "preprocess"


@dataclass(frozen=True)
class TextParams:
    """The chain's settings of the `text:` config section (conf/base.yaml explains each key);
    the defaults are base.yaml's (tests/test_preprocess_job.py checks that they stay equal). The
    other `text.sparknlp_*` keys say where the Spark NLP jars come from and how the session is
    sized: the launcher and the session read them, not the chain."""
    engine: str = "builtin"
    stop_words: str | tuple[str, ...] = "english"
    extra_stop_words: tuple[str, ...] = ()
    min_token_length: int = 3
    max_char_repeat: int = 3
    pos_lemma: bool = True
    sparknlp_pos_model: str | None = None
    sparknlp_lemma_model: str | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"unknown text engine {self.engine!r}; choose one of {list(ENGINES)}")

    @classmethod
    def from_config(cls, cfg: Config) -> TextParams:
        """From the validated config's `text:` section (lists become tuples)."""
        t = cfg["text"]
        return cls(**{f.name: tuple(t[f.name]) if isinstance(t[f.name], list) else t[f.name]
                      for f in fields(cls)})


def preprocess(reviews: DataFrame, params: TextParams | None = None, text_hash: bool = False) -> DataFrame:
    """reviews (review_id, review_headline, review_body) -> review_id, lemmas, pos.

    One row per input review (a review whose tokens are all filtered keeps empty arrays);
    `params` None = the defaults, which are the job's. Both engines tag the tokens as written,
    with the stop words in place (their taggers read case and context), then drop stop words,
    short lemmas and lemmas with a long character run. Without POS + lemma
    (`pos_lemma=False`) the text is lowercased, stop words are dropped by Spark's
    StopWordsRemover and the same filters apply to the tokens (lemmas = tokens, pos = []).
    `text_hash`: also TEXT_HASH, the xxhash64 of the text the chain read."""
    p = params or TextParams()
    stop = resolve_stop_words(p.stop_words, p.extra_stop_words)
    df = review_text(reviews)
    out = [S.REVIEW_ID, S.LEMMAS, S.POS] + ([TEXT_HASH] if text_hash else [])
    if text_hash:
        df = df.withColumn(TEXT_HASH, text_digest(F.col(TEXT)))
    if not p.pos_lemma:
        return (df
                .transform(lowercase)
                .transform(strip_html)
                .transform(tokenize)
                .transform(remove_stop_words, stop)
                .transform(drop_short, p.min_token_length)
                .transform(drop_repeats, p.max_char_repeat)
                .transform(no_pos_lemma)
                .select(*out))
    df = df.transform(strip_html).transform(tokenize)
    if p.engine == "builtin":
        df = df.transform(pos_lemma_builtin, p.min_token_length, p.max_char_repeat, stop)
    else:
        from reviewrec.preprocess.sparknlp_engine import pos_lemma_sparknlp

        df = pos_lemma_sparknlp(df, p.min_token_length, p.max_char_repeat, stop,
                                pos_model=p.sparknlp_pos_model, lemma_model=p.sparknlp_lemma_model)
    return df.select(*out)


def text_digest(text: Column) -> Column:
    """The text's xxhash64 (a null text as the empty one: concat_ws never gives null)."""
    return F.xxhash64(F.coalesce(text, F.lit("")))


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    timer = StageTimer("preprocess")
    root = cfg["run"]["root"]
    day = cfg["input"].get("day")
    params = TextParams.from_config(cfg)
    reviews = io.read_parquet(spark, io.dataset_path(root, "reviews"), "ingest")
    S.require_columns(reviews.columns, (S.REVIEW_ID, S.REVIEW_HEADLINE, S.REVIEW_BODY), f"{root}/reviews")
    # Missing engine resources stop the job here, before any Spark work.
    if params.pos_lemma and params.engine == "builtin":
        from reviewrec.preprocess.lemmatizer import lexicon_path
        from reviewrec.preprocess.perceptron import read_weights

        read_weights()
        lexicon_path()
    elif params.pos_lemma:
        from reviewrec.preprocess.sparknlp_engine import models_for_root, require_sparknlp

        require_sparknlp(spark, cfg["text"]["sparknlp_jar"], cfg["text"]["sparknlp_package"])
        if not params.sparknlp_pos_model or not params.sparknlp_lemma_model:  # the project's models
            pos, lemma = models_for_root(spark, root)
            params = replace(params, sparknlp_pos_model=params.sparknlp_pos_model or pos,
                             sparknlp_lemma_model=params.sparknlp_lemma_model or lemma)
    out = io.dataset_path(root, TOKENS_DATASET)
    settings = json.dumps(asdict(params), sort_keys=True, default=list)
    why_full = _why_full(spark, out, day, settings)
    meta = _commit_metadata(spark, {"config_hash": cfg.hash(), META_KEY: {"text": settings, "day": day}})
    counts: dict[str, Any] = {}
    if why_full is None:
        with timer.stage("select"):
            # Kept as read before tokens change (the MERGE reads it while tokens are unchanged).
            todo = pending(reviews, io.read_dataset(spark, out, "preprocess"), day)
            todo = todo.persist(StorageLevel.MEMORY_AND_DISK)
            counts = {k: int(v or 0) for k, v in todo.agg(
                F.count(F.lit(1)).alias("processed"),
                F.sum(F.when(F.col("_tok_hash").isNull(), 1).otherwise(0)).alias("processed_new")).first().asDict()
                .items()}
            counts["processed_text_changed"] = counts["processed"] - counts["processed_new"]
        with timer.stage("preprocess+merge"):
            if counts["processed"]:
                tokens = preprocess(todo.drop("_tok_hash"), params, text_hash=True)
                with meta:
                    _merge(tokens, out)
            todo.unpersist()
        log.info("preprocess of day %s: %d review(s) tokenised (%d new, %d with a changed text)", day,
                 counts["processed"], counts["processed_new"], counts["processed_text_changed"])
    else:
        log.info("preprocess: every review (%s)", why_full)
        tokens = preprocess(reviews, params, text_hash=True)
        with timer.stage("preprocess+write"), meta:
            io.write_parquet_atomic(tokens, out)
    with timer.stage("summary"):
        written = io.read_dataset(spark, out, "preprocess")
        agg = written.agg(F.count(F.lit(1)).alias("reviews"),
                          F.sum(F.size(S.LEMMAS)).alias("words"),
                          F.sum(F.when(F.size(S.LEMMAS) == 0, 1).otherwise(0)).alias("empty")).first()
    if why_full is not None:
        counts = {"processed": int(agg["reviews"]), "processed_new": int(agg["reviews"]), "processed_text_changed": 0}
    summary = {
        "reviews": int(agg["reviews"]), "total_words": int(agg["words"] or 0),
        "reviews_without_words": int(agg["empty"] or 0), "engine": params.engine,
        "pos_lemma": params.pos_lemma,
        "stop_words": len(resolve_stop_words(params.stop_words, params.extra_stop_words)),
        "mode": "full" if why_full is not None else "incremental", "full_because": why_full, "day": day,
        **counts,
        "config_hash": cfg.hash(), "timings_s": timer.timings, "driver_peak_rss_mb": round(peak_rss_mb(), 1),
    }
    io.write_json_atomic(spark, io.dataset_path(root, "report/preprocess.json"), summary)
    log.info("preprocess: %d reviews, %d words (engine %s) -> %s", summary["reviews"],
             summary["total_words"], params.engine, out)
    return summary


def _why_full(spark: SparkSession, out: str, day: str | None, settings: str) -> str | None:
    """Why every review is tokenised (None: only the pending ones)."""
    if day is None:
        return "input.day is not set"
    if not io.is_table(spark, out):
        return "no tokens yet"
    if TEXT_HASH not in io.read_dataset(spark, out, "preprocess").columns:
        return f"the tokens have no {TEXT_HASH} (written before preprocess went by day)"
    last = next((h["userMetadata"][META_KEY] for h in io.history(spark, out) if META_KEY in h["userMetadata"]), {})
    if last.get("text") != settings:
        return "the tokens were made with other text settings"
    return None


def pending(reviews: DataFrame, tokens: DataFrame, day: str) -> DataFrame:
    """The reviews to tokenise on `day`: those with last_seen_day on or after it whose text hash
    differs from their tokens', and those without tokens. Columns: the reviews' plus _tok_hash
    (the tokens' hash; null: no tokens)."""
    toks = tokens.select(S.REVIEW_ID, F.col(TEXT_HASH).alias("_tok_hash"))
    cand = reviews.filter(F.col(LAST_SEEN_DAY) >= F.lit(day).cast("date")) \
        if LAST_SEEN_DAY in reviews.columns else reviews
    missing = reviews.select(S.REVIEW_ID).join(toks.select(S.REVIEW_ID), S.REVIEW_ID, "left_anti")
    if LAST_SEEN_DAY in reviews.columns and not missing.isEmpty():
        cand = cand.unionByName(reviews.join(missing, S.REVIEW_ID, "left_semi")).dropDuplicates([S.REVIEW_ID])
    hashed = review_text(cand).select(S.REVIEW_ID, text_digest(F.col(TEXT)).alias(TEXT_HASH))
    todo = (hashed.join(toks, S.REVIEW_ID, "left")
            .filter(F.col("_tok_hash").isNull() | (F.col("_tok_hash") != F.col(TEXT_HASH)))
            .select(S.REVIEW_ID, "_tok_hash"))
    return cand.join(todo, S.REVIEW_ID, "inner")


def _merge(tokens: DataFrame, path: str) -> None:
    from reviewrec.ingest.days import upsert

    upsert(tokens, path, S.REVIEW_ID)


def _commit_metadata(spark: SparkSession, extra: dict[str, Any]):  # noqa: ANN202 - a context manager
    from reviewrec.ingest.days import commit_metadata

    return commit_metadata(spark, extra)
