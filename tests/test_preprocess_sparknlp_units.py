"""The sparknlp engine's pieces that need no JVM: CoNLL-U -> Spark NLP training format, the
lemma dictionary, where the jars come from and the Spark properties the launcher passes."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from reviewrec.preprocess import sparknlp_jars as J
from reviewrec.preprocess.conllu import Sentence, choose_delimiter, lemma_counts, pos_line, read_conllu
from reviewrec.preprocess.sparknlp_models import build_lemma_dictionary, dictionary_lines, normalise

REPO = Path(__file__).resolve().parents[1]

CONLLU = """# sent_id = reviews-1
# text = I loved these 2 1/2 puzzles!
1\tI\tI\tPRON\tPRP\t_\t2\tnsubj\t_\t_
2\tloved\tlove\tVERB\tVBD\t_\t0\troot\t_\t_
3\tthese\tthis\tDET\tDT\t_\t5\tdet\t_\t_
4\t2 1/2\t2 1/2\tNUM\tCD\t_\t5\tnummod\t_\t_
5\tpuzzles\tpuzzle\tNOUN\tNNS\t_\t2\tobj\t_\t_
6\t!\t!\tPUNCT\t.\t_\t2\tpunct\t_\t_

# sent_id = email-2
1-2\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tdo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_
2\tn't\tnot\tPART\tRB\t_\t3\tadvmod\t_\t_
3\tuse\tuse\tVERB\tVB\t_\t0\troot\t_\t_
4\ta|b\ta|b\tX\tLS\t_\t3\tobj\t_\t_
5\t|\t|\tPUNCT\tNFP\t_\t3\tpunct\t_\t_
"""


@pytest.fixture()
def sentences(tmp_path):
    p = tmp_path / "x.conllu"
    p.write_text(CONLLU, encoding="utf-8")
    return list(read_conllu(str(p)))


def test_pos_lines_from_conllu(sentences):
    assert [s.genre for s in sentences] == ["reviews", "email"]
    assert pos_line(sentences[0], "|") == "I|PRON loved|VERB these|DET 2_1/2|NUM puzzles|NOUN"
    # "a|b" holds the default delimiter: the corpus gets the next candidate, and the word survives.
    d = choose_delimiter(sentences)
    assert d == "\u00a6"
    assert pos_line(sentences[1], d) == "do\u00a6AUX n't\u00a6PART use\u00a6VERB a|b\u00a6X"
    with pytest.raises(ValueError, match="contains the delimiter"):
        pos_line(sentences[1], "|")
    # punctuation kept on request (multi-word range lines never appear)
    assert pos_line(sentences[1], d, words_only=False).split(" ")[-1] == "|\u00a6PUNCT"


def test_choose_delimiter_fails_when_every_candidate_is_used():
    s = Sentence("x", ["a|b\u00a6c"], ["_"], ["X"])
    with pytest.raises(ValueError, match="every delimiter candidate"):
        choose_delimiter([s], ("|", "\u00a6"))


def test_lemma_counts_lowercase_words_only(sentences):
    c = lemma_counts(sentences + [Sentence("x", ["Loved", "?"], ["Love", "?"], ["VERB", "PUNCT"])])
    assert c[("loved", "love")] == 2
    assert c[("n't", "not")] == 1
    assert ("!", "!") not in c and ("?", "?") not in c


def test_lemma_dictionary_lookup_priority_ewt_override_and_normalisation():
    lookup = [("saw", "NOUN", ("saw",)), ("saw", "VERB", ("see", "saw")),
              ("Better", "ADJ", ("good", "well")), ("better", "ADV", ("well",)),
              ("batteries", "NOUN", ("battery",)), ("left", "VERB", ("leave",)),
              ("puzzle", "NOUN", ("puzzle",)), ("won\u2019t", "AUX", ("will",))]
    ewt = Counter({("left", "left"): 3, ("left", "leave"): 2, ("Cats", "cat"): 1,
                   ("ran", "run"): 1, ("ran", "ran"): 1})
    d = build_lemma_dictionary(ewt, lookup, ("VERB", "AUX", "NOUN", "ADJ", "ADV"))
    assert d["saw"] == "see"            # VERB before NOUN
    assert d["better"] == "good"        # ADJ before ADV, key lowercased
    assert d["batteries"] == "battery"
    assert "left" not in d              # EWT's most frequent lemma is the form itself
    assert d["cats"] == "cat"           # EWT only
    assert "ran" not in d               # a tie goes to the form itself
    assert "puzzle" not in d            # identity entries are left out
    assert d["won't"] == "will"         # typographic apostrophe normalised as the chain does
    d2 = build_lemma_dictionary(Counter(), lookup, ("NOUN", "VERB"))
    assert "saw" not in d2              # NOUN first: "saw" is its own lemma


def test_dictionary_lines_spark_nlp_format():
    lines = dictionary_lines({"saw": "see", "seen": "see", "batteries": "battery"})
    assert lines == ["battery -> batteries", "see -> saw\tseen"]
    assert normalise("Don\u2019T") == "don't"


def _fake_cache(root: Path, version: str = "5.5.3", names=("spark-nlp_2.12-5.5.3.jar", "config-1.4.2.jar")):
    d = root / "sparknlp" / version / "jars"
    d.mkdir(parents=True)
    for n in names:
        (d / n).write_bytes(b"PK")
    (d.parent / "MANIFEST").write_text("\n".join(names) + "\n")
    return d


def test_missing_cached_jars_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("REVIEWREC_CACHE", str(tmp_path))
    with pytest.raises(J.SparkNLPUnavailable) as err:
        J.resolve_jars("cache", "com.johnsnowlabs.nlp:spark-nlp_2.12:5.5.3")
    msg = str(err.value)
    assert "com.johnsnowlabs.nlp:spark-nlp_2.12:5.5.3 is missing" in msg
    assert str(tmp_path / "sparknlp" / "5.5.3" / "jars") in msg
    assert "./spark-submit.sh setup" in msg and "text.engine=builtin" in msg
    assert "--packages com.johnsnowlabs.nlp:spark-nlp_2.12:5.5.3" in msg
    with pytest.raises(J.SparkNLPUnavailable, match="that file does not exist"):
        J.resolve_jars(str(tmp_path / "spark-nlp-assembly-5.5.3.jar"))
    assert J.resolve_jars(None) == []


def test_cached_jars_and_session_conf(tmp_path, monkeypatch):
    monkeypatch.setenv("REVIEWREC_CACHE", str(tmp_path))
    d = _fake_cache(tmp_path)
    jars = J.resolve_jars("cache", "com.johnsnowlabs.nlp:spark-nlp_2.12:5.5.3")
    assert jars == [str(d / "spark-nlp_2.12-5.5.3.jar"), str(d / "config-1.4.2.jar")]
    assert J.session_conf({"engine": "builtin", "sparknlp_jar": "cache"}) == {}
    assert J.session_conf({"engine": "sparknlp", "pos_lemma": False, "sparknlp_jar": "cache"}) == {}
    conf = J.session_conf({"engine": "sparknlp", "pos_lemma": True, "sparknlp_jar": "cache",
                           "sparknlp_package": "com.johnsnowlabs.nlp:spark-nlp_2.12:5.5.3",
                           "sparknlp_driver_memory": "3g"})
    assert conf["spark.jars"] == ",".join(jars)
    assert conf["spark.serializer"] == "org.apache.spark.serializer.KryoSerializer"
    assert conf["spark.driver.memory"] == "3g"
    # the training job needs Spark NLP whatever the engine; null jar = --packages, no spark.jars
    assert "spark.jars" in J.session_conf({"engine": "builtin", "sparknlp_jar": "cache"}, "train_text_models")
    assert "spark.jars" not in J.session_conf({"engine": "sparknlp", "sparknlp_jar": None})
    (d / "config-1.4.2.jar").unlink()
    with pytest.raises(J.SparkNLPUnavailable, match="fetched jars are gone"):
        J.resolve_jars("cache", None)


def test_launcher_engine_conf(tmp_path):
    """What ./spark-submit.sh passes to spark-submit with --conf for a sparknlp job (beside the
    storage jars every job gets)."""
    from reviewrec.jvm import STORAGE_KEY

    _fake_cache(tmp_path)
    storage = tmp_path / "storage" / STORAGE_KEY / "jars"
    storage.mkdir(parents=True)
    (storage / "delta-spark.jar").write_bytes(b"PK")
    (storage.parent / "MANIFEST").write_text("delta-spark.jar\n")
    env = {**os.environ, "REVIEWREC_CACHE": str(tmp_path), "PYTHONPATH": str(REPO / "lib")}

    def conf(*args: str) -> list[str]:
        out = subprocess.run([sys.executable, "-m", "reviewrec.submit", "engine-conf", *args], env=env,
                             capture_output=True, text=True, check=True, cwd=REPO).stdout
        return [x for x in out.splitlines() if x]

    builtin = conf("preprocess")
    assert not any("sparknlp" in x or x.startswith("spark.driver.memory=") for x in builtin)
    got = conf("preprocess", "--set", "text.engine=sparknlp")
    jars = [x for x in got if x.startswith("spark.jars=")]
    assert len(jars) == 1
    assert f"{tmp_path}/sparknlp/5.5.3/jars/spark-nlp_2.12-5.5.3.jar," \
           f"{tmp_path}/sparknlp/5.5.3/jars/config-1.4.2.jar" in jars[0]
    assert "spark.driver.memory=4g" in got
    assert any(x.startswith("spark.jars=") for x in conf("train_text_models"))


def test_requirements_pin_matches_the_maven_package():
    req = (REPO / "lib" / "requirements.txt").read_text()
    pin = [x.split("==")[1].split()[0] for x in req.splitlines() if x.startswith("spark-nlp==")]
    import yaml

    base = yaml.safe_load((REPO / "conf" / "base.yaml").read_text())
    assert pin == [J.version_of(base["text"]["sparknlp_package"])]
    import sparknlp

    assert sparknlp.version() == pin[0]


def _model_dirs(root: Path, content: bytes) -> Path:
    from reviewrec.preprocess.sparknlp_engine import LEMMA_MODEL, POS_MODEL

    for name in (POS_MODEL, LEMMA_MODEL):
        d = root / name / "fields" / "data"
        d.mkdir(parents=True)
        (d / "part-00000").write_bytes(content + name.encode())
        (root / name / "metadata").mkdir()
        (root / name / "metadata" / "part-00000").write_text('{"class": "x"}')
    return root


def test_models_archive_is_reproducible_and_unpacks_once_into_the_cache(tmp_path, monkeypatch):
    from reviewrec.preprocess import sparknlp_engine as E

    monkeypatch.setenv("REVIEWREC_CACHE", str(tmp_path / "cache"))
    a, b = _model_dirs(tmp_path / "a", b"weights"), _model_dirs(tmp_path / "b", b"weights")
    os.utime(b / E.POS_MODEL / "metadata" / "part-00000", (1, 1))  # times do not enter the archive
    E.pack_models(str(a), str(tmp_path / "a.tar.xz"))
    E.pack_models(str(b), str(tmp_path / "b.tar.xz"))
    assert (tmp_path / "a.tar.xz").read_bytes() == (tmp_path / "b.tar.xz").read_bytes()
    out = Path(E.project_models_dir(str(tmp_path / "a.tar.xz")))
    assert out.parent == tmp_path / "cache" / "sparknlp" / "models"
    for name in (E.POS_MODEL, E.LEMMA_MODEL):
        assert (out / name / "fields" / "data" / "part-00000").read_bytes() == b"weights" + name.encode()
    # Unpacked once: a second call reuses the directory; another archive gets its own.
    marker = out / E.POS_MODEL / "metadata" / "part-00000"
    marker.write_text("kept")
    assert Path(E.project_models_dir(str(tmp_path / "a.tar.xz"))) == out and marker.read_text() == "kept"
    E.pack_models(str(_model_dirs(tmp_path / "c", b"other")), str(tmp_path / "c.tar.xz"))
    assert Path(E.project_models_dir(str(tmp_path / "c.tar.xz"))) != out
    assert not list(out.parent.glob(".*"))  # no staging directory left


def test_missing_models_archive_names_it_and_the_rebuild_command(tmp_path):
    from reviewrec.preprocess import sparknlp_engine as E

    with pytest.raises(E.SparkNLPUnavailable) as e:
        E.project_models_dir(str(tmp_path / "gone.tar.xz"))
    assert str(tmp_path / "gone.tar.xz") in str(e.value) and "train_text_models" in str(e.value)


@pytest.mark.spark
def test_a_driver_running_from_the_zip_finds_the_archive_among_the_shipped_files(spark, tmp_path, monkeypatch):
    """The package imported from build/py/<hash>/reviewrec.zip has no lib/sparknlp beside it:
    the archive comes from the files spark-submit.sh ships (SparkFiles on the driver)."""
    import shutil

    from reviewrec.preprocess import sparknlp_engine as E

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    shutil.copy(os.path.join(E.MODELS_DIR, E.MODELS_ARCHIVE), shipped / E.MODELS_ARCHIVE)
    monkeypatch.setattr(E, "MODELS_DIR", str(tmp_path / "zip" / "lib" / "sparknlp" / "models"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(E.SparkNLPUnavailable) as e:
        E.models_archive()
    assert E.MODELS_ARCHIVE in str(e.value) and str(tmp_path / "zip") in str(e.value)
    spark.sparkContext.addFile(str(shipped / E.MODELS_ARCHIVE))
    from pyspark import SparkFiles

    assert E.models_archive() == SparkFiles.get(E.MODELS_ARCHIVE)
    assert Path(E.models_archive()).read_bytes() == (shipped / E.MODELS_ARCHIVE).read_bytes()


def test_the_shipped_models_archive_holds_both_models():
    import tarfile

    from reviewrec.preprocess import sparknlp_engine as E

    with tarfile.open(os.path.join(E.MODELS_DIR, E.MODELS_ARCHIVE), "r:xz") as tar:
        tops = {n.split("/")[0] for n in tar.getnames()}
    assert tops == {E.POS_MODEL, E.LEMMA_MODEL}


@pytest.mark.spark
def test_models_reach_a_cluster_file_system_once(spark, tmp_path, monkeypatch):
    """A run root on the local disk uses the driver's unpacked models; a remote one gets them
    published through Hadoop's file system API, once."""
    from reviewrec.preprocess import sparknlp_engine as E

    assert E.models_for_root(spark, str(tmp_path / "run")) == (None, None)
    src = _model_dirs(tmp_path / "src", b"weights")
    dest = f"file://{tmp_path}/run/_sparknlp_models/h"
    E.publish_models(spark, str(src), dest)
    part = tmp_path / "run" / "_sparknlp_models" / "h" / E.POS_MODEL / "fields" / "data" / "part-00000"
    assert part.read_bytes() == b"weights" + E.POS_MODEL.encode()
    part.write_bytes(b"published")  # a second run finds them and copies nothing
    E.publish_models(spark, str(src), dest)
    assert part.read_bytes() == b"published"
    # On HDFS/S3/GCS the job passes those paths to the annotators.
    calls = []
    monkeypatch.setattr(E, "project_models_dir", lambda: str(src))
    monkeypatch.setattr(E, "publish_models", lambda s, a, b: calls.append((a, b)))
    pos, lemma = E.models_for_root(spark, "hdfs://nn:8020/runs/ds")
    assert calls == [(str(src), f"hdfs://nn:8020/runs/ds/_sparknlp_models/{src.name}")]
    assert (pos, lemma) == (f"{calls[0][1]}/{E.POS_MODEL}", f"{calls[0][1]}/{E.LEMMA_MODEL}")
