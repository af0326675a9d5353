"""The preprocessing chain's Spark steps, one pure transform per step (DataFrame in, DataFrame out).

    review_text -> strip_html -> tokenize -> POS + lemma (engine; filters included)
    review_text -> lowercase -> strip_html -> tokenize -> remove_stop_words -> drop_short
                -> drop_repeats -> no_pos_lemma                    (text.pos_lemma = false)

All of them are Spark built-ins (JVM). The POS + lemma step belongs to the configured engine
(preprocess/builtin_engine.py, preprocess/sparknlp_engine.py), which tags the tokens as written with the
stop words in place and applies the stop-word, length and repeat filters after tagging;
`job.preprocess` puts the chain together. The same tokenizer gives the EDA report its raw words
(eda.py). Transforms take plain values (column names, limits, word lists), never the
Config.
"""
from __future__ import annotations

from collections.abc import Sequence

from pyspark.ml.feature import StopWordsRemover
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from reviewrec import schema as S

TEXT = "text"
TOKENS = "tokens"
SPARK_STOP_WORD_LANGUAGES = ("danish", "dutch", "english", "finnish", "french", "german", "hungarian",
                             "italian", "norwegian", "portuguese", "russian", "spanish", "swedish", "turkish")
# Markup in real pds text: tags (<br />, <a href=...>) and entities (&#34; &amp; &nbsp;).
HTML_RE = r"<[^>]{0,200}>|&#?[a-zA-Z0-9]{1,8};"
# A token: letters/digits with inner apostrophes ("don't"); the possessive 's is split off
# first ("product's" -> "product", "'s") as in Penn/UD tokenization.
TOKEN_SPLIT_RE = r"[^\p{L}\p{N}']+"


def resolve_stop_words(stop_words: str | Sequence[str], extra: Sequence[str]) -> list[str]:
    """text.stop_words ("english" or a list) + text.extra_stop_words -> the sorted word list.

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


def review_text(reviews: DataFrame, col_out: str = TEXT) -> DataFrame:
    """review_id, review_headline, review_body -> review_id, `col_out` (headline + body)."""
    text = F.concat_ws(" ", F.col(S.REVIEW_HEADLINE), F.col(S.REVIEW_BODY))
    return reviews.select(F.col(S.REVIEW_ID), text.alias(col_out))


def lowercase(df: DataFrame, col: str = TEXT) -> DataFrame:
    """`col` lowercased (Unicode-aware, as Java's String.toLowerCase)."""
    return df.withColumn(col, F.lower(F.col(col)))


def strip_html(df: DataFrame, col: str = TEXT) -> DataFrame:
    """HTML tags and character entities in `col` replaced by a space."""
    return df.withColumn(col, F.regexp_replace(F.col(col), HTML_RE, " "))


def tokenize(df: DataFrame, col_in: str = TEXT, col_out: str = TOKENS) -> DataFrame:
    """`col_in` string -> `col_out` array<string>: split on non-word characters, possessive 's
    split off, typographic apostrophes normalised, quotes at token edges stripped, empties dropped.
    `col_in` is dropped."""
    s = F.regexp_replace(F.col(col_in), "[\u2018\u2019\u02bc]", "'")
    s = F.regexp_replace(s, r"(?<=\p{L})'([sS])\b", " '$1")
    raw = F.split(s, TOKEN_SPLIT_RE)
    trimmed = F.transform(raw, lambda t: F.regexp_replace(t, r"^'+(?![sS]$)|(?<=.)'+$", ""))
    toks = F.filter(trimmed, lambda t: (F.length(t) > 0) & (t != F.lit("'")))
    return df.withColumn(col_out, toks).drop(col_in)


def remove_stop_words(df: DataFrame, stop_words: Sequence[str], col: str = TOKENS) -> DataFrame:
    """Tokens of `col` that are in `stop_words` (case-insensitive) removed, order kept."""
    if not stop_words:
        return df
    tmp = f"__{col}_nostop"
    remover = StopWordsRemover(inputCol=col, outputCol=tmp, stopWords=list(stop_words),
                               caseSensitive=False, locale="en_US")
    return remover.transform(df).drop(col).withColumnRenamed(tmp, col)


def no_pos_lemma(df: DataFrame, col_tokens: str = TOKENS) -> DataFrame:
    """The chain without POS + lemma: `lemmas` = the tokens, `pos` = an empty array."""
    return (df
            .withColumn(S.LEMMAS, F.col(col_tokens))
            .withColumn(S.POS, F.array().cast(T.ArrayType(T.StringType())))
            .drop(col_tokens))


def drop_short(df: DataFrame, min_length: int, col: str = TOKENS) -> DataFrame:
    """Tokens of `col` shorter than `min_length` characters dropped, order kept."""
    return df.withColumn(col, F.filter(F.col(col), lambda t: F.length(t) >= F.lit(min_length)))


def repeat_regex(max_repeat: int) -> str:
    """Regex matching a character repeated more than `max_repeat` times in a row."""
    return f"(.)\\1{{{max_repeat},}}"


def drop_repeats(df: DataFrame, max_repeat: int, col: str = TOKENS) -> DataFrame:
    """Tokens of `col` with a character repeated more than `max_repeat` times in a row
    ("aaaamazing", "zzzzz" for 3) dropped, order kept."""
    rx = repeat_regex(max_repeat)
    return df.withColumn(col, F.filter(F.col(col), lambda t: ~t.rlike(rx)))
