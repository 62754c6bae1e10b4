"""Plain-text tables for notebooks, benchmarks and run summaries (no pandas needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["text_table", "dict_table"]


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns under a header and a rule of dashes."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
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
