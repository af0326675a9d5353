"""The bias baseline mu + b_u + b_i and bias + ALS fills (recommend.baseline) against numpy, and
the paired bootstrap interval of an error difference (recommend.metrics)."""
from __future__ import annotations

import numpy as np
import pytest

from reviewrec.recommend import baseline
from reviewrec.recommend.metrics import paired_bootstrap

pytestmark = [pytest.mark.spark]

# (u, i, star): user 0 rates high, item 2 is rated low by everyone
RATINGS = [(0, 0, 5.0), (0, 1, 5.0), (0, 2, 3.0), (1, 0, 4.0), (1, 2, 1.0), (2, 1, 3.0), (2, 2, 2.0),
           (2, 3, 4.0), (3, 0, 4.0), (3, 3, 5.0), (3, 1, 4.0)]


def _numpy_biases(du: float, di: float) -> tuple[float, dict[int, float], dict[int, float]]:
    r = np.array(RATINGS)
    mu = r[:, 2].mean()
    bi = {int(i): (r[r[:, 1] == i, 2] - mu).sum() / ((r[:, 1] == i).sum() + di) for i in np.unique(r[:, 1])}
    bu = {int(u): sum(s - mu - bi[int(i)] for uu, i, s in r if uu == u) / ((r[:, 0] == u).sum() + du)
          for u in np.unique(r[:, 0])}
    return mu, bu, bi


def test_bias_baseline_matches_numpy_and_clips(spark) -> None:
    ratings = spark.createDataFrame(RATINGS, "u long, i long, value double")
    b = baseline.fit_biases(ratings, 2.0, 3.0)
    mu, bu, bi = _numpy_biases(2.0, 3.0)
    assert b.mu == pytest.approx(mu)
    pairs = spark.createDataFrame([(0, 3), (1, 1), (2, 0), (9, 2), (0, 9)], "u long, i long")
    got = {(r.u, r.i): r.pred for r in b.predict(pairs).collect()}
    for (u, i), p in got.items():
        want = mu + bu.get(u, 0.0) + bi.get(i, 0.0)  # unknown user 9 / item 9: bias 0
        assert p == pytest.approx(min(max(want, 1.0), 5.0))
    assert bi[2] < 0 < bu[0]
    # the damping grid is searched on the validation ratings: the best pair is the one returned
    valid = spark.createDataFrame([(0, 3, 5.0), (1, 1, 3.0), (2, 0, 3.0)], "u long, i long, value double")
    chosen, tried = baseline.choose_biases(ratings, valid, grid=(0.0, 5.0))
    best = min(tried.values())
    assert tried[f"user={chosen.damping_user:g},item={chosen.damping_item:g}"] == pytest.approx(best)
    als = {(r.u, r.i): r.pred for r in baseline.bias_als_predict(ratings, pairs, b, 2, 0.1, 5, 7).collect()}
    assert set(als) == set(got) and all(1.0 <= v <= 5.0 for v in als.values())
    assert als[(9, 2)] == pytest.approx(got[(9, 2)])  # unknown user: the bias baseline alone
    assert any(abs(als[k] - got[k]) > 1e-6 for k in got if 9 not in k)


def test_paired_bootstrap_interval(spark) -> None:
    rng = np.random.default_rng(1)
    n = 400
    truth = rng.integers(1, 6, n).astype(float)
    good = truth + rng.normal(0, 0.5, n)
    bad = truth + rng.normal(0, 1.0, n)
    rows = [(k, 0, float(t), float(g), float(b)) for k, (t, g, b) in enumerate(zip(truth, good, bad, strict=True))]
    df = spark.createDataFrame(rows, "u long, i long, rating double, g double, b double")
    out = paired_bootstrap(df.select("u", "i", df.g.alias("pred")), df.select("u", "i", df.b.alias("pred")),
                           df.select("u", "i", "rating"), n_boot=200)
    want = np.sqrt(np.mean((good - truth) ** 2)) - np.sqrt(np.mean((bad - truth) ** 2))
    assert out["n"] == n and out["rmse_diff"] == pytest.approx(want)
    assert out["rmse_diff_lo"] < want < out["rmse_diff_hi"] < 0
    # the interval's width is that of the resampled difference (about 2 * 1.96 * its standard error)
    se = np.std([np.sqrt(np.mean((good[s] - truth[s]) ** 2)) - np.sqrt(np.mean((bad[s] - truth[s]) ** 2))
                 for s in (rng.integers(0, n, n) for _ in range(500))])
    assert out["rmse_diff_hi"] - out["rmse_diff_lo"] == pytest.approx(2 * 1.96 * se, rel=0.35)
