"""Helpers for spark-submit.sh that need the effective config (run as `python -m reviewrec.submit`).

    python -m reviewrec.submit packages [--conf F ...] [--set k=v ...]
        prints the --packages coordinates the config needs (Spark NLP's when text.engine is
        sparknlp and no local jar is configured), or nothing.
"""
from __future__ import annotations

import sys

from reviewrec.config import ConfigError, load_config
from reviewrec.cli import parse_args


def packages_for(cfg: object) -> str:
    text = cfg.get("text") if hasattr(cfg, "get") else None  # type: ignore[union-attr]
    if not text or text.get("engine") != "sparknlp":
        return ""
    if text.get("sparknlp_jar"):
        return ""
    return str(text.get("sparknlp_package", ""))


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "packages":
        print(__doc__, file=sys.stderr)
        return 2
    args = parse_args("submit", argv[1:])
    try:
        cfg = load_config(args.conf, args.overrides)
    except ConfigError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    print(packages_for(cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
