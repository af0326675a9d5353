"""The lemmatizer (lexicon, closed classes, lemminflect, suffix rules) and the UPOS maps."""
from __future__ import annotations

import pytest

from reviewrec.preprocess.lemmatizer import Lemmatizer, read_lexicon
from reviewrec.preprocess.upos import PTB_TO_UPOS, UPOS_TAGS, punctuation_upos


@pytest.fixture(scope="module")
def lem() -> Lemmatizer:
    return Lemmatizer()


def test_closed_class_lemmas_follow_ud(lem):
    # UD conventions: me -> I, n't -> not, 'm -> be, ca -> can; modals keep their form.
    assert [lem.lemma(w, u) for w, u in (("me", "PRON"), ("n't", "PART"), ("'m", "AUX"), ("ca", "AUX"),
                                          ("would", "AUX"), ("these", "DET"), ("them", "PRON"))] == \
        ["i", "not", "be", "can", "would", "this", "they"]
    assert lem.lemma("her", "PRON", "PRP$") == "her" and lem.lemma("her", "PRON", "PRP") == "she"


def test_lemmas_depend_on_upos_and_the_penn_hint(lem):
    assert lem.lemma("Studies", "NOUN") == "study" and lem.lemma("running", "VERB", "VBG") == "run"
    assert lem.lemma("better", "ADJ", "JJR") == "good" and lem.lemma("cheapest", "ADJ", "JJS") == "cheap"
    # A base-form hint keeps the word: without it, lemminflect strips "other" to "othe".
    assert lem.lemma("other", "ADJ", "JJ") == "other" and lem.lemma("other", "ADJ") == "othe"
    # Closed classes are not looked up in lemminflect's tables.
    assert lem.lemma("was", "PRON") == "was"


def test_suffix_rules_for_words_missing_from_the_tables(lem):
    assert lem.lemma("zorbies", "NOUN", "NNS") == "zorby"  # -ies -> -y for nouns, even unknown ones
    assert lem.lemma("flurries", "NOUN") == "flurry"
    # Verbs and adjectives take a candidate only when the lexicon knows it.
    assert lem.lemma("blorfed", "VERB", "VBD") == "blorfed"
    assert lem.lemma("glorbier", "ADJ", "JJR") == "glorbier"


def test_penn_tag_exact_then_lowercase(lem):
    assert lem.penn_tag("Windows") == "NNP" and lem.penn_tag("windows") == "NNS"
    assert lem.penn_tag("monday") == lem.penn_tag("Monday") == "NNP"  # only a cased entry exists
    assert lem.penn_tag("zzqx") is None


def test_read_lexicon(tmp_path):
    path = tmp_path / "lex.txt"
    path.write_text(";;; comment line\n\nApple NNP\napple NN|VB\nMay MD\nMay NNP\nWord NNP\nword NN\n"
                    "solo\n", encoding="utf-8")
    exact, lower = read_lexicon(str(path))
    assert exact == {"Apple": "NNP", "apple": "NN", "May": "NNP", "Word": "NNP", "word": "NN"}
    # the lowercase entry wins over a cased one, else the first cased entry
    assert lower == {"apple": "NN", "may": "MD", "word": "NN"}
    lem = Lemmatizer(str(path))
    assert lem.penn_tag("APPLE") == "NN" and lem.penn_tag("Apple") == "NNP"


def test_upos_maps():
    assert set(PTB_TO_UPOS.values()) <= set(UPOS_TAGS)
    assert [punctuation_upos(t) for t in ("!", "...", "$", "&", ":)", "/", "--")] == \
        ["PUNCT", "PUNCT", "SYM", "CCONJ", "SYM", "SYM", "PUNCT"]


def test_lexicon_is_found_without_importing_textblob(monkeypatch):
    import importlib.metadata as md
    import sys

    from reviewrec.preprocess.lemmatizer import lexicon_path

    assert lexicon_path().endswith("textblob/en/en-lexicon.txt") and "textblob" not in sys.modules

    def missing(name):
        raise md.PackageNotFoundError(name)

    monkeypatch.setattr(md, "distribution", missing)
    with pytest.raises(ImportError, match="needs the 'textblob' package"):
        lexicon_path()
