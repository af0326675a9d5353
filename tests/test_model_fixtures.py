"""Tiny features fixtures for the model tests, and tests of the stand-in features builder.

`literal_reviews` makes canonical reviews whose words carry the star (each star has its own
words, neighbouring stars share some), so a model can learn them in a few epochs.
"""
from __future__ import annotations

import datetime as dt
import json
import os

import numpy as np
import pytest

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


def make_features(spark, root: str, n: int = 600, seq_len: int = 12, seed: int = 0) -> dict:
    """Write <root>/features and <root>/features_meta with the stand-in builder; returns meta."""
    from reviewrec.model import standin

    feats, meta = standin.build(spark, literal_reviews(spark, n, seed), seq_len=seq_len, vocab_size=200,
                                min_count=1, num_features=1 << 10)
    standin.write(spark, root, feats, meta)
    return meta


@pytest.mark.spark
def test_standin_writes_the_features_contract(spark, tmp_path):
    from reviewrec.model import contract as C

    root = str(tmp_path / "run")
    meta = make_features(spark, root, n=200, seq_len=8)
    loaded = C.load_meta(os.path.join(root, C.FEATURES_META))
    assert loaded.seq_len == 8 and loaded.vocab_size == meta["vocab_size"]
    assert loaded.vocab["<pad>"] == 0 and loaded.vocab["<oov>"] == 1
    df = spark.read.parquet(os.path.join(root, C.FEATURES))
    for col in ("review_id", "customer_id", "product_id", "user_idx", "item_idx", "tfidf", "seq",
                "label", "label_onehot", "star_rating", "review_date", "split"):
        assert col in df.columns, col
    rows = df.select("seq", "label", "star_rating", "label_onehot", "split", "review_date").collect()
    assert {len(r["seq"]) for r in rows} == {8}
    assert all(r["label"] == r["star_rating"] - 1 and r["label_onehot"][r["label"]] == 1
               and sum(r["label_onehot"]) == 1 for r in rows)
    # time split: every test review is at least as late as every train review
    last_train = max(r["review_date"] for r in rows if r["split"] == "train")
    first_test = min(r["review_date"] for r in rows if r["split"] == "test")
    assert first_test >= last_train
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    assert C.split_files(os.path.join(root, C.FEATURES), "train")
    # the first word of review R00000 maps to its vocabulary id
    with open(os.path.join(root, C.FEATURES_META, "vocab.json")) as fh:
        vocab = json.load(fh)
    first = df.filter("review_id = 'R00000'").select("seq").first()["seq"]
    assert first[0] == vocab.get(literal_reviews(spark, 200, 0).filter("review_id='R00000'")
                                 .first()["review_headline"], 1)
