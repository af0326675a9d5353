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


ROWS = [
    ["works", "like", "it", "should"],                    # "like" before a pronoun: SCONJ
    ["kids", "loved", "puzzles", "since", "we", "moved"],
    [],
    None,
    ["people", "blorfing", "$", "zzzzzz", "aaaamazing", "ok"],  # unknown word beside a goodleft word
    ["please", "send", "it", "'s", "great", "Windows"],
    ["2", "people", "4", "u", "that", "app", "that", "crashes"],
]


def _expected(tagger, rows, min_length, max_repeat, stop=None):
    import re

    rx = re.compile(X.repeat_regex(max_repeat))
    out = []
    for toks in rows:
        if toks is None:
            out.append((None, None))
            continue
        lem, pos = tagger.analyze(toks)
        keep = [i for i, (w, l) in enumerate(zip(toks, lem))
                if len(l) >= min_length and not rx.search(l) and (stop is None or w.lower() not in stop)]
        out.append(([lem[i] for i in keep], [pos[i] for i in keep]))
    return out


@pytest.mark.parametrize("stop", [None, frozenset({"it", "should", "we", "that"})])
def test_analyze_arrow_equals_tagging_row_by_row(stop):
    """The per-distinct-word Arrow path gives what `analyze` + the two filters give row by row,
    including the rows that need context (like / since / that / please) and the row where an
    unknown word sits next to a word of Brill's goodleft rules."""
    import pyarrow as pa

    from reviewrec.text.tagger import BuiltinTagger

    tagger = BuiltinTagger()
    assert not tagger.word_info("like")[3] and tagger.word_info("blorfing")[4]  # the slow paths are hit
    lem, pos = X.analyze_arrow(pa.array(ROWS, pa.list_(pa.string())), tagger, 3, 3, stop)
    assert list(zip(lem.to_pylist(), pos.to_pylist())) == _expected(tagger, ROWS, 3, 3, stop)
    # A sliced batch (Arrow offsets not starting at 0) gives the same rows.
    lem2, pos2 = X.analyze_arrow(pa.array(ROWS, pa.list_(pa.string())).slice(4), tagger, 2, 2, stop)
    assert list(zip(lem2.to_pylist(), pos2.to_pylist())) == _expected(tagger, ROWS[4:], 2, 2, stop)


def test_analyze_arrow_rejects_null_tokens():
    import pyarrow as pa

    from reviewrec.text.tagger import BuiltinTagger

    with pytest.raises(ValueError, match="batch row 1"):
        X.analyze_arrow(pa.array([["ok"], ["fine", None]]), BuiltinTagger(), 3, 3)


def test_fast_path_equals_per_row_udf_and_spark_filters(spark):
    df = spark.createDataFrame([(i, r) for i, r in enumerate(ROWS)], "id int, tokens array<string>")
    fast = X.pos_lemma_fast(df, 3, 3)
    assert fast.columns == ["id", S.LEMMAS, S.POS]
    slow = X.pos_lemma_builtin(df).transform(X.drop_short, 3).transform(X.drop_repeats, 3)
    got = _rows(fast, S.LEMMAS, S.POS)
    assert got == _rows(slow, S.LEMMAS, S.POS)
    assert got[0] == (["work", "like", "should"], ["NOUN", "SCONJ", "AUX"])


def test_tag_cased_keeps_output_lowercase(spark):
    revs = spark.createDataFrame([("R1", "Installed Windows", "works like it SHOULD, Perlingiere's APP")],
                                 "review_id string, review_headline string, review_body string")
    stop = ["it", "should"]
    for fast in (True, False):
        cased = X.preprocess(revs, stop, tag_cased=True, fast_path=fast).first()
        lower = X.preprocess(revs, stop, fast_path=fast).first()
        assert cased[S.LEMMAS] == ["install", "windows", "work", "like", "perlingiere", "app"]
        assert cased[S.POS] == ["VERB", "PROPN", "NOUN", "SCONJ", "PROPN", "NOUN"]
        assert lower[S.LEMMAS] == ["install", "window", "work", "like", "perlingiere", "app"]
        assert lower[S.POS][1] == "NOUN"


def test_tag_before_stopwords_uses_the_stop_words_as_context(spark):
    revs = spark.createDataFrame([("R1", None, "works like it should")],
                                 "review_id string, review_headline string, review_body string")
    for fast in (True, False):
        before = X.preprocess(revs, ["it", "should"], tag_before_stopwords=True, fast_path=fast).first()
        after = X.preprocess(revs, ["it", "should"], fast_path=fast).first()
        assert before[S.LEMMAS] == after[S.LEMMAS] == ["work", "like"]
        assert before[S.POS] == ["NOUN", "SCONJ"] and after[S.POS] == ["NOUN", "ADP"]


def test_tagging_options_need_the_builtin_engine(spark):
    with pytest.raises(ValueError, match="text.tag_cased / text.tag_before_stopwords"):
        X.preprocess(_reviews(spark), ["the"], pos_lemma=False, tag_cased=True)
