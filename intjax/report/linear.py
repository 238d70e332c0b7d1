"""The linear (attribution) estimate of each head's noising NIE against the exact one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from intjax.ioi.saved import IOIAnalysis
from intjax.report.section import Section
from intjax.report import figures


def section(analysis: IOIAnalysis, out: Path) -> Section:
    """Correlation and largest gap over heads, the summary line, the scatter."""
    res = analysis.results
    names = res["nie_noising"].items
    noise, lin = res["nie_noising"].values.mean(0), res["linear_noising"].values.mean(0)
    corr = float(np.corrcoef(noise, lin)[0, 1]) if np.std(lin) > 0 else float("nan")
    gap = np.abs(noise - lin)
    at = int(gap.argmax())
    fig = figures.linear_vs_exact(noise, lin, out / "linear_vs_exact.png", names)
    lines = [
        "## Linear (attribution) estimate versus exact NIE",
        "",
        "![linear vs exact](linear_vs_exact.png)",
        "",
        f"Correlation over heads {corr:.3f}; largest gap {gap.max():.3f} at {names[at]} "
        f"(exact {noise[at]:+.3f}, linear {lin[at]:+.3f}).",
        "",
    ]
    summary = (f"- Attribution patching (linear) against exact NIE: correlation {corr:.2f} over heads, largest gap "
               f"{gap.max():.2f} at {names[at]}.",)
    return Section("\n".join(lines), summary, {"linear": fig})
