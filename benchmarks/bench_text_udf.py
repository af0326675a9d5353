"""CPU time of the Python side of POS + lemma on one Arrow batch: the per-row pandas UDF body
(`transforms._pos_lemma_batches`, text.fast_path=false) vs the per-distinct-word Arrow path
(`transforms.analyze_arrow`, the default, which also applies the length and repeat filters).

    .venv/bin/python benchmarks/bench_text_udf.py [--input DIR] [--rows 10000] [--repeats 3]

Input: the first `--rows` Digital_Software reviews, headline + body lowercased, HTML stripped,
split on non-word characters, Spark's English stop words removed (a Python approximation of
the chain's JVM steps: this times only what runs in the Python worker). Both paths start from
the same pyarrow list array, as a Spark Arrow batch arrives; the per-row path includes its
Arrow -> pandas -> Arrow conversions. Times are process CPU seconds (one core), warm caches.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
DEFAULT_INPUT = os.path.join(HERE, "..", "..", "shared", "data", "amazon_reviews_pds", "Digital_Software")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", default=DEFAULT_INPUT)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.ml.feature import StopWordsRemover
    from pyspark.sql import SparkSession

    from reviewrec.text import transforms as X
    from reviewrec.text.tagger import get_tagger

    spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
    stop = set(StopWordsRemover.loadDefaultStopWords("english"))
    spark.stop()
    t = pq.read_table(args.input, columns=["review_headline", "review_body"]).slice(0, args.rows).to_pandas()
    text = (t.review_headline.fillna("") + " " + t.review_body.fillna("")).str.lower()
    text = text.str.replace(X.HTML_RE, " ", regex=True)
    toks = [[w for w in re.split(r"[^\w']+", x) if w and w != "'" and w not in stop] for x in text]
    arr = pa.array(toks, pa.list_(pa.string()))
    n_tok = sum(map(len, toks))
    tagger = get_tagger()
    X.analyze_arrow(arr, tagger, 3, 3)  # warm the caches of both paths
    X._pos_lemma_batches(arr.to_pandas(), False)
    for r in range(args.repeats):
        t0 = time.process_time()
        out = X._pos_lemma_batches(arr.to_pandas(), False)
        pa.Table.from_pandas(out)
        t1 = time.process_time()
        X.analyze_arrow(arr, tagger, 3, 3)
        t2 = time.process_time()
        a, b = t1 - t0, t2 - t1
        print(f"round {r}: per-row UDF {a / len(toks) * 1e6:.1f} us/review ({a / n_tok * 1e6:.2f} us/token); "
              f"Arrow per distinct word {b / len(toks) * 1e6:.1f} us/review ({b / n_tok * 1e6:.2f} us/token); "
              f"{a / b:.1f}x", flush=True)
    print(f"{len(toks):,} reviews, {n_tok:,} tokens after stop words")
    return 0


if __name__ == "__main__":
    sys.exit(main())
