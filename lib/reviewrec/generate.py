"""Deterministic synthetic amazon-reviews-pds data: the embedded default input.

`generate_tsv` writes pds TSV.gz files (real 15-column header, tab separated, no quoting) in
fixed-size chunks, so memory stays flat from 1k to 10M+ rows. What makes the data useful:

* Zipf-skewed customers and products (a few heavy reviewers and best sellers, a long tail);
* star distribution like the real data (5: 45%, 4: 16%, 3: 8%, 2: 7%, 1: 23%), produced by
  latent user and item tastes: rating score = user bias + item bias + <user taste, item
  profile> + noise, cut at the quantiles of that distribution;
* review text whose words depend on the star (sentiment words, "Five Stars" headlines) and on
  the tastes (each item has descriptive attributes that the text and title mention; users
  mention the aspects they care about), so text and id models both have signal to learn;
* HTML as in real pds text (`<br />`, `&#34;`, `&amp;`), elongated words ("soooo"), and short
  tokens, so the text filters have something to do;
* a configurable fraction of malformed rows of every kind ingest must quarantine, plus exact
  duplicate rows; the returned `GenerationStats` says how many input lines of each kind were
  planted, which the ingest tests reconcile against exactly.

Every chunk draws from its own generator seeded by (seed, chunk index): the output depends
only on the parameters, not on how the work is split.

`generate_days` writes the same kind of data as a daily feed (docs/incremental.md): N
consecutive days, each in a Hive-style directory `dt=YYYY-MM-DD/`, each day's new reviews drawn
from generators seeded by (seed, day index, chunk), so a day is the same whether it is written
alone (the scheduled run of that day) or with all the others. From the second day on, a day
also re-sends reviews of up to LOOKBACK_DAYS earlier days: cross-day duplicates (the line
again, byte for byte) and late corrections (the same review_id with another star and, for two
corrections in three, an added sentence). Each earlier review is re-sent at most once, and the
stats record how many of each kind went from which day to which, so tests reconcile the
incremental ingest against them exactly.
"""
from __future__ import annotations

import gzip
import math
import os
import random
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta

import numpy as np

from reviewrec import schema as S
from reviewrec.config import DAY_DIR_PREFIX

CHUNK_ROWS = 20_000
LATENT_DIM = 4

# Category -> (share of products, aspect nouns, product nouns). The first four are the paper's.
CATEGORIES: dict[str, tuple[float, tuple[str, ...], tuple[str, ...]]] = {
    "Beauty": (0.24, ("scent", "texture", "color", "skin", "hair", "bottle", "formula", "shade"),
               ("shampoo", "lotion", "serum", "mascara", "conditioner", "moisturizer", "lipstick")),
    "Electronics": (0.26, ("battery", "screen", "sound", "charger", "cable", "signal", "remote", "bluetooth"),
                    ("headphones", "speaker", "charger", "keyboard", "router", "tablet", "camera")),
    "Grocery": (0.14, ("flavor", "taste", "package", "sweetness", "freshness", "aroma", "texture"),
                ("coffee", "tea", "chocolate", "snack", "cereal", "sauce", "pasta")),
    "Health & Personal Care": (0.14, ("dosage", "capsule", "energy", "sleep", "digestion", "smell", "size"),
                               ("vitamin", "supplement", "toothbrush", "razor", "probiotic", "thermometer")),
    "Digital_Software": (0.12, ("install", "license", "interface", "update", "download", "feature", "support"),
                         ("antivirus", "editor", "suite", "game", "backup", "converter")),
    "Toys": (0.10, ("pieces", "instructions", "paint", "batteries", "size", "design"),
             ("puzzle", "doll", "robot", "blocks", "kite", "boardgame")),
}

# Item attributes; each has a latent direction, so an item's attributes shape who likes it.
ATTRIBUTES = (
    "lightweight", "compact", "organic", "premium", "wireless", "vintage", "gentle", "spicy",
    "durable", "portable", "unscented", "budget", "professional", "colorful", "ergonomic", "natural",
)

