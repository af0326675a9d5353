"""The sparknlp engine's models, trained here from UD English-EWT train (no model hub needed).

  * POS: Spark NLP's PerceptronApproach on EWT train converted to its `word<delim>UPOS` format
    (preprocess/conllu.py: `choose_delimiter`, `pos_line`), punctuation-only tokens left out as the
    chain's tokenizer leaves them out, so the model predicts UPOS directly.
  * Lemma: Spark NLP's Lemmatizer with a dictionary (`build_lemma_dictionary`): every
    (lowercase form, lemma) of lemminflect's lookup table (its lemma_lu.csv.gz: form, UPOS,
    lemmas), one lemma per form by `UPOS_PRIORITY`, then overridden by the most frequent lemma of
    that form in EWT train. Keys are normalised as the engine's Normalizer output is (lowercase,
    typographic apostrophes as "'").

Both are saved as Spark ML models (`<dir>/pos_ud_ewt`, `<dir>/lemma_ud_ewt`) with
`<dir>/MODELS.json` holding the hash of their inputs (train file, lemminflect's table, the
settings and the Spark NLP version); `train_models` skips the work when that hash is unchanged.
Settings were chosen on EWT dev only (benchmarks/bench_text_sparknlp.py); nothing trains on dev.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pyspark.sql import SparkSession

from reviewrec.preprocess.conllu import Sentence, choose_delimiter, lemma_counts, pos_line, read_conllu
from reviewrec.preprocess.sparknlp_engine import LEMMA_MODEL, MODELS_ARCHIVE, MODELS_DIR, POS_MODEL, pack_models

log = logging.getLogger(__name__)

MANIFEST = "MODELS.json"
# MODELS.json's entry for the builtin engine's POS weights (preprocess/perceptron_train.py).
BUILTIN_KEY = "builtin_pos"
# A form that lemminflect knows under several UPOS takes the lemma of the first of these it has.
UPOS_PRIORITY = ("VERB", "AUX", "NOUN", "ADJ", "ADV", "PROPN", "PRON", "DET", "ADP", "NUM")
POS_ITERATIONS = 6
DICT_KEY_DELIMITER = "->"
DICT_VALUE_DELIMITER = "\t"
APOSTROPHES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'"})


def normalise(word: str) -> str:
    """A dictionary key / value as the engine sees the token after Normalizer."""
    return word.translate(APOSTROPHES).lower()


def lemminflect_table_path() -> str:
    from lemminflect import config

    return str(config.lemma_lu_fn)


def read_lookup_table(path: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """lemminflect's lemma_lu.csv.gz rows: (form, UPOS, lemmas)."""
    rows = []
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        for rec in csv.reader(fh):
            if len(rec) == 3:
                rows.append((rec[0], rec[1].upper(), tuple(x for x in rec[2].split("/") if x)))
    return rows


def build_lemma_dictionary(ewt: Mapping[tuple[str, str], int],
                           lookup: Iterable[tuple[str, str, Sequence[str]]],
                           priority: Sequence[str] = UPOS_PRIORITY) -> dict[str, str]:
    """form -> lemma (both normalised). Lookup rows first: per form, the first lemma of the
    first UPOS of `priority` it has (else of its first UPOS); then every form seen in `ewt`
    ((form, lemma) -> count) takes its most frequent lemma there (ties: the lemma equal to the
    form, then alphabetical). Entries whose lemma is the form itself are kept out (the
    lemmatizer returns an unknown token unchanged)."""
    rank = {u: i for i, u in enumerate(priority)}
    best: dict[str, tuple[int, str]] = {}
    for form, upos, lemmas in lookup:
        if not lemmas:
            continue
        f, r = normalise(form), rank.get(upos.upper(), len(rank))
        if f not in best or r < best[f][0]:
            best[f] = (r, normalise(lemmas[0]))
    out = {f: lem for f, (_, lem) in best.items()}
    by_form: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for (form, lemma), n in ewt.items():
        by_form[normalise(form)].append((n, normalise(lemma)))
    for f, cands in by_form.items():
        merged: Counter[str] = Counter()
        for n, lem in cands:
            merged[lem] += n
        out[f] = min(merged, key=lambda lem: (-merged[lem], lem != f, lem))
    return {f: lem for f, lem in out.items() if f != lem and f and lem}


