"""Each Spark step of the preprocessing chain on small literal DataFrames, and the stop-word list."""
from __future__ import annotations

import pytest
from pyspark.sql import types as T

from reviewrec.preprocess import transforms

pytestmark = pytest.mark.spark

ARR = T.ArrayType(T.StringType())


def _rows(df, *cols):
    return [tuple(r[c] for c in cols) for r in df.orderBy("id").collect()]


def test_stop_words_list_and_extra():
    assert transforms.resolve_stop_words(["the", "a"], ["zz", "the"]) == ["a", "the", "zz"]


def test_stop_words_errors_name_the_key():
    with pytest.raises(ValueError, match="text.stop_words = 'klingon'"):
        transforms.resolve_stop_words("klingon", [])
    with pytest.raises(ValueError, match="text.stop_words: every entry must be a string"):
        transforms.resolve_stop_words(["ok", 3], [])  # type: ignore[list-item]


def test_spark_english_list(spark):
    words = transforms.resolve_stop_words("english", ["amazon"])
    assert len(words) == 182 and {"the", "not", "amazon"} <= set(words)


def test_review_text_joins_headline_and_body(spark):
    df = spark.createDataFrame([("R1", "Five Stars", "Great"), ("R2", None, "ok"), ("R3", "Meh", None)],
                               "review_id string, review_headline string, review_body string")
    assert {r["review_id"]: r["text"] for r in transforms.review_text(df).collect()} == {
        "R1": "Five Stars Great", "R2": "ok", "R3": "Meh"}


def test_lowercase_and_strip_html(spark):
    df = spark.createDataFrame([(1, "Great<br />PRODUCT&#34;ok&#34;&amp;fine <a href='x'>link</a>")], ["id", "text"])
    out = df.transform(transforms.lowercase).transform(transforms.strip_html)
    assert _rows(out, "text") == [("great product ok  fine  link ",)]


def test_tokenize(spark):
    df = spark.createDataFrame(
        [(1, "don't stop! the product's \u2018best\u2019 'quoted' caf\u00e9, 2nd ''"), (2, ""), (3, None)],
        ["id", "text"])
    out = transforms.tokenize(df)
    assert out.columns == ["id", "tokens"]
    assert _rows(out, "tokens") == [
        (["don't", "stop", "the", "product", "'s", "best", "quoted", "caf\u00e9", "2nd"],),
        ([],),
        (None,),
    ]


def test_remove_stop_words_case_insensitive_keeps_order(spark):
    df = spark.createDataFrame([(1, ["the", "Product", "is", "GREAT", "the"])], "id int, tokens array<string>")
    out = transforms.remove_stop_words(df, ["the", "is"])
    assert _rows(out, "tokens") == [(["Product", "GREAT"],)]
    assert _rows(transforms.remove_stop_words(df, []), "tokens") == [(["the", "Product", "is", "GREAT", "the"],)]


def test_no_pos_lemma(spark):
    df = spark.createDataFrame([(1, ["Kids", "loved"])], "id int, tokens array<string>")
    out = transforms.no_pos_lemma(df)
    assert out.columns == ["id", "lemmas", "pos"] and _rows(out, "lemmas", "pos") == [(["Kids", "loved"], [])]


def test_drop_short(spark):
    df = spark.createDataFrame([(1, ["ok", "good", "an", "fine"]), (2, []), (3, None)], "id int, tokens array<string>")
    assert _rows(transforms.drop_short(df, 3), "tokens") == [(["good", "fine"],), ([],), (None,)]


def test_drop_repeats(spark):
    words = ["aaaamazing", "zzzzz", "soooo", "good", "cool", "aaab", "cooool"]
    df = spark.createDataFrame([(1, words)], "id int, tokens array<string>")
    assert _rows(transforms.drop_repeats(df, 3), "tokens") == [(["good", "cool", "aaab"],)]
    # A limit of 1 drops any doubled letter.
    df1 = spark.createDataFrame([(1, ["good", "cat", "book"])], "id int, tokens array<string>")
    assert _rows(transforms.drop_repeats(df1, 1), "tokens") == [(["cat"],)]


def test_repeat_regex_limit():
    import re

    rx = re.compile(transforms.repeat_regex(1))
    assert [w for w in ["good", "cat", "aab"] if not rx.search(w)] == ["cat"]
    rx3 = re.compile(transforms.repeat_regex(3))
    assert [w for w in ["aaab", "aaaab"] if not rx3.search(w)] == ["aaab"]
