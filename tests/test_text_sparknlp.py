"""The sparknlp engine: a clear error without its jar; parity with builtin when the jar is there."""
from __future__ import annotations

import datetime as dt

import pytest

from reviewrec.text import sparknlp_engine as E

pytestmark = pytest.mark.spark


def test_missing_jar_names_the_coordinates(spark):
    if E.jar_loaded(spark):
        pytest.skip("the Spark NLP jar is on this session's classpath")
    with pytest.raises(E.SparkNLPUnavailable) as err:
        E.require_sparknlp(spark, None, "com.johnsnowlabs.nlp:spark-nlp_2.12:5.5.3")
    msg = str(err.value)
    assert "com.johnsnowlabs.nlp.DocumentAssembler" in msg
    assert "--packages com.johnsnowlabs.nlp:spark-nlp_2.12:5.5.3" in msg
    assert "text.sparknlp_jar" in msg


def test_missing_local_jar_is_named(spark, tmp_path):
    if E.jar_loaded(spark):
        pytest.skip("the Spark NLP jar is on this session's classpath")
    jar = str(tmp_path / "spark-nlp-assembly-5.5.3.jar")
    with pytest.raises(E.SparkNLPUnavailable, match="that file does not exist") as err:
        E.require_sparknlp(spark, jar, None)
    assert f"--jars {jar}" in str(err.value)


def test_preprocess_job_stops_before_writing(spark, run_root):
    if E.jar_loaded(spark):
        pytest.skip("the Spark NLP jar is on this session's classpath")
    from reviewrec import io
    from reviewrec import schema as S
    from reviewrec.config import load_config
    from reviewrec.text.job import run

    rows = [("US", "c1", "R1", "p1", None, "t", "Beauty", 5, 0, 0, False, True, "Great", "works well",
             dt.date(2015, 1, 1))]
    io.write_parquet_atomic(spark.createDataFrame(rows, S.REVIEWS_SCHEMA), io.dataset_path(run_root, "reviews"))
    cfg = load_config([], [f"run.root={run_root}", "text.engine=sparknlp"])
    with pytest.raises(E.SparkNLPUnavailable, match="spark-nlp_2.12"):
        run(spark, cfg)
    assert not io.dataset_exists(spark, io.dataset_path(run_root, "tokens"))


def test_parity_with_builtin(spark):
    """Same reviews through both engines: lemma agreement >= 0.85 on the tokens both keep."""
    if not E.jar_loaded(spark):
        pytest.skip("Spark NLP jar not on the classpath (provide com.johnsnowlabs.nlp:spark-nlp_2.12:5.5.3 "
                    "with --packages, or text.sparknlp_jar + --jars); parity runs only with it")
    from reviewrec.text.transforms import preprocess

    reviews = spark.createDataFrame([
        ("R1", "Five Stars", "The kids loved these puzzles and the batteries lasted for weeks"),
        ("R2", "Broken", "The screen cracked after two days and support never answered my emails"),
    ], "review_id string, review_headline string, review_body string")
    stop = ["the", "these", "and", "for", "after", "my", "never"]
    a = {r[0]: r[1] for r in preprocess(reviews, stop).collect()}
    b = {r[0]: r[1] for r in preprocess(reviews, stop, engine="sparknlp").collect()}
    same = total = 0
    for rid, lem in a.items():
        other = b[rid]
        total += max(len(lem), len(other))
        same += sum(x == y for x, y in zip(lem, other))
    assert same / total >= 0.85
