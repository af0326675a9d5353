"""Incremental by day, idempotent and backfillable (docs/incremental.md).

Five generated days (a few hundred reviews each, with malformed lines, same-day duplicates,
cross-day duplicates and late corrections, all counted by the generator) are ingested and
preprocessed three ways, each on its own run root:

* in order, day by day (input.format=tsv over the generated day directories), as the daily DAG
  does: ingest --set input.day=D, then preprocess --set input.day=D;
* in the order 3, 1, 2, 4, 5 (input.format=synthetic: the generate job writes each day just
  before it is ingested, as the DAG's generate task does), the last day's first attempt dying
  after its merge into reviews and before the ledger, then run again;
* as one run over all five days (input.day unset, the generate job writing every day).

All three end with the same reviews, tokens and quarantine, which equal an independent Python
reading of the rule (the latest arrival day's version of each review_id); the in-order and
all-days roots also with the same features. Each day's reconciliation equals the generator's
planted counts (for the permuted order: as moved by which of two days came first); a rerun of
a day changes no table; a day whose directory is missing or empty fails naming it.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.spark

DAYS = ("2015-09-01", "2015-09-02", "2015-09-03", "2015-09-04", "2015-09-05")
PERMUTED = (DAYS[2], DAYS[0], DAYS[1], DAYS[3], DAYS[4])
SYNTHETIC = ["synthetic.rows=1500", "synthetic.days=5", f"synthetic.start_day={DAYS[0]}", "synthetic.seed=7",
             "synthetic.customers=300", "synthetic.products=80", "synthetic.files=2",
             "synthetic.malformed_fraction=0.01", "synthetic.duplicate_fraction=0.01",
             "synthetic.cross_day_duplicate_fraction=0.05", "synthetic.correction_fraction=0.04"]
# Every category (the reconciliation then has no category exclusions to account for), and the
# chain without POS + lemma (the same incremental path at a fraction of the tagging time).
COMMON = ["input.categories=all", "ingest.log_examples=0", "text.pos_lemma=false"]


def _cfg(root: Path, *sets: str):
    from reviewrec.config import load_config

    return load_config([str(REPO / "conf" / "local.yaml")], [f"run.root={root}", *COMMON, *SYNTHETIC, *sets])


def _day(root: Path, day: str | None, tsv: Path | None = None, generate: bool = False) -> dict:
    """generate (synthetic input), ingest and preprocess for `day` (None: all days) on `root`."""
    from reviewrec import generate as G
    from reviewrec.ingest import job as ingest
    from reviewrec.preprocess import job as prep

    sets = [f"input.day={day}"] if day else []
    if tsv is not None:
        sets += ["input.format=tsv", f"input.path={tsv}"]
    cfg = _cfg(root, *sets)
    if generate:
        G.run(None, cfg)
    return {"ingest": ingest.run(_spark(), cfg), "preprocess": prep.run(_spark(), cfg)}


_SESSION: list = []


def _spark():
    return _SESSION[0]


def _versions(spark, root: Path) -> dict[str, int]:
    from reviewrec import io

    return {n: io.table_version(spark, str(root / n))
            for n in ("reviews", "tokens", "quarantine", "duplicates", "ingest_days")}


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory):
    """The three roots, every run's reports, the generator's stats, the rerun's versions."""
    import time

    from reviewrec import generate as G
    from reviewrec.ingest import days as D

    _SESSION[:] = [spark]
    base = tmp_path_factory.mktemp("incremental")
    t0 = time.monotonic()
    stats = G.run(None, _cfg(base / "gen"))  # every day, as <gen>/raw/dt=.../
    tsv = base / "gen" / "raw"
    out: dict = {"base": base, "stats": stats, "tsv": tsv, "in_order": {}, "permuted": {}, "timings": {}}

    for day in DAYS:
        out["in_order"][day] = _day(base / "in_order", day, tsv=tsv)
    out["timings"]["in_order"] = time.monotonic() - t0

    # Day 2 again, after day 5: nothing may change.
    before = _versions(spark, base / "in_order")
    out["rerun"] = _day(base / "in_order", DAYS[1], tsv=tsv)
    out["versions"] = (before, _versions(spark, base / "in_order"))

    t1 = time.monotonic()
    real_ledger_rows = D.ledger_rows
    for day in PERMUTED:
        if day == PERMUTED[-1]:
            # The first attempt dies after its merge into reviews, before the ledger.
            def dying(*a, **k):  # noqa: ANN002, ANN003
                raise RuntimeError("killed between the merge and the ledger")
            D.ledger_rows = dying
            try:
                with pytest.raises(RuntimeError, match="killed between"):
                    _day(base / "permuted", day, generate=True)
            finally:
                D.ledger_rows = real_ledger_rows
        out["permuted"][day] = _day(base / "permuted", day, generate=True)
    out["timings"]["permuted"] = time.monotonic() - t1

    t2 = time.monotonic()
    G.run(None, _cfg(base / "all_days"))
    out["all_days"] = _day(base / "all_days", None)
    out["timings"]["all_days"] = time.monotonic() - t2
    print(f"incremental runs: {json.dumps({k: round(v) for k, v in out['timings'].items()})} s")
    return out


