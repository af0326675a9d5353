"""The LSTM star-rating model: Keras network, Horovod-on-Spark training, scoring, evaluation.

    spec.py         TrainSpec / LaunchParams / EvaluateParams, built from conf `model:` only
    net.py          the Keras network (embedding -> (Bi)LSTM -> pooling ++ user/item embeddings)
    data.py         rank-local reading of the features' Parquet shards with pyarrow
    rank.py         the function every Horovod rank runs (stock Horovod Keras callbacks)
    exchange.py     hvd.DistributedOptimizer, optionally with grouped gradients
    checkpoints.py  per-epoch checkpoints and resume
    ensemble.py     k seeds saved as one model averaging their star distributions
    train.py        the train job: horovod.spark.run, metadata, <root>/model
    score.py        score(spark, df, model_dir) in executors; score_candidates for the recommender
    metrics.py      metrics from confusion counts, bootstrap intervals
    baselines.py    majority class and TF-IDF + LogisticRegression
    evaluation_report.py  metrics.json, index.html and the figures of the evaluate job
    evaluate.py     the evaluate job
"""
