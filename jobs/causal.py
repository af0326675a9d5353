"""Causal study on the ingested reviews: report under <root>/report/causal/<study>.

    ./spark-submit.sh causal --set causal.study=studies/verified_purchase.yaml
"""
import sys

from reviewrec.causal.job import run
from reviewrec.cli import main

if __name__ == "__main__":
    sys.exit(main("causal", run))
