"""Ingest raw reviews (pds TSV / pds Parquet / McAuley JSON) into canonical `reviews`.

    ./spark-submit.sh ingest --set input.format=tsv --set input.path=data/*.tsv.gz
"""
import sys

from reviewrec.cli import main
from reviewrec.ingest.job import run

if __name__ == "__main__":
    sys.exit(main("ingest", run))
