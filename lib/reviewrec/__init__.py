"""reviewrec: Spark batch pipeline for Amazon Customer Reviews.

Subpackages: ingest (raw files -> canonical reviews + quarantine), report (EDA and shared
plotting/HTML), plus text, features, model, recsys and causal as they land.
"""
__version__ = "0.1.0"
