"""Generate the embedded default input: deterministic synthetic amazon-reviews-pds TSV.gz.

    ./spark-submit.sh generate [--set synthetic.rows=1000000]
"""
import sys

from reviewrec import generate
from reviewrec.cli import main

if __name__ == "__main__":
    sys.exit(main("generate", generate.run, needs_spark=False))
