"""Markdown tables for the reports."""

from __future__ import annotations


def markdown_table(rows: list[tuple], header: tuple) -> str:
    """A markdown table with this header row and one row per tuple (a `|` inside a cell is escaped)."""
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header)] + [line(r) for r in rows])
