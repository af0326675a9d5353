"""UPOS and lemma accuracy of the builtin text engine on UD English EWT dev, plus tagger speed.

    .venv/bin/python benchmarks/bench_text_accuracy.py [--conllu PATH] [--out FILE.json]
        [--confusions 15] [--aptagger PATH/trontagger-0.1.0.pickle] [--lingua DIR]

Settings measured (all on gold tokenization, lemmas compared lowercased), each for all genres
and for the `reviews` genre, for text.tagger=brill (the rows named context_rules=...) and
text.tagger=perceptron (rows named perceptron ...):
  * lowercased / cased input (the cased tagger is built with cased_input=True), with and
    without Brill's contextual rules: every token scored;
  * "as in the chain" (text.tag_before_stopwords=false): stop words (Spark's English list)
    removed from the sentence before tagging, the remaining tokens scored;
  * "tag before stop words" (text.tag_before_stopwords=true): the full sentence tagged, the
    same non-stop tokens scored.
  * "words": only the tokens the chain's tokenizer keeps (a letter or digit in them), so
    punctuation is neither tagged nor scored, per gold sentence; "docs": the same with each
    document's sentences joined into one row, as the chain sees a review (no boundaries).
The perceptron's batched decoder is also checked against its per-token reference on dev.
`--confusions N` prints the N most frequent (gold, predicted) UPOS errors of the default
setting. `--aptagger` also scores the averaged-perceptron Penn tagger of the PyPI package
textblob-aptagger 0.2.0 (Honnibal's model trained on WSJ; pass the path of its pickle, e.g.
after `pip install --no-deps --target /tmp/apt textblob-aptagger==0.2.0`), with our UPOS
mapping and lemmas: it is not a project dependency, this is how it was compared.
`--lingua DIR` scores a bigram HMM (Viterbi) over the Penn Treebank statistics of Debian's
liblingua-en-tagger-perl 0.31 (DIR = .../Lingua/EN/Tagger with words.yml and tags.yml, e.g.
from `apt-get download liblingua-en-tagger-perl && dpkg-deb -x *.deb /tmp/lingua`), unknown
words tagged by our Brill lexical rules; also not a dependency.
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import os
import pickle
import re
import sys
import time
from collections.abc import Callable, Sequence

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from reviewrec.text.conllu import Accuracy, Sentence, evaluate, read_conllu  # noqa: E402
from reviewrec.text.tagger import BuiltinTagger, PerceptronAnalyzer, _to_upos  # noqa: E402

DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
                       "ud_english_ewt", "en_ewt-ud-dev.conllu")
Analyzer = Callable[[Sequence[str]], tuple[list[str], list[str]]]
WORD_RE = re.compile(r"[^\W_]")


def spark_english_stop_words() -> set[str]:
    from pyspark.sql import SparkSession
    from pyspark.ml.feature import StopWordsRemover

    spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
    try:
        return set(StopWordsRemover.loadDefaultStopWords("english"))
    finally:
        spark.stop()


def without_stop_words(sents: list[Sentence], stop: set[str]) -> list[Sentence]:
    out = []
    for s in sents:
        keep = [i for i, f in enumerate(s.forms) if f.lower() not in stop]
        if keep:
            out.append(Sentence(s.sent_id, [s.forms[i] for i in keep], [s.lemmas[i] for i in keep],
                                [s.upos[i] for i in keep]))
    return out


def words_only(sents: list[Sentence]) -> list[Sentence]:
    """The tokens the chain's tokenizer keeps: those with a letter or digit."""
    out = []
    for s in sents:
        keep = [i for i, f in enumerate(s.forms) if WORD_RE.search(f)]
        if keep:
            out.append(Sentence(s.sent_id, [s.forms[i] for i in keep], [s.lemmas[i] for i in keep],
                                [s.upos[i] for i in keep]))
    return out


def documents(sents: list[Sentence]) -> list[Sentence]:
    """Each document's sentences joined into one (sent_id = the document id + "-0000")."""
    docs: dict[str, Sentence] = {}
    for s in sents:
        doc = s.sent_id.rsplit("-", 1)[0]
        d = docs.setdefault(doc, Sentence(doc + "-0000"))
        d.forms += s.forms
        d.lemmas += s.lemmas
        d.upos += s.upos
    return list(docs.values())


