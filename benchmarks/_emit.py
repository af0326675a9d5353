"""Shared tail of the benchmark scripts: print the result JSON and optionally save it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def emit(out: dict[str, Any], path: str | None) -> None:
    """Print `out` as indented JSON (non-JSON values as str) and write it to `path` if given."""
    text = json.dumps(out, indent=2, default=str)
    print(text)
    if path:
        Path(path).write_text(text + "\n")
