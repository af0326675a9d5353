"""Features: <root>/reviews + <root>/tokens -> <root>/features (TF-IDF, id indexes, token-id
sequences, labels, train/val/test split) + <root>/features_meta/.

    ./spark-submit.sh features [--set features.split=random]
"""
import sys

from reviewrec.cli import main
from reviewrec.features.job import run

if __name__ == "__main__":
    sys.exit(main("features", run))
