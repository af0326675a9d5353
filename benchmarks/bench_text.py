"""Throughput of the preprocessing chain with and without POS tagging + lemmatization, in one run.

    .venv/bin/python benchmarks/bench_text.py [--input DIR] [--rounds 2] [--out FILE.json]
        [--set key=value ...]   (config overrides, e.g. spark.master=local[2])

Input: amazon-reviews-pds Parquet (default ../shared/data/amazon_reviews_pds/Digital_Software,
102,084 reviews), read with spark.read.parquet and cached in memory first, so both variants
time the chain itself. Each variant runs the whole chain (`reviewrec.preprocess.preprocess`: strip
HTML, tokenize, POS + lemma or lowercase without, stop-word, length and repeat filters) into
Spark's no-op sink. Variants alternate for `--rounds` rounds after a warm-up on 5,000 reviews
each; the best round is reported, with all rounds and the per-round ratios. `with_pos_lemma` is
the chain as configured (TextParams from the config); `without_pos_lemma` the same with
text.pos_lemma=false. `--variant NAME=key:value,...` adds another chain with other TextParams
fields (values read as YAML), e.g. `--variant short=min_token_length:2`. Every variant gets its
ratio to `without_pos_lemma` (`ratios_*`). `--weights NAME=FILE` adds the configured chain with
POS + lemma whose builtin tagger reads the weights file FILE (not hash-checked; one analyzer per
file and Python worker, as the engine's own), e.g. the shipped weights beside earlier ones:
`--weights shipped=lib/sparknlp/models/builtin_pos_ud_ewt.json.gz --weights previous=OLD.json.gz`.

Two throughputs per variant:
  * wall: reviews / wall seconds / cores of the local master (what an idle machine shows);
  * cpu:  reviews / CPU seconds used by the Spark JVM and its Python workers (psutil: the
    processes' own time plus reaped children's). On a shared, oversubscribed machine this is
    the figure that means something; on an idle one the two agree.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

from _emit import tree_cpu_seconds  # noqa: E402

DEFAULT_INPUT = os.path.join(HERE, "..", "..", "shared", "data", "amazon_reviews_pds", "Digital_Software")


def analyzer_for(path: str):
    """The builtin engine's analyzer with the weights file `path`, once per Python worker (kept
    on the engine's module, which a worker imports once)."""
    from reviewrec.preprocess import builtin_engine as be
    from reviewrec.preprocess.lemmatizer import Lemmatizer
    from reviewrec.preprocess.perceptron import PerceptronModel, read_weights

    cache = be.__dict__.setdefault("_analyzers_by_weights", {})
    if path not in cache:
        cache[path] = be.PosLemmaAnalyzer(PerceptronModel(read_weights(path, check_hash=False)), Lemmatizer())
    return cache[path]


def pos_lemma_with_weights(path: str):
    """`builtin_engine.pos_lemma_builtin` with the tagger's weights read from `path`."""
    import pyarrow as pa
    from pyspark.sql import types as T

    from reviewrec import schema as S
    from reviewrec.preprocess.builtin_engine import lemmas_and_pos
    from reviewrec.preprocess.transforms import TOKENS

    def step(df, min_length, max_repeat, stop_words, col_tokens=TOKENS):
        stop = frozenset(w.lower() for w in stop_words)
        others = [c for c in df.columns if c != col_tokens]
        out_schema = T.StructType([*[df.schema[c] for c in others],
                                   T.StructField(S.LEMMAS, T.ArrayType(T.StringType()), True),
                                   T.StructField(S.POS, T.ArrayType(T.StringType()), True)])

        def fn(batches):
            analyzer = analyzer_for(path)
            for b in batches:
                lem, pos = lemmas_and_pos(b.column(col_tokens), analyzer, min_length, max_repeat, stop)
                yield pa.RecordBatch.from_arrays([*[b.column(c) for c in others], lem, pos],
                                                 names=[*others, S.LEMMAS, S.POS])

        return df.mapInArrow(fn, out_schema)

    return step


