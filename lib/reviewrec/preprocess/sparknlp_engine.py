"""The `sparknlp` text engine: Spark NLP annotators in the JVM.

    tokens (the chain's tokenizer, case kept) -> DocumentAssembler -> RegexTokenizer (on spaces:
    the same tokens) -> PerceptronModel (UPOS, tagged with the stop words and the case in place)
    -> Normalizer (lowercase) -> LemmatizerModel -> stop words (of the normalised token), lemmas
    shorter than min_length and lemmas with a character run longer than max_repeat dropped
    -> lemmas, pos (array<string>, aligned): the builtin engine's output columns.

Order matters: tagging after Normalizer and StopWordsCleaner loses about a quarter of the UPOS
accuracy (the tagger reads the neighbouring words and the case). The models are the project's
own (jobs/train_text_models.py: PerceptronApproach trained on UD English-EWT train with UPOS
tags, a Lemmatizer dictionary from EWT train + lemminflect's lookup table), shipped as
lib/sparknlp/models/ud_ewt.tar.xz and unpacked into the cache on first use;
`pretrained:<name>[:<lang>]` in text.sparknlp_pos_model / text.sparknlp_lemma_model downloads a
John Snow Labs model instead (needs internet on the driver; its tags must be UPOS or Penn, which
are mapped to UPOS).

Jars (text.sparknlp_jar):
  * "cache" (default): the jars `./spark-submit.sh setup` fetched with Maven
    (lib/sparknlp/pom.xml) into <cache>/sparknlp/<version>/jars, <cache> =
    ${REVIEWREC_CACHE:-${XDG_CACHE_HOME:-~/.cache}/reviewrec}, version = the spark-nlp pin;
  * a path: a jar (e.g. spark-nlp-assembly-<version>.jar) or a directory of jars;
  * null: spark-submit's --packages text.sparknlp_package (a cluster that reaches Maven).
`sparknlp_jars.session_conf` gives the Spark properties the engine needs (spark.jars, the Kryo serializer,
a bounded driver memory); the session factory and the launcher apply them, so the jars reach
the driver and, through spark.jars, every executor (local and standalone). Without them,
`require_sparknlp` stops the job before any Spark work with an error naming the missing
artifact and how to provide it; the builtin engine needs none of this.
"""
from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from reviewrec import io
from reviewrec import schema as S
from reviewrec.preprocess.sparknlp_jars import (DEFAULT_PACKAGE, SETUP_HINT, SparkNLPUnavailable, cache_dir,
                                                resolve_jars)

PROBE_CLASS = "com.johnsnowlabs.nlp.DocumentAssembler"
PRETRAINED = "pretrained:"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MODELS_DIR = os.path.join(REPO, "lib", "sparknlp", "models")
POS_MODEL = "pos_ud_ewt"
LEMMA_MODEL = "lemma_ud_ewt"
# The project's two models ship as one xz archive in MODELS_DIR (a quarter of their size).
MODELS_ARCHIVE = "ud_ewt.tar.xz"
# Where a run root on a cluster file system gets its copy of them (models_for_root).
STAGED_MODELS = "_sparknlp_models"


def jar_loaded(spark: SparkSession) -> bool:
    """True if the JVM of `spark` can load Spark NLP's classes."""
    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    try:
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        jvm.java.lang.Class.forName(PROBE_CLASS, False, loader)
        return True
    except Exception:  # noqa: BLE001 - py4j wraps ClassNotFoundException
        return False


