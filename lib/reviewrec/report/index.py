"""The run's front page: <root>/report/index.html, written at the end of the pipeline job.

It links every stage's report with its headline numbers, read from the JSON the stages
already write:

    report/pipeline.json        stage timings and config hash (pipeline job)
    report/ingest.json          input lines -> accepted / quarantined / duplicates (ingest)
    report/eda/eda.json         reviews, customers, products, words (eda; page eda/index.html)
    report/model/metrics.json   test metrics of the LSTM and its baselines (evaluate; model/index.html)
    report/recs/summary.json    counts, fill source, time-split rating error (recommend; recs/index.html)

A report that is absent (its stage did not run, e.g. skipped by configuration) is shown as
missing, not raised: the page is a view of whatever the run root holds.
"""
from __future__ import annotations

import html
import json
import logging
import os
from collections.abc import Sequence
from typing import Any

from pyspark.sql import SparkSession

from reviewrec import io
from reviewrec.report import html as H

log = logging.getLogger(__name__)

# name -> (JSON path under report/, HTML page under report/ or None, the stage that writes it)
REPORTS: dict[str, tuple[str, str | None, str]] = {
    "pipeline": ("pipeline.json", None, "pipeline"),
    "ingest": ("ingest.json", None, "ingest"),
    "eda": ("eda/eda.json", "eda/index.html", "eda"),
    "model": ("model/metrics.json", "model/index.html", "evaluate"),
    "recs": ("recs/summary.json", "recs/index.html", "recommend"),
}

MODEL_LABELS = {"lstm": "LSTM", "tfidf_lr": "TF-IDF + logistic regression", "majority": "majority class"}
MISSING = "—"


def _read_text(spark: SparkSession | None, path: str) -> str | None:
    """The file's text, or None when it does not exist (local paths without Spark)."""
    if "://" not in path or path.startswith("file://"):
        local = path[len("file://"):] if path.startswith("file://") else path
        if not os.path.isfile(local):
            return None
        with open(local, encoding="utf-8") as fh:
            return fh.read()
    if spark is None or not io.path_exists(spark, path):
        return None
    return io.read_text(spark, path)


def read_reports(spark: SparkSession | None, report_dir: str) -> dict[str, Any]:
    """name -> {"data": parsed JSON or None, "page": True when its HTML page exists, "error": str}."""
    out: dict[str, Any] = {}
    for name, (js, page, _) in REPORTS.items():
        entry: dict[str, Any] = {"data": None, "page": False, "error": None}
        text = _read_text(spark, f"{report_dir}/{js}")
        if text is not None:
            try:
                entry["data"] = json.loads(text)
            except ValueError as e:
                entry["error"] = f"unreadable {js}: {e}"
        if page:
            entry["page"] = _read_text(spark, f"{report_dir}/{page}") is not None
            # On an object store a published page is in its directory's current version.
            entry["href"] = io.resolve(spark, f"{report_dir}/{page}")[len(report_dir) + 1:]
        out[name] = entry
    return out


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return MISSING
        d = d[k]
    return MISSING if d is None else d


def _missing(name: str, entry: dict[str, Any]) -> str:
    js, _, stage = REPORTS[name]
    why = entry["error"] or f"report/{js} not found: the {stage} stage has not written it in this run root"
    return f"<p class='missing'>missing: {html.escape(why)}</p>"


def _heading_link(name: str, entry: dict[str, Any], title: str) -> str:
    page = REPORTS[name][1]
    if page and entry["page"]:
        return f"{H.link(page, 'open the ' + title + ' report')}"
    if page:
        return f"<span class='missing'>page {html.escape(page)} missing</span>"
    return H.link(REPORTS[name][0], REPORTS[name][0])


def _pipeline(entry: dict[str, Any]) -> str:
    d = entry["data"]
    if d is None:
        return _missing("pipeline", entry)
    secs = d.get("stage_seconds") or {}
    skipped = d.get("skipped_stages") or []
    rows: list[Sequence[Any]] = [(s, v) for s, v in secs.items()]
    rows += [(s, "skipped: outputs exist for this config") for s in skipped]
    total = sum(v for v in secs.values() if isinstance(v, (int, float)))
    rows.append((H.Markup("<b>total</b>"), round(total, 2)))
    return (f"<p>config {html.escape(str(_get(d, 'config_hash')))}</p>"
            + H.table(["stage", "seconds"], rows))


