"""Causal estimators against published numbers (causaldata, rdrobust's Senate data)."""
from __future__ import annotations

import glob
import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.spark

causaldata = pytest.importorskip("causaldata", reason="causaldata is a test dependency (lib/requirements.txt)")

RDROBUST_WHEEL = "rdrobust==2.1.1"


def senate_csv(tmp_dir: Path) -> Path:
    """rdrobust_RDsenate.csv from an installed rdrobust, else from its PyPI wheel (downloaded
    with --no-deps: rdrobust's own pins conflict with ours, only the data file is needed)."""
    spec = importlib.util.find_spec("rdrobust")
    if spec and spec.submodule_search_locations:
        hits = glob.glob(os.path.join(list(spec.submodule_search_locations)[0], "**", "rdrobust_RDsenate.csv"),
                         recursive=True)
        if hits:
            return Path(hits[0])
    cache = Path(os.environ.get("REVIEWREC_CACHE", Path.home() / ".cache" / "reviewrec")) / "rdrobust"
    cache.mkdir(parents=True, exist_ok=True)
    out = cache / "rdrobust_RDsenate.csv"
    if not out.exists():
        r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", RDROBUST_WHEEL,
                            "-d", str(cache)], capture_output=True, text=True)
        wheels = glob.glob(str(cache / "rdrobust-*.whl"))
        if r.returncode != 0 or not wheels:
            pytest.skip(f"rdrobust's Senate data unavailable (pip download {RDROBUST_WHEEL} failed: {r.stderr[-300:]})")
        with zipfile.ZipFile(wheels[0]) as z:
            name = next(n for n in z.namelist() if n.endswith("rdrobust_RDsenate.csv"))
            out.write_bytes(z.read(name))
    return out


def test_nsw_experimental_att(spark):
    from reviewrec.causal.stats import ols

    df = spark.createDataFrame(causaldata.nsw_mixtape.load_pandas().data)
    res = ols(df, "re78", ["treat"])
    assert round(res["treat"], 2) == 1794.34
    # Difference in means equals the OLS slope; check against pandas too.
    pdf = causaldata.nsw_mixtape.load_pandas().data
    re78 = pdf.re78.astype(float)
    assert res["treat"] == pytest.approx(re78[pdf.treat == 1].mean() - re78[pdf.treat == 0].mean(), rel=1e-9)


def _organ(spark):
    od = causaldata.organ_donations.load_pandas().data.copy()
    od["treated"] = (od.State == "California").astype(int)
    od["post"] = (od.Quarter_Num >= 4).astype(int)  # Q3 2011 on: California's active-choice policy
    od["D"] = od.treated * od.post
    od["start"] = 4
    return spark.createDataFrame(od)


def test_organ_donations_did_and_flat_pretrends(spark):
    from reviewrec.causal import did

    df = _organ(spark)
    r = did.did_twfe(df, "Rate", "D", "State", "Quarter_Num")
    assert round(r["estimate"]["coef"], 4) == -0.0225
    # Balanced panel: the 2x2 on cell means gives the same number.
    assert did.did_2x2(df, "Rate", "treated", "post", cluster="State")["estimate"]["coef"] == pytest.approx(
        r["estimate"]["coef"], abs=1e-10)
    es = did.event_study(df, "Rate", "State", "Quarter_Num", "treated", "start", ref=-1)
    coef = {c["rel_time"]: c["coef"] for c in es["coefficients"]}
    # The Effect (Huntington-Klein, ch. 18) dynamic DID: leads -0.0029, 0.0063; lags -0.0216, -0.0203, -0.0222.
    for k, v in {-3: -0.0029, -2: 0.0063, 0: -0.0216, 1: -0.0203, 2: -0.0222}.items():
        assert round(coef[k], 4) == v
    # Flat pre-trends: every lead is small next to the effect; joint Wald test reported.
    assert all(abs(coef[k]) < 0.3 * abs(r["estimate"]["coef"]) for k in (-3, -2))
    assert es["pretrend_test"]["df"] == 2 and 0 < es["pretrend_test"]["p_F"] < 1


