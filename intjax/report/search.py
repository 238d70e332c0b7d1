"""The top-k heads by |NIE| against the best k-set, chosen on half the prompts and scored on the other half."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from intjax.ioi.saved import IOIAnalysis
from intjax.report.heldout_search import heldout_search_section
from intjax.report.section import Section
from intjax.report import figures


def summary_line(studies) -> str:
    """Where greedy's held-out shortfall is significant, if anywhere."""
    worse = [r for r in studies.search if r.greedy_worse]
    return ("- Search (noising; chosen on half the prompts, scored on the other half): "
            + (f"greedy's held-out shortfall is significant at k = {', '.join(str(r.k) for r in worse)} (largest "
               f"{max(r.shortfall for r in worse):.0%})." if worse else
               "the best k-set never beats the top-k by |NIE| on held-out prompts with a 95% CI that excludes 0."))


def section(analysis: IOIAnalysis, out: Path) -> Section:
    """The search section, its summary line and the curves of top-k against best k-set."""
    studies = analysis.studies
    markdown = heldout_search_section(studies.search, studies.head_names, studies.search_pool,
                                      studies.search_pool_rule)
    markdown = markdown.replace("on held-out prompts\n", "on held-out prompts\n\n![search](search.png)\n", 1)
    rows = studies.search
    fig = figures.search_curves([r.k for r in rows], [r.top_effect for r in rows], [r.best_effect for r in rows],
                                out / "search.png", top_ci=np.array([r.top_ci for r in rows]),
                                best_ci=np.array([r.best_ci for r in rows]))
    return Section(markdown, (summary_line(studies),), {"search": fig})
