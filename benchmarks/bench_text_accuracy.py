"""UPOS and lemma accuracy of the builtin text engine on UD English EWT dev, plus its speed.

    .venv/bin/python benchmarks/bench_text_accuracy.py [--conllu PATH] [--out FILE.json] [--confusions 15]

All on gold tokenization, lemmas compared lowercased, each for all genres and for the
`reviews` genre, with the engine's analyzer (`builtin_engine.get_analyzer().analyze`):
  * every token scored, the sentence tagged as written (the engine's setting); and with the
    input lowercased, to show what case is worth to the tagger (the engine never lowercases
    before tagging);
  * the chain's orders: "tagged before stop words" (the engine's order: the full sentence
    tagged, the tokens that are not Spark English stop words scored) against "stop words
    first" (those tokens tagged alone);
  * "words": only the tokens the chain's tokenizer keeps (a letter or digit in them), so
    punctuation is neither tagged nor scored, per gold sentence; "docs": the same with each
    document's sentences joined into one row, as the chain sees a review (no boundaries).
The perceptron's batched decoder is also checked against its per-token reference on dev.
`--confusions N` prints the N most frequent (gold, predicted) UPOS errors on every token.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from reviewrec.preprocess.conllu import Accuracy, Sentence, evaluate, read_conllu  # noqa: E402
from reviewrec.preprocess.builtin_engine import get_analyzer  # noqa: E402

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

    from reviewrec.preprocess.perceptron import ReferencePerceptron, get_model, read_weights

    model, ref = get_model(), ReferencePerceptron(read_weights())
    rows = [[f for f in s.forms if WORD_RE.search(f)] for s in sents]
    words: dict[str, int] = {}
    idx = np.array([words.setdefault(w, len(words)) for r in rows for w in r])
    got = model.tag_flat(list(words), idx, np.array([len(r) for r in rows])).tolist()
    want = [model.class_id[t] for r in rows for t in ref.tag(r)]
    bad = sum(a != b for a, b in zip(got, want, strict=False))
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
        for p, g in zip(analyze(forms)[1], s.upos, strict=False):
            if p != g:
                c[(g, p)] += 1
    return [(g, p, k) for (g, p), k in c.most_common(n)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conllu", default=DEFAULT)
    ap.add_argument("--out", default=None)
    ap.add_argument("--confusions", type=int, default=15)
    args = ap.parse_args()
    sents = list(read_conllu(args.conllu))
    stop = spark_english_stop_words()
    nostop = without_stop_words(sents, stop)
    results: dict[str, object] = {}

    def report(key: str, acc: Accuracy) -> None:
        results[key] = acc.as_dict()
        print(f"{key:66s} tokens {acc.tokens:6d}  UPOS {acc.upos:.4f}  lemma {acc.lemma:.4f}", flush=True)

    an = get_analyzer().analyze
    words_s, docs = words_only(sents), words_only(documents(sents))
    words_ns, docs_ns = without_stop_words(words_s, stop), without_stop_words(docs, stop)
    for lower in (False, True):
        case = "lowercased input" if lower else "as written"
        for genre in (None, "reviews"):
            g = genre or "all"
            for unit, full, full_ns in (("sentences", sents, nostop), ("words", words_s, words_ns),
                                        ("docs", docs, docs_ns)):
                report(f"{unit} {case} {g}", evaluate(full, an, lowercase_input=lower, genre=genre))
                report(f"{unit} {case} chain:stop_words_first {g}",
                       evaluate(full_ns, an, lowercase_input=lower, genre=genre))
                report(f"{unit} {case} chain:tag_before_stopwords {g}",
                       tagged_then_stopped(full, an, stop, lower, genre))
    conf = confusions(sents, an, False, args.confusions)
    results["confusions"] = conf
    print("most frequent errors (gold, predicted, count):", conf, flush=True)
    # Warm speed (caches filled by the passes above): tokens/s on one core, one sentence at a time.
    t0 = time.perf_counter()
    n = 0
    for s in sents:
        an(s.forms)
        n += len(s.forms)
    dt = time.perf_counter() - t0
    results["speed"] = {"tokens_per_s_1core_per_sentence": round(n / dt)}
    print(f"{n / dt:,.0f} tokens/s on one core (warm, one sentence per call)", flush=True)
    results["perceptron batched == reference (tokens, disagreements)"] = check_perceptron(sents)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