def test_close_elections_lmb_mixtape(spark):
    """Mixtape, RDD chapter, Lee-Moretti-Butler replication: OLS with SEs clustered by id on
    the close-election sample 0.48 < lagdemvoteshare < 0.52: score on lagdemocrat (21.28),
    score on democrat (47.71), democrat on lagdemocrat (0.48)."""
    from pyspark.sql import functions as F

    from reviewrec.causal.stats import ols

    df = spark.createDataFrame(causaldata.close_elections_lmb.load_pandas().data)
    close = df.where((F.col("lagdemvoteshare") > 0.48) & (F.col("lagdemvoteshare") < 0.52))
    got = {(y, x): ols(close, y, [x], vce="cluster", cluster="id")
           for y, x in (("score", "lagdemocrat"), ("score", "democrat"), ("democrat", "lagdemocrat"))}
    assert round(got[("score", "lagdemocrat")]["lagdemocrat"], 2) == 21.28
    assert round(got[("score", "democrat")]["democrat"], 2) == 47.71
    assert round(got[("democrat", "lagdemocrat")]["lagdemocrat"], 2) == 0.48
    assert round(got[("score", "lagdemocrat")].se_of("lagdemocrat"), 2) == 1.95
    assert round(got[("score", "democrat")].se_of("democrat"), 2) == 1.36


@pytest.mark.slow
def test_rdrobust_senate(spark, tmp_path):
    from reviewrec.causal.rdd import rdd

    pdf = pd.read_csv(senate_csv(tmp_path))
    r = rdd(spark.createDataFrame(pdf[["margin", "vote"]]), "vote", "margin", 0.0)
    assert round(r["conventional"]["coef"], 3) == 7.414
    assert round(r["conventional"]["se"], 3) == 1.459
    assert round(r["robust"]["ci_low"], 3) == 4.094
    assert round(r["robust"]["ci_high"], 3) == 10.919
    assert round(r["h"], 3) == 17.754 and round(r["b"], 3) == 28.028
    assert (r["n_h_left"], r["n_h_right"]) == (360, 323)


def test_rdrobust_senate_hc1_and_fuzzy_side_by_side(spark, tmp_path):
    """Against rdrobust 2.1.1 run side by side on the Senate data (literal outputs below): the
    sharp estimate with vce hc1, and a fuzzy RD whose take-up is simulated (80% above the
    cutoff, 20% below, numpy default_rng(20261205).random() per row in file order; rows without
    a vote dropped): rdrobust(vote, margin, fuzzy=treated). Each tuple: conventional estimate,
    its SE, robust CI, h, b."""
    import numpy as np

    from reviewrec.causal.rdd import rdd

    pdf = pd.read_csv(senate_csv(tmp_path))
    want = {"hc1": (7.416199427655265, 1.4601243037701959, 4.0850709242634515, 10.92259403679854,
                    17.703691723553664, 28.124908721391467),
            "fuzzy": (11.803140050616092, 2.6388421320666193, 5.617238639043802, 18.01737785459264,
                      21.28438579242841, 34.62683765562033)}
    u = np.random.default_rng(20261205).random(len(pdf))
    pdf["treated"] = np.where(pdf.margin >= 0, u < 0.8, u < 0.2).astype(float)
    got = {"hc1": rdd(spark.createDataFrame(pdf[["margin", "vote"]]), "vote", "margin", 0.0, vce="hc1"),
           "fuzzy": rdd(spark.createDataFrame(pdf.dropna(subset=["vote"])[["margin", "vote", "treated"]]),
                        "vote", "margin", 0.0, fuzzy="treated")}
    for name, (coef, se, lo, hi, h, b) in want.items():
        r = got[name]
        assert r["conventional"]["coef"] == pytest.approx(coef, abs=1e-6), name
        assert r["conventional"]["se"] == pytest.approx(se, abs=1e-6), name
        assert r["robust"]["ci_low"] == pytest.approx(lo, abs=1e-6), name
        assert r["robust"]["ci_high"] == pytest.approx(hi, abs=1e-6), name
        assert r["h"] == pytest.approx(h, abs=1e-6) and r["b"] == pytest.approx(b, abs=1e-6), name
    # The fuzzy estimate is the ratio of two jumps: not the sharp jump in the vote.
    assert abs(got["fuzzy"]["conventional"]["coef"] - got["hc1"]["conventional"]["coef"]) > 3


