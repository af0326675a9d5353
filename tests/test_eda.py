"""EDA numbers on literal reviews, and the report files the job writes."""
from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from reviewrec import io
from reviewrec import schema as S
from reviewrec.config import load_config
from reviewrec import eda

from conftest import REPO

pytestmark = pytest.mark.spark


def _reviews(spark):
    rows = [
        ("R1", "c1", "p1", "Beauty", 5, dt.date(2014, 1, 1), "Great!", "Great<br />product &#34;love&#34; it"),
        ("R2", "c2", "p1", "Beauty", 1, dt.date(2015, 1, 1), "Bad", "bad bad product"),
        ("R3", "c1", "p2", "Grocery", 5, dt.date(2015, 6, 1), None, "tasty"),
    ]
    cols = [S.REVIEW_ID, S.CUSTOMER_ID, S.PRODUCT_ID, S.PRODUCT_CATEGORY, S.STAR_RATING, S.REVIEW_DATE,
            S.REVIEW_HEADLINE, S.REVIEW_BODY]
    return spark.createDataFrame(rows, cols)


def test_raw_tokens_are_the_preprocess_chains_tokens(spark):
    toks = {r[S.REVIEW_ID]: r["tokens"] for r in eda.raw_tokens(_reviews(spark), 1).collect()}
    assert toks == {"R1": ["great", "great", "product", "love", "it"], "R2": ["bad", "bad", "bad", "product"],
                    "R3": ["tasty"]}
    short = {r[S.REVIEW_ID]: r["tokens"] for r in eda.raw_tokens(_reviews(spark), min_length=3).collect()}
    assert short["R1"] == ["great", "great", "product", "love"]
    # the chain's tokenizer: possessive split off, inner apostrophes and digits kept
    df = spark.createDataFrame([("R9", "The product's", "don't buy 2 of them")],
                               [S.REVIEW_ID, S.REVIEW_HEADLINE, S.REVIEW_BODY])
    assert eda.raw_tokens(df, 1).first()["tokens"] == ["the", "product", "'s", "don't", "buy", "2", "of", "them"]


def test_word_and_review_stats(spark):
    w = eda.word_stats(eda.raw_tokens(_reviews(spark), 1), "tokens", top_n=2)
    assert w["total_words"] == 10 and w["vocabulary_size"] == 6
    assert w["top_words"] == [{"word": "bad", "count": 3}, {"word": "great", "count": 2}]
    assert w["words_per_review_histogram"]["0-4"] == 2 and w["words_per_review_histogram"]["5-9"] == 1
    r = eda.review_stats(_reviews(spark))
    assert r["reviews"] == 3 and r["customers"] == 2 and r["products"] == 2
    assert r["reviews_per_category"] == {"Beauty": 2, "Grocery": 1}
    assert r["star_histogram"] == {"1": 1, "2": 0, "3": 0, "4": 0, "5": 2}
    assert r["star_histogram_per_category"]["Grocery"]["5"] == 1
    assert r["reviews_per_year"] == {2014: 1, 2015: 2}


def test_eda_job_writes_json_plots_and_html(spark, tmp_path):
    root = str(tmp_path / "run")
    io.write_parquet_atomic(_reviews(spark), io.dataset_path(root, "reviews"))
    cfg = load_config([str(REPO / "conf" / "local.yaml")], [f"run.root={root}"])
    stats = eda.run(spark, cfg)
    out = tmp_path / "run" / "report" / "eda"
    files = set(os.listdir(out))
    assert {"eda.json", "index.html", "star_histogram.png", "top_words.png", "reviews_per_category.png"} <= files
    assert json.loads((out / "eda.json").read_text())["words"]["total_words"] == stats["words"]["total_words"] == 10
    html = (out / "index.html").read_text()
    assert "star_histogram.png" in html and "bad" in html
    assert (out / "star_histogram.png").read_bytes()[:4] == b"\x89PNG"
