"""EDA of the reviews (the paper's section 3.3): JSON + PNG plots + one HTML page.

Counts per category, star histogram (overall and per category), reviews per year, review
length distribution, total words, vocabulary size, and the top words. Words are the lemmas of
<root>/tokens once the preprocess job has written it; before that, raw tokens from the same
tokenizer (preprocess/transforms.py); the report says which.
"""
from __future__ import annotations

import logging
import os
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from reviewrec import io
from reviewrec import schema as S
from reviewrec.config import Config
from reviewrec.report import html
from reviewrec.runtime import StageTimer
from reviewrec.preprocess.job import TOKENS_DATASET
from reviewrec.preprocess.transforms import TOKENS, lowercase, review_text, strip_html, tokenize

log = logging.getLogger(__name__)

WORD = "word"
LENGTH_BUCKETS = (0, 5, 10, 20, 50, 100, 200, 500, 1000)


def raw_tokens(reviews: DataFrame, min_length: int, col_out: str = TOKENS) -> DataFrame:
    """review_headline + review_body -> lowercase word tokens of at least `min_length` characters,
    split by the preprocess chain's own steps (lowercase, strip HTML, tokenize), so the raw
    words and the lemmas count the same tokens.

    Input: review_id, review_headline, review_body. Output: review_id, `col_out` array<string>.
    """
    toks = (review_text(reviews)
            .transform(lowercase)
            .transform(strip_html)
            .transform(tokenize, col_out=col_out))
    return toks.withColumn(col_out, F.filter(F.col(col_out), lambda t: F.length(t) >= F.lit(min_length)))


def word_stats(tokens: DataFrame, col_tokens: str, top_n: int) -> dict[str, Any]:
    """Total words, vocabulary size, top-n words and the per-review length histogram."""
    words = tokens.select(F.explode(F.col(col_tokens)).alias(WORD))
    counts = words.groupBy(WORD).count()
    agg = counts.agg(F.sum("count").alias("total"), F.count(F.lit(1)).alias("vocab")).first()
    top = counts.orderBy(F.col("count").desc(), F.col(WORD)).limit(top_n).collect()
    n = F.size(F.col(col_tokens))
    bucket = F.lit(None).cast("string")
    for lo, hi in reversed(list(zip(LENGTH_BUCKETS, LENGTH_BUCKETS[1:] + (None,), strict=False))):
        label = f"{lo}-{hi - 1}" if hi else f"{lo}+"
        cond = (n >= lo) & (n < hi) if hi else (n >= lo)
        bucket = F.when(cond, F.lit(label)).otherwise(bucket)
    hist = {r["bucket"]: int(r["count"]) for r in tokens.groupBy(bucket.alias("bucket")).count().collect()}
    order = [f"{lo}-{hi - 1}" if hi else f"{lo}+"
             for lo, hi in zip(LENGTH_BUCKETS, LENGTH_BUCKETS[1:] + (None,), strict=False)]
    return {
        "total_words": int(agg["total"] or 0),
        "vocabulary_size": int(agg["vocab"] or 0),
        "top_words": [{"word": r[WORD], "count": int(r["count"])} for r in top],
        "words_per_review_histogram": {k: hist.get(k, 0) for k in order},
    }


def review_stats(reviews: DataFrame) -> dict[str, Any]:
    """Reviews per category, star histogram overall/per category, reviews per year, users, items."""
    by_cat_star = (reviews.groupBy(S.PRODUCT_CATEGORY, S.STAR_RATING).count().collect())
    per_cat: dict[str, dict[int, int]] = {}
    for r in by_cat_star:
        per_cat.setdefault(r[S.PRODUCT_CATEGORY] or "(none)", {})[int(r[S.STAR_RATING])] = int(r["count"])
    stars = {s: sum(d.get(s, 0) for d in per_cat.values()) for s in range(1, 6)}
    per_year = {int(r["year"]): int(r["count"]) for r in
                reviews.groupBy(F.year(S.REVIEW_DATE).alias("year")).count().collect()}
    ids = reviews.agg(F.countDistinct(S.CUSTOMER_ID).alias("u"), F.countDistinct(S.PRODUCT_ID).alias("i"),
                      F.count(F.lit(1)).alias("n"), F.avg(S.STAR_RATING).alias("mean")).first()
    return {
        "reviews": int(ids["n"]),
        "customers": int(ids["u"]),
        "products": int(ids["i"]),
        "mean_star": float(ids["mean"]) if ids["mean"] is not None else None,
        "reviews_per_category": {c: sum(d.values()) for c, d in sorted(per_cat.items())},
        "star_histogram": {str(s): n for s, n in stars.items()},
        "star_histogram_per_category": {c: {str(s): d.get(s, 0) for s in range(1, 6)}
                                        for c, d in sorted(per_cat.items())},
        "reviews_per_year": dict(sorted(per_year.items())),
    }


