"""The Keras network and the id bucketing shared by training and scoring.

Inputs (the paper's feature set): the token-id sequence of the lemmatized review and the
label-encoded customer and product ids. Architecture:

    seq  -> Embedding(vocab, E, mask_zero) [-> SpatialDropout1D] -> (Bi)LSTM(U) -> pooling -> Dropout ─┐
    user -> bucket -> Embedding(user_buckets, Du) -> Flatten ───────────────────────────────────────┼─ concat ->
    item -> bucket -> Embedding(item_buckets, Di) -> Flatten ───────────────────────────────────────┤
   [seq  -> bigram ids -> Embedding(ngram_buckets, Dn) ─ masked mean ┐                               │
    token embeddings ─────────────────────────────────── masked mean ┴ concat -> Dropout ────────────┘]
        [-> Dense(hidden_units, relu) -> Dropout] -> Dense(5, softmax)

`model.ensemble_size` k > 1 trains k such networks (seeds seed..seed+k-1) and saves one model
whose output is the mean of their softmax outputs (build_ensemble).

`embedding_dropout` (SpatialDropout1D: whole embedding channels dropped for a review, padding
mask kept), the hidden layer and the n-gram bag are off by default (0).

The n-gram bag (`ngram_buckets` > 0) is a fastText-style wide branch beside the LSTM: every pair
of adjacent real tokens (a, b) is hashed to 1 + (a * vocab_size + b) mod (ngram_buckets - 1)
(0 = a pair touching padding, excluded), the review is the mean of those bigram embeddings and
of its token embeddings. It carries the phrase-level evidence ("not good", "five star") that a
TF-IDF (1-2 gram) model uses, at the cost of one embedding lookup per position.

`pooling` picks what the text branch hands on: "last" = the LSTM's final state (per direction,
padding skipped), "max"/"mean" = max/mean of the LSTM outputs over the non-padding steps, or
"last_max"/"last_mean"/"last_max_mean" = those concatenated. The masked pooling is made of
plain TensorFlow ops in the functional graph (no custom layer), so model.keras loads without
custom objects. A sequence that is all padding (the "empty" sequence the recommender scores
unrated cells with) gives zeros from every pooling, so its prediction rests on the ids alone;
`text_dropout` trains that case.

Customer/product ids are bucketed: bucket 0 is "unseen" (an index outside the indexer the
features job fitted on the training split, or a negative one), known ids are hashed into
buckets 1..B-1 (identity when the index fits). During training a fraction `id_dropout` of ids
is sent to bucket 0 so that the "unseen" embedding is trained: in a time split most test
customers are new.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from reviewrec.schema import NUM_STAR_CLASSES


@dataclass(frozen=True)
class NetParams:
    """The network's shape (conf `model:`, built by spec.net_from_config; sizes from the features)."""

    vocab_size: int
    seq_len: int
    embedding_dim: int
    lstm_units: int
    bidirectional: bool
    dropout: float
    user_buckets: int
    item_buckets: int
    user_embedding_dim: int
    item_embedding_dim: int
    pooling: str
    embedding_dropout: float
    hidden_units: int
    ngram_buckets: int
    ngram_dim: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bucket_ids(idx: np.ndarray, known: int, buckets: int) -> np.ndarray:
    """Index -> embedding row: 0 for unseen (idx < 0 or idx >= known), else 1 + idx mod (B-1)."""
    idx = np.asarray(idx, dtype=np.int64)
    seen = (idx >= 0) & (idx < known)
    return np.where(seen, 1 + np.mod(np.maximum(idx, 0), max(buckets - 1, 1)), 0).astype(np.int32)


def drop_ids(b: np.ndarray, rate: float, rng: np.random.RandomState) -> np.ndarray:
    """Send a fraction `rate` of bucketed ids to the 'unseen' bucket 0 (training only)."""
    if rate <= 0:
        return b
    return np.where(rng.random_sample(b.shape[0]) < rate, 0, b).astype(np.int32)


