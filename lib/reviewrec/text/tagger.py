"""The `builtin` POS tagger and POS-aware lemmatizer: pure Python, offline, no downloads.

Tagging is Brill's transformation-based tagger as shipped inside the `textblob` wheel
(textblob/en/en-lexicon.txt: ~94k word -> most frequent Penn Treebank tag, from Brill's tagger
v1.14 trained on the Brown corpus and the Penn Treebank, plus CMU Twitter POS words;
en-morphology.txt: Brill's lexical rules for unknown words; en-context.txt: Brill's contextual
rules). We read those files and run our own implementation of the three rule passes; textblob's
Python code is not used, only its data. Penn tags are then mapped to Universal POS (UPOS) with
word-aware rules (auxiliaries, subordinators, pronoun/determiner splits), and lemmas come from
`lemminflect` (lemma tables keyed by UPOS) plus a closed-class table for pronouns, determiners
and clitics (n't -> not, 'm -> be, ca -> can).

Everything is plain dicts and lists: loading takes ~1 s, and `get_tagger()` keeps one instance
per Python process, so a Spark worker loads it once and reuses it for every Arrow batch.
"""
from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence

PUNCT_RE = re.compile(r"^[^\w\s]+$", re.UNICODE)
NUMBER_RE = re.compile(r"^[+-]?[0-9][0-9,.:/%$-]*$")
URL_RE = re.compile(r"^(https?://|www\.)|^[\w.+-]+@[\w-]+\.[\w.-]+$|\.(com|org|net|edu|gov)(/.*)?$", re.I)

# Penn Treebank -> UPOS, before the word-aware rules in `_to_upos`.
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
SUBORDINATORS = frozenset({"if", "because", "whether", "although", "though", "unless", "while",
                           "whereas", "cause", "cuz"})
# Prepositions that introduce a clause (SCONJ) when a subject follows: "since we moved".
CLAUSE_PREPS = frozenset({"since", "before", "after", "until", "till", "as", "once", "so", "like"})
SUBJECT_TAGS = frozenset({"PRP", "EX", "NNP", "DT", "WP"})
INDEFINITE_PRONOUNS = frozenset({
    "anyone", "anybody", "anything", "someone", "somebody", "something", "everyone", "everybody",
    "everything", "nobody", "nothing", "noone", "none", "whatever", "whoever", "whichever",
    "one", "ones", "oneself",
})
DEMONSTRATIVES = frozenset({"this", "that", "these", "those"})
NOMINAL_PTB = frozenset({"NN", "NNS", "NNP", "NNPS", "JJ", "JJR", "JJS", "CD", "VBG", "RB", "RBS", "RBR"})
BE_FORMS = frozenset({"be", "am", "is", "are", "was", "were", "been", "being", "'s", "'m", "'re", "s", "m",
                      "re", "ai"})
HAVE_FORMS = frozenset({"have", "has", "had", "having", "'ve", "'d", "ve", "d"})
DO_FORMS = frozenset({"do", "does", "did", "doing"})
MODALS = frozenset({"will", "would", "can", "could", "may", "might", "shall", "should", "must", "ca",
                    "wo", "'ll", "ll", "'d", "ought"})
OPEN_CLASS = frozenset({"NOUN", "VERB", "ADJ", "ADV", "PROPN", "AUX"})
# Penn tags of forms that are their own lemma (singular nouns, base verbs, positive adjectives).
UNINFLECTED_PTB = frozenset({"NN", "NNP", "VB", "VBP", "JJ", "RB", "FW", "CD", "UH", "SYM"})
EMOTICONS = frozenset({":)", ":(", ":-)", ":-(", ";)", ";-)", ":d", ":p", ":/", "<3", "=)"})
SUBJECT_WORDS = frozenset({"it", "that", "there", "what", "here", "who", "he", "she", "this", "where", "how"})
NEGATIONS = frozenset({"not", "n't", "nt", "never"})

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


def textblob_en_dir() -> str:
    """Directory of the Brill tagger data files inside the installed textblob wheel."""
    try:
        import textblob
    except ImportError as e:  # pragma: no cover - a missing pin is a set-up error
        raise ImportError("text.engine=builtin needs the 'textblob' package (pinned in "
                          "lib/requirements.txt) for its bundled tagger lexicon") from e
    d = os.path.join(os.path.dirname(os.path.abspath(textblob.__file__)), "en")
    for name in ("en-lexicon.txt", "en-morphology.txt", "en-context.txt"):
        if not os.path.isfile(os.path.join(d, name)):
            raise FileNotFoundError(f"tagger data file missing: {os.path.join(d, name)}")
    return d


