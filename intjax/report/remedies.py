"""The remedies table: estimator (noising, denoising, mean ablation) × unit (head, class, layer), single-unit
sums against joint effects, and what each still hides or inflates."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from intjax.report.labels import SUPPORT
from intjax.report.numbers import names_text as _names
from intjax.report.paired import smallest_abs_mean
from intjax.report.section import Section
from intjax.report.markdown import markdown_table
from intjax.bootstrap import standard_error
from intjax.ioi.saved import IOIAnalysis

PLURAL = {"head": "heads", "class": "classes", "layer": "layers"}


def remedies_markdown(studies) -> str:
    """Estimator × unit: single-unit sums against joint effects, and what each hides or inflates."""
    se = standard_error
    rows = [(r.estimator, r.unit, len(r.names), f"{r.sum_nie:+.3f} ± {se(r.nie.sum(1)):.3f}",
             f"{r.joint:+.3f} ± {se(r.joint_per_prompt):.3f}",
             f"{r.int_total:+.3f} ± {se(r.joint_per_prompt - r.nie.sum(1)):.3f}",
             _names(r.named("invisible")), _names(r.named("inflated")), _names(r.named("flipped")))
            for r in studies.remedies]
    return "\n".join([
        "## The remedies and where each fails",
        "",
        "Changing the estimator (rows) or the unit (head, circuit class + `rest`, whole layer); mean ablation "
        "averages each prompt's own template, as in the faithfulness study. Σ NIE is what "
        "single-unit patching attributes; joint is patching every unit together; their difference is every "
        "INT term among the units. Labels as above, context = the strongest units of that kind.",
        "",
        markdown_table(rows, ("estimator", "unit", "units", "Σ NIE", "joint", "INT = joint − Σ NIE", "invisible",
                      "inflated", "flipped")),
        "",
        *_remedies_reading(studies),
        "",
    ])


def _n_settled(row) -> int:
    """How many of a remedies row's labels have at least SUPPORT bootstrap support."""
    v = row.visibility
    return sum(bool(lab) and sup >= SUPPORT for lab, sup in zip(v.labels, v.support))


def _remedies_reading(studies) -> list[str]:
    """What the remedies table says on this model, in sentences computed from it; which unit has the smallest
    |INT| is stated only where its paired 95% CI against every other unit excludes 0."""
    lines = []
    estimators = list(dict.fromkeys(r.estimator for r in studies.remedies))
    for e in estimators:
        rows = [r for r in studies.remedies if r.estimator == e]
        ints = ", ".join(f"{PLURAL[r.unit]} {abs(r.int_total):.2f}" for r in rows)
        per_prompt = np.stack([r.joint_per_prompt - r.nie.sum(1) for r in rows], 1)  # [P, rows]
        best, settled, cis = smallest_abs_mean(per_prompt)
        smallest = rows[best]
        gaps = ", ".join(f"{PLURAL[r.unit]} − {PLURAL[smallest.unit]} [{cis[k, 0]:+.2f}, {cis[k, 1]:+.2f}]"
                         for k, r in enumerate(rows) if k != best)
        flagged = ", ".join(f"{PLURAL[r.unit]} {len(r.flagged_names())}/{len(r.names)} ({_n_settled(r)} at ≥ "
                            f"{SUPPORT:.0%} support)" for r in rows)
        gap = abs(smallest.int_total) / max(abs(smallest.joint), 1e-12)
        verdict = (f"even there the single-unit effects miss the joint effect by {gap:.0%}" if gap > 0.1 else
                   f"there single-unit effects add up to the joint effect within {gap:.0%}")
        which = (f"it is smallest for {PLURAL[smallest.unit]} (paired 95% CIs of the gaps in |INT|: {gaps}), and "
                 f"{verdict}" if settled else
                 f"no unit's |INT| is smaller than every other's with a paired 95% CI that excludes 0 ({gaps})")
        lines.append(f"- {e}: |INT among units| is {ints}; {which}. Flagged units: {flagged}.")
    heads = {r.estimator: r for r in studies.remedies if r.unit == "head"}
    if "noising" in heads and "denoising" in heads:
        noising, denoising = heads["noising"].flagged_names(), heads["denoising"].flagged_names()
        only_n, only_d = noising - denoising, denoising - noising
        lines.append(f"- Switching from noising to denoising un-flags {_names(sorted(only_n))} but flags "
                     f"{_names(sorted(only_d))}: the two directions are different games (under recompute "
                     "semantics neither NIE is the other plus a sum of INT), and each has interactions of "
                     "its own, so changing the estimator moves where they show rather than removing them.")
    return lines


def section(analysis: IOIAnalysis, out: Path) -> Section:
    """The remedies section (no summary lines, no figures)."""
    return Section(remedies_markdown(analysis.studies))
