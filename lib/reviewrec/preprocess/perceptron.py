"""The builtin engine's POS tagger: a greedy averaged-perceptron UPOS tagger trained
on UD English-EWT, decoded for whole Arrow batches at once with numpy.

The weights are trained here from UD English-EWT train by `./spark-submit.sh train_text_models`
(preprocess/perceptron_train.py; punctuation-only tokens left out of the token stream) and ship
beside the sparknlp engine's models as lib/sparknlp/models/builtin_pos_ud_ewt.json.gz (CC BY-SA
4.0, derived from UD English-EWT; lib/sparknlp/models/README.md). Its feature set is Honnibal's
(textblob-aptagger): for token i of a sentence whose lowercased words are c,

    bias, suf3/suf2/suf1 and pre1 of c[i], shape (X for a capital first letter else x, plus d
    when the word holds a digit), w c[i], w-1 c[i-1], w-2 c[i-2], w+1 c[i+1], w+2 c[i+2]
    (<s> / </s> past the sentence ends), t-1 p1, t-2 p2, t-1t-2 "p1 p2", t-1 w "p1 c[i]",

where p1, p2 are the two labels guessed to the left (<s> at the start). A word in the model's
tag dictionary gets its label without scoring. The label is the highest score; among equal
scores the greatest label in sorted order (as in training). Labels are
"UPOS|VerbForm" ("VERB|Ger", "NOUN|-"); no PUNCT/SYM label exists (the chain's tokenizer drops
punctuation; `builtin_engine.PosLemmaAnalyzer` tags such tokens by rule).

Weights are multiples of 0.001 and are held as int32 thousandths, so sums are exact and do not
depend on the order features are added in: `ReferencePerceptron` (per token, pure Python, the
definition above) and `PerceptronModel.tag_flat` (vectorized) must give identical labels, and
the tests check that they do.

`tag_flat` decodes a batch in position lockstep: rows (cut into independent segments after
two tag-dictionary words in a row) sorted by length, at step t the t-th token of every segment
still running is scored at once. Everything that depends only on the words
(bias, suffixes, prefix, shape, the word, the four neighbour-word features) is one int32 vector
per token, summed from per-distinct-word rows of one weight matrix; a step adds the tag-pair
table (t-1, t-2, t-1t-2) and the t-1 w table of the word, then takes the argmax.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
from collections.abc import Mapping, Sequence

import numpy as np

START = "<s>"
END = "</s>"
WEIGHTS_FILE = "builtin_pos_ud_ewt.json.gz"
# The repository's copy (lib/sparknlp/models, beside the sparknlp engine's models).
MODELS_DIR = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir,
                                          "sparknlp", "models"))
# sha256 of the shipped weights file (rebuilt byte for byte by train_text_models): a different
# file is refused rather than silently used with accuracy numbers measured on this one.
WEIGHTS_SHA256 = "8518c9052cf91b499473a4ba2c95b5933181ed20d39781326ec8fa47886c2ca7"
# Word-only features, in the order of `ReferencePerceptron.features`.
SELF_FEATURES = ("suf3", "suf2", "suf1", "pre1", "shape", "w")
CONTEXT_FEATURES = ("w-1", "w-2", "w+1", "w+2")
_CHUNK = 8192  # tokens per gather chunk in `tag_flat` (its int32 scores stay in cache)


def default_weights_path() -> str:
    """Path of the weights file: the repository's (lib/sparknlp/models), else the copy Spark
    shipped to this process (`SparkContext.addFile`: executors on other machines, a cluster-mode
    driver), else the working directory's."""
    places = [os.path.join(MODELS_DIR, WEIGHTS_FILE)]
    try:
        from pyspark import SparkFiles

        places.append(SparkFiles.get(WEIGHTS_FILE))
    except Exception:  # no SparkContext / SparkFiles root in this process
        pass
    places.append(os.path.abspath(WEIGHTS_FILE))
    for p in places:
        if os.path.isfile(p):
            return p
    raise FileNotFoundError(f"text.engine=builtin: the POS weights file {WEIGHTS_FILE} is missing (looked in "
                            f"{', '.join(places)}); rebuild it with ./spark-submit.sh train_text_models")


