"""The run's front page, <root>/report/index.html (reviewrec.report.index).

Built from small literal stage reports (the JSON each stage writes), then from a real pipeline
run of three stages: links must point at the stage pages that exist, the headline numbers
must be the reports' own, and a stage that did not run is shown as missing.
"""
from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from reviewrec.report import index

INGEST = {"input": {"format": "synthetic", "lines": 20044, "header_lines": 2, "blank_lines": 2, "records": 20040},
          "accepted": 19943, "quarantined": 58,
          "quarantined_by_reason": {"bad_date": 31, "wrong_column_count": 27}, "duplicates": 39,
          "excluded_by_category": 0, "reconciled": True}
EDA = {"reviews": 19943, "customers": 3987, "products": 800, "mean_star": 3.6712,
       "words": {"total_words": 281234, "vocabulary_size": 2417, "source": "lemmas (preprocess job)"}}
METRICS = {
    "models": {
        "lstm": {"accuracy": 0.7961, "macro_f1": 0.6703, "weighted_f1": 0.7841, "rmse": 0.658, "mae": 0.347},
        "majority": {"accuracy": 0.4441, "macro_f1": 0.123, "weighted_f1": 0.2731, "rmse": 2.285, "mae": 1.55},
        "tfidf_lr": {"accuracy": 0.7577, "macro_f1": 0.5767, "weighted_f1": 0.7286, "rmse": 0.871, "mae": 0.598},
    },
    "bootstrap": {"level": 0.95, "differences": {"tfidf_lr": {
        "accuracy": {"estimate": 0.0384, "interval": [0.0323, 0.0447], "ahead": True},
        "rmse": {"estimate": -0.213, "interval": [-0.23, -0.198], "ahead": True}}}},
}
RECS = {"counts": {"users": 3987, "items": 800, "ratings": 19943, "neighbor_rows": 73210,
                   "recommendation_rows": 39870},
        "scorer": "model", "recommendation_sources": {"model": 39000, "popularity": 870},
        "evaluation": {"train_until": "2015-03-14", "methods": {"filled": {"rmse": 1.607, "mae": 1.452, "n": 1308},
                                                             "global_mean": {"rmse": 1.545, "mae": 1.381, "n": 1308}}}}
PIPELINE = {"config_hash": "3f2a9c0d11aa", "stage_seconds": {"ingest": 20.5, "eda": 9.25, "evaluate": 70.0},
            "skipped_stages": ["train"], "root": "runs/default"}


class _Page(HTMLParser):
    """Links (href -> text), table rows (lists of cell texts) and the text of 'missing' notes."""

    def __init__(self) -> None:
        super().__init__()
        self.links: dict[str, str] = {}
        self.rows: list[list[str]] = []
        self.missing: list[str] = []
        self._href: str | None = None
        self._cell: list[str] | None = None
        self._missing: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a":
            self._href = a["href"]
            self.links[self._href or ""] = ""
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif "missing" in (a.get("class") or "").split():
            self._missing = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._href = None
        elif tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag in ("p", "span") and self._missing is not None:
            self.missing.append("".join(self._missing))
            self._missing = None

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self.links[self._href] += data
        if self._cell is not None:
            self._cell.append(data)
        if self._missing is not None:
            self._missing.append(data)

    def row(self, first: str) -> list[str]:
        found = [r for r in self.rows if r and r[0] == first]
        assert len(found) == 1, f"expected one row starting {first!r}, got {found}"
        return found[0]


def _write(report: Path, rel: str, obj: object) -> None:
    p = report / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")


def _parse(path: str) -> _Page:
    page = _Page()
    page.feed(Path(path).read_text(encoding="utf-8"))
    return page


def _full_root(tmp_path: Path) -> Path:
    report = tmp_path / "run" / "report"
    for rel, obj in (("ingest.json", INGEST), ("eda/eda.json", EDA), ("model/metrics.json", METRICS),
                     ("recs/summary.json", RECS), ("pipeline.json", PIPELINE)):
        _write(report, rel, obj)
    for page in ("eda/index.html", "model/index.html", "recs/index.html"):
        _write(report, page, "<html></html>")
    return tmp_path / "run"


