"""Report sections and figures of the IOI interaction studies (markdown, matplotlib)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from intjax.studies import figures
from intjax.ioi.circuit import STAGES, class_of, stage_order
from intjax.studies.faithfulness_variance_report import variance_section
from intjax.studies.heldout_search_report import heldout_search_section
from intjax.ioi.studies import IOIStudies
from intjax.studies.markdown import markdown_table
from intjax.studies.stats import mean_ci, standard_error

PLURAL = {"head": "heads", "class": "classes", "layer": "layers"}
LABELS = ("invisible", "inflated", "flipped")
WANG_2022 = "a mean logit difference near 3.5 and a circuit faithfulness near 87% (Wang et al. 2022, mean ablation)"


def _names(names: list[str], limit: int = 8) -> str:
    if not names:
        return "—"
    return ", ".join(names[:limit]) + (f" (+{len(names) - limit})" if len(names) > limit else "")


def write_figures(studies: IOIStudies, out: Path) -> dict[str, Path]:
    """The studies' figures in `out`."""
    f = studies.faithfulness
    head_rows = {e: studies.remedy(e, "head") for e in ("noising", "denoising")}
    figs = {
        "faithfulness": figures.faithfulness_strips(f.faithfulness, f.ablations, f.parts, out / "faithfulness.png"),
        "search": figures.search_curves([r.k for r in studies.search], [r.top_effect for r in studies.search],
                                        [r.best_effect for r in studies.search], out / "search.png",
                                        top_ci=np.array([r.top_ci for r in studies.search]),
                                        best_ci=np.array([r.best_ci for r in studies.search])),
    }
    for e, row in head_rows.items():
        v = row.visibility
        figs[f"visibility_{e}"] = figures.visibility_scatter(
            v.nie, v.context, v.labels, list(row.names), out / f"visibility_{e}.png",
            f"{e}: NIE vs context of {', '.join(row.names[i] for i in v.context_set)}")
    return figs


def circuit_section(studies: IOIStudies) -> str:
    """The circuit the studies use."""
    where = studies.faithfulness.class_positions or {}
    rows = [(cls, ", ".join(heads), where.get(cls, "every position")) for cls, heads in studies.circuit.items()]
    ordered, problems = stage_order(studies.circuit)
    order = ("Its classes come in Wang et al.'s layer order: every " + ", then every ".join(
        " / ".join(stage) for stage in STAGES) + " head sits in a later layer than the stage before."
             if ordered else "Its classes are not in Wang et al.'s layer order: " + "; ".join(problems) + ".")
    return "\n".join(["## The circuit", "", f"Source: {studies.circuit_source}.", "",
                      markdown_table(rows, ("class", "heads", "kept at")), "", order, ""])


