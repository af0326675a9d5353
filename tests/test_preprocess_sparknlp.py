"""The sparknlp engine for real: the preprocess job through ./spark-submit.sh with the jars setup
fetched (spark.jars) and the trained models, against the builtin engine on the same reviews;
and the clear error when the jar is missing."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import SHARED_DATA, shared_data
from reviewrec import io
from reviewrec import schema as S

pytestmark = [pytest.mark.spark, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
LITERAL = [
    ("R1", "Five Stars", "The kids loved these puzzles and the batteries lasted for weeks!"),
    ("R2", "Broken", "The screen cracked after two days and support never answered my emails."),
    ("R3", "Sooooo good", "Installed it on both laptops; it's running greaaaat and the updates were painless."),
]


def _write_reviews(spark, root: str, extra: int = 0) -> int:
    rows = [("US", f"c{i}", rid, "p1", None, "t", "Digital_Software", 5, 0, 0, False, True, h, b,
             dt.date(2015, 1, 1)) for i, (rid, h, b) in enumerate(LITERAL)]
    df = spark.createDataFrame(rows, S.REVIEWS_SCHEMA)
    if extra:
        from pyspark.sql import functions as F

        real = (spark.read.parquet(str(shared_data("amazon_reviews_pds", "Digital_Software")))
                .orderBy("review_id").limit(extra)
                .withColumn(S.PRODUCT_CATEGORY, F.lit("Digital_Software"))
                .withColumn(S.VINE, F.col(S.VINE) == "Y")
                .withColumn(S.VERIFIED_PURCHASE, F.col(S.VERIFIED_PURCHASE) == "Y"))
        df = df.unionByName(spark.createDataFrame(real.select(*S.REVIEWS_COLUMNS).rdd, S.REVIEWS_SCHEMA))
    io.write_parquet_atomic(df, io.dataset_path(root, "reviews"))
    return df.count()


def _launch(*sets: str, timeout: int = 900) -> subprocess.CompletedProcess:
    cmd = [str(REPO / "spark-submit.sh"), "preprocess"]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "REVIEWREC_SPARK_LOG_LEVEL": "WARN"}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def test_job_on_sparknlp_engine_matches_builtin(spark, run_root):
    """The job on the sparknlp engine (launcher -> spark.jars -> trained models) keeps the
    builtin engine's token lists: the same columns, UPOS tags, and a mean Jaccard of the lemma
    sets of at least 0.9 on real Digital_Software reviews (when ../shared/data has them; the
    literal rows alone otherwise); known lemmas on the literal ones. That the tokens are Spark
    NLP's and not builtin's is tests/test_preprocess_sparknlp_gold.py's."""
    from reviewrec.preprocess.job import TextParams, preprocess

    real = (SHARED_DATA / "amazon_reviews_pds" / "Digital_Software").exists()
    n = _write_reviews(spark, run_root, extra=300 if real else 0)
    res = _launch(f"run.root={run_root}", "text.engine=sparknlp")
    assert res.returncode == 0, res.stderr[-4000:]
    got = io.read_dataset(spark, io.dataset_path(run_root, "tokens"), "preprocess")
    # the job's tokens: the chain's columns and the hash of the text it read (what a later day's
    # run compares to tokenise only new or changed text)
    assert got.columns == [S.REVIEW_ID, S.LEMMAS, S.POS, "text_hash"]
    sn = {r[0]: (r[1], r[2]) for r in got.collect()}
    assert len(sn) == n
    report = json.loads(Path(io.dataset_path(run_root, "report/preprocess.json")).read_text())
    assert report["engine"] == "sparknlp" and report["reviews"] == n

    reviews = io.read_dataset(spark, io.dataset_path(run_root, "reviews"), "ingest")
    bi = {r[0]: (r[1], r[2]) for r in preprocess(reviews, TextParams(engine="builtin")).collect()}
    # literal reviews: tagged with case and stop words in place, then lemmatized and filtered
    lem, pos = sn["R1"]
    assert lem == ["five", "star", "kid", "love", "puzzle", "battery", "last", "week"]
    assert pos == ["NUM", "NOUN", "NOUN", "VERB", "NOUN", "NOUN", "VERB", "NOUN"]
    assert "greaaaat" not in sn["R3"][0] and "sooooo" not in sn["R3"][0]   # character runs > 3
    assert "install" in sn["R3"][0] and "laptop" in sn["R3"][0] and "update" in sn["R3"][0]
    assert all(len(x) >= 3 for lem, _ in sn.values() for x in lem)
    assert {t for _, p in sn.values() for t in p} <= {"ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN",
                                                       "NUM", "PART", "PRON", "PROPN", "SCONJ", "SYM", "VERB", "X"}
    jac = []
    for rid, (la, _) in bi.items():
        a, b = set(la), set(sn[rid][0])
        jac.append(1.0 if not a and not b else len(a & b) / len(a | b))
    assert sum(jac) / len(jac) >= 0.9


def test_missing_jar_stops_the_job_with_the_artifact_named(spark, run_root, tmp_path):
    _write_reviews(spark, run_root)
    jar = tmp_path / "spark-nlp-assembly-5.5.3.jar"
    res = _launch(f"run.root={run_root}", "text.engine=sparknlp", f"text.sparknlp_jar={jar}", timeout=600)
    assert res.returncode != 0
    log = res.stdout + res.stderr
    assert "SparkNLPUnavailable" in log
    assert f"text.sparknlp_jar = {jar}: that file does not exist, so " \
           "com.johnsnowlabs.nlp:spark-nlp_2.12:5.5.3 is missing" in log
    assert "text.engine=builtin" in log
    assert not io.dataset_exists(spark, io.dataset_path(run_root, "tokens"))
    # the builtin engine still works on the same reviews, through the same launcher
    res = _launch(f"run.root={run_root}", "text.engine=builtin", f"text.sparknlp_jar={jar}", timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    assert io.read_dataset(spark, io.dataset_path(run_root, "tokens"), "preprocess").count() == len(LITERAL)


def test_missing_jar_on_a_session_without_it(spark):
    """A session started without the jars (the shared test session, engine builtin) cannot load
    Spark NLP's classes: the engine says so, naming the class, the package and the fix."""
    from reviewrec.preprocess import sparknlp_engine as E

    assert not E.jar_loaded(spark)
    with pytest.raises(E.SparkNLPUnavailable) as err:
        E.require_sparknlp(spark, None, "com.johnsnowlabs.nlp:spark-nlp_2.12:5.5.3")
    msg = str(err.value)
    assert "com.johnsnowlabs.nlp.DocumentAssembler" in msg
    assert "--packages com.johnsnowlabs.nlp:spark-nlp_2.12:5.5.3" in msg
    assert "text.sparknlp_jar=cache" in msg
