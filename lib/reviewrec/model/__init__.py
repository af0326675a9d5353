"""The LSTM star-rating model: Keras network, Horovod-on-Spark training, scoring, evaluation.

    net.py       the Keras network (embedding -> (Bi)LSTM -> dropout ++ user/item embeddings)
    contract.py  the features dataset this package reads (columns, meta, per-split shards)
    data.py      rank-local reading of Parquet shards with pyarrow (no driver collect)
    train.py     the train job: horovod.spark.run, checkpoints, resume, early stopping
    score.py     score(spark, df, model_dir): batch scoring in executors (mapInPandas)
    evaluate.py  the evaluate job: metrics, baselines on the same split, JSON/HTML/PNG report
    standin.py   a minimal features builder used by tests and when the features job is absent
"""