def check_perceptron(sents: list[Sentence]) -> list[int]:
    """The batched decoder against the per-token reference on every dev sentence (punctuation
    dropped), cased: [tokens, disagreements]."""
    import numpy as np

    from reviewrec.text.perceptron import ReferencePerceptron, get_model, read_weights

    model, ref = get_model(), ReferencePerceptron(read_weights())
    rows = [[f for f in s.forms if WORD_RE.search(f)] for s in sents]
    words: dict[str, int] = {}
    idx = np.array([words.setdefault(w, len(words)) for r in rows for w in r])
    got = model.tag_flat(list(words), idx, np.array([len(r) for r in rows])).tolist()
    want = [model.class_id[t] for r in rows for t in ref.tag(r)]
    bad = sum(a != b for a, b in zip(got, want))
    print(f"perceptron: batched decoder vs reference on {len(want)} dev tokens: {bad} disagreements", flush=True)
    return [len(want), bad]


def tagged_then_stopped(sents: list[Sentence], analyze: Analyzer, stop: set[str], lower: bool,
                        genre: str | None) -> Accuracy:
    """Tag full sentences, score only the tokens that are not stop words."""
    return evaluate(sents, analyze, lowercase_input=lower, genre=genre, skip_words=stop)


def confusions(sents: list[Sentence], analyze: Analyzer, lower: bool, n: int) -> list[tuple[str, str, int]]:
    c: collections.Counter[tuple[str, str]] = collections.Counter()
    for s in sents:
        forms = [f.lower() for f in s.forms] if lower else s.forms
        for p, g in zip(analyze(forms)[1], s.upos):
            if p != g:
                c[(g, p)] += 1
    return [(g, p, k) for (g, p), k in c.most_common(n)]


class _SetsOnly(pickle.Unpickler):
    """Unpickler for the aptagger model: plain dicts/lists/strings/floats and sets only."""

    def find_class(self, module: str, name: str):  # type: ignore[override]
        if (module, name) in (("builtins", "set"), ("__builtin__", "set")):
            return set
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the tagger pickle")


def aptagger_analyzer(path: str, lemma_tagger: BuiltinTagger) -> Analyzer:
    """Greedy averaged-perceptron tagging as in textblob-aptagger (same features), then our
    Penn -> UPOS mapping and lemmas."""
    with open(path, "rb") as fh:
        weights, tagdict, classes = _SetsOnly(fh, encoding="latin1").load()
    classes = sorted(classes)

    def norm(w: str) -> str:
        if "-" in w and w[0] != "-":
            return "!HYPHEN"
        if w.isdigit() and len(w) == 4:
            return "!YEAR"
        if w[0].isdigit():
            return "!DIGITS"
        return w.lower()

    def ptb(words: Sequence[str]) -> list[str]:
        ctx = ["-START-", "-START2-", *[norm(w) for w in words], "-END-", "-END2-"]
        prev, prev2, out = "-START-", "-START2-", []
        for i, word in enumerate(words):
            tag = tagdict.get(word)
            if not tag:
                j = i + 2
                feats = ("bias", "i suffix " + word[-3:], "i pref1 " + word[0], "i-1 tag " + prev,
                         "i-2 tag " + prev2, f"i tag+i-2 tag {prev} {prev2}", "i word " + ctx[j],
                         f"i-1 tag+i word {prev} {ctx[j]}", "i-1 word " + ctx[j - 1],
                         "i-1 suffix " + ctx[j - 1][-3:], "i-2 word " + ctx[j - 2], "i+1 word " + ctx[j + 1],
                         "i+1 suffix " + ctx[j + 1][-3:], "i+2 word " + ctx[j + 2])
                score: dict[str, float] = collections.defaultdict(float)
                for f in feats:
                    for c, v in weights.get(f, {}).items():
                        score[c] += v
                tag = max(classes, key=lambda c: (score[c], c))
            out.append(tag)
            prev2, prev = prev, tag
        return out

    def analyze(tokens: Sequence[str]) -> tuple[list[str], list[str]]:
        p = ptb(tokens)
        u = [_to_upos(tokens, p, i) for i in range(len(tokens))]
        return [lemma_tagger.lemma(w, x, y) for w, x, y in zip(tokens, u, p)], u

    return analyze


