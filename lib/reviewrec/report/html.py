"""A tiny, dependency-free HTML report writer (tables + PNG figures) and matplotlib set-up."""
from __future__ import annotations

import html
import os
from collections.abc import Iterable, Sequence
from typing import Any


def plt():  # noqa: ANN201 - returns the pyplot module
    """pyplot with a non-interactive backend (batch jobs have no display)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as pyplot

    return pyplot


def savefig(fig: Any, out_dir: str, name: str) -> str:
    path = os.path.join(out_dir, name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt().close(fig)
    return name


class Markup(str):
    """HTML that a table cell shows as is (a link, say); every other cell value is escaped."""


def link(href: str, text: str) -> Markup:
    return Markup(f"<a href='{html.escape(href)}'>{html.escape(text)}</a>")


def _cell(v: Any) -> str:
    if isinstance(v, Markup):
        return str(v)
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return html.escape(str(v))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, sections: Sequence[tuple[str, str]], subtitle: str = "") -> str:
    """sections: (heading, inner html) pairs; figures are given with `figure(name)`."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}img{max-width:100%}"
        ".sub{color:#666}.missing{color:#a33}table.glance td,table.glance th{text-align:left}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if subtitle:
        parts.append(f"<p class='sub'>{html.escape(subtitle)}</p>")
    for heading, inner in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{inner}")
    parts.append("</body></html>")
    return "\n".join(parts)


def figure(name: str, alt: str = "") -> str:
    return f"<img src='{html.escape(name)}' alt='{html.escape(alt or name)}'>"
