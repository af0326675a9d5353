"""CoNLL-U reading, tagger/lemmatizer accuracy (UPOS and lemma) against gold annotations, and
the conversion of a CoNLL-U training split to Spark NLP's training formats.

Used to measure the text engines on Universal Dependencies English Web Treebank and to train
the sparknlp engine's models on its training split (read from ../shared/data; never copied
into the repository).
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field


@dataclass
class Sentence:
    sent_id: str
    forms: list[str] = field(default_factory=list)
    lemmas: list[str] = field(default_factory=list)
    upos: list[str] = field(default_factory=list)
    feats: list[str] = field(default_factory=list)  # FEATS column ("VerbForm=Ger|..." or "_")

    @property
    def genre(self) -> str:
        """EWT genre from the sent_id prefix: answers, email, newsgroup, reviews, weblog."""
        return self.sent_id.split("-", 1)[0]


def read_conllu(path: str) -> Iterator[Sentence]:
    """Sentences of a CoNLL-U file: word lines only (multi-word ranges and empty nodes skipped)."""
    sent = Sentence("")
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\n")
            if not line:
                if sent.forms:
                    yield sent
                sent = Sentence("")
                continue
            if line.startswith("#"):
                if line.startswith("# sent_id"):
                    sent.sent_id = line.split("=", 1)[1].strip()
                continue
            cols = line.split("\t")
            if len(cols) != 10:
                raise ValueError(f"{path}:{lineno}: expected 10 tab-separated columns, got {len(cols)}")
            if "-" in cols[0] or "." in cols[0]:
                continue
            sent.forms.append(cols[1])
            sent.lemmas.append(cols[2])
            sent.upos.append(cols[3])
            sent.feats.append(cols[5])
    if sent.forms:
        yield sent


@dataclass
class Accuracy:
    tokens: int = 0
    upos_ok: int = 0
    lemma_ok: int = 0

    @property
    def upos(self) -> float:
        return self.upos_ok / self.tokens if self.tokens else float("nan")

    @property
    def lemma(self) -> float:
        return self.lemma_ok / self.tokens if self.tokens else float("nan")

    def as_dict(self) -> dict[str, float | int]:
        return {"tokens": self.tokens, "upos": round(self.upos, 4), "lemma": round(self.lemma, 4)}


Analyzer = Callable[[Sequence[str]], tuple[list[str], list[str]]]


def evaluate(sentences: Sequence[Sentence], analyze: Analyzer, lowercase_input: bool = False,
             genre: str | None = None, skip_words: Collection[str] | None = None) -> Accuracy:
    """UPOS and lemma accuracy of `analyze(tokens) -> (lemmas, upos)` on gold-tokenized sentences.

    Lemmas are compared lowercased. With `lowercase_input` the analyzer sees lowercased forms,
    as in the preprocessing chain (which lowercases before tagging). `skip_words`: the full
    sentence is tagged, but tokens whose lowercased form is in it are not scored (tagging
    before stop-word removal, scored on what the chain keeps).
    """
    acc = Accuracy()
    for s in sentences:
        if genre is not None and s.genre != genre:
            continue
        forms = [f.lower() for f in s.forms] if lowercase_input else s.forms
        lemmas, upos = analyze(forms)
        if len(lemmas) != len(forms) or len(upos) != len(forms):
            raise ValueError(f"sentence {s.sent_id}: analyzer returned {len(lemmas)} lemmas / "
                             f"{len(upos)} tags for {len(forms)} tokens")
        for f, lem, u, gl, gu in zip(s.forms, lemmas, upos, s.lemmas, s.upos, strict=False):
            if skip_words is not None and f.lower() in skip_words:
                continue
            acc.tokens += 1
            acc.upos_ok += u == gu
            acc.lemma_ok += lem.lower() == gl.lower()
    return acc


# --- CoNLL-U -> Spark NLP training data --------------------------------------------------------

# Spark NLP's POS reader (sparknlp.training.POS) splits each whitespace-separated item of a line
# on the delimiter and silently drops an item that does not split in exactly two ("a|b|NOUN").
# The delimiter is therefore chosen per corpus among these, the first that no form contains.
DELIMITER_CANDIDATES = ("|", "\u00a6", "\u2016", "\u241f")
# A token the chain's tokenizer can produce has a letter or a digit (transforms.TOKEN_SPLIT_RE).
_WORD_CHAR = re.compile(r"[^\W_]")
_SPACE = re.compile(r"\s+")


def is_word(form: str) -> bool:
    """True for a token with a letter or digit (the chain never sees punctuation-only tokens)."""
    return _WORD_CHAR.search(form) is not None


def choose_delimiter(sentences: Iterable[Sentence], candidates: Sequence[str] = DELIMITER_CANDIDATES) -> str:
    """The first candidate that occurs in no form and no tag of `sentences`."""
    used = set()
    for s in sentences:
        for x in (*s.forms, *s.upos):
            used.update(c for c in candidates if c in x)
    for c in candidates:
        if c not in used:
            return c
    raise ValueError(f"every delimiter candidate {list(candidates)} occurs in the corpus")


def pos_line(sentence: Sentence, delimiter: str, words_only: bool = True) -> str:
    """One sentence in Spark NLP's POS training format: `form<delim>UPOS` items separated by
    spaces. Whitespace inside a form becomes "_" (the reader splits items on whitespace);
    `words_only` leaves out punctuation-only tokens, as the chain's tokenizer does."""
    items = []
    for form, tag in zip(sentence.forms, sentence.upos, strict=False):
        if words_only and not is_word(form):
            continue
        if delimiter in form or delimiter in tag:
            raise ValueError(f"sentence {sentence.sent_id}: {form!r}/{tag!r} contains the delimiter {delimiter!r}")
        items.append(_SPACE.sub("_", form) + delimiter + tag)
    return " ".join(items)


def lemma_counts(sentences: Iterable[Sentence]) -> Counter[tuple[str, str]]:
    """(lowercase form, lowercase lemma) -> occurrences, over the word tokens of `sentences`."""
    out: Counter[tuple[str, str]] = Counter()
    for s in sentences:
        for form, lemma in zip(s.forms, s.lemmas, strict=False):
            if is_word(form) and lemma != "_":
                out[(form.lower(), lemma.lower())] += 1
    return out
