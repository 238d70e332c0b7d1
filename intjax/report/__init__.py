"""Reports as renderings of saved analyses: `render(analysis, out)` writes `out/report.md` and its figures
from an `intjax.ioi.IOIAnalysis` without computing anything new (`intjax.ioi.load_analysis` reads a run's).

One module per section, each a function `section(analysis, out) -> Section` (its markdown, its summary
lines, the figures it drew); `rendering.SECTIONS` is their order. Nothing is imported here, so that the
analysis can import the report's data types (`claims.ClaimTest`) without loading every section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def render(analysis: Any, out: str | Path) -> Path:
    """Write `out/report.md` and its figures for an IOIAnalysis (see `intjax.report.rendering`)."""
    from intjax.report.rendering import render as render_sections

    return render_sections(analysis, out)


__all__ = ["render"]
