"""Blockwise top-k cosine vs Spark's BlockMatrix.multiply vs single-machine scipy, one run.

    .venv/bin/python benchmarks/bench_recsys_blocks.py [--users 8000,20000] [--k 50] [--driver-memory 6g] [--out r.json]

Data: the first --users users of Amazon Beauty 5-core (binary user x item matrix, ~9 items a
user). Every method produces the top-k neighbours of every user (cosine, ties by neighbour
index) and the results are compared pair by pair:

* blockwise: reviewrec.recommend.similarity.topk_similarity (written to Parquet);
* BlockMatrix: rows L2-normalised, CoordinateMatrix -> toBlockMatrix(1024, 1024),
  multiply(transpose) -> dense result blocks; top-k taken from each block in the executors
  (numpy) and merged per user with a window (the cheapest way to get a top-k out of it);
* scipy: one process, the same kernel on a single block (the one-machine limit).

Results are written after each method (BlockMatrix runs last for each size): an out-of-memory
error in BlockMatrix kills the JVM, and is then itself the result.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))

from reviewrec.config import load_config  # noqa: E402
from reviewrec.recommend import similarity  # noqa: E402
from reviewrec.runtime import setup_logging  # noqa: E402
from reviewrec.session import build_session  # noqa: E402

DATA = REPO / ".." / "shared" / "data" / "amazon_beauty_5core" / "Beauty.txt"


def load_entries(data: str, n_users: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The first n_users lines of a 5-core sequence file as binary (user, item) entries."""
    rows, cols = [], []
    with open(data) as fh:
        for u, line in enumerate(fh):
            if u >= n_users:
                break
            items = sorted({int(x) for x in line.split()[1:]})
            rows += [u] * len(items)
            cols += items
    return np.asarray(rows, np.int64), np.asarray(cols, np.int64), max(cols) + 1


def blockmatrix_topk(spark, rows: np.ndarray, cols: np.ndarray, n_cols: int, k: int, bs: int,  # noqa: ANN001, ANN201
                     partitions: int = 8):
    from pyspark.mllib.linalg.distributed import CoordinateMatrix, MatrixEntry

    n_rows = int(rows.max()) + 1
    norms = np.sqrt(np.bincount(rows, minlength=n_rows)).astype(float)
    entries = [MatrixEntry(int(r), int(c), float(1.0 / norms[r])) for r, c in zip(rows, cols, strict=False)]
    bm = (CoordinateMatrix(spark.sparkContext.parallelize(entries, partitions), n_rows, n_cols)
          .toBlockMatrix(bs, bs).cache())
    prod = bm.multiply(bm.transpose())

    def block_topk(kv):  # noqa: ANN001, ANN202
        (bi, bj), m = kv
        a = m.toArray()
        r0, c0 = bi * bs, bj * bs
        out = []
        for r in range(a.shape[0]):
            row = a[r]
            nz = np.flatnonzero(row)
            nz = nz[nz + c0 != r + r0]
            if nz.size == 0:
                continue
            top = nz[np.lexsort((nz, -np.round(row[nz], similarity.TIE_DECIMALS)))[:k]]
            out += [(int(r + r0), int(c + c0), float(row[c])) for c in top]
        return out

    part = spark.createDataFrame(prod.blocks.flatMap(block_topk), "row long, neighbor long, sim double")
    return similarity.topk_from_similarities(part, k)


def scipy_topk(rows: np.ndarray, cols: np.ndarray, n_cols: int, k: int):  # noqa: ANN201
    import scipy.sparse as sp

    n = int(rows.max()) + 1
    m = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n_cols))
    norm = np.sqrt(np.asarray(m.multiply(m).sum(1)).ravel())
    return similarity.block_pair_topk(m, norm, m, norm, 0, 0, k, 0.0, None, 5_000_000)


def compare(a: dict, b: dict) -> dict:
    same_rows = set(a) == set(b)
    diff_pairs = sum(1 for r in a if [n for n, _ in a[r]] != [n for n, _ in b.get(r, [])])
    max_err = max((abs(x - y) for r in a if r in b for (_, x), (_, y) in zip(a[r], b[r], strict=False)), default=0.0)
    return {"same_users": same_rows, "users_with_different_topk": diff_pairs, "max_abs_cosine_diff": max_err}


