"""The preprocess job: <root>/reviews -> <root>/tokens (review_id, lemmas, pos), atomically.

    ./spark-submit.sh preprocess [--set text.engine=builtin|sparknlp] [--set text.pos_lemma=false]
"""
from __future__ import annotations

import logging
from typing import Any

from pyspark.ml.feature import StopWordsRemover
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from reviewrec import io
from reviewrec import schema as S
from reviewrec.config import Config
from reviewrec.runtime import StageTimer, peak_rss_mb
from reviewrec.text.transforms import preprocess

log = logging.getLogger(__name__)

TOKENS = "tokens"
SPARK_STOP_WORD_LANGUAGES = ("danish", "dutch", "english", "finnish", "french", "german", "hungarian",
                             "italian", "norwegian", "portuguese", "russian", "spanish", "swedish", "turkish")


def resolve_stop_words(stop_words: str | list[str], extra: list[str]) -> list[str]:
    """text.stop_words ("english" or a list) + text.extra_stop_words -> the word list.

    A language name loads Spark's built-in list (needs an active SparkContext)."""
    if isinstance(stop_words, str):
        if stop_words not in SPARK_STOP_WORD_LANGUAGES:
            raise ValueError(f"text.stop_words = {stop_words!r}: give a list of words or one of "
                             f"Spark's stop-word languages {list(SPARK_STOP_WORD_LANGUAGES)}")
        words = list(StopWordsRemover.loadDefaultStopWords(stop_words))
    else:
        bad = [w for w in stop_words if not isinstance(w, str)]
        if bad:
            raise ValueError(f"text.stop_words: every entry must be a string, got {bad[:5]}")
        words = list(stop_words)
    return sorted(set(words) | set(extra))


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    timer = StageTimer("preprocess")
    root = cfg["run"]["root"]
    t = cfg["text"]
    reviews = io.read_parquet(spark, io.dataset_path(root, "reviews"), "ingest")
    S.require_columns(reviews.columns, (S.REVIEW_ID, S.REVIEW_HEADLINE, S.REVIEW_BODY), f"{root}/reviews")
    stop_words = resolve_stop_words(t["stop_words"], list(t["extra_stop_words"]))
    # The tagging options apply to the builtin engine's tagger only; elsewhere they are off.
    builtin_pos = t["engine"] == "builtin" and t["pos_lemma"]
    tag_cased, tag_before = t["tag_cased"] and builtin_pos, t["tag_before_stopwords"] and builtin_pos
    if builtin_pos and t["tagger"] == "perceptron":
        from reviewrec.text.perceptron import read_weights

        read_weights()  # fails here, before any Spark work, when the weights are missing or differ
    if t["engine"] == "sparknlp" and t["pos_lemma"]:
        from reviewrec.text.sparknlp_engine import require_sparknlp

        require_sparknlp(spark, t.get("sparknlp_jar"), t.get("sparknlp_package"))
    tokens = preprocess(
        reviews, stop_words, min_length=t["min_token_length"], max_repeat=t["max_char_repeat"],
        engine=t["engine"], pos_lemma=t["pos_lemma"], context_rules=t["context_rules"],
        tag_cased=tag_cased, tag_before_stopwords=tag_before, fast_path=t["fast_path"],
        tagger=t["tagger"],
        sparknlp_models={"pos_model": t.get("sparknlp_pos_model"), "lemma_model": t.get("sparknlp_lemma_model")},
    )
    out = io.dataset_path(root, TOKENS)
    with timer.stage("preprocess+write"):
        io.write_parquet_atomic(tokens, out)
    with timer.stage("summary"):
        written = spark.read.parquet(out)
        agg = written.agg(F.count(F.lit(1)).alias("reviews"),
                          F.sum(F.size(S.LEMMAS)).alias("words"),
                          F.sum(F.when(F.size(S.LEMMAS) == 0, 1).otherwise(0)).alias("empty")).first()
    summary = {
        "reviews": int(agg["reviews"]), "total_words": int(agg["words"] or 0),
        "reviews_without_words": int(agg["empty"] or 0), "engine": t["engine"],
        "pos_lemma": t["pos_lemma"], "tagger": t["tagger"] if builtin_pos else None, "tag_cased": tag_cased,
        "tag_before_stopwords": tag_before,
        "fast_path": t["fast_path"], "stop_words": len(stop_words), "config_hash": cfg.hash(),
        "timings_s": timer.timings, "driver_peak_rss_mb": round(peak_rss_mb(), 1),
    }
    io.write_json_atomic(spark, io.dataset_path(root, "report/preprocess.json"), summary)
    log.info("preprocess: %d reviews, %d words (engine %s) -> %s", summary["reviews"],
             summary["total_words"], t["engine"], out)
    return summary
