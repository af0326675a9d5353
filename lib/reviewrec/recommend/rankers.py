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
                the next-item transitions of all users' sequences
    user_cf     score(u, i) = sum over the top user_k neighbours v of u (shrunk cosine) who have i
                of cos(u, v)
    blend       blend_user_weight * user_cf + (1 - blend_user_weight) * item_cf, each divided by
                the user's maximum
    popularity  the items with the most users

Lists are padded with popular items and exclude what the user has seen. Output of `recommend`:
u, rank, i, score, source.

`rerank` re-orders a ranker's top-M candidates by a predicted star (recsys.rerank): it never adds
an item the ranker did not propose.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from reviewrec import schema as S
from reviewrec.recommend import cf
from reviewrec.recommend.ids import I, U, IdIndex
from reviewrec.recommend.params import RANKERS, RankingParams
from reviewrec.recommend.similarity import SimilarityParams

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
    """The top-N lists of one ranker and the cached frames behind them (release() when done)."""

    recs: DataFrame
    cached: list[DataFrame] = field(default_factory=list)

    def release(self) -> None:
        for df in self.cached:
            df.unpersist()


def _similarity(k: int, shrink: float, block_size: int, max_pairs: int) -> SimilarityParams:
    return SimilarityParams(k=k, block_size=block_size, max_pairs=max_pairs, shrink=float(shrink))


def item_cf_scores(events: DataFrame, binary: DataFrame, rp: RankingParams, n_users: int, n_items: int,
                   block_size: int, max_pairs: int) -> tuple[DataFrame, DataFrame]:
    """(scores u, i, score, wsum, support with seen items excluded; the item neighbours, cached)."""
    inb = cf.item_neighbors(binary, _similarity(rp.item_k, rp.item_shrink, block_size, max_pairs), n_items, n_users)
    if rp.transition_weight:
        inb = cf.add_neighbors(inb, cf.transition_neighbors(events, rp.transition_shrink, col_pos=POS),
                               rp.transition_weight)
    inb = inb.cache()
    weights = cf.recency_weights(events, rp.recency_tau, col_pos=POS, col_len=N)
    return cf.item_cf_scores(inb, weights, seen=binary), inb


def user_cf_scores(binary: DataFrame, rp: RankingParams, n_users: int, n_items: int, block_size: int,
                   max_pairs: int) -> tuple[DataFrame, DataFrame]:
    """(scores u, i, score, wsum, support with seen items excluded; the user neighbours, cached)."""
    nb = cf.user_neighbors(binary, _similarity(rp.user_k, rp.user_shrink, block_size, max_pairs), n_users, n_items)
    nb = nb.cache()
    return cf.user_cf_scores(nb, binary, seen=binary), nb


def recommend(events: DataFrame, ranker: str, rp: RankingParams, n: int, n_users: int, n_items: int,
              block_size: int, max_pairs: int) -> Ranking:
    """Top-n lists of `ranker` for every user in `events`: u, rank, i, score, source.

    Scored items come first by score (ties: item index), then popular items (most users first).
    """
    if ranker not in RANKERS:
        raise ValueError(f"ranker {ranker!r}; choose one of {RANKERS}")
    binary = events.groupBy(U, I).agg(F.lit(1.0).alias(cf.VALUE)).cache()
    popular = interaction_popularity(events).cache()
    out = Ranking(recs=None, cached=[binary, popular])  # type: ignore[arg-type]
    seen = binary.select(U, I)
    scores: DataFrame | None = None
    if ranker in ("item_cf", "blend"):
        scores, inb = item_cf_scores(events, binary, rp, n_users, n_items, block_size, max_pairs)
        out.cached.append(inb)
    if ranker in ("user_cf", "blend"):
        user_scores, nb = user_cf_scores(binary, rp, n_users, n_items, block_size, max_pairs)
        out.cached.append(nb)
        scores = user_scores if scores is None else cf.blend(user_scores, scores, rp.blend_user_weight)
    if scores is None:  # popularity: nothing scored, every list is padding
        scores = binary.sparkSession.createDataFrame([], f"{U} long, {I} long, {cf.SCORE} double")
    out.recs = cf.top_n(scores.select(U, I, cf.SCORE), n, SOURCES[ranker], seen=seen, popular=popular)
    return out


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
