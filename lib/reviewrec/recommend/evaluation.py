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

On explicit data (the stars differ) each ranker except popularity is also scored re-ranked by a
predicted star (recsys.rerank, rankers.rerank): its top `candidates` items of the target users
re-ordered by a blend with the fill's star (the bias baseline mu + b_u + b_i fitted on the
phase's history with the job's damping; bias + ALS when the job fills with it), for each
setting of the grid `weights` and `min_stars`. The setting with the best liked HR@10 on the
valid phase (the plain ranker when none beats it) is the `<ranker>+rerank` row of every phase
(in `reranked`, beside `methods`);
`discordant` counts the liked-target users it gains and loses against the plain ranker (exact
McNemar p-value). Coverage is not given for re-ranked lists (they are built for target users only).
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from reviewrec import schema as S
from reviewrec.features import transforms as X
from reviewrec.recommend import baseline, cf, rankers
from reviewrec.recommend.ids import I, U
from reviewrec.recommend.metrics import ranking_metrics, ranking_metrics_by
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


PLAIN = "plain"


def is_explicit(events: DataFrame) -> bool:
    """True when the events' stars (value) are not all the same."""
    lo, hi = events.agg(F.min(cf.VALUE), F.max(cf.VALUE)).first()
    return lo is not None and lo != hi


def star_fill(hist: DataFrame, p: RecommendParams, fill: dict[str, Any] | None) -> tuple[str, Any, list[DataFrame]]:
    """(name, pairs (u, i) -> u, i, pred, cached frames): the fill's predicted star fitted on the
    history's stars alone: bias + ALS when the job fills with it, the bias baseline otherwise
    (also for the CF and model fills: the re-rank needs a star for every candidate)."""
    fill = fill or {}
    du = float(fill.get("damping_user", baseline.DEFAULT_DAMPING[0]))
    di = float(fill.get("damping_item", baseline.DEFAULT_DAMPING[1]))
    ratings = hist.groupBy(U, I).agg(F.avg(cf.VALUE).alias(cf.VALUE)).cache()
    biases = baseline.fit_biases(ratings, du, di)
    cached = [ratings, biases.users, biases.items]
    if fill.get("chosen") == "bias_als":
        a = p.als
        return "bias_als", (lambda pairs: baseline.bias_als_predict(ratings, pairs, biases, a.rank, a.reg, a.iters,
                                                                   a.seed)), cached
    return "bias", biases.predict, cached


def rerank_grid(p: RecommendParams) -> list[tuple[str, float, float]]:
    """(label, weight, min_star) of every re-rank setting the evaluation scores."""
    rr = p.rerank
    grid = [(f"weight={w:g}", w, 0.0) for w in rr.weights] + [(f"min_star={t:g}", 0.0, t) for t in rr.min_stars]
    if not any((w, t) == (rr.weight, rr.min_star) for _, w, t in grid):
        grid.append((f"weight={rr.weight:g},min_star={rr.min_star:g}", rr.weight, rr.min_star))
    return grid


def mcnemar_p(gained: int, lost: int) -> float:
    """Exact two-sided McNemar p-value of `gained` against `lost` discordant users."""
    n = gained + lost
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(gained, lost) + 1)) / 2.0 ** n
    return min(1.0, 2.0 * tail)


def _hit_users(recs: DataFrame, truth: DataFrame, k: int = 10) -> set[int]:
    hits = recs.where(F.col(cf.RANK) <= k).select(U, I).join(truth.select(U, I), on=[U, I], how="inner")
    return {int(r[U]) for r in hits.select(U).distinct().collect()}


def _scores(recs: DataFrame, truth: DataFrame, liked: DataFrame, n_liked: int,
            n_items: int | None) -> dict[str, Any]:
    full = ranking_metrics(recs, truth, (10, 20), n_items)
    row = {k: full.get(k) for k in ("HR@10", "NDCG@10", "Recall@20", "coverage@10", "users")}
    lk = ranking_metrics(recs, liked, (10,)) if n_liked else {"HR@10": float("nan"), "users": 0}
    row["liked_HR@10"], row["liked_users"] = lk["HR@10"], lk["users"]
    return row


