"""The recommender's id space: the features job's StringIndexers, so that the filled matrix,
the neighbours and the rating model all number users and items the same way.

    u = user_idx, i = item_idx   for ids the indexers know (the features' training rows),
    u, i >= the indexer's size   for ids they do not (reviews after the features' training
                                 cut): numbered on from there in id order. The model treats
                                 every index >= its size as "unseen", as the features job's
                                 reserved index is.

When <root>/features_meta holds no indexers (recommend run on reviews without the features
job), they are fitted here exactly as the features job fits them (its split of the reviews
by the `features:` settings, StringIndexer on the training rows), and the log says so; the
numbering is then the one a later features run on the same reviews writes.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.ml.feature import StringIndexerModel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from reviewrec import io
from reviewrec import schema as S
from reviewrec.features import transforms as X
from reviewrec.features.job import FeaturesParams, num_labels, split_rows
from reviewrec.features.meta import ITEM_INDEXER, USER_INDEXER

log = logging.getLogger(__name__)

U = "u"
I = "i"  # noqa: E741


def number_rows(df: DataFrame, order: Sequence[str | Column], col_out: str, start: int) -> DataFrame:
    """df + `col_out` (long): start, start + 1, ... in the (total) order `order`.

    A distributed sort, then zipWithIndex numbers each sorted partition in place: unlike a
    row_number over a Window without partitionBy, no single task receives every row.
    """
    schema = T.StructType(df.schema.fields + [T.StructField(col_out, T.LongType(), False)])
    rdd = df.orderBy(*order).rdd.zipWithIndex().map(lambda t: (*t[0], t[1] + start))
    return df.sparkSession.createDataFrame(rdd, schema)


@dataclass(frozen=True)
class IdIndex:
    """users (customer_id, u), items (product_id, i): every id of the reviews, once.

    n_users / n_items: the size of the index (ids 0..n-1); known_users / known_items: how many
    of them the indexers (so the model) know; source: where the indexers came from."""

    users: DataFrame
    items: DataFrame
    n_users: int
    n_items: int
    known_users: int
    known_items: int
    source: str


def _id_table(reviews: DataFrame, indexer: StringIndexerModel, col_id: str, col_idx: str) -> tuple[DataFrame, int]:
    """(col_id, col_idx) for every distinct id of `reviews`, and the indexer's size."""
    known = num_labels(indexer)
    ids = reviews.select(col_id).where(F.col(col_id).isNotNull()).distinct()
    indexed = (indexer.copy().setInputCol(col_id).setOutputCol("_ix").setHandleInvalid("keep")
               .transform(ids).withColumn("_ix", F.col("_ix").cast("long")))
    seen = indexed.where(F.col("_ix") < known).select(col_id, F.col("_ix").alias(col_idx))
    unseen = number_rows(indexed.where(F.col("_ix") >= known).select(col_id), [col_id], col_idx, known)
    return seen.unionByName(unseen), known


def fit_indexers(reviews: DataFrame, features: FeaturesParams) -> tuple[StringIndexerModel, StringIndexerModel]:
    """The features job's user and item indexers, fitted as it fits them: on the training rows
    of its split (`features:` settings) of `reviews` (which need review_id and review_date)."""
    base, _ = split_rows(reviews, features.split, features.train_fraction, features.val_fraction, features.seed)
    train = base.where(F.col(S.SPLIT) == S.SPLIT_TRAIN)
    return X.fit_indexer(train, S.CUSTOMER_ID, S.USER_IDX), X.fit_indexer(train, S.PRODUCT_ID, S.ITEM_IDX)


def id_index(spark: SparkSession, root: str, reviews: DataFrame, features: FeaturesParams) -> IdIndex:
    """The id index of `reviews`: from <root>/features_meta's indexers, or fitted (see above)."""
    meta = io.dataset_path(root, S.FEATURES_META)
    paths = [f"{meta}/{USER_INDEXER}", f"{meta}/{ITEM_INDEXER}"]
    if all(io.dataset_exists(spark, p) for p in paths):
        users_ix, items_ix = (StringIndexerModel.load(p) for p in paths)
        source = f"the features job's indexers in {meta}"
    else:
        users_ix, items_ix = fit_indexers(reviews, features)
        source = (f"indexers fitted on the {features.split}-split training rows of the reviews "
                  f"(features.train_fraction {features.train_fraction}): {meta} has none (features job not run)")
    users, known_users = _id_table(reviews, users_ix, S.CUSTOMER_ID, U)
    items, known_items = _id_table(reviews, items_ix, S.PRODUCT_ID, I)
    # Checkpointed, not only cached: the tables' lineage holds the indexers with every label (MiBs
    # for a large catalogue), which would otherwise be shipped with each task that reads them.
    users, items = users.localCheckpoint(eager=True), items.localCheckpoint(eager=True)
    n_users = known_users + users.where(F.col(U) >= known_users).count()
    n_items = known_items + items.where(F.col(I) >= known_items).count()
    index = IdIndex(users, items, n_users, n_items, known_users, known_items, source)
    log.info("recommend ids: %s; %d users (%d known to the indexer), %d items (%d known)",
             source, index.n_users, known_users, index.n_items, known_items)
    return index