def _read_rules(path: str) -> list[list[str]]:
    with open(path, encoding="utf-8") as fh:
        return [line.split() for line in fh if line.strip() and not line.startswith(";;;")]


class BuiltinTagger:
    """Brill tagger (lexicon + lexical rules + contextual rules) -> UPOS, and a UPOS lemmatizer.

    `tag(tokens)` returns UPOS tags; `lemmatize(tokens, upos)` lemmas (lowercase);
    `analyze(tokens)` both. Tokens may be in any case; the pipeline passes lowercase tokens.
    """

    def __init__(self, data_dir: str | None = None, context_rules: bool = False, cased_input: bool = False):
        d = data_dir or textblob_en_dir()
        # Lowercased input (the chain's default) loses the capital that marks a proper noun, so
        # an alphabetic word that is in neither the lexicon nor lemminflect's tables and that
        # Brill's lexical rules leave as NN is tagged NNP (a name or brand: "perlingiere",
        # "firefox"). With cased input the capitalisation rule does that job instead.
        self.cased_input = cased_input
        self.lexicon: dict[str, str] = {}
        # For lowercased text: a lowercase entry wins, else the first cased one ("monday" NNP).
        self.lexicon_lower: dict[str, str] = {}
        for fields in _read_rules(os.path.join(d, "en-lexicon.txt")):
            if len(fields) < 2:
                continue
            word, tag = fields[0], fields[1].split("|")[0]
            self.lexicon[word] = tag
            lw = word.lower()
            if word == lw or lw not in self.lexicon_lower:
                self.lexicon_lower[lw] = tag
        # Brill's lexical rules: "NN s fhassuf 1 NNS x" (applies to words tagged NN so far) or
        # "ly hassuf 2 RB x" (any word). goodleft/goodright read a neighbour, so they are kept
        # apart and the rest is cached per word.
        self._morph_free: list[tuple[str | None, str, str, str]] = []
        self._morph_ctx: list[tuple[str | None, str, str, str]] = []
        for r in _read_rules(os.path.join(d, "en-morphology.txt")):
            if len(r) >= 5 and r[2].startswith("f") and r[2][1:] in _MORPH_CMDS:
                rule = (r[0], r[2][1:], r[1], r[-2])
            elif len(r) >= 4 and r[1] in _MORPH_CMDS:
                rule = (None, r[1], r[0], r[-2])
            else:
                continue
            (self._morph_ctx if rule[1] in ("goodleft", "goodright") else self._morph_free).append(rule)
        # Contextual rules indexed by the tag they rewrite, then by the context they test, so
        # a token costs a few dict probes instead of a scan over every rule (order is kept:
        # the first rule in file order whose context matches fires, then the scan continues
        # after it with the new tag, as in Brill's tagger).
        self._ctx: dict[str, list[tuple[tuple[tuple[str, int], ...], dict[object, list[tuple[int, str]]]]]] = {}
        for i, r in enumerate(_read_rules(os.path.join(d, "en-context.txt"))):
            if len(r) < 4 or r[2].lower() not in _CTX_PROBES:
                continue
            x, y = r[3], (r[4] if len(r) > 4 else "")
            probes, key_of = _CTX_PROBES[r[2].lower()]
            tables = self._ctx.setdefault(r[0], [])
            for probe in probes:
                for pr, table in tables:
                    if pr == probe:
                        break
                else:
                    table = {}
                    tables.append((probe, table))
                table.setdefault(key_of(x, y), []).append((i, r[1]))
        self._rule_words = frozenset(v for tables in self._ctx.values() for _, table in tables
                                     for k in table for v in (k if isinstance(k, tuple) else (k,)))
        self._ctx_memo: dict[tuple[str | None, ...], str] = {}
        self._unknown_cache: dict[str, str] = {}
        self._pair_cache: dict[tuple[str, str], tuple[str, str]] = {}
        self._word_cache: dict[str, tuple[str, str]] = {}
        # Off by default: measured on UD EWT dev, the rules (trained on WSJ/Brown Penn tags)
        # do not raise UPOS accuracy after our Penn -> UPOS mapping, and lower it when stop words
        # were removed first, as in the pipeline (benchmarks/RESULTS.md).
        self.context_rules = context_rules
        self._lemma_cache: dict[tuple[str, str], str] = {}
        import lemminflect  # lemma tables ship inside the wheel (resources/lemma_lu.csv.gz)

        self._get_lemma = lemminflect.getLemma
        self._all_lemmas = lemminflect.getAllLemmas
        # Per distinct word: (lemma, UPOS, Penn tag, context_free, unknown) for the batched path.
        self._info_cache: dict[str, tuple[str, str, str, bool, bool]] = {}
        self.morph_context_words = frozenset(x for _, _, x, _ in self._morph_ctx)

    # -- tagging ---------------------------------------------------------------------------
    def _lookup(self, w: str) -> str | None:
        t = self.lexicon.get(w)
        if t is None:
            t = self.lexicon_lower.get(w.lower())
        return t

    def _unknown(self, w: str, prev: str | None, nxt: str | None) -> str:
        """Tag of a word missing from the lexicon: number, symbol, then Brill's lexical rules."""
        tag = self._unknown_cache.get(w)
        if tag is None:
            tag = self._unknown_free(w)
            if len(self._unknown_cache) < 200_000:
                self._unknown_cache[w] = tag
        for from_tag, cmd, x, new in self._morph_ctx:
            if (from_tag is None or tag == from_tag) and ((cmd == "goodleft" and x == nxt)
                                                          or (cmd == "goodright" and x == prev)):
                tag = new
        return tag

    def _unknown_free(self, w: str) -> str:
        if NUMBER_RE.match(w):
            return "CD"
        if PUNCT_RE.match(w):
            return "SYM"
        if URL_RE.search(w):
            return "ADD"
        if w[:1].isupper() and w[1:2].islower():
            return "NNP"
        tag, fired = self._brill_lexical(w)
        if (not fired and not self.cased_input and w.isalpha() and w.islower()
                and not self._known_word(w)):
            return "NNP"
        return tag

    def _known_word(self, w: str) -> bool:
        """True if `w` is an inflected form in lemminflect's tables (a common English word)."""
        return bool(self._all_lemmas(w))

    def _brill_lexical(self, w: str) -> tuple[str, bool]:
        """Brill's lexical rules from the start tag NN: (tag, whether any rule fired)."""
        tag = "NN"
        fired = False
        lex = self.lexicon_lower
        for from_tag, cmd, x, new in self._morph_free:
            if from_tag is not None and tag != from_tag:
                continue
            if ((cmd == "char" and x in w) or (cmd == "haspref" and w.startswith(x))
                    or (cmd == "hassuf" and w.endswith(x)) or (cmd == "addpref" and x + w in lex)
                    or (cmd == "addsuf" and w + x in lex)
                    or (cmd == "deletepref" and w.startswith(x) and w[len(x):] in lex)
                    or (cmd == "deletesuf" and w.endswith(x) and w[:-len(x)] in lex)):
                tag, fired = new, True
        return tag, fired

    def ptb_tags(self, tokens: Sequence[str]) -> list[str]:
        """Penn Treebank tags: lexicon, then lexical rules for unknown words, then context rules."""
        n = len(tokens)
        tags: list[str | None] = [self._lookup(w) for w in tokens]
        for i, t in enumerate(tags):
            if t is None:
                tags[i] = self._unknown(tokens[i], tokens[i - 1] if i else None, tokens[i + 1] if i + 1 < n else None)
        if not self.context_rules:
            return tags  # type: ignore[return-value]
        ctx = self._ctx
        pad = "STAART"
        # Words no rule mentions can never match a word test: blank them, so that the outcome
        # for a token depends on a small window that repeats a lot, and memoise it.
        rule_words = self._rule_words
        w = ["", "", "", *[x if x in rule_words else "" for x in tokens], "", "", ""]
        t = [pad, pad, pad, *tags, pad, pad, pad]
        memo = self._ctx_memo
        for j in range(3, n + 3):
            if t[j] not in ctx:
                continue
            key = (*t[j - 3:j + 4], *w[j - 2:j + 3])
            got = memo.get(key)
            if got is None:
                got = self._apply_context(w, t, j)
                if len(memo) >= 1_000_000:
                    memo.clear()
                memo[key] = got
            t[j] = got
        return t[3:n + 3]  # type: ignore[return-value]

    def _apply_context(self, w: list[str], t: list[str | None], j: int) -> str:
        """Final tag of token j after Brill's contextual rules (first matching rule in file
        order fires, then the scan goes on after it with the new tag)."""
        ctx = self._ctx
        cur = t[j]
        fired = -1
        while True:
            tables = ctx.get(cur)  # type: ignore[arg-type]
            if tables is None:
                break
            best, new = 1 << 30, ""
            for probe, table in tables:
                if len(probe) == 1:
                    kind, off = probe[0]
                    key: object = (w if kind == "w" else t)[j + off] if off else (w[j] if kind == "w" else cur)
                else:
                    (k1, o1), (k2, o2) = probe
                    key = ((w if k1 == "w" else t)[j + o1], (w if k2 == "w" else t)[j + o2])
                hits = table.get(key)
                if hits:
                    for idx, tag in hits:  # ascending rule order
                        if idx > fired:
                            if idx < best:
                                best, new = idx, tag
                            break
            if not new:
                break
            cur = new
            fired = best
        return cur  # type: ignore[return-value]

    def tag(self, tokens: Sequence[str]) -> list[str]:
        """Universal POS tags for `tokens`."""
        ptb = self.ptb_tags(tokens)
        return [_to_upos(tokens, ptb, i) for i in range(len(tokens))]

    # -- lemmas ----------------------------------------------------------------------------
    def lemma(self, word: str, upos: str, ptb: str = "") -> str:
        """Lowercase lemma of `word` given its UPOS (and Penn tag, when known)."""
        w = word.lower()
        key = (w, upos, ptb)
        hit = self._lemma_cache.get(key)
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
        if len(self._lemma_cache) < 500_000:
            self._lemma_cache[key] = lem
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
        lex = self.lexicon_lower
        for c in cands:
            if c in lex:
                return c
        return cands[0] if cands and upos in ("NOUN", "PROPN") else w

    def word_info(self, w: str) -> tuple[str, str, str, bool, bool]:
        """(lemma, UPOS, Penn tag, context_free, unknown) of `w` when its neighbours do not matter.

        context_free is False when the word's UPOS depends on its neighbours in `_to_upos`
        (`upos_needs_context`) or contextual rules are on; unknown is True for words missing
        from the lexicon, whose Penn tag Brill's goodleft / goodright lexical rules can change
        when a neighbour is in `morph_context_words`. For a context-free word that is not such
        an unknown word, `analyze` gives this lemma and UPOS in any sentence."""
        got = self._info_cache.get(w)
        if got is not None:
            return got
        p = self._lookup(w)
        unknown = p is None
        if p is None:
            p = self._unknown(w, None, None)
        u = _to_upos([w], [p], 0)
        free = not self.context_rules and not upos_needs_context(w, p)
        got = (self.lemma(w, u, p), u, p, free, unknown)
        if len(self._info_cache) < 1_000_000:
            self._info_cache[w] = got
        return got

    def lemmatize(self, tokens: Sequence[str], upos: Sequence[str]) -> list[str]:
        return [self.lemma(w, p) for w, p in zip(tokens, upos)]

    def analyze(self, tokens: Sequence[str]) -> tuple[list[str], list[str]]:
        """(lemmas, upos) for one token sequence."""
        # Without context rules a lexicon word's tag, UPOS and lemma do not depend on its
        # neighbours (unless it is one of CONTEXT_WORDS / CONTEXT_PTB): those come from a
        # word -> (lemma, UPOS) cache, and only the other tokens go through the full path.
        by_word = self._word_cache if not self.context_rules else {}
        got: list[tuple[str, str] | None] = [by_word.get(w) for w in tokens]
        if None in got:
            ptb = self.ptb_tags(tokens)
            fast = self._pair_cache
            cacheable = not self.context_rules and len(by_word) < 500_000
            for i, g in enumerate(got):
                if g is not None:
                    continue
                w, p = tokens[i], ptb[i]
                g = fast.get((w, p))
                if g is None:
                    u = _to_upos(tokens, ptb, i)
                    g = (self.lemma(w, u, p), u)
                    if p not in CONTEXT_PTB and w.lower() not in CONTEXT_WORDS:
                        if len(fast) < 500_000:
                            fast[(w, p)] = g
                        if cacheable and self._lookup(w) is not None:
                            by_word[w] = g
                got[i] = g
        return [g[0] for g in got], [g[1] for g in got]  # type: ignore[index]


