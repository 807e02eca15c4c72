"""HTML building blocks of the daily report.

Every value that comes from data (post texts, entity texts, quarantine reasons, model
names) passes through :func:`escape`, because posts are user content and may contain
markup such as ``<script>``. Functions that take ``body`` expect HTML built with these
helpers.
"""

from __future__ import annotations

import html
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.number { text-align: right; }
.note { color: #555; font-style: italic; }
.warning { background: #fdecea; border-left: 4px solid #c0392b; padding: 0.5em 1em; }
img { max-width: 100%; }
"""


@dataclass
class Section:
    """One titled part of the report; ``body`` is HTML."""

    anchor: str
    title: str
    body: str


def escape(value: Any) -> str:
    """Return ``value`` as text with HTML special characters escaped, quotes included."""
    return html.escape(str(value), quote=True)


def note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def paragraph(text: str) -> str:
    return f"<p>{escape(text)}</p>"


def warning_box(lines: Sequence[str]) -> str:
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return f'<div class="warning"><strong>Warning</strong><ul>{items}</ul></div>'


def image(filename: str, alt: str) -> str:
    """Return an ``img`` element for a PNG stored next to the report (a relative link)."""
    return f'<p><img src="{escape(filename)}" alt="{escape(alt)}"></p>'


def format_cell(value: Any) -> str:
    """Format one table value: empty for missing, 3 decimals for floats."""
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def table(frame: pd.DataFrame) -> str:
    """Return ``frame`` as an HTML table; numbers are right-aligned."""
    header = "".join(f"<th>{escape(column)}</th>" for column in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = []
        for value in record:
            numeric = isinstance(value, numbers.Real) and not isinstance(value, bool)
            css = ' class="number"' if numeric else ""
            cells.append(f"<td{css}>{escape(format_cell(value))}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """Return the whole HTML document: title, table of contents and sections."""
    contents = "".join(f'<li><a href="#{escape(s.anchor)}">{escape(s.title)}</a></li>'
                       for s in sections)
    parts = [f'<section id="{escape(s.anchor)}"><h2>{escape(s.title)}</h2>{s.body}</section>'
             for s in sections]
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head>\n<body><h1>{escape(title)}</h1>"
        f"{paragraph(subtitle)}<ul>{contents}</ul>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