def as_dict(rows: np.ndarray, nbrs: np.ndarray, sims: np.ndarray) -> dict:
    order = np.lexsort((nbrs, -np.round(sims, similarity.TIE_DECIMALS), rows))
    out: dict = {}
    for r, n, s in zip(rows[order], nbrs[order], sims[order], strict=False):
        out.setdefault(int(r), []).append((int(n), float(s)))
    return out


def read_back(path: str) -> dict:
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    return as_dict(t.column("row").to_numpy(), t.column("neighbor").to_numpy(), t.column("sim").to_numpy())


def one_size(spark, n_users: int, args: argparse.Namespace, tmp: str, emit) -> dict:  # noqa: ANN001
    import pandas as pd

    rows, cols, n_cols = load_entries(args.data, n_users)
    res: dict = {"data": f"Beauty 5-core, first {n_users} users", "users": int(rows.max()) + 1,
                 "items": n_cols, "nnz": int(rows.size), "k": args.k, "bm_block": args.bm_block,
                 "bm_partitions": args.bm_partitions, "driver_memory": args.driver_memory}
    t0 = time.perf_counter()
    ref = as_dict(*scipy_topk(rows, cols, n_cols, args.k))
    res["scipy_s"] = round(time.perf_counter() - t0, 2)
    entries = spark.createDataFrame(pd.DataFrame({"row": rows, "col": cols, "value": np.ones(rows.size)}),
                                    "row long, col long, value double").cache()
    entries.count()
    t0 = time.perf_counter()
    similarity.topk_similarity(entries, similarity.SimilarityParams(k=args.k, block_size=args.block_size,
                                                                    max_pairs=args.max_pairs),
                      n_rows=res["users"], n_cols=n_cols).write.parquet(f"{tmp}/blockwise_{n_users}")
    res["blockwise_s"] = round(time.perf_counter() - t0, 2)
    blockwise = read_back(f"{tmp}/blockwise_{n_users}")
    res["blockwise_vs_scipy"] = compare(blockwise, ref)
    res["blockwise_over_scipy"] = round(res["blockwise_s"] / res["scipy_s"], 2)
    emit(res)  # written before BlockMatrix runs: an OOM there kills the JVM
    if not args.skip_blockmatrix:
        t0 = time.perf_counter()
        try:
            (blockmatrix_topk(spark, rows, cols, n_cols, args.k, args.bm_block, args.bm_partitions)
             .write.parquet(f"{tmp}/bm_{n_users}"))
        except Exception as e:  # noqa: BLE001 - the failure (e.g. Java heap space) is the result
            res["blockmatrix_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
            res["blockmatrix_failed_after_s"] = round(time.perf_counter() - t0, 2)
            emit(res)
            return res
        res["blockmatrix_s"] = round(time.perf_counter() - t0, 2)
        res["blockwise_vs_blockmatrix"] = compare(blockwise, read_back(f"{tmp}/bm_{n_users}"))
        res["speedup_vs_blockmatrix"] = round(res["blockmatrix_s"] / res["blockwise_s"], 2)
        emit(res)
    return res


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", default="20000", help="comma-separated sizes, run in this order")
    ap.add_argument("--data", default=str(DATA), help="sequence file (5-core format)")
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--max-pairs", type=int, default=5_000_000)
    ap.add_argument("--block-size", type=int, default=4096)
    ap.add_argument("--bm-block", type=int, default=1024)
    ap.add_argument("--bm-partitions", type=int, default=8,
                    help="partitions of the BlockMatrix input (its GridPartitioner, and so of multiply's map-side "
                         "combine of dense product blocks: more partitions, less heap per task)")
    ap.add_argument("--skip-blockmatrix", action="store_true")
    ap.add_argument("--driver-memory", default="4g", help="local mode: the one JVM's heap (<= 6g on the shared box)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    setup_logging()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    cfg = load_config([str(REPO / "conf" / "local.yaml")], ["spark.app_name=bench-recsys-blocks",
                                                               f"spark.conf.spark.driver.memory={args.driver_memory}"])
    spark = build_session(cfg)
    tmp = tempfile.mkdtemp(prefix="bench-recsys-")
    results: list[dict] = []

    def emit(res: dict) -> None:
        text = json.dumps([*results, res] if res not in results else results, indent=2)
        print(text, flush=True)
        if args.out:
            Path(args.out).write_text(text + "\n")

    try:
        for n in [int(x) for x in args.users.split(",")]:
            results.append(one_size(spark, n, args, tmp, emit))
            emit(results[-1])
    finally:
        try:
            spark.stop()
        except Exception:  # noqa: BLE001 - the JVM may be gone after an OOM
            pass
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
