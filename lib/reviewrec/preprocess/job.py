"""The preprocess job: <root>/reviews -> <root>/tokens (review_id, lemmas, pos), atomically.

    ./spark-submit.sh preprocess [--set text.engine=builtin|sparknlp] [--set text.pos_lemma=false]

`TextParams` holds the `text:` settings; `preprocess(reviews, params)` is the chain as a
library call, and `run` is the job around it (read, preprocess, write, summary).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, fields, replace
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from reviewrec import io
from reviewrec import schema as S
from reviewrec.config import Config
from reviewrec.runtime import StageTimer, peak_rss_mb
from reviewrec.preprocess.builtin_engine import pos_lemma_builtin
from reviewrec.preprocess.transforms import (drop_repeats, drop_short, lowercase, no_pos_lemma, remove_stop_words,
                                       resolve_stop_words, review_text, strip_html, tokenize)

log = logging.getLogger(__name__)

TOKENS_DATASET = "tokens"
ENGINES = ("builtin", "sparknlp")


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


def preprocess(reviews: DataFrame, params: TextParams | None = None) -> DataFrame:
    """reviews (review_id, review_headline, review_body) -> review_id, lemmas, pos.

    One row per input review (a review whose tokens are all filtered keeps empty arrays);
    `params` None = the defaults, which are the job's. Both engines tag the tokens as written,
    with the stop words in place (their taggers read case and context), then drop stop words,
    short lemmas and lemmas with a long character run. Without POS + lemma
    (`pos_lemma=False`) the text is lowercased, stop words are dropped by Spark's
    StopWordsRemover and the same filters apply to the tokens (lemmas = tokens, pos = [])."""
    p = params or TextParams()
    stop = resolve_stop_words(p.stop_words, p.extra_stop_words)
    df = review_text(reviews)
    if not p.pos_lemma:
        return (df
                .transform(lowercase)
                .transform(strip_html)
                .transform(tokenize)
                .transform(remove_stop_words, stop)
                .transform(drop_short, p.min_token_length)
                .transform(drop_repeats, p.max_char_repeat)
                .transform(no_pos_lemma)
                .select(S.REVIEW_ID, S.LEMMAS, S.POS))
    df = df.transform(strip_html).transform(tokenize)
    if p.engine == "builtin":
        df = df.transform(pos_lemma_builtin, p.min_token_length, p.max_char_repeat, stop)
    else:
        from reviewrec.preprocess.sparknlp_engine import pos_lemma_sparknlp

        df = pos_lemma_sparknlp(df, p.min_token_length, p.max_char_repeat, stop,
                                pos_model=p.sparknlp_pos_model, lemma_model=p.sparknlp_lemma_model)
    return df.select(S.REVIEW_ID, S.LEMMAS, S.POS)


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    timer = StageTimer("preprocess")
    root = cfg["run"]["root"]
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
    tokens = preprocess(reviews, params)
    out = io.dataset_path(root, TOKENS_DATASET)
    with timer.stage("preprocess+write"):
        io.write_parquet_atomic(tokens, out)
    with timer.stage("summary"):
        written = io.read_dataset(spark, out, "preprocess")
        agg = written.agg(F.count(F.lit(1)).alias("reviews"),
                          F.sum(F.size(S.LEMMAS)).alias("words"),
                          F.sum(F.when(F.size(S.LEMMAS) == 0, 1).otherwise(0)).alias("empty")).first()
    summary = {
        "reviews": int(agg["reviews"]), "total_words": int(agg["words"] or 0),
        "reviews_without_words": int(agg["empty"] or 0), "engine": params.engine,
        "pos_lemma": params.pos_lemma,
        "stop_words": len(resolve_stop_words(params.stop_words, params.extra_stop_words)),
        "config_hash": cfg.hash(), "timings_s": timer.timings, "driver_peak_rss_mb": round(peak_rss_mb(), 1),
    }
    io.write_json_atomic(spark, io.dataset_path(root, "report/preprocess.json"), summary)
    log.info("preprocess: %d reviews, %d words (engine %s) -> %s", summary["reviews"],
             summary["total_words"], params.engine, out)
    return summary
