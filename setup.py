"""reviewrec: Spark batch pipeline for Amazon Customer Reviews.

Dependencies are pinned once, in lib/requirements.txt. Lines tagged ``# extra: NAME`` go into
that extra instead of install_requires:

    pip install .[cpu,test]      # laptop / CI (lib/bootstrap.sh does this plus horovod)
    pip install .[gpu]           # GPU cluster image: tensorflow[and-cuda] instead of tensorflow-cpu
"""
from __future__ import annotations

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def read_pins(path: Path) -> tuple[list[str], dict[str, list[str]]]:
    base: list[str] = []
    extras: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line, _, comment = raw.partition("#")
        line = line.strip()
        if not line:
            continue
        m = re.search(r"extra:\s*(\w+)", comment)
        (extras.setdefault(m.group(1), []) if m else base).append(line)
    tf_version = next(p.split("==")[1] for p in extras["cpu"] if p.startswith("tensorflow-cpu=="))
    extras["gpu"] = [f"tensorflow[and-cuda]=={tf_version}"]
    return base, extras


install_requires, extras_require = read_pins(HERE / "lib" / "requirements.txt")

setup(
    name="reviewrec",
    version="0.1.0",
    description="Spark batch pipeline: review text, star-rating LSTM, recommendations, causal toolkit",
    package_dir={"": "lib"},
    packages=find_packages("lib"),
    python_requires="==3.11.*",
    install_requires=install_requires,
    extras_require=extras_require,
)
