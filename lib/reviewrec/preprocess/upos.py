"""The Universal POS (UPOS) tag set that both text engines write, and the maps into it.

The `pos` column of <root>/tokens holds UD's 17 UPOS tags. The sparknlp engine's tagger emits
Penn Treebank tags (mapped with PTB_TO_UPOS); the builtin engine's perceptron emits UPOS
itself, except for tokens without a letter or digit, which it never sees and which get their
tag by rule (`punctuation_upos`). The lemmatizer also reads PTB_TO_UPOS to decide whether a
word's lexicon tag is a usable hint for its UPOS.
"""
from __future__ import annotations

import re

UPOS_TAGS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
             "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X")
# A token made of punctuation only (no letter, digit or underscore).
PUNCT_RE = re.compile(r"^[^\w\s]+$", re.UNICODE)
PTB_TO_UPOS: dict[str, str] = {
    "CC": "CCONJ", "CD": "NUM", "DT": "DET", "EX": "PRON", "FW": "X", "IN": "ADP",
    "JJ": "ADJ", "JJR": "ADJ", "JJS": "ADJ", "LS": "X", "MD": "AUX", "NN": "NOUN",
    "NNS": "NOUN", "NNP": "PROPN", "NNPS": "PROPN", "PDT": "DET", "POS": "PART",
    "PRP": "PRON", "PRP$": "PRON", "RB": "ADV", "RBR": "ADV", "RBS": "ADV", "RP": "ADP",
    "SYM": "SYM", "TO": "PART", "UH": "INTJ", "VB": "VERB", "VBD": "VERB", "VBG": "VERB",
    "VBN": "VERB", "VBP": "VERB", "VBZ": "VERB", "WDT": "PRON", "WP": "PRON", "WP$": "PRON",
    "WRB": "ADV", "$": "SYM", "#": "SYM", ".": "PUNCT", ",": "PUNCT", ":": "PUNCT",
    "(": "PUNCT", ")": "PUNCT", '"': "PUNCT", "``": "PUNCT", "''": "PUNCT",
}
# Punctuation-only tokens tagged SYM (UD EWT: emoticons, slashes, currency and math signs).
SYMBOLS = frozenset({":)", ":(", ":-)", ":-(", ";)", ";-)", ":/", "=)", "/", "$", "%", "+", "=", "<", ">",
                     "~", "^", "*", "|"})


def punctuation_upos(token: str) -> str:
    """UPOS of a token without a letter or digit: SYM for SYMBOLS, CCONJ for "&", else PUNCT."""
    if token in SYMBOLS:
        return "SYM"
    return "CCONJ" if token == "&" else "PUNCT"
