"""The recommend stage's settings: one frozen dataclass per `recsys:` section of the config.

`RecommendParams.from_config(cfg["recsys"])` is what the job runs with; the defaults here are
conf/base.yaml's (tests/test_recommend_job.py asserts it), so library code built from a bare
`RecommendParams()` behaves as the job does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reviewrec.config import ENUM_LISTS, ENUMS
from reviewrec.recommend.similarity import SimilarityParams

# The choices are the config's (checked when it loads, before Spark starts); checked again here
# for parameters built in code.
USE_MODEL_CHOICES = ENUMS["recsys.fill.use_model"]
FILL_METHODS = ENUMS["recsys.fill.method"]
RANKERS = ENUMS["recsys.ranker"]
FEEDBACK_CHOICES = ENUMS["recsys.feedback"]
SPLITS = ENUMS["recsys.evaluate.split"]
PHASES = ENUM_LISTS["recsys.evaluate.phases"]
# Not in the config's enums: checked here, naming the key.
RERANK_METHODS = ("none", "predicted_star")


@dataclass(frozen=True)
class NeighborParams:
    k: int = 50
    shrink: float = 0.0
    mean_centre: bool = True
    max_item_degree: int = 0
    min_similarity: float | None = None
    measure_recall: bool = True

    @property
    def approximate(self) -> bool:
        return bool(self.max_item_degree) or self.min_similarity is not None


@dataclass(frozen=True)
class PopularityParams:
    prior_weight: float = 10.0


@dataclass(frozen=True)
class FillParams:
    neighbor_items: int = 50
    top_popular: int = 20
    use_model: str = "auto"
    method: str = "auto"

    def __post_init__(self) -> None:
        if self.use_model not in USE_MODEL_CHOICES:
            raise ValueError(f"recsys.fill.use_model = {self.use_model!r}; choose one of {USE_MODEL_CHOICES}")
        if self.method not in FILL_METHODS:
            raise ValueError(f"recsys.fill.method = {self.method!r}; choose one of {FILL_METHODS}")


@dataclass(frozen=True)
class RankingParams:
    """Settings of the top-N rankers (recommend.rankers); the defaults were chosen on the
    validation item of Amazon Beauty 5-core (benchmarks/RESULTS.md)."""

    user_k: int = 100
    user_shrink: float = 10.0
    # user-CF's cosine: at most this many raters per item (seeded sample; 0 = all, exact).
    max_item_degree: int = 0
    item_k: int = 200
    item_shrink: float = 50.0
    # item-CF history weight exp(-(steps from the user's latest item) / recency_tau); 0 = off.
    recency_tau: float = 2.0
    # item-CF adds transition_weight * c(i -> j) / (c(i) + transition_shrink) to sim(i, j).
    transition_weight: float = 1.0
    transition_shrink: float = 10.0
    blend_user_weight: float = 0.3

    def __post_init__(self) -> None:
        if not 0 <= self.blend_user_weight <= 1:
            raise ValueError(f"recsys.ranking.blend_user_weight must be in [0, 1], got {self.blend_user_weight}")


@dataclass(frozen=True)
class RerankParams:
    """Re-ranking the ranker's candidates by the filled matrix's predicted star (rankers.rerank).

    predicted_star: the ranker's top `candidates` items are re-ordered by (1 - weight) *
    (1 - (rank - 1) / candidates) + weight * (star - 1) / 4, candidates predicted below `min_star`
    after the others (0 = no filter). `weights` and `min_stars` are the grid the evaluation scores
    beside the plain ranker (the setting chosen on the validation phase is reported on test)."""

    method: str = "none"
    candidates: int = 50
    weight: float = 0.25
    min_star: float = 0.0
    weights: tuple[float, ...] = (0.1, 0.25, 0.5)
    min_stars: tuple[float, ...] = (3.0, 3.5, 4.0)

    def __post_init__(self) -> None:
        if self.method not in RERANK_METHODS:
            raise ValueError(f"recsys.rerank.method = {self.method!r}; choose one of {RERANK_METHODS}")
        if self.candidates < 1:
            raise ValueError(f"recsys.rerank.candidates must be >= 1, got {self.candidates}")
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        object.__setattr__(self, "min_stars", tuple(float(t) for t in self.min_stars))
        for key, ws in (("weight", (self.weight,)), ("weights", self.weights)):
            if any(not 0 <= w <= 1 for w in ws):
                raise ValueError(f"recsys.rerank.{key} must be in [0, 1], got {ws if key == 'weights' else ws[0]}")
        for key, ts in (("min_star", (self.min_star,)), ("min_stars", self.min_stars)):
            if any(not 0 <= t <= 5 for t in ts):
                raise ValueError(f"recsys.rerank.{key} must be in [0, 5], got {ts if key == 'min_stars' else ts[0]}")


@dataclass(frozen=True)
class EvaluateParams:
    enabled: bool = True
    test_fraction: float = 0.2
    split: str = "auto"
    phases: tuple[str, ...] = PHASES
    liked_min_rating: float = 4.0

    def __post_init__(self) -> None:
        if not 0 < self.test_fraction < 0.5:
            raise ValueError(f"recsys.evaluate.test_fraction must be in (0, 0.5), got {self.test_fraction}")
        if self.split not in SPLITS:
            raise ValueError(f"recsys.evaluate.split = {self.split!r}; choose one of {SPLITS}")
        object.__setattr__(self, "phases", tuple(self.phases))
        bad = [x for x in self.phases if x not in PHASES]
        if bad:
            raise ValueError(f"recsys.evaluate.phases has {bad}; choose from {PHASES}")


@dataclass(frozen=True)
class ALSParams:
    rank: int = 10
    reg: float = 0.1
    iters: int = 10
    seed: int = 7


@dataclass(frozen=True)
class RecommendParams:
    top_n: int = 10
    block_size: int = 4096
    max_pairs: int = 5_000_000
    ranker: str = "item_cf"
    feedback: str = "auto"
    ranking: RankingParams = field(default_factory=RankingParams)
    neighbors: NeighborParams = field(default_factory=NeighborParams)
    popularity: PopularityParams = field(default_factory=PopularityParams)
    fill: FillParams = field(default_factory=FillParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    als: ALSParams = field(default_factory=ALSParams)
    rerank: RerankParams = field(default_factory=RerankParams)

    def __post_init__(self) -> None:
        if self.ranker not in RANKERS:
            raise ValueError(f"recsys.ranker = {self.ranker!r}; choose one of {RANKERS}")
        if self.feedback not in FEEDBACK_CHOICES:
            raise ValueError(f"recsys.feedback = {self.feedback!r}; choose one of {FEEDBACK_CHOICES}")

    @classmethod
    def from_config(cls, rc: dict[str, Any]) -> RecommendParams:
        """From the validated `recsys:` section (every key present, types checked)."""
        return cls(top_n=rc["top_n"], block_size=rc["block_size"], max_pairs=rc["max_pairs"],
                   ranker=rc["ranker"], feedback=rc["feedback"], ranking=RankingParams(**rc["ranking"]),
                   neighbors=NeighborParams(**rc["neighbors"]), popularity=PopularityParams(**rc["popularity"]),
                   fill=FillParams(**rc["fill"]), evaluate=EvaluateParams(**rc["evaluate"]),
                   als=ALSParams(**rc["als"]), rerank=RerankParams(**rc["rerank"]))

    def similarity(self, exact: bool = False) -> SimilarityParams:
        """The user-user cosine settings; exact=True drops the approximate-mode shortcuts."""
        nb = self.neighbors
        return SimilarityParams(
            k=nb.k, block_size=self.block_size, max_pairs=self.max_pairs, shrink=float(nb.shrink),
            max_column_degree=None if exact or not nb.max_item_degree else nb.max_item_degree,
            threshold=None if exact else nb.min_similarity)
