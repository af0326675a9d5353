"""POS-aware lemmatizer: lowercase lemma of a word given its UPOS tag.

Three sources, in order:
  * a closed-class table following UD English conventions (me -> I, n't -> not, 'm -> be,
    ca -> can; modals keep their form);
  * lemminflect's lemma tables keyed by UPOS (they ship inside its wheel; its neural model
    for unknown words is not used: 2 ms a word);
  * for words missing from those tables, suffix rules whose candidate must be a known word.

A Penn Treebank tag, when known, sharpens the choice: a form tagged as a base form (NN, VB,
JJ ...) is its own lemma ("other" stays "other"), and comparatives/plurals pick the suffix
rules. The word list for both the hints and the candidates is the 94k-word Penn-tagged lexicon
shipped as a data file inside the `textblob` wheel (textblob/en/en-lexicon.txt, from Brill's
tagger v1.14 trained on the Brown corpus and the Penn Treebank); textblob's code is not used.
"""
from __future__ import annotations

import os

OPEN_CLASS = frozenset({"NOUN", "VERB", "ADJ", "ADV", "PROPN", "AUX"})
# Penn tags of forms that are their own lemma (singular nouns, base verbs, positive adjectives).
UNINFLECTED_PTB = frozenset({"NN", "NNP", "VB", "VBP", "JJ", "RB", "FW", "CD", "UH", "SYM"})
LEXICON_FILE = "en-lexicon.txt"

# Closed-class lemmas (UD EWT conventions: me -> I, them -> they, n't -> not, 'm -> be).
FIXED_LEMMAS: dict[tuple[str, str], str] = {}
for _forms, _upos, _lemma in (
    (("i", "me"), "PRON", "i"), (("we", "us"), "PRON", "we"),
    (("he", "him"), "PRON", "he"), (("she",), "PRON", "she"), (("they", "them"), "PRON", "they"),
    (("these",), "DET", "this"), (("those",), "DET", "that"), (("these",), "PRON", "this"),
    (("those",), "PRON", "that"), (("an",), "DET", "a"),
    (("n't", "nt", "not"), "PART", "not"), (("'s", "s"), "PART", "'s"),
    (("'s", "s", "'m", "m", "'re", "re", "am", "is", "are", "was", "were", "been", "being", "ai"), "AUX", "be"),
    (("'ve", "ve", "has", "had", "having"), "AUX", "have"), (("'ll", "ll", "wo"), "AUX", "will"),
    (("'d", "d"), "AUX", "would"), (("ca",), "AUX", "can"), (("does", "did"), "AUX", "do"),
    (("would", "should", "could", "might", "must", "can", "will", "may", "shall"), "AUX", None),
    (("thanks",), "NOUN", None), (("more", "most", "less", "least"), "ADJ", None),
    (("more", "most", "less", "least"), "ADV", None),
    (("na",), "PART", "to"), (("gon",), "VERB", "go"), (("wan",), "VERB", "want"),
):
    for _f in _forms:
        FIXED_LEMMAS[(_f, _upos)] = _lemma or _f


def lexicon_path() -> str:
    """Path of the Penn-tagged lexicon inside the installed textblob distribution (found through
    its installed files, without importing textblob, which would import nltk)."""
    import importlib.metadata as md

    try:
        dist = md.distribution("textblob")
    except md.PackageNotFoundError as e:
        raise ImportError("text.engine=builtin needs the 'textblob' package (pinned in "
                          "lib/requirements.txt) for the word lexicon in its wheel") from e
    path = str(dist.locate_file(f"textblob/en/{LEXICON_FILE}"))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"textblob {dist.version} is installed but its lexicon {path} is missing; "
                                "reinstall it")
    return path


def read_lexicon(path: str) -> tuple[dict[str, str], dict[str, str]]:
    """(word -> Penn tag as written, lowercase word -> Penn tag) from a lexicon file of
    `word TAG[|TAG...]` lines (";;;" comments). In the lowercase map a lowercase entry wins,
    else the first cased one ("monday" -> NNP)."""
    exact: dict[str, str] = {}
    lower: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) < 2 or line.startswith(";;;"):
                continue
            word, tag = fields[0], fields[1].split("|")[0]
            exact[word] = tag
            lw = word.lower()
            if word == lw or lw not in lower:
                lower[lw] = tag
    return exact, lower


class Lemmatizer:
    """`lemma(word, upos, ptb)` -> lowercase lemma; `penn_tag(word)` -> the lexicon's Penn tag.

    Results are cached per (word, UPOS, Penn tag); one instance per Python worker is enough."""

    def __init__(self, path: str | None = None):
        self.lexicon, self.lexicon_lower = read_lexicon(path or lexicon_path())
        import lemminflect  # lemma tables ship inside the wheel (resources/lemma_lu.csv.gz)

        self._get_lemma = lemminflect.getLemma
        self._cache: dict[tuple[str, str, str], str] = {}

    def penn_tag(self, word: str) -> str | None:
        """The lexicon's Penn tag of `word` as written, else of its lowercase form; None if absent."""
        tag = self.lexicon.get(word)
        return self.lexicon_lower.get(word.lower()) if tag is None else tag

    def lemma(self, word: str, upos: str, ptb: str = "") -> str:
        """Lowercase lemma of `word` given its UPOS (and Penn tag, "" when unknown)."""
        w = word.lower()
        key = (w, upos, ptb)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        lem = FIXED_LEMMAS.get((w, upos))
        if lem is None:
            if upos == "PRON" and w == "her":
                lem = "her" if ptb == "PRP$" else "she"
            elif upos not in OPEN_CLASS or ptb in UNINFLECTED_PTB:
                lem = w  # a base form already: lemma = word (avoids "other" -> "oth")
            else:
                got = self._get_lemma(w, upos, lemmatize_oov=False)
                lem = got[0].lower() if got else self._oov_lemma(w, upos, ptb)
        if len(self._cache) < 500_000:
            self._cache[key] = lem
        return lem

    def _oov_lemma(self, w: str, upos: str, ptb: str) -> str:
        """Suffix rules for words missing from lemminflect's tables; a candidate must be a word."""
        cands: list[str] = []
        if upos in ("NOUN", "PROPN") and ptb in ("NNS", "NNPS", ""):
            if w.endswith("ies") and len(w) > 4:
                cands = [w[:-3] + "y"]
            elif w.endswith(("ses", "xes", "zes", "ches", "shes")):
                cands = [w[:-2], w[:-1]]
            elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
                cands = [w[:-1]]
        elif upos in ("VERB", "AUX"):
            for suf in ("ing", "ed", "es", "s"):
                if w.endswith(suf) and len(w) > len(suf) + 2:
                    stem = w[:-len(suf)]
                    cands = [stem + "e", stem]
                    if len(stem) > 2 and stem[-1] == stem[-2]:
                        cands.insert(0, stem[:-1])
                    if suf in ("ed", "es", "s") and stem.endswith("i"):
                        cands.insert(0, stem[:-1] + "y")
                    break
        elif upos in ("ADJ", "ADV") and ptb in ("JJR", "JJS", "RBR", "RBS", ""):
            for suf in ("est", "er"):
                if w.endswith(suf) and len(w) > len(suf) + 2:
                    stem = w[:-len(suf)]
                    cands = ([stem[:-1] + "y"] if stem.endswith("i") else []) + [stem[:-1], stem, stem + "e"]
                    break
        for c in cands:
            if c in self.lexicon_lower:
                return c
        return cands[0] if cands and upos in ("NOUN", "PROPN") else w