def file_sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def read_weights(path: str | None = None, check_hash: bool = True) -> dict:
    """The model JSON ({"classes", "tagdict", "weights"}) from `path` (default: the shipped
    file), after checking its sha256 against WEIGHTS_SHA256."""
    path = path or default_weights_path()
    with open(path, "rb") as fh:
        blob = fh.read()
    if check_hash:
        got = hashlib.sha256(blob).hexdigest()
        if got != WEIGHTS_SHA256:
            raise ValueError(f"{path}: sha256 {got} is not that of the shipped {WEIGHTS_FILE} ({WEIGHTS_SHA256})")
    raw = json.loads(gzip.decompress(blob).decode("utf-8"))
    for key in ("classes", "tagdict", "weights"):
        if key not in raw:
            raise ValueError(f"{path}: model JSON has no {key!r} entry")
    return raw


def _milli(v: float, feature: str, label: str) -> int:
    m = round(v * 1000)
    if abs(m - v * 1000) > 1e-6:
        raise ValueError(f"weight {feature!r} / {label!r} = {v!r} is not a multiple of 0.001")
    return m


def shape_of(word: str) -> str:
    s = "X" if word[:1].isupper() else "x"
    return s + "d" if any(ch.isdigit() for ch in word) else s


def features(i: int, word: str, context: Sequence[str], prev: str, prev2: str) -> list[str]:
    """The feature strings of token i, bias first: `word` as written, `context` the sentence's
    lowercased words, `prev`/`prev2` the two tags before it (the trainer and the reference
    tagger share this one definition)."""
    low = context[i]
    n = len(context)
    return ["bias", f"suf3 {low[-3:]}", f"suf2 {low[-2:]}", f"suf1 {low[-1:]}", f"pre1 {low[:1]}",
            f"shape {shape_of(word)}", f"w {low}", f"t-1 {prev}", f"t-2 {prev2}", f"t-1t-2 {prev} {prev2}",
            f"w-1 {context[i - 1] if i else START}", f"w-2 {context[i - 2] if i > 1 else START}",
            f"w+1 {context[i + 1] if i + 1 < n else END}", f"w+2 {context[i + 2] if i + 2 < n else END}",
            f"t-1 w {prev} {low}"]


class ReferencePerceptron:
    """The tagger written out token by token in plain Python (the definition `tag_flat` is
    checked against): feature strings, dict lookups, exact integer sums."""

    def __init__(self, raw: Mapping):
        self.classes = sorted(raw["classes"])
        cid = {c: i for i, c in enumerate(self.classes)}
        self.weights = {f: {cid[c]: _milli(v, f, c) for c, v in row.items()} for f, row in raw["weights"].items()}
        self.tagdict = {w: cid[c] for w, c in raw["tagdict"].items()}

    def tag(self, words: Sequence[str]) -> list[str]:
        context = [w.lower() for w in words]
        prev, prev2 = START, START
        out: list[str] = []
        for i, word in enumerate(words):
            label = self.tagdict.get(context[i])
            if label is None:
                scores = [0] * len(self.classes)
                for f in features(i, word, context, prev, prev2):
                    for c, v in self.weights.get(f, {}).items():
                        scores[c] += v
                best = max(scores)
                label = max(c for c, s in enumerate(scores) if s == best)
            out.append(self.classes[label])
            prev2, prev = prev, self.classes[label]
        return out


