"""Blockwise top-k cosine against a dense numpy reference and against Spark's own tools."""
from __future__ import annotations

import numpy as np
import pytest

from reviewrec.recommend import similarity

MAX_PAIRS = 1_000_000  # products per chunk: larger than these matrices

pytestmark = pytest.mark.spark


def _matrix(n_rows: int = 30, n_cols: int = 20, density: float = 0.25, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = (rng.random((n_rows, n_cols)) < density) * rng.integers(1, 6, (n_rows, n_cols))
    m[7] = 0  # a row with no entries has no neighbours
    return m.astype(float)


def _dense_topk(m: np.ndarray, k: int, shrink: float = 0.0) -> dict[int, list[tuple[int, float]]]:
    norms = np.sqrt((m * m).sum(1))
    dots = m @ m.T
    sims = dots / (np.outer(norms, norms) + shrink + 1e-300)
    out = {}
    for r in range(m.shape[0]):
        cand = [(-round(sims[r, c], similarity.TIE_DECIMALS), c) for c in range(m.shape[0])
                if c != r and dots[r, c] != 0]
        cand.sort()
        if cand:
            out[r] = [(c, sims[r, c]) for _, c in cand[:k]]
    return out


def _entries(spark, m: np.ndarray):
    rows = [(int(r), int(c), float(m[r, c])) for r, c in zip(*np.nonzero(m), strict=False)]
    return spark.createDataFrame(rows, "row long, col long, value double")


def _as_dict(df) -> dict[int, list[tuple[int, float]]]:
    out: dict[int, list[tuple[int, float]]] = {}
    for r in sorted(df.collect(), key=lambda x: (x[similarity.ROW], -round(x[similarity.SIM], similarity.TIE_DECIMALS),
                                                 x[similarity.NEIGHBOR])):
        out.setdefault(int(r[similarity.ROW]), []).append((int(r[similarity.NEIGHBOR]), float(r[similarity.SIM])))
    return out


def _assert_same(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for r in want:
        assert [c for c, _ in got[r]] == [c for c, _ in want[r]], f"row {r}"
        np.testing.assert_allclose([s for _, s in got[r]], [s for _, s in want[r]], rtol=1e-9)


def test_topk_per_row_orders_by_sim_then_neighbor() -> None:
    rows = np.array([0, 0, 0, 0, 1, 1])
    nbrs = np.array([5, 3, 9, 4, 2, 8])
    sims = np.array([0.5, 0.9, 0.5, 0.1, 0.3, 0.7])
    r, n, s = similarity.topk_per_row(rows, nbrs, sims, 2)
    assert list(zip(r.tolist(), n.tolist(), strict=False)) == [(0, 3), (0, 5), (1, 8), (1, 2)]
    np.testing.assert_allclose(s, [0.9, 0.5, 0.7, 0.3])


def _reference_topk(rows, nbrs, sims, k):
    """The definition, by full sort: (row asc, rounded sim desc, nbr asc), first k per row."""
    order = np.lexsort((nbrs, -np.round(sims, similarity.TIE_DECIMALS), rows))
    out, seen = [], {}
    for i in order:
        r = int(rows[i])
        if seen.get(r, 0) < k:
            seen[r] = seen.get(r, 0) + 1
            out.append((r, int(nbrs[i]), float(sims[i])))
    return out


@pytest.mark.parametrize("seed,k,levels", [(0, 1, 3), (1, 3, 4), (2, 5, 1000), (3, 20, 2), (4, 7, 50)])
def test_topk_per_row_selection_equals_full_sort(seed: int, k: int, levels: int) -> None:
    # unsorted rows of very different lengths (1 .. 3000 entries) and many exact ties
    # (few similarity levels): the partition threshold and the tie fill by neighbour index
    # must reproduce the full sort exactly
    rng = np.random.default_rng(seed)
    lengths = np.r_[rng.integers(1, 12, 60), rng.integers(12, 400, 15), [3000]]
    rows = np.repeat(np.arange(lengths.size) * 3 + 1000, lengths)
    nbrs = rng.permutation(rows.size).astype(np.int64)
    sims = rng.integers(0, levels, rows.size) / levels - 0.3 + 1e-14 * rng.random(rows.size)
    perm = rng.permutation(rows.size)
    rows, nbrs, sims = rows[perm], nbrs[perm], sims[perm]
    r, n, s = similarity.topk_per_row(rows, nbrs, sims, k)
    assert list(zip(r.tolist(), n.tolist(), s.tolist(), strict=False)) == _reference_topk(rows, nbrs, sims, k)
    r2, n2, s2 = similarity.topk_per_row(rows, nbrs, sims, k, ordered=False)
    assert sorted(zip(r2.tolist(), n2.tolist(), strict=False)) == sorted(zip(r.tolist(), n.tolist(), strict=False))


@pytest.mark.parametrize("block_size,k,max_pairs", [(7, 4, 5_000_000), (30, 4, 5_000_000), (4, 30, 3), (64, 1, 50)])
def test_matches_dense_numpy_cosine(spark, block_size: int, k: int, max_pairs: int) -> None:
    m = _matrix()
    got = similarity.topk_similarity(_entries(spark, m),
                            similarity.SimilarityParams(k=k, block_size=block_size, max_pairs=max_pairs, partitions=3))
    _assert_same(_as_dict(got), _dense_topk(m, k))


def test_shrinkage_and_negative_values(spark) -> None:
    m = _matrix(seed=11)
    centred = np.where(m != 0, m - 3.0, 0.0)  # mean-centred style data: negative cosines exist
    got = similarity.topk_similarity(_entries(spark, centred),
                                     similarity.SimilarityParams(k=5, block_size=8, max_pairs=MAX_PAIRS, shrink=2.5))
    want = _dense_topk(centred, 5, shrink=2.5)
    _assert_same(_as_dict(got), want)
    assert any(s < 0 for v in want.values() for _, s in v)


def test_equals_blockmatrix_multiply_and_column_similarities(spark) -> None:
    from pyspark.mllib.linalg.distributed import CoordinateMatrix, MatrixEntry

    m = _matrix(seed=5)
    k = 6
    norms = np.sqrt((m * m).sum(1))
    # Rows pre-normalised, so R R^T is the cosine matrix (BlockMatrix multiplies, nothing more).
    unit = [MatrixEntry(int(r), int(c), float(m[r, c] / norms[r])) for r, c in zip(*np.nonzero(m), strict=False)]
    bm = CoordinateMatrix(spark.sparkContext.parallelize(unit), m.shape[0], m.shape[1]).toBlockMatrix(8, 8)
    prod = bm.multiply(bm.transpose()).toCoordinateMatrix().entries.map(lambda e: (int(e.i), int(e.j), float(e.value)))
    want_bm = similarity.topk_from_similarities(spark.createDataFrame(prod, "row long, neighbor long, sim double"), k)

    # columnSimilarities compares columns: transpose so users are columns; exact (no threshold).
    raw = [MatrixEntry(int(c), int(r), float(m[r, c])) for r, c in zip(*np.nonzero(m), strict=False)]
    upper = (CoordinateMatrix(spark.sparkContext.parallelize(raw), m.shape[1], m.shape[0])
             .toRowMatrix().columnSimilarities())
    pairs = upper.entries.flatMap(lambda e: [(int(e.i), int(e.j), float(e.value)),
                                             (int(e.j), int(e.i), float(e.value))])
    want_cs = similarity.topk_from_similarities(spark.createDataFrame(pairs, "row long, neighbor long, sim double"), k)

    got = _as_dict(similarity.topk_similarity(_entries(spark, m),
                                              similarity.SimilarityParams(k=k, block_size=9, max_pairs=MAX_PAIRS)))
    _assert_same(got, _as_dict(want_bm))
    _assert_same(got, _as_dict(want_cs))
    _assert_same(got, _dense_topk(m, k))


def test_degree_cap_is_approximate_and_recall_is_measured(spark) -> None:
    m = _matrix(n_rows=40, n_cols=10, density=0.6, seed=9)
    e = _entries(spark, m)
    exact = similarity.topk_similarity(e, similarity.SimilarityParams(k=5, block_size=16, max_pairs=MAX_PAIRS))
    approx = similarity.topk_similarity(e, similarity.SimilarityParams(k=5, block_size=16, max_pairs=MAX_PAIRS,
                                                                       max_column_degree=8))
    recall = similarity.topk_recall(approx, exact)
    assert 0.0 < recall < 1.0
    assert similarity.topk_recall(exact, exact) == 1.0
    capped = similarity.cap_column_degree(e, 8).groupBy("col").count().agg({"count": "max"}).first()[0]
    assert capped == 8


def test_bad_column_index_is_named(spark) -> None:
    e = spark.createDataFrame([(0, 0, 1.0), (1, 5, 1.0)], "row long, col long, value double")
    with pytest.raises(Exception, match="column index 5 outside"):
        similarity.topk_similarity(e, similarity.SimilarityParams(k=2, block_size=1, max_pairs=MAX_PAIRS), n_rows=2,
                                   n_cols=3).collect()
