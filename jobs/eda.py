"""EDA report of the ingested reviews: JSON + PNG plots + index.html under <root>/report/eda.

    ./spark-submit.sh eda
"""
import sys

from reviewrec.cli import main
from reviewrec.eda import run

if __name__ == "__main__":
    sys.exit(main("eda", run))