# Penn tags and words whose UPOS depends on the neighbours in `_to_upos` (never cached by pair).
CONTEXT_PTB = frozenset({"TO", "WDT", "WP", "DT", "IN"})
CONTEXT_WORDS = (frozenset({"s", "'s", "please", "that"}) | CLAUSE_PREPS | DEMONSTRATIVES | HAVE_FORMS
                 | DO_FORMS | BE_FORMS | SUBORDINATORS)

_MORPH_CMDS = frozenset({"char", "haspref", "hassuf", "addpref", "addsuf", "deletepref", "deletesuf",
                         "goodleft", "goodright"})


def _one(x: str, y: str) -> object:
    return x


def _pair(x: str, y: str) -> object:
    return (x, y)


# Brill context rule -> (positions it reads, key of the rule's x/y in that order).
# ("t", -1) = tag of the previous token, ("w", 0) = the current word, ...
_CTX_PROBES: dict[str, tuple[tuple[tuple[tuple[str, int], ...], ...], object]] = {
    "prevtag": (((("t", -1),),), _one), "nexttag": (((("t", 1),),), _one),
    "prev2tag": (((("t", -2),),), _one), "next2tag": (((("t", 2),),), _one),
    "prev1or2tag": (((("t", -1),), (("t", -2),)), _one),
    "next1or2tag": (((("t", 1),), (("t", 2),)), _one),
    "prev1or2or3tag": (((("t", -1),), (("t", -2),), (("t", -3),)), _one),
    "next1or2or3tag": (((("t", 1),), (("t", 2),), (("t", 3),)), _one),
    "surroundtag": (((("t", -1), ("t", 1)),), _pair),
    "curwd": (((("w", 0),),), _one), "prevwd": (((("w", -1),),), _one),
    "nextwd": (((("w", 1),),), _one),
    "prev1or2wd": (((("w", -1),), (("w", -2),)), _one),
    "next1or2wd": (((("w", 1),), (("w", 2),)), _one),
    "prevwdtag": (((("w", -1), ("t", -1)),), _pair), "nextwdtag": (((("w", 1), ("t", 1)),), _pair),
    "wdprevtag": (((("t", -1), ("w", 0)),), _pair), "wdnexttag": (((("w", 0), ("t", 1)),), _pair),
    "wdand2aft": (((("w", 0), ("w", 2)),), _pair), "wdand2tagbfr": (((("t", -2), ("w", 0)),), _pair),
    "wdand2tagaft": (((("w", 0), ("t", 2)),), _pair), "lbigram": (((("w", -1), ("w", 0)),), _pair),
    "rbigram": (((("w", 0), ("w", 1)),), _pair), "prevbigram": (((("t", -2), ("t", -1)),), _pair),
    "nextbigram": (((("t", 1), ("t", 2)),), _pair),
}