def _rows(spark, path: Path, drop: tuple[str, ...] = ()) -> list[tuple]:
    from reviewrec import io

    df = io.read_dataset(spark, str(path), "the run")
    cols = sorted(c for c in df.columns if c not in drop)
    return sorted(tuple(repr(r[c]) for c in cols) for r in df.collect())


def _expected(stats, order: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """Each day's counts when the days are ingested in `order`: the generator's, moved where a
    re-send is ingested before the review it re-sends (it is then the new review, and the
    original, met later, a duplicate or a superseded older version)."""
    pos = {d: i for i, d in enumerate(order)}
    exp = {d: {"accepted": s["good_rows"], "duplicates": s["duplicate_rows"] + s["cross_day_duplicates"],
               "corrections": s["corrections"], "superseded": 0, "quarantined": sum(s["malformed_lines"].values()),
               "text_corrections": s["corrections_text_changed"]}
           for d, s in stats.days.items()}
    for dst, s in stats.days.items():
        for src, k in s["resent_from"].items():
            if pos[dst] < pos[src]:
                moved = k["duplicates"] + k["corrections"]
                exp[dst]["accepted"] += moved
                exp[dst]["duplicates"] -= k["duplicates"]
                exp[dst]["corrections"] -= k["corrections"]
                exp[dst]["text_corrections"] -= k["corrections_text_changed"]
                exp[src]["accepted"] -= moved
                exp[src]["duplicates"] += k["duplicates"]
                exp[src]["superseded"] += k["corrections"]
    return exp


KEYS = ("accepted", "duplicates", "corrections", "superseded", "quarantined")


# -- the same end, whatever the order -----------------------------------------------------------

def test_every_order_ends_with_the_same_reviews_tokens_and_quarantine(spark, runs):
    base = runs["base"]
    for name, drop in (("reviews", ()), ("tokens", ()), ("quarantine", ("source_file",))):
        in_order = _rows(spark, base / "in_order" / name, drop)
        assert in_order, name
        assert _rows(spark, base / "permuted" / name, drop) == in_order, name
        assert _rows(spark, base / "all_days" / name, drop) == in_order, name


def test_reviews_follow_the_rule_read_independently(spark, runs):
    """The latest arrival day's version of each review_id, arrival_day its first day: read from
    the generated files in Python (every valid line: test_ingest's reference classifier)."""
    from pyspark.sql import functions as F

    from reviewrec import io
    from reviewrec import schema as S
    from test_ingest import P, ref_kind

    want: dict[str, dict] = {}
    for day in DAYS:  # in day order: a later day's line replaces an earlier one
        for f in sorted((runs["tsv"] / f"dt={day}").glob("*.tsv.gz")):
            for line in gzip.open(f, "rb").read().split(b"\n"):
                if line and ref_kind(line) == P.OK:
                    cols = line.decode().split("\t")
                    rid = cols[2].strip(" ")
                    first = want.get(rid, {}).get("arrival", day)
                    want[rid] = {"star": int(cols[7]), "body": cols[13], "arrival": first, "last": day}
    got = {r[S.REVIEW_ID]: {"star": r[S.STAR_RATING], "body": r[S.REVIEW_BODY], "arrival": str(r["arrival_day"]),
                            "last": str(r["last_seen_day"])}
           for r in io.read_dataset(spark, str(runs["base"] / "in_order" / "reviews"), "ingest")
           .select(S.REVIEW_ID, S.STAR_RATING, S.REVIEW_BODY, "arrival_day", "last_seen_day").collect()}
    assert got == want
    corrected = [r for r, v in want.items() if v["arrival"] != v["last"]]
    assert len(corrected) >= runs["stats"].corrections  # and the cross-day duplicates
    reviews = io.read_dataset(spark, str(runs["base"] / "in_order" / "reviews"), "ingest")
    assert reviews.count() == reviews.select(S.REVIEW_ID).distinct().count()
    assert reviews.filter(F.col("arrival_day").isNull()).count() == 0


def test_features_in_order_equal_features_of_all_days(spark, runs):
    from reviewrec.features import job as features

    base = runs["base"]
    for root in ("in_order", "all_days"):
        features.run(spark, _cfg(base / root))
    assert _rows(spark, base / "in_order" / "features") == _rows(spark, base / "all_days" / "features")
    vocab = [json.loads((base / r / "features_meta" / "vocab.json").read_text()) for r in ("in_order", "all_days")]
    assert vocab[0] == vocab[1] and vocab[0]


# -- reconciliation ---------------------------------------------------------------------------

def test_each_day_reconciles_with_the_planted_counts_in_order(runs):
    stats = runs["stats"]
    exp = _expected(stats, DAYS)
    for day in DAYS:
        rep = runs["in_order"][day]["ingest"]
        assert {k: rep[k] for k in KEYS} == {k: exp[day][k] for k in KEYS}, day
        assert rep["superseded"] == 0 and rep["corrections"] == stats.days[day]["corrections"]
        assert rep["quarantined_by_reason"] == stats.days[day]["malformed_lines"], day
        assert rep["input"]["records"] == stats.days[day]["lines_written"], day
        assert rep["reconciled"] and rep["total"]["reconciled"]
    total = runs["in_order"][DAYS[-1]]["ingest"]["total"]
    assert total["accepted"] == total["reviews"] == stats.good_rows
    assert total["duplicates"] == stats.duplicate_rows + stats.cross_day_duplicates
    assert total["corrections"] == stats.corrections and total["quarantined"] == sum(stats.malformed_lines.values())
    assert total["records"] == stats.lines_written
    assert sorted(runs["in_order"][DAYS[-1]]["ingest"]["days"]) == list(DAYS)


def test_one_run_over_all_days_reports_each_day_as_the_days_in_order(runs):
    got = runs["all_days"]["ingest"]
    last = runs["in_order"][DAYS[-1]]["ingest"]
    assert got["mode"] == "all" and got["days"] == last["days"]
    assert {k: got[k] for k in KEYS} == {k: last["total"][k] for k in KEYS}
    assert got["input"]["records"] == runs["stats"].lines_written and got["reconciled"]


def test_the_permuted_order_moves_counts_only_between_the_days_it_swaps(runs):
    exp = _expected(runs["stats"], PERMUTED)
    for day in PERMUTED:
        rep = runs["permuted"][day]["ingest"]
        assert {k: rep[k] for k in KEYS} == {k: exp[day][k] for k in KEYS}, day
        assert rep["reconciled"]
    assert runs["permuted"][DAYS[0]]["ingest"]["superseded"] > 0  # its originals came after day 3's corrections
    total, in_order = runs["permuted"][PERMUTED[-1]]["ingest"]["total"], runs["in_order"][DAYS[-1]]["ingest"]["total"]
    assert total["reviews"] == in_order["reviews"] and total["records"] == in_order["records"]
    assert total["corrections"] + total["superseded"] == in_order["corrections"]


def test_quarantine_is_kept_per_day(spark, runs):
    from reviewrec import io

    q = io.read_dataset(spark, str(runs["base"] / "permuted" / "quarantine"), "ingest")
    per_day = {str(r["arrival_day"]): r["count"] for r in q.groupBy("arrival_day").count().collect()}
    assert per_day == {d: sum(s["malformed_lines"].values()) for d, s in runs["stats"].days.items()}


def test_preprocess_tokenises_only_new_reviews_and_changed_texts(runs):
    for name, order in (("in_order", DAYS), ("permuted", PERMUTED)):
        exp = _expected(runs["stats"], order)
        for i, day in enumerate(order):
            rep = runs[name][day]["preprocess"]
            assert rep["mode"] == ("full" if i == 0 else "incremental"), (name, day)
            assert rep["processed"] == exp[day]["accepted"] + exp[day]["text_corrections"], (name, day, rep)
            assert rep["processed_new"] == exp[day]["accepted"], (name, day)
    assert runs["stats"].corrections > runs["stats"].corrections_text_changed > 0  # star-only ones kept their tokens
    assert runs["all_days"]["preprocess"]["mode"] == "full"


# -- idempotent, resumable --------------------------------------------------------------------

def test_rerunning_a_day_changes_nothing(runs):
    before, after = runs["versions"]
    assert before == after  # no table has a new version
    rerun, first = runs["rerun"], runs["in_order"][DAYS[1]]
    assert rerun["ingest"]["this_run"]["files_read"] == 0 and rerun["ingest"]["this_run"]["files_already_ingested"] == 2
    assert {k: rerun["ingest"][k] for k in KEYS} == {k: first["ingest"][k] for k in KEYS}
    assert rerun["preprocess"]["processed"] == 0


def test_a_day_that_died_after_its_merge_resumes_from_its_commit(spark, runs):
    from reviewrec import io

    rep = runs["permuted"][PERMUTED[-1]]["ingest"]
    assert rep["this_run"]["recovered_from_commit"] is True
    merges = [h for h in io.history(spark, str(runs["base"] / "permuted" / "reviews"))
              if h["userMetadata"].get("ingest", {}).get("day") == PERMUTED[-1]]
    assert len(merges) == 1  # merged once, not again by the resumed run


# -- failures -------------------------------------------------------------------------------

def test_a_missing_or_empty_day_fails_naming_its_directory(spark, runs, tmp_path):
    from reviewrec.ingest import job as ingest

    root = runs["base"] / "in_order"
    with pytest.raises(FileNotFoundError, match=f"{runs['tsv']}/dt=2015-09-09 does not exist"):
        ingest.run(spark, _cfg(root, "input.day=2015-09-09", "input.format=tsv", f"input.path={runs['tsv']}"))
    (tmp_path / "in" / "dt=2015-09-06").mkdir(parents=True)
    (tmp_path / "in" / "dt=2015-09-06" / "_SUCCESS").write_text("")
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}/in/dt=2015-09-06 holds no data files"):
        ingest.run(spark, _cfg(root, "input.day=2015-09-06", "input.format=tsv", f"input.path={tmp_path}/in"))


