"""The `builtin` text engine: POS tags and lemmas in the Python workers, offline.

Tags come from the averaged perceptron of preprocess/perceptron.py (UPOS, trained on UD
English-EWT), lemmas from preprocess/lemmatizer.py given those tags. The tokens keep their case
(the perceptron's only name feature is a capital letter) and their stop words (its features
read two words and two tags on each side) until they are tagged; stop words, short lemmas and
lemmas with a long character run are dropped afterwards.

On Spark this is one `mapInArrow` step (`pos_lemma_builtin`). Each Arrow batch is decoded at
once (`PerceptronModel.tag_flat`), lemmas are computed once per distinct (word, label) pair,
and the filters once per distinct lemma; the output lists are rebuilt from offsets, so no
per-row Python objects are made. The analyzer (weights + lexicon) is loaded once per Python
worker (`get_analyzer`).
"""
from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from reviewrec import schema as S
from reviewrec.preprocess.lemmatizer import Lemmatizer
from reviewrec.preprocess.perceptron import WEIGHTS_FILE, PerceptronModel, default_weights_path, get_model
from reviewrec.preprocess.transforms import TOKENS, repeat_regex
from reviewrec.preprocess.upos import PTB_TO_UPOS, PUNCT_RE, UPOS_TAGS, punctuation_upos

# Perceptron label VerbForm -> Penn tag hint for the lemmatizer (base form, gerund, participle).
VERBFORM_PTB = {"Inf": "VB", "Ger": "VBG", "Part": "VBN"}
_UPOS_ID = {u: i for i, u in enumerate(UPOS_TAGS)}


class PosLemmaAnalyzer:
    """UPOS from the perceptron, lemmas from the lemmatizer given that UPOS.

    Tokens without a letter or digit (punctuation; the chain's tokenizer never yields them) are
    left out of the perceptron's stream, as in its training data, and tagged by rule
    (`upos.punctuation_upos`); their lemma is the token. The lemmatizer's Penn hint is VB /
    VBG / VBN from the VerbForm of a verb label, else the lexicon's tag of the word when it
    maps to the same UPOS ("JJ" keeps "other" an adjective)."""

    def __init__(self, model: PerceptronModel, lemmatizer: Lemmatizer):
        self.model = model
        self.lemmatizer = lemmatizer
        self.label_upos = list(model.upos)
        self.label_verbform = [c.split("|", 1)[1] if "|" in c else "-" for c in model.classes]
        self._lemma_cache: dict[tuple[str, int], str] = {}

    def lemma(self, word: str, label: int) -> str:
        """Lowercase lemma of token `word` with perceptron label id `label`."""
        key = (word, label)
        got = self._lemma_cache.get(key)
        if got is None:
            upos = self.label_upos[label]
            hint = VERBFORM_PTB.get(self.label_verbform[label], "")
            if not hint:
                p = self.lemmatizer.penn_tag(word)
                if p is not None and PTB_TO_UPOS.get(p) == upos:
                    hint = p
            got = self.lemmatizer.lemma(word, upos, hint)
            if len(self._lemma_cache) < 1_000_000:
                self._lemma_cache[key] = got
        return got

    def analyze(self, tokens: Sequence[str]) -> tuple[list[str], list[str]]:
        """(lemmas, UPOS tags) of one token sequence, every token kept."""
        tagged = tag_batch(pa.array([list(tokens)], pa.list_(pa.string())), self)
        return ([tagged.lemmas[i] for i in tagged.lemma_id.tolist()],
                [UPOS_TAGS[i] for i in tagged.upos_id.tolist()])


@functools.lru_cache(maxsize=1)
def get_analyzer() -> PosLemmaAnalyzer:
    """One analyzer per Python process (a Spark worker loads it once, then reuses it)."""
    return PosLemmaAnalyzer(get_model(), Lemmatizer())


@dataclass
class TaggedBatch:
    """Per token of a batch of token lists (row after row): its row, its index into the
    distinct tokens `words`, its lemma id (into `lemmas`) and UPOS id (into UPOS_TAGS)."""
    row: np.ndarray
    words: list[str]
    idx: np.ndarray
    lemmas: list[str]
    lemma_id: np.ndarray
    upos_id: np.ndarray


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


