"""Causal estimators on small literal data, against numpy references computed here."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.spark


def _np_ols(X, y):
    xtx_inv = np.linalg.inv(X.T @ X)
    b = xtx_inv @ X.T @ y
    e = y - X @ b
    return b, e, xtx_inv


@pytest.fixture(scope="module")
def panel():
    rng = np.random.default_rng(3)
    n = 240
    g = rng.integers(0, 12, n)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n) + 0.3 * x1
    y = 1.0 + 2.0 * x1 - 0.5 * x2 + rng.normal(size=n) * (1 + np.abs(x1)) + 0.4 * g
    return pd.DataFrame({"y": y, "x1": x1, "x2": x2, "g": g.astype(int)})


def test_ols_hc1_and_cluster_match_numpy(spark, panel):
    from reviewrec.causal.stats import ols

    df = spark.createDataFrame(panel)
    X = np.column_stack([np.ones(len(panel)), panel.x1, panel.x2])
    y = panel.y.to_numpy()
    b, e, inv = _np_ols(X, y)
    n, k = X.shape
    hc1 = n / (n - k) * inv @ (X.T * e ** 2) @ X @ inv
    r = ols(df, "y", ["x1", "x2"], vce="hc1")
    np.testing.assert_allclose(r.coef, b, rtol=1e-9)
    np.testing.assert_allclose(r.vcov, hc1, rtol=1e-7)
    # CR1 (Stata): G/(G-1) (n-1)/(n-k) inv (sum_g s_g s_g') inv
    meat = np.zeros((k, k))
    for gv in np.unique(panel.g):
        s = X[panel.g == gv].T @ e[panel.g == gv]
        meat += np.outer(s, s)
    G = len(np.unique(panel.g))
    cr1 = G / (G - 1) * (n - 1) / (n - k) * inv @ meat @ inv
    rc = ols(df, "y", ["x1", "x2"], vce="cluster", cluster="g")
    np.testing.assert_allclose(rc.vcov, cr1, rtol=1e-7)
    assert rc.n_clusters == G and rc.df_resid == G - 1
    ri = ols(df, "y", ["x1", "x2"], vce="iid")
    np.testing.assert_allclose(ri.vcov, inv * (e @ e) / (n - k), rtol=1e-7)
    w = ri.wald(["x1", "x2"])
    bb = b[1:]
    assert w["chi2"] == pytest.approx(float(bb @ np.linalg.inv(ri.vcov[1:, 1:]) @ bb), rel=1e-8)


def test_ols_errors_name_the_problem(spark, panel):
    from reviewrec.causal.stats import ols

    df = spark.createDataFrame(panel)
    with pytest.raises(ValueError, match="x9"):
        ols(df, "y", ["x9"])
    with pytest.raises(ValueError, match="cluster"):
        ols(df, "y", ["x1"], vce="cluster")


def test_twfe_equals_dummy_regression(spark):
    """Within transformation on an unbalanced panel == OLS with unit and time dummies."""
    from reviewrec.causal.did import twfe

    rng = np.random.default_rng(5)
    rows = []
    for u in range(8):
        for t in range(5):
            if (u + t) % 7 == 3:
                continue  # unbalanced
            d = float(u >= 4 and t >= 2)
            x = rng.normal()
            rows.append({"u": u, "t": t, "d": d, "x": x, "y": 0.5 * u - 0.3 * t + 1.5 * d + 0.7 * x + rng.normal()})
    p = pd.DataFrame(rows)
    X = np.column_stack([p.d, p.x] + [(p.u == k).astype(float) for k in range(8)]
                        + [(p.t == k).astype(float) for k in range(1, 5)])
    b, _, _ = _np_ols(X, p.y.to_numpy())
    r = twfe(spark.createDataFrame(p), "y", ["d", "x"], "u", "t")
    np.testing.assert_allclose(r.coef, b[:2], rtol=1e-6, atol=1e-8)


def test_iv_2sls_matches_numpy(spark):
    from reviewrec.causal.iv import iv_2sls

    rng = np.random.default_rng(11)
    n = 400
    z1, z2, w = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    u = rng.normal(size=n)
    x = 0.8 * z1 + 0.4 * z2 + 0.5 * u + rng.normal(size=n)
    y = 1.0 + 2.0 * x + 0.3 * w + u
    p = pd.DataFrame({"y": y, "x": x, "z1": z1, "z2": z2, "w": w})
    r = iv_2sls(spark.createDataFrame(p), "y", ["x"], ["z1", "z2"], exog=["w"])
    X = np.column_stack([np.ones(n), w, x])
    Z = np.column_stack([np.ones(n), w, z1, z2])
    Xh = Z @ np.linalg.solve(Z.T @ Z, Z.T @ X)
    b = np.linalg.solve(Xh.T @ X, Xh.T @ y)
    e = y - X @ b
    inv = np.linalg.inv(Xh.T @ Xh)
    v = n / (n - 3) * inv @ (Xh.T * e ** 2) @ Xh @ inv
    res = r["result"]
    np.testing.assert_allclose(res.coef, b, rtol=1e-8)
    np.testing.assert_allclose(res.vcov, v, rtol=1e-6)
    assert r["first_stage"][0]["F"] > 50


def _wls_side(u, y, h):
    w = np.clip(1 - np.abs(u) / h, 0, None) / h
    m = w > 0
    X = np.column_stack([np.ones(m.sum()), u[m]])
    G = X.T @ (X * w[m, None])
    inv = np.linalg.inv(G)
    b = inv @ X.T @ (w[m] * y[m])
    e = y[m] - X @ b
    meat = (X * (w[m] * e)[:, None]).T @ (X * (w[m] * e)[:, None])
    return b, inv @ meat @ inv


def test_rdd_fixed_bandwidth_matches_numpy(spark):
    from reviewrec.causal.rdd import rdd

    rng = np.random.default_rng(2)
    n = 600
    x = rng.uniform(-1, 1, n)
    y = 0.5 + 0.8 * x + 1.2 * (x >= 0) + rng.normal(scale=0.3, size=n)
    r = rdd(spark.createDataFrame(pd.DataFrame({"x": x, "y": y})), "y", "x", 0.0, h=0.5, b=0.5, vce="hc0")
    bl, vl = _wls_side(x[x < 0], y[x < 0], 0.5)
    br, vr = _wls_side(x[x >= 0], y[x >= 0], 0.5)
    assert r["conventional"]["coef"] == pytest.approx(br[0] - bl[0], rel=1e-9)
    assert r["conventional"]["se"] == pytest.approx(math.sqrt(vl[0, 0] + vr[0, 0]), rel=1e-7)
    assert r["n_h_left"] == int(((x < 0) & (x > -0.5)).sum())


def test_nn_residuals_match_rdrobust_rule(spark):
    """NN residuals with ties and both-side expansion against a direct numpy implementation
    of rdrobust's rule (3 matches, tie groups kept whole)."""
    from reviewrec.causal.rdd import nn_residuals

    xs = np.array([0.1, 0.2, 0.2, 0.35, 0.5, 0.5, 0.5, 0.6, 0.9, 1.3, 1.3, 2.0])
    ys = np.arange(len(xs), dtype=float) ** 1.3
    d = spark.createDataFrame(pd.DataFrame({"_side": [1] * len(xs), "_u": xs, "_y": ys}))
    got = nn_residuals(d, 3).select("_u", "_y", "_ry").toPandas().sort_values(["_u", "_y"])
    vals = np.unique(xs)
    cnt = {v: (xs == v).sum() for v in vals}
    exp = []
    for xi, yi in zip(xs, ys, strict=False):
        k = int(np.searchsorted(vals, xi))
        lo = hi = k
        J = cnt[xi] - 1
        while J < 3:
            left = vals[lo - 1] if lo > 0 else None
            right = vals[hi + 1] if hi + 1 < len(vals) else None
            dl = xi - left if left is not None else np.inf
            dr = right - xi if right is not None else np.inf
            if dl <= dr + 1e-12 and left is not None:
                lo -= 1
                J += cnt[left]
            if dr <= dl + 1e-12 and right is not None:
                hi += 1
                J += cnt[right]
        window = (xs >= vals[lo]) & (xs <= vals[hi])
        others = ys[window].sum() - yi
        exp.append((xi, yi, math.sqrt(J / (J + 1)) * (yi - others / J)))
    exp = pd.DataFrame(exp, columns=["_u", "_y", "_ry"]).sort_values(["_u", "_y"])
    np.testing.assert_allclose(got["_ry"].to_numpy(), exp["_ry"].to_numpy(), rtol=1e-10)


