"""UPOS and lemma accuracy of the builtin text engine on UD English EWT dev, plus tagger speed.

    .venv/bin/python benchmarks/bench_text_accuracy.py [--conllu PATH] [--out FILE.json]

Settings measured (all on gold tokenization, lemmas compared lowercased):
  cased / lowercased input, with and without Brill's contextual rules, all genres and the
  `reviews` genre; and "as in the pipeline": stop words (Spark's English list) removed from the
  sentence before tagging, scored on the tokens that remain.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from reviewrec.text.conllu import Accuracy, Sentence, evaluate, read_conllu  # noqa: E402
from reviewrec.text.tagger import BuiltinTagger  # noqa: E402

DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
                       "ud_english_ewt", "en_ewt-ud-dev.conllu")


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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conllu", default=DEFAULT)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    sents = list(read_conllu(args.conllu))
    stop = spark_english_stop_words()
    nostop = without_stop_words(sents, stop)
    results: dict[str, dict[str, float | int]] = {}
    for ctx in (True, False):
        t0 = time.perf_counter()
        tagger = BuiltinTagger()
        tagger.context_rules = ctx
        load_s = time.perf_counter() - t0
        for name, data, lower in (("cased", sents, False), ("lowercased", sents, True),
                                  ("pipeline_lowercased_no_stop_words", nostop, True)):
            for genre in (None, "reviews"):
                acc: Accuracy = evaluate(data, tagger.analyze, lowercase_input=lower, genre=genre)
                key = f"context_rules={ctx} {name} {genre or 'all'}"
                results[key] = acc.as_dict()
                print(f"{key:60s} tokens {acc.tokens:6d}  UPOS {acc.upos:.4f}  lemma {acc.lemma:.4f}", flush=True)
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
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
