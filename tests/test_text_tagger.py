"""The builtin tagger + lemmatizer (pure Python) and its accuracy on UD English EWT."""
from __future__ import annotations

import pytest

from reviewrec.text.conllu import Sentence, evaluate, read_conllu
from reviewrec.text.tagger import BuiltinTagger, get_tagger
from conftest import shared_data


@pytest.fixture(scope="module")
def tagger() -> BuiltinTagger:
    return BuiltinTagger()


def test_lemmas_follow_pos(tagger):
    lemmas, upos = tagger.analyze(["kids", "loved", "these", "puzzles"])
    assert upos == ["NOUN", "VERB", "DET", "NOUN"]
    assert lemmas == ["kid", "love", "this", "puzzle"]


def test_auxiliaries_comparatives_and_gerunds(tagger):
    assert tagger.analyze(["she", "has", "been", "running"]) == (
        ["she", "have", "be", "run"], ["PRON", "AUX", "AUX", "VERB"])
    assert tagger.analyze(["the", "cheapest", "studies", "were", "better"]) == (
        ["the", "cheap", "study", "be", "good"], ["DET", "ADJ", "NOUN", "AUX", "ADJ"])


def test_closed_class_lemmas(tagger):
    # UD conventions: me -> I, n't -> not, 'm -> be, ca -> can; modals keep their form.
    lemmas, upos = tagger.analyze(["they", "told", "me", "i", "ca", "n't", "return", "it"])
    assert lemmas == ["they", "tell", "i", "i", "can", "not", "return", "it"]
    assert upos[4:6] == ["AUX", "PART"]
    assert tagger.lemma("would", "AUX") == "would"
    assert tagger.lemma("her", "PRON", "PRP$") == "her"
    assert tagger.lemma("her", "PRON", "PRP") == "she"


def test_context_rules_change_tags(tagger):
    # Brill's "VB -> NN after a determiner": the lexicon alone says verb.
    assert BuiltinTagger(context_rules=True).ptb_tags(["a", "great", "run"]) == ["DT", "JJ", "NN"]
    assert tagger.context_rules is False
    assert tagger.ptb_tags(["a", "great", "run"]) == ["DT", "JJ", "VB"]


def test_unknown_words(tagger):
    assert tagger.tag(["1,299"]) == ["NUM"]
    assert tagger.tag(["www.example.com"]) == ["X"]
    # An unknown plural noun: Brill's lexical rule NN + -s -> NNS, lemma by suffix rule.
    lemmas, upos = tagger.analyze(["the", "zorbies"])
    assert (lemmas[1], upos[1]) == ("zorby", "NOUN")


def test_empty_and_worker_singleton():
    assert get_tagger().analyze([]) == ([], [])
    assert get_tagger() is get_tagger()
    assert get_tagger(False) is not get_tagger(True)
    assert get_tagger(True).context_rules is True


def test_evaluate_counts_and_lowercases():
    gold = [Sentence("reviews-1-0001", ["Dogs", "barked"], ["dog", "bark"], ["NOUN", "VERB"]),
            Sentence("email-1-0001", ["Hi"], ["hi"], ["INTJ"])]
    seen = []

    def fake(tokens):
        seen.append(list(tokens))
        return ["DOG", "barked"], ["NOUN", "NOUN"]

    acc = evaluate(gold, fake, lowercase_input=True, genre="reviews")
    assert seen == [["dogs", "barked"]]
    assert (acc.tokens, acc.upos_ok, acc.lemma_ok) == (2, 1, 1)


def test_evaluate_skip_words_tags_the_full_sentence_but_scores_only_kept_tokens():
    gold = [Sentence("reviews-1-0002", ["The", "dogs", "barked"], ["the", "dog", "bark"],
                     ["DET", "NOUN", "VERB"])]
    seen = []

    def fake(tokens):
        seen.append(list(tokens))
        return ["x", "dog", "bark"], ["NOUN", "NOUN", "NOUN"]  # wrong on "The", right on "dogs"

    acc = evaluate(gold, fake, lowercase_input=True, skip_words={"the"})
    assert seen == [["the", "dogs", "barked"]]  # the analyzer saw the stop word
    assert (acc.tokens, acc.upos_ok, acc.lemma_ok) == (2, 1, 2)  # ... but it was not scored


