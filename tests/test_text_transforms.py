"""Each preprocessing transform on small literal DataFrames, then the whole chain and the job."""
from __future__ import annotations

import pytest
from pyspark.sql import types as T

from reviewrec import schema as S
from reviewrec.text import transforms as X

pytestmark = pytest.mark.spark

ARR = T.ArrayType(T.StringType())


def _rows(df, *cols):
    return [tuple(r[c] for c in cols) for r in df.orderBy("id").collect()]


def test_lowercase_and_strip_html(spark):
    df = spark.createDataFrame([(1, "Great<br />PRODUCT&#34;ok&#34;&amp;fine <a href='x'>link</a>")], ["id", "text"])
    out = df.transform(X.lowercase).transform(X.strip_html)
    assert _rows(out, "text") == [("great product ok  fine  link ",)]


def test_tokenize(spark):
    df = spark.createDataFrame(
        [(1, "don't stop! the product's \u2018best\u2019 'quoted' caf\u00e9, 2nd ''"), (2, ""), (3, None)],
        ["id", "text"])
    out = X.tokenize(df)
    assert out.columns == ["id", "tokens"]
    assert _rows(out, "tokens") == [
        (["don't", "stop", "the", "product", "'s", "best", "quoted", "caf\u00e9", "2nd"],),
        ([],),
        (None,),
    ]


def test_remove_stop_words_case_insensitive_keeps_order(spark):
    df = spark.createDataFrame([(1, ["the", "Product", "is", "GREAT", "the"])], "id int, tokens array<string>")
    out = X.remove_stop_words(df, ["the", "is"])
    assert _rows(out, "tokens") == [(["Product", "GREAT"],)]
    assert _rows(X.remove_stop_words(df, []), "tokens") == [(["the", "Product", "is", "GREAT", "the"],)]


def test_drop_short_keeps_pos_aligned(spark):
    df = spark.createDataFrame([
        (1, ["ok", "good", "an", "fine"], ["ADJ", "ADJ", "DET", "NOUN"]),
        (2, ["ab", "abc"], []),  # the chain without tagging: pos stays empty
    ], "id int, lemmas array<string>, pos array<string>")
    out = X.drop_short(df, 3)
    assert _rows(out, "lemmas", "pos") == [(["good", "fine"], ["ADJ", "NOUN"]), (["abc"], [])]


def test_drop_repeats(spark):
    words = ["aaaamazing", "zzzzz", "soooo", "good", "cool", "aaab", "cooool"]
    df = spark.createDataFrame([(1, words, ["X"] * len(words))], "id int, lemmas array<string>, pos array<string>")
    out = X.drop_repeats(df, 3)
    assert _rows(out, "lemmas", "pos") == [(["good", "cool", "aaab"], ["X", "X", "X"])]
    # A limit of 1 drops any doubled letter.
    df1 = spark.createDataFrame([(1, ["good", "cat", "book"], ["A", "B", "C"])],
                                "id int, lemmas array<string>, pos array<string>")
    assert _rows(X.drop_repeats(df1, 1), "lemmas", "pos") == [(["cat"], ["B"])]


def test_repeat_regex_limit():
    import re

    rx = re.compile(X.repeat_regex(1))
    assert [w for w in ["good", "cat", "aab"] if not rx.search(w)] == ["cat"]
    rx3 = re.compile(X.repeat_regex(3))
    assert [w for w in ["aaab", "aaaab"] if not rx3.search(w)] == ["aaab"]


def test_pos_lemma_builtin_udf(spark):
    df = spark.createDataFrame([
        (1, ["kids", "loved", "these", "puzzles"]),
        (2, []),
        (3, None),
    ], "id int, tokens array<string>")
    out = X.pos_lemma_builtin(df)
    assert out.columns == ["id", S.LEMMAS, S.POS]
    assert _rows(out, S.LEMMAS, S.POS) == [
        (["kid", "love", "this", "puzzle"], ["NOUN", "VERB", "DET", "NOUN"]),
        ([], []),
        (None, None),
    ]


def _reviews(spark):
    return spark.createDataFrame([
        ("R1", "Five Stars", "The kids LOVED these puzzles!<br />Sooooo good &#34;really&#34;"),
        ("R2", None, "It's ok"),
    ], "review_id string, review_headline string, review_body string")


def test_preprocess_chain(spark):
    stop = ["the", "these", "it", "it's", "really", "is"]
    out = X.preprocess(_reviews(spark), stop, min_length=3, max_repeat=3)
    assert out.columns == [S.REVIEW_ID, S.LEMMAS, S.POS]
    rows = {r[S.REVIEW_ID]: (r[S.LEMMAS], r[S.POS]) for r in out.collect()}
    # "these" is a stop word, "sooooo" has 6 o's, "ok" and "'s" are shorter than 3.
    assert rows["R1"] == (["five", "star", "kid", "love", "puzzle", "good"],
                          ["NUM", "NOUN", "NOUN", "VERB", "NOUN", "ADJ"])
    assert rows["R2"] == ([], [])


def test_preprocess_without_pos_lemma(spark):
    out = X.preprocess(_reviews(spark), ["the", "these", "really"], pos_lemma=False)
    rows = {r[S.REVIEW_ID]: (r[S.LEMMAS], r[S.POS]) for r in out.collect()}
    assert rows["R1"] == (["five", "stars", "kids", "loved", "puzzles", "good"], [])


def test_unknown_engine_is_an_error(spark):
    with pytest.raises(ValueError, match="unknown text engine 'nltk'"):
        X.preprocess(_reviews(spark), [], engine="nltk")