POLARITY_WORDS: tuple[tuple[str, ...], ...] = (
    ("excellent", "amazing", "fantastic", "perfect", "wonderful", "awesome", "superb", "terrific",
     "flawless", "brilliant"),
    ("good", "nice", "solid", "decent", "pleasant", "useful", "handy", "reliable", "sturdy"),
    ("okay", "average", "acceptable", "ordinary", "fair", "passable", "mixed"),
    ("disappointing", "flimsy", "weak", "poor", "cheap", "slow", "annoying", "mediocre"),
    ("terrible", "awful", "horrible", "useless", "broken", "defective", "worthless", "junk"),
)
# P(polarity | star), rows = stars 1..5, columns = polarity strong+ .. strong-.
POLARITY_GIVEN_STAR = np.array([
    [0.02, 0.04, 0.08, 0.26, 0.60],
    [0.03, 0.10, 0.20, 0.42, 0.25],
    [0.07, 0.25, 0.36, 0.25, 0.07],
    [0.25, 0.45, 0.18, 0.10, 0.02],
    [0.55, 0.30, 0.08, 0.05, 0.02],
])
STAR_SHARES = np.array([0.23, 0.07, 0.08, 0.16, 0.46])  # stars 1..5
STAR_HEADLINES = ("One Star", "Two Stars", "Three Stars", "Four Stars", "Five Stars")
VERBS_BY_STAR = (("returned", "regret", "hate"), ("returned", "expected"), ("expected", "wanted"),
                 ("like", "recommend"), ("love", "recommend", "adore"))
BRANDS = ("Acme", "Nordell", "Brightway", "Kestrel", "Orchid", "Pinecrest", "Vantor", "Lumio", "Sable",
          "Quill", "Harbor", "Zenith")
PEOPLE = ("wife", "husband", "daughter", "son", "mom", "dad", "friend", "office", "kids", "sister")
ELONGATED = ("soooo", "loooove", "greeeat", "noooo", "wowwww", "zzzzz", "sooooo", "reallyyyy")
FILLER = (
    "i bought this {noun} for my {person}.",
    "it arrived on time and the {aspect} is {adj}.",
    "the {aspect} is {adj} and the {aspect2} is {adj2}.",
    "we {verb} this {attr} {noun}.",
    "overall a {adj} {noun}, i would say the {attr} design is {adj2}.",
    "after {n} weeks the {aspect} is still {adj}.",
    "the {attr} {noun} is {adj} for the price.",
    "my {person} said it is {adj}.",
    "not {negated}, the {aspect} was {adj}.",
    "i have used it {n} times so far.",
    "compared to my old {noun} this one is {adj}.",
    "the {aspect} could be better but it is {adj2} overall.",
)
# A long tail of rare words (brand names, slang, typos in real reviews): syllable words drawn
# with Zipf frequencies, so vocabulary size grows with the corpus as real vocabularies do.
_SYLLABLES = ("ka", "lo", "mi", "ra", "ten", "vo", "zu", "ber", "dan", "el", "fi", "gor", "hu", "ish", "jo",
              "ket", "lum", "nor", "pa", "qui", "ros", "sil", "tar", "ul", "ven", "wex", "yal", "zen")
TAIL_WORDS = 30_000
TAIL_TEMPLATES = ("i also tried {tail} and {tail2}.", "much better than {tail}.", "the {tail} version is {adj}.")
HTML_BITS = ("<br />", "<br /><br />", "&#34;", "&amp;", "&quot;")

START_DATE = date(2005, 1, 1)
END_DATE = date(2015, 8, 31)


