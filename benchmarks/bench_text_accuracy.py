"""UPOS and lemma accuracy of the builtin text engine on UD English EWT dev, plus its speed.

    .venv/bin/python benchmarks/bench_text_accuracy.py [--conllu PATH] [--out FILE.json] [--confusions 15]
        [--weights FILE.json.gz] [--compare OTHER.json.gz [--rounds 5]]
    .venv/bin/python benchmarks/bench_text_accuracy.py --sweep [--seeds 1,2] [--iterations 8,10,12,15]
        [--tagdict MIN_COUNT:MIN_SHARE]

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

`--weights` scores another weights file than the shipped one; `--compare OTHER` also scores OTHER
and times both side by side in this process: the engine's batch step (`tag_batch`: tags and
lemmas) over every dev sentence as one batch per 1,000 sentences, the two alternating for
`--rounds` warm rounds of 20 passes each, tokens per CPU second of the best and the median round.

`--sweep` is how the training settings were chosen (preprocess/perceptron_train.py): it trains
on EWT train once per seed for the largest iteration count, takes the averaged model after each
listed iteration count, and scores UPOS on dev's word tokens, and UPOS and lemma on every token
(all genres and reviews, the engine's analyzer), for each seed and for the average of the seeds
so far (as the trainer averages them); `--tagdict 20:0.97` sets the tag dictionary's thresholds.
Nothing is trained on dev.
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
REPEAT = 20  # passes over dev per timed round in `side_by_side` (one pass is about 0.03 CPU s)


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

    model, ref = get_model(), ReferencePerceptron(read_weights())  # the shipped weights
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


def analyzer_of(path: str | None):
    """The engine's analyzer with the weights file `path` (None: the shipped one, hash-checked)."""
    from reviewrec.preprocess.builtin_engine import PosLemmaAnalyzer
    from reviewrec.preprocess.lemmatizer import Lemmatizer
    from reviewrec.preprocess.perceptron import PerceptronModel, read_weights

    if path is None:
        return get_analyzer()
    return PosLemmaAnalyzer(PerceptronModel(read_weights(path, check_hash=False)), Lemmatizer())


