"""Integration: Amazon Beauty 5-core, leave-last-out test item, full ranking, Spark pipeline.

Thresholds are the numbers measured with benchmarks/bench_recsys_beauty.py (tuned settings
of sequence_eval.SeqSettings, chosen on the validation item) minus a small margin; the
published anchors are SASRec HR@10 0.074 / NDCG@10 0.039 and popularity 0.0141 / 0.0063.
"""
from __future__ import annotations

import sys

import pytest

from conftest import REPO, shared_data

sys.path.insert(0, str(REPO / "benchmarks"))
import sequence_eval as seq  # noqa: E402

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.integration]


def test_beauty_item_cf_and_popularity(spark) -> None:
    path = shared_data("amazon_beauty_5core", "Beauty.txt")
    events = seq.read_sequences(spark, str(path)).cache()
    assert events.count() == 198_502
    out = seq.evaluate(spark, events, "test", seq.SeqSettings(), methods=("popularity", "item_cf"))
    pop, item = out["metrics"]["popularity"], out["metrics"]["item_cf"]
    assert pop["users"] == 22_363 and item["users"] == 22_363
    # popularity: published protocol 0.0141 / 0.0063; Spark measured 0.0135 / 0.0061 (ties by item index)
    assert pop["HR@10"] == pytest.approx(0.0141, abs=0.0015)
    assert pop["NDCG@10"] == pytest.approx(0.0063, abs=0.001)
    # tuned item-CF (shrunk cosine + next-item transitions, recency-weighted history) reaches
    # the target (HR@10 >= 0.085, NDCG@10 >= 0.045), above published SASRec
    assert item["HR@10"] >= ITEM_HR10 - 0.002
    assert item["NDCG@10"] >= ITEM_NDCG10 - 0.0015
    assert item["HR@10"] >= 0.085 and item["NDCG@10"] >= 0.045
    assert item["coverage@10"] > 0.9  # popularity: 0.0013
    events.unpersist()


# Measured on the test item with this Spark pipeline and the default SeqSettings
# (bench_recsys_beauty.py --phase test): HR@10 0.0902, NDCG@10 0.0575, coverage@10 0.980; the
# single-machine reference of the same model gives 0.0918 / 0.0584 (ties counted optimistically).
ITEM_HR10 = 0.0902
ITEM_NDCG10 = 0.0575