def _ik_reference(x, y):
    """Line-by-line numpy transcription of R rddtools' RDDbw_IK_low (type "RES", triangular
    kernel, threshold 0): the Imbens-Kalyanaraman (2012) procedure, computed on raw vectors
    with dense least squares, independent of the Spark sufficient-statistics code."""
    import numpy as np

    n, left, right = len(x), x < 0, x >= 0
    h1 = 1.84 * np.std(x, ddof=1) * n ** (-1 / 5)
    in1_l, in1_r = (x >= -h1) & left, right & (x <= h1)
    f_cut = (in1_l.sum() + in1_r.sum()) / (2 * n * h1)
    var_l, var_r = np.var(y[in1_l], ddof=1), np.var(y[in1_r], ddof=1)
    X = np.column_stack([np.ones(n), right.astype(float), x, x ** 2, x ** 3])
    m3 = 6 * np.linalg.lstsq(X, y, rcond=None)[0][4]
    h2_l = 7200 ** (1 / 7) * (var_l / (f_cut * m3 ** 2)) ** (1 / 7) * left.sum() ** (-1 / 7)
    h2_r = 7200 ** (1 / 7) * (var_r / (f_cut * m3 ** 2)) ** (1 / 7) * right.sum() ** (-1 / 7)
    in2_l, in2_r = (x >= -h2_l) & left, right & (x <= h2_r)
    m2 = []
    for m in (in2_l, in2_r):
        Q = np.column_stack([np.ones(m.sum()), x[m], x[m] ** 2])
        m2.append(2 * np.linalg.lstsq(Q, y[m], rcond=None)[0][2])
    r_l = 2160 * var_l / (in2_l.sum() * h2_l ** 4)
    r_r = 2160 * var_r / (in2_r.sum() * h2_r ** 4)
    return 3.4375 * ((var_l + var_r) / (f_cut * ((m2[1] - m2[0]) ** 2 + r_l + r_r))) ** (1 / 5) * n ** (-1 / 5)


@pytest.mark.slow
def test_rdd_ik_bandwidth_senate(spark, tmp_path):
    """bwselect="ik": the Imbens-Kalyanaraman (2012) bandwidth equals an independent dense
    transcription of rddtools' RDDbw_IK_low on rdrobust's Senate data (46.83, against CCT's
    17.75: the Senate regression function is close to linear, so m3 and m2 are small)."""
    import numpy as np

    from reviewrec.causal.rdd import rdd

    pdf = pd.read_csv(senate_csv(tmp_path))[["margin", "vote"]].dropna()
    ref = _ik_reference(pdf.margin.to_numpy(float), pdf.vote.to_numpy(float))
    r = rdd(spark.createDataFrame(pdf), "vote", "margin", 0.0, bwselect="ik", vce="hc1")
    assert r["h"] == pytest.approx(ref, rel=1e-9) and r["b"] == r["h"]
    assert round(r["h"], 3) == 46.832
    inside = np.abs(pdf.margin.to_numpy()) <= r["h"]
    assert (r["n_h_left"], r["n_h_right"]) == (int((inside & (pdf.margin < 0)).sum()),
                                               int((inside & (pdf.margin >= 0)).sum()))
    assert r["bwselect"] == "ik" and r["bandwidth_selection"]["m3"] < 0
    # Measured: conventional 6.594 (SE 1.021), robust CI [5.134, 10.663] at h = b = 46.832.
    assert 5.5 < r["conventional"]["coef"] < 7.5
    with pytest.raises(ValueError, match="sharp local-linear"):
        rdd(spark.createDataFrame(pdf), "vote", "margin", 0.0, bwselect="ik", p=2, q=3)


@pytest.mark.slow
def test_rdd_covariates_match_rdrobust(spark, tmp_path):
    """Covariate-adjusted RD (Calonico, Cattaneo, Farrell and Titiunik 2019) against rdrobust
    2.1.1 run side by side on the Senate data: rdrobust(vote, margin, covs=[presdemvoteshlag1,
    dopen, dmidterm, population], h=17.754, b=28.028), vce nn and hc1. The row with a missing
    covariate is dropped (359 instead of 360 on the left)."""
    from reviewrec.causal.rdd import rdd

    covs = ["presdemvoteshlag1", "dopen", "dmidterm", "population"]
    pdf = pd.read_csv(senate_csv(tmp_path))[["margin", "vote", *covs]]
    sdf = spark.createDataFrame(pdf)
    want = {"nn": (7.46264891, 1.45847188, 4.14182892, 10.96954752),
            "hc1": (7.46264891, 1.44630911, 4.16247861, 10.94889783)}
    for vce, (coef, se, lo, hi) in want.items():
        r = rdd(sdf, "vote", "margin", 0.0, covs=covs, h=17.754, b=28.028, vce=vce)
        assert r["conventional"]["coef"] == pytest.approx(coef, abs=1e-6)
        assert r["conventional"]["se"] == pytest.approx(se, abs=1e-6)
        assert r["robust"]["ci_low"] == pytest.approx(lo, abs=1e-6)
        assert r["robust"]["ci_high"] == pytest.approx(hi, abs=1e-6)
        assert (r["n_h_left"], r["n_h_right"]) == (359, 323)
        assert r["covariates"]["names"] == covs and len(r["covariates"]["gamma"]) == 4
    # Without the adjustment the same rows and bandwidths give a different estimate.
    plain = rdd(sdf.dropna(), "vote", "margin", 0.0, h=17.754, b=28.028, vce="hc1")
    assert abs(plain["conventional"]["coef"] - 7.46264891) > 0.01
    with pytest.raises(ValueError, match="collinear"):
        rdd(sdf.withColumn("dopen2", sdf["dopen"] * 2), "vote", "margin", 0.0, covs=["dopen", "dopen2"],
            h=17.754, b=28.028, vce="hc1")


