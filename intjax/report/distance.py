"""The distance study's section: |INT_T| against the distance of the patch, pooled and by regime (natural
corruptions and the t-scaled family, each with its own fit)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import numpy as np

from intjax.ioi.saved import IOIAnalysis
from intjax.report.section import Section
from intjax.studies.distance_scaling import LogLogFit, plot_distance_scaling, regimes
from intjax.report.markdown import markdown_table

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


def distance_section(study) -> str:
    """|INT_T| against the distance its patch moves the members' activations (studies.distance_scaling)."""
    if study is None:
        return "## Interactions and distance on real prompts\n\nSkipped (`distance_heads` = 0).\n"
    rows = [("all", study.fit.label(), study.within.label(), study.fit.n_points)]
    rows += [(f"order {k}", fit.label(), study.within_by_order[k].label(), fit.n_points)
             for k, fit in study.by_order.items()]
    f = study.fit
    grows = f.ci[0] > 0
    semantics = ", ".join(sorted(set(study.semantics.values())))
    return "\n".join([
        "## Interactions and distance on real prompts",
        "",
        f"Each point is one (set, prompt, kind of patch): the exact |INT_T| against d_T, the Euclidean distance "
        "between the base and patched activations of the set's members (‖source − base‖ over the sites they own; "
        "at α = 1_T each member takes its source value exactly). Patches: "
        f"{', '.join(study.corruptions)}; {semantics} semantics; sets: every pair and triple of the strongest "
        f"heads. Fitted slope of log|INT| on log d with a 95% bootstrap CI over prompts (pooled: one line; "
        f"within: one intercept per set and prompt, so only the kinds of patch of one set on one prompt are "
        f"compared). {study.n_zero_distance + study.n_zero_int} points with d = 0 or INT = 0 are dropped.",
        "",
        "![distance scaling](distance_scaling.png)",
        "",
        markdown_table(rows, ("sets", "pooled slope [95% CI]", "within slope [95% CI]", "points")),
        "",
        (f"|INT_T| grows with the distance of the patch: the pooled slope's CI lies above 0 ({f.label()}). "
         if grows else
         f"|INT_T| shrinks with the distance of the patch: the pooled slope's CI lies below 0 ({f.label()}). "
         if f.ci[1] < 0 else
         f"The pooled slope's CI includes 0 ({f.label()}): no growth with distance is shown. "
         if np.isfinite(f.ci[0]) else "The fit failed (too few points with d > 0 and INT ≠ 0). ")
        + f"The pooled fit mixes two regimes (R² {f.r2:.2f}): natural corruptions and copies of one source "
          "scaled toward the base by t. Each is fitted on its own below (ABC, t = 1, belongs to both).",
        "",
        *regime_table(study.by_regime, regimes(study.corruptions)),
        *regime_reading(study.by_regime, int(max(study.by_order))),
        "",
    ])


def distance_summary(study) -> list[str]:
    """The distance study's finding in one line."""
    if study is None:
        return []
    natural = [line for line in regime_reading(study.by_regime, int(max(study.by_order)))
               if line.startswith("- Natural")]
    return natural or [f"- |INT_T| against the distance of the patch: log-log {study.fit.label()} over "
                       f"{study.fit.n_points} (set, prompt, patch kind) points."]


def section(analysis: IOIAnalysis, out: Path) -> Section:
    """The distance section, its summary line and the scatter of |INT_T| against d_T (none when skipped)."""
    study = analysis.distance
    figs = {} if study is None else {"distance": plot_distance_scaling(study, out / "distance_scaling.png")}
    return Section(distance_section(study), tuple(distance_summary(study)), figs)