def _ingest(entry: dict[str, Any]) -> str:
    d = entry["data"]
    if d is None:
        return _missing("ingest", entry)
    reasons = d.get("quarantined_by_reason") or {}
    rows = [("input lines", _get(d, "input", "lines")), ("header lines", _get(d, "input", "header_lines")),
            ("blank lines", _get(d, "input", "blank_lines")),
            ("input records", _get(d, "input", "records")), ("accepted", _get(d, "accepted")),
            ("quarantined", _get(d, "quarantined")), ("duplicates dropped", _get(d, "duplicates")),
            ("excluded by category", _get(d, "excluded_by_category")),
            ("reconciled", {True: "yes", False: "NO"}.get(d.get("reconciled"), MISSING))]
    rows += [(f"quarantined: {r}", n) for r, n in reasons.items()]
    return H.table(["measure", "value"], rows) + f"<p>{_heading_link('ingest', entry, 'ingest')}</p>"


def _eda(entry: dict[str, Any]) -> str:
    d = entry["data"]
    if d is None:
        return _missing("eda", entry)
    rows = [("reviews", _get(d, "reviews")), ("customers", _get(d, "customers")), ("products", _get(d, "products")),
            ("mean star", _get(d, "mean_star")), ("total words", _get(d, "words", "total_words")),
            ("vocabulary size", _get(d, "words", "vocabulary_size")), ("words from", _get(d, "words", "source"))]
    return f"<p>{_heading_link('eda', entry, 'EDA')}</p>" + H.table(["measure", "value"], rows)


def _model(entry: dict[str, Any]) -> str:
    d = entry["data"]
    if d is None:
        return _missing("model", entry)
    models = d.get("models") or {}
    keys = ["accuracy", "macro_f1", "weighted_f1", "rmse", "mae"]
    rows = [[MODEL_LABELS.get(n, n)] + [_get(m, k) for k in keys] for n, m in models.items()]
    out = f"<p>{_heading_link('model', entry, 'model')}</p>"
    out += H.table(["model (test split)", "accuracy", "macro F1", "weighted F1", "RMSE", "MAE"], rows)
    boot = d.get("bootstrap")
    diffs = _get(boot, "differences", "tfidf_lr")
    if isinstance(diffs, dict) and diffs:
        level = boot.get("level", 0.95)
        label = {"accuracy": "accuracy", "macro_f1": "macro F1", "weighted_f1": "weighted F1", "rmse": "RMSE",
                 "mae": "MAE"}
        rows = [[label.get(k, k), v.get("estimate", MISSING),
                 "[{:+.4f}, {:+.4f}]".format(*v["interval"]) if len(v.get("interval") or []) == 2 else MISSING,
                 "LSTM ahead" if v.get("ahead") else "not shown"] for k, v in diffs.items()]
        out += (f"<p>LSTM minus TF-IDF + logistic regression, {level:.0%} paired bootstrap interval:</p>"
                + H.table(["metric", "difference", "interval", "verdict"], rows))
    members = d.get("ensemble_members")
    if members:
        out += f"<p>ensemble of {len(members)} networks (each member's metrics on the model page)</p>"
    return out


def _recs(entry: dict[str, Any]) -> str:
    d = entry["data"]
    if d is None:
        return _missing("recs", entry)
    c = d.get("counts") or {}
    rows = [("users", _get(c, "users")), ("items", _get(c, "items")), ("ratings", _get(c, "ratings")),
            ("neighbour rows", _get(c, "neighbor_rows")), ("recommendation rows", _get(c, "recommendation_rows")),
            ("matrix filled by", _get(d, "scorer"))]
    rows += [(f"recommendations from {s}", n) for s, n in sorted((d.get("recommendation_sources") or {}).items())]
    out = f"<p>{_heading_link('recs', entry, 'recommendation')}</p>" + H.table(["measure", "value"], rows)
    methods = _get(d, "evaluation", "methods")
    if isinstance(methods, dict) and methods:
        out += ("<p>rating error of the filled cells on the time split: fitted on the reviews up to "
                f"{html.escape(str(_get(d, 'evaluation', 'train_until')))}, scored on the later pairs whose "
                "user and item both occur up to then:</p>"
                + H.table(["method", "RMSE", "MAE", "pairs"],
                          [(m, _get(v, "rmse"), _get(v, "mae"), _get(v, "n")) for m, v in methods.items()]))
    phases = _get(d, "ranking", "phases")
    if isinstance(phases, dict) and phases:
        phase = "test" if "test" in phases else next(iter(phases))
        ranked = _get(phases, phase, "methods") or {}
        out += (f"<p>top-N lists on held-out data ({html.escape(str(_get(d, 'ranking', 'split')))} split, "
                f"{html.escape(phase)} phase), the job's ranker beside popularity:</p>"
                + H.table(["ranker", "HR@10", "NDCG@10", "Recall@20", "coverage@10", "liked HR@10"],
                          [(m, _get(v, "HR@10"), _get(v, "NDCG@10"), _get(v, "Recall@20"), _get(v, "coverage@10"),
                            _get(v, "liked_HR@10")) for m, v in ranked.items()]))
    examples = d.get("examples") or []
    if examples:
        out += ("<p>example recommendations:</p>"
                + H.table(["user", "rank", "item", "title"],
                          [(e.get("user"), e.get("rank"), e.get("item"), e.get("title") or "") for e in examples]))
    return out


