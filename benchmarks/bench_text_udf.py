"""CPU time of the Python side of the builtin engine on one Arrow batch: `lemmas_and_pos`
(perceptron decoding of the whole batch, lemmas per distinct (word, label), then the stop-word,
length and repeat filters), as each Spark Arrow batch runs it in a Python worker.

    .venv/bin/python benchmarks/bench_text_udf.py [--input DIR] [--rows 10000] [--repeats 3]

Input: the first `--rows` Digital_Software reviews, headline + body with HTML stripped, split on
non-word characters with the case and the stop words kept (a Python approximation of the
chain's JVM steps: this times only what runs in the Python worker), as one pyarrow list array.
Times are process CPU seconds (one core), warm caches (a first pass loads the model and fills
the per-word caches; its time is printed as the cold pass).
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

    from reviewrec.preprocess import TextParams
    from reviewrec.preprocess.builtin_engine import get_analyzer, lemmas_and_pos
    from reviewrec.preprocess.transforms import HTML_RE

    spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false").getOrCreate()
    stop = frozenset(w.lower() for w in StopWordsRemover.loadDefaultStopWords("english"))
    spark.stop()
    params = TextParams()
    t = pq.read_table(args.input, columns=["review_headline", "review_body"]).slice(0, args.rows).to_pandas()
    text = (t.review_headline.fillna("") + " " + t.review_body.fillna("")).str.replace(HTML_RE, " ", regex=True)
    toks = [[w for w in re.split(r"[^\w']+", x) if w and w != "'"] for x in text]
    arr = pa.array(toks, pa.list_(pa.string()))
    n_tok = sum(map(len, toks))
    t0 = time.process_time()
    analyzer = get_analyzer()
    lem, _ = lemmas_and_pos(arr, analyzer, params.min_token_length, params.max_char_repeat, stop)
    print(f"cold pass (model + lexicon load, caches filled): {time.process_time() - t0:.2f} CPU-s", flush=True)
    for r in range(args.repeats):
        t0 = time.process_time()
        lemmas_and_pos(arr, analyzer, params.min_token_length, params.max_char_repeat, stop)
        dt = time.process_time() - t0
        print(f"round {r}: {dt:.3f} CPU-s per batch, {dt / len(toks) * 1e6:.1f} us/review, "
              f"{dt / n_tok * 1e6:.2f} us/token", flush=True)
    kept = sum(len(x) for x in lem.to_pylist())
    print(f"{len(toks):,} reviews, {n_tok:,} tokens in (stop words kept), {kept:,} lemmas out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