class PerceptronModel:
    """The model as numpy tables, for `tag_flat` (one instance per Python worker: `get_model`).

    M: (features + 1, C) int32 rows of the word-only features (row 0 = absent feature);
    PAIR: (NT * NT, C) t-1 + t-2 + t-1t-2 for every (p1, p2); T1W: (blocks + 1) * NT rows, the
    t-1 w vector of (word block, p1) (block 0 = a word without such features). All with the
    class axis reversed (column j = class C-1-j), so that argmax's first hit is the greatest
    label among equal scores. NT = C + 1 tags including <s> (id C)."""

    def __init__(self, raw: Mapping):
        self.classes: list[str] = sorted(raw["classes"])
        C = self.n_classes = len(self.classes)
        NT = self.n_tags = C + 1  # + <s>
        cid = self.class_id = {c: i for i, c in enumerate(self.classes)}
        tid = {**cid, START: C}
        self.tagdict: dict[str, int] = {w: cid[c] for w, c in raw["tagdict"].items()}
        rows: list[np.ndarray] = [np.zeros(C, np.int32)]
        self.row_of: dict[str, int] = {}
        pair = np.zeros((NT, NT, C), np.int64)
        t1w: dict[str, dict[int, np.ndarray]] = {}
        bias = np.zeros(C, np.int32)

        def vec(f: str, row: Mapping[str, float]) -> np.ndarray:
            v = np.zeros(C, np.int32)
            for c, x in row.items():
                v[cid[c]] = _milli(x, f, c)
            return v

        for f, row in raw["weights"].items():
            kind, _, val = f.partition(" ")
            if f == "bias":
                bias = vec(f, row)
            elif kind == "t-1":
                if val.startswith("w "):  # "t-1 w <p1> <word>" (labels hold no space)
                    p1, _, word = val[2:].partition(" ")
                    if p1 in tid:
                        t1w.setdefault(word, {})[tid[p1]] = vec(f, row)
                elif val in tid:
                    pair[tid[val], :, :] += vec(f, row)
            elif kind == "t-2":
                if val in tid:
                    pair[:, tid[val], :] += vec(f, row)
            elif kind == "t-1t-2":
                p1, _, p2 = val.partition(" ")
                if p1 in tid and p2 in tid:
                    pair[tid[p1], tid[p2], :] += vec(f, row)
            else:
                self.row_of[f] = len(rows)
                rows.append(vec(f, row))
        self.M = np.ascontiguousarray(np.vstack(rows)[:, ::-1]).astype(np.int32)
        self.bias = np.ascontiguousarray(bias[::-1])
        self.PAIR = np.ascontiguousarray(pair.reshape(NT * NT, C)[:, ::-1]).astype(np.int32)
        self.block_of: dict[str, int] = {}
        blocks = [np.zeros((NT, C), np.int32)]
        for word, by_prev in t1w.items():
            b = np.zeros((NT, C), np.int32)
            for p, v in by_prev.items():
                b[p] = v
            self.block_of[word] = len(blocks)
            blocks.append(b)
        self.T1W = np.ascontiguousarray(np.concatenate(blocks)[:, ::-1])  # row = block * NT + p1, reversed
        self.start_rows = (self.row_of.get(f"w-1 {START}", 0), self.row_of.get(f"w-2 {START}", 0))
        self.end_rows = (self.row_of.get(f"w+1 {END}", 0), self.row_of.get(f"w+2 {END}", 0))
        self._word_cache: dict[str, tuple[int, ...]] = {}
        self.upos = [c.split("|", 1)[0] for c in self.classes]

    def word_entry(self, word: str) -> tuple[int, ...]:
        """Per distinct token: M rows of suf3, suf2, suf1, pre1, shape, w (on the token), of
        w-1, w-2, w+1, w+2 (when it is that neighbour), its T1W block, its tag-dictionary label
        (-1 = none). Cached per worker."""
        got = self._word_cache.get(word)
        if got is None:
            low = word.lower()
            r = self.row_of.get
            got = (r(f"suf3 {low[-3:]}", 0), r(f"suf2 {low[-2:]}", 0), r(f"suf1 {low[-1:]}", 0),
                   r(f"pre1 {low[:1]}", 0), r(f"shape {shape_of(word)}", 0), r(f"w {low}", 0),
                   r(f"w-1 {low}", 0), r(f"w-2 {low}", 0), r(f"w+1 {low}", 0), r(f"w+2 {low}", 0),
                   self.block_of.get(low, 0), self.tagdict.get(low, -1))
            if len(self._word_cache) < 1_000_000:
                self._word_cache[word] = got
        return got

    def tag_flat(self, words: Sequence[str], idx: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Label ids (into `classes`) of a batch of sentences: `idx` holds, row after row, each
        token's index into the distinct tokens `words`; row r has `lengths[r]` tokens."""
        idx = np.asarray(idx, np.int64)
        lengths = np.asarray(lengths, np.int64)
        n_tok = len(idx)
        out = np.empty(n_tok, np.int64)
        if n_tok == 0:
            return out
        C, NT = self.n_classes, self.n_tags
        # Per distinct word, one contiguous array per `word_entry` field.
        ent = np.array([self.word_entry(w) for w in words], np.int64).reshape(len(words), 12).T.copy()
        M = self.M  # class axis reversed, as PAIR and T1W
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        pos = np.arange(n_tok) - np.repeat(starts, lengths)  # position in the row
        rlen = np.repeat(lengths, lengths)
        fixed = ent[11][idx]  # tag-dictionary label, -1 = scored
        # Segments: a row is cut before every token whose two left neighbours both have
        # tag-dictionary labels, since its (t-1, t-2) are then known without decoding; the
        # word features still read across the cut. Segments decode independently.
        cut = pos == 0
        cut[2:] |= (pos[2:] >= 2) & (fixed[1:-1] >= 0) & (fixed[:-2] >= 0)
        seg_first = np.flatnonzero(cut)
        seg_len = np.diff(np.append(seg_first, n_tok))
        # Step-major order: segments by decreasing length, step t = the t-th token of each
        # segment that has one; those segments are a prefix of the order, so a step is a slice.
        order = np.argsort(-seg_len, kind="stable")
        slen = seg_len[order]
        counts = np.searchsorted(-slen, -np.arange(int(slen[0])), side="left")
        step_starts = np.concatenate(([0], np.cumsum(counts)))
        step = np.repeat(np.arange(len(counts)), counts)
        k = np.arange(len(step)) - step_starts[step]
        sm = seg_first[order][k] + step  # token index of (step t, k-th running segment)
        s_fixed = fixed[sm]
        # Only tokens without a tag-dictionary label are scored: `sc_at` lists their step-major
        # positions, and step t scores sc_at[cuts[t]:cuts[t + 1]].
        sc_at = np.flatnonzero(s_fixed < 0)
        cuts = np.searchsorted(sc_at, step_starts)
        tok = sm[sc_at]
        n_sc = len(tok)
        t_pos, t_len, t_word = pos[tok], rlen[tok], idx[tok]
        # Word-only part of their scores: own features (summed once per distinct word), plus
        # w-1, w-2, w+1, w+2 of the row neighbours (<s> / </s> rows past the row ends),
        # gathered in cache-sized chunks.
        own = self.bias + M[ent[0]] + M[ent[1]] + M[ent[2]] + M[ent[3]] + M[ent[4]] + M[ent[5]]
        nbs = []
        for col, off, edge in ((6, -1, self.start_rows[0]), (7, -2, self.start_rows[1]),
                               (8, 1, self.end_rows[0]), (9, 2, self.end_rows[1])):
            inside = np.flatnonzero((t_pos + off >= 0) & (t_pos + off < t_len))
            nb = np.full(n_sc, edge, np.int64)
            nb[inside] = ent[col][idx[tok[inside] + off]]
            nbs.append(nb)
        score = np.empty((n_sc, C), np.int32)
        buf = np.empty((min(n_sc, _CHUNK), C), np.int32)
        for a in range(0, n_sc, _CHUNK):
            b = min(a + _CHUNK, n_sc)
            dst, tmp = score[a:b], buf[:b - a]
            np.take(own, t_word[a:b], axis=0, out=dst)
            for nb in nbs:
                np.take(M, nb[a:b], axis=0, out=tmp)
                dst += tmp
        block = ent[10][t_word] * NT
        lane = sc_at - step_starts[step[sc_at]]  # the segment (k-th running) of each scored token
        PAIR, T1W = self.PAIR, self.T1W
        first = seg_first[order]
        inner = pos[first] >= 2  # cut inside a row: both left neighbours are fixed
        prev = np.full(len(order), C, np.int64)
        prev2 = np.full(len(order), C, np.int64)
        prev[inner] = fixed[first[inner] - 1]
        prev2[inner] = fixed[first[inner] - 2]
        s_out = s_fixed.copy()
        top = C - 1
        bounds = step_starts.tolist()
        cut_at = cuts.tolist()
        for t, n in enumerate(counts.tolist()):
            a, b = bounds[t], bounds[t + 1]
            c, d = cut_at[t], cut_at[t + 1]
            if d > c:
                ln = lane[c:d]
                p1 = prev[ln]
                sc = PAIR[p1 * NT + prev2[ln]]
                sc += T1W[block[c:d] + p1]
                sc += score[c:d]
                s_out[sc_at[c:d]] = top - sc.argmax(axis=1)
            prev2[:n] = prev[:n]
            prev[:n] = s_out[a:b]
        out[sm] = s_out
        return out

    def tag(self, words: Sequence[str]) -> list[str]:
        """Labels of one sentence (through `tag_flat`)."""
        if not words:
            return []
        uniq = {w: i for i, w in enumerate(dict.fromkeys(words))}
        ids = np.fromiter((uniq[w] for w in words), np.int64, len(words))
        lab = self.tag_flat(list(uniq), ids, np.array([len(words)]))
        return [self.classes[i] for i in lab.tolist()]


def get_model(path: str | None = None) -> PerceptronModel:
    """One model per Python process and weights file (a Spark worker loads it once, then
    reuses it); `path` None = `default_weights_path()`."""
    return _load_model(os.path.realpath(path or default_weights_path()))


@functools.lru_cache(maxsize=2)
def _load_model(path: str) -> PerceptronModel:
    return PerceptronModel(read_weights(path))