def test_density_test_detects_manipulation(spark):
    from reviewrec.causal.rdd import density_test

    rng = np.random.default_rng(4)
    smooth = rng.normal(size=4000)
    heaped = np.concatenate([smooth, rng.uniform(0, 0.3, 800)])
    r0 = density_test(spark.createDataFrame(pd.DataFrame({"x": smooth})), "x", 0.0)
    r1 = density_test(spark.createDataFrame(pd.DataFrame({"x": heaped})), "x", 0.0)
    assert r0["p_value"] > 0.01
    assert r1["theta"] > 0.3 and r1["p_value"] < 1e-4


def test_psm_matching_on_literal_scores(spark):
    """Nearest control within the caliper, with and without replacement; ATT by hand."""
    from reviewrec.causal import psm

    p = pd.DataFrame({
        "_rid": list(range(8)),
        "t": [1, 1, 1, 0, 0, 0, 0, 0],
        "_logit": [0.0, 0.05, 3.0, 0.02, 0.06, 0.5, 2.0, -1.0],
        "y": [10.0, 12.0, 30.0, 7.0, 9.0, 8.0, 5.0, 1.0],
    })
    df = spark.createDataFrame(p)
    # SD of the logit is about 1.26; caliper 0.2 SD = 0.25: treated 2 (logit 3) has no control.
    pairs, s = psm.match(df, "t", caliper_sd=0.2, replace=True)
    got = {r["t_id"]: r["c_id"] for r in pairs.collect()}
    assert got == {0: 3, 1: 4}
    assert s["unmatched"] == 1
    pairs_nr, _ = psm.match(df, "t", caliper_sd=0.2, replace=False)
    assert {r["t_id"]: r["c_id"] for r in pairs_nr.collect()} == {0: 3, 1: 4}
    a = psm.att(df, pairs, "t", "y")
    assert a["att"] == pytest.approx(((10 - 7) + (12 - 9)) / 2)
    # Competition for one control without replacement: the closer treated wins it.
    p2 = pd.DataFrame({"_rid": [0, 1, 2, 3], "t": [1, 1, 0, 0], "_logit": [0.0, 0.01, 0.012, 0.3], "y": [1.0, 2, 3, 4]})
    pr, _ = psm.match(spark.createDataFrame(p2), "t", caliper_sd=3.0, replace=False)  # width 0.44
    assert {r["t_id"]: r["c_id"] for r in pr.collect()} == {1: 2, 0: 3}


