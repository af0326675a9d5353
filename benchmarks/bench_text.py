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
ratio to `without_pos_lemma` (`ratios_*`).

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
    args = ap.parse_args()

    from pyspark.sql import functions as F

    from reviewrec import schema as S
    from reviewrec.config import load_config
    from reviewrec.runtime import peak_rss_mb, setup_logging
    from reviewrec.session import build_session
    import dataclasses

    import yaml

    from reviewrec.preprocess import TextParams, preprocess

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

    import psutil

    jvm = psutil.Process(spark.sparkContext._gateway.proc.pid)  # type: ignore[attr-defined]

    def spark_cpu_s() -> float:
        return tree_cpu_seconds(jvm)

    def once(df, params: TextParams) -> tuple[float, float]:
        out = preprocess(df, params)
        c0, t0 = spark_cpu_s(), time.perf_counter()
        out.write.format("noop").mode("overwrite").save()
        return time.perf_counter() - t0, spark_cpu_s() - c0

    # One warm-up partition per core, so that every Python worker the timed rounds use has
    # loaded its tagger (a one-off ~2 s per worker, amortised away at scale) before timing.
    sample = reviews.limit(5000).repartition(cores).cache()
    sample.count()
    for params in variants.values():  # warm-up: JIT, Python workers, tagger load
        once(sample, params)
    rounds: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(args.rounds):
        for name, params in variants.items():
            wall, used = once(reviews, params)
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
