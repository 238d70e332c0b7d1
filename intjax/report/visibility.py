"""Invisible and inflated heads (NIE against the effect in context, with bootstrap support for each label) and
the witnesses of the strongest suspect."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from intjax.ioi.circuit import class_of, stage_order
from intjax.ioi.saved import IOIAnalysis
from intjax.report.ioi_claims import label_claims_of
from intjax.report.labels import SUPPORT, label_summary
from intjax.report.section import Section
from intjax.report import figures
from intjax.report.markdown import markdown_table


def visibility_markdown(studies) -> str:
    """Heads whose NIE hides or inflates what they do in context."""
    rows = {e: studies.remedy(e, "head") for e in ("noising", "denoising")}
    cls = class_of(studies.circuit)
    noising = rows["noising"].visibility
    flagged = sorted({i for r in rows.values() for i, lab in enumerate(r.visibility.labels) if lab},
                     key=lambda i: -max(abs(noising.context[i]), abs(noising.nie[i])))
    table = []
    n, d = rows["noising"].visibility, rows["denoising"].visibility

    def label(v, i):
        flip = (f", sign flips ({v.flip_support[i]:.0%})" if v.sign_flipped(i) and v.labels[i] != "flipped"
                else "")
        return f"{v.labels[i] or '—'} ({v.support[i]:.0%}){flip}"

    def pm(mean, se):
        return f"{mean:+.3f} ± {se:.3f}"

    for i in flagged[:15]:
        table.append((studies.head_names[i], cls.get(studies.head_names[i], "—"),
                      pm(n.nie[i], n.nie_se[i]), pm(n.context[i], n.context_se[i]), label(n, i),
                      pm(d.nie[i], d.nie_se[i]), pm(d.context[i], d.context_se[i]), label(d, i)))
    n_vis = rows["noising"].visibility
    class_header = "class" if stage_order(studies.circuit)[0] else \
        f"{'path-patching class' if studies.by_path() else 'attention role'} (not Wang et al.'s class)"
    ctx = {e: ", ".join(r.names[i] for i in r.visibility.context_set) for e, r in rows.items()}
    return "\n".join([
        "## Invisible and inflated heads",
        "",
        f"Each head's NIE against its context effect with the strongest heads already patched (noising: "
        f"{ctx['noising']}; denoising: {ctx['denoising']}). Thresholds: {n_vis.rule} (= |TE|). "
        "± is one standard error over prompts, as everywhere in this report; the share after a label is how "
        "many of 1000 bootstrap resamples of the prompts give that same label.",
        "",
        "![noising](visibility_noising.png) ![denoising](visibility_denoising.png)",
        "",
        markdown_table(table, ("head", class_header, "NIE noising", "context noising", "label", "NIE denoising",
                       "context denoising", "label")) if table else "No head is flagged at these thresholds.",
        "",
        *witness_lines(studies),
    ])


def witness_lines(studies) -> list[str]:
    """Which heads and MLPs respond when the strongest suspect is noised (witness importance)."""
    w = studies.witnesses
    ci = w.ci()
    order = w.ranked()
    rows = [(w.witnesses[j], f"{w.pinned[:, j].mean():+.3f}", f"{w.importance[j]:+.3f}",
             f"[{ci[j, 0]:+.3f}, {ci[j, 1]:+.3f}]") for j in order[:8]]
    def verdict(j):
        return "its 95% CI excludes 0" if ci[j, 0] > 0 or ci[j, 1] < 0 else "its 95% CI includes 0"

    most, least = order[0], order[-1]
    parts = []
    if w.importance[most] > 0:
        parts.append(f"the largest compensation comes from {w.witnesses[most]} ({w.importance[most]:+.3f}; "
                     f"{verdict(most)})")
    if w.importance[least] < 0 and least != most:
        parts.append(f"the largest mediation from {w.witnesses[least]} ({w.importance[least]:+.3f}; "
                     f"{verdict(least)})")
    reading = ("Pinning any one witness leaves the NIE as it is." if not parts else
               parts[0][0].upper() + parts[0][1:] + ("; " + parts[1] if len(parts) > 1 else "") + ".")
    shown = list(dict.fromkeys([*order[:6], most, least]))
    rows = [(w.witnesses[j], f"{w.pinned[:, j].mean():+.3f}", f"{w.importance[j]:+.3f}",
             f"[{ci[j, 0]:+.3f}, {ci[j, 1]:+.3f}]") for j in shown]
    state = "clean" if w.direction == "noising" else "corrupted"
    return [
        f"### Witnesses of {w.suspect}",
        "",
        (f"{w.suspect} is the head with the largest |mean noising NIE| on the {studies.split[0]} selection prompts; "
         f"everything below is on the other {studies.split[1]}. " if studies.split[0] else "")
        + f"{w.suspect}'s {w.direction} NIE is {w.nie.mean():+.3f}. Its NIE with one other component (a witness) "
        f"held at its {state} (base-run) value while the rest recomputes, and the witness importance |NIE with w "
        "pinned| − |NIE| (bootstrap 95% CI over prompts): a positive importance means w responds to the patch "
        f"and hides part of {w.suspect}'s effect (compensation, as a backup does), a negative one that w's "
        f"response carries or amplifies part of it (mediation: pinning w blocks that path). "
        f"Components that do not read {w.suspect} ({len(w.skipped)}: earlier layers, or its own layer's other "
        "heads) are unaffected by the patch, so pinning them changes nothing and they are not listed.",
        "",
        markdown_table(rows, ("witness", "NIE with w pinned", "importance", "95% CI")),
        "",
        reading,
        "",
    ]


def summary_lines(studies) -> tuple[str, str]:
    """The flagged heads with their support, and the witness that changes the suspect's |NIE| most."""
    rows = {e: studies.remedy(e, "head") for e in ("noising", "denoising")}
    flagged = "; ".join(label_summary(e, label_claims_of(r)) for e, r in rows.items())
    w = studies.witnesses
    top = int(np.argmax(np.abs(w.importance)))  # the largest change, compensation or mediation
    lo, hi = w.ci()[top]
    return (f"- Heads flagged by single patch against context ({studies.remedy('noising', 'head').visibility.rule}; "
            f"stated only where at least {SUPPORT:.0%} of 1000 bootstrap resamples of the prompts give the same "
            f"label or sign flip, the share in parentheses): {flagged}.",
            f"- Witnesses of {w.suspect}: pinning {w.witnesses[top]} changes its |NIE| by {w.importance[top]:+.3f} "
            f"[{lo:+.3f}, {hi:+.3f}] ({'CI excludes 0' if lo > 0 or hi < 0 else 'CI includes 0'}).")


def section(analysis: IOIAnalysis, out: Path) -> Section:
    """The visibility section with the witnesses, its two summary lines and a scatter per direction."""
    studies, figs = analysis.studies, {}
    for e in ("noising", "denoising"):
        row = studies.remedy(e, "head")
        v = row.visibility
        figs[f"visibility_{e}"] = figures.visibility_scatter(
            v.nie, v.context, v.labels, list(row.names), out / f"visibility_{e}.png",
            f"{e}: NIE vs context of {', '.join(row.names[i] for i in v.context_set)}")
    return Section(visibility_markdown(studies), summary_lines(studies), figs)
