"""Recommendations: popularity, blockwise user-CF neighbours, filled user-item matrix, top-N,
time-split rating error, report under <root>/report/recs.

    ./spark-submit.sh recommend [--set recsys.neighbors.k=100]
"""
import sys

from reviewrec.cli import main
from reviewrec.recommend.job import run

if __name__ == "__main__":
    sys.exit(main("recommend", run))
