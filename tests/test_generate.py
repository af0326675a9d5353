"""The synthetic generator: deterministic, real schema, realistic skew, planted defects counted."""
from __future__ import annotations

import gzip
import hashlib
from collections import Counter
from pathlib import Path

from reviewrec import schema as S
from reviewrec.generate import generate_tsv


def _lines(out: Path) -> list[bytes]:
    lines: list[bytes] = []
    for f in sorted(out.glob("*.tsv.gz")):
        with gzip.open(f, "rb") as fh:
            lines += fh.read().split(b"\n")[:-1]
    return lines


def _digest(out: Path) -> str:
    h = hashlib.sha256()
    for line in _lines(out):
        h.update(line)
    return h.hexdigest()


def test_deterministic_and_seed_sensitive(tmp_path):
    a = generate_tsv(str(tmp_path / "a"), 3000, seed=5, files=2)
    b = generate_tsv(str(tmp_path / "b"), 3000, seed=5, files=2)
    generate_tsv(str(tmp_path / "c"), 3000, seed=6, files=2)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    assert a.as_dict() | {"files": None} == b.as_dict() | {"files": None}


def test_header_columns_and_counts(tmp_path):
    stats = generate_tsv(str(tmp_path / "g"), 5000, seed=1, malformed_fraction=0.0, duplicate_fraction=0.0, files=1)
    lines = _lines(tmp_path / "g")
    assert lines[0].decode() == S.PDS_HEADER
    rows = [ln.decode().split("\t") for ln in lines[1:]]
    assert len(rows) == stats.lines_written == stats.good_rows == 5000
    assert all(len(r) == 15 for r in rows)
    assert len({r[2] for r in rows}) == 5000  # review ids unique


