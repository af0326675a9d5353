"""The `causal` job: run one study (conf/studies/<name>.yaml, named by causal.study) on the
`reviews` dataset and publish JSON + PNG + HTML under <root>/report/causal/<study>.

A study names a binary treatment column, outcome columns and pre-treatment features (columns of
`reviews` or the derived ones in DERIVED), and enables any of: psm, uplift (multi-metric, with
four quadrants over the first two outcomes), subgroups.

    ./spark-submit.sh causal --set causal.study=studies/verified_purchase.yaml
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from reviewrec import io
from reviewrec import schema as S
from reviewrec.causal import plots, psm, quasi, uplift
from reviewrec.config import REPO_CONF_DIR, Config, ConfigError
from reviewrec.report import html as H
from reviewrec.runtime import StageTimer

log = logging.getLogger(__name__)

STUDY_KEYS = {"name", "description", "treatment", "outcomes", "features", "psm", "uplift", "subgroups", "quasi"}
PSM_KEYS = {"enabled", "model", "caliper_sd", "replace", "exact", "ties"}
UPLIFT_KEYS = {"enabled", "propensity", "propensity_clip", "max_iter", "max_depth", "top_k", "bins", "convention",
               "test_fraction", "scatter_sample", "seed"}
SUBGROUP_KEYS = {"enabled", "features", "bins"}
QUASI_KEYS = {"enabled", "unit", "width_a_days", "width_b_days", "groups", "outcome", "covariates"}


def _words(c: str) -> Column:
    return F.when(F.col(c).isNull() | (F.trim(F.col(c)) == ""), F.lit(0)) \
            .otherwise(F.size(F.split(F.trim(F.col(c)), r"\s+")))


# Derived pre-treatment features a study may name besides the reviews columns.
DERIVED = ("review_length", "headline_length", "product_popularity", "customer_reviews", "review_year")


def study_frame(reviews: DataFrame, treatment: str, outcomes: list[str], features: list[str]) -> DataFrame:
    """reviews -> one row per review: treatment (int 0/1), outcomes (double), features (double).

    Derived features: review_length / headline_length (words), product_popularity (reviews of
    the product in the data), customer_reviews (reviews by the customer), review_year.
    """
    d = reviews
    if "product_popularity" in features:
        pop = reviews.groupBy(S.PRODUCT_ID).agg(F.count(F.lit(1)).alias("product_popularity"))
        d = d.join(pop, on=S.PRODUCT_ID, how="left")
    if "customer_reviews" in features:
        cr = reviews.groupBy(S.CUSTOMER_ID).agg(F.count(F.lit(1)).alias("customer_reviews"))
        d = d.join(cr, on=S.CUSTOMER_ID, how="left")
    extra = {"review_length": _words(S.REVIEW_BODY), "headline_length": _words(S.REVIEW_HEADLINE),
             "review_year": F.year(S.REVIEW_DATE)}
    for f in features:
        if f in extra:
            d = d.withColumn(f, extra[f])
    missing = [c for c in [treatment, *outcomes, *features] if c not in d.columns]
    if missing:
        raise ValueError(f"study columns {missing} are neither reviews columns nor derived features {DERIVED}")
    return (d.select(F.col(treatment).cast("int").alias(treatment),
                     *[F.col(o).cast("double").alias(o) for o in outcomes],
                     *[F.col(f).cast("double").alias(f) for f in features])
             .dropna())


def load_study(name: str) -> dict[str, Any]:
    """Read and validate a study YAML (path as given, else relative to conf/)."""
    p = Path(name)
    if not p.is_file():
        p = REPO_CONF_DIR / name
    if not p.is_file():  # the package runs from a zip (cluster submissions): conf/ of the working
        # directory (client mode), or the file by base name (shipped with --files, cluster mode)
        p = next((c for c in (Path.cwd() / "conf" / name, Path.cwd() / Path(name).name) if c.is_file()), p)
    if not p.is_file():
        raise ConfigError(f"causal.study: study file not found: {name} (also looked in {REPO_CONF_DIR})")
    with open(p, encoding="utf-8") as fh:
        st = yaml.safe_load(fh) or {}
    bad = set(st) - STUDY_KEYS
    if bad:
        raise ConfigError(f"{p}: unknown study key(s) {sorted(bad)}; known: {sorted(STUDY_KEYS)}")
    for key in ("name", "treatment", "outcomes", "features"):
        if not st.get(key):
            raise ConfigError(f"{p}: study key {key!r} is required")
    for sec, keys in (("psm", PSM_KEYS), ("uplift", UPLIFT_KEYS), ("subgroups", SUBGROUP_KEYS), ("quasi", QUASI_KEYS)):
        bad = set(st.get(sec) or {}) - keys
        if bad:
            raise ConfigError(f"{p}: unknown key(s) {sorted(bad)} in {sec}; known: {sorted(keys)}")
    exact = (st.get("psm") or {}).get("exact", [])
    if not isinstance(exact, list) or not all(isinstance(e, str) for e in exact):
        raise ConfigError(f"{p}: psm.exact must be a list of column names, got {exact!r}")
    conv = (st.get("uplift") or {}).get("convention", "reviewrec")
    if conv not in uplift.CONVENTIONS:
        raise ConfigError(f"{p}: uplift.convention = {conv!r}; choose one of {list(uplift.CONVENTIONS)}")
    st["_path"] = str(p)
    return st


def run_study(spark: SparkSession, reviews: DataFrame, st: dict[str, Any], timer: StageTimer) -> dict[str, Any]:
    treat, outcomes, feats = st["treatment"], list(st["outcomes"]), list(st["features"])
    with timer.stage("features"):
        d = study_frame(reviews, treat, outcomes, feats).localCheckpoint(eager=True)
        counts = d.groupBy(treat).count().collect()
    out: dict[str, Any] = {"study": st["name"], "description": st.get("description", ""), "treatment": treat,
                           "outcomes": outcomes, "features": feats,
                           "rows": {str(r[treat]): int(r["count"]) for r in counts}}
    pcfg = st.get("psm") or {}
    scored = None
    if pcfg.get("enabled", True):
        with timer.stage("psm"):
            out["psm"] = psm.psm(d, treat, outcomes, feats, model=pcfg.get("model", "logistic"),
                                 caliper_sd=float(pcfg.get("caliper_sd", 0.2)), replace=bool(pcfg.get("replace", True)),
                                 exact=list(pcfg.get("exact") or []), ties=bool(pcfg.get("ties", False)))
    ucfg = st.get("uplift") or {}
    if ucfg.get("enabled", True):
        with timer.stage("uplift"):
            prop = ucfg.get("propensity", "estimated")
            if prop == "estimated":
                scored = psm.propensity(d, treat, feats)
                p: float | str | None = psm.PS
            else:
                scored, p = d, float(prop)
            seed = int(ucfg.get("seed", 7))
            train, test = scored.randomSplit([1 - float(ucfg.get("test_fraction", 0.3)),
                                              float(ucfg.get("test_fraction", 0.3))], seed=seed)
            fitted = uplift.fit(train, outcomes, treat, feats, p=p,
                                propensity_clip=float(ucfg.get("propensity_clip", 0.05)),
                                max_iter=int(ucfg.get("max_iter", 30)),
                                max_depth=int(ucfg.get("max_depth", 4)), top_k=int(ucfg.get("top_k", 5)), seed=seed)
            pred = uplift.predict(test, fitted).localCheckpoint(eager=True)
            conv = ucfg.get("convention", "reviewrec")
            metrics = {m: uplift.uplift_metrics(pred, uplift.uplift_col(m), m, treat, convention=conv,
                                                bins=int(ucfg.get("bins", 100))) for m in outcomes}
            u_res: dict[str, Any] = {"propensity": prop, "importances": fitted["importances"], "metrics": metrics,
                                     "test_rows": pred.count()}
            if len(outcomes) >= 2:
                a, b = uplift.uplift_col(outcomes[0]), uplift.uplift_col(outcomes[1])
                u_res["quadrants"] = uplift.quadrants(pred, a, b, feats)
                n = int(ucfg.get("scatter_sample", 2000))
                total = max(u_res["test_rows"], 1)
                sample = pred.sample(fraction=min(1.0, 2.0 * n / total), seed=seed).select(a, b).limit(n).collect()
                u_res["scatter"] = [(float(r[a]), float(r[b])) for r in sample]
            out["uplift"] = u_res
    scfg = st.get("subgroups") or {}
    if scfg.get("enabled", True):
        with timer.stage("subgroups"):
            sf = list(scfg.get("features", feats))
            out["subgroups"] = {o: uplift.subgroups(d, o, treat, sf, bins=int(scfg.get("bins", 5))) for o in outcomes}
    qcfg = st.get("quasi") or {}
    if qcfg.get("enabled", False):
        with timer.stage("quasi"):
            out["quasi"] = month_boundary_study(reviews, qcfg)
    return out


def month_boundary_study(reviews: DataFrame, q: dict[str, Any]) -> dict[str, Any]:
    """Quasi-experimental variable on reviews: per unit (default product), the share of its
    reviews in the first `width_b_days` days of a month (window B) against the last
    `width_a_days` days of the previous month (window A). Units are grouped by that share; the
    balance table compares unit covariates across groups and the share is correlated with the
    unit's mean outcome."""
    unit = q.get("unit", S.PRODUCT_ID)
    outcome = q.get("outcome", S.STAR_RATING)
    start = F.trunc(F.col(S.REVIEW_DATE), "month")
    nxt = F.add_months(start, 1)
    off = F.when(F.dayofmonth(S.REVIEW_DATE) <= 15, F.datediff(F.col(S.REVIEW_DATE), start)) \
           .otherwise(F.datediff(F.col(S.REVIEW_DATE), nxt))
    ev = reviews.select(F.col(unit), off.alias("_offset"))
    ratio = quasi.window_ratio(ev, unit, "_offset", float(q.get("width_a_days", 7)), float(q.get("width_b_days", 7)))
    units = (reviews.groupBy(unit)
                    .agg(F.count(F.lit(1)).alias("unit_reviews"),
                         F.avg(F.col(outcome).cast("double")).alias(f"mean_{outcome}"),
                         F.avg(_words(S.REVIEW_BODY)).alias("mean_review_length"),
                         F.avg(F.year(S.REVIEW_DATE)).alias("mean_review_year"))
                    .join(ratio, on=unit, how="inner"))
    units = units.where(F.col(quasi.N_A) + F.col(quasi.N_B) > 0)
    grouped = quasi.ratio_groups(units, int(q.get("groups", 3))).localCheckpoint(eager=True)
    covs = list(q.get("covariates", ["unit_reviews", "mean_review_length", "mean_review_year"]))
    return {"unit": unit, "outcome": outcome, "width_a_days": q.get("width_a_days", 7),
            "width_b_days": q.get("width_b_days", 7), "units": grouped.count(),
            "balance": quasi.balance_table(grouped, quasi.GROUP, covs + [quasi.RATIO]),
            "correlation": quasi.correlation(grouped, quasi.RATIO, f"mean_{outcome}")}