def _plots(stats: dict[str, Any], out_dir: str) -> list[tuple[str, str]]:
    plt = html.plt()
    figs = []
    cats = stats["reviews_per_category"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.barh(list(cats), list(cats.values()), color="#4c72b0")
    ax.set_xlabel("reviews")
    ax.set_title("Reviews per category")
    figs.append(("Reviews per category", html.savefig(fig, out_dir, "reviews_per_category.png")))

    fig, ax = plt.subplots(figsize=(7, 3.5))
    bottom = [0] * 5
    for cat, hist in stats["star_histogram_per_category"].items():
        vals = [hist[str(s)] for s in range(1, 6)]
        ax.bar(range(1, 6), vals, bottom=bottom, label=cat)
        bottom = [b + v for b, v in zip(bottom, vals, strict=False)]
    ax.set_xlabel("star rating")
    ax.set_ylabel("reviews")
    ax.set_title("Star distribution (stacked by category)")
    ax.legend(fontsize=7)
    figs.append(("Star distribution", html.savefig(fig, out_dir, "star_histogram.png")))

    years = stats["reviews_per_year"]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(list(years), list(years.values()), marker="o")
    ax.set_title("Reviews per year")
    figs.append(("Reviews per year", html.savefig(fig, out_dir, "reviews_per_year.png")))

    hist = stats["words"]["words_per_review_histogram"]
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(list(hist), list(hist.values()), color="#55a868")
    ax.set_xlabel("words per review")
    ax.set_title("Review length")
    figs.append(("Review length", html.savefig(fig, out_dir, "review_length.png")))

    top = stats["words"]["top_words"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.barh([t["word"] for t in reversed(top)], [t["count"] for t in reversed(top)], color="#c44e52")
    ax.set_title(f"Top {len(top)} words ({stats['words']['source']})")
    figs.append(("Top words", html.savefig(fig, out_dir, "top_words.png")))
    return figs


def _html(stats: dict[str, Any], figs: list[tuple[str, str]]) -> str:
    w = stats["words"]
    summary = html.table(["measure", "value"], [
        ("reviews", stats["reviews"]), ("customers", stats["customers"]), ("products", stats["products"]),
        ("mean star", stats["mean_star"]), ("total words", w["total_words"]),
        ("vocabulary size", w["vocabulary_size"]), ("words from", w["source"]),
    ])
    cats = html.table(["category", "reviews", *[f"{s}★" for s in range(1, 6)]],
                   [(c, n, *[stats["star_histogram_per_category"][c][str(s)] for s in range(1, 6)])
                    for c, n in stats["reviews_per_category"].items()])
    top = html.table(["rank", "word", "count"], [(i + 1, t["word"], t["count"]) for i, t in enumerate(w["top_words"])])
    sections = [("Summary", summary), ("Categories and stars", cats), ("Top words", top)]
    sections += [(title, html.figure(name, title)) for title, name in figs]
    return html.page("reviewrec EDA", sections, subtitle=f"config {stats['config_hash']}")


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    timer = StageTimer("eda")
    root = cfg["run"]["root"]
    eda = cfg["eda"]
    reviews = io.read_parquet(spark, io.dataset_path(root, "reviews"), "ingest")
    with timer.stage("review stats"):
        stats = review_stats(reviews)
    tokens_path = io.dataset_path(root, TOKENS_DATASET)
    with timer.stage("word stats"):
        if io.dataset_exists(spark, tokens_path):
            toks = io.read_dataset(spark, tokens_path, "preprocess")
            stats["words"] = word_stats(toks, S.LEMMAS, eda["top_words"])
            stats["words"]["source"] = "lemmas (preprocess job)"
        else:
            toks = raw_tokens(reviews, eda["min_token_length"])
            stats["words"] = word_stats(toks, TOKENS, eda["top_words"])
            stats["words"]["source"] = "raw tokens (run preprocess for lemmas)"
    stats["config_hash"] = cfg.hash()
    stats["timings_s"] = timer.timings
    out = io.dataset_path(root, "report/eda")
    with timer.stage("plots+html"), io.publish_dir(spark, out) as d:
        figs = _plots(stats, d)
        io.write_json_atomic(None, os.path.join(d, "eda.json"), stats)
        with open(os.path.join(d, "index.html"), "w", encoding="utf-8") as fh:
            fh.write(_html(stats, figs))
    log.info("EDA: %d reviews, %d words, vocabulary %d; report at %s/index.html",
             stats["reviews"], stats["words"]["total_words"], stats["words"]["vocabulary_size"], out)
    return stats