def _next_verbish(tokens: Sequence[str], ptb: Sequence[str], i: int, want: tuple[str, ...]) -> bool:
    """True if a tag in `want` follows within 3 tokens, skipping adverbs, negation, pronouns."""
    for j in range(i + 1, min(len(tokens), i + 4)):
        tj = ptb[j]
        if tj in want:
            return True
        if tj in ("RB", "PRP", "DT", "EX") or tokens[j].lower() in NEGATIONS:
            continue
        return False
    return False


def upos_needs_context(word: str, tag: str) -> bool:
    """True if `_to_upos` reads a neighbour (or the position) for this word and Penn tag.

    Mirrors the branch order of `_to_upos`: only the branches for 's, please, be/have/do
    forms, TO, IN (that, clause prepositions), demonstratives, WDT and "what" look around."""
    w = word.lower()
    if tag == "ADD" or w in EMOTICONS or w == "/":
        return False
    if w in ("s", "'s") or w == "please":
        return True
    if w in INDEFINITE_PRONOUNS and tag in ("NN", "NNS", "PRP", "CD", "DT"):
        return False
    if PUNCT_RE.match(w) or tag == "MD" or w in ("ca", "wo") or (w in NEGATIONS and w != "never"):
        return False
    if tag.startswith("VB"):
        return w in BE_FORMS or w in HAVE_FORMS or w in DO_FORMS
    if tag == "TO" or tag == "WDT":
        return True
    if tag == "IN":
        return w == "that" or (w not in SUBORDINATORS and w in CLAUSE_PREPS)
    if tag == "DT":
        return w in DEMONSTRATIVES
    return tag == "WP" and w == "what"


