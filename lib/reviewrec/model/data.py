"""Rank-local reading of the features shards with pyarrow (nothing goes through the driver).

A rank reads the Parquet files i with i % size == rank. When a split has fewer files than
ranks, every rank opens all files and keeps rows i % size == rank instead, so no rank is
ever empty. Only the columns training needs are read.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reviewrec.schema import ITEM_IDX, LABEL, SEQ, USER_IDX

# Columns a training rank reads from the shards; everything else stays on disk.
TRAIN_COLUMNS = (SEQ, USER_IDX, ITEM_IDX, LABEL)


@dataclass
class Arrays:
    seq: np.ndarray    # (n, seq_len) int32
    user: np.ndarray   # (n,) int64 raw user_idx
    item: np.ndarray   # (n,) int64 raw item_idx
    label: np.ndarray  # (n,) int32 in 0..4

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def take(self, idx: np.ndarray) -> Arrays:
        return Arrays(self.seq[idx], self.user[idx], self.item[idx], self.label[idx])


def read_files(files: list[str], seq_len: int) -> Arrays:
    """Read `files` (Parquet, features schema) into numpy arrays; seq padded/cut to seq_len."""
    import pyarrow.parquet as pq

    seqs, users, items, labels = [], [], [], []
    for f in files:
        t = pq.read_table(f, columns=list(TRAIN_COLUMNS))
        if t.num_rows == 0:
            continue
        seqs.append(_seq_matrix(t.column(SEQ).combine_chunks(), seq_len))
        users.append(t.column(USER_IDX).to_numpy(zero_copy_only=False).astype(np.int64))
        items.append(t.column(ITEM_IDX).to_numpy(zero_copy_only=False).astype(np.int64))
        labels.append(t.column(LABEL).to_numpy(zero_copy_only=False).astype(np.int32))
    if not labels:
        return Arrays(np.zeros((0, seq_len), np.int32), np.zeros(0, np.int64), np.zeros(0, np.int64),
                      np.zeros(0, np.int32))
    return Arrays(np.concatenate(seqs), np.concatenate(users), np.concatenate(items), np.concatenate(labels))


def _seq_matrix(col: object, seq_len: int) -> np.ndarray:
    """list<int> Arrow column -> (n, seq_len) int32; rows are fixed length in the contract,
    but a shorter/longer row is padded with 0 / cut rather than failing."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = col if isinstance(col, (pa.ListArray, pa.LargeListArray)) else pa.array(col)
    lengths = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False)
    flat = arr.flatten().fill_null(0).to_numpy(zero_copy_only=False).astype(np.int32)
    n = len(arr)
    if n and (lengths == seq_len).all():
        return flat.reshape(n, seq_len)
    out = np.zeros((n, seq_len), np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    for r in range(n):
        row = flat[offsets[r]:offsets[r + 1]][:seq_len]
        out[r, :len(row)] = row
    return out


def rank_shard(files: list[str], rank: int, size: int, seq_len: int) -> Arrays:
    """This rank's share of a split: whole files when there are enough, else every size-th row."""
    if len(files) >= size:
        return read_files(files[rank::size], seq_len)
    a = read_files(files, seq_len)
    return a.take(np.arange(rank, len(a), size))


def epoch_order(n: int, seed: int, epoch: int, rank: int) -> np.ndarray:
    """The row order of one epoch on one rank: a function of (seed, epoch, rank) only, so a run
    resumed at epoch e sees exactly the batches an uninterrupted run would have seen."""
    return np.random.RandomState((seed * 1_000_003 + epoch * 1009 + rank) % (2**32 - 1)).permutation(n)
