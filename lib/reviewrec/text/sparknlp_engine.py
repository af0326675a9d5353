"""The `sparknlp` text engine: Spark NLP annotators in the JVM.

    DocumentAssembler -> Tokenizer -> Normalizer -> StopWordsCleaner -> PerceptronModel (POS)
      -> LemmatizerModel -> Finisher (lemmas, pos as array<string>)

Spark NLP needs its JVM jar on the driver and executor classpath: `--packages
com.johnsnowlabs.nlp:spark-nlp_2.12:<version>` (spark-submit.sh adds text.sparknlp_package
when text.engine=sparknlp and text.sparknlp_jar is null) or a local assembly jar
(text.sparknlp_jar, passed with `-- --jars <jar>`). Without it, `require_sparknlp` stops the
job with an error that names the jar to provide; nothing is downloaded behind the user's back.
The models come from local paths (text.sparknlp_pos_model / text.sparknlp_lemma_model, saved
with `.save()`) or, when those are null, from the pretrained downloader (needs internet).

Spark NLP emits Penn Treebank tags (pos_anc); they are mapped to UPOS with the builtin engine's
table so both engines write the same tag set.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from reviewrec import schema as S

PROBE_CLASS = "com.johnsnowlabs.nlp.DocumentAssembler"
DEFAULT_PACKAGE = "com.johnsnowlabs.nlp:spark-nlp_2.12:5.5.3"


class SparkNLPUnavailable(RuntimeError):
    """The Spark NLP jar (or Python package) is not available to this Spark session."""


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
    where = (f"text.sparknlp_jar = {jar} is set but its classes are not on the classpath"
             + ("" if jar and os.path.exists(jar) else " (and that file does not exist)")
             + f": launch with `./spark-submit.sh preprocess --set text.engine=sparknlp "
               f"--set text.sparknlp_jar={jar} -- --jars {jar}`"
             if jar else
             f"no Spark NLP jar on the classpath: provide the Maven package {pkg} "
             f"(./spark-submit.sh adds `--packages {pkg}` when text.engine=sparknlp; this needs a "
             f"reachable Maven repository) or download spark-nlp-assembly for that version, set "
             f"text.sparknlp_jar=/path/to/spark-nlp-assembly.jar and pass `-- --jars` with it")
    return (f"text.engine=sparknlp: the JVM cannot load {PROBE_CLASS}; {where}. "
            "Or use text.engine=builtin, which needs nothing outside the Python environment.")


def require_sparknlp(spark: SparkSession, jar: str | None = None, package: str | None = None) -> None:
    """Raise SparkNLPUnavailable, naming the jar / Maven coordinates, unless Spark NLP is usable."""
    try:
        import sparknlp  # noqa: F401
    except ImportError as e:
        raise SparkNLPUnavailable("text.engine=sparknlp needs the Python package spark-nlp "
                                  "(pinned in lib/requirements.txt): pip install -r lib/requirements.txt") from e
    if not jar_loaded(spark):
        raise SparkNLPUnavailable(missing_jar_message(jar, package))


def pos_lemma_sparknlp(df: DataFrame, stop_words: Sequence[str], pos_model: str | None = None,
                       lemma_model: str | None = None, col_text_tokens: str = "tokens") -> DataFrame:
    """tokens (array<string>, from transforms.tokenize) -> lemmas, pos (UPOS), stop words removed.

    The tokens are joined with spaces and re-tokenized by Spark NLP's Tokenizer, which then
    splits them back one to one (they contain no spaces)."""
    spark = df.sparkSession
    require_sparknlp(spark)
    from pyspark.ml import Pipeline
    from sparknlp.annotator import (LemmatizerModel, Normalizer, PerceptronModel,
                                    StopWordsCleaner, Tokenizer)
    from sparknlp.base import DocumentAssembler, Finisher

    from reviewrec.text.upos import PTB_TO_UPOS

    doc = DocumentAssembler().setInputCol("__text").setOutputCol("__doc")
    tok = Tokenizer().setInputCols(["__doc"]).setOutputCol("__tok")
    norm = (Normalizer().setInputCols(["__tok"]).setOutputCol("__norm")
            .setLowercase(True).setCleanupPatterns(["[^\\p{L}\\p{N}']"]))
    stop = (StopWordsCleaner().setInputCols(["__norm"]).setOutputCol("__clean")
            .setStopWords(list(stop_words)).setCaseSensitive(False))
    pos = (PerceptronModel.load(pos_model) if pos_model else PerceptronModel.pretrained("pos_anc", "en"))
    pos = pos.setInputCols(["__doc", "__clean"]).setOutputCol("__pos")
    lem = (LemmatizerModel.load(lemma_model) if lemma_model else LemmatizerModel.pretrained("lemma_antbnc", "en"))
    lem = lem.setInputCols(["__clean"]).setOutputCol("__lemma")
    fin = (Finisher().setInputCols(["__lemma", "__pos"]).setOutputCols([S.LEMMAS, "__ptb"])
           .setOutputAsArray(True).setCleanAnnotations(True))
    pipeline = Pipeline(stages=[doc, tok, norm, stop, pos, lem, fin])
    text = df.withColumn("__text", F.array_join(F.col(col_text_tokens), " "))
    out = pipeline.fit(text).transform(text)
    mapping = F.create_map(*[F.lit(x) for kv in PTB_TO_UPOS.items() for x in kv])
    upos = F.transform(F.col("__ptb"), lambda t: F.coalesce(mapping[t], F.lit("X")))
    return (out
            .withColumn(S.LEMMAS, F.transform(F.col(S.LEMMAS), lambda t: F.lower(t)))
            .withColumn(S.POS, upos)
            .drop("__text", "__ptb", col_text_tokens))
