"""Logging set-up and stage timers shared by every job."""
from __future__ import annotations

import logging
import os
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

log = logging.getLogger("reviewrec")


class Py4JResendFilter(logging.Filter):
    """One line instead of a traceback when py4j resends a command.

    py4j logs "Exception while sending command." with the traceback, at INFO on the root logger,
    each time it finds a pooled connection closed by the JVM (e.g. the one Horovod's Spark thread
    used in the train stage) and sends the command again on a new connection, which succeeds.
    That is not a failure (a command that fails for good is logged at ERROR and kept as it is)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (record.levelno == logging.INFO and record.module == "java_gateway"
                and record.msg == "Exception while sending command."):
            cause = record.exc_info[1] if record.exc_info else None
            record.msg = "py4j: a connection closed by the JVM was replaced and the command resent (%s)"
            record.args = (type(getattr(cause, "cause", None) or cause).__name__,)
            record.exc_info, record.exc_text = None, None
        return True


def setup_logging(level: str | None = None) -> None:
    level = level or os.environ.get("REVIEWREC_LOG_LEVEL", "INFO")
    root = logging.getLogger()
    if any(getattr(h, "_reviewrec", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    handler._reviewrec = True  # type: ignore[attr-defined]
    handler.addFilter(Py4JResendFilter())
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("py4j").setLevel(logging.WARNING)


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class StageTimer:
    """Collects wall time per stage; `timings` goes into every job's summary JSON."""

    job: str
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        log.info("[%s] %s ...", self.job, name)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            self.timings[name] = round(self.timings.get(name, 0.0) + dt, 3)
            log.info("[%s] %s done in %.1fs (driver peak RSS %.0f MiB)", self.job, name, dt, peak_rss_mb())

    def total(self) -> float:
        return round(sum(self.timings.values()), 3)
