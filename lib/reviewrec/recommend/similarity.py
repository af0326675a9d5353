"""Blockwise sparse cosine similarity keeping only the top-k neighbours of every row.

Input: entries (row, col, value) of a sparse matrix R whose rows are the objects to compare
(users for user-CF, items for item-CF) with contiguous 0-based row and column indices.
Output: (row, neighbor, sim) with at most k neighbours per row, where

    sim(r, s) = <R_r, R_s> / (|R_r| |R_s| + shrink)        (shrink = 0: plain cosine)

How (the design's "never the dense N x N"):
  1. rows are cut into row blocks of `block_size`; each block is packed into one scipy CSR
     matrix inside a grouped pandas UDF (Arrow, one record per block);
  2. the RDD of blocks is fanned out to block pairs (a, b) for every b, keyed by (a, b), and
     `repartitionAndSortWithinPartitions` sends all pairs of row block a to one task, block a
     itself first (key (a, -1));
  3. that task streams the b blocks one at a time: R_a R_b^T is a sparse product, computed in
     row chunks bounded by `max_pairs` products (an upper bound computed from column degrees),
     and only the top-k of every row survive each merge. Task memory is one a block, one b
     block, one chunk of products and the (block_size x k) running top-k: never N x N.

Why the RDD for step 2-3: the records are a few multi-megabyte blocks; an RDD partition is an
iterator that hands them over one at a time, with an explicit partitioner and sort order.
A pandas UDF would batch many such records into one Arrow batch (and the batch size is a
session setting read at execution time, out of this function's control). Blocks are built and
results exploded with Arrow (pandas UDFs), so no per-entry Python objects are created.

Ties: neighbours are ordered by similarity rounded to 1e-12 (descending), then by neighbour
index (ascending); the same rule is used by the reference implementations in the tests and
benchmarks, so "identical top-k" is well defined in the presence of equal cosines.

Approximate mode: `max_column_degree` keeps at most that many (deterministically sampled)
entries per column before multiplying (popular items dominate the cost: sum of squared
column degrees), and `threshold` drops similarities below it. `topk_recall` measures what
that loses against the exact top-k.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

log = logging.getLogger(__name__)

ROW = "row"
COL = "col"
VALUE = "value"
NEIGHBOR = "neighbor"
SIM = "sim"
BLOCK = "block"
TIE_DECIMALS = 12

PACKED_SCHEMA = T.StructType([
    T.StructField(BLOCK, T.IntegerType(), False),
    T.StructField("indptr", T.BinaryType(), False),
    T.StructField("indices", T.BinaryType(), False),
    T.StructField("data", T.BinaryType(), False),
])
TOPK_PAYLOAD_SCHEMA = T.StructType([
    T.StructField(BLOCK, T.IntegerType(), False),
    T.StructField("rows", T.BinaryType(), False),
    T.StructField("nbrs", T.BinaryType(), False),
    T.StructField("sims", T.BinaryType(), False),
])
NEIGHBORS_SCHEMA = T.StructType([
    T.StructField(ROW, T.LongType(), False),
    T.StructField(NEIGHBOR, T.LongType(), False),
    T.StructField(SIM, T.DoubleType(), False),
])


@dataclass(frozen=True)
class SimilarityParams:
    """k: neighbours kept per row; block_size: rows per block; shrink: added to the norm
    product; max_pairs: products per chunk (memory bound of a task); partitions: tasks of the
    pair stage (default: one per row block, at most 4 per default parallelism); approximate
    mode: max_column_degree, threshold."""

    k: int
    block_size: int
    max_pairs: int
    shrink: float = 0.0
    partitions: int | None = None
    max_column_degree: int | None = None
    threshold: float | None = None
    seed: int = 7

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size}")
        if self.shrink < 0:
            raise ValueError(f"shrink must be >= 0, got {self.shrink}")
        if self.max_pairs < 1:
            raise ValueError(f"max_pairs must be >= 1, got {self.max_pairs}")


# -- numpy kernels (pure; unit-tested without Spark) -------------------------------------------

def _group_by_row(rows: np.ndarray) -> np.ndarray | None:
    """A stable order that groups equal rows (None when they already are ascending).

    Rows of one block span < 2^16 values, so the sort is numpy's radix sort on uint16: O(n)."""
    if rows.size < 2 or bool(np.all(rows[1:] >= rows[:-1])):
        return None
    lo = int(rows.min())
    span = int(rows.max()) - lo
    keys = rows - lo
    if span < 2**16:
        keys = keys.astype(np.uint16)
    return np.argsort(keys, kind="stable")


