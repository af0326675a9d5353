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
