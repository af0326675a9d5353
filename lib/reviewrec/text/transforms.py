"""The preprocessing chain, one pure transform per step (DataFrame in, DataFrame out).

    lowercase -> strip_html -> tokenize -> remove_stop_words -> pos_lemma
              -> drop_short -> drop_repeats

Every step except `pos_lemma` is a Spark built-in (JVM); `pos_lemma` runs the configured
engine: `builtin` as an Arrow-batched pandas UDF whose tagger is loaded once per Python worker,
`sparknlp` through Spark NLP annotators (text/sparknlp_engine.py). Transforms take plain
values (column names, limits, word lists), never the Config.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd
from pyspark.ml.feature import StopWordsRemover
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from reviewrec import schema as S

TEXT = "text"
TOKENS = "tokens"
POS_LEMMA_TYPE = T.StructType([
    T.StructField(S.LEMMAS, T.ArrayType(T.StringType()), True),
    T.StructField(S.POS, T.ArrayType(T.StringType()), True),
])
# Markup in real pds text: tags (<br />, <a href=...>) and entities (&#34; &amp; &nbsp;).
HTML_RE = r"<[^>]{0,200}>|&#?[a-zA-Z0-9]{1,8};"
# A token: letters/digits with inner apostrophes ("don't"); the possessive 's is split off
# first ("product's" -> "product", "'s") as in Penn/UD tokenization.
TOKEN_SPLIT_RE = r"[^\p{L}\p{N}']+"


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
    s = F.regexp_replace(s, r"(?<=\p{L})'s\b", " 's")
    raw = F.split(s, TOKEN_SPLIT_RE)
    trimmed = F.transform(raw, lambda t: F.regexp_replace(t, r"^'+(?!s$)|(?<=.)'+$", ""))
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


def _pos_lemma_batches(tokens: pd.Series, context_rules: bool) -> pd.DataFrame:
    from reviewrec.text.tagger import get_tagger

    tagger = get_tagger(context_rules)
    lemmas: list[list[str] | None] = []
    pos: list[list[str] | None] = []
    analyze = tagger.analyze
    for arr in tokens:
        if arr is None:
            lemmas.append(None)
            pos.append(None)
            continue
        lem, tags = analyze(arr.tolist() if hasattr(arr, "tolist") else list(arr))
        lemmas.append(lem)
        pos.append(tags)
    return pd.DataFrame({S.LEMMAS: lemmas, S.POS: pos})


def pos_lemma_builtin(df: DataFrame, col_tokens: str = TOKENS, context_rules: bool = False) -> DataFrame:
    """`col_tokens` -> `lemmas` (lowercase lemmas) and `pos` (UPOS tags), same length and order,
    by the builtin tagger in an Arrow-batched pandas UDF; `col_tokens` is dropped."""
    def fn(tokens: pd.Series) -> pd.DataFrame:
        return _pos_lemma_batches(tokens, context_rules)

    udf = F.pandas_udf(fn, POS_LEMMA_TYPE)  # type: ignore[call-overload]
    tmp = "__pos_lemma"
    return (df
            .withColumn(tmp, udf(F.col(col_tokens)))
            .withColumn(S.LEMMAS, F.col(f"{tmp}.{S.LEMMAS}"))
            .withColumn(S.POS, F.col(f"{tmp}.{S.POS}"))
            .drop(tmp, col_tokens))


def no_pos_lemma(df: DataFrame, col_tokens: str = TOKENS) -> DataFrame:
    """The chain without POS + lemma: `lemmas` = the tokens, `pos` = an empty array."""
    return (df
            .withColumn(S.LEMMAS, F.col(col_tokens))
            .withColumn(S.POS, F.array().cast(T.ArrayType(T.StringType())))
            .drop(col_tokens))


def _filter_pairs(df: DataFrame, keep: Callable[[Column], Column]) -> DataFrame:
    """Keep (lemma, pos) pairs whose lemma satisfies `keep`; both arrays stay aligned.

    When `pos` is empty (the chain without tagging) only `lemmas` is filtered. The filtered
    pairs are one column referenced by both outputs, so the filter runs once per row."""
    lem, pos = F.col(S.LEMMAS), F.col(S.POS)
    kept, tagged = "__kept", "__tagged"
    pairs = F.zip_with(lem, pos, lambda l, p: F.struct(l.alias("l"), p.alias("p")))
    others = [F.col(c) for c in df.columns if c not in (S.LEMMAS, S.POS)]
    return (df
            .withColumn(tagged, F.size(pos) > 0)
            .withColumn(kept, F.when(F.col(tagged), F.filter(pairs, lambda x: keep(x["l"]))))
            .select(*others,
                    F.when(F.col(tagged), F.transform(F.col(kept), lambda x: x["l"]))
                    .otherwise(F.filter(lem, keep)).alias(S.LEMMAS),
                    F.when(F.col(tagged), F.transform(F.col(kept), lambda x: x["p"]))
                    .otherwise(pos).alias(S.POS)))


def drop_short(df: DataFrame, min_length: int) -> DataFrame:
    """Lemmas shorter than `min_length` characters dropped (with their POS tags)."""
    return _filter_pairs(df, lambda t: F.length(t) >= F.lit(min_length))


def repeat_regex(max_repeat: int) -> str:
    """Regex matching a character repeated more than `max_repeat` times in a row."""
    return f"(.)\\1{{{max_repeat},}}"


def drop_repeats(df: DataFrame, max_repeat: int) -> DataFrame:
    """Lemmas with a character repeated more than `max_repeat` times in a row ("aaaamazing",
    "zzzzz" for 3) dropped (with their POS tags)."""
    rx = repeat_regex(max_repeat)
    return _filter_pairs(df, lambda t: ~t.rlike(rx))


def preprocess(reviews: DataFrame, stop_words: Sequence[str], min_length: int = 3, max_repeat: int = 3,
               engine: str = "builtin", pos_lemma: bool = True, context_rules: bool = False,
               sparknlp_models: dict[str, str | None] | None = None) -> DataFrame:
    """reviews (review_id, review_headline, review_body) -> review_id, lemmas, pos.

    One row per input review (a review whose tokens are all filtered keeps empty arrays).
    With `pos_lemma=False` the tagging step is skipped (lemmas = tokens, pos = []): the
    baseline the benchmark compares against.
    """
    df = (review_text(reviews)
          .transform(lowercase)
          .transform(strip_html)
          .transform(tokenize))
    if engine == "sparknlp" and pos_lemma:
        from reviewrec.text.sparknlp_engine import pos_lemma_sparknlp

        df = pos_lemma_sparknlp(df, stop_words, **(sparknlp_models or {}))
    else:
        df = df.transform(remove_stop_words, stop_words)
        if not pos_lemma:
            df = df.transform(no_pos_lemma)
        elif engine == "builtin":
            df = df.transform(pos_lemma_builtin, context_rules=context_rules)
        else:
            raise ValueError(f"unknown text engine {engine!r}; choose builtin or sparknlp")
    return (df
            .transform(drop_short, min_length)
            .transform(drop_repeats, max_repeat)
            .select(S.REVIEW_ID, S.LEMMAS, S.POS))
