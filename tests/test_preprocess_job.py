"""The preprocess stage: TextParams against the config, the chain as a library call, and the job
(reviews -> tokens on a tiny run root), which must give what the library call gives."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from reviewrec import io
from reviewrec import schema as S
from reviewrec.config import load_config
from reviewrec.preprocess import TextParams, preprocess

ROWS = [
    ("US", "c1", "R1", "p1", None, "t", "Beauty", 5, 0, 0, False, True, "Five Stars",
     "The kids LOVED these puzzles!<br />Sooooo good &#34;really&#34;", dt.date(2015, 1, 1)),
    ("US", "c2", "R2", "p1", None, "t", "Beauty", 1, 0, 0, False, True, None, "It's ok", dt.date(2015, 1, 2)),
    ("US", "c3", "R3", "p2", None, "t", "Beauty", 4, 0, 0, False, True, "Installed Windows",
     "works like it SHOULD, Perlingiere's APP", dt.date(2015, 1, 3)),
]


def test_defaults_are_the_configs():
    cfg = load_config()
    names = {f.name for f in dataclasses.fields(TextParams)}
    # every chain setting is a field; the rest are the Spark NLP launch settings
    assert names <= set(cfg["text"])
    assert all(k.startswith("sparknlp_") for k in set(cfg["text"]) - names)
    assert {"engine", "stop_words", "min_token_length", "max_char_repeat", "pos_lemma"} <= names
    assert TextParams() == TextParams.from_config(cfg)


def test_from_config_takes_overrides():
    p = TextParams.from_config(load_config(overrides=['text.stop_words=["the", "a"]', "text.min_token_length=2",
                                                      "text.engine=sparknlp", "text.pos_lemma=false"]))
    assert (p.stop_words, p.min_token_length, p.engine, p.pos_lemma) == (("the", "a"), 2, "sparknlp", False)
    with pytest.raises(ValueError, match="unknown text engine 'nltk'"):
        TextParams(engine="nltk")


def _reviews(spark):
    return spark.createDataFrame(ROWS, S.REVIEWS_SCHEMA)


def _collect(df):
    return {r[S.REVIEW_ID]: (r[S.LEMMAS], r[S.POS]) for r in df.collect()}


@pytest.mark.spark
def test_library_call_with_no_options_equals_the_job(spark, run_root):
    from reviewrec.preprocess.job import run

    io.write_parquet_atomic(_reviews(spark), io.dataset_path(run_root, "reviews"))
    summary = run(spark, load_config([], [f"run.root={run_root}"]))
    job = _collect(io.read_dataset(spark, f"{run_root}/tokens", "preprocess"))
    lib = _collect(preprocess(_reviews(spark)))
    assert lib == job
    # Tagged as written with the stop words in place, then filtered: "the", "these", "it" are
    # stop words, "sooooo" has a run of 6, "ok" and "'s" are short; "like" before a pronoun
    # is a subordinator, which needs "it" in place when tagging.
    assert job == {
        "R1": (["five", "star", "kid", "love", "puzzle", "good", "really"],
               ["NUM", "NOUN", "NOUN", "VERB", "NOUN", "ADJ", "ADV"]),
        "R2": ([], []),
        "R3": (["install", "window", "work", "like", "perlingiere", "app"],
               ["VERB", "NOUN", "VERB", "SCONJ", "PROPN", "PROPN"]),
    }
    assert (summary["reviews"], summary["total_words"], summary["reviews_without_words"]) == (3, 13, 1)
    with open(f"{run_root}/report/preprocess.json", encoding="utf-8") as fh:
        report = json.load(fh)
    assert (report["engine"], report["pos_lemma"], report["stop_words"]) == ("builtin", True, 181)


@pytest.mark.spark
def test_without_pos_lemma_the_library_call_equals_the_job(spark, run_root):
    from reviewrec.preprocess.job import run

    io.write_parquet_atomic(_reviews(spark), io.dataset_path(run_root, "reviews"))
    cfg = load_config([], [f"run.root={run_root}", "text.pos_lemma=false", "text.extra_stop_words=[\"five\"]"])
    run(spark, cfg)
    job = _collect(io.read_dataset(spark, f"{run_root}/tokens", "preprocess"))
    assert _collect(preprocess(_reviews(spark), TextParams.from_config(cfg))) == job
    # lowercased first, stop words dropped by Spark, lemmas = tokens, no tags
    assert job["R1"] == (["stars", "kids", "loved", "puzzles", "good", "really"], [])
    assert job["R3"][0] == ["installed", "windows", "works", "like", "perlingiere", "app"]


@pytest.mark.spark
def test_library_options(spark):
    p = TextParams(stop_words=("the", "these", "it"), min_token_length=2, max_char_repeat=5)
    got = _collect(preprocess(_reviews(spark), p))
    assert got["R1"][0] == ["five", "star", "kid", "love", "puzzle", "sooooo", "good", "really"]
    assert got["R2"] == (["be", "ok"], ["AUX", "ADJ"])  # "it's": the verb be
