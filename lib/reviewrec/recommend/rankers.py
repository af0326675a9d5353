"""Top-N rankers: item-CF, user-CF, their blend and popularity, ranked by interaction scores.

Input is the users' time-ordered interactions (`interaction_events`):

    events   u, i, pos (0-based, by review date then review id), n (events of the user),
             value (the star), review_date

Every ranker scores on binary interactions (a user rated an item or not), never on a predicted
star, so it works the same on explicit and on implicit data:

    item_cf     score(u, j) = sum over the user's items i of w(u, i) * (cos(i, j)
                + transition_weight * c(i -> j) / (c(i) + transition_shrink)): the top item_k
                neighbours of each item by shrunk cosine (blockwise, recommend.similarity), a
                recency weight w = exp(-(steps from the user's latest item) / recency_tau), and
                the next-item transitions of all users' sequences (each item's top item_k
                successors)
    user_cf     score(u, i) = sum over the top user_k neighbours v of u (shrunk cosine; at most
                max_item_degree sampled raters per item when set) who have i of cos(u, v)
    blend       blend_user_weight * user_cf + (1 - blend_user_weight) * item_cf, each divided by
                the user's maximum
    popularity  the items with the most users

Lists are padded with popular items and exclude what the user has seen. Output of `recommend`:
u, rank, i, score, source.

`rerank` re-orders a ranker's top-M candidates by a predicted star (recsys.rerank): it never adds
an item the ranker did not propose.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pyspark import Broadcast
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from reviewrec import schema as S
from reviewrec.recommend import cf, similarity
from reviewrec.recommend.ids import I, U, IdIndex
from reviewrec.recommend.params import RANKERS, RankingParams
from reviewrec.recommend.similarity import BLOCK, COL, NEIGHBOR, ROW, SIM, VALUE, SimilarityParams

log = logging.getLogger(__name__)

POS = "pos"
N = "n"
SOURCES = {"item_cf": cf.SRC_ITEM_CF, "user_cf": cf.SRC_USER_CF, "blend": cf.SRC_BLEND, "popularity": cf.SRC_POPULAR}


def interaction_events(reviews: DataFrame, index: IdIndex) -> DataFrame:
    """reviews (customer_id, product_id, star_rating, review_date, review_id) -> events u, i, pos,
    n, value, review_date: each user's reviews in time order (ties by review id)."""
    order = Window.partitionBy(U).orderBy(F.col(S.REVIEW_DATE), F.col(S.REVIEW_ID))
    return (reviews
            .join(index.users, on=S.CUSTOMER_ID, how="inner")
            .join(index.items, on=S.PRODUCT_ID, how="inner")
            .select(U, I, F.col(S.STAR_RATING).cast("double").alias(cf.VALUE), S.REVIEW_DATE, S.REVIEW_ID)
            .withColumn(POS, (F.row_number().over(order) - 1).cast("int"))
            .withColumn(N, F.count(F.lit(1)).over(Window.partitionBy(U)).cast("int"))
            .select(U, I, POS, N, cf.VALUE, S.REVIEW_DATE))


def interaction_popularity(events: DataFrame) -> DataFrame:
    """i, score = the number of distinct users with the item."""
    return events.select(U, I).distinct().groupBy(I).agg(F.count(F.lit(1)).cast("double").alias(cf.SCORE))


@dataclass
class Ranking:
    """The top-N lists of one ranker and what they are computed from: cached frames and the
    broadcast neighbour matrices (release() when the lists are written)."""

    recs: DataFrame
    cached: list[DataFrame] = field(default_factory=list)
    broadcasts: list[Broadcast] = field(default_factory=list)

    def release(self) -> None:
        for df in self.cached:
            df.unpersist()
        for bc in self.broadcasts:
            bc.destroy()
        self.broadcasts.clear()


def _similarity(k: int, shrink: float, block_size: int, max_pairs: int,
                max_column_degree: int = 0) -> SimilarityParams:
    return SimilarityParams(k=k, block_size=block_size, max_pairs=max_pairs, shrink=float(shrink),
                            max_column_degree=max_column_degree or None)