def faithfulness_section(studies: IOIStudies, gpt2_small: bool) -> str:
    """Faithfulness over resamples and ablations, and what its parts say about its spread."""

    f = studies.faithfulness
    R = f.faithfulness.shape[1]
    rows = []
    for a, name in enumerate(f.ablations):
        x = f.faithfulness[a]
        lo, hi = _boot_ci(x)
        rows.append((name, f"{x.mean():.1%} [{lo:.1%}, {hi:.1%}]", f"{x.std():.1%}", f"{x.min():.1%} – {x.max():.1%}"))
    spread_ablation = (f.faithfulness.max(0) - f.faithfulness.min(0)).mean()
    parts = [(name, *(f"{f.parts[p][a].mean():+.3f}" for p in f.parts), f"{f.faithfulness[a].mean():.3f}")
             for a, name in enumerate(f.ablations)]
    k = len(f.classes)
    sizes = np.array([bin(b).count("1") for b in range(1 << k)])
    mean_terms = f.terms[0].mean(0)  # first ablation, mean over resamples
    top = [b for b in np.argsort(-np.abs(mean_terms)) if sizes[b] >= 2][:6]
    term_rows = [("+".join(f.classes[i] for i in range(k) if b >> i & 1), f"{mean_terms[b]:+.3f}",
                  f"{f.terms[0, :, b].std():.3f}") for b in top]
    positions_text = ("circuit heads are kept only at their class's position (table above) and ablated "
                      "elsewhere, as Wang et al. do." if f.class_positions else
                      "circuit heads are kept at every position.")
    reference = (f"For GPT-2 small the published reference is {WANG_2022}; this run's F(M) is "
                 f"{f.model_metric.mean():.2f}." if gpt2_small else
                 f"(For real GPT-2 small, Wang et al. report {WANG_2022}; `intjax ioi --model gpt2` runs the "
                 "same code path on it.)")
    lines = [
        "## Faithfulness, and how interactions explain its spread",
        "",
        f"Faithfulness = F(C)/F(M): mean logit difference with every head outside the circuit ablated, over "
        f"that of the intact model. {R} resamples of {f.n_prompts} prompts each (prompt seeds "
        f"{f.seed}–{f.seed + R - 1}; the first is the analysis's own set); ablations: mean (per position over "
        f"{f.reference_per_template} fresh ABC prompts of each prompt's own template, so positions align, as "
        "Wang et al. do), resample (each prompt's own ABC counterfactual), zero. Every head outside the "
        f"circuit is ablated at every position; {positions_text} F(M) over resamples: "
        f"{f.model_metric.mean():.3f} ± {f.model_metric.std():.3f}. {reference}",
        "",
        "![faithfulness](faithfulness.png)",
        "",
        markdown_table(rows, ("ablation", "mean [95% CI over resamples]", "sd", "range")),
        "",
        f"Across ablation choices the same prompts give faithfulness {spread_ablation:.1%} points apart on "
        "average (max − min per resample).",
        "",
        variance_section(f),
        "",
        "The exact decomposition F(C)/F(M) = ablated + main + pairwise + higher, with the circuit's classes as "
        "units (mean over resamples, each a share of F(M)):",
        "",
        markdown_table(parts, ("ablation", *f.parts, "faithfulness")),
        "",
    ]
    if term_rows:
        lines += [f"Largest class interactions ({f.ablations[0]} ablation; sd across resamples):", "",
                  markdown_table(term_rows, ("classes kept together", "INT / F(M)", "sd")), ""]
    return "\n".join(lines)


def visibility_section(studies: IOIStudies) -> str:
    """Heads whose NIE hides or inflates what they do in context."""
    rows = {e: studies.remedy(e, "head") for e in ("noising", "denoising")}
    cls = class_of(studies.circuit)
    noising = rows["noising"].visibility
    flagged = sorted({i for r in rows.values() for i, lab in enumerate(r.visibility.labels) if lab},
                     key=lambda i: -max(abs(noising.context[i]), abs(noising.nie[i])))
    table = []
    n, d = rows["noising"].visibility, rows["denoising"].visibility

    def label(v, i):
        flip = ", sign flips" if v.sign_flipped(i) and v.labels[i] != "flipped" else ""
        return f"{v.labels[i] or '—'}{flip} ({v.support[i]:.0%})"

    def pm(mean, se):
        return f"{mean:+.3f} ± {se:.3f}"

    for i in flagged[:15]:
        table.append((studies.head_names[i], cls.get(studies.head_names[i], "—"),
                      pm(n.nie[i], n.nie_se[i]), pm(n.context[i], n.context_se[i]), label(n, i),
                      pm(d.nie[i], d.nie_se[i]), pm(d.context[i], d.context_se[i]), label(d, i)))
    n_vis = rows["noising"].visibility
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
        markdown_table(table, ("head", "class", "NIE noising", "context noising", "label", "NIE denoising",
                       "context denoising", "label")) if table else "No head is flagged at these thresholds.",
        "",
        *witness_lines(studies),
    ])


def witness_lines(studies: IOIStudies) -> list[str]:
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
        f"{w.suspect}'s {w.direction} NIE is {w.nie.mean():+.3f}. Its NIE with one other component (a witness) "
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


def search_section(studies: IOIStudies) -> str:
    """Top-k by |NIE| against the best k-set, chosen on half the prompts and scored on the other half."""

    section = heldout_search_section(studies.search, studies.head_names, studies.search_pool,
                                     studies.search_pool_rule)
    return section.replace("on held-out prompts\n", "on held-out prompts\n\n![search](search.png)\n", 1)


def remedies_section(studies: IOIStudies) -> str:
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