def test_links_resolve_and_numbers_are_the_reports(tmp_path: Path) -> None:
    root = _full_root(tmp_path)
    path = index.write(None, str(root))
    assert path == f"{root}/report/index.html"
    page = _parse(path)
    assert set(page.links) == {"ingest.json", "eda/index.html", "model/index.html", "recs/index.html"}
    for href in page.links:
        assert (root / "report" / href).is_file(), href
    assert page.missing == []

    assert page.row("Star-rating model") == [
        "Star-rating model", "LSTM accuracy 0.796, macro F1 0.670, RMSE 0.658 (TF-IDF + LR: 0.758, 0.577, 0.871)",
        "model/index.html"]
    assert page.row("Ingest")[1] == ("20,040 records: 19,943 accepted, 58 quarantined, 39 duplicates dropped, "
                                     "0 outside the kept categories; reconciled: yes")
    assert page.row("accepted") == ["accepted", "19,943"]
    assert page.row("input records") == ["input records", "20,040"]
    assert page.row("blank lines") == ["blank lines", "2"]
    assert page.row("quarantined: bad_date") == ["quarantined: bad_date", "31"]
    assert page.row("reconciled") == ["reconciled", "yes"]
    assert page.row("vocabulary size") == ["vocabulary size", "2,417"]
    assert page.row("mean star") == ["mean star", "3.671"]
    assert page.row("LSTM") == ["LSTM", "0.7961", "0.6703", "0.7841", "0.658", "0.347"]
    assert page.row("TF-IDF + logistic regression")[1:3] == ["0.7577", "0.5767"]
    assert page.row("majority class")[1] == "0.4441"
    assert page.row("accuracy") == ["accuracy", "0.0384", "[+0.0323, +0.0447]", "LSTM ahead"]
    assert page.row("RMSE") == ["RMSE", "-0.213", "[-0.2300, -0.1980]", "LSTM ahead"]
    assert page.row("matrix filled by") == ["matrix filled by", "model"]
    assert page.row("recommendations from popularity") == ["recommendations from popularity", "870"]
    assert page.row("filled") == ["filled", "1.607", "1.452", "1,308"]
    assert "fitted on the reviews up to 2015-03-14," in Path(path).read_text(encoding="utf-8")
    assert page.row("train") == ["train", "skipped: outputs exist for this config"]
    assert page.row("total") == ["total", "99.75"]


def test_missing_stages_are_shown_as_missing(tmp_path: Path) -> None:
    root = _full_root(tmp_path)
    report = root / "report"
    for rel in ("recs/summary.json", "recs/index.html", "model/index.html"):
        (report / rel).unlink()
    _write(report, "ingest.json", '{"accepted": 12,')  # cut short: unreadable, not an error
    page = _parse(index.write(None, str(root)))
    assert "recs/index.html" not in page.links and "model/index.html" not in page.links
    assert set(page.links) == {"eda/index.html"}
    assert any("recs/summary.json not found" in m and "recommend" in m for m in page.missing), page.missing
    assert any("model/index.html missing" in m for m in page.missing), page.missing
    assert any(m.startswith("missing: unreadable ingest.json") for m in page.missing), page.missing
    # What is there is still shown: the model's numbers without its page, the EDA with its link.
    assert page.row("LSTM")[1] == "0.7961"
    assert page.row("reviews") == ["reviews", "19,943"]
    assert page.row("Recommendations") == ["Recommendations", "missing", "—"]
    assert page.row("Star-rating model")[2] == "—"


def test_empty_root_gives_a_page_of_missing_reports(tmp_path: Path) -> None:
    page = _parse(index.write(None, str(tmp_path / "nothing")))
    assert page.links == {}
    assert len([m for m in page.missing if m.startswith("missing:")]) == len(index.REPORTS)


@pytest.mark.spark
def test_pipeline_writes_the_index_from_its_stages(spark, tmp_path: Path) -> None:  # noqa: ANN001
    """A real pipeline of generate, ingest and eda: the index shows ingest.json's and eda.json's
    own numbers, links the EDA page, and marks the stages that did not run as missing; a rerun
    with run.skip_existing lists the stages it skipped."""
    from reviewrec import pipeline
    from reviewrec.config import load_config

    root = tmp_path / "run"
    sets = [f"run.root={root}", "synthetic.rows=400", "synthetic.customers=80", "synthetic.products=20",
            "run.skip_existing=true"]
    cfg = load_config([str(Path(__file__).resolve().parents[1] / "conf" / "local.yaml")], sets)
    stages = tuple(s for s in pipeline.STAGES if s.name in ("generate", "ingest", "eda"))
    assert [s.name for s in stages] == ["generate", "ingest", "eda"]
    mp = pytest.MonkeyPatch()
    mp.setattr(pipeline, "STAGES", stages)
    try:
        summary = pipeline.run(spark, cfg)
        assert list(summary["stage_seconds"]) == ["generate", "ingest", "eda"]
        ingest = json.loads((root / "report" / "ingest.json").read_text())
        eda = json.loads((root / "report" / "eda" / "eda.json").read_text())
        page = _parse(str(root / "report" / "index.html"))
        assert page.row("accepted") == ["accepted", f"{ingest['accepted']:,}"]
        assert page.row("input records") == ["input records", f"{ingest['input']['records']:,}"]
        assert page.row("customers") == ["customers", f"{eda['customers']:,}"]
        assert page.row("total words") == ["total words", f"{eda['words']['total_words']:,}"]
        assert set(page.links) == {"ingest.json", "eda/index.html"}
        assert any("model/metrics.json not found" in m for m in page.missing)
        assert any("recs/summary.json not found" in m for m in page.missing)

        again = pipeline.run(spark, cfg)
        assert again["stage_seconds"] == {} and again["skipped_stages"] == ["generate", "ingest", "eda"]
        page = _parse(str(root / "report" / "index.html"))
        assert page.row("eda") == ["eda", "skipped: outputs exist for this config"]
    finally:
        mp.undo()
