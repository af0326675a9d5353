"""Train the star-rating LSTM data-parallel with Horovod on Spark; writes <root>/model.

    ./spark-submit.sh train [--set model.num_proc=4] [--set model.epochs=10]

A rerun resumes after the last complete per-epoch checkpoint (model.checkpoint_dir).
"""
import sys

from reviewrec.cli import main
from reviewrec.model.train import run

if __name__ == "__main__":
    sys.exit(main("train", run))
