"""Generate the embedded default input: deterministic synthetic amazon-reviews-pds TSV.gz.

    ./spark-submit.sh generate [--set synthetic.rows=1000000]
"""
import sys

from reviewrec import generate
from reviewrec.cli import main
from reviewrec.io import dataset_path, is_local

if __name__ == "__main__":
    # A local run root needs no Spark; hdfs:// or s3a:// is written through Hadoop's file system.
    sys.exit(main("generate", generate.run,
                  needs_spark=lambda cfg: not is_local(dataset_path(cfg["run"]["root"], "raw"))))