def missing_jar_message(jar: str | None, package: str | None) -> str:
    pkg = package or DEFAULT_PACKAGE
    if jar:
        where = (f"text.sparknlp_jar = {jar} resolves to jars that are not on this JVM's classpath: the "
                 f"session was started without them (./spark-submit.sh and reviewrec.session.build_session "
                 f"pass them as spark.jars; a SparkSession made elsewhere needs "
                 f".config('spark.jars', ','.join(sparknlp_engine.resolve_jars(...))))")
    else:
        where = (f"text.sparknlp_jar is null, so spark-submit had to fetch --packages {pkg}, and it is "
                 f"not on the classpath (a Maven repository must be reachable from the driver); or set "
                 f"text.sparknlp_jar=cache after {SETUP_HINT}")
    return (f"text.engine=sparknlp: the JVM cannot load {PROBE_CLASS} ({pkg} missing); {where}. "
            "Or use text.engine=builtin, which needs nothing outside the Python environment.")


def require_sparknlp(spark: SparkSession, jar: str | None = None, package: str | None = None) -> None:
    """Raise SparkNLPUnavailable, naming the artifact and how to provide it, unless Spark NLP is usable."""
    try:
        import sparknlp  # noqa: F401
    except ImportError as e:
        raise SparkNLPUnavailable("text.engine=sparknlp needs the Python package spark-nlp "
                                  "(pinned in lib/requirements.txt): pip install -r lib/requirements.txt") from e
    resolve_jars(jar, package)  # a configured jar that is missing on disk is named first
    if not jar_loaded(spark):
        raise SparkNLPUnavailable(missing_jar_message(jar, package))


def models_archive() -> str:
    """Where the project's models archive is: lib/sparknlp/models/ud_ewt.tar.xz in a checkout;
    for a driver that runs from the shipped zip, the copy spark-submit.sh ships with --files
    (SparkFiles on a client-mode driver, the working directory of a cluster-mode one)."""
    places = [os.path.join(MODELS_DIR, MODELS_ARCHIVE)]
    from pyspark import SparkContext

    if SparkContext._active_spark_context is not None:  # type: ignore[attr-defined]
        from pyspark import SparkFiles

        places.append(SparkFiles.get(MODELS_ARCHIVE))
    places.append(os.path.abspath(MODELS_ARCHIVE))
    found = next((p for p in places if os.path.isfile(p)), None)
    if found is None:
        raise SparkNLPUnavailable(f"the Spark NLP models archive {MODELS_ARCHIVE} is missing (looked in "
                                  f"{', '.join(places)}): rebuild it with `./spark-submit.sh train_text_models` "
                                  "(reads ../shared/data/ud_english_ewt); spark-submit.sh ships it with --files")
    return found