@pytest.mark.integration
def test_accuracy_on_ud_english_ewt_dev(tagger):
    """Measured (default settings, lowercased input as in the pipeline): all genres UPOS 0.889 /
    lemma 0.977, reviews genre 0.903 / 0.978 (0.879 / 0.901 before unknown lowercase non-words
    became PROPN). The issue's targets are UPOS >= 0.93 (NOT reached
    by this lexicon tagger) and lemma >= 0.97 (reached). The floors guard against regressions."""
    path = shared_data("ud_english_ewt", "en_ewt-ud-dev.conllu")
    sents = list(read_conllu(str(path)))
    assert len(sents) == 2001
    overall = evaluate(sents, tagger.analyze, lowercase_input=True)
    reviews = evaluate(sents, tagger.analyze, lowercase_input=True, genre="reviews")
    assert overall.tokens == 25147 and reviews.tokens > 5000
    assert overall.lemma >= 0.97 and reviews.lemma >= 0.97
    assert overall.upos >= 0.885 and reviews.upos >= 0.90


def test_unknown_lowercase_word_is_a_name_unless_input_is_cased():
    lower, cased = BuiltinTagger(), BuiltinTagger(cased_input=True)
    # "perlingiere": in neither the lexicon nor lemminflect, no lexical rule fires.
    assert lower.analyze(["installed", "perlingiere"]) == (["install", "perlingiere"], ["VERB", "PROPN"])
    assert cased.analyze(["installed", "perlingiere"])[1] == ["VERB", "NOUN"]
    assert cased.analyze(["installed", "Perlingiere"]) == (["install", "perlingiere"], ["VERB", "PROPN"])
    # A suffix rule decides ("-ly" -> adverb), and known words keep their lexicon tag.
    assert lower.analyze(["blorpily"])[1] == ["ADV"]
    assert lower.analyze(["windows"]) == (["window"], ["NOUN"])
    assert cased.analyze(["Windows"]) == (["windows"], ["PROPN"])


def test_word_info_context_flags(tagger):
    lemma, upos, ptb, free, unknown = tagger.word_info("puzzles")
    assert (lemma, upos, ptb, free, unknown) == ("puzzle", "NOUN", "NNS", True, False)
    assert tagger.word_info("like")[3] is False  # ADP or SCONJ depending on what follows
    assert tagger.word_info("without")[3] is True  # always ADP
    assert tagger.word_info("zorblax")[4] is True
    assert "people" in tagger.morph_context_words


def test_upos_needs_context_is_exact():
    """A (word, Penn tag) that `upos_needs_context` calls context-free gets one UPOS in every
    context; the ones it flags really vary (so the flag is not simply always True)."""
    from reviewrec.text.tagger import PTB_TO_UPOS, _to_upos, upos_needs_context

    words = ["like", "since", "that", "please", "'s", "s", "is", "has", "did", "do", "to", "this", "every",
             "what", "which", "works", "without", "although", "there", "one", "not", "so", "app", ":)"]
    tags = sorted(set(PTB_TO_UPOS) | {"ADD"})
    near = [("it", "PRP"), ("the", "DT"), ("run", "VB"), ("ran", "VBN"), ("good", "JJ"), ("not", "RB"),
            ("there", "EX"), ("app", "NN"), ("will", "MD")]
    nexts = [[]] + [[a] for a in near] + [[a, b] for a in near for b in near]
    varied = 0
    for w in words:
        for tag in tags:
            outs = set()
            for prev in [[]] + [[a] for a in near]:
                for nxt in nexts:
                    seq = prev + [(w, tag)] + nxt
                    outs.add(_to_upos([x for x, _ in seq], [t for _, t in seq], len(prev)))
            if not upos_needs_context(w, tag):
                assert len(outs) == 1, (w, tag, outs)
            else:
                varied += len(outs) > 1
    assert varied >= 10