def _kth_largest(values: np.ndarray, starts: np.ndarray, counts: np.ndarray, k: int) -> np.ndarray:
    """The k-th largest value of each segment values[starts[i]:starts[i]+counts[i]] (counts > k).

    Segments are padded to the next power of two of their length and np.partition'ed row-wise
    (O(n) selection instead of sorting); bucketing by length keeps the padding under 2x."""
    out = np.empty(counts.size, dtype=values.dtype)
    width = np.left_shift(1, np.ceil(np.log2(counts)).astype(np.int64))
    for w in np.unique(width):
        sel = np.flatnonzero(width == w)
        c = counts[sel]
        pad = np.full((sel.size, int(w)), -np.inf)
        r = np.repeat(np.arange(sel.size), c)
        pos = np.arange(r.size) - np.repeat(np.cumsum(c) - c, c)
        pad[r, pos] = values[np.repeat(starts[sel], c) + pos]
        out[sel] = -np.partition(-pad, k - 1, axis=1)[:, k - 1]
    return out


def topk_per_row(rows: np.ndarray, nbrs: np.ndarray, sims: np.ndarray, k: int, ordered: bool = True
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the k best (row, nbr, sim) triples of every row: sim desc (rounded), nbr asc.

    Linear-time selection: rows are grouped (radix sort), the k-th largest rounded similarity of
    every row longer than k is found by a row-wise partition, entries above it are kept and the
    ties at it are broken by neighbour index. `ordered` sorts the kept triples by (row, sim desc,
    nbr asc); intermediate merges skip that."""
    if rows.size == 0:
        return rows, nbrs, sims
    order = _group_by_row(rows)
    if order is not None:
        rows, nbrs, sims = rows[order], nbrs[order], sims[order]
    key = np.round(sims, TIE_DECIMALS)
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    counts = np.diff(np.r_[starts, rows.size])
    big = np.flatnonzero(counts > k)
    if big.size:
        seg = np.repeat(np.arange(starts.size), counts)
        thr = np.full(starts.size, -np.inf)
        thr[big] = _kth_largest(key, starts[big], counts[big], k)
        t = thr[seg]
        above = key > t
        keep = above | np.isneginf(t)
        tie = np.flatnonzero(key == t)
        if tie.size:
            # rows longer than k: fill up to k with the smallest neighbours among the ties
            need = k - np.bincount(seg[above], minlength=starts.size)
            o = tie[np.lexsort((nbrs[tie], seg[tie]))]
            s = seg[o]
            first = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
            rank = np.arange(o.size) - np.repeat(first, np.diff(np.r_[first, o.size]))
            keep[o[rank < need[s]]] = True
        rows, nbrs, sims, key = rows[keep], nbrs[keep], sims[keep], key[keep]
    if ordered:
        o = np.lexsort((nbrs, -key, rows))
        rows, nbrs, sims = rows[o], nbrs[o], sims[o]
    return rows, nbrs, sims


def row_chunks(bound: np.ndarray, max_pairs: int) -> Iterator[tuple[int, int]]:
    """Split rows into consecutive ranges whose summed product bound stays <= max_pairs."""
    n = bound.size
    start = 0
    while start < n:
        cum = np.cumsum(bound[start:])
        stop = start + max(1, int(np.searchsorted(cum, max_pairs, side="right")))
        yield start, stop
        start = stop


def pattern(m: Any) -> Any:
    """The CSR matrix's stored entries as int64 ones (explicit zeros included): pattern(A) @ d
    sums d over each row's columns, e.g. an upper bound of a row's products."""
    import scipy.sparse as sp

    return sp.csr_matrix((np.ones(m.indices.size, np.int64), m.indices, m.indptr), shape=m.shape)


def block_pair_topk(a: Any, a_norm: np.ndarray, b: Any, b_norm: np.ndarray, a_offset: int, b_offset: int,
                    k: int, shrink: float, threshold: float | None, max_pairs: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k of A B^T per row of A (CSR blocks), as global (row, nbr, sim); self pairs dropped."""
    bt = b.T.tocsr()
    deg = np.diff(bt.indptr).astype(np.int64)  # rows of B sharing each column
    bound = pattern(a) @ deg
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for r0, r1 in row_chunks(bound, max_pairs):
        if bound[r0:r1].sum() == 0:
            continue
        p = (a[r0:r1] @ bt).tocsr()
        local = np.repeat(np.arange(r0, r1, dtype=np.int64), np.diff(p.indptr))
        cols = p.indices.astype(np.int64)
        dots = p.data
        keep = dots != 0
        if a_offset == b_offset:
            keep &= local != cols
        local, cols, dots = local[keep], cols[keep], dots[keep]
        sims = dots / (a_norm[local] * b_norm[cols] + shrink)
        if threshold is not None:
            ok = sims >= threshold
            local, cols, sims = local[ok], cols[ok], sims[ok]
        out.append(topk_per_row(local + a_offset, cols + b_offset, sims, k, ordered=False))
    if not out:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0)
    return tuple(np.concatenate(x) for x in zip(*out, strict=True))  # type: ignore[return-value]