def write_report(res: dict[str, Any], d: str) -> None:
    sections: list[tuple[str, str]] = []
    sections.append(("Data", H.table(["treatment value", "rows"], sorted(res["rows"].items()))))
    if "psm" in res:
        p = res["psm"]
        m = p["matching"]
        rows = [[o, e["att"], e["se"], e["ci_low"], e["ci_high"], e["p_value"]] for o, e in p["att"].items()]
        bal = [[b["covariate"], b["smd_before"], b.get("smd_after", float("nan")), "yes" if b["flag"] else ""]
               for b in p["balance"]]
        plots.overlap(p["overlap"], d, "psm_overlap.png", "propensity overlap")
        plots.love_plot(p["balance"], d, "psm_balance.png", "covariate balance")
        sections.append(("Propensity-score matching",
                         f"<p>{m['matched']:,} of {m['treated']:,} treated matched (caliper {m['caliper_sd']} SD of "
                         f"the logit = {m['caliper_width']:.4g}; replacement: {m['replace']}; "
                         f"exact on: {', '.join(m.get('exact') or []) or 'nothing'}; "
                         f"{m['distinct_controls']:,} distinct controls). Balanced (all |SMD| &lt; 0.1): "
                         f"{p['balanced']}.</p>"
                         + H.table(["outcome", "ATT", "SE", "CI low", "CI high", "p"], rows)
                         + H.table(["covariate", "SMD before", "SMD after", "|SMD| >= 0.1"], bal)
                         + H.figure("psm_overlap.png") + H.figure("psm_balance.png")))
    if "uplift" in res:
        u = res["uplift"]
        rows = [[m, r["qini_coefficient"], r["auuc"], r.get("uplift_gini"), r["qini_area_per_row"]]
                for m, r in u["metrics"].items()]
        imp = [[m, ", ".join(f"{f} {v:.3f}" for f, v in fi)] for m, fi in u["importances"].items()]
        plots.qini_per_row(u["metrics"], d, "uplift_qini.png", "Qini curves per row (test split)")
        plots.curves(u["metrics"], "uplift", d, "uplift_curves.png", "Uplift curves (test split)")
        html = (f"<p>Transformed-outcome GBT per metric; propensity: {u['propensity']}; "
                f"evaluated on {u['test_rows']:,} held-out rows.</p>"
                + H.table(["metric", "Qini coefficient", "AUUC", "uplift Gini", "Qini area per row"], rows)
                + H.table(["metric", "top feature importances"], imp)
                + H.figure("uplift_qini.png") + H.figure("uplift_curves.png"))
        if "quadrants" in u:
            q = u["quadrants"]
            keys = [k for k in q[0] if k.startswith("mean_")]
            html += H.table(["quadrant", "n", "share", *keys],
                            [[r["quadrant"], r["n"], r["share"], *[r[k] for k in keys]] for r in q])
            outs = res["outcomes"]
            plots.quadrant_scatter(u["scatter"], d, "uplift_quadrants.png", f"uplift {outs[0]}", f"uplift {outs[1]}")
            html += H.figure("uplift_quadrants.png")
        sections.append(("Multi-metric uplift", html))
    if "subgroups" in res:
        html = ""
        for o, rows in res["subgroups"].items():
            name = f"subgroups_{o}.png"
            plots.subgroup_forest(rows, d, name, f"observed uplift in {o} by subgroup")
            html += f"<h3>{o}</h3>" + H.table(
                ["feature", "bin", "n treated", "n control", "uplift", "SE", "CI low", "CI high", "p"],
                [[r["feature"], r["bin"], r["n_treated"], r["n_control"], r.get("uplift", ""), r.get("se", ""),
                  r.get("ci_low", ""), r.get("ci_high", ""), r.get("p_value", "")] for r in rows]) + H.figure(name)
        sections.append(("Subgroups (observed difference treated - control)", html))
    if "quasi" in res:
        qv = res["quasi"]
        keys = [k for k in qv["balance"][0] if k != "covariate"]
        c = qv["correlation"]
        sections.append(("Quasi-experimental variable (month-boundary window ratio)",
                         f"<p>Per {qv['unit']}: share of reviews in the first {qv['width_b_days']} days of a month "
                         f"vs the last {qv['width_a_days']} days before it; {qv['units']:,} units in ratio groups. "
                         f"Correlation with mean {qv['outcome']}: r = {c['r']:.4f} "
                         f"[{c['ci_low']:.4f}, {c['ci_high']:.4f}], p = {c['p_value']:.3g}.</p>"
                         + H.table(["covariate", *keys],
                                   [[b["covariate"], *[b[k] for k in keys]] for b in qv["balance"]])))
    page = H.page(f"Causal study: {res['study']}", sections, subtitle=res.get("description", ""))
    with open(os.path.join(d, "index.html"), "w", encoding="utf-8") as fh:
        fh.write(page)


def run(spark: SparkSession, cfg: Config) -> dict[str, Any]:
    st = load_study(cfg["causal"]["study"])
    root = cfg["run"]["root"]
    timer = StageTimer("causal")
    reviews = io.read_parquet(spark, io.dataset_path(root, "reviews"), "ingest")
    res = run_study(spark, reviews, st, timer)
    res.update({"config_hash": cfg.hash(), "study_file": st["_path"], "timings": timer.timings,
                "input": io.dataset_path(root, "reviews")})
    out = io.dataset_path(root, f"report/causal/{st['name']}")
    with timer.stage("report"), io.publish_dir(spark, out) as d:
        write_report(res, d)
        io.write_json_atomic(None, os.path.join(d, "causal.json"), res)
    log.info("causal report: %s", out)
    return res
