"""Single-machine (scipy) reference and tuning grid for Beauty 5-core leave-last-out ranking.

    .venv/bin/python benchmarks/bench_recsys_beauty_scipy.py --phase valid \
        "user:k=50" "user:k=100,sh=10" "item:k=200,sh=50,tau=2" "blend:k=100,sh=10,ki=200,shi=50,tau=2,bl=0.3"

Same protocol as bench_recsys_beauty.py (history excluded, full ranking over all items, ties
broken by popularity) but in one process, so a grid of CF variants runs in seconds: used to
tune on the validation item and to reproduce the "plain scipy user-kNN" anchor ("user:k=50").
Parameters: k / ki neighbours (user / item), sh / shi shrinkage, tau recency (item-CF history
weight exp(-(steps from the end)/tau), 0 = off), bl user weight of the blend, tb weight of the
"next item" transition probability added to the item similarity (shrunk by tsh).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))
from reviewrec.recommend.similarity import block_pair_topk  # noqa: E402

DATA = REPO / ".." / "shared" / "data" / "amazon_beauty_5core" / "Beauty.txt"


def split(data: str, phase: str) -> tuple[list[list[int]], list[int], int]:
    seqs = [[int(x) for x in line.split()[1:]] for line in open(data) if line.strip()]
    cut = 2 if phase == "valid" else 1
    n_items = max(max(s) for s in seqs) + 1
    return [s[:-cut] for s in seqs], [s[-cut] for s in seqs], n_items


def matrices(hist: list[list[int]], n_items: int, tau: float) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    rows, cols, w = [], [], []
    for u, s in enumerate(hist):
        n = len(s)
        for p, i in enumerate(s):
            rows.append(u)
            cols.append(i)
            w.append(1.0 if tau <= 0 else float(np.exp(-(n - 1 - p) / tau)))
    x = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(hist), n_items))
    x.data[:] = 1.0  # binary even when an item repeats
    weights = sp.csr_matrix((w, (rows, cols)), shape=(len(hist), n_items))
    return x, weights


def topk_sim(x: sp.csr_matrix, k: int, shrink: float) -> sp.csr_matrix:
    """The same kernel the Spark job runs per block pair, on the whole matrix at once."""
    norm = np.sqrt(np.asarray(x.multiply(x).sum(1)).ravel())
    r, c, s = block_pair_topk(x, norm, x, norm, 0, 0, k, shrink, None, 20_000_000)
    return sp.csr_matrix((s, (r, c)), shape=(x.shape[0], x.shape[0]))


def transitions(hist: list[list[int]], n_items: int, shrink: float) -> sp.csr_matrix:
    """T[i, j] = c(i -> j) / (c(i) + shrink): j directly after i in a user's history (j != i)."""
    rows = [s[p] for s in hist for p in range(len(s) - 1)]
    cols = [s[p + 1] for s in hist for p in range(len(s) - 1)]
    t = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_items, n_items))
    t.setdiag(0)
    t.eliminate_zeros()
    out = np.asarray(t.sum(1)).ravel()
    return sp.diags(1.0 / np.maximum(out + shrink, 1e-12)) @ t


def evaluate(scores: np.ndarray, hist: list[list[int]], target: list[int], pop: np.ndarray) -> dict[str, float]:
    tie = pop / pop.max() * 1e-9  # ties (e.g. zero scores) broken by popularity
    hr10 = nd10 = hr20 = 0.0
    for u in range(len(hist)):
        s = scores[u] + tie
        s[hist[u]] = -np.inf
        s[0] = -np.inf  # ids start at 1
        rank = int((s > s[target[u]]).sum()) + 1
        hr10 += rank <= 10
        nd10 += 1 / np.log2(rank + 1) if rank <= 10 else 0.0
        hr20 += rank <= 20
    n = len(hist)
    return {"HR@10": hr10 / n, "NDCG@10": nd10 / n, "Recall@20": hr20 / n}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DATA), help="sequence file (5-core format)")
    ap.add_argument("--phase", default="valid", choices=("valid", "test"))
    ap.add_argument("specs", nargs="*", default=["pop:", "user:k=50"])
    args = ap.parse_args()
    hist, target, n_items = split(args.data, args.phase)
    x, _ = matrices(hist, n_items, 0)
    pop = np.asarray(x.sum(0)).ravel()
    for spec in args.specs:
        kind, _, rest = spec.partition(":")
        kv = {a.split("=")[0]: float(a.split("=")[1]) for a in rest.split(",") if a}
        t0 = time.perf_counter()
        if kind == "pop":
            sc = np.zeros((len(hist), n_items))
        else:
            tau = kv.get("tau", 0.0)
            x, w = matrices(hist, n_items, tau)
            us = is_ = None
            if kind in ("user", "blend"):
                us = (topk_sim(x, int(kv.get("k", 50)), kv.get("sh", 0.0)) @ x).toarray()
            if kind in ("item", "blend"):
                k_item = int(kv.get("ki", kv.get("k", 200))) if kind == "blend" else int(kv.get("k", 200))
                sh_item = kv.get("shi", 0.0) if kind == "blend" else kv.get("sh", 0.0)
                sim = topk_sim(x.T.tocsr(), k_item, sh_item).T
                if kv.get("tb", 0.0):
                    sim = sim + kv["tb"] * transitions(hist, n_items, kv.get("tsh", 0.0))
                is_ = (w @ sim).toarray()
            if kind == "user":
                sc = us
            elif kind == "item":
                sc = is_
            else:
                bl = kv.get("bl", 0.5)
                us /= np.abs(us).max(1, keepdims=True) + 1e-300
                is_ /= np.abs(is_).max(1, keepdims=True) + 1e-300
                sc = bl * us + (1 - bl) * is_
        m = evaluate(sc, hist, target, pop)
        print(f"{args.phase} {spec:55s} " + " ".join(f"{k} {v:.4f}" for k, v in m.items())
              + f"  ({time.perf_counter() - t0:.0f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