def _read_lingua_yml(path: str) -> dict[str, dict[str, float]]:
    """Lingua::EN::Tagger's YAML: one `key: { tag: number, ... }` mapping per line."""
    out: dict[str, dict[str, float]] = {}
    line_re = re.compile(r'^("(?:[^"\\]|\\.)*"|\S+): \{ (.*) \}\s*$')
    with open(path, encoding="latin-1") as fh:
        for line in fh:
            m = line_re.match(line)
            if not m:
                continue
            key = m.group(1)
            if key.startswith('"'):
                key = key[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            out[key] = {a: float(b) for a, b in (kv.rsplit(": ", 1) for kv in m.group(2).split(", "))}
    return out


def lingua_hmm_analyzer(directory: str, cased: bool) -> Analyzer:
    """Bigram HMM: P(tag | previous tag) from tags.yml, P(word | tag) from words.yml counts
    (lowercased input: counts of all case variants summed), Viterbi per sentence."""
    trans = _read_lingua_yml(os.path.join(directory, "tags.yml"))
    words = _read_lingua_yml(os.path.join(directory, "words.yml"))
    to_ptb = {"det": "DT", "ppc": ",", "pp": ".", "pps": ":", "ppl": "``", "ppr": "''", "prps": "PRP$",
              "lrb": "-LRB-", "rrb": "-RRB-"}
    from_ptb = {v: k for k, v in to_ptb.items()}
    tag_total: collections.Counter[str] = collections.Counter()
    lower: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for w, d in words.items():
        for t, c in d.items():
            tag_total[t] += c
            lower[w.lower()][t] += c
    tagger = BuiltinTagger(cased_input=cased)

    def viterbi(toks: Sequence[str]) -> list[str]:
        best: dict[str, float] = {"pp": 0.0}
        back: list[dict[str, str]] = []
        for i, w in enumerate(toks):
            d = (words.get(w) or lower.get(w.lower())) if cased else lower.get(w)
            if d:
                em = {t: math.log(c / tag_total[t]) for t, c in d.items() if t in trans}
            else:
                g = tagger._unknown(w, toks[i - 1] if i else None, toks[i + 1] if i + 1 < len(toks) else None)
                t = from_ptb.get(g, g.lower())
                em = {t if t in trans else "nn": math.log(1e-4)}
            nxt, ptr = {}, {}
            for t, e in em.items():
                v, p = max((s + math.log(trans.get(p, {}).get(t, 1e-7)) + e, p) for p, s in best.items())
                nxt[t], ptr[t] = v, p
            best = nxt
            back.append(ptr)
        t = max(best, key=best.__getitem__)
        out = [t]
        for ptr in reversed(back[1:]):
            t = ptr[t]
            out.append(t)
        return [to_ptb.get(x, x.upper()) for x in reversed(out)]

    def analyze(tokens: Sequence[str]) -> tuple[list[str], list[str]]:
        if not tokens:
            return [], []
        p = viterbi(tokens)
        u = [_to_upos(tokens, p, i) for i in range(len(tokens))]
        return [tagger.lemma(w, x, y) for w, x, y in zip(tokens, u, p)], u

    return analyze


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conllu", default=DEFAULT)
    ap.add_argument("--out", default=None)
    ap.add_argument("--confusions", type=int, default=15)
    ap.add_argument("--aptagger", default=None, help="path of textblob-aptagger's trontagger-0.1.0.pickle")
    ap.add_argument("--lingua", default=None, help="Lingua/EN/Tagger directory of liblingua-en-tagger-perl")
    args = ap.parse_args()
    sents = list(read_conllu(args.conllu))
    stop = spark_english_stop_words()
    nostop = without_stop_words(sents, stop)
    results: dict[str, object] = {}

    def report(key: str, acc: Accuracy) -> None:
        results[key] = acc.as_dict()
        print(f"{key:66s} tokens {acc.tokens:6d}  UPOS {acc.upos:.4f}  lemma {acc.lemma:.4f}", flush=True)

    for ctx in (False, True):
        for lower in (True, False):
            t0 = time.perf_counter()
            tagger = BuiltinTagger(context_rules=ctx, cased_input=not lower)
            load_s = time.perf_counter() - t0
            case = "lowercased" if lower else "cased"
            for genre in (None, "reviews"):
                g = genre or "all"
                report(f"context_rules={ctx} {case} {g}",
                       evaluate(sents, tagger.analyze, lowercase_input=lower, genre=genre))
                report(f"context_rules={ctx} {case} chain:stop_words_first {g}",
                       evaluate(nostop, tagger.analyze, lowercase_input=lower, genre=genre))
                report(f"context_rules={ctx} {case} chain:tag_before_stopwords {g}",
                       tagged_then_stopped(sents, tagger.analyze, stop, lower, genre))
            if not ctx and lower:
                conf = confusions(sents, tagger.analyze, lower, args.confusions)
                results["confusions context_rules=False lowercased"] = conf
                print("most frequent errors (gold, predicted, count):", conf, flush=True)
            if lower:
                # Warm speed (caches filled by the passes above): tokens/s on one core.
                forms = [[f.lower() for f in s.forms] for s in sents]
                t0 = time.perf_counter()
                n = 0
                for f in forms:
                    tagger.analyze(f)
                    n += len(f)
                dt = time.perf_counter() - t0
                results[f"context_rules={ctx} speed"] = {"tokens_per_s_1core": round(n / dt), "load_s": round(load_s, 2)}
                print(f"context_rules={ctx}: {n / dt:,.0f} tokens/s on one core (warm), load {load_s:.1f}s", flush=True)
    # Both builtin taggers (text.tagger) on two more token sets: "words" = the tokens the
    # chain's tokenizer keeps (with a letter or digit; punctuation is not scored), per gold
    # sentence; "docs" = the same, with every document's sentences joined into one row, as the
    # chain sees a review (no sentence boundaries, no punctuation).
    words_s, docs = words_only(sents), words_only(documents(sents))
    words_ns, docs_ns = without_stop_words(words_s, stop), without_stop_words(docs, stop)
    def report_orders(prefix: str, g: str, full: list[Sentence], full_ns: list[Sentence], an: Analyzer,
                      lower: bool, genre: str | None) -> None:
        # every token; stop words dropped before tagging; tagged, then stop words dropped
        report(f"{prefix} {g}", evaluate(full, an, lowercase_input=lower, genre=genre))
        report(f"{prefix} chain:stop_words_first {g}", evaluate(full_ns, an, lowercase_input=lower, genre=genre))
        report(f"{prefix} chain:tag_before_stopwords {g}", tagged_then_stopped(full, an, stop, lower, genre))

    builtin: list[tuple[str, Callable[[bool], Analyzer]]] = [
        ("brill", lambda lower: BuiltinTagger(cased_input=not lower).analyze),
        ("perceptron", lambda lower: PerceptronAnalyzer(cased_input=not lower).analyze)]
    for name, make in builtin:
        for lower in (True, False):
            an = make(lower)
            case = "lowercased" if lower else "cased"
            for genre in (None, "reviews"):
                g = genre or "all"
                if name == "perceptron":  # all tokens (the brill rows are the context_rules=False ones)
                    report_orders(f"{name} {case}", g, sents, nostop, an, lower, genre)
                for unit, ss, ss_ns in (("words", words_s, words_ns), ("docs", docs, docs_ns)):
                    report_orders(f"{name} {case} {unit}", g, ss, ss_ns, an, lower, genre)
            if name == "perceptron" and lower:
                conf = confusions(sents, an, lower, args.confusions)
                results["confusions perceptron lowercased"] = conf
                print("perceptron, most frequent errors (gold, predicted, count):", conf, flush=True)
    results["perceptron batched == reference (tokens, disagreements)"] = check_perceptron(sents)
    others: list[tuple[str, Callable[[bool], Analyzer]]] = []
    if args.aptagger:
        others.append(("aptagger", lambda lower: aptagger_analyzer(args.aptagger, BuiltinTagger())))
    if args.lingua:
        others.append(("lingua_hmm", lambda lower: lingua_hmm_analyzer(args.lingua, cased=not lower)))
    for name, make in others:
        for lower in (True, False):
            an = make(lower)
            case = "lowercased" if lower else "cased"
            for genre in (None, "reviews"):
                g = genre or "all"
                report_orders(f"{name} {case}", g, sents, nostop, an, lower, genre)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
