"""The whole pipeline, stage by stage (generate when the input is synthetic, ingest, preprocess,
eda, features, train, evaluate, recommend), then <root>/report/index.html linking every report.

    ./spark-submit.sh pipeline [--conf conf/emr.yaml] [--set run.skip_existing=true]
"""
import sys

from reviewrec.cli import main
from reviewrec.pipeline import run

if __name__ == "__main__":
    sys.exit(main("pipeline", run))