def side_by_side(sents: list[Sentence], paths: dict[str, str | None], rounds: int) -> dict:
    """Accuracy and batch-step speed of several weights files in one process, alternating."""
    import pyarrow as pa

    from reviewrec.preprocess.builtin_engine import tag_batch

    out: dict[str, dict] = {}
    ans = {}
    for name, path in paths.items():
        t0 = time.perf_counter()
        ans[name] = analyzer_of(path)
        load = time.perf_counter() - t0
        out[name] = {"weights": path or "shipped", "load_s": round(load, 2)}
        for genre in (None, "reviews"):
            acc = evaluate(sents, ans[name].analyze, genre=genre)
            out[name][genre or "all"] = acc.as_dict()
        print(f"{name:8s} load {load:.2f}s  all {out[name]['all']}  reviews {out[name]['reviews']}", flush=True)
    batches = [pa.array([s.forms for s in sents[i:i + 1000]], pa.list_(pa.string()))
               for i in range(0, len(sents), 1000)]
    n_tok = sum(len(s.forms) for s in sents)
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(rounds + 1):  # round 0 warms the caches
        for name in paths:
            t0 = time.process_time()
            for _ in range(REPEAT):
                for b in batches:
                    tag_batch(b, ans[name])
            times[name].append(time.process_time() - t0)
    for name in paths:
        best = min(times[name][1:])
        out[name]["tokens_per_cpu_s_best"] = round(REPEAT * n_tok / best)
        out[name]["tokens_per_cpu_s_median"] = round(REPEAT * n_tok / sorted(times[name][1:])[rounds // 2])
        out[name]["cpu_s_per_round"] = [round(t, 3) for t in times[name][1:]]
        print(f"{name:8s} {REPEAT * n_tok / best:,.0f} tokens per CPU-second (best of {rounds} warm rounds; "
              f"median {out[name]['tokens_per_cpu_s_median']:,}; batches of 1,000 sentences)", flush=True)
    return out


def sweep(train_path: str, dev_path: str, seeds: list[int], iterations: list[int],
          tagdict: tuple[int, float] | None = None) -> dict:
    import numpy as np

    from reviewrec.preprocess.builtin_engine import PosLemmaAnalyzer
    from reviewrec.preprocess.lemmatizer import Lemmatizer
    from reviewrec.preprocess.perceptron import PerceptronModel
    from reviewrec.preprocess.perceptron_train import (TAGDICT_MIN_COUNT, TAGDICT_MIN_SHARE, _round_half_even,
                                                       train, training_rows)

    min_count, min_share = tagdict or (TAGDICT_MIN_COUNT, TAGDICT_MIN_SHARE)
    train_sents = list(read_conllu(train_path))
    dev_sents = list(read_conllu(dev_path))
    dev = training_rows(dev_sents)
    gold = [lab.split("|", 1)[0] for _, labs in dev for lab in labs]
    lemmatizer = Lemmatizer()
    full: dict[str, dict] = {}

    def score(model: dict, key: str) -> float:
        """UPOS on dev's word tokens (returned); every token's UPOS and lemma, all genres and
        reviews, with the engine's analyzer, into `full[key]`."""
        m = PerceptronModel(model)
        words: dict[str, int] = {}
        idx = np.array([words.setdefault(w, len(words)) for r, _ in dev for w in r])
        got = m.tag_flat(list(words), idx, np.array([len(r) for r, _ in dev]))
        an = PosLemmaAnalyzer(m, lemmatizer)
        full[key] = {g or "all": evaluate(dev_sents, an.analyze, genre=g).as_dict() for g in (None, "reviews")}
        return round(float(np.mean([m.upos[g] == u for g, u in zip(got.tolist(), gold, strict=True)])), 4)

    def line_of(key: str) -> str:
        a, r = full[key]["all"], full[key]["reviews"]
        return f"(every token: UPOS {a['upos']} / reviews {r['upos']}, lemma {a['lemma']} / {r['lemma']})"

    sums: dict[int, dict[str, dict[str, int]]] = {k: {} for k in iterations}
    out: dict[str, object] = {"tagdict": [min_count, min_share], "every_token": full}
    t0 = time.time()
    for n, seed in enumerate(seeds, 1):
        def on_iteration(k: int, model: dict, n: int = n, seed: int = seed) -> None:
            if k not in sums:
                return
            one = f"seed {seed}, {k} iterations"
            out[one] = score(model, one)
            acc = sums[k]
            for f, row in model["weights"].items():
                a = acc.setdefault(f, {})
                for c, v in row.items():
                    a[c] = a.get(c, 0) + round(v * 1000)
            line = f"seed {seed}, {k:2d} iterations: dev UPOS (word tokens) {out[one]} {line_of(one)}"
            if n > 1:
                # The trainer's average (`train_averaged`): thousandths rounded half to even.
                avg = {f: {c: _round_half_even(v, n) / 1000 for c, v in row.items() if _round_half_even(v, n)}
                       for f, row in acc.items()}
                key = f"average of {n} seeds, {k} iterations"
                out[key] = score({**model, "weights": {f: r for f, r in avg.items() if r}}, key)
                line += f"; {key}: {out[key]} {line_of(key)}"
            print(f"[{time.time() - t0:5.0f}s] {line}", flush=True)

        train(train_sents, iterations=max(iterations), seed=seed, min_count=min_count, min_share=min_share,
              on_iteration=on_iteration)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conllu", default=DEFAULT)
    ap.add_argument("--out", default=None)
    ap.add_argument("--confusions", type=int, default=15)
    ap.add_argument("--weights", default=None, help="a weights file other than the shipped one")
    ap.add_argument("--compare", default=None, help="another weights file, scored and timed side by side")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sweep", action="store_true", help="train on EWT train and score each setting on dev")
    ap.add_argument("--train", default=DEFAULT.replace("-dev.", "-train."))
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--iterations", default="8,10,12,15")
    ap.add_argument("--tagdict", default=None, help="MIN_COUNT:MIN_SHARE of the tag dictionary (default: trainer's)")
    args = ap.parse_args()
    if args.sweep:
        res = sweep(args.train, args.conllu, [int(x) for x in args.seeds.split(",")],
                    [int(x) for x in args.iterations.split(",")],
                    (int(args.tagdict.split(":")[0]), float(args.tagdict.split(":")[1])) if args.tagdict else None)
        if args.out:
            with open(args.out, "w", encoding="utf-8") as fh:
                json.dump(res, fh, indent=2)
        return 0
    sents = list(read_conllu(args.conllu))
    if args.compare:
        res = side_by_side(sents, {"new": args.weights, "other": args.compare}, args.rounds)
        if args.out:
            with open(args.out, "w", encoding="utf-8") as fh:
                json.dump(res, fh, indent=2)
        return 0
    stop = spark_english_stop_words()
    nostop = without_stop_words(sents, stop)
    results: dict[str, object] = {}

    def report(key: str, acc: Accuracy) -> None:
        results[key] = acc.as_dict()
        print(f"{key:66s} tokens {acc.tokens:6d}  UPOS {acc.upos:.4f}  lemma {acc.lemma:.4f}", flush=True)

    an = analyzer_of(args.weights).analyze
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
