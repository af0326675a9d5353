"""Causal toolkit on Spark: DID, RDD, IV, PSM, a constructed quasi-experimental variable,
multi-metric uplift with Qini/AUUC, four-quadrant heterogeneity and subgroup search.

Every estimator aggregates sufficient statistics in Spark and solves the small algebra on the
driver with numpy; no raw rows are collected.
"""
