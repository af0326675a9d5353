"""The preprocessing chain, one pure transform per step (DataFrame in, DataFrame out).

    lowercase -> strip_html -> tokenize -> remove_stop_words -> pos_lemma
              -> drop_short -> drop_repeats

Every step except `pos_lemma` is a Spark built-in (JVM); `pos_lemma` runs the configured
engine: `builtin` in Python workers whose tagger is loaded once per worker, by default as one
`mapInArrow` step that also applies the length and repeat filters per distinct lemma
(`pos_lemma_fast`; the Spark `drop_short` / `drop_repeats` steps give the same result and
run in the chain without POS + lemma), or as a per-row pandas UDF (`pos_lemma_builtin`);
`sparknlp` through Spark NLP annotators (text/sparknlp_engine.py). Transforms take plain
values (column names, limits, word lists), never the Config.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.ml.feature import StopWordsRemover
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from reviewrec import schema as S
from reviewrec.text.tagger import PUNCT_RE

if TYPE_CHECKING:
    from reviewrec.text.tagger import BuiltinTagger, PerceptronAnalyzer

TEXT = "text"
# Every tag the builtin tagger emits (UD's 17 UPOS tags).
UPOS_TAGS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
             "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X")
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


def _pos_lemma_batches(tokens: pd.Series, context_rules: bool, cased: bool = False,
                       stop_words: frozenset[str] | None = None, tagger_name: str = "brill") -> pd.DataFrame:
    from reviewrec.text.tagger import get_analyzer

    tagger = get_analyzer(tagger_name, context_rules, cased)
    lemmas: list[list[str] | None] = []
    pos: list[list[str] | None] = []
    analyze = tagger.analyze
    for arr in tokens:
        if arr is None:
            lemmas.append(None)
            pos.append(None)
            continue
        toks = arr.tolist() if hasattr(arr, "tolist") else list(arr)
        lem, tags = analyze(toks)
        if stop_words is not None:  # tagged in full sentences, stop words dropped afterwards
            keep = [i for i, w in enumerate(toks) if w.lower() not in stop_words]
            lem, tags = [lem[i] for i in keep], [tags[i] for i in keep]
        lemmas.append(lem)
        pos.append(tags)
    return pd.DataFrame({S.LEMMAS: lemmas, S.POS: pos})


def pos_lemma_builtin(df: DataFrame, col_tokens: str = TOKENS, context_rules: bool = False,
                      cased: bool = False, stop_words: Sequence[str] | None = None,
                      tagger: str = "brill") -> DataFrame:
    """`col_tokens` -> `lemmas` (lowercase lemmas) and `pos` (UPOS tags), same length and order,
    by the builtin engine's `tagger` (brill or perceptron) in an Arrow-batched pandas UDF, one
    token sequence at a time; `col_tokens` is dropped. `cased`: the tokens keep their case (the
    tagger is told so). `stop_words`: tag the full token sequence, then drop these words
    (case-insensitive)."""
    stop = frozenset(w.lower() for w in stop_words) if stop_words is not None else None
    _check_tagger(tagger, context_rules)

    def fn(tokens: pd.Series) -> pd.DataFrame:
        return _pos_lemma_batches(tokens, context_rules, cased, stop, tagger)

    udf = F.pandas_udf(fn, POS_LEMMA_TYPE)  # type: ignore[call-overload]
    tmp = "__pos_lemma"
    return (df
            .withColumn(tmp, udf(F.col(col_tokens)))
            .withColumn(S.LEMMAS, F.col(f"{tmp}.{S.LEMMAS}"))
            .withColumn(S.POS, F.col(f"{tmp}.{S.POS}"))
            .drop(tmp, col_tokens))


def analyze_arrow(tokens: pa.Array, tagger: BuiltinTagger, min_length: int, max_repeat: int,
                  stop_words: frozenset[str] | None = None) -> tuple[pa.Array, pa.Array]:
    """One Arrow batch of token lists -> (lemmas, pos) list arrays, with stop words (if given:
    tag first, then drop them), the length filter and the repeat filter applied.

    Work is done per distinct token of the batch, not per token: each distinct word is
    looked up once (`tagger.word_info`, cached across batches), and per-token results are
    numpy gathers. Only rows holding a word whose tag depends on its neighbours (or an
    unknown word next to which a Brill goodleft/goodright rule could fire) go through
    `tagger.analyze` on the whole row, so the output equals `analyze` row by row followed by
    the length and repeat filters (tested against that path)."""
    n = len(tokens)
    row, lengths, words, idx = _encode_batch(tokens)
    starts = np.concatenate(([0], np.cumsum(lengths)))
    infos = [tagger.word_info(w) for w in words]
    from reviewrec.text.tagger import _to_upos as to_upos
    lem_ids: dict[str, int] = {}
    lem_list: list[str] = []

    def lid(lemma: str) -> int:
        i = lem_ids.get(lemma)
        if i is None:
            i = lem_ids[lemma] = len(lem_list)
            lem_list.append(lemma)
        return i

    pos_ids = {u: i for i, u in enumerate(UPOS_TAGS)}
    lemma_of = np.fromiter((lid(i[0]) for i in infos), np.int64, len(infos))
    upos_of = np.fromiter((pos_ids[i[1]] for i in infos), np.int64, len(infos))
    ptb_of = [i[2] for i in infos]
    free_of = np.fromiter((i[3] for i in infos), bool, len(infos))
    unk_of = np.fromiter((i[4] for i in infos), bool, len(infos))
    mx = tagger.morph_context_words
    mx_of = np.fromiter((w in mx for w in words), bool, len(words))
    lemma_id = lemma_of[idx]
    upos_id = upos_of[idx]
    # Rows where an unknown word sits next to a word of Brill's goodleft/goodright rules: the
    # whole row goes through analyze (rare once stop words are gone).
    whole = np.zeros(n, bool)
    if len(idx) > 1 and unk_of.any() and mx_of.any():
        mx_t = mx_of[idx]
        same = row[1:] == row[:-1]
        beside = np.zeros(len(idx), bool)
        beside[1:] |= mx_t[:-1] & same
        beside[:-1] |= mx_t[1:] & same
        hit = unk_of[idx] & beside
        if hit.any():
            whole[row[hit]] = True
        for r in np.flatnonzero(whole):
            a, b = starts[r], starts[r + 1]
            lem, ups = tagger.analyze([words[i] for i in idx[a:b]])
            lemma_id[a:b] = [lid(x) for x in lem]
            upos_id[a:b] = [pos_ids[x] for x in ups]
    # Words whose UPOS depends on the neighbours: `_to_upos` on a window of the row (it reads
    # one token back and up to three ahead).
    ctx = np.flatnonzero(~free_of[idx] & ~whole[row])
    if len(ctx):
        lo = np.maximum(starts[row[ctx]], ctx - 1).tolist()
        hi = np.minimum(starts[row[ctx] + 1], ctx + 4).tolist()
        idx_l = idx.tolist()
        for k, a, b in zip(ctx.tolist(), lo, hi):
            win = idx_l[a:b]
            ptb = [ptb_of[j] for j in win]
            u = to_upos([words[j] for j in win], ptb, k - a)
            lemma_id[k] = lid(tagger.lemma(words[idx_l[k]], u, ptb[k - a]))
            upos_id[k] = pos_ids[u]
    return _filtered_lists(tokens, row, words, idx, lem_list, lemma_id, upos_id, min_length, max_repeat,
                           stop_words)


def _filtered_lists(tokens: pa.Array, row: np.ndarray, words: list[str], idx: np.ndarray,
                    lem_list: list[str], lemma_id: np.ndarray, upos_id: np.ndarray, min_length: int,
                    max_repeat: int, stop_words: frozenset[str] | None) -> tuple[pa.Array, pa.Array]:
    """(lemmas, pos) list arrays of a batch from per-token lemma ids (into `lem_list`) and UPOS
    ids (into UPOS_TAGS), with the length and repeat filters (per distinct lemma) and, if
    given, the stop words (per distinct word) applied."""
    n = len(tokens)
    rx = re.compile(repeat_regex(max_repeat))
    ok_lemma = np.fromiter((len(x) >= min_length and not rx.search(x) for x in lem_list), bool, len(lem_list))
    keep = ok_lemma[lemma_id]
    if stop_words is not None:
        keep &= ~np.fromiter((w.lower() in stop_words for w in words), bool, len(words))[idx]
    offsets = pa.array(np.concatenate(([0], np.cumsum(np.bincount(row[keep], minlength=n)))).astype(np.int32))
    mask = tokens.is_null() if tokens.null_count else None
    lem_vals = pa.array(lem_list, pa.string()).take(pa.array(lemma_id[keep]))
    pos_vals = pa.array(UPOS_TAGS, pa.string()).take(pa.array(upos_id[keep]))
    return (pa.ListArray.from_arrays(offsets, lem_vals, mask=mask),
            pa.ListArray.from_arrays(offsets, pos_vals, mask=mask))


def _encode_batch(tokens: pa.Array) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """(row of each token, tokens per row, distinct tokens, token -> distinct index) of a batch
    of token lists; a null inside a list is an error naming its batch row."""
    n = len(tokens)
    flat = tokens.flatten()
    row = pc.list_parent_indices(tokens).to_numpy(zero_copy_only=False)
    if flat.null_count:
        first = int(row[np.flatnonzero(flat.is_null().to_numpy(zero_copy_only=False))[0]])
        raise ValueError(f"token lists must not hold nulls (batch row {first})")
    lengths = np.bincount(row, minlength=n)
    enc = pc.dictionary_encode(flat)
    return row, lengths, enc.dictionary.to_pylist(), enc.indices.to_numpy(zero_copy_only=False)


def analyze_arrow_perceptron(tokens: pa.Array, analyzer: PerceptronAnalyzer, min_length: int,
                             max_repeat: int, stop_words: frozenset[str] | None = None
                             ) -> tuple[pa.Array, pa.Array]:
    """`analyze_arrow` for text.tagger=perceptron: the whole batch is decoded at once
    (`PerceptronModel.tag_flat`, position lockstep over the rows), lemmas are computed once per
    distinct (word, label) pair, then the same filters. Equals `analyzer.analyze` row by row
    followed by the length and repeat filters (tested)."""
    row, lengths, words, idx = _encode_batch(tokens)
    model = analyzer.model
    punct = np.fromiter((PUNCT_RE.match(w) is not None for w in words), bool, len(words))
    pos_ids = {u: i for i, u in enumerate(UPOS_TAGS)}
    label_upos = np.array([pos_ids[u] for u in analyzer.label_upos], np.int64)
    labels = np.empty(len(idx), np.int64)
    tagged = ~punct[idx] if punct.any() else np.ones(len(idx), bool)
    forms = [analyzer.model_form(w) for w in words]
    if tagged.all():
        labels[:] = model.tag_flat(forms, idx, lengths)
    else:
        labels[tagged] = model.tag_flat(forms, idx[tagged], np.bincount(row[tagged], minlength=len(tokens)))
    # One lemma per distinct (word, label) pair; punctuation (never from the chain's tokenizer)
    # gets label n_cls: UPOS by rule, lemma = the token.
    n_cls = model.n_classes
    pair = idx * (n_cls + 1) + np.where(tagged, labels, n_cls)
    seen = np.zeros(len(words) * (n_cls + 1), bool)
    seen[pair] = True
    uniq = np.flatnonzero(seen)
    where = np.empty(len(seen), np.int64)
    where[uniq] = np.arange(len(uniq))
    inv = where[pair]
    w_of, lab_of = np.divmod(uniq, n_cls + 1)
    lemma = analyzer.lemma
    lem_list = [lemma(words[w], lab) if lab < n_cls else words[w].lower()
                for w, lab in zip(w_of.tolist(), lab_of.tolist())]
    u_upos = np.append(label_upos, -1)[lab_of]
    if (lab_of == n_cls).any():
        for j in np.flatnonzero(lab_of == n_cls).tolist():
            u_upos[j] = pos_ids[analyzer.rule_upos(words[w_of[j]])]
    return _filtered_lists(tokens, row, words, idx, lem_list, inv, u_upos[inv], min_length,
                           max_repeat, stop_words)


def _check_tagger(tagger: str, context_rules: bool) -> None:
    from reviewrec.text.tagger import TAGGERS

    if tagger not in TAGGERS:
        raise ValueError(f"unknown text.tagger {tagger!r}; choose one of {list(TAGGERS)}")
    if context_rules and tagger != "brill":
        raise ValueError("text.context_rules=true applies to text.tagger=brill only")


def pos_lemma_fast(df: DataFrame, min_length: int, max_repeat: int, col_tokens: str = TOKENS,
                   context_rules: bool = False, cased: bool = False,
                   stop_words: Sequence[str] | None = None, tagger: str = "brill") -> DataFrame:
    """POS tag + lemmatize + length filter + repeat filter in one `mapInArrow` step
    (`analyze_arrow`, or `analyze_arrow_perceptron` for tagger=perceptron, per Arrow batch; the
    tagger is loaded once per Python worker): `col_tokens` -> `lemmas`, `pos`. Same output as
    `pos_lemma_builtin` followed by `drop_short` and `drop_repeats`, with one Arrow round trip
    and per-distinct-word work."""
    stop = frozenset(w.lower() for w in stop_words) if stop_words is not None else None
    _check_tagger(tagger, context_rules)
    others = [c for c in df.columns if c != col_tokens]
    out_schema = T.StructType([*[df.schema[c] for c in others],
                               T.StructField(S.LEMMAS, T.ArrayType(T.StringType()), True),
                               T.StructField(S.POS, T.ArrayType(T.StringType()), True)])

    def fn(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from reviewrec.text.tagger import get_analyzer

        an = get_analyzer(tagger, context_rules, cased)
        step = analyze_arrow_perceptron if tagger == "perceptron" else analyze_arrow
        for b in batches:
            lem, pos = step(b.column(col_tokens), an, min_length, max_repeat, stop)  # type: ignore[arg-type]
            yield pa.RecordBatch.from_arrays([*[b.column(c) for c in others], lem, pos],
                                             names=[*others, S.LEMMAS, S.POS])

    return df.mapInArrow(fn, out_schema)


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
               sparknlp_models: dict[str, str | None] | None = None, tag_cased: bool = False,
               tag_before_stopwords: bool = False, fast_path: bool = True, tagger: str = "brill") -> DataFrame:
    """reviews (review_id, review_headline, review_body) -> review_id, lemmas, pos.

    One row per input review (a review whose tokens are all filtered keeps empty arrays).
    With `pos_lemma=False` the tagging step is skipped (lemmas = tokens, pos = []): the
    baseline the benchmark compares against. Builtin engine options: `tag_cased` tokenizes
    the original-case text and lets the tagger see the case (lemmas are lowercase all the
    same; the lowercase step moves after tagging); `tag_before_stopwords` tags the full token
    sequence and drops stop words afterwards; `fast_path` runs tagging, lemmas and both
    filters in one Arrow step per distinct word (`pos_lemma_fast`), else the per-row pandas
    UDF followed by the Spark filter steps (same output); `tagger`: `brill` (Brill's rules over
    textblob's lexicon) or `perceptron` (averaged perceptron trained on UD English-EWT).
    """
    builtin = engine == "builtin" and pos_lemma
    if (tag_cased or tag_before_stopwords) and not builtin:
        raise ValueError("text.tag_cased / text.tag_before_stopwords apply to text.engine=builtin "
                         "with text.pos_lemma=true only")
    df = review_text(reviews)
    if not tag_cased:
        df = df.transform(lowercase)
    df = df.transform(strip_html).transform(tokenize)
    if engine == "sparknlp" and pos_lemma:
        from reviewrec.text.sparknlp_engine import pos_lemma_sparknlp

        df = pos_lemma_sparknlp(df, stop_words, **(sparknlp_models or {}))
    elif engine not in ("builtin", "sparknlp"):
        raise ValueError(f"unknown text engine {engine!r}; choose builtin or sparknlp")
    else:
        if pos_lemma:
            _check_tagger(tagger, context_rules)
        late_stop = list(stop_words) if tag_before_stopwords and stop_words else None
        if late_stop is None:
            df = df.transform(remove_stop_words, stop_words)
        if not pos_lemma:
            df = df.transform(no_pos_lemma)
        elif fast_path:
            return (df.transform(pos_lemma_fast, min_length, max_repeat, context_rules=context_rules,
                                 cased=tag_cased, stop_words=late_stop, tagger=tagger)
                    .select(S.REVIEW_ID, S.LEMMAS, S.POS))
        else:
            df = df.transform(pos_lemma_builtin, context_rules=context_rules, cased=tag_cased,
                              stop_words=late_stop, tagger=tagger)
    return (df
            .transform(drop_short, min_length)
            .transform(drop_repeats, max_repeat)
            .select(S.REVIEW_ID, S.LEMMAS, S.POS))
