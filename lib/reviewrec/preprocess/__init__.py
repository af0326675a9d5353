"""Text preprocessing (the `preprocess` job): reviews -> lemmas + UPOS tags per review."""
from reviewrec.preprocess.job import TextParams, preprocess

__all__ = ["TextParams", "preprocess"]