def cores_of(master: str) -> int:
    inner = master[master.find("[") + 1:master.find("]")] if "[" in master else "1"
    return os.cpu_count() or 1 if inner == "*" else int(inner)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", default=DEFAULT_INPUT)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    ap.add_argument("--variant", action="append", default=[],
                    help="NAME=key:value,... another chain (keys: TextParams fields)")
    ap.add_argument("--weights", action="append", default=[],
                    help="NAME=FILE the chain with POS + lemma, the builtin tagger's weights from FILE")
    args = ap.parse_args()

    from pyspark.sql import functions as F

    from reviewrec import schema as S
    from reviewrec.config import load_config
    from reviewrec.runtime import peak_rss_mb, setup_logging
    from reviewrec.session import build_session
    import dataclasses

    import yaml

    from reviewrec.preprocess import TextParams, preprocess
    from reviewrec.preprocess.perceptron import file_sha256

    setup_logging("WARNING")
    cfg = load_config([os.path.join(HERE, "..", "conf", "local.yaml")], args.overrides)
    spark = build_session(cfg, "bench-text")
    cores = cores_of(spark.sparkContext.master)
    reviews = (spark.read.parquet(args.input)
               .select(S.REVIEW_ID, S.REVIEW_HEADLINE, S.REVIEW_BODY)
               .cache())
    n = reviews.count()
    configured = TextParams.from_config(cfg)
    variants = {"without_pos_lemma": dataclasses.replace(configured, pos_lemma=False),
                "with_pos_lemma": configured}
    names = {f.name for f in dataclasses.fields(TextParams)}
    for spec in args.variant:
        name, _, kvs = spec.partition("=")
        kw = {}
        for kv in filter(None, kvs.split(",")):
            k, _, v = kv.partition(":")
            if k not in names:
                raise SystemExit(f"--variant {spec!r}: unknown key {k!r}; choose from {sorted(names)}")
            kw[k] = yaml.safe_load(v)
        variants[name] = dataclasses.replace(configured, **kw)
    weights: dict[str, str] = {}
    for spec in args.weights:
        name, _, path = spec.partition("=")
        if not path or not os.path.isfile(path) or name in variants:
            raise SystemExit(f"--weights {spec!r}: want NAME=FILE with a new NAME and an existing FILE")
        if configured.engine != "builtin" or not configured.pos_lemma:
            raise SystemExit("--weights needs text.engine=builtin and text.pos_lemma=true")
        weights[name] = os.path.abspath(path)
        variants[name] = configured

    import psutil

    jvm = psutil.Process(spark.sparkContext._gateway.proc.pid)  # type: ignore[attr-defined]

    def spark_cpu_s() -> float:
        return tree_cpu_seconds(jvm)

    from reviewrec.preprocess import job as preprocess_job

    engine_step = preprocess_job.pos_lemma_builtin

    def once(df, params: TextParams, name: str) -> tuple[float, float]:
        preprocess_job.pos_lemma_builtin = pos_lemma_with_weights(weights[name]) if name in weights else engine_step
        try:
            out = preprocess(df, params)
        finally:
            preprocess_job.pos_lemma_builtin = engine_step
        c0, t0 = spark_cpu_s(), time.perf_counter()
        out.write.format("noop").mode("overwrite").save()
        return time.perf_counter() - t0, spark_cpu_s() - c0

    # One warm-up partition per core, so that every Python worker the timed rounds use has
    # loaded its tagger (a one-off ~2 s per worker, amortised away at scale) before timing.
    sample = reviews.limit(5000).repartition(cores).cache()
    sample.count()
    for name, params in variants.items():  # warm-up: JIT, Python workers, tagger load
        once(sample, params, name)
    rounds: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(args.rounds):
        for name, params in variants.items():
            wall, used = once(reviews, params, name)
            rounds[name].append(round(wall, 2))
            cpu[name].append(round(used, 2))
            print(f"round {r}: {name}: {wall:.1f}s wall, {used:.1f} CPU-s", flush=True)
    words = preprocess(reviews, configured).agg(F.sum(F.size(S.LEMMAS))).first()[0]
    best = {k: min(v) for k, v in rounds.items()}
    best_cpu = {k: min(v) for k, v in cpu.items()}
    res = {
        "input": os.path.abspath(args.input), "reviews": n, "lemmas_out": int(words), "cores": cores,
        "master": spark.sparkContext.master, "rounds_wall_s": rounds, "rounds_cpu_s": cpu,
        "reviews_per_s_per_core_wall": {k: round(n / s / cores) for k, s in best.items()},
        "reviews_per_cpu_s": {k: round(n / s) for k, s in best_cpu.items()},
        "ratio_with_vs_without_wall": round(best["without_pos_lemma"] / best["with_pos_lemma"], 3),
        "ratio_with_vs_without_cpu": round(best_cpu["without_pos_lemma"] / best_cpu["with_pos_lemma"], 3),
        "ratio_per_round_cpu": [round(a / b, 3) for a, b in zip(cpu["without_pos_lemma"], cpu["with_pos_lemma"],
                                                                strict=False)],
        "ratio_per_round_wall": [round(a / b, 3) for a, b in zip(rounds["without_pos_lemma"],
                                                                 rounds["with_pos_lemma"], strict=False)],
        "variants": {k: dataclasses.asdict(v) for k, v in variants.items()},
        "weights": {k: {"file": v, "sha256": file_sha256(v)} for k, v in weights.items()},
        "ratios_wall": {k: round(best["without_pos_lemma"] / best[k], 3) for k in variants if k != "without_pos_lemma"},
        "ratios_cpu": {k: round(best_cpu["without_pos_lemma"] / best_cpu[k], 3) for k in variants
                       if k != "without_pos_lemma"},
        "ratios_per_round_cpu": {k: [round(a / b, 3) for a, b in zip(cpu["without_pos_lemma"], cpu[k], strict=False)]
                                 for k in variants if k != "without_pos_lemma"},
        "load_average_1m_at_end": round(os.getloadavg()[0], 1),
        "driver_peak_rss_mb": round(peak_rss_mb(), 1),
        "config_hash": cfg.hash(),
    }
    print(json.dumps(res, indent=2))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(res, fh, indent=2)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