def _to_upos(tokens: Sequence[str], ptb: Sequence[str], i: int) -> str:
    w = tokens[i].lower()
    tag = ptb[i]
    nxt = ptb[i + 1] if i + 1 < len(ptb) else ""
    prev_w = tokens[i - 1].lower() if i else ""
    prev_t = ptb[i - 1] if i else ""
    if tag == "ADD":
        return "X"
    if w in EMOTICONS or w == "/":
        return "SYM"
    if w in ("s", "'s") and i:
        # "it's" / "it s": the verb be; "John's": the possessive.
        return "AUX" if prev_t in ("PRP", "DT", "WP", "EX", "WRB", "WDT") or prev_w in SUBJECT_WORDS else "PART"
    if w == "please" and prev_t not in ("TO", "MD", "PRP"):
        return "INTJ"
    if w in INDEFINITE_PRONOUNS and tag in ("NN", "NNS", "PRP", "CD", "DT"):
        return "PRON" if w not in ("one", "ones") or tag != "CD" else "NUM"
    if PUNCT_RE.match(w):
        if w in ("$", "%", "+", "=", "<", ">", "~", "^", "*", "|"):
            return "SYM"
        if w == "&":
            return "CCONJ"
        return "PUNCT"
    if tag in ("MD",) or w in ("ca", "wo"):
        return "AUX"
    if w in NEGATIONS and w != "never":
        return "PART"
    if tag.startswith("VB"):
        if w in BE_FORMS:
            return "VERB" if prev_t == "EX" else "AUX"  # existential "there is" is the verb
        if w in HAVE_FORMS and _next_verbish(tokens, ptb, i, ("VBN", "VBD")):
            return "AUX"
        if w in DO_FORMS and (_next_verbish(tokens, ptb, i, ("VB", "VBP")) or nxt in ("PRP", "EX")
                              or (i + 1 < len(tokens) and tokens[i + 1].lower() in NEGATIONS)):
            return "AUX"
        if w in MODALS:
            return "AUX"
        return "VERB"
    if tag == "POS":
        return "PART"
    if tag == "TO":
        return "PART" if nxt.startswith("VB") or nxt == "RB" else "ADP"
    if tag == "IN":
        if w == "that":
            # "the app that crashes": a relative pronoun; "said that it": the complementizer.
            return "PRON" if prev_t in ("NN", "NNS", "NNP") and (nxt.startswith("VB") or nxt == "MD") else "SCONJ"
        if w in SUBORDINATORS:
            return "SCONJ"
        if w in CLAUSE_PREPS and nxt in SUBJECT_TAGS:
            return "SCONJ"
        return "ADP"
    if tag == "DT":
        if w in DEMONSTRATIVES and nxt not in NOMINAL_PTB:
            return "PRON"
        return "DET"
    if tag == "WDT":
        return "DET" if nxt in ("NN", "NNS", "JJ") else "PRON"
    if tag == "WP" and w == "what" and nxt in ("NN", "NNS", "JJ"):
        return "DET"
    return PTB_TO_UPOS.get(tag, "X")


