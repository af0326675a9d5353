"""Command-line entry shared by every job in jobs/: parse flags, load config, build the session.

    python jobs/<job>.py [--conf conf/local.yaml ...] [--set key=value ...]

The config is loaded and validated before Spark starts, so a typo costs seconds, not a
cluster start-up.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from reviewrec.config import Config, ConfigError, load_config
from reviewrec.objectstore import ObjectStoreUnavailable, preflight, redact_text, secret_values
from reviewrec.runtime import peak_rss_mb, setup_logging

if TYPE_CHECKING:  # the launcher imports this module on machines without pyspark
    from pyspark.sql import SparkSession

log = logging.getLogger("reviewrec")

JobRun = Callable[["SparkSession", Config], Any]


def parse_args(job: str, argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog=job, description=f"reviewrec {job} job")
    ap.add_argument("--conf", action="append", default=[], metavar="FILE",
                    help="environment config overlaid on conf/base.yaml (repeatable; later wins)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                    help="override one config key, e.g. --set synthetic.rows=100000 (repeatable)")
    return ap.parse_args(argv)


def main(job: str, run: JobRun, argv: Sequence[str] | None = None,
         needs_spark: bool | Callable[[Config], bool] = True) -> int:
    setup_logging()
    args = parse_args(job, argv)
    try:
        cfg = load_config(args.conf, args.overrides)
    except ConfigError as e:
        log.error("configuration error: %s", e)
        return 2
    given = " + ".join(["base.yaml", *args.conf]) + "".join(f" --set {o}" for o in args.overrides)
    log.info("reviewrec %s: config %s", job, redact_text(given, secret_values(cfg.flat())))
    cfg.log_effective()
    t0 = time.perf_counter()
    spark = None
    if needs_spark if isinstance(needs_spark, bool) else needs_spark(cfg):
        from reviewrec.session import build_session
        spark = build_session(cfg, job)
    try:
        if spark is not None:
            # s3a:// run root or input: bucket, keys and endpoint checked in seconds, before any stage.
            preflight(spark, cfg)
        run(spark, cfg)  # type: ignore[arg-type]
    except ObjectStoreUnavailable as e:
        log.error("%s", e)
        return 1
    finally:
        if spark is not None:
            spark.stop()
    log.info("reviewrec %s finished in %.1fs (driver peak RSS %.0f MiB)", job, time.perf_counter() - t0, peak_rss_mb())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(2)
