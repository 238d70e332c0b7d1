"""Reports as renderings of saved analyses: `render(analysis, out)` writes `out/report.md` and its figures
from an `intjax.ioi.IOIAnalysis` without computing anything new.

One module per section, each a function `section(analysis, out) -> Section` (its markdown, its summary
lines, the figures it drew); `SECTIONS` is their order. The claims table and the summary come first,
built from the analysis's claim tests and the sections' summary lines; the footer lists the files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from intjax.report import (circuit, completeness, distance, faithfulness, header, interactions, linear, nie,
                           remedies, search, theorems, visibility)
from intjax.report.footer import footer
from intjax.report.ioi_claims import claims_of
from intjax.studies.readings import sign_box

SECTIONS = (nie.section, interactions.section, linear.section, theorems.section, circuit.section,
            faithfulness.section, completeness.section, visibility.section, search.section, remedies.section,
            distance.section)


def render(analysis: Any, out: str | Path) -> Path:
    """Write `out/report.md` and its figures (PNG) for `analysis` (an IOIAnalysis); returns the report's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parts = [section(analysis, out) for section in SECTIONS]
    summary = [line for part in parts for line in part.summary]
    figures = {name: path for part in parts for name, path in part.figures.items()}
    head = "\n".join([*claims_of(analysis), "## Summary", "", *summary, "", sign_box(), ""])
    text = "\n".join([header.section(analysis, out).markdown, head, *(p.markdown for p in parts if p.markdown),
                      footer(figures, analysis.timings["total_s"])])
    report = out / "report.md"
    report.write_text(text)
    return report


__all__ = ["render", "SECTIONS"]
