"""The sparknlp text engine measured: UPOS + lemma accuracy on UD English-EWT dev, token
agreement with the builtin engine, and the throughput of the full chain on both engines.

    .venv/bin/python benchmarks/bench_text_sparknlp.py accuracy [--conllu DEV] [--out FILE.json]
    .venv/bin/python benchmarks/bench_text_sparknlp.py agreement [--reviews N] [--out FILE.json]
    .venv/bin/python benchmarks/bench_text_sparknlp.py throughput [--reviews N] [--out FILE.json]
    .venv/bin/python benchmarks/bench_text_sparknlp.py stages [--reviews N] [--jfr FILE.jfr] [--out FILE.json]

accuracy: gold tokenization, every token scored, lemmas compared lowercased, as
bench_text_accuracy.py scores the builtin engine (cased input). Tokens with a letter or digit go
through the engine's annotators (`sparknlp_engine.annotate`, the models shipped in lib/sparknlp/models/ud_ewt.tar.xz);
punctuation-only tokens, which the chain's tokenizer never yields, get the builtin engine's rule
tag and themselves as lemma, as the builtin analyzer does. Both engines are scored here on the
same sentences, overall and on the `reviews` genre; "words" rows score only the word tokens.
agreement: the final token lists (lemmas) of both engines on the first N reviews of
../shared/data/amazon_reviews_pds/Digital_Software (review_id order): Jaccard of the two sets
per review (two empty lists agree), mean and 5th percentile, and the most frequent differences.
throughput: the full chain (job.preprocess, written to Parquet) on the same N reviews, each engine
in its own fresh local[2] JVM (one run each), reviews/s/core (wall time x 2 cores) and reviews
per CPU second (the JVM + Python workers' CPU time: the fairer figure when other work shares
the machine); the JVM's peak heap (driver = executor in local mode, from the JVM's memory
pools) and the largest Python worker's RSS at the end (psutil).
stages: where the sparknlp engine's CPU goes. The chain's tokens of the same N reviews (2
partitions, cached), then the engine's Spark NLP stages added one at a time
(`sparknlp_engine.annotators`), then the whole engine (alignment check, UPOS mapping, filters)
and the builtin engine, each forced with a `noop` write; CPU seconds of the JVM and the Python
workers, two rounds in one JVM (the second, warm, is the figure). With --jfr the JVM runs Java
Flight Recorder (settings=profile, dumped to the file at the end) and its execution samples are
summed by the innermost Spark NLP class on their stack and by leaf method.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

from _emit import tree_cpu_seconds  # noqa: E402

from reviewrec.preprocess.conllu import Accuracy, is_word, read_conllu  # noqa: E402

SHARED = os.path.join(HERE, "..", "..", "shared", "data")
DEV = os.path.join(SHARED, "ud_english_ewt", "en_ewt-ud-dev.conllu")
REVIEWS = os.path.join(SHARED, "amazon_reviews_pds", "Digital_Software")


def session(engine: str, cores: int = 2):
    from reviewrec.config import load_config
    from reviewrec.session import build_session

    cfg = load_config([os.path.join(HERE, "..", "conf", "local.yaml")],
                      [f"text.engine={engine}", f"spark.master=local[{cores}]"])
    return build_session(cfg, f"bench-{engine}")


def analyze_sparknlp(spark, token_lists):
    """Every token of each list -> (lemmas, upos), Spark NLP on the words, rule on punctuation."""
    from pyspark.sql import functions as F

    from reviewrec.preprocess.sparknlp_engine import annotate
    from reviewrec.preprocess.upos import punctuation_upos

    rows = [(i, ["_".join(t.split()) for t in toks if is_word(t)]) for i, toks in enumerate(token_lists)]
    df = spark.createDataFrame(rows, "i int, tokens array<string>")
    got = {r["i"]: r["__ann"] for r in annotate(df).select("i", F.col("__ann")).collect()}
    out = []
    for i, toks in enumerate(token_lists):
        ann = iter(got[i])
        lem, pos = [], []
        for t in toks:
            if is_word(t):
                a = next(ann)
                lem.append(a["lemma"])
                pos.append(a["pos"])
            else:
                lem.append(t.lower())
                pos.append(punctuation_upos(t))
        out.append((lem, pos))
    return out


def analyze_builtin(token_lists):
    from reviewrec.preprocess.builtin_engine import get_analyzer

    a = get_analyzer()
    return [a.analyze(toks) for toks in token_lists]


def score(sents, results, genre=None, words_only=False) -> Accuracy:
    acc = Accuracy()
    for s, (lem, pos) in zip(sents, results, strict=False):
        if genre and s.genre != genre:
            continue
        for f, gl, gu, lm, u in zip(s.forms, s.lemmas, s.upos, lem, pos, strict=False):
            if words_only and not is_word(f):
                continue
            acc.tokens += 1
            acc.upos_ok += u == gu
            acc.lemma_ok += lm.lower() == gl.lower()
    return acc


def accuracy(args) -> dict:
    sents = list(read_conllu(args.conllu))
    toks = [s.forms for s in sents]
    spark = session("sparknlp")
    t0 = time.time()
    snlp = analyze_sparknlp(spark, toks)
    t_snlp = time.time() - t0
    spark.stop()
    t0 = time.time()
    blt = analyze_builtin(toks)
    t_blt = time.time() - t0
    out = {"conllu": os.path.basename(args.conllu), "sentences": len(sents),
           "seconds": {"sparknlp": round(t_snlp, 1), "builtin": round(t_blt, 1)}}
    errors = collections.Counter()
    for s, (lem, pos) in zip(sents, snlp, strict=False):
        for f, gl, gu, lm, u in zip(s.forms, s.lemmas, s.upos, lem, pos, strict=False):
            if u != gu:
                errors[f"upos {gu}->{u}"] += 1
            if lm.lower() != gl.lower():
                errors[f"lemma {f.lower()}: {gl.lower()}->{lm}"] += 1
    for name, res in (("sparknlp", snlp), ("builtin", blt)):
        out[name] = {"all": score(sents, res).as_dict(), "reviews": score(sents, res, "reviews").as_dict(),
                     "words_all": score(sents, res, words_only=True).as_dict(),
                     "words_reviews": score(sents, res, "reviews", True).as_dict()}
    out["sparknlp_top_errors"] = errors.most_common(25)
    return out


def read_reviews(spark, n: int):
    return (spark.read.parquet(REVIEWS).select("review_id", "review_headline", "review_body")
            .orderBy("review_id").limit(n))


def preprocess_on(spark, engine: str, n: int):
    from reviewrec.preprocess.job import TextParams, preprocess

    return preprocess(read_reviews(spark, n), TextParams(engine=engine))


def agreement(args) -> dict:
    import numpy as np

    spark = session("sparknlp")
    a = {r[0]: (r[1], r[2]) for r in preprocess_on(spark, "builtin", args.reviews).collect()}
    b = {r[0]: (r[1], r[2]) for r in preprocess_on(spark, "sparknlp", args.reviews).collect()}
    spark.stop()
    jac, only_b, only_s, pos_diff = [], collections.Counter(), collections.Counter(), collections.Counter()
    n_tok = {"builtin": 0, "sparknlp": 0}
    for rid, (la, pa) in a.items():
        lb, pb = b[rid]
        sa, sb = set(la), set(lb)
        jac.append(1.0 if not sa and not sb else len(sa & sb) / len(sa | sb))
        only_b.update(sa - sb)
        only_s.update(sb - sa)
        n_tok["builtin"] += len(la)
        n_tok["sparknlp"] += len(lb)
        if la == lb:
            pos_diff.update(f"{x}->{y}" for x, y in zip(pa, pb, strict=False) if x != y)
    j = np.array(jac)
    return {"reviews": len(a), "jaccard_mean": round(float(j.mean()), 4),
            "jaccard_p5": round(float(np.percentile(j, 5)), 4), "identical_lists": int((j == 1).sum()),
            "tokens": n_tok, "only_builtin_top": only_b.most_common(30),
            "only_sparknlp_top": only_s.most_common(30),
            "pos_differences_same_lemmas_top": pos_diff.most_common(15)}


def _tree_cpu() -> float:
    """CPU seconds used so far by this process and its descendants."""
    import psutil

    return tree_cpu_seconds(psutil.Process())


def _one_throughput(engine: str, n: int, out_dir: str) -> dict:
    """Run in a child process: a fresh JVM per engine."""
    import psutil

    spark = session(engine)
    reviews = read_reviews(spark, n).cache()
    reviews.count()
    from reviewrec.preprocess.job import TextParams, preprocess

    cpu0, t0 = _tree_cpu(), time.time()
    preprocess(reviews, TextParams(engine=engine)).write.mode("overwrite").parquet(out_dir)
    secs, cpu = time.time() - t0, _tree_cpu() - cpu0
    jvm = spark.sparkContext._jvm
    pools = jvm.java.lang.management.ManagementFactory.getMemoryPoolMXBeans()
    heap_peak = sum(p.getPeakUsage().getUsed() for p in pools if str(p.getType().toString()) == "Heap memory")
    me = psutil.Process()
    workers = [c for c in me.children(recursive=True) if "pyspark.daemon" in " ".join(c.cmdline())]
    rss = [c.memory_info().rss for c in workers if c.is_running()]
    spark.stop()
    cores = 2
    return {"engine": engine, "reviews": n, "seconds": round(secs, 1),
            "reviews_per_s_per_core": round(n / secs / cores, 1), "cpu_seconds": round(cpu, 1),
            "reviews_per_cpu_second": round(n / cpu, 1), "load_average_1min": os.getloadavg()[0],
            "jvm_heap_peak_mib": round(heap_peak / 2**20), "python_workers": len(rss),
            "python_worker_rss_max_mib": round(max(rss) / 2**20) if rss else 0}


def stages(args) -> dict:
    """CPU seconds per cumulative stage of the sparknlp engine (module docstring)."""
    from pyspark.ml import Pipeline
    from pyspark.sql import functions as F

    from reviewrec.preprocess import sparknlp_engine as E
    from reviewrec.preprocess.builtin_engine import pos_lemma_builtin
    from reviewrec.preprocess.transforms import resolve_stop_words, review_text, strip_html, tokenize

    if args.jfr:  # recorded in memory, dumped below (the launcher's short JVM records too, never dumped)
        os.environ["JAVA_TOOL_OPTIONS"] = "-XX:StartFlightRecording=settings=profile"
    spark = session("sparknlp")
    reviews = read_reviews(spark, args.reviews).repartition(2, "review_id")
    tokens = review_text(reviews).transform(strip_html).transform(tokenize).select("review_id", "tokens").cache()
    n_tok = tokens.agg(F.count("*"), F.sum(F.size("tokens"))).first()
    stop = resolve_stop_words("english", ())
    names = ["tokens joined", "+ DocumentAssembler", "+ RegexTokenizer", "+ PerceptronModel", "+ Normalizer",
             "+ LemmatizerModel"]

    def partial(k: int):
        text = E.joined_text(tokens)
        return Pipeline(stages=E.annotators()[:k]).fit(text).transform(text) if k else text

    variants = [(name, (lambda k=k: partial(k))) for k, name in enumerate(names)]
    variants += [("sparknlp engine (+ alignment, UPOS, filters)", lambda: E.pos_lemma_sparknlp(tokens, 3, 3, stop)),
                 ("builtin engine", lambda: pos_lemma_builtin(tokens, 3, 3, stop))]
    rounds: dict[str, list[float]] = {}
    for _ in range(2):
        for name, build in variants:
            df = build()
            c0 = _tree_cpu()
            df.write.format("noop").mode("overwrite").save()
            rounds.setdefault(name, []).append(round(_tree_cpu() - c0, 1))
            print(name, rounds[name][-1], file=sys.stderr, flush=True)
    if args.jfr:
        pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
        java = os.path.realpath(shutil.which("java") or "java")
        subprocess.run([os.path.join(os.path.dirname(java), "jcmd"), str(pid), "JFR.dump",
                        f"filename={os.path.abspath(args.jfr)}"], check=True, capture_output=True, env=_no_jfr_env())
    spark.stop()
    out = {"reviews": int(n_tok[0]), "tokens": int(n_tok[1]), "cpu_seconds_rounds": rounds,
           "cpu_seconds": {k: v[-1] for k, v in rounds.items()}}
    if args.jfr:
        out["jfr"] = jfr_profile(args.jfr)
    return out


def _no_jfr_env() -> dict[str, str]:
    """This environment without the JAVA_TOOL_OPTIONS that start a recording (for jcmd and jfr,
    themselves JVMs)."""
    return {k: v for k, v in os.environ.items() if k != "JAVA_TOOL_OPTIONS"}


def jfr_profile(path: str, top: int = 12) -> dict[str, Any]:
    """Shares of a JFR file's execution samples: by leaf method, and by the innermost Spark NLP
    class on the stack (the annotator code a sample is in; "outside Spark NLP" when none is)."""
    java = os.path.realpath(shutil.which("java") or "java")
    res = subprocess.run([os.path.join(os.path.dirname(java), "jfr"), "print", "--json", "--stack-depth", "64",
                          "--events", "jdk.ExecutionSample", path], capture_output=True, text=True, check=True,
                         env=_no_jfr_env())
    leaf: collections.Counter[str] = collections.Counter()
    owner: collections.Counter[str] = collections.Counter()
    for ev in json.loads(res.stdout)["recording"]["events"]:
        frames = (ev["values"].get("stackTrace") or {}).get("frames") or []
        if not frames:
            continue
        types = [f["method"]["type"]["name"].replace("/", ".") for f in frames]
        leaf[f"{types[0]}.{frames[0]['method']['name']}"] += 1
        jsl = next((t for t in types if t.startswith("com.johnsnowlabs.")), None)
        owner[jsl.split("$")[0] if jsl else "outside Spark NLP"] += 1
    total = sum(leaf.values()) or 1
    return {"samples": total,
            "by_spark_nlp_class": [(k, round(c / total, 3)) for k, c in owner.most_common(top)],
            "by_leaf_method": [(k, round(c / total, 3)) for k, c in leaf.most_common(top)]}


def throughput(args) -> dict:
    out = {}
    for engine in ("builtin", "sparknlp"):
        res = subprocess.run([sys.executable, __file__, "_one", "--engine", engine, "--reviews", str(args.reviews)],
                             capture_output=True, text=True, check=False)
        if res.returncode:
            raise RuntimeError(f"{engine} run failed:\n{res.stderr[-3000:]}")
        out[engine] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["accuracy", "agreement", "throughput", "stages", "_one"])
    ap.add_argument("--conllu", default=DEV)
    ap.add_argument("--reviews", type=int, default=10000)
    ap.add_argument("--engine", default="sparknlp")
    ap.add_argument("--out")
    ap.add_argument("--jfr", help="stages: record the JVM with Java Flight Recorder into this file")
    args = ap.parse_args()
    if args.what == "_one":
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            res = _one_throughput(args.engine, args.reviews, os.path.join(d, "tokens"))
        print(json.dumps(res))
        return
    res = {"accuracy": accuracy, "agreement": agreement, "throughput": throughput, "stages": stages}[args.what](args)
    text = json.dumps(res, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
