"""Text preprocessing: <root>/reviews -> <root>/tokens (review_id, lemmas, pos).

    ./spark-submit.sh preprocess [--set text.engine=sparknlp]
"""
import sys

from reviewrec.cli import main
from reviewrec.preprocess.job import run

if __name__ == "__main__":
    sys.exit(main("preprocess", run))