def item_similarity(events: DataFrame, binary: DataFrame, rp: RankingParams, n_users: int, n_items: int,
                    block_size: int, max_pairs: int) -> DataFrame:
    """Item-CF's item x item weights: row=i, neighbor=j, sim = the top item_k shrunk cosines
    (blockwise) + transition_weight * the top item_k next-item transitions of i."""
    inb = cf.item_neighbors(binary, _similarity(rp.item_k, rp.item_shrink, block_size, max_pairs), n_items, n_users)
    if rp.transition_weight:
        inb = cf.add_neighbors(inb, cf.transition_neighbors(events, rp.transition_shrink, col_pos=POS, k=rp.item_k),
                               rp.transition_weight)
    return inb


def user_similarity(binary: DataFrame, rp: RankingParams, n_users: int, n_items: int, block_size: int,
                    max_pairs: int) -> DataFrame:
    """User-CF's top user_k neighbours by shrunk cosine (blockwise; at most rp.max_item_degree
    raters per item when set): row=u, neighbor=v, sim."""
    return cf.user_neighbors(binary, _similarity(rp.user_k, rp.user_shrink, block_size, max_pairs,
                                                 rp.max_item_degree), n_users, n_items)


def collect_csr(entries: DataFrame, n_rows: int, n_cols: int, block_size: int) -> Any:
    """entries (row, neighbor, sim) as one scipy CSR matrix n_rows x n_cols on the driver, packed
    in row blocks by the executors (Arrow) so the driver receives a few byte strings, not rows."""
    import scipy.sparse as sp

    e = entries.select(F.col(ROW), F.col(NEIGHBOR).alias(COL), F.col(SIM).alias(VALUE))
    blocks = {int(r[BLOCK]): similarity.unpack((r["indptr"], r["indices"], r["data"]), block_size, n_cols)
              for r in similarity.pack_rows(e, block_size, n_cols).collect()}
    rows_in = lambda b: max(0, min(block_size, n_rows - b * block_size))  # noqa: E731 - rows of block b
    for b in sorted(blocks):
        beyond = np.flatnonzero(np.diff(blocks[b].indptr)[rows_in(b):])
        if beyond.size:
            raise ValueError(f"neighbour matrix: row {b * block_size + rows_in(b) + int(beyond[0])} "
                             f"outside [0, {n_rows})")
    empty = sp.csr_matrix((block_size, n_cols))
    parts = [blocks.pop(b, empty)[:rows_in(b)] for b in range(max(1, -(-n_rows // block_size)))]
    return sp.vstack(parts, format="csr")


def _drop(p: Any, seen: Any) -> Any:
    """p (scores, all > 0) without the entries where the binary `seen` has one."""
    hit = p.multiply(seen)
    if hit.nnz:
        p = (p - hit).tocsr()
        p.eliminate_zeros()
    return p


def score_block(hist: Any, nbrs: Any | None, item_w: Any | None, user_r: Any | None, ranker: str, n: int,
                user_weight: float, max_pairs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-n (local row, item, score) of one block of users, seen items excluded.

    hist: the users' item weights (rows x items; its pattern is what they have seen);
    item_w: item x item weights (item_cf, blend); nbrs: the users' neighbour similarities
    (rows x users) and user_r: the binary user x item matrix (user_cf, blend). item_cf = hist @
    item_w, user_cf = nbrs @ user_r, blend = user_weight * user_cf / its row maximum + (1 -
    user_weight) * item_cf / its row maximum. Rows are scored in chunks whose product count
    (bounded from row degrees) stays within max_pairs; ties: the lower item first.
    """
    import scipy.sparse as sp

    seen = similarity.pattern(hist)
    use_item = ranker in ("item_cf", "blend")
    use_user = ranker in ("user_cf", "blend") and nbrs is not None
    bound = np.zeros(hist.shape[0], np.int64)
    if use_item:
        bound += seen @ np.diff(item_w.indptr)
    if use_user:
        bound += similarity.pattern(nbrs) @ np.diff(user_r.indptr)
    out = []
    for r0, r1 in similarity.row_chunks(bound, max_pairs):
        if bound[r0:r1].sum() == 0:
            continue
        parts = []
        if use_item:
            parts.append((1.0 - user_weight if ranker == "blend" else 1.0,
                          _drop((hist[r0:r1] @ item_w).tocsr(), seen[r0:r1])))
        if use_user:
            parts.append((user_weight if ranker == "blend" else 1.0,
                          _drop((nbrs[r0:r1] @ user_r).tocsr(), seen[r0:r1])))
        if ranker == "blend":
            scaled = []
            for w, p in parts:
                top = np.asarray(abs(p).max(axis=1).todense()).ravel()
                scaled.append(sp.diags(np.where(top > 0, w / np.where(top > 0, top, 1.0), 0.0)) @ p)
            total = scaled[0] if len(scaled) == 1 else scaled[0] + scaled[1]
        else:
            total = parts[0][1]
        total = total.tocsr()
        rows = np.repeat(np.arange(r0, r1, dtype=np.int64), np.diff(total.indptr))
        out.append(similarity.topk_per_row(rows, total.indices.astype(np.int64), total.data, n))
    if not out:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return tuple(np.concatenate(x) for x in zip(*out, strict=True))  # type: ignore[return-value]


CSR_PARTS = ("indptr", "indices", "data")
SCORES_SCHEMA = T.StructType([T.StructField(U, T.LongType(), False), T.StructField(I, T.LongType(), False),
                              T.StructField(cf.SCORE, T.DoubleType(), False)])


def _score_fn(ranker: str, n: int, block_size: int, n_users: int, n_items: int, item_bc: Broadcast | None,
              user_bc: Broadcast | None, user_weight: float, max_pairs: int):  # noqa: ANN202 - a mapInPandas body
    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        item_w = item_bc.value if item_bc is not None else None
        user_r = user_bc.value if user_bc is not None else None
        for pdf in batches:
            for rec in pdf.itertuples(index=False):
                hist = similarity.unpack((rec.indptr, rec.indices, rec.data), block_size, n_items)
                nbrs = (similarity.unpack((rec.n_indptr, rec.n_indices, rec.n_data), block_size, n_users)
                        if isinstance(rec.n_indptr, (bytes, bytearray)) else None)
                rows, items, scores = score_block(hist, nbrs, item_w, user_r, ranker, n, user_weight, max_pairs)
                yield pd.DataFrame({U: rows + int(rec.block) * block_size, I: items, cf.SCORE: scores})
    return run


def recommend(events: DataFrame, ranker: str, rp: RankingParams, n: int, n_users: int, n_items: int,
              block_size: int, max_pairs: int) -> Ranking:
    """Top-n lists of `ranker` for every user in `events`: u, rank, i, score, source.

    Scored items come first by score (ties: item index), then popular items (most users first).
    The neighbour matrices are computed blockwise (recommend.similarity), collected on the
    driver and broadcast: item_cf's item x item weights (at most 2 * item_k per item) and
    user_cf's binary user x item matrix; each block of `block_size` users is then scored with
    sparse products in its task (score_block), which keeps its top n.
    """
    if ranker not in RANKERS:
        raise ValueError(f"ranker {ranker!r}; choose one of {RANKERS}")
    binary = events.groupBy(U, I).agg(F.lit(1.0).alias(cf.VALUE)).cache()
    popular = interaction_popularity(events).cache()
    out = Ranking(recs=None, cached=[binary, popular])  # type: ignore[arg-type]
    seen = binary.select(U, I)
    sc = binary.sparkSession.sparkContext
    if ranker == "popularity":  # nothing scored, every list is padding
        scores = binary.sparkSession.createDataFrame([], SCORES_SCHEMA)
    else:
        def share(entries: DataFrame, n_rows: int, n_cols: int, what: str) -> Broadcast:
            m = collect_csr(entries, n_rows, n_cols, block_size)
            log.info("%s: %s %d x %d, %d entries (%.0f MiB) broadcast", ranker, what, n_rows, n_cols, m.nnz, _mib(m))
            out.broadcasts.append(sc.broadcast(m))
            return out.broadcasts[-1]

        item_bc = user_bc = None
        if ranker in ("item_cf", "blend"):
            item_bc = share(item_similarity(events, binary, rp, n_users, n_items, block_size, max_pairs),
                            n_items, n_items, "item x item weights")
        blocks = similarity.pack_rows(cf.recency_weights(events, rp.recency_tau, col_pos=POS, col_len=N)
                                      .select(F.col(U).alias(ROW), F.col(I).alias(COL), VALUE), block_size, n_items)
        if ranker in ("user_cf", "blend"):
            user_bc = share(binary.select(F.col(U).alias(ROW), F.col(I).alias(NEIGHBOR), F.col(cf.VALUE).alias(SIM)),
                            n_users, n_items, "user x item matrix")
            nb = similarity.pack_rows(user_similarity(binary, rp, n_users, n_items, block_size, max_pairs)
                                      .select(ROW, F.col(NEIGHBOR).alias(COL), F.col(SIM).alias(VALUE)),
                                      block_size, n_users)
            blocks = blocks.join(nb.select(BLOCK, *[F.col(c).alias(f"n_{c}") for c in CSR_PARTS]), on=BLOCK,
                                 how="left")
        else:  # no neighbour blocks: nothing to join
            blocks = blocks.select("*", *[F.lit(None).cast("binary").alias(f"n_{c}") for c in CSR_PARTS])
        scores = blocks.mapInPandas(_score_fn(ranker, n, block_size, n_users, n_items, item_bc, user_bc,
                                              rp.blend_user_weight, max_pairs), SCORES_SCHEMA)
    out.recs = cf.top_n(scores, n, SOURCES[ranker], seen=seen, popular=popular)
    return out


def _mib(m: Any) -> float:
    return (m.data.nbytes + m.indices.nbytes + m.indptr.nbytes) / 2**20


STAR = "star"
KEEP = "_keep"


def rerank(recs: DataFrame, stars: DataFrame, n: int, weight: float, min_star: float = 0.0,
           candidates: int | None = None, default_star: float = 3.0) -> DataFrame:
    """The ranker's lists re-ordered by a predicted star: top n per user of

        (1 - weight) * (1 - (rank - 1) / M) + weight * (star - 1) / 4

    over the candidates with rank <= M (`candidates`, default: every row of `recs`), those
    predicted below `min_star` after the others; ties keep the ranker's order. recs: u, rank, i,
    score, source (rankers.recommend); stars: u, i, star (a pair without one takes
    `default_star`). Output u, rank, i, score (the combined score), source (the ranker's).
    weight 0 and min_star 0 give the ranker's own top n.
    """
    r = recs if candidates is None else recs.where(F.col(cf.RANK) <= candidates)
    m = float(candidates) if candidates is not None else None
    width = F.lit(m) if m is not None else F.max(F.col(cf.RANK)).over(Window.partitionBy(U)).cast("double")
    star = F.coalesce(F.col(STAR), F.lit(float(default_star)))
    combined = (F.lit(1.0 - weight) * (F.lit(1.0) - (F.col(cf.RANK) - F.lit(1.0)) / width)
                + F.lit(float(weight)) * (star - F.lit(1.0)) / F.lit(4.0))
    scored = (r.join(stars.select(U, I, F.col(STAR).cast("double").alias(STAR)), on=[U, I], how="left")
              .withColumn(KEEP, F.when(star >= F.lit(float(min_star)), F.lit(0)).otherwise(F.lit(1)))
              .withColumn("_c", combined))
    w = Window.partitionBy(U).orderBy(F.col(KEEP), F.col("_c").desc(), F.col(cf.RANK))
    return (scored.withColumn("_r", F.row_number().over(w))
            .where(F.col("_r") <= n)
            .select(U, F.col("_r").cast("int").alias(cf.RANK), I, F.col("_c").alias(cf.SCORE), cf.SOURCE))
