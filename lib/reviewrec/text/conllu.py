"""CoNLL-U reading and tagger/lemmatizer accuracy (UPOS and lemma) against gold annotations.

Used to measure the text engines on Universal Dependencies English Web Treebank (read from
../shared/data; never copied into the repository).
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field


@dataclass
class Sentence:
    sent_id: str
    forms: list[str] = field(default_factory=list)
    lemmas: list[str] = field(default_factory=list)
    upos: list[str] = field(default_factory=list)

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
        for f, lem, u, gl, gu in zip(s.forms, lemmas, upos, s.lemmas, s.upos):
            if skip_words is not None and f.lower() in skip_words:
                continue
            acc.tokens += 1
            acc.upos_ok += u == gu
            acc.lemma_ok += lem.lower() == gl.lower()
    return acc
