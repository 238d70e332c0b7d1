"""`render(analysis, out)`: the report of an IOIAnalysis from its sections, in the order of `SECTIONS`.

The claims table and the summary come first, built from the analysis's claim tests and the sections'
summary lines (in section order); then every section's markdown; the footer lists the files.
"""

from __future__ import annotations

from pathlib import Path

from intjax.ioi.saved import IOIAnalysis
from intjax.report import (circuit, completeness, distance, faithfulness, header, interactions, linear, nie,
                           path_discovery, remedies, screen, search, theorems, visibility)
from intjax.report.footer import footer
from intjax.report.claims_section import claims_of
from intjax.studies.readings import sign_box

SECTIONS = (nie.section, interactions.section, screen.section, linear.section, theorems.section, circuit.section,
            path_discovery.section, faithfulness.section, completeness.section, visibility.section, search.section, remedies.section,
            distance.section)


def render(analysis: IOIAnalysis, out: str | Path) -> Path:
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