def drop_text(seq: np.ndarray, rate: float, rng: np.random.RandomState) -> np.ndarray:
    """Replace a fraction `rate` of rows by the empty sequence (all padding; training only)."""
    if rate <= 0:
        return seq
    keep = rng.random_sample(seq.shape[0]) >= rate
    return np.where(keep[:, None], seq, 0).astype(seq.dtype)


POOLINGS = ("last", "max", "mean", "last_max", "last_mean", "last_max_mean")


def _pool(tf: Any, seq: Any, outputs: Any, last: Any, how: str) -> Any:
    """Masked pooling over the LSTM outputs (batch, T, H); padding steps (seq == 0) excluded.
    All-padding rows give 0 for max and mean (as `last` gives the zero initial state)."""
    if how not in POOLINGS:
        raise ValueError(f"model.pooling = {how!r}: choose one of {POOLINGS}")
    parts = [last] if how.startswith("last") else []
    mask = tf.expand_dims(tf.cast(tf.not_equal(seq, 0), tf.float32), -1)  # (batch, T, 1)
    if "max" in how:
        # LSTM outputs lie in (-1, 1): padding steps are pushed to -2 so they never win; rows
        # with no real step are zeroed.
        shifted = outputs * mask + (mask - 1.0) * 2.0
        parts.append(tf.reduce_max(shifted, axis=1) * tf.reduce_max(mask, axis=1))
    if "mean" in how:
        parts.append(tf.reduce_sum(outputs * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0))
    return parts[0] if len(parts) == 1 else tf.keras.layers.Concatenate(name="pool_concat")(parts)


def bigram_ids(tf: Any, seq: Any, vocab_size: int, buckets: int) -> Any:
    """(batch, T) token ids -> (batch, T-1) int64 bigram buckets in 1..buckets-1; 0 where either
    token of the pair is padding."""
    a = tf.cast(seq[:, :-1], tf.int64)
    b = tf.cast(seq[:, 1:], tf.int64)
    # Tensor operand first in every op: a saved model rebuilds `1 + t` as add(int32 1, t).
    h = tf.math.floormod(a * vocab_size + b, buckets - 1) + 1
    return h * tf.cast((a > 0) & (b > 0), tf.int64)


def _masked_mean(tf: Any, x: Any, ids: Any) -> Any:
    """Mean of x (batch, T, D) over the steps where ids != 0; 0 for a row with none."""
    m = tf.expand_dims(tf.cast(tf.not_equal(ids, 0), tf.float32), -1)
    return tf.reduce_sum(x * m, axis=1) / tf.maximum(tf.reduce_sum(m, axis=1), 1.0)


def _inputs(L: Any, p: NetParams) -> tuple[Any, Any, Any]:
    """The network's inputs: the token-id sequence and the bucketed customer and product ids."""
    return (L.Input(shape=(p.seq_len,), dtype="int32", name="seq"), L.Input(shape=(1,), dtype="int32", name="user"),
            L.Input(shape=(1,), dtype="int32", name="item"))


