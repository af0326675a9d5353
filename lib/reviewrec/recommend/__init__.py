"""Recommendations (the recommend job): popularity, blockwise user-CF, the filled user-item
matrix, top-N, and its time-split evaluation against ALS and the global mean.

    job.py         the recommend job
    params.py      its settings (RecommendParams, from the config's `recsys:` section)
    ids.py         the user/item id space: the features job's StringIndexers
    similarity.py  blockwise sparse top-k cosine similarity (never N x N)
    cf.py          user-CF / item-CF scores, rating predictions, blending, top-N with popular padding
    popularity.py  Bayesian-average popularity, overall and per category
    als.py         Spark ML ALS comparator (implicit ranking, explicit rating prediction)
    metrics.py     HR / NDCG / Recall / coverage @k, RMSE / MAE
    scoring.py     the rating-scorer interface (trained model when present, CF otherwise)
"""
