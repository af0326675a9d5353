"""Training of the builtin engine's POS tagger (preprocess/perceptron.py) on UD English-EWT train.

An averaged perceptron with the features of `perceptron.ReferencePerceptron` (Honnibal's
textblob-aptagger), trained greedily left to right: a token's t-1 / t-2 features are the labels
guessed for the tokens before it, a wrong guess adds 1 to the weights of the gold label and
takes 1 from those of the guess, and the weights written are each weight averaged over every
update step, rounded to 0.001 (so the decoder sums exact integers).

  * The token stream is what the engine tags: tokens without a letter or digit
    (`upos.PUNCT_RE`) are left out, as the engine leaves them out and tags them by rule; so are
    the few word tokens whose gold tag is PUNCT or SYM (56 in EWT train), which keeps the label
    set at 20 (dev UPOS 0.9408 against 0.9402 with them as two more labels, and 3% faster).
  * Labels are "UPOS|VerbForm" for VERB and AUX (Fin, Inf, Ger, Part: the lemmatizer's hint)
    and "UPOS|-" for every other tag.
  * The tag dictionary holds the lowercase words seen at least `TAGDICT_MIN_COUNT` times with
    one label in at least `TAGDICT_MIN_SHARE` of them; they get that label without scoring.
  * Sentences are visited in an order shuffled by a seeded generator each iteration, so the
    same train file and settings give the same weights, and `write_weights` gives the same
    bytes (sorted JSON, gzip without a time stamp).

The settings were chosen on EWT dev (`benchmarks/bench_text_accuracy.py --sweep`, every token
scored with the engine's analyzer; nothing is trained on dev): the average of four seeds (1-4)
of 15 iterations has the best overall UPOS (0.9411; reviews genre 0.9479, lemma 0.9794 /
0.9813) of 1-4 seeds x 10/12/15/20 iterations among the settings that reach the previous
weights' UPOS on both (0.9399 overall, 0.9468 reviews); two seeds of 15 iterations, the earlier
setting, give 0.9408 / 0.9464. The tag dictionary is textblob-aptagger's (20 / 0.97: UPOS on
word tokens 0.9321 for one seed of 12 iterations against 0.9310 for 10 / 0.95).
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from reviewrec.preprocess.conllu import Sentence, read_conllu
from reviewrec.preprocess.perceptron import START, features
from reviewrec.preprocess.upos import PUNCT_RE

ITERATIONS = 15
TAGDICT_MIN_COUNT = 20
TAGDICT_MIN_SHARE = 0.97
SEED = 1
# Models trained with these shuffling seeds are averaged into one (the same features, so the same
# decoder): the average of a few runs is a little more accurate on dev than any one of them.
SEEDS = (1, 2, 3, 4)
VERBFORM_UPOS = ("VERB", "AUX")
NO_LABEL = ("PUNCT", "SYM")


def label_of(upos: str, feats: str) -> str:
    """The tagger's label of a gold token: "VERB|Ger", "AUX|Fin", "NOUN|-"."""
    if upos in VERBFORM_UPOS:
        for kv in feats.split("|"):
            if kv.startswith("VerbForm="):
                return f"{upos}|{kv[9:]}"
    return f"{upos}|-"


def training_rows(sentences: Iterable[Sentence]) -> list[tuple[list[str], list[str]]]:
    """(words, labels) per sentence: the tokens the engine tags (no punctuation-only ones), and
    of those only the ones whose gold tag is not PUNCT or SYM."""
    rows = []
    for s in sentences:
        feats = s.feats or ["_"] * len(s.forms)
        keep = [i for i, f in enumerate(s.forms) if PUNCT_RE.match(f) is None and s.upos[i] not in NO_LABEL]
        if keep:
            rows.append(([s.forms[i] for i in keep], [label_of(s.upos[i], feats[i]) for i in keep]))
    return rows


def make_tagdict(rows: Sequence[tuple[list[str], list[str]]], min_count: int = TAGDICT_MIN_COUNT,
                 min_share: float = TAGDICT_MIN_SHARE) -> dict[str, str]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for words, labels in rows:
        for w, lab in zip(words, labels, strict=True):
            counts[w.lower()][lab] += 1
    out = {}
    for w, c in counts.items():
        n = sum(c.values())
        top = max(c.values())
        lab = max(k for k, v in c.items() if v == top)
        if n >= min_count and top / n >= min_share:
            out[w] = lab
    return out


class AveragedPerceptron:
    """Integer weights with lazily updated totals (Collins 2002 averaging, as textblob-aptagger)."""

    def __init__(self, classes: Sequence[str]):
        self.classes = sorted(classes)
        self.weights: dict[str, dict[int, int]] = {}
        self._totals: dict[tuple[str, int], int] = defaultdict(int)
        self._stamps: dict[tuple[str, int], int] = defaultdict(int)
        self.i = 0

    def predict(self, feats: Sequence[str]) -> int:
        scores = [0] * len(self.classes)
        w = self.weights
        for f in feats:
            row = w.get(f)
            if row:
                for c, v in row.items():
                    scores[c] += v
        best = max(scores)
        return max(c for c, s in enumerate(scores) if s == best)  # the greatest label among ties

    def update(self, truth: int, guess: int, feats: Sequence[str]) -> None:
        self.i += 1
        if truth == guess:
            return
        for f in feats:
            row = self.weights.setdefault(f, {})
            for c, d in ((truth, 1), (guess, -1)):
                key = (f, c)
                v = row.get(c, 0)
                self._totals[key] += (self.i - self._stamps[key]) * v
                self._stamps[key] = self.i
                row[c] = v + d

    def averaged(self) -> dict[str, dict[str, float]]:
        """{feature: {label: averaged weight rounded to 0.001}} without zero entries."""
        out: dict[str, dict[str, float]] = {}
        for f, row in self.weights.items():
            avg = {}
            for c, v in row.items():
                key = (f, c)
                total = self._totals[key] + (self.i - self._stamps[key]) * v
                m = _round_half_even(total * 1000, self.i)
                if m:
                    avg[self.classes[c]] = m / 1000
            if avg:
                out[f] = avg
        return out