def test_star_distribution_and_zipf_skew(tmp_path):
    generate_tsv(str(tmp_path / "g"), 20000, seed=3, malformed_fraction=0.0, duplicate_fraction=0.0, files=1,
                 customers=4000, products=800)
    rows = [ln.decode().split("\t") for ln in _lines(tmp_path / "g")[1:]]
    stars = Counter(int(r[7]) for r in rows)
    share = {s: stars[s] / len(rows) for s in range(1, 6)}
    for s, target in {1: 0.23, 2: 0.07, 3: 0.08, 4: 0.16, 5: 0.46}.items():
        assert abs(share[s] - target) < 0.03, (s, share)
    per_cust = Counter(r[1] for r in rows).most_common()
    per_prod = Counter(r[3] for r in rows).most_common()
    # Heavy heads and long tails: the top 1% of products hold far more than 1% of reviews.
    top = sum(n for _, n in per_prod[: len(per_prod) // 100 or 1]) / len(rows)
    assert top > 0.10
    assert per_cust[0][1] > 20 * (len(rows) / len(per_cust))


def test_text_carries_star_signal(tmp_path):
    generate_tsv(str(tmp_path / "g"), 5000, seed=4, malformed_fraction=0.0, duplicate_fraction=0.0, files=1)
    rows = [ln.decode().split("\t") for ln in _lines(tmp_path / "g")[1:]]
    pos, neg = {"excellent", "amazing", "perfect", "wonderful"}, {"terrible", "awful", "horrible", "useless"}

    def net(star: int) -> float:
        sel = [r for r in rows if r[7] == str(star)]
        words = [w.strip(".,!").lower() for r in sel for w in (r[12] + " " + r[13]).split()]
        return (sum(w in pos for w in words) - sum(w in neg for w in words)) / len(sel)

    assert net(5) > 0.5 > -0.5 > net(1)
    assert any("<br />" in r[13] or "&#34;" in r[13] or "&amp;" in r[13] for r in rows)


def test_planted_defects_are_counted_per_input_line(tmp_path):
    stats = generate_tsv(str(tmp_path / "g"), 4000, seed=9, malformed_fraction=0.1, duplicate_fraction=0.05, files=3)
    lines = _lines(tmp_path / "g")
    headers = sum(1 for ln in lines if ln.decode("utf-8", "replace") == S.PDS_HEADER)
    assert headers == 3
    assert len(lines) - headers == stats.lines_written
    assert stats.lines_written == stats.good_rows + stats.duplicate_rows + sum(stats.malformed_lines.values())
    assert set(stats.malformed_lines) == {S.R_COLUMN_COUNT, S.R_BAD_DATE, S.R_BAD_STAR, S.R_BAD_VOTES,
                                          S.R_MISSING_ID, S.R_UNDECODABLE, S.R_BAD_FLAG}
    undecodable = 0
    for ln in lines:
        try:
            ln.decode("utf-8")
        except UnicodeDecodeError:
            undecodable += 1
    assert undecodable == stats.malformed_lines[S.R_UNDECODABLE]


# -- days (reviewrec.generate.generate_days; docs/incremental.md) -------------------------------

DAY_ARGS = dict(days=4, rows=1200, seed=3, customers=300, products=80, malformed_fraction=0.02,
                duplicate_fraction=0.02, cross_day_duplicate_fraction=0.05, correction_fraction=0.04, files=2)


def _day_lines(out: Path, day: str) -> list[bytes]:
    lines: list[bytes] = []
    for f in sorted((out / f"dt={day}").glob("*.tsv.gz")):
        with gzip.open(f, "rb") as fh:
            lines += [ln for ln in fh.read().split(b"\n")[:-1] if ln != S.PDS_HEADER.encode()]
    return lines


def test_days_are_deterministic_and_a_day_alone_is_the_same_bytes(tmp_path):
    from reviewrec.generate import generate_days, rows_for_day

    a = generate_days(str(tmp_path / "a"), **DAY_ARGS)
    b = generate_days(str(tmp_path / "b"), **DAY_ARGS)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [f"dt=2015-09-0{i}" for i in range(1, 5)]
    one = generate_days(str(tmp_path / "c"), **DAY_ARGS, only_day="2015-09-03")
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["dt=2015-09-03"]
    for p in sorted((tmp_path / "a" / "dt=2015-09-03").iterdir()):  # byte for byte: gzip without a time stamp
        assert p.read_bytes() == (tmp_path / "b" / "dt=2015-09-03" / p.name).read_bytes() \
            == (tmp_path / "c" / "dt=2015-09-03" / p.name).read_bytes()
    strip = lambda d: {k: v for k, v in d.items() if k != "files"}  # noqa: E731
    assert strip(one.days["2015-09-03"]) == strip(a.days["2015-09-03"]) == strip(b.days["2015-09-03"])
    assert sum(rows_for_day(1200, 4, i) for i in range(4)) == 1200 == a.rows_requested
    # Other days of a longer feed than `days` still come, each with rows // days new reviews.
    later = generate_days(str(tmp_path / "c"), **DAY_ARGS, only_day="2015-09-09")
    assert later.rows_requested == 300 and (tmp_path / "c" / "dt=2015-09-03").exists()


def test_days_count_every_kind_of_line_and_where_re_sends_come_from(tmp_path):
    from reviewrec.generate import generate_days

    stats = generate_days(str(tmp_path / "g"), **DAY_ARGS)
    assert stats.cross_day_duplicates > 0 and stats.corrections > stats.corrections_text_changed > 0
    first_seen: dict[str, tuple[str, bytes]] = {}
    for day, d in stats.days.items():
        lines = _day_lines(tmp_path / "g", day)
        assert len(lines) == d["lines_written"] == (d["good_rows"] + d["duplicate_rows"] + d["cross_day_duplicates"]
                                                    + d["corrections"] + sum(d["malformed_lines"].values())), day
        assert d["cross_day_duplicates"] == sum(v["duplicates"] for v in d["resent_from"].values())
        assert d["corrections"] == sum(v["corrections"] for v in d["resent_from"].values())
        assert all(src < day for src in d["resent_from"])
        dups = corrections = text = 0
        for ln in lines:
            try:
                cols = ln.decode("utf-8").split("\t")
            except UnicodeDecodeError:
                continue
            if len(cols) != 15 or not cols[2].strip():
                continue
            rid = cols[2]
            if rid in first_seen and first_seen[rid][0] < day:
                src_day, src_line = first_seen[rid]
                if ln == src_line:
                    dups += 1
                else:
                    src = src_line.decode().split("\t")
                    assert cols[7] != src[7] and cols[:7] == src[:7] and cols[14] == src[14]
                    corrections += 1
                    text += cols[13] != src[13]
            elif rid not in first_seen:
                first_seen[rid] = (day, ln)
        assert (dups, corrections, text) == (d["cross_day_duplicates"], d["corrections"],
                                             d["corrections_text_changed"]), day
    total = {k: sum(d[k] for d in stats.days.values()) for k in ("good_rows", "cross_day_duplicates", "corrections")}
    assert total == {"good_rows": stats.good_rows, "cross_day_duplicates": stats.cross_day_duplicates,
                     "corrections": stats.corrections}
