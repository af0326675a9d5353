"""Evaluate the trained model and the baselines on the test split; writes <root>/report/model.

    ./spark-submit.sh evaluate
"""
import sys

from reviewrec.cli import main
from reviewrec.model.evaluate import run

if __name__ == "__main__":
    sys.exit(main("evaluate", run))
