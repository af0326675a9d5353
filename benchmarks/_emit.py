"""Shared pieces of the benchmark scripts: CPU seconds of a process tree, and the result JSON
printed and optionally saved."""
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


def tree_cpu_seconds(root: Any) -> float:
    """CPU seconds used so far by the psutil.Process `root` and its descendants (for the driver:
    the JVM, the Python daemon and, through the daemon's reaped children, its workers)."""
    import psutil

    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            pass
    return total