@dataclass
class GenerationStats:
    """What was written, in input lines (what ingest counts), excluding headers."""

    rows_requested: int = 0
    lines_written: int = 0
    # New reviews written as valid lines (each a review_id not seen before).
    good_rows: int = 0
    # Exact copies of a line of the same day (and file).
    duplicate_rows: int = 0
    malformed_lines: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    # Days only (generate_days): re-sends of a review of an earlier day, unchanged ...
    cross_day_duplicates: int = 0
    # ... or changed (another star; corrections_text_changed of them also another text).
    corrections: int = 0
    corrections_text_changed: int = 0
    # Day (YYYY-MM-DD) -> that day's counts (the fields above, and resent_from: source day ->
    # {"duplicates", "corrections", "corrections_text_changed"}).
    days: dict[str, dict] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    def add(self, other: GenerationStats) -> None:
        """Add `other`'s counts (a day's) to these."""
        for name in ("rows_requested", "lines_written", "good_rows", "duplicate_rows", "cross_day_duplicates",
                     "corrections", "corrections_text_changed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for reason, n in other.malformed_lines.items():
            self.malformed_lines[reason] = self.malformed_lines.get(reason, 0) + n
        self.files += other.files


@dataclass(frozen=True)
class _World:
    """Customers, products and their latent tastes, fixed by the seed."""

    cust_ids: list[str]
    cust_cdf: np.ndarray
    cust_bias: np.ndarray
    cust_taste: np.ndarray
    cust_aspect: np.ndarray  # index of the aspect slot each user talks about most
    prod_ids: list[str]
    prod_parent: list[str]
    prod_title: list[str]
    prod_cat: list[str]
    prod_cdf: np.ndarray
    prod_bias: np.ndarray
    prod_profile: np.ndarray
    prod_attrs: list[tuple[str, ...]]
    thresholds: np.ndarray  # 4 cut points on the score for stars 1|2, 2|3, 3|4, 4|5
    day_cdf: np.ndarray


def _zipf_cdf(n: int, a: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """CDF of a Zipf(a) law over n entities, ranks assigned to entities at random."""
    w = 1.0 / np.arange(1, n + 1) ** a
    perm = rng.permutation(n)
    weights = np.empty(n)
    weights[perm] = w
    cdf = np.cumsum(weights)
    return cdf / cdf[-1], weights


def _alnum(rng: np.random.Generator, n: int, k: int) -> list[str]:
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
    draws = rng.integers(0, len(alphabet), size=(n, k))
    return ["".join(r) for r in alphabet[draws]]


def _build_world(seed: int, customers: int, products: int) -> _World:
    rng = np.random.default_rng([seed, 0xC0FFEE])
    cust_ids = [str(x) for x in rng.choice(np.arange(10_000_000, 53_000_000), size=customers, replace=False)]
    cust_cdf, _ = _zipf_cdf(customers, 0.75, rng)
    cust_bias = rng.normal(0.0, 0.55, customers)
    cust_taste = rng.normal(0.0, 1.0, (customers, LATENT_DIM))
    cust_aspect = rng.integers(0, 6, customers)

    attr_vec = rng.normal(0.0, 1.0, (len(ATTRIBUTES), LATENT_DIM))
    cats = list(CATEGORIES)
    shares = np.array([CATEGORIES[c][0] for c in cats])
    prod_cat_idx = rng.choice(len(cats), size=products, p=shares / shares.sum())
    prod_ids = ["B00" + s for s in _alnum(rng, products, 7)]
    prod_parent = [str(x) for x in rng.integers(100_000_000, 999_999_999, products)]
    prod_attrs: list[tuple[str, ...]] = []
    prod_profile = np.zeros((products, LATENT_DIM))
    titles = []
    for i in range(products):
        k = int(rng.integers(1, 4))
        idx = rng.choice(len(ATTRIBUTES), size=k, replace=False)
        prod_attrs.append(tuple(ATTRIBUTES[j] for j in idx))
        prod_profile[i] = attr_vec[idx].sum(axis=0) / math.sqrt(k) + rng.normal(0, 0.3, LATENT_DIM)
        nouns = CATEGORIES[cats[prod_cat_idx[i]]][2]
        brand = BRANDS[int(rng.integers(len(BRANDS)))]
        titles.append(f"{brand} {' '.join(prod_attrs[-1]).title()} {nouns[int(rng.integers(len(nouns)))].title()}")
    prod_cdf, _ = _zipf_cdf(products, 0.9, rng)
    prod_bias = rng.normal(0.0, 0.45, products)

    # Cut points: quantiles of the score distribution under the popularity-weighted sampling.
    n = 200_000
    u = np.searchsorted(cust_cdf, rng.random(n))
    p = np.searchsorted(prod_cdf, rng.random(n))
    scores = _score(cust_bias[u], prod_bias[p], cust_taste[u], prod_profile[p], rng.normal(0, 0.6, n))
    thresholds = np.quantile(scores, np.cumsum(STAR_SHARES)[:-1])

    days = (END_DATE - START_DATE).days + 1
    growth = np.exp(np.linspace(0.0, 3.0, days))  # review volume grows ~20x over the decade
    day_cdf = np.cumsum(growth) / growth.sum()
    return _World(cust_ids, cust_cdf, cust_bias, cust_taste, cust_aspect, prod_ids, prod_parent, titles,
                  [cats[i] for i in prod_cat_idx], prod_cdf, prod_bias, prod_profile, prod_attrs,
                  thresholds, day_cdf)


def _score(bu: np.ndarray, bi: np.ndarray, tu: np.ndarray, pi: np.ndarray, noise: np.ndarray) -> np.ndarray:
    return bu + bi + 0.6 * np.einsum("ij,ij->i", tu, pi) / math.sqrt(LATENT_DIM) + noise


def _tail_lexicon() -> tuple[list[str], list[float]]:
    rng = random.Random(7)
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < TAIL_WORDS:
        w = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        if w not in seen:
            seen.add(w)
            words.append(w)
    cum = list(np.cumsum(1.0 / np.arange(1, TAIL_WORDS + 1) ** 1.05))
    return words, cum


_TAIL, _TAIL_CUM = _tail_lexicon()


def _tail_word(r: random.Random) -> str:
    import bisect

    return _TAIL[min(bisect.bisect_left(_TAIL_CUM, r.random() * _TAIL_CUM[-1]), TAIL_WORDS - 1)]


def _sentence(r: random.Random, tmpl: str, star: int, cat: str, attrs: tuple[str, ...], aspect_slot: int) -> str:
    aspects = CATEGORIES[cat][1]
    nouns = CATEGORIES[cat][2]
    probs = POLARITY_GIVEN_STAR[star - 1]

    def adj() -> str:
        x, acc = r.random(), 0.0
        for k, pk in enumerate(probs):
            acc += pk
            if x < acc:
                return r.choice(POLARITY_WORDS[k])
        return r.choice(POLARITY_WORDS[-1])

    fav = aspects[aspect_slot % len(aspects)]
    return tmpl.format(
        noun=r.choice(nouns), person=r.choice(PEOPLE),
        aspect=fav if r.random() < 0.6 else r.choice(aspects), aspect2=r.choice(aspects),
        adj=adj(), adj2=adj(), attr=r.choice(attrs), verb=r.choice(VERBS_BY_STAR[star - 1]),
        n=r.randint(2, 12), tail=_tail_word(r), tail2=_tail_word(r),
        # "not bad" in good reviews, "not good" in bad ones: sentiment a bag of words misreads.
        negated=r.choice(POLARITY_WORDS[4] if star >= 4 else POLARITY_WORDS[1]),
    )


def _review_text(r: random.Random, star: int, cat: str, attrs: tuple[str, ...], aspect_slot: int) -> tuple[str, str]:
    if r.random() < 0.3:
        headline = STAR_HEADLINES[star - 1]
    else:
        headline = _sentence(r, r.choice(("{adj} {noun}", "{adj}!", "{attr} and {adj}", "{adj} {aspect}")),
                             star, cat, attrs, aspect_slot).capitalize()
    k = max(1, min(14, int(r.lognormvariate(1.1, 0.6))))
    parts = []
    for _ in range(k):
        tmpl = r.choice(TAIL_TEMPLATES) if r.random() < 0.15 else r.choice(FILLER)
        s = _sentence(r, tmpl, star, cat, attrs, aspect_slot)
        s = s[0].upper() + s[1:]
        if r.random() < 0.04:
            s = s.replace(" is ", f" is {r.choice(ELONGATED)} ", 1)
        parts.append(s)
        if r.random() < 0.12:
            parts.append(r.choice(HTML_BITS))
    return headline, " ".join(parts)


# Malformations, each as (reason, input lines it produces).
MALFORMATIONS = (
    ("wrong_column_count", 1),   # a field dropped
    ("bad_date", 1),
    ("star_not_in_1_5", 1),
    ("non_numeric_votes", 1),
    ("missing_id", 1),
    ("undecodable_bytes", 1),
    ("embedded_newline", 2),     # a newline inside review_body splits the row into two lines
    ("extra_tab", 1),            # a tab inside review_body: 16 columns
    ("bad_y_n_flag", 1),
)
MALFORMED_REASON = {"embedded_newline": S.R_COLUMN_COUNT, "extra_tab": S.R_COLUMN_COUNT}


def _malform(kind: str, fields: list[str], r: random.Random) -> bytes:
    f = list(fields)
    body_i = S.PDS_COLUMNS.index(S.REVIEW_BODY)
    if kind == "wrong_column_count":
        del f[r.randrange(len(f))]
    elif kind == "bad_date":
        f[-1] = r.choice(("2015-13-45", "31/12/2014", "yesterday", "2014-02-30"))
    elif kind == "star_not_in_1_5":
        f[S.PDS_COLUMNS.index(S.STAR_RATING)] = r.choice(("0", "6", "five", "", "4.5"))
    elif kind == "non_numeric_votes":
        col = r.choice((S.HELPFUL_VOTES, S.TOTAL_VOTES))
        f[S.PDS_COLUMNS.index(col)] = r.choice(("N/A", "-3", "1e3", "many"))
    elif kind == "missing_id":
        col = r.choice((S.CUSTOMER_ID, S.REVIEW_ID, S.PRODUCT_ID))
        f[S.PDS_COLUMNS.index(col)] = r.choice(("", "   "))
    elif kind == "embedded_newline":
        f[body_i] = f[body_i][: len(f[body_i]) // 2] + "\n" + f[body_i][len(f[body_i]) // 2:]
    elif kind == "extra_tab":
        f[body_i] = f[body_i] + "\tP.S. great seller"
    elif kind == "bad_y_n_flag":
        f[S.PDS_COLUMNS.index(S.VERIFIED_PURCHASE)] = r.choice(("maybe", "1", "yes"))
    if kind == "undecodable_bytes":
        line = "\t".join(f).encode("utf-8")
        cut = line.rfind(b"\t")  # bytes that are not UTF-8, inside review_body
        return line[:cut] + b" caf\xe9 \xff\xfe" + line[cut:]
    return "\t".join(f).encode("utf-8")


def _clean(s: str) -> str:
    return s.replace("\t", " ").replace("\n", " ").replace("\r", " ")


def _chunk(world: _World, seed: int, chunk: int, start: int, n: int, malformed_fraction: float,
           duplicate_fraction: float, stats: GenerationStats, stream: tuple[int, ...] = (),
           kept: dict[int, list[str]] | None = None) -> list[bytes]:
    """The lines of reviews start .. start+n-1. `stream` () is the single batch's random streams;
    a day's is (2, day index). `kept`: index -> None on entry; the valid rows among them get
    their fields (to re-send them on a later day)."""
    if stream:
        rng = np.random.default_rng([seed, *stream, chunk])
        r = random.Random(f"{seed}/{'/'.join(map(str, stream))}/{chunk}")
    else:
        rng = np.random.default_rng([seed, 1, chunk])
        r = random.Random(seed * 1_000_003 + chunk)
    u = np.searchsorted(world.cust_cdf, rng.random(n))
    p = np.searchsorted(world.prod_cdf, rng.random(n))
    noise = rng.normal(0, 0.6, n)
    scores = _score(world.cust_bias[u], world.prod_bias[p], world.cust_taste[u], world.prod_profile[p], noise)
    stars = np.searchsorted(world.thresholds, scores) + 1
    day = np.searchsorted(world.day_cdf, rng.random(n))
    total = np.minimum(rng.negative_binomial(0.3, 0.25, n), 5000)
    helpful = np.floor(total * rng.beta(2 + (stars >= 4), 2, n)).astype(int)
    vine = rng.random(n) < 0.01
    verified = rng.random(n) < np.where(stars >= 4, 0.78, 0.62)
    rid = _alnum(rng, n, 13)
    kind_draw = rng.random(n)
    dup_draw = rng.random(n)
    lines: list[bytes] = []
    recent_good: list[bytes] = []
    for i in range(n):
        cu, pr, star = int(u[i]), int(p[i]), int(stars[i])
        cat = world.prod_cat[pr]
        headline, body = _review_text(r, star, cat, world.prod_attrs[pr], int(world.cust_aspect[cu]))
        fields = [
            "US", world.cust_ids[cu], "R" + rid[i], world.prod_ids[pr], world.prod_parent[pr],
            world.prod_title[pr], cat, str(star), str(int(helpful[i])), str(int(total[i])),
            "Y" if vine[i] else "N", "Y" if verified[i] else "N", _clean(headline), _clean(body),
            (START_DATE + timedelta(days=int(day[i]))).isoformat(),
        ]
        if kind_draw[i] < malformed_fraction:
            kind, nlines = MALFORMATIONS[(start + i) % len(MALFORMATIONS)]
            reason = MALFORMED_REASON.get(kind, kind)
            stats.malformed_lines[reason] = stats.malformed_lines.get(reason, 0) + nlines
            stats.lines_written += nlines
            lines.append(_malform(kind, fields, r))
            continue
        if kept is not None and start + i in kept:
            kept[start + i] = fields
        line = "\t".join(fields).encode("utf-8")
        lines.append(line)
        stats.good_rows += 1
        stats.lines_written += 1
        recent_good.append(line)
        if dup_draw[i] < duplicate_fraction and recent_good:
            lines.append(recent_good[r.randrange(len(recent_good))])
            stats.duplicate_rows += 1
            stats.lines_written += 1
    return lines


def _open_out(path: str, compress: bool):  # noqa: ANN202 - a binary file object
    """A new output file; gzip with no time stamp in its header, so the same lines make the same
    bytes (a regenerated day is byte for byte the file that was ingested)."""
    if not compress:
        return open(path, "wb")
    return gzip.GzipFile(path, mode="wb", compresslevel=1, mtime=0)


def _geometry(rows: int, files: int) -> tuple[int, int, int]:
    """(rows per chunk, chunks, files) for `rows` reviews in at most `files` files."""
    chunk_rows = max(1, min(CHUNK_ROWS, math.ceil(rows / files)))
    n_chunks = max(1, math.ceil(rows / chunk_rows))
    return chunk_rows, n_chunks, max(1, min(files, n_chunks))


def generate_tsv(out_dir: str, rows: int, seed: int = 42, customers: int = 4000, products: int = 800,
                 malformed_fraction: float = 0.002, duplicate_fraction: float = 0.001, files: int = 2,
                 compress: bool = True, log_every: int = 1_000_000) -> GenerationStats:
    """Write `rows` generated reviews (plus planted duplicates) as pds TSV(.gz) into `out_dir`.

    Files are named part-00000.tsv.gz ...; each starts with the pds header. The directory is
    written to a temporary sibling and renamed into place when complete.
    """
    import logging
    import shutil

    log = logging.getLogger(__name__)
    world = _build_world(seed, customers, products)
    stats = GenerationStats(rows_requested=rows)
    tmp = out_dir.rstrip("/") + ".__tmp_gen"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    chunk_rows, n_chunks, files = _geometry(rows, files)
    ext = ".tsv.gz" if compress else ".tsv"
    handles = []
    for k in range(files):
        path = os.path.join(tmp, f"part-{k:05d}{ext}")
        fh = _open_out(path, compress)
        fh.write(S.PDS_HEADER.encode() + b"\n")
        handles.append(fh)
        stats.files.append(os.path.join(out_dir, os.path.basename(path)))
    done = 0
    for c in range(n_chunks):
        n = min(chunk_rows, rows - c * chunk_rows)
        lines = _chunk(world, seed, c, c * chunk_rows, n, malformed_fraction, duplicate_fraction, stats)
        handles[c * files // n_chunks].write(b"\n".join(lines) + b"\n")
        done += n
        if done // log_every != (done - n) // log_every:
            log.info("generated %d / %d rows", done, rows)
    for fh in handles:
        fh.close()
    shutil.rmtree(out_dir, ignore_errors=True)
    os.rename(tmp, out_dir)
    return stats


# A day re-sends reviews of at most this many earlier days.
LOOKBACK_DAYS = 3


def day_name(start_day: str, index: int) -> str:
    """The date (YYYY-MM-DD) of day `index` (0 = start_day)."""
    return (date.fromisoformat(start_day) + timedelta(days=index)).isoformat()


def day_index(start_day: str, day: str) -> int:
    """Day `day`'s index counted from start_day (ValueError before it)."""
    i = (date.fromisoformat(day) - date.fromisoformat(start_day)).days
    if i < 0:
        raise ValueError(f"day {day} is before the generator's first day {start_day}")
    return i


def rows_for_day(rows: int, days: int, index: int) -> int:
    """New reviews on day `index`: `rows` spread over `days` days (the first days take the
    remainder); days after the days-th (a scheduled run beyond them) take rows // days."""
    return rows // days + (1 if index < rows % days else 0)


@dataclass(frozen=True)
class _DaysSpec:
    rows: int
    days: int
    start_day: str
    seed: int
    malformed_fraction: float
    duplicate_fraction: float
    cross_day_duplicate_fraction: float
    correction_fraction: float
    files: int
    compress: bool


def _day_reviews(world: _World, spec: _DaysSpec, index: int, out: str | None,
                 kept: dict[int, list[str]] | None = None, extra: list[bytes] | None = None) -> GenerationStats:
    """Day `index`'s new reviews, chunk by chunk: into `out` (the files part-NNNNN.tsv[.gz], each
    with the header; `extra` lines spread over the files' ends) or, out None, only to fill
    `kept` (a later day re-sending some)."""
    n = rows_for_day(spec.rows, spec.days, index)
    stats = GenerationStats(rows_requested=n)
    chunk_rows, n_chunks, files = _geometry(n, spec.files)
    handles = []
    if out is not None:
        ext = ".tsv.gz" if spec.compress else ".tsv"
        for k in range(files):
            path = os.path.join(out, f"part-{k:05d}{ext}")
            fh = _open_out(path, spec.compress)
            fh.write(S.PDS_HEADER.encode() + b"\n")
            handles.append(fh)
            stats.files.append(path)
    for c in range(n_chunks):
        lo = c * chunk_rows
        size = min(chunk_rows, n - lo)
        if kept is not None and out is None and not any(lo <= k < lo + size for k in kept):
            continue
        lines = _chunk(world, spec.seed, c, lo, size, spec.malformed_fraction, spec.duplicate_fraction, stats,
                       stream=(2, index), kept=kept)
        if handles:
            handles[c * files // n_chunks].write(b"\n".join(lines) + b"\n")
    for k, fh in enumerate(handles):
        part = (extra or [])[k::len(handles)]
        if part:
            fh.write(b"\n".join(part) + b"\n")
        fh.close()
    return stats


def _resend_targets(spec: _DaysSpec, index: int, world: _World) -> list[tuple[int, list[str]]]:
    """The earlier reviews day `index` re-sends, as (source day index, fields), in order: the
    first round(cross_day_duplicate_fraction * n) are duplicates, the next
    round(correction_fraction * n) corrections (fewer when the earlier days have too few valid
    reviews). Day j's review k can only be re-sent by day j + 1 + k % LOOKBACK_DAYS: never twice."""
    n = rows_for_day(spec.rows, spec.days, index)
    want = round(spec.cross_day_duplicate_fraction * n) + round(spec.correction_fraction * n)
    if index == 0 or want == 0:
        return []
    rng = np.random.default_rng([spec.seed, 3, index])
    pool = [(j, k) for j in range(max(0, index - LOOKBACK_DAYS), index)
            for k in range(index - j - 1, rows_for_day(spec.rows, spec.days, j), LOOKBACK_DAYS)]
    order = [pool[i] for i in rng.permutation(len(pool))]
    chosen: list[tuple[int, list[str]]] = []
    pos = 0
    while len(chosen) < want and pos < len(order):
        batch = order[pos:pos + 2 * (want - len(chosen)) + 8]
        pos += len(batch)
        by_day: dict[int, dict[int, list[str]]] = {}
        for j, k in batch:
            by_day.setdefault(j, {})[k] = None  # type: ignore[assignment]
        for j, kept in by_day.items():
            _day_reviews(world, spec, j, None, kept)
        for j, k in batch:
            fields = by_day[j][k]
            if fields is not None and len(chosen) < want:  # None: that line was malformed
                chosen.append((j, fields))
    return chosen


def _correct(fields: list[str], r: random.Random, world: _World, text: bool) -> list[str]:
    """A late correction of a review: another star; with `text`, a sentence added to the body."""
    f = list(fields)
    star_i = S.PDS_COLUMNS.index(S.STAR_RATING)
    star = 1 + (int(f[star_i]) - 1 + r.randint(1, 4)) % 5
    f[star_i] = str(star)
    if text:
        cat = f[S.PDS_COLUMNS.index(S.PRODUCT_CATEGORY)]
        pr = world.prod_ids.index(f[S.PDS_COLUMNS.index(S.PRODUCT_ID)])
        sentence = _sentence(r, r.choice(FILLER), star, cat, world.prod_attrs[pr], 0)
        body_i = S.PDS_COLUMNS.index(S.REVIEW_BODY)
        f[body_i] = _clean(f"{f[body_i]} Update: {sentence[0].upper()}{sentence[1:]}")
    return f


def _write_day(world: _World, spec: _DaysSpec, index: int, out: str) -> GenerationStats:
    """Day `index` into the directory `out` (created): its new reviews, then its re-sends of
    earlier days' reviews, spread over the ends of its files."""
    os.makedirs(out)
    day = day_name(spec.start_day, index)
    targets = _resend_targets(spec, index, world)
    n = rows_for_day(spec.rows, spec.days, index)
    n_dup = min(len(targets), round(spec.cross_day_duplicate_fraction * n))
    r = random.Random(f"{spec.seed}/resend/{index}")
    resent: dict[str, dict[str, int]] = {}
    lines: list[bytes] = []
    kinds = {"duplicates": 0, "corrections": 0, "corrections_text_changed": 0}
    for t, (j, fields) in enumerate(targets):
        src = resent.setdefault(day_name(spec.start_day, j), dict.fromkeys(kinds, 0))
        if t < n_dup:
            src["duplicates"] += 1
            lines.append("\t".join(fields).encode("utf-8"))
            continue
        text = (t - n_dup) % 3 != 2
        src["corrections"] += 1
        src["corrections_text_changed"] += int(text)
        lines.append("\t".join(_correct(fields, r, world, text)).encode("utf-8"))
    stats = _day_reviews(world, spec, index, out, extra=lines)
    stats.lines_written += len(lines)
    stats.cross_day_duplicates = sum(v["duplicates"] for v in resent.values())
    stats.corrections = sum(v["corrections"] for v in resent.values())
    stats.corrections_text_changed = sum(v["corrections_text_changed"] for v in resent.values())
    stats.days[day] = {**{k: v for k, v in stats.as_dict().items() if k != "days"}, "day": day,
                       "resent_from": dict(sorted(resent.items()))}
    return stats


def generate_days(out_dir: str, days: int, rows: int, start_day: str = "2015-09-01", seed: int = 42,
                  customers: int = 4000, products: int = 800, malformed_fraction: float = 0.002,
                  duplicate_fraction: float = 0.001, cross_day_duplicate_fraction: float = 0.02,
                  correction_fraction: float = 0.01, files: int = 2, compress: bool = True,
                  only_day: str | None = None) -> GenerationStats:
    """Write `days` days of reviews (`rows` new ones in all) as `out_dir`/dt=YYYY-MM-DD/part-*.tsv.gz.

    `only_day` None: every day, the directory `out_dir` replaced as a whole; a day: only
    `out_dir`/dt=<only_day>/ (replaced, other days untouched), the same files as in the run
    over every day. Directories are written under a hidden name (Spark's readers skip names
    starting with ".") and renamed into place when complete.
    """
    import shutil

    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    spec = _DaysSpec(rows, days, start_day, seed, malformed_fraction, duplicate_fraction,
                     cross_day_duplicate_fraction, correction_fraction, files, compress)
    world = _build_world(seed, customers, products)
    stats = GenerationStats()
    out_dir = out_dir.rstrip("/")
    if only_day is not None:
        index = day_index(start_day, only_day)
        os.makedirs(out_dir, exist_ok=True)
        final = os.path.join(out_dir, f"{DAY_DIR_PREFIX}{only_day}")
        tmp = os.path.join(out_dir, f".{DAY_DIR_PREFIX}{only_day}.__tmp_gen")
        shutil.rmtree(tmp, ignore_errors=True)
        day_stats = _write_day(world, spec, index, tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        day_stats.files = [os.path.join(final, os.path.basename(f)) for f in day_stats.files]
        day_stats.days[only_day]["files"] = day_stats.files
        return _total([day_stats])
    parent = os.path.dirname(out_dir) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(out_dir)}.__tmp_gen")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    per_day = []
    for index in range(days):
        name = f"{DAY_DIR_PREFIX}{day_name(start_day, index)}"
        d = _write_day(world, spec, index, os.path.join(tmp, name))
        d.files = [os.path.join(out_dir, name, os.path.basename(f)) for f in d.files]
        d.days[day_name(start_day, index)]["files"] = d.files
        per_day.append(d)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.rename(tmp, out_dir)
    stats = _total(per_day)
    return stats


def _total(per_day: list[GenerationStats]) -> GenerationStats:
    total = GenerationStats()
    for d in per_day:
        total.add(d)
        total.days.update(d.days)
    return total


def run(spark: object | None, cfg: object) -> GenerationStats:
    """The generate job: write cfg.synthetic rows as pds TSV.gz to <run.root>/raw; with
    synthetic.days > 0 as day directories <run.root>/raw/dt=YYYY-MM-DD/, all of them, or with
    input.day set only that day's (the files the scheduled run of that day ingests)."""
    import logging
    import shutil
    import tempfile

    from reviewrec import io

    log = logging.getLogger(__name__)
    root = cfg["run"]["root"]  # type: ignore[index]
    syn = cfg["synthetic"]  # type: ignore[index]
    out = io.dataset_path(root, "raw")
    params = dict(rows=syn["rows"], seed=syn["seed"], customers=syn["customers"], products=syn["products"],
                  malformed_fraction=syn["malformed_fraction"], duplicate_fraction=syn["duplicate_fraction"],
                  files=syn["files"])
    days = syn.get("days") or 0
    day = cfg["input"].get("day")  # type: ignore[index]
    if days:
        params.update(days=days, start_day=syn["start_day"],
                      cross_day_duplicate_fraction=syn["cross_day_duplicate_fraction"],
                      correction_fraction=syn["correction_fraction"], only_day=day)
    write = generate_days if days else generate_tsv
    target = io.dataset_path(out, f"{DAY_DIR_PREFIX}{day}") if days and day else out
    if io.is_local(out):
        stats = write(out[len("file://"):] if out.startswith("file://") else out, **params)
    else:
        # hdfs://, s3a://, ...: written in a local scratch directory, then published under the run
        # root through Hadoop's file system (the job has a session for that: jobs/generate.py).
        if spark is None:
            raise ValueError(f"the generator needs a SparkSession to write to {out}")
        # Plain paths (versioned=False): ingest lists input files by path, day directories and all.
        with io.publish_dir(spark, target, versioned=False) as scratch:  # type: ignore[arg-type]
            base = tempfile.mkdtemp(prefix="reviewrec-generate-")
            try:
                local_out = os.path.join(base, "raw")
                stats = write(local_out, **params)
                made = os.path.join(local_out, f"{DAY_DIR_PREFIX}{day}") if days and day else local_out
                for name in os.listdir(made):
                    shutil.move(os.path.join(made, name), os.path.join(scratch, name))
            finally:
                shutil.rmtree(base, ignore_errors=True)
        stats.files = [out + f[len(local_out):].replace(os.sep, "/") for f in stats.files]
    io.write_json_atomic(spark, io.dataset_path(root, "report/generate.json"), stats.as_dict())  # type: ignore[arg-type]
    log.info("generated %d lines (%d good, %d duplicates, %d cross-day duplicates, %d corrections, malformed %s) "
             "in %s", stats.lines_written, stats.good_rows, stats.duplicate_rows, stats.cross_day_duplicates,
             stats.corrections, stats.malformed_lines, target)
    return stats
