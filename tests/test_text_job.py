"""The preprocess job: stop-word config, and reviews -> tokens on a tiny run root."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from reviewrec import schema as S
from reviewrec.text.job import resolve_stop_words


def test_stop_words_list_and_extra():
    assert resolve_stop_words(["the", "a"], ["zz", "the"]) == ["a", "the", "zz"]


def test_stop_words_errors_name_the_key():
    with pytest.raises(ValueError, match="text.stop_words = 'klingon'"):
        resolve_stop_words("klingon", [])
    with pytest.raises(ValueError, match="text.stop_words: every entry must be a string"):
        resolve_stop_words(["ok", 3], [])  # type: ignore[list-item]


@pytest.mark.spark
def test_spark_english_list(spark):
    words = resolve_stop_words("english", ["amazon"])
    assert len(words) == 182 and {"the", "not", "amazon"} <= set(words)


@pytest.mark.spark
def test_preprocess_job_writes_tokens(spark, run_root):
    from reviewrec import io
    from reviewrec.config import load_config
    from reviewrec.text.job import run

    rows = [
        ("US", "c1", "R1", "p1", None, "t", "Beauty", 5, 0, 0, False, True, "Five Stars",
         "The kids loved these puzzles<br />", dt.date(2015, 1, 1)),
        ("US", "c2", "R2", "p1", None, "t", "Beauty", 1, 0, 0, False, True, None, "meh", dt.date(2015, 1, 2)),
    ]
    io.write_parquet_atomic(spark.createDataFrame(rows, S.REVIEWS_SCHEMA), io.dataset_path(run_root, "reviews"))
    cfg = load_config([], [f"run.root={run_root}"])
    summary = run(spark, cfg)
    got = {r[S.REVIEW_ID]: (r[S.LEMMAS], r[S.POS]) for r in spark.read.parquet(f"{run_root}/tokens").collect()}
    assert got == {"R1": (["five", "star", "kid", "love", "puzzle"], ["NUM", "NOUN", "NOUN", "VERB", "NOUN"]),
                   "R2": (["meh"], ["NOUN"])}
    assert (summary["reviews"], summary["total_words"], summary["reviews_without_words"]) == (2, 6, 0)
    with open(f"{run_root}/report/preprocess.json", encoding="utf-8") as fh:
        report = json.load(fh)
    assert report["engine"] == "builtin" and report["fast_path"] is True and report["tagger"] == "perceptron"
    assert report["tag_cased"] is True and report["tag_before_stopwords"] is True
