"""The recommend job measuring its own top-N lists on held-out interactions.

Two splits of the time-ordered events (rankers.interaction_events):

    leave_last_out  each user's last item is the test item and the one before it the validation
                    item; the history is everything before the target (users with >= 3 items;
                    the protocol of SASRec and its successors on 5-core data)
    time            the features job's time split by review date: the latest `test_fraction`
                    of the reviews are the test set and the `test_fraction` before them the
                    validation set; the history is everything before the phase's cut, the
                    targets are the held-out items of users with a history, items that exist in
                    the history and that the user has not rated before

`auto` takes leave_last_out when every user and every item has at least 5 interactions (5-core
data), time otherwise. For each phase every ranker is refitted on the history alone and ranks
all items (seen items excluded); popularity is always scored beside it. Figures: HR@10, NDCG@10,
Recall@20, coverage@10 (distinct items in the top-10 lists / items) and liked HR@10, the HR@10
over the targets rated at least `liked_min_rating` (their users only).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from reviewrec import schema as S
from reviewrec.features import transforms as X
from reviewrec.recommend import cf, rankers
from reviewrec.recommend.ids import I, U
from reviewrec.recommend.metrics import ranking_metrics
from reviewrec.recommend.params import RecommendParams

log = logging.getLogger(__name__)

CORE = 5


def is_five_core(events: DataFrame, core: int = CORE) -> bool:
    """True when every user and every item has at least `core` distinct interactions."""
    pairs = events.select(U, I).distinct()
    u = pairs.groupBy(U).count().agg(F.min("count")).first()[0]
    i = pairs.groupBy(I).count().agg(F.min("count")).first()[0]
    return u is not None and u >= core and i >= core


def resolve_split(events: DataFrame, split: str) -> str:
    if split != "auto":
        return split
    return "leave_last_out" if is_five_core(events) else "time"


def holdout(events: DataFrame, split: str, phase: str,
            test_fraction: float) -> tuple[DataFrame, DataFrame, dict[str, Any]]:
    """(history events u, i, pos, n, value, review_date; targets u, i, value; info) of one phase."""
    if split == "leave_last_out":
        cut = 2 if phase == "valid" else 1
        e = events.where(F.col(rankers.N) >= 3)
        hist = e.where(F.col(rankers.POS) < F.col(rankers.N) - cut).withColumn(rankers.N, F.col(rankers.N) - cut)
        truth = e.where(F.col(rankers.POS) == F.col(rankers.N) - cut).select(U, I, cf.VALUE)
        return hist, truth, {"target": "second-to-last item" if phase == "valid" else "last item"}
    if split != "time":
        raise ValueError(f"split {split!r}; choose leave_last_out or time")
    parts, info = X.time_split(events, 1.0 - 2 * test_fraction, test_fraction)
    held = S.SPLIT_VAL if phase == "valid" else S.SPLIT_TEST
    before = [S.SPLIT_TRAIN] if phase == "valid" else [S.SPLIT_TRAIN, S.SPLIT_VAL]
    hist = (parts.where(F.col(S.SPLIT).isin(before)).drop(S.SPLIT)
            .withColumn(rankers.N, F.count(F.lit(1)).over(Window.partitionBy(U)).cast("int")))
    truth = (parts.where(F.col(S.SPLIT) == held)
             .groupBy(U, I).agg(F.max(cf.VALUE).alias(cf.VALUE))
             .join(hist.select(U).distinct(), on=U, how="inner")
             .join(hist.select(I).distinct(), on=I, how="inner")
             .join(hist.select(U, I), on=[U, I], how="left_anti"))
    until = info["train_until"] if phase == "valid" else info["val_until"]
    return hist, truth, {"history_until": until, "target": f"{held} reviews"}


def evaluate_rankers(events: DataFrame, p: RecommendParams, n_users: int, n_items: int,
                     methods: Sequence[str] | None = None, phases: Sequence[str] | None = None) -> dict[str, Any]:
    """Ranking figures of `methods` (default: the configured ranker and popularity) per phase."""
    ev = p.evaluate
    methods = list(dict.fromkeys(methods or (p.ranker, "popularity")))
    split = resolve_split(events, ev.split)
    out: dict[str, Any] = {"split": split, "ranker": p.ranker, "top_n": max(p.top_n, 20), "phases": {}}
    for phase in phases or ev.phases:
        hist, truth, info = holdout(events, split, phase, ev.test_fraction)
        hist = hist.cache()
        truth = truth.cache()
        liked = truth.where(F.col(cf.VALUE) >= ev.liked_min_rating).cache()
        res: dict[str, Any] = {**info, "history_events": hist.count(), "targets": truth.count(),
                               "liked_targets": liked.count(), "methods": {}, "seconds": {}}
        for m in methods:
            t0 = time.perf_counter()
            ranking = rankers.recommend(hist, m, p.ranking, max(p.top_n, 20), n_users, n_items,
                                        p.block_size, p.max_pairs)
            recs = ranking.recs.cache()
            full = ranking_metrics(recs, truth, (10, 20), n_items)
            row = {k: full[k] for k in ("HR@10", "NDCG@10", "Recall@20", "coverage@10", "users")}
            lk = ranking_metrics(recs, liked, (10,)) if res["liked_targets"] else {"HR@10": float("nan"), "users": 0}
            row["liked_HR@10"], row["liked_users"] = lk["HR@10"], lk["users"]
            res["methods"][m] = row
            res["seconds"][m] = round(time.perf_counter() - t0, 1)
            recs.unpersist()
            ranking.release()
            log.info("ranking %s %s (%s): %s", split, phase, m, {k: round(v, 4) for k, v in row.items()})
        out["phases"][phase] = res
        for df in (hist, truth, liked):
            df.unpersist()
    return out