def test_psm_exact_matching_on_literal_scores(spark):
    """exact=[g]: the nearest control with the same g, even when a control of another g is
    closer; a treated row with no same-g control inside the caliper stays unmatched; nulls in
    an exact column are an error naming it."""
    from reviewrec.causal import psm

    p = pd.DataFrame({
        "_rid": list(range(7)),
        "t": [1, 1, 1, 0, 0, 0, 0],
        "g": [0, 1, 1, 1, 0, 0, 1],
        "_logit": [0.0, 0.0, 2.0, 0.01, 0.1, 2.01, 0.2],
        "y": [1.0, 2, 3, 4, 5, 6, 7],
    })
    df = spark.createDataFrame(p)
    plain, _ = psm.match(df, "t", caliper_sd=0.3, replace=True)  # SD about 0.95: width about 0.29
    assert {r["t_id"]: r["c_id"] for r in plain.collect()} == {0: 3, 1: 3, 2: 5}
    pairs, s = psm.match(df, "t", caliper_sd=0.3, replace=True, exact=["g"])
    assert {r["t_id"]: r["c_id"] for r in pairs.collect()} == {0: 4, 1: 3}
    assert s["unmatched"] == 1 and s["exact"] == ["g"]
    pnr, _ = psm.match(df, "t", caliper_sd=0.3, replace=False, exact=["g"])
    assert {r["t_id"]: r["c_id"] for r in pnr.collect()} == {0: 4, 1: 3}
    rows = [(int(i), int(t), None if i == 1 else int(g), float(lg), float(y))
            for i, t, g, lg, y in zip(p["_rid"], p["t"], p["g"], p["_logit"], p["y"], strict=False)]
    bad = spark.createDataFrame(rows, "_rid long, t int, g int, _logit double, y double")
    with pytest.raises(ValueError, match="exact-matching columns have nulls.*'g': 1"):
        psm.match(bad, "t", exact=["g"])


