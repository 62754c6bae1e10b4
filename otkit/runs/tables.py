"""Plain-text tables for notebooks, benchmarks and run summaries (no pandas needed).

Columns are padded by *display* width (:func:`display_width`), not by ``len``: a combining
mark such as the tilde of ``ε̃`` (two code points, one column) or a wide CJK character
would otherwise shift every column after it.
"""

from __future__ import annotations

import html
import json
import math
import unicodedata
from collections.abc import Mapping, Sequence

__all__ = ["dict_table", "display_width", "format_value", "metrics_html", "metrics_text", "text_table"]


def display_width(text: str) -> int:
    """The number of terminal columns ``text`` takes in a monospaced font.

    Combining marks (Unicode categories Mn, Me), format characters (Cf: zero-width joiners
    and spaces) and other zero-width code points take no column; East Asian wide and
    full-width characters take two; everything else takes one.
    """
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _ljust(text: str, width: int) -> str:
    return text + " " * max(0, width - display_width(text))


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns under a header and a rule of dashes (padded by display width)."""
    widths = [max(display_width(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(_ljust(str(h), w) for h, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(_ljust(str(c), w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def dict_table(
    rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None, digits: int = 4
) -> str:
    """A table of dict rows (``columns`` default: the first row's keys); floats to ``digits``."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())

    def cell(value: object) -> str:
        return f"{value:.{digits}g}" if isinstance(value, float) else str(value)

    return text_table(columns, [[cell(row.get(c, "")) for c in columns] for row in rows])


# ------------------------------------------------------------------ a metrics dict, shown


def format_value(value: object, digits: int = 4) -> str:
    """One metric value as a short string: floats to ``digits`` significant digits (``0``, not
    ``-0``; ``inf``, ``nan``), bools and None as words, lists and dicts inline."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        text = f"{value:.{digits}g}"
        return "0" if float(text) == 0 else text
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v, digits) if not isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                               for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {format_value(v, digits)}" for k, v in value.items()) + "}"
    return str(value)


def metrics_text(metrics: Mapping[str, object], digits: int = 4) -> str:
    """A two-column plain-text table ``metric | value`` of a metrics dict."""
    if not metrics:
        return "(no metrics)"
    return text_table(["metric", "value"], [[str(k), format_value(v, digits)] for k, v in metrics.items()])


_METRICS_STYLE = (
    "border-collapse:collapse;font-size:0.9em;margin:0.3em 0;"
)
_CELL_STYLE = "padding:1px 10px 1px 4px;border-bottom:1px solid rgba(128,128,128,0.25);text-align:left;"


def metrics_html(metrics: Mapping[str, object], digits: int = 4, caption: str | None = None) -> str:
    """A compact two-column HTML table ``metric | value`` (class ``otkit-metrics``).

    Numbers are right-aligned in tabular figures; the full-precision value of a float is its
    cell's ``title`` (hover).
    """
    rows = []
    for key, value in metrics.items():
        text = html.escape(format_value(value, digits))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            cell = (f'<td style="{_CELL_STYLE}text-align:right;font-variant-numeric:tabular-nums" '
                    f'title="{html.escape(repr(value))}">{text}</td>')
        else:
            cell = f'<td style="{_CELL_STYLE}">{text}</td>'
        rows.append(f'<tr><td style="{_CELL_STYLE}"><code>{html.escape(str(key))}</code></td>{cell}</tr>')
    cap = (f'<caption style="caption-side:top;text-align:left;font-weight:600;padding:2px 4px">'
           f"{html.escape(caption)}</caption>") if caption else ""
    head = (f'<thead><tr><th style="{_CELL_STYLE}">metric</th><th style="{_CELL_STYLE}">value</th></tr></thead>')
    body = "".join(rows) or f'<tr><td colspan="2" style="{_CELL_STYLE}">(no metrics)</td></tr>'
    return f'<table class="otkit-metrics" style="{_METRICS_STYLE}">{cap}{head}<tbody>{body}</tbody></table>'