def dictionary_lines(forms_to_lemma: Mapping[str, str]) -> list[str]:
    """Spark NLP's Lemmatizer dictionary format: `lemma -> form<TAB>form...`, sorted."""
    by_lemma: dict[str, list[str]] = defaultdict(list)
    for f, lem in forms_to_lemma.items():
        by_lemma[lem].append(f)
    return [f"{lem} {DICT_KEY_DELIMITER} {DICT_VALUE_DELIMITER.join(sorted(fs))}"
            for lem, fs in sorted(by_lemma.items())]


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def inputs_hash(train_path: str, lookup_path: str, sparknlp_version: str, iterations: int = POS_ITERATIONS,
                priority: Sequence[str] = UPOS_PRIORITY) -> str:
    blob = json.dumps({"train": _sha256(train_path), "lookup": _sha256(lookup_path), "sparknlp": sparknlp_version,
                       "iterations": iterations, "priority": list(priority), "format": 1}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_manifest(models_dir: str) -> dict[str, Any] | None:
    p = os.path.join(models_dir, MANIFEST)
    if not os.path.isfile(p):
        return None
    with open(p, encoding="utf-8") as fh:
        return json.load(fh)


def _dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def train_pos(spark: SparkSession, sentences: Sequence[Sentence], iterations: int = POS_ITERATIONS) -> Any:
    """A PerceptronModel (UPOS) trained on `sentences` through Spark NLP's POS reader."""
    from sparknlp.annotator import PerceptronApproach, RegexTokenizer
    from sparknlp.training import POS

    delim = choose_delimiter(sentences)
    lines = [x for x in (pos_line(s, delim) for s in sentences) if x]
    with tempfile.TemporaryDirectory(prefix="reviewrec-pos-") as tmp:
        path = os.path.join(tmp, "train.txt")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        data = POS().readDataset(spark, path, delimiter=delim, outputPosCol="tags",
                                 outputDocumentCol="document", outputTextCol="text")
        tok = RegexTokenizer().setInputCols(["document"]).setOutputCol("token").setPattern(" ").setToLowercase(False)
        approach = (PerceptronApproach().setInputCols(["document", "token"]).setOutputCol("pos")
                    .setPosColumn("tags").setNIterations(iterations))
        data = tok.transform(data).cache()
        n = data.count()
        if n != len(lines):
            raise RuntimeError(f"Spark NLP's POS reader returned {n} sentences for {len(lines)} lines")
        model = approach.fit(data)
        data.unpersist()
    return model


def train_lemmatizer(spark: SparkSession, forms_to_lemma: Mapping[str, str]) -> Any:
    """A LemmatizerModel over the dictionary `forms_to_lemma`."""
    from pyspark.ml import Pipeline
    from sparknlp.annotator import Lemmatizer, RegexTokenizer
    from sparknlp.base import DocumentAssembler

    with tempfile.TemporaryDirectory(prefix="reviewrec-lemma-") as tmp:
        path = os.path.join(tmp, "lemmas.txt")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("\n".join(dictionary_lines(forms_to_lemma)) + "\n")
        lem = (Lemmatizer().setInputCols(["token"]).setOutputCol("lemma")
               .setDictionary(path, DICT_KEY_DELIMITER, DICT_VALUE_DELIMITER))
        stages = [DocumentAssembler().setInputCol("text").setOutputCol("document"),
                  RegexTokenizer().setInputCols(["document"]).setOutputCol("token").setPattern(" "), lem]
        fitted = Pipeline(stages=stages).fit(spark.createDataFrame([("a b",)], "text string"))
    return fitted.stages[-1]


def train_models(spark: SparkSession, train_path: str, models_dir: str = MODELS_DIR,
                 iterations: int = POS_ITERATIONS, force: bool = False, archive: str | None = None) -> dict[str, Any]:
    """Train both models and save them as directories under `models_dir`, or, with `archive`,
    packed into that one file (the project's: lib/sparknlp/models/ud_ewt.tar.xz); MODELS.json in
    `models_dir` records the inputs' hash, and the same hash with the models present skips it."""
    import sparknlp

    lookup_path = lemminflect_table_path()
    h = inputs_hash(train_path, lookup_path, sparknlp.version(), iterations)
    old = read_manifest(models_dir)
    present = os.path.isfile(archive) if archive else \
        all(os.path.isdir(os.path.join(models_dir, m)) for m in (POS_MODEL, LEMMA_MODEL))
    if not force and old and old.get("inputs_hash") == h and present:
        log.info("Spark NLP models in %s are up to date (inputs %s)", archive or models_dir, h)
        return {**old, "cached": True}
    t0 = time.time()
    sentences = list(read_conllu(train_path))
    pos = train_pos(spark, sentences, iterations)
    t_pos = time.time() - t0
    lemmas = build_lemma_dictionary(lemma_counts(sentences), read_lookup_table(lookup_path))
    lem = train_lemmatizer(spark, lemmas)
    os.makedirs(models_dir, exist_ok=True)
    stage = tempfile.mkdtemp(prefix=".models-", dir=models_dir)
    try:
        pos.write().overwrite().save(os.path.join(stage, POS_MODEL))
        lem.write().overwrite().save(os.path.join(stage, LEMMA_MODEL))
        sizes = {"pos_bytes": _dir_bytes(os.path.join(stage, POS_MODEL)),
                 "lemma_bytes": _dir_bytes(os.path.join(stage, LEMMA_MODEL))}
        if archive:
            pack_models(stage, archive)
            sizes["archive_bytes"] = os.path.getsize(archive)
        else:
            for m in (POS_MODEL, LEMMA_MODEL):
                shutil.rmtree(os.path.join(models_dir, m), ignore_errors=True)
                os.replace(os.path.join(stage, m), os.path.join(models_dir, m))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    manifest = {
        "inputs_hash": h, "sparknlp": sparknlp.version(), "train": os.path.basename(train_path),
        "train_sha256": _sha256(train_path), "train_sentences": len(sentences),
        "lookup": "lemminflect " + _lemminflect_version() + " lemma_lu.csv.gz", "pos_iterations": iterations,
        "upos_priority": list(UPOS_PRIORITY), "dictionary_forms": len(lemmas), **sizes,
        "train_seconds": round(time.time() - t0, 1), "pos_train_seconds": round(t_pos, 1),
        "licence": "CC BY-SA 4.0 (trained on UD English-EWT); lemminflect table MIT",
    }
    if old and BUILTIN_KEY in old:
        manifest[BUILTIN_KEY] = old[BUILTIN_KEY]
    with open(os.path.join(models_dir, MANIFEST), "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)
        fh.write("\n")
    return {**manifest, "cached": False}


def train_builtin_weights(train_path: str, models_dir: str = MODELS_DIR, force: bool = False) -> dict[str, Any]:
    """The builtin engine's POS weights (`perceptron.WEIGHTS_FILE`) trained on `train_path` into
    `models_dir`, recorded under MODELS.json's "builtin_pos" (skipped when its inputs are unchanged)."""
    from reviewrec.preprocess.perceptron import WEIGHTS_FILE
    from reviewrec.preprocess.perceptron_train import train_weights_file

    old = read_manifest(models_dir) or {}
    entry = train_weights_file(train_path, os.path.join(models_dir, WEIGHTS_FILE), _sha256(train_path),
                               force=force, old=old.get(BUILTIN_KEY))
    if not entry["cached"]:
        cur = read_manifest(models_dir) or {}
        cur[BUILTIN_KEY] = {k: v for k, v in entry.items() if k != "cached"}
        os.makedirs(models_dir, exist_ok=True)
        with open(os.path.join(models_dir, MANIFEST), "w", encoding="utf-8") as fh:
            json.dump(cur, fh, indent=2, sort_keys=True)
            fh.write("\n")
    return entry


def _lemminflect_version() -> str:
    from importlib.metadata import version

    return version("lemminflect")


def run(spark: SparkSession, cfg: Any) -> dict[str, Any]:
    """The train_text_models job: text.sparknlp_train_conllu -> the models at
    text.sparknlp_pos_model / text.sparknlp_lemma_model (both null: the project's archive
    lib/sparknlp/models/ud_ewt.tar.xz)."""
    from reviewrec.preprocess.sparknlp_engine import REPO, require_sparknlp

    t = cfg["text"]
    train = t["sparknlp_train_conllu"]
    train = train if os.path.isabs(train) else os.path.join(REPO, train)
    if not os.path.isfile(train):
        raise FileNotFoundError(f"text.sparknlp_train_conllu = {t['sparknlp_train_conllu']}: {train} does not exist "
                                "(UD English-EWT train, e.g. ../shared/data/ud_english_ewt/en_ewt-ud-train.conllu)")
    if not t["sparknlp_pos_model"] and not t["sparknlp_lemma_model"]:
        builtin = train_builtin_weights(train, MODELS_DIR)
        log.info("builtin engine's POS weights %s: %s", "reused" if builtin["cached"] else "trained",
                 json.dumps(builtin, sort_keys=True))
    require_sparknlp(spark, t["sparknlp_jar"], t["sparknlp_package"])
    if not t["sparknlp_pos_model"] and not t["sparknlp_lemma_model"]:
        out = train_models(spark, train, MODELS_DIR, archive=os.path.join(MODELS_DIR, MODELS_ARCHIVE))
    else:
        pos_dir = os.path.abspath(t["sparknlp_pos_model"] or "")
        lemma_dir = os.path.abspath(t["sparknlp_lemma_model"] or "")
        models_dir = os.path.dirname(pos_dir)
        if (os.path.basename(pos_dir), os.path.basename(lemma_dir), os.path.dirname(lemma_dir)) != \
                (POS_MODEL, LEMMA_MODEL, models_dir):
            raise ValueError(f"train_text_models writes {POS_MODEL} and {LEMMA_MODEL} into one directory: set "
                             f"text.sparknlp_pos_model=DIR/{POS_MODEL} and "
                             f"text.sparknlp_lemma_model=DIR/{LEMMA_MODEL}, "
                             "or neither (the project's archive)")
        out = train_models(spark, train, models_dir)
    log.info("Spark NLP models %s: %s", "reused" if out["cached"] else "trained", json.dumps(out, sort_keys=True))
    return out