def test_psm_ties_share_the_match(spark):
    """ties=True: controls with the same logit as the nearest one share the match (1/M each);
    ATT and sum K_j^2 by hand, against the single smallest-id match without ties."""
    from reviewrec.causal import psm

    p = pd.DataFrame({"_rid": [0, 1, 2, 3, 4], "t": [1, 0, 0, 0, 1], "_logit": [0.0, 0.05, 0.05, 1.0, 0.98],
                      "y": [10.0, 4.0, 8.0, 0.0, 3.0]})
    df = spark.createDataFrame(p)
    one, s1 = psm.match(df, "t", caliper_sd=0.2, replace=True)
    assert sorted((r["t_id"], r["c_id"]) for r in one.collect()) == [(0, 1), (4, 3)]
    a1 = psm.att(df, one, "t", "y")
    assert a1["att"] == pytest.approx(((10 - 4) + (3 - 0)) / 2) and a1["sum_k2"] == pytest.approx(2.0)
    tied, s2 = psm.match(df, "t", caliper_sd=0.2, replace=True, ties=True)
    got = sorted((r["t_id"], r["c_id"], r["w"]) for r in tied.collect())
    assert got == [(0, 1, 0.5), (0, 2, 0.5), (4, 3, 1.0)]
    assert s2["matched"] == 2 and s2["distinct_controls"] == 3 and s2["ties"]
    a2 = psm.att(df, tied, "t", "y")
    assert a2["att"] == pytest.approx(((10 - (4 + 8) / 2) + (3 - 0)) / 2)
    assert a2["sum_k2"] == pytest.approx(0.25 + 0.25 + 1.0)
    with pytest.raises(ValueError, match="ties=True needs replace=True"):
        psm.match(df, "t", replace=False, ties=True)


def test_balance_smd_by_hand(spark):
    from reviewrec.causal import psm

    p = pd.DataFrame({"_rid": [0, 1, 2, 3, 4], "t": [1, 1, 0, 0, 0], "a": [1.0, 3.0, 0.0, 2.0, 4.0]})
    b = psm.balance(spark.createDataFrame(p), "t", ["a"])
    mt, mc = 2.0, 2.0
    assert b[0]["smd_before"] == pytest.approx(0.0)
    p["a"] = [5.0, 7.0, 0.0, 2.0, 4.0]
    b = psm.balance(spark.createDataFrame(p), "t", ["a"])
    vt, vc = np.var([5, 7], ddof=1), np.var([0, 2, 4], ddof=1)
    assert b[0]["smd_before"] == pytest.approx((6 - 2) / math.sqrt((vt + vc) / 2))
    assert b[0]["flag"] and mt == mc


