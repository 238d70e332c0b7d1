"""The report's title and what was run: prompts, metric, clean and corrupted metric, total effect."""

from __future__ import annotations

from pathlib import Path

from intjax.report.numbers import pm
from intjax.report.section import Section
from intjax.bootstrap import standard_error as se
from intjax.ioi.saved import IOIAnalysis


def section(analysis: IOIAnalysis, out: Path) -> Section:
    """Title and the paragraph on what was run (no summary lines, no figures)."""
    res, o = analysis.results, analysis.options
    clean = res["metric_clean"].values[:, 0]
    corrupted = res["metric_corrupted"].values[:, 0]
    te_p = corrupted - clean
    name = analysis.model_name
    return Section("\n".join([
        f"# IOI analysis: {name}",
        "",
        f"What was run: {len(analysis.prompts)} IOI prompts (Wang et al. 2022 templates, {o.corruption.upper()} "
        f"corruption, seed {o.seed}) through {name}; metric y = logit(IO) − logit(S) at the last "
        f"position. Clean y = {pm(clean.mean(), se(clean[:, None])[0])} (IO preferred on "
        f"{100 * (clean > 0).mean():.1f}% of prompts), corrupted y = {pm(corrupted.mean(), se(corrupted[:, None])[0])}, "
        f"total effect TE = {pm(float(te_p.mean()), se(te_p[:, None])[0])}. Means are over prompts, ± one standard "
        "error over prompts unless a 95% CI is given; per-prompt values are in `values.npz` (item names in "
        "`summary.json`).",
        "",
    ]))