def build_model(p: NetParams, name: str = "star_lstm") -> Any:
    """The uncompiled Keras (tf.keras 2.x) model with inputs `seq`, `user`, `item`."""
    import tensorflow as tf

    L = tf.keras.layers
    seq, user, item = _inputs(L, p)
    if p.ngram_buckets == 1 or p.ngram_buckets < 0:
        raise ValueError(f"model.ngram_buckets = {p.ngram_buckets}: 0 (off) or >= 2")
    emb = L.Embedding(p.vocab_size, p.embedding_dim, mask_zero=True, name="tok_emb")(seq)
    x = emb
    if p.embedding_dropout > 0:
        x = L.SpatialDropout1D(p.embedding_dropout, name="emb_dropout")(x)
    if p.pooling == "last":
        rnn = L.LSTM(p.lstm_units, name="lstm")
        x = L.Bidirectional(rnn, name="bilstm")(x) if p.bidirectional else rnn(x)
    else:
        rnn = L.LSTM(p.lstm_units, return_sequences=True, return_state=True, name="lstm")
        if p.bidirectional:
            outs, fh, _, bh, _ = L.Bidirectional(rnn, name="bilstm")(x)
            last = L.Concatenate(name="last_state")([fh, bh])
        else:
            outs, last, _ = rnn(x)
        x = _pool(tf, seq, outs, last, p.pooling)
    x = L.Dropout(p.dropout, name="dropout")(x)
    u = L.Flatten(name="user_flat")(L.Embedding(p.user_buckets, p.user_embedding_dim, name="user_emb")(user))
    i = L.Flatten(name="item_flat")(L.Embedding(p.item_buckets, p.item_embedding_dim, name="item_emb")(item))
    parts = [x, u, i]
    if p.ngram_buckets > 0:
        bi = bigram_ids(tf, seq, p.vocab_size, p.ngram_buckets)
        bag = L.Concatenate(name="bag_concat")([
            _masked_mean(tf, L.Embedding(p.ngram_buckets, p.ngram_dim, name="bigram_emb")(bi), bi),
            _masked_mean(tf, emb, seq)])
        parts.append(L.Dropout(p.dropout, name="bag_dropout")(bag))
    h = L.Concatenate(name="concat")(parts)
    if p.hidden_units > 0:
        h = L.Dropout(p.dropout, name="hidden_dropout")(L.Dense(p.hidden_units, activation="relu", name="hidden")(h))
    out = L.Dense(NUM_STAR_CLASSES, activation="softmax", name="stars")(h)
    return tf.keras.Model(inputs=[seq, user, item], outputs=out, name=name)


def build_ensemble(p: NetParams, member_weights: list[list[np.ndarray]]) -> Any:
    """One Keras model, inputs `seq`, `user`, `item` as build_model's, whose output is the mean of
    the members' star distributions: member j (the nested model "member_<j>", j from 1) is
    build_model(p) with member_weights[j-1]. Saved and loaded like a single network."""
    import tensorflow as tf

    if len(member_weights) < 2:
        raise ValueError(f"an ensemble needs >= 2 members, got {len(member_weights)}")
    L = tf.keras.layers
    seq, user, item = _inputs(L, p)
    outs = []
    for j, w in enumerate(member_weights, start=1):
        member = build_model(p, name=f"member_{j}")
        member.set_weights(w)
        outs.append(member([seq, user, item]))
    out = L.Average(name="stars_mean")(outs)
    return tf.keras.Model(inputs=[seq, user, item], outputs=out, name="star_lstm_ensemble")


def make_optimizer(name: str, learning_rate: float) -> Any:
    """A legacy tf.keras optimizer (what hvd.DistributedOptimizer wraps in TF 2.15)."""
    import tensorflow as tf

    opts = {
        "rmsprop": tf.keras.optimizers.legacy.RMSprop,
        "adam": tf.keras.optimizers.legacy.Adam,
        "sgd": tf.keras.optimizers.legacy.SGD,
    }
    return opts[name](learning_rate=learning_rate)


def class_weights(counts: np.ndarray) -> dict[int, float]:
    """Balanced class weights n / (k * n_c) from global per-class counts (absent classes -> 0)."""
    counts = np.asarray(counts, dtype=np.float64)
    n, k = counts.sum(), (counts > 0).sum()
    return {c: float(n / (k * counts[c])) if counts[c] > 0 else 0.0 for c in range(len(counts))}


def expected_rating(probs: np.ndarray) -> np.ndarray:
    """sum_s p(star = s) * s over stars 1..5."""
    return probs @ np.arange(1, NUM_STAR_CLASSES + 1, dtype=np.float64)
