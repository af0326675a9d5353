"""A tiny star model trained once per test session (a pytest plugin, conftest.py): the features
of the model tests' literal reviews (test_model_fixtures.make_features: their words carry the
star) and the train job's model on them, shared by the tests that score through a real model
(tests/test_recommend_model_fill.py, tests/test_recommend_review_fill.py) instead of a training
each. Three epochs with text dropout 0.5 so that both the text and the ids move the stars.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
N_REVIEWS = 800


@pytest.fixture(scope="session")
def tiny_model_root(spark, tmp_path_factory) -> str:
    """<root>/reviews, tokens, features, features_meta (the features job) and model (the train job)."""
    from reviewrec.config import load_config
    from reviewrec.model import train
    from test_model_fixtures import TINY_MODEL, make_features

    root = str(tmp_path_factory.mktemp("tiny-model") / "run")
    make_features(spark, root, n=N_REVIEWS, seq_len=12)
    sets = {**TINY_MODEL, "model.epochs": 3, "model.num_proc": 1, "model.text_dropout": 0.5, "run.root": root,
            "model.checkpoint_dir": str(Path(root).parent / "ckpt")}
    cfg = load_config([str(REPO / "conf" / "local.yaml")], [f"{k}={v}" for k, v in sets.items()])
    train.run(spark, cfg)
    assert os.path.isfile(f"{root}/model/model.keras")
    return root