NSW_CPS_COVARIATES = ["age", "agesq", "agecube", "educ", "educsq", "marr", "nodegree", "black", "hisp",
                      "re74", "re75", "u74", "u75", "educ_re74"]


def nsw_cps() -> tuple[pd.DataFrame, list[str]]:
    """NSW treated + CPS controls with the Dehejia-Wahba covariates (Mixtape's version)."""
    nsw = causaldata.nsw_mixtape.load_pandas().data
    cps = causaldata.cps_mixtape.load_pandas().data
    d = pd.concat([nsw[nsw.treat == 1], cps]).reset_index(drop=True).drop(columns=["data_id"]).astype(float)
    d["agesq"], d["agecube"], d["educsq"] = d.age ** 2, d.age ** 3, d.educ ** 2
    d["u74"], d["u75"] = (d.re74 == 0).astype(float), (d.re75 == 0).astype(float)
    d["educ_re74"] = d.educ * d.re74
    return d, list(NSW_CPS_COVARIATES)


@pytest.mark.slow
def test_propensity_is_the_logit_mle_whatever_the_partitioning(spark):
    """The propensity logit on NSW vs CPS (covariates up to age³ and educ·re74, badly scaled)
    equals statsmodels' maximum-likelihood Logit, and the same rows in 1 or 7 partitions give
    the same scores: matching downstream must not depend on the cluster's layout."""
    import numpy as np
    import statsmodels.api as sm

    from reviewrec.causal import psm

    d, covs = nsw_cps()
    d["_id"] = np.arange(len(d), dtype=float)
    ref = sm.Logit(d.treat, sm.add_constant(d[covs])).fit(method="newton", maxiter=100, tol=1e-12, disp=False)
    expected = np.asarray(ref.fittedvalues)
    logits = []
    for parts in (1, 7):
        got = (psm.propensity(spark.createDataFrame(d).repartition(parts), "treat", covs)
               .select("_id", "_logit").toPandas().sort_values("_id"))
        logits.append(got["_logit"].to_numpy())
    inside = np.abs(expected) < 13  # p clipped to [1e-6, 1 - 1e-6] beyond |logit| 13.8
    assert inside.sum() > 10000
    np.testing.assert_allclose(logits[0][inside], expected[inside], atol=1e-6)
    np.testing.assert_allclose(logits[0], logits[1], rtol=0, atol=1e-9)


@pytest.mark.slow
def test_psm_nsw_vs_cps(spark):
    """Dehejia-Wahba propensity specification (Mixtape covariates) on NSW treated vs CPS
    controls, nearest neighbour on the logit with replacement (ties shared), caliper 0.2 SD,
    exact on nodegree and u74. Plain matching on the logit alone leaves |SMD| 0.25 on nodegree
    (measured: ATT 487-499, SE 1,113-1,120); matching exactly on the degree and 1974-unemployment
    indicators, which the logit trades off against each other, brings every |SMD| below 0.1
    with all 185 treated matched."""
    from reviewrec.causal import psm

    d, covs = nsw_cps()
    r = psm.psm(spark.createDataFrame(d), "treat", ["re78"], covs, replace=True, exact=["nodegree", "u74"], ties=True)
    est = r["att"]["re78"]
    print("PSM nsw vs cps (with replacement, ties, caliper 0.2 SD, exact nodegree+u74):", est, r["matching"],
          [(b["covariate"], round(b["smd_before"], 3), round(b["smd_after"], 3)) for b in r["balance"]])
    # Naive difference is about -8,500; matched (measured): 1,240 (SE 1,083, max |SMD| 0.087),
    # CI covering 1,794.34. ties=True shares each match among the controls with identical
    # covariates (up to 47 CPS rows share one covariate vector) instead of following the row ids.
    assert abs(est["att"] - 1794.34) < est["se"]
    assert est["ci_low"] < 1794.34 < est["ci_high"]
    naive = d[d.treat == 1].re78.mean() - d[d.treat == 0].re78.mean()
    assert naive < -8000 and est["att"] > 0
    before = {b["covariate"]: b["smd_before"] for b in r["balance"]}
    after = {b["covariate"]: b["smd_after"] for b in r["balance"]}
    assert max(abs(v) for v in before.values()) > 1.0
    assert max(abs(v) for v in after.values()) < 0.1
    assert r["balanced"] and not any(b["flag"] for b in r["balance"])
    assert r["matching"]["matched"] == r["matching"]["treated"] == 185
    assert r["matching"]["exact"] == ["nodegree", "u74"]
