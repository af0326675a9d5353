"""Ingest: raw pds TSV / pds Parquet / McAuley JSON -> canonical `reviews` + `quarantine`."""