def tag_batch(tokens: pa.Array, analyzer: PosLemmaAnalyzer) -> TaggedBatch:
    """Tags and lemmas of an Arrow batch of token lists: the batch is decoded at once
    (`PerceptronModel.tag_flat`, position lockstep over the rows), and each distinct
    (word, label) pair is lemmatized once."""
    row, lengths, words, idx = _encode_batch(tokens)
    model = analyzer.model
    punct = np.fromiter((PUNCT_RE.match(w) is not None for w in words), bool, len(words))
    label_upos = np.array([_UPOS_ID[u] for u in analyzer.label_upos], np.int64)
    labels = np.empty(len(idx), np.int64)
    tagged = ~punct[idx] if punct.any() else np.ones(len(idx), bool)
    if tagged.all():
        labels[:] = model.tag_flat(words, idx, lengths)
    else:
        labels[tagged] = model.tag_flat(words, idx[tagged], np.bincount(row[tagged], minlength=len(tokens)))
    # One lemma per distinct (word, label) pair; punctuation gets label n_cls: UPOS by rule,
    # lemma = the token.
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
                for w, lab in zip(w_of.tolist(), lab_of.tolist(), strict=False)]
    u_upos = np.append(label_upos, -1)[lab_of]
    for j in np.flatnonzero(lab_of == n_cls).tolist():
        u_upos[j] = _UPOS_ID[punctuation_upos(words[w_of[j]])]
    return TaggedBatch(row, words, idx, lem_list, inv, u_upos[inv])


def lemmas_and_pos(tokens: pa.Array, analyzer: PosLemmaAnalyzer, min_length: int, max_repeat: int,
                   stop_words: frozenset[str]) -> tuple[pa.Array, pa.Array]:
    """An Arrow batch of token lists -> (lemmas, pos) list arrays: tagged in full, then tokens
    in `stop_words` (lowercase, compared case-insensitively), lemmas shorter than `min_length`
    and lemmas with a character repeated more than `max_repeat` times in a row dropped (per
    distinct word / lemma). A null list stays null."""
    t = tag_batch(tokens, analyzer)
    rx = re.compile(repeat_regex(max_repeat))
    ok_lemma = np.fromiter((len(x) >= min_length and not rx.search(x) for x in t.lemmas), bool, len(t.lemmas))
    keep = ok_lemma[t.lemma_id]
    if stop_words:
        keep &= ~np.fromiter((w.lower() in stop_words for w in t.words), bool, len(t.words))[t.idx]
    n = len(tokens)
    offsets = pa.array(np.concatenate(([0], np.cumsum(np.bincount(t.row[keep], minlength=n)))).astype(np.int32))
    mask = tokens.is_null() if tokens.null_count else None
    lem_vals = pa.array(t.lemmas, pa.string()).take(pa.array(t.lemma_id[keep]))
    pos_vals = pa.array(UPOS_TAGS, pa.string()).take(pa.array(t.upos_id[keep]))
    return (pa.ListArray.from_arrays(offsets, lem_vals, mask=mask),
            pa.ListArray.from_arrays(offsets, pos_vals, mask=mask))


def ship_weights(spark: SparkSession) -> None:
    """Off local mode, the POS weights file goes to every executor with `SparkContext.addFile`
    (once per application), where `perceptron.default_weights_path` finds it through SparkFiles
    when the executor's machine has no copy of the repository."""
    sc = spark.sparkContext
    if sc.master.startswith("local"):
        return
    if not any(os.path.basename(f) == WEIGHTS_FILE for f in sc.listFiles):
        sc.addFile(default_weights_path())


def pos_lemma_builtin(df: DataFrame, min_length: int, max_repeat: int, stop_words: Sequence[str],
                      col_tokens: str = TOKENS) -> DataFrame:
    """`col_tokens` (array<string>, case kept, stop words kept) -> `lemmas` (lowercase) and `pos`
    (UPOS), aligned, with stop words (case-insensitive), short lemmas and repeated-character
    lemmas dropped after tagging: one `mapInArrow` step (`lemmas_and_pos` per Arrow batch).
    Other columns pass through; `col_tokens` is dropped."""
    stop = frozenset(w.lower() for w in stop_words)
    ship_weights(df.sparkSession)
    others = [c for c in df.columns if c != col_tokens]
    out_schema = T.StructType([*[df.schema[c] for c in others],
                               T.StructField(S.LEMMAS, T.ArrayType(T.StringType()), True),
                               T.StructField(S.POS, T.ArrayType(T.StringType()), True)])

    def fn(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        analyzer = get_analyzer()
        for b in batches:
            lem, pos = lemmas_and_pos(b.column(col_tokens), analyzer, min_length, max_repeat, stop)
            yield pa.RecordBatch.from_arrays([*[b.column(c) for c in others], lem, pos],
                                             names=[*others, S.LEMMAS, S.POS])

    return df.mapInArrow(fn, out_schema)
