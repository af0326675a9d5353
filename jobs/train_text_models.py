"""Train the sparknlp text engine's models from UD English-EWT train (no model hub needed).

    ./spark-submit.sh train_text_models [--set text.sparknlp_train_conllu=PATH] [--set text.sparknlp_pos_model=DIR]

Spark NLP's PerceptronApproach (UPOS) and a Lemmatizer dictionary (EWT train + lemminflect's
table), saved as Spark ML models at text.sparknlp_pos_model / text.sparknlp_lemma_model (null:
packed into lib/sparknlp/models/ud_ewt.tar.xz, the models the repository ships) with
MODELS.json beside them; skipped when the hash of the inputs is unchanged (lib/reviewrec/preprocess/sparknlp_models.py).
"""
import sys

from reviewrec.cli import main
from reviewrec.preprocess.sparknlp_models import run

if __name__ == "__main__":
    sys.exit(main("train_text_models", run))