def _row_norms(m: Any) -> np.ndarray:
    return np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())


def unpack(payload: tuple[bytes, bytes, bytes], block_size: int, n_cols: int) -> Any:
    """One packed row block (pack_rows) as a scipy CSR matrix of block_size x n_cols."""
    import scipy.sparse as sp

    indptr = np.frombuffer(payload[0], dtype=np.int64)
    indices = np.frombuffer(payload[1], dtype=np.int32)
    data = np.frombuffer(payload[2], dtype=np.float64)
    return sp.csr_matrix((data, indices, indptr), shape=(block_size, n_cols))


# -- Spark stages ------------------------------------------------------------------------------

def _pack_fn(block_size: int, n_cols: int):  # noqa: ANN202 - returns a pandas UDF body
    def pack(pdf: pd.DataFrame) -> pd.DataFrame:
        import scipy.sparse as sp

        block = int(pdf[BLOCK].iloc[0])
        local = pdf[ROW].to_numpy(np.int64) - block * block_size
        cols = pdf[COL].to_numpy(np.int64)
        if cols.size and (cols.min() < 0 or cols.max() >= n_cols):
            bad = int(cols[(cols < 0) | (cols >= n_cols)][0])
            raise ValueError(f"blockwise similarity: column index {bad} outside [0, {n_cols}) in row block {block}")
        m = sp.csr_matrix((pdf[VALUE].to_numpy(np.float64), (local, cols)), shape=(block_size, n_cols))
        m.sum_duplicates()
        return pd.DataFrame({
            BLOCK: [block],
            "indptr": [m.indptr.astype(np.int64).tobytes()],
            "indices": [m.indices.astype(np.int32).tobytes()],
            "data": [m.data.astype(np.float64).tobytes()],
        })
    return pack


def _pair_topk_fn(block_size: int, n_cols: int, params: SimilarityParams):  # noqa: ANN202
    def run(it: Iterable[tuple[tuple[int, int], tuple[bytes, bytes, bytes]]]) -> Iterator[tuple[Any, ...]]:
        cur: int | None = None
        a = a_norm = None
        # candidates of the current row block: merged into one top-k when they exceed `budget`
        # triples (and at the end), not after every block pair: each merge is linear in its input
        pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        budget = max(params.max_pairs, 4 * block_size * params.k)

        def merge(ordered: bool) -> None:
            if len(pending) > 1 or ordered:
                merged = topk_per_row(*(np.concatenate(x) for x in zip(*pending, strict=True)), params.k,
                                      ordered=ordered)
                pending[:] = [merged]

        def flush() -> Iterator[tuple[Any, ...]]:
            if cur is not None and pending:
                merge(ordered=True)
                rows, nbrs, sims = pending[0]
                if rows.size:
                    yield (cur, rows.tobytes(), nbrs.tobytes(), sims.tobytes())

        for (ablk, bblk), payload in it:
            if ablk != cur:
                yield from flush()
                cur, a, a_norm = ablk, None, None
                pending.clear()
            if bblk < 0:
                a = unpack(payload, block_size, n_cols)
                a_norm = _row_norms(a)
                continue
            if a is None:  # row block a has no entries at all: nothing to compare
                continue
            b = unpack(payload, block_size, n_cols)
            new = block_pair_topk(a, a_norm, b, _row_norms(b), ablk * block_size, bblk * block_size,
                                  params.k, params.shrink, params.threshold, params.max_pairs)
            pending.append(new)
            if sum(x[0].size for x in pending) > budget:
                merge(ordered=False)
        yield from flush()
    return run


