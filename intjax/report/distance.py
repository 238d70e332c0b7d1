"""The distance study by regime: natural corruptions and the t-scaled family, each with its own fit."""

from __future__ import annotations

import math
from typing import Mapping

from intjax.studies.distance_scaling import LogLogFit
from intjax.studies.markdown import markdown_table

REGIME_WORDS = {"natural": "natural corruptions", "scaled": "t-scaled family"}


def _cell(fit: LogLogFit) -> str:
    return "—" if not math.isfinite(fit.slope) else f"{fit.label()}, R² {fit.r2:.2f}"


def regime_table(by_regime: Mapping[str, Mapping[str, LogLogFit]], kinds: Mapping[str, list[str]]) -> list[str]:
    """Markdown lines: one row per (regime, fit) with slope, 95% CI, R² and points."""
    rows = [(REGIME_WORDS.get(r, r), ", ".join(kinds.get(r, [])), name, _cell(f), f.n_points)
            for r, fits in by_regime.items() for name, f in fits.items()]
    return [markdown_table(rows, ("regime", "patch kinds", "fit", "slope [95% CI], R²", "points")), ""]


def regime_reading(by_regime: Mapping[str, Mapping[str, LogLogFit]], max_order: int) -> list[str]:
    """Sentences: the natural-only within slope against the largest Taylor order |T|, and the scaled family's
    within slopes per order against |T| (frozen prediction; recompute predicts at most |T|)."""
    lines = []
    natural, within = (by_regime.get("natural", {}).get(k) for k in ("pooled", "within"))
    if natural is not None and within is not None and math.isfinite(within.ci[0]):
        if within.ci[0] > max_order:
            verdict = (f"its CI lies above every Taylor order here (|T| ≤ {max_order}), so these patches are "
                       "outside the local (Taylor) regime: the slope is not an order of the expansion")
        elif within.ci[0] > 0:
            verdict = f"its CI lies above 0 and reaches {max_order} or below: growth within the Taylor orders"
        else:
            verdict = "its CI includes 0 or lies below it: growth with distance is not shown on natural patches"
        lines.append(f"- Natural corruptions only: within {within.label()} (one intercept per set and prompt, "
                     f"R² {within.r2:.2f}), pooled {natural.label()} (R² {natural.r2:.2f}), {natural.n_points} "
                     f"points; by the within fit, {verdict}.")
    scaled = by_regime.get("scaled", {})
    per_order = [(k, f) for k, f in scaled.items() if k.startswith("within order ")]
    if per_order:
        words = []
        for name, f in per_order:
            k = int(name.rsplit(" ", 1)[1])
            if not math.isfinite(f.ci[0]):
                words.append(f"|T| = {k}: no fit")
                continue
            where = ("CI contains |T|" if f.ci[0] <= k <= f.ci[1] else
                     "CI below |T|" if f.ci[1] < k else "CI above |T|")
            words.append(f"|T| = {k}: {f.label()} ({where})")
        lines.append("- t-scaled family (one intercept per set and prompt, so the slope is the one against t): "
                     + "; ".join(words) + ". Frozen semantics predicts |T|; these are recompute runs, where the "
                     "theorem table predicts one order per chain of members, at most |T|.")
    return lines