def project_models_dir(archive: str | None = None) -> str:
    """The project's models, unpacked from their archive (models_archive()) once into
    <cache>/sparknlp/models/<the archive's hash>/ (a path the driver and, on one machine, the
    executors read)."""
    archive = archive or models_archive()
    if not os.path.isfile(archive):
        raise SparkNLPUnavailable(f"the Spark NLP models archive {archive} is missing: rebuild it with "
                                  "`./spark-submit.sh train_text_models` (reads ../shared/data/ud_english_ewt)")
    with open(archive, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()[:16]
    parent = os.path.join(cache_dir(), "sparknlp", "models")
    out = os.path.join(parent, digest)
    if os.path.isdir(out):
        return out
    os.makedirs(parent, exist_ok=True)
    stage = tempfile.mkdtemp(prefix=f".{digest}-", dir=parent)
    try:
        with tarfile.open(archive, "r:xz") as tar:
            tar.extractall(stage, filter="data")
        try:
            os.rename(stage, out)
        except OSError:  # another process unpacked it first
            if not os.path.isdir(out):
                raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out


def models_for_root(spark: SparkSession, root: str) -> tuple[str | None, str | None]:
    """(POS, lemma) paths of the project's models that every executor reads (Spark NLP loads a
    model with a Spark job). (None, None), the driver's unpacked copy, when the run root is on
    the local disk (local mode; a cluster on one machine), which the executors then share; else
    a copy on the run root's file system (HDFS, S3, GCS), published once per archive as
    <root>/_sparknlp_models/<the archive's hash>/."""
    if io.is_local(root):
        return None, None
    src = project_models_dir()
    dest = io.dataset_path(root, f"{STAGED_MODELS}/{os.path.basename(src)}")
    publish_models(spark, src, dest)
    return f"{dest}/{POS_MODEL}", f"{dest}/{LEMMA_MODEL}"


def publish_models(spark: SparkSession, src: str, dest: str) -> None:
    """The two model directories of local `src` as `dest` (any Hadoop file system), unless
    they are there already."""
    if all(io.dataset_exists(spark, f"{dest}/{m}/metadata") for m in (POS_MODEL, LEMMA_MODEL)):
        return
    # Named by the archive's hash, written once, never replaced, loaded by Spark from its path.
    with io.publish_dir(spark, dest, versioned=False) as scratch:
        for m in (POS_MODEL, LEMMA_MODEL):
            shutil.copytree(os.path.join(src, m), os.path.join(scratch, m))


def pack_models(models_dir: str, archive: str) -> None:
    """`models_dir`'s POS and lemma models into `archive` (tar.xz), byte for byte the same for the
    same files: entries sorted, times, owners and modes fixed."""
    def normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    tmp = f"{archive}.tmp-{os.getpid()}"
    with lzma.open(tmp, "wb", preset=9 | lzma.PRESET_EXTREME) as xz, tarfile.open(fileobj=xz, mode="w") as tar:
        for name in (LEMMA_MODEL, POS_MODEL):
            top = os.path.join(models_dir, name)
            for d, dirs, files in os.walk(top):
                dirs.sort()
                rel = os.path.relpath(d, models_dir)
                tar.add(d, rel, recursive=False, filter=normalised)
                for f in sorted(files):
                    tar.add(os.path.join(d, f), os.path.join(rel, f), filter=normalised)
    os.replace(tmp, archive)


def model_path(configured: str | None, name: str) -> str:
    """A saved model's absolute path (executors read it: a path every node sees), or
    `pretrained:...` as given. None = the project's trained model (project_models_dir())."""
    if configured and configured.startswith(PRETRAINED):
        return configured
    path = os.path.abspath(configured) if configured else os.path.join(project_models_dir(), name)
    if "://" not in (configured or "") and not os.path.isdir(path):
        raise SparkNLPUnavailable(f"Spark NLP model {path} is missing: rebuild it with "
                                  f"`./spark-submit.sh train_text_models` (reads ../shared/data/ud_english_ewt)")
    return path


def _load(cls: Any, configured: str | None, name: str) -> Any:
    path = model_path(configured, name)
    if path.startswith(PRETRAINED):
        spec = path[len(PRETRAINED):].split(":")
        return cls.pretrained(spec[0], spec[1] if len(spec) > 1 else "en")
    return cls.load(path)


def annotators(pos_model: str | None = None, lemma_model: str | None = None) -> list[Any]:
    """The engine's Spark NLP stages, in order: DocumentAssembler (`__text` -> `__doc`),
    RegexTokenizer (on spaces, case kept: `__tok`), PerceptronModel (`__pos`), Normalizer
    (lowercase: `__norm`), LemmatizerModel (`__lemma`)."""
    from sparknlp.annotator import LemmatizerModel, Normalizer, PerceptronModel, RegexTokenizer
    from sparknlp.base import DocumentAssembler

    doc = DocumentAssembler().setInputCol("__text").setOutputCol("__doc").setCleanupMode("disabled")
    tok = (RegexTokenizer().setInputCols(["__doc"]).setOutputCol("__tok").setPattern(" ")
           .setToLowercase(False))
    pos = _load(PerceptronModel, pos_model, POS_MODEL).setInputCols(["__doc", "__tok"]).setOutputCol("__pos")
    norm = (Normalizer().setInputCols(["__tok"]).setOutputCol("__norm").setLowercase(True)
            .setCleanupPatterns(["[\\p{Cc}\\p{Cf}]"]))
    lem = _load(LemmatizerModel, lemma_model, LEMMA_MODEL).setInputCols(["__norm"]).setOutputCol("__lemma")
    return [doc, tok, pos, norm, lem]


def joined_text(df: DataFrame, col_tokens: str = "tokens") -> DataFrame:
    """`df` with `__text`: the tokens joined by spaces (the annotators' input; "" for null)."""
    return df.withColumn("__text", F.coalesce(F.array_join(F.col(col_tokens), " "), F.lit("")))


def annotate(df: DataFrame, pos_model: str | None = None, lemma_model: str | None = None,
             col_tokens: str = "tokens") -> DataFrame:
    """`col_tokens` (array<string>) -> `__ann`: array<struct<norm, lemma, pos>>, one per token,
    in order (every token kept); the other columns pass through, `col_tokens` is dropped.

    The tokens are joined with spaces and split back on spaces by Spark NLP's RegexTokenizer,
    one to one (the chain's tokens contain no spaces). Normalizer lowercases and removes only
    control and format characters, which no token holds, so it drops no token: the tag, normalised
    token and lemma annotations stay aligned, which is checked (a row where they are not fails)."""
    from pyspark.ml import Pipeline

    from reviewrec.preprocess.upos import PTB_TO_UPOS

    text = joined_text(df, col_tokens)
    # Only Normalizer is an estimator, and its fit reads no data.
    out = Pipeline(stages=annotators(pos_model, lemma_model)).fit(text).transform(text)
    upos_map = F.create_map(*[F.lit(x) for kv in PTB_TO_UPOS.items() for x in kv])
    n = F.size(F.col("__tok"))
    aligned = (F.size(F.col("__pos")) == n) & (F.size(F.col("__norm")) == n) & (F.size(F.col("__lemma")) == n)

    def entry(norm: Any, i: Any) -> Any:
        t = F.col("__pos")[i]["result"]
        return F.struct(norm["result"].alias("norm"), F.lower(F.col("__lemma")[i]["result"]).alias("lemma"),
                        F.coalesce(upos_map[t], t, F.lit("X")).alias("pos"))

    # One token, one tag, one normalised token, one lemma, in order (indexed: linear per review).
    ann = F.when(aligned, F.transform(F.col("__norm"), entry)).otherwise(
        F.raise_error(F.concat(F.lit("Spark NLP annotations out of step with the tokens of: "), F.col("__text"))))
    return out.withColumn("__ann", ann).drop("__text", "__doc", "__tok", "__pos", "__norm", "__lemma", col_tokens)


def pos_lemma_sparknlp(df: DataFrame, min_length: int, max_repeat: int, stop_words: Sequence[str],
                       pos_model: str | None = None, lemma_model: str | None = None,
                       col_tokens: str = "tokens") -> DataFrame:
    """`col_tokens` (array<string>, case kept, stop words kept) -> `lemmas` (lowercase) and `pos`
    (UPOS), aligned, with stop words (of the lowercased token), lemmas shorter than
    `min_length` and lemmas with a character repeated more than `max_repeat` times in a row
    dropped after tagging and lemmatization. Other columns pass through; `col_tokens` is dropped."""
    from reviewrec.preprocess.transforms import repeat_regex

    require_sparknlp(df.sparkSession)
    stop = sorted({w.lower() for w in stop_words})
    rx = repeat_regex(max_repeat)

    def keep(a: Any) -> Any:
        ok = (F.length(a["lemma"]) >= F.lit(min_length)) & ~a["lemma"].rlike(rx)
        # More than 10 literals: Spark's optimizer turns isin into a hash-set lookup (InSet).
        return ok & ~a["norm"].isin(*stop) if stop else ok

    kept = F.filter(F.col("__ann"), keep)
    return (annotate(df, pos_model, lemma_model, col_tokens)
            .withColumn("__ann", kept)
            .withColumn(S.LEMMAS, F.col("__ann.lemma"))
            .withColumn(S.POS, F.col("__ann.pos"))
            .drop("__ann"))
