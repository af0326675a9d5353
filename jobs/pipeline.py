"""The whole pipeline, stage by stage (generate when synthetic, ingest, eda, ...).

    ./spark-submit.sh pipeline [--conf conf/emr.yaml] [--set run.skip_existing=true]
"""
import sys

from reviewrec.cli import main
from reviewrec.pipeline import run

if __name__ == "__main__":
    sys.exit(main("pipeline", run))