def train(sentences: Iterable[Sentence], iterations: int = ITERATIONS, seed: int = SEED,
          min_count: int = TAGDICT_MIN_COUNT, min_share: float = TAGDICT_MIN_SHARE,
          on_iteration: Callable[[int, dict], None] | None = None) -> dict:
    """The model JSON ({"classes", "tagdict", "weights", "training"}) trained on `sentences`;
    `on_iteration(k, model)` sees the averaged model after each iteration k (1-based)."""
    t0 = time.time()
    rows = training_rows(sentences)
    tagdict = make_tagdict(rows, min_count, min_share)
    classes = sorted({lab for _, labels in rows for lab in labels})
    cid = {c: i for i, c in enumerate(classes)}
    ap = AveragedPerceptron(classes)
    tagdict_id = {w: cid[c] for w, c in tagdict.items()}
    rng = random.Random(seed)
    order = list(range(len(rows)))
    model: dict = {}
    for it in range(1, iterations + 1):
        for r in order:
            words, labels = rows[r]
            context = [w.lower() for w in words]
            prev, prev2 = START, START
            for i, word in enumerate(words):
                guess = tagdict_id.get(context[i])
                if guess is None:
                    feats = features(i, word, context, prev, prev2)
                    guess = ap.predict(feats)
                    ap.update(cid[labels[i]], guess, feats)
                prev2, prev = prev, classes[guess]
        rng.shuffle(order)
        if on_iteration is not None or it == iterations:
            model = {"classes": classes, "tagdict": tagdict, "weights": ap.averaged()}
            if on_iteration is not None:
                on_iteration(it, model)
    model["training"] = {"iterations": iterations, "seed": seed, "tagdict_min_count": min_count,
                         "tagdict_min_share": min_share, "sentences": len(rows),
                         "tokens": sum(len(w) for w, _ in rows), "seconds": round(time.time() - t0, 1)}
    return model


def train_averaged(sentences: Iterable[Sentence], iterations: int = ITERATIONS, seeds: Sequence[int] = SEEDS,
                   min_count: int = TAGDICT_MIN_COUNT, min_share: float = TAGDICT_MIN_SHARE) -> dict:
    """One model per seed of `seeds`, their weights averaged (in thousandths, rounded to the
    nearest; zeros dropped). The tag dictionary and classes do not depend on the seed."""
    sentences = list(sentences)
    t0 = time.time()
    total: dict[str, dict[str, int]] = {}
    model: dict = {}
    for seed in seeds:
        model = train(sentences, iterations, seed, min_count, min_share)
        for f, row in model["weights"].items():
            acc = total.setdefault(f, {})
            for c, v in row.items():
                acc[c] = acc.get(c, 0) + round(v * 1000)
    k = len(seeds)
    weights = {}
    for f, row in total.items():
        avg = {c: m / 1000 for c, m in ((c, _round_half_even(v, k)) for c, v in row.items()) if m}
        if avg:
            weights[f] = avg
    training = {**model["training"], "seeds": list(seeds), "seconds": round(time.time() - t0, 1)}
    training.pop("seed", None)
    return {"classes": model["classes"], "tagdict": model["tagdict"], "weights": weights, "training": training}


def _round_half_even(num: int, den: int) -> int:
    """num / den rounded to the nearest integer (ties to even), in exact integer arithmetic."""
    q, r = divmod(num, den)
    if 2 * r > den or (2 * r == den and q % 2):
        q += 1
    return q


def weights_bytes(model: dict) -> bytes:
    """The weights file's bytes: the model JSON without its (timed) "training" entry, keys
    sorted, gzip without a name or time stamp: the same model always gives the same bytes."""
    body = {k: model[k] for k in ("classes", "tagdict", "weights")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def settings(iterations: int = ITERATIONS, seeds: Sequence[int] = SEEDS, min_count: int = TAGDICT_MIN_COUNT,
             min_share: float = TAGDICT_MIN_SHARE) -> dict:
    return {"iterations": iterations, "seeds": list(seeds), "tagdict_min_count": min_count,
            "tagdict_min_share": min_share, "format": 2}


def train_weights_file(train_path: str, out_path: str, train_sha256: str, force: bool = False,
                       old: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train on the CoNLL-U file `train_path` and write the weights file `out_path` (atomically);
    returns its manifest entry. Skipped when `old` (the previous entry) has the same inputs
    (train file hash and settings) and the file is there with the recorded hash."""
    from reviewrec.preprocess.perceptron import file_sha256

    cfg = settings()
    inputs = {"train_sha256": train_sha256, **cfg}
    if not force and old and old.get("inputs") == inputs and os.path.isfile(out_path) \
            and file_sha256(out_path) == old.get("sha256"):
        return {**old, "cached": True}
    t0 = time.time()
    model = train_averaged(read_conllu(train_path))
    blob = weights_bytes(model)
    tmp = out_path + f".tmp-{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(blob)
    os.replace(tmp, out_path)
    return {"inputs": inputs, "file": os.path.basename(out_path), "bytes": len(blob),
            "sha256": hashlib.sha256(blob).hexdigest(), "classes": len(model["classes"]),
            "tagdict_words": len(model["tagdict"]), "features": len(model["weights"]),
            "train_sentences": model["training"]["sentences"], "train_tokens": model["training"]["tokens"],
            "train_seconds": round(time.time() - t0, 1), "cached": False}
