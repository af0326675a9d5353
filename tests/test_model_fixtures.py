"""Small features for the model and recommender tests, written by the features job itself.

`literal_reviews` makes canonical reviews whose words carry the star (each star has its own
words, neighbouring stars share some), so a model can learn them in a few epochs; their tokens
are the review's words. `make_features` runs the real features job (reviewrec.features.job) on
them, so the model tests read exactly what the pipeline writes: features, vocab.json, indexers.
"""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

# A network small enough to train in seconds on CPU (the Horovod and recommender tests).
TINY_MODEL = {
    "model.embedding_dim": 8, "model.lstm_units": 8, "model.bidirectional": "false",
    "model.user_buckets": 64, "model.item_buckets": 32, "model.user_embedding_dim": 4,
    "model.item_embedding_dim": 4, "model.batch_size": 32, "model.learning_rate": 0.01,
}
FILLER = ["the", "app", "it", "and", "a", "this", "software", "was", "i", "to", "for", "program"]
STAR_WORDS = {
    1: ["awful", "refund", "crash", "useless", "worst", "scam"],
    2: ["poor", "buggy", "slow", "disappointing", "crash", "meh"],
    3: ["okay", "average", "fine", "meh", "decent", "mixed"],
    4: ["good", "solid", "useful", "nice", "decent", "recommend"],
    5: ["excellent", "perfect", "love", "great", "amazing", "recommend"],
}


def literal_reviews(spark, n: int = 600, seed: int = 0):
    """n canonical reviews over ~2 years; text words depend on the star rating."""
    from reviewrec import schema as S

    rng = np.random.RandomState(seed)
    stars = rng.choice([1, 2, 3, 4, 5], size=n, p=[0.2, 0.1, 0.1, 0.2, 0.4])
    rows = []
    start = dt.date(2014, 1, 1)
    for k in range(n):
        s = int(stars[k])
        words = [str(rng.choice(STAR_WORDS[s])) if rng.rand() < 0.6 else str(rng.choice(FILLER))
                 for _ in range(rng.randint(5, 15))]
        rows.append((
            "US", f"C{rng.randint(0, 60)}", f"R{k:05d}", f"P{rng.randint(0, 15)}", None, "title",
            "Digital_Software", s, 0, 0, False, True, words[0], " ".join(words[1:]),
            start + dt.timedelta(days=int(k * 700 / n)),
        ))
    return spark.createDataFrame(rows, S.REVIEWS_SCHEMA)


def literal_tokens(reviews):
    """The `tokens` dataset of `reviews`: headline + body words as lemmas (the words are lemmas)."""
    from pyspark.sql import functions as F

    from reviewrec import schema as S

    words = F.split(F.concat_ws(" ", F.col(S.REVIEW_HEADLINE), F.col(S.REVIEW_BODY)), " ")
    return reviews.select(S.REVIEW_ID, words.alias(S.LEMMAS), F.array().cast("array<string>").alias(S.POS))


def make_features(spark, root: str, n: int = 600, seq_len: int = 12, seed: int = 0) -> dict:
    """<root>/reviews and tokens from literal_reviews, then the features job; its summary."""
    from reviewrec import io
    from reviewrec.config import load_config
    from reviewrec.features.job import run

    reviews = literal_reviews(spark, n, seed)
    io.write_parquet_atomic(reviews, io.dataset_path(root, "reviews"))
    io.write_parquet_atomic(literal_tokens(reviews), io.dataset_path(root, "tokens"))
    cfg = load_config([str(REPO / "conf" / "local.yaml")],
                      [f"run.root={root}", f"features.seq_len={seq_len}", "features.min_count=1",
                       "features.num_features=1024", "features.files_per_split=2"])
    return run(spark, cfg)


@pytest.mark.spark
def test_make_features_writes_what_the_model_reads(spark, tmp_path):
    """The fixture is the features job's output: FeaturesMeta sizes match the rows, every split
    has files, ids and sequences follow the vocabulary and the indexers."""
    from reviewrec import io
    from reviewrec import schema as S
    from reviewrec.features import meta as M

    root = str(tmp_path / "run")
    summary = make_features(spark, root, n=200, seq_len=8)
    meta = M.read(os.path.join(root, S.FEATURES_META))
    assert meta.seq_len == 8 and meta.vocab_size == len(meta.vocab) + 2 == summary["vocab_size"]
    assert sorted(meta.vocab.values()) == list(range(2, meta.vocab_size))
    for split in S.SPLITS:
        assert M.split_files(os.path.join(root, S.FEATURES), split), split
    df = io.read_dataset(spark, os.path.join(root, S.FEATURES), "features")
    rows = df.collect()
    assert {len(r[S.SEQ]) for r in rows} == {8}
    train = [r for r in rows if r[S.SPLIT] == S.SPLIT_TRAIN]
    assert max(r[S.USER_IDX] for r in train) == meta.num_users - 1  # seen ids: 0..num_users-1
    assert max(r[S.ITEM_IDX] for r in train) == meta.num_items - 1
    # the first word of review R00000 maps to its vocabulary id
    first = next(r for r in rows if r[S.REVIEW_ID] == "R00000")[S.SEQ][0]
    headline = literal_reviews(spark, 200, 0).filter("review_id = 'R00000'").first()[S.REVIEW_HEADLINE]
    assert first == meta.vocab[headline]
    assert os.path.isdir(os.path.join(root, S.FEATURES_META, M.USER_INDEXER, "metadata"))