def _num(v: Any, fmt: str) -> str:
    return format(v, fmt) if isinstance(v, (int, float)) and not isinstance(v, bool) else MISSING


def _glance(reports: dict[str, Any]) -> str:
    """One row per report: its headline and where to read more."""
    rows: list[Sequence[Any]] = []
    d = reports["ingest"]["data"]
    rows.append(("Ingest", "missing" if d is None else
                 f"{_num(_get(d, 'input', 'records'), ',')} records: {_num(_get(d, 'accepted'), ',')} accepted, "
                 f"{_num(_get(d, 'quarantined'), ',')} quarantined, {_num(_get(d, 'duplicates'), ',')} duplicates "
                 f"dropped, {_num(_get(d, 'excluded_by_category'), ',')} outside the kept categories; "
                 f"reconciled: {'yes' if d.get('reconciled') else 'NO'}",
                 H.link(REPORTS["ingest"][0], REPORTS["ingest"][0]) if d is not None else MISSING))
    d = reports["eda"]["data"]
    rows.append(("Exploratory analysis", "missing" if d is None else
                 f"{_num(_get(d, 'reviews'), ',')} reviews by {_num(_get(d, 'customers'), ',')} customers of "
                 f"{_num(_get(d, 'products'), ',')} products, mean star {_num(_get(d, 'mean_star'), '.2f')}",
                 _page_link("eda", reports["eda"])))
    d = reports["model"]["data"]
    lstm, lr = _get(d, "models", "lstm"), _get(d, "models", "tfidf_lr")
    rows.append(("Star-rating model", "missing" if d is None else
                 f"LSTM accuracy {_num(_get(lstm, 'accuracy'), '.3f')}, "
                 f"macro F1 {_num(_get(lstm, 'macro_f1'), '.3f')}, "
                 f"RMSE {_num(_get(lstm, 'rmse'), '.3f')} (TF-IDF + LR: {_num(_get(lr, 'accuracy'), '.3f')}, "
                 f"{_num(_get(lr, 'macro_f1'), '.3f')}, {_num(_get(lr, 'rmse'), '.3f')})",
                 _page_link("model", reports["model"])))
    d = reports["recs"]["data"]
    rows.append(("Recommendations", "missing" if d is None else
                 f"{_num(_get(d, 'counts', 'recommendation_rows'), ',')} recommendations for "
                 f"{_num(_get(d, 'counts', 'users'), ',')} users; matrix filled by {_get(d, 'scorer')}",
                 _page_link("recs", reports["recs"])))
    return H.table(["report", "headline", "page"], rows).replace("<table>", "<table class='glance'>", 1)


def _page_link(name: str, entry: dict[str, Any]) -> Any:
    page = REPORTS[name][1] or ""
    return H.link(entry.get("href") or page, page) if entry["page"] else MISSING


def render(reports: dict[str, Any], root: str = "") -> str:
    """The index page for `reports` (as returned by `read_reports`)."""
    sections = [
        ("At a glance", _glance(reports)),
        ("Ingest", _ingest(reports["ingest"])),
        ("Exploratory analysis", _eda(reports["eda"])),
        ("Star-rating model", _model(reports["model"])),
        ("Recommendations", _recs(reports["recs"])),
        ("Pipeline stages", _pipeline(reports["pipeline"])),
    ]
    return H.page("reviewrec run report", sections, subtitle=f"run root {root}" if root else "")


def write(spark: SparkSession | None, root: str) -> str:
    """Write <root>/report/index.html from the stage reports found there; returns its path."""
    report_dir = io.dataset_path(root, "report")
    reports = read_reports(spark, report_dir)
    absent = [n for n, e in reports.items() if e["data"] is None]
    if absent:
        log.info("report index: no report yet for %s", ", ".join(absent))
    path = f"{report_dir}/index.html"
    io.write_text_atomic(spark, path, render(reports, root))
    return path