def _sk_curve(y, score, w, kind):
    """scikit-uplift's qini_curve / uplift_curve from their documented definitions."""
    order = np.argsort(score, kind="mergesort")[::-1]
    y, s, w = y[order], score[order], w[order]
    yt, yc = np.where(w == 1, y, 0.0), np.where(w == 0, y, 0.0)
    idx = np.r_[np.where(np.diff(s))[0], s.size - 1]
    nt = np.cumsum(w)[idx]
    na = idx + 1.0
    nc = na - nt
    st_, sc_ = np.cumsum(yt)[idx], np.cumsum(yc)[idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "qini":
            v = st_ - sc_ * np.where(nc != 0, nt / nc, 0.0)
        else:
            v = (np.where(nt != 0, st_ / nt, 0.0) - np.where(nc != 0, sc_ / nc, 0.0)) * na
    return np.r_[0, na], np.r_[0, v]


def _sk_score(y, score, w, kind):
    x, v = _sk_curve(y, score, w, kind)
    if kind == "qini":
        px, pv = _sk_curve(y, y * w - y * (1 - w), w, kind)
    else:
        cr, cc = np.sum((y == 1) & (w == 1)), np.sum((y == 0) & (w == 0))
        px, pv = _sk_curve(y, 2 * (y == w) + (y if cr > cc else w), w, kind)
    base = np.trapz([0, pv[-1]], [0, px[-1]])
    return (np.trapz(v, x) - base) / (np.trapz(pv, px) - base)


def test_uplift_metrics_reproduce_sklift_and_causalml(spark):
    from reviewrec.causal.uplift import uplift_metrics

    rng = np.random.default_rng(8)
    n = 300
    w = rng.integers(0, 2, n)
    x = rng.normal(size=n)
    y = (rng.uniform(size=n) < 0.3 + 0.2 * w * (x > 0)).astype(float)
    score = np.round(x + rng.normal(scale=0.5, size=n), 2)  # rounded: ties exercise grouping
    df = spark.createDataFrame(pd.DataFrame({"s": score, "y": y, "w": w}))
    sk = uplift_metrics(df, "s", "y", "w", convention="sklift")
    assert sk["qini_coefficient"] == pytest.approx(_sk_score(y, score, w, "qini"), rel=1e-9)
    assert sk["auuc"] == pytest.approx(_sk_score(y, score, w, "uplift"), rel=1e-9)
    # causalml (normalize=True), distinct scores: per-row curves over |last value|, minus the diagonal.
    sd = score + np.arange(n) * 1e-7
    cm = uplift_metrics(spark.createDataFrame(pd.DataFrame({"s": sd, "y": y, "w": w})), "s", "y", "w",
                        convention="causalml")
    o = np.argsort(-sd)
    yt, wt = y[o], w[o]
    ct, cc = np.cumsum(yt * wt), np.cumsum(yt * (1 - wt))
    nt, nc = np.cumsum(wt), np.cumsum(1 - wt)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = ct - cc * np.where(nc > 0, nt / nc, 0.0)
        g = (np.where(nt > 0, ct / nt, 0.0) - np.where(nc > 0, cc / nc, 0.0)) * (nt + nc)
    qn, gn = q / abs(q[-1]), g / abs(g[-1])
    diag = np.arange(1, n + 1) / n * np.sign(q[-1])
    assert cm["qini_coefficient"] == pytest.approx(np.mean(qn - diag), rel=1e-9)
    assert cm["auuc"] == pytest.approx(np.mean(gn), rel=1e-9)
    # Default convention: trapezoid areas on the normalised curves.
    rv = uplift_metrics(spark.createDataFrame(pd.DataFrame({"s": sd, "y": y, "w": w})), "s", "y", "w")
    xx = np.r_[0, np.arange(1, n + 1)] / n
    assert rv["auuc"] == pytest.approx(np.trapz(np.r_[0, gn], xx), rel=1e-9)
    assert rv["qini_coefficient"] == pytest.approx(np.trapz(np.r_[0, qn] - xx * np.sign(q[-1]), xx), rel=1e-9)


def test_subgroups_and_quadrants_by_hand(spark):
    from reviewrec.causal.uplift import quadrants, subgroups

    p = pd.DataFrame({"f": [0, 0, 0, 0, 1, 1, 1, 1] * 5, "w": [1, 0] * 20,
                      "y": [3.0, 1.0, 5.0, 1.0, 2.0, 2.0, 2.0, 2.0] * 5})
    p.loc[p.index % 3 == 0, "y"] += 1.0
    rows = subgroups(spark.createDataFrame(p), "y", "w", ["f"], bins=5, min_per_arm=5)
    for r in rows:
        s = p[p.f == int(r["bin"])]
        t, c = s[s.w == 1].y, s[s.w == 0].y
        assert r["uplift"] == pytest.approx(t.mean() - c.mean())
        assert r["se"] == pytest.approx(math.sqrt(t.var() / len(t) + c.var() / len(c)))
    q = pd.DataFrame({"a": [1.0, -1.0, 2.0, -2.0, 0.5], "b": [1.0, 1.0, -1.0, -1.0, 3.0], "f": [1.0, 2, 3, 4, 5]})
    got = {r["quadrant"]: (r["n"], r["mean_f"]) for r in quadrants(spark.createDataFrame(q), "a", "b", ["f"])}
    assert got == {"a+ b+": (2, 3.0), "a- b+": (1, 2.0), "a+ b-": (1, 3.0), "a- b-": (1, 4.0)}


def test_window_ratio_balance_and_correlation(spark):
    from reviewrec.causal import quasi

    ev = pd.DataFrame({"unit": ["a"] * 4 + ["b"] * 3 + ["c"] * 2,
                       "off": [-1.0, -0.5, 0.2, 5.0, 0.1, 0.3, -3.0, -0.1, -0.2]})
    r = {x["unit"]: (x["n_window_a"], x["n_window_b"], x["window_ratio"])
         for x in quasi.window_ratio(spark.createDataFrame(ev), "unit", "off", 2.0, 1.0).collect()}
    assert r == {"a": (2, 1, pytest.approx(1 / 3)), "b": (0, 2, 1.0), "c": (2, 0, 0.0)}
    rng = np.random.default_rng(1)
    u = pd.DataFrame({"g": rng.integers(0, 3, 300), "z": rng.normal(size=300)})
    u["y"] = u.z * 2 + rng.normal(size=300)
    df = spark.createDataFrame(u)
    bt = quasi.balance_table(df, "g", ["z"])
    from scipy import stats as st

    f_ref = st.f_oneway(*[u.z[u.g == k] for k in range(3)])
    assert bt[0]["anova_F"] == pytest.approx(f_ref.statistic, rel=1e-8)
    c = quasi.correlation(df, "z", "y")
    assert c["r"] == pytest.approx(np.corrcoef(u.z, u.y)[0, 1], rel=1e-9)
    assert c["ci_low"] < c["r"] < c["ci_high"]


# Two waves of the same stores (treated state / control state), employment y; some waves have
# no y (store closed or not interviewed), unequally across the four cells, as in Card-Krueger.
DID_ROWS = [
    # store, treated, post, y
    (1, 1, 0, 20.0), (1, 1, 1, 21.5), (2, 1, 0, 17.5), (2, 1, 1, None), (3, 1, 0, 25.0), (3, 1, 1, 27.0),
    (4, 1, 0, None), (4, 1, 1, 14.0), (5, 1, 0, 30.5), (5, 1, 1, 29.0), (6, 1, 0, 22.0), (6, 1, 1, None),
    (7, 1, 0, 19.0), (7, 1, 1, 23.5), (8, 1, 0, 16.0), (8, 1, 1, 18.5),
    (9, 0, 0, 24.0), (9, 0, 1, 20.0), (10, 0, 0, 31.0), (10, 0, 1, 26.5), (11, 0, 0, None), (11, 0, 1, None),
    (12, 0, 0, 18.5), (12, 0, 1, 19.0), (13, 0, 0, 27.5), (13, 0, 1, None), (14, 0, 0, 21.0), (14, 0, 1, 17.0),
]


def test_did_2x2_counts_only_used_rows_and_matches_statsmodels(spark):
    """Cell counts and every SE (iid, HC1, cluster) are of the rows with an outcome."""
    import statsmodels.formula.api as smf

    from reviewrec.causal.did import did_2x2

    p = pd.DataFrame(DID_ROWS, columns=["store", "treated", "post", "y"])
    df = spark.createDataFrame([tuple(None if isinstance(v, float) and math.isnan(v) else v for v in r)
                                for r in p.itertuples(index=False)], "store int, treated int, post int, y double")
    used = p.dropna(subset=["y"])
    fit = smf.ols("y ~ treated * post", data=used)
    names = "treated:post"
    ref_iid, ref_hc1 = fit.fit(), fit.fit(cov_type="HC1")
    ref_cl = fit.fit(cov_type="cluster", cov_kwds={"groups": used.store})

    out = did_2x2(df, "y", "treated", "post")
    cells = {(c["treated"], c["post"]): c for c in out["cell_means"]}
    expected = used.groupby(["treated", "post"]).y.agg(["count", "mean"])
    assert {k: c["n"] for k, c in cells.items()} == {k: int(v) for k, v in expected["count"].items()} \
        == {(0, 0): 5, (0, 1): 4, (1, 0): 7, (1, 1): 6}
    for k, c in cells.items():
        assert c["mean"] == pytest.approx(expected["mean"][k], rel=1e-12)
    assert out["rows_dropped_missing"] == len(p) - len(used) == 6
    assert out["regression"]["n"] == len(used)
    assert out["estimate"]["coef"] == pytest.approx(ref_iid.params[names], rel=1e-9)
    assert out["estimate_iid"]["coef"] == pytest.approx(ref_iid.params[names], rel=1e-9)
    assert out["estimate_iid"]["se"] == pytest.approx(ref_iid.bse[names], rel=1e-8)
    assert out["estimate"]["se"] == pytest.approx(ref_hc1.bse[names], rel=1e-8)
    assert out["estimate_iid"]["se"] != pytest.approx(out["estimate"]["se"], rel=1e-3)
    # cluster by store: statsmodels' default small-sample correction is Stata's CR1
    clustered = did_2x2(df, "y", "treated", "post", cluster="store")
    assert clustered["estimate"]["se"] == pytest.approx(ref_cl.bse[names], rel=1e-8)
    assert clustered["estimate_iid"]["se"] == pytest.approx(ref_iid.bse[names], rel=1e-8)
