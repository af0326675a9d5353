"""Recommendations: popularity, blockwise user/item CF, ALS comparator, filled matrix, evaluation.

    blocks.py      blockwise sparse cosine similarity with top-k per row (never N x N)
    cf.py          id indexing, user-CF / item-CF scores, blending, top-N with popular padding
    popularity.py  Bayesian-average popularity, overall and per category
    als.py         Spark ML ALS comparator (implicit ranking, explicit rating prediction)
    metrics.py     HR / NDCG / Recall / coverage @k, RMSE / MAE
    scoring.py     the rating-scorer interface (trained model when present, CF otherwise)
    sequences.py   leave-last-out evaluation on interaction sequences (Amazon Beauty 5-core)
    job.py         the recommend job
"""