# Perceptron label -> Penn tag hint for the lemmatizer (base form, gerund, participle).
_VERBFORM_PTB = {"Inf": "VB", "Ger": "VBG", "Part": "VBN"}


class PerceptronAnalyzer:
    """text.tagger=perceptron: UPOS from the averaged perceptron of `text/perceptron.py`
    (trained on UD English-EWT), lemmas from `BuiltinTagger.lemma` given that UPOS.

    Tokens without a letter or digit (punctuation; the chain's tokenizer never yields them)
    are left out of the perceptron's stream, as in its training data, and tagged by rule
    (PUNCT, SYM, & = CCONJ). Lowercased input (`cased_input=False`) loses the capital that
    marks a name, the perceptron's only case feature, so two kinds of lowercase word are shown
    to it capitalised: one whose lowercase form is not in Brill's lexicon while a capitalised
    form is ("microsoft", "monday"), and an alphabetic one in neither Brill's lexicon nor
    lemminflect's tables ("firefox", "perlingiere"; the rule the Brill path uses for PROPN).
    On UD EWT dev, all tokens, lowercased: UPOS 0.900 without either, 0.920 with the first,
    0.929 with both (chosen looking at dev, the only gold data here, so optimistic).
    The lemmatizer's Penn hint is VB / VBG / VBN from the VerbForm of a verb label, else the
    lexicon's tag of the word when it maps to the same UPOS ("JJ" keeps "other" an adjective).
    """

    def __init__(self, cased_input: bool = False, weights_path: str | None = None):
        from reviewrec.text.perceptron import get_model

        self.cased_input = cased_input
        self.model = get_model(weights_path)
        self.lex = get_tagger(False, cased_input)
        self.label_upos = list(self.model.upos)
        self.label_verbform = [c.split("|", 1)[1] if "|" in c else "-" for c in self.model.classes]
        self._form_cache: dict[str, str] = {}
        self._lemma_cache: dict[tuple[str, int], str] = {}

    def model_form(self, w: str) -> str:
        """The form shown to the perceptron (lowercased input: names in the lexicon capitalised)."""
        if self.cased_input:
            return w
        got = self._form_cache.get(w)
        if got is None:
            got = w
            lex = self.lex
            if w.islower() and w not in lex.lexicon and (
                    lex.lexicon_lower.get(w) is not None  # a name in Brill's lexicon
                    or (w.isalpha() and not lex._known_word(w))):  # in neither word list
                got = w[:1].upper() + w[1:]
            if len(self._form_cache) < 1_000_000:
                self._form_cache[w] = got
        return got

    def lemma(self, w: str, label: int) -> str:
        """Lowercase lemma of token `w` with perceptron label id `label`."""
        key = (w, label)
        got = self._lemma_cache.get(key)
        if got is None:
            upos = self.label_upos[label]
            hint = _VERBFORM_PTB.get(self.label_verbform[label], "")
            if not hint:
                p = self.lex._lookup(w)
                if p is not None and PTB_TO_UPOS.get(p) == upos:
                    hint = p
            got = self.lex.lemma(w, upos, hint)
            if len(self._lemma_cache) < 1_000_000:
                self._lemma_cache[key] = got
        return got

    @staticmethod
    def rule_upos(w: str) -> str:
        """UPOS of a token without a letter or digit."""
        return _to_upos([w], ["SYM"], 0)

    def analyze(self, tokens: Sequence[str]) -> tuple[list[str], list[str]]:
        """(lemmas, upos) for one token sequence."""
        keep = [i for i, w in enumerate(tokens) if not PUNCT_RE.match(w)]
        labels = self.model.tag([self.model_form(tokens[i]) for i in keep]) if keep else []
        lemmas = [w.lower() for w in tokens]
        upos = [self.rule_upos(w) if PUNCT_RE.match(w) else "" for w in tokens]
        cid = self.model.class_id
        for i, lab in zip(keep, labels):
            k = cid[lab]
            upos[i] = self.label_upos[k]
            lemmas[i] = self.lemma(tokens[i], k)
        return lemmas, upos

    def tag(self, tokens: Sequence[str]) -> list[str]:
        return self.analyze(tokens)[1]


TAGGERS = ("brill", "perceptron")


@functools.lru_cache(maxsize=4)
def get_tagger(context_rules: bool = False, cased_input: bool = False) -> BuiltinTagger:
    """One Brill tagger per Python process and setting (a Spark worker loads it once, then reuses it)."""
    return BuiltinTagger(context_rules=context_rules, cased_input=cased_input)


@functools.lru_cache(maxsize=2)
def get_perceptron(cased_input: bool = False) -> PerceptronAnalyzer:
    """One perceptron analyzer per Python process and setting."""
    return PerceptronAnalyzer(cased_input=cased_input)


def get_analyzer(tagger: str = "brill", context_rules: bool = False,
                 cased_input: bool = False) -> BuiltinTagger | PerceptronAnalyzer:
    """The builtin engine's analyzer for text.tagger (`brill` or `perceptron`)."""
    if tagger == "brill":
        return get_tagger(context_rules, cased_input)
    if tagger == "perceptron":
        if context_rules:
            raise ValueError("text.context_rules=true applies to text.tagger=brill only (Brill's "
                             "contextual rules); the perceptron reads its context itself")
        return get_perceptron(cased_input)
    raise ValueError(f"unknown text.tagger {tagger!r}; choose one of {list(TAGGERS)}")