def evaluate_rankers(events: DataFrame, p: RecommendParams, n_users: int, n_items: int,
                     methods: Sequence[str] | None = None, phases: Sequence[str] | None = None,
                     fill: dict[str, Any] | None = None, rerank: bool | None = None) -> dict[str, Any]:
    """Ranking figures of `methods` (default: the configured ranker and popularity) per phase.

    `fill`: the job's fill choice (job.choose_fill: chosen, damping_user, damping_item), whose
    star the re-rank uses; `rerank`: score the re-rank grid (None: on explicit data)."""
    ev = p.evaluate
    methods = list(dict.fromkeys(methods or (p.ranker, "popularity")))
    split = resolve_split(events, ev.split)
    if rerank is None:
        rerank = is_explicit(events)
    grid = rerank_grid(p) if rerank else []
    m_cands = p.rerank.candidates
    n_list = max(p.top_n, 20)
    out: dict[str, Any] = {"split": split, "ranker": p.ranker, "top_n": n_list, "phases": {}}
    phase_list = list(phases or ev.phases)
    for phase in phase_list:
        hist, truth, info = holdout(events, split, phase, ev.test_fraction)
        hist = hist.cache()
        truth = truth.cache()
        liked = truth.where(F.col(cf.VALUE) >= ev.liked_min_rating).cache()
        res: dict[str, Any] = {**info, "history_events": hist.count(), "targets": truth.count(),
                               "liked_targets": liked.count(), "methods": {}, "seconds": {}}
        star_name, predict, star_cached = star_fill(hist, p, fill) if grid else ("", None, [])
        targets = truth.select(U).distinct().cache()
        for m in methods:
            t0 = time.perf_counter()
            with_rr = bool(grid) and m != "popularity"
            n = max(n_list, m_cands) if with_rr else n_list
            ranking = rankers.recommend(hist, m, p.ranking, n, n_users, n_items, p.block_size, p.max_pairs)
            recs = ranking.recs.cache()
            row = _scores(recs, truth, liked, res["liked_targets"], n_items)
            res["methods"][m] = row
            log.info("ranking %s %s (%s): %s", split, phase, m, {k: round(v, 4) for k, v in row.items()})
            if with_rr:
                res.setdefault("rerank", {})[m] = _score_grid(recs, predict, targets, truth, liked,
                                                              res["liked_targets"], grid, n_list, m_cands)
                res["rerank_star"] = star_name
            res["seconds"][m] = round(time.perf_counter() - t0, 1)
            recs.unpersist()
            ranking.release()
        out["phases"][phase] = res
        for df in (hist, truth, liked, targets, *star_cached):
            df.unpersist()
    if grid:
        out["rerank"] = _choose_rerank(out, p, phase_list)
    return out


SETTING = "setting"


def _score_grid(recs: DataFrame, predict: Any, targets: DataFrame, truth: DataFrame, liked: DataFrame,
                n_liked: int, grid: list[tuple[str, float, float]], n: int, m_cands: int) -> dict[str, Any]:
    """Figures of every re-rank setting on the target users' top `m_cands` candidates.

    The candidates and their stars are checkpointed: the ranker's lineage (the blockwise
    similarity) would otherwise enter every setting's plan, and planning the union of them all
    takes minutes and the driver's heap."""
    cands = recs.where(F.col(cf.RANK) <= m_cands).join(targets, on=U, how="inner").localCheckpoint(eager=True)
    stars = (predict(cands.select(U, I)).select(U, I, F.col(cf.PRED).alias(rankers.STAR))
             .localCheckpoint(eager=True))
    plain_hits = _hit_users(recs, liked)
    labels = [label for label, _, _ in grid]
    lists = None
    for label, w, t in grid:
        one = rankers.rerank(cands, stars, n, w, t, m_cands).withColumn(SETTING, F.lit(label))
        lists = one if lists is None else lists.unionByName(one)
    lists = lists.localCheckpoint(eager=True)
    full = ranking_metrics_by(lists, truth, SETTING, labels)
    lk = ranking_metrics_by(lists, liked, SETTING, labels, (10,)) if n_liked else {}
    liked_hits: dict[str, set[int]] = {label: set() for label in labels}
    if n_liked:
        for r in (lists.where(F.col(cf.RANK) <= 10).select(SETTING, U, I)
                  .join(liked.select(U, I), on=[U, I], how="inner").select(SETTING, U).distinct().collect()):
            liked_hits[r[SETTING]].add(int(r[U]))
    out: dict[str, Any] = {}
    for label, w, t in grid:
        row: dict[str, Any] = {**{k: full[label][k] for k in ("HR@10", "NDCG@10", "Recall@20", "users")},
                               "coverage@10": None}
        row["liked_HR@10"] = lk[label]["HR@10"] if n_liked else float("nan")
        row["liked_users"] = lk[label]["users"] if n_liked else 0
        hits = liked_hits[label]
        gained, lost = len(hits - plain_hits), len(plain_hits - hits)
        row.update(weight=w, min_star=t, discordant={"gained": gained, "lost": lost,
                                                     "mcnemar_p": mcnemar_p(gained, lost)})
        out[label] = row
        log.info("re-rank %s: HR@10 %.4f liked HR@10 %.4f (gained %d, lost %d)", label, row["HR@10"],
                 row["liked_HR@10"], gained, lost)
    for df in (cands, stars, lists):
        df.unpersist()  # a local checkpoint's blocks are cached ones
    return out


def _choose_rerank(out: dict[str, Any], p: RecommendParams, phases: list[str]) -> dict[str, Any]:
    """The re-rank setting per ranker: the best liked HR@10 on the valid phase (the plain ranker
    first on ties), else the configured weight and min_star; its row is added to every phase as
    `<ranker>+rerank` (in `reranked`)."""
    chosen: dict[str, Any] = {}
    for m in {m for res in out["phases"].values() for m in res.get("rerank", {})}:
        if "valid" in phases:
            res = out["phases"]["valid"]
            options = [(PLAIN, res["methods"][m]["liked_HR@10"])] + [
                (label, row["liked_HR@10"]) for label, row in res["rerank"][m].items()]
            best = max(options, key=lambda t: (t[1], -options.index(t)))[0]
            how = "best liked HR@10 on the valid phase"
        else:
            best = next(label for label, row in out["phases"][phases[0]]["rerank"][m].items()
                        if (row["weight"], row["min_star"]) == (p.rerank.weight, p.rerank.min_star))
            how = "recsys.rerank.weight / min_star (no valid phase)"
        chosen[m] = {"setting": best, "how": how}
        for res in out["phases"].values():
            row = res["methods"][m] if best == PLAIN else res["rerank"][m][best]
            res.setdefault("reranked", {})[f"{m}+rerank"] = {**row, "setting": best}
    return chosen