def test_a_changed_file_of_an_ingested_day_is_refused(spark, runs):
    from reviewrec.ingest import days as D
    from reviewrec.ingest import job as ingest

    root = runs["base"] / "permuted"  # its own generated input; the tests before read only its tables
    part = sorted((root / "raw" / f"dt={DAYS[0]}").glob("*.tsv.gz"))[0]
    part.write_bytes(part.read_bytes() + gzip.compress(b"one more line\n"))
    with pytest.raises(D.InputChanged, match=f"day {DAYS[0]}: file\\(s\\) already ingested changed since: "
                                             f"{part.name}"):
        ingest.run(spark, _cfg(root, f"input.day={DAYS[0]}"))


# -- configuration (no Spark) ---------------------------------------------------------------

@pytest.mark.parametrize("bad", ["2015-9-1", "yesterday", "2015-02-30"])
def test_input_day_must_be_a_day(bad):
    from reviewrec.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="input.day .* is not a day"):
        load_config([str(REPO / "conf" / "local.yaml")], [f"input.day={bad}", "synthetic.days=3"])


def test_input_day_settings_and_the_config_hash(tmp_path):
    from reviewrec.config import ConfigError, load_config

    local = str(REPO / "conf" / "local.yaml")
    (tmp_path / "x.tsv").write_text("")
    cfg = load_config([local], ["input.day=2015-09-02", "synthetic.days=3"])
    assert cfg["input"]["day"] == "2015-09-02"  # YAML's date, as the string
    for sets, why in ((["input.day=2015-09-02"], "synthetic.days > 0"),
                      (["input.day=2015-09-02", "synthetic.days=3", "ingest.dedupe=false"], "ingest.dedupe = true"),
                      (["input.day=2015-08-31", "synthetic.days=3"], "before synthetic.start_day"),
                      (["input.day=2015-09-02", "input.format=tsv", f"input.path={tmp_path}/*"], "not a pattern"),
                      (["synthetic.days=3", "synthetic.rows=2"], "fewer than synthetic.days")):
        with pytest.raises(ConfigError, match=why):
            load_config([local], sets)
    base = load_config([local]).hash()
    # Without days the new keys leave the hash as it was (run roots made before them stay current) ...
    assert load_config([local], ["synthetic.days=0", "synthetic.correction_fraction=0.3"]).hash() == base
    # ... a day is part of what a run reads, so of its hash: one day's outputs are not another's.
    days = load_config([local], ["synthetic.days=3"]).hash()
    assert days != base
    assert load_config([local], ["synthetic.days=3", "input.day=2015-09-02"]).hash() not in (base, days)
    assert load_config([local], ["synthetic.days=3", "synthetic.correction_fraction=0.3"]).hash() != days