def _explode(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    for pdf in batches:
        for rows, nbrs, sims in zip(pdf["rows"], pdf["nbrs"], pdf["sims"], strict=True):
            yield pd.DataFrame({
                ROW: np.frombuffer(rows, dtype=np.int64),
                NEIGHBOR: np.frombuffer(nbrs, dtype=np.int64),
                SIM: np.frombuffer(sims, dtype=np.float64),
            })


def pack_rows(entries: DataFrame, block_size: int, n_cols: int) -> DataFrame:
    """Entries (row, col, value; duplicates summed) as one CSR record per block of `block_size`
    rows: block, indptr (int64), indices (int32), data (float64), as bytes (unpack reads one)."""
    return (entries
            .withColumn(BLOCK, (F.col(ROW) / F.lit(block_size)).cast("int"))
            .groupBy(BLOCK)
            .applyInPandas(_pack_fn(block_size, n_cols), PACKED_SCHEMA))


def cap_column_degree(entries: DataFrame, max_degree: int, seed: int = 7,
                      col_row: str = ROW, col_col: str = COL) -> DataFrame:
    """Keep at most `max_degree` entries per column, chosen by a seeded hash (deterministic)."""
    w = Window.partitionBy(col_col).orderBy(F.xxhash64(F.col(col_row), F.lit(seed)), F.col(col_row))
    return (entries
            .withColumn("_n", F.row_number().over(w))
            .where(F.col("_n") <= max_degree)
            .drop("_n"))


def topk_similarity(entries: DataFrame, params: SimilarityParams, n_rows: int | None = None,
                    n_cols: int | None = None, col_row: str = ROW, col_col: str = COL,
                    col_value: str = VALUE) -> DataFrame:
    """Top-k most similar rows of every row of the sparse matrix given as entries.

    Input columns: `col_row` (long, 0..n_rows-1), `col_col` (long, 0..n_cols-1), `col_value`
    (double; duplicates are summed). Output: row (long), neighbor (long), sim (double); a row
    appears with up to k neighbours with nonzero similarity, never with itself.
    """
    spark = entries.sparkSession
    e = entries.select(F.col(col_row).cast("long").alias(ROW), F.col(col_col).cast("long").alias(COL),
                       F.col(col_value).cast("double").alias(VALUE))
    if n_rows is None or n_cols is None:
        agg = e.agg(F.max(ROW).alias("r"), F.max(COL).alias("c"), F.min(ROW).alias("r0"),
                    F.min(COL).alias("c0")).first()
        if agg is None or agg["r"] is None:
            return spark.createDataFrame([], NEIGHBORS_SCHEMA)
        if agg["r0"] < 0 or agg["c0"] < 0:
            raise ValueError(f"blockwise similarity: negative index (min row {agg['r0']}, min col {agg['c0']})")
        n_rows = n_rows if n_rows is not None else int(agg["r"]) + 1
        n_cols = n_cols if n_cols is not None else int(agg["c"]) + 1
    if params.max_column_degree is not None:
        e = cap_column_degree(e, params.max_column_degree, params.seed)
    bs = min(params.block_size, max(1, n_rows))
    n_blocks = math.ceil(n_rows / bs)
    parts = params.partitions or max(1, min(n_blocks, 4 * spark.sparkContext.defaultParallelism))
    log.info("blockwise top-%d similarity: %d rows x %d cols, %d row blocks of %d, %d pair tasks",
             params.k, n_rows, n_cols, n_blocks, bs, parts)
    packed = pack_rows(e, bs, n_cols)
    blocks = packed.rdd.map(lambda r: (int(r[BLOCK]), (bytes(r["indptr"]), bytes(r["indices"]), bytes(r["data"]))))
    pairs = blocks.flatMap(
        lambda kv: [((kv[0], -1), kv[1])] + [((a, kv[0]), kv[1]) for a in range(n_blocks)])
    topk = (pairs
            .repartitionAndSortWithinPartitions(numPartitions=parts, partitionFunc=lambda key: key[0])
            .mapPartitions(_pair_topk_fn(bs, n_cols, params)))
    payload = spark.createDataFrame(topk, TOPK_PAYLOAD_SCHEMA)
    return payload.mapInPandas(_explode, NEIGHBORS_SCHEMA)


def topk_from_similarities(sims: DataFrame, k: int, col_row: str = ROW, col_nbr: str = NEIGHBOR,
                           col_sim: str = SIM) -> DataFrame:
    """Top-k per row of a (row, neighbor, sim) table with the same tie rule as topk_similarity.

    Used on the output of Spark's own BlockMatrix / columnSimilarities to compare; zero
    similarities and self pairs are not neighbours.
    """
    w = Window.partitionBy(col_row).orderBy(F.round(F.col(col_sim), TIE_DECIMALS).desc(), F.col(col_nbr))
    return (sims
            .where((F.col(col_sim) != 0) & (F.col(col_row) != F.col(col_nbr)))
            .withColumn("_rank", F.row_number().over(w))
            .where(F.col("_rank") <= k)
            .select(F.col(col_row).alias(ROW), F.col(col_nbr).alias(NEIGHBOR), F.col(col_sim).alias(SIM)))


def topk_recall(approx: DataFrame, exact: DataFrame) -> float:
    """Share of exact (row, neighbor) pairs that the approximate top-k also found."""
    n_exact = exact.count()
    if n_exact == 0:
        return 1.0
    hit = exact.join(approx.select(ROW, NEIGHBOR), on=[ROW, NEIGHBOR], how="inner").count()
    return hit / n_exact