def _remedies_reading(studies: IOIStudies) -> list[str]:
    """What the remedies table says on this model, in sentences computed from it."""
    lines = []
    estimators = list(dict.fromkeys(r.estimator for r in studies.remedies))
    for e in estimators:
        rows = [r for r in studies.remedies if r.estimator == e]
        ints = ", ".join(f"{PLURAL[r.unit]} {abs(r.int_total):.2f}" for r in rows)
        smallest = min(rows, key=lambda r: abs(r.int_total))
        flagged = ", ".join(f"{PLURAL[r.unit]} {len(r.flagged_names())}/{len(r.names)}" for r in rows)
        gap = abs(smallest.int_total) / max(abs(smallest.joint), 1e-12)
        verdict = (f"even there the single-unit effects miss the joint effect by {gap:.0%}" if gap > 0.1 else
                   f"there single-unit effects add up to the joint effect within {gap:.0%}")
        lines.append(f"- {e}: |INT among units| is {ints}; it is smallest for {PLURAL[smallest.unit]}, "
                     f"and {verdict}. Flagged units: {flagged}.")
    heads = {r.estimator: r for r in studies.remedies if r.unit == "head"}
    if "noising" in heads and "denoising" in heads:
        noising, denoising = heads["noising"].flagged_names(), heads["denoising"].flagged_names()
        only_n, only_d = noising - denoising, denoising - noising
        lines.append(f"- Switching from noising to denoising un-flags {_names(sorted(only_n))} but flags "
                     f"{_names(sorted(only_d))}: the two directions are different games (under recompute "
                     "semantics neither NIE is the other plus a sum of INT), and each has interactions of "
                     "its own, so changing the estimator moves where they show rather than removing them.")
    return lines


def studies_report(studies: IOIStudies, gpt2_small: bool) -> str:
    """All the study sections, in order."""
    return "\n".join([circuit_section(studies), faithfulness_section(studies, gpt2_small),
                      visibility_section(studies), search_section(studies), remedies_section(studies)])



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
        + "The theorem table's slopes are the controlled version of this (sources scaled by t): |T| under "
          "frozen semantics, one order per chain of members under recompute.",
        "",
    ])


def _boot_ci(x: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap 95% CI of the mean of `x` (resamples, prompts)."""
    return mean_ci(x, n_boot, seed)[1:]


def studies_summary(studies: IOIStudies) -> list[str]:
    """One line per study section: what it found, with its uncertainty."""
    f = studies.faithfulness
    faith = "; ".join(f"{name} {f.faithfulness[a].mean():.0%} [{_boot_ci(f.faithfulness[a])[0]:.0%}, "
                      f"{_boot_ci(f.faithfulness[a])[1]:.0%}]" for a, name in enumerate(f.ablations))
    rows = {e: studies.remedy(e, "head") for e in ("noising", "denoising")}

    def named(r, lab):  # heads with this label, each with its bootstrap support
        v = r.visibility
        return ", ".join(f"{r.names[i]} ({v.support[i]:.0%})" for i in v.flagged(lab))

    flagged = "; ".join(f"{e}: " + (", ".join(f"{lab} {named(r, lab)}" for lab in LABELS if r.named(lab))
                                    or "none") for e, r in rows.items())
    w = studies.witnesses
    top = int(np.argmax(np.abs(w.importance)))  # the largest change, compensation or mediation
    lo, hi = w.ci()[top]
    worse = [r for r in studies.search if r.greedy_worse]
    return [
        f"- Faithfulness over {f.faithfulness.shape[1]} resamples (mean [95% CI over resamples]): {faith}.",
        f"- Heads flagged by single patch against context ({studies.remedy('noising', 'head').visibility.rule}; "
        f"in parentheses the share of bootstrap resamples of the prompts that give the same label): {flagged}.",
        f"- Witnesses of {w.suspect}: pinning {w.witnesses[top]} changes its |NIE| by {w.importance[top]:+.3f} "
        f"[{lo:+.3f}, {hi:+.3f}] ({'CI excludes 0' if lo > 0 or hi < 0 else 'CI includes 0'}).",
        "- Search (noising; chosen on half the prompts, scored on the other half): "
        + (f"greedy's held-out shortfall is significant at k = {', '.join(str(r.k) for r in worse)} (largest "
           f"{max(r.shortfall for r in worse):.0%})." if worse else
           "the best k-set never beats the top-k by |NIE| on held-out prompts with a 95% CI that excludes 0."),
    ]


def distance_summary(study) -> list[str]:
    """The distance study's finding in one line."""
    if study is None:
        return []
    return [f"- |INT_T| against the distance of the patch: log-log {study.fit.label()} over "
            f"{study.fit.n_points} (set, prompt, patch kind) points."]
