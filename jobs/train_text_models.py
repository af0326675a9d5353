"""Train both text engines' models from UD English-EWT train (no model hub needed).

    ./spark-submit.sh train_text_models [--set text.sparknlp_train_conllu=PATH] [--set text.sparknlp_pos_model=DIR]

The builtin engine's averaged-perceptron POS weights (lib/reviewrec/preprocess/perceptron_train.py,
in the driver's Python, written to lib/sparknlp/models/builtin_pos_ud_ewt.json.gz when both
text.sparknlp_*_model keys are null), then Spark NLP's PerceptronApproach (UPOS) and a Lemmatizer
dictionary (EWT train + lemminflect's table), saved as Spark ML models at text.sparknlp_pos_model /
text.sparknlp_lemma_model (null: packed into lib/sparknlp/models/ud_ewt.tar.xz, the models the
repository ships) with MODELS.json beside them. Each part is skipped when the hash of its inputs
is unchanged (lib/reviewrec/preprocess/sparknlp_models.py).
"""
import sys

from reviewrec.cli import main
from reviewrec.preprocess.sparknlp_models import run

if __name__ == "__main__":
    sys.exit(main("train_text_models", run))
