"""Report sections and figures of the IOI interaction studies (markdown, matplotlib)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from intjax.studies import figures
from intjax.ioi.circuit import STAGES, class_of, stage_order
from intjax.ioi.completeness import Completeness, Minimality, greedy_gaps
from intjax.studies.faithfulness_variance_report import variance_section
from intjax.studies.heldout_search_report import heldout_search_section
from intjax.ioi.studies import IOIStudies
from intjax.report.ioi_claims import label_claims_of
from intjax.report.labels import SUPPORT, label_summary
from intjax.report.distance import regime_reading, regime_table
from intjax.report.paired import smallest_abs_mean
from intjax.studies.distance_scaling import regimes
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
    if studies.completeness is not None:
        figs["completeness"] = figures._save(build_completeness_scatter(studies.completeness),
                                             out / "completeness.png")
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
             if ordered else "Its classes are not in Wang et al.'s layer order: " + "; ".join(problems) + ". Its "
             "class names are therefore attention-role names (the attention pattern each head shows most), not "
             "Wang et al.'s functional classes.")
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
        f"{f.seed}–{f.seed + R - 1}; "
        + ("none is the analysis's own set, which chose the circuit" if studies.split[0] else
           "the first is the analysis's own set") + "); ablations: mean (per position over "
        f"{f.reference_per_template} fresh ABC prompts of each prompt's own template, so positions align, as "
        "Wang et al. do), resample (each prompt's own ABC counterfactual), zero. Every head outside the "
        f"circuit is ablated at every position; {positions_text} F(M) over resamples: mean "
        f"{f.model_metric.mean():.3f}, SD {f.model_metric.std(ddof=1):.3f} across resamples (SE of the mean "
        f"{standard_error(f.model_metric):.3f}). {reference}",
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
    class_header = "class" if stage_order(studies.circuit)[0] else "attention role (not Wang et al.'s class)"
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


def _n_settled(row) -> int:
    """How many of a remedies row's labels have at least SUPPORT bootstrap support."""
    v = row.visibility
    return sum(bool(lab) and sup >= SUPPORT for lab, sup in zip(v.labels, v.support))


def _remedies_reading(studies: IOIStudies) -> list[str]:
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


def studies_report(studies: IOIStudies, gpt2_small: bool) -> str:
    """All the study sections, in order."""
    complete = ([completeness_section(studies.completeness, studies.minimality)]
                if studies.completeness is not None and studies.minimality is not None else [])
    return "\n".join([circuit_section(studies), faithfulness_section(studies, gpt2_small), *complete,
                      visibility_section(studies), search_section(studies), remedies_section(studies)])


ORIGIN_STYLE = {"random": ("tab:gray", "o"), "exhaustive": ("tab:red", "s"), "greedy": ("tab:blue", "^"),
                "empty": ("black", "*")}
UNIT_WORDS = {"head": ("head", "heads"), "class": ("class", "classes")}


def build_completeness_scatter(c: Completeness):
    """F(C∖K) against F(M∖K) over every K evaluated (a complete circuit keeps every point on the diagonal)."""
    x, y = c.model_side.mean(0), c.circuit_side.mean(0)
    d_se = standard_error(c.incompleteness)  # [S] the SE of each K's mean d
    fig = figures._figure((5.2, 5.2))
    ax = fig.subplots()
    ax.errorbar(x, y, yerr=1.96 * d_se, fmt="none", ecolor="0.7", lw=0.7, zorder=0,
                label="normal 95% CI of d(K), every K")
    for origin, (color, marker) in ORIGIN_STYLE.items():
        idx = [j for j, o in enumerate(c.origins) if o == origin]
        if idx:
            label = {"empty": "K = ∅", "exhaustive": "exhaustive worst K of a size"}.get(origin, f"{origin} K")
            ax.scatter(x[idx], y[idx], s=22 if origin != "empty" else 60, color=color, marker=marker, label=label)
    w = c.sets.index(c.worst)
    ax.annotate(c.name(c.worst), (x[w], y[w]), fontsize=7)
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    pad = 0.05 * (hi - lo + 1e-9)
    ends = np.array([lo - pad, hi + pad])
    ax.plot(ends, ends, "k--", lw=0.8, label="F(C∖K) = F(M∖K) (complete)")
    ax.fill_between(ends, ends - c.simultaneous, ends + c.simultaneous, color="0.85", alpha=0.5, zorder=-1,
                    label="± 95% simultaneous bound over all K")
    ax.set(xlabel="F(M∖K): model without K", ylabel="F(C∖K): circuit without K",
           title=f"completeness ({c.ablation} ablation; points: means over prompts)")
    ax.legend(fontsize=7)
    return fig


def _d(value: tuple[float, float, float]) -> str:
    return f"{value[0]:+.3f} [{value[1]:+.3f}, {value[2]:+.3f}]"


def _ci_words(value: tuple[float, float, float]) -> str:
    return "its 95% CI excludes 0" if value[1] > 0 or value[2] < 0 else "its 95% CI includes 0"


def completeness_section(c: Completeness, m: Minimality) -> str:
    """Completeness (greedy against exhaustive worst K, what carries it) and minimality, with the rules' words."""
    one, many = UNIT_WORDS[c.unit]
    fm = float(c.model_side[:, 0].mean())
    rows = [(r.k, c.name(r.greedy) if r.greedy else "—", _d(r.greedy_value) if r.greedy else "—",
             c.name(r.worst) if r.worst is not None else "—", _d(r.worst_value) if r.worst_value else "—",
             f"{r.random_max:.3f} ({r.n_random})") for r in c.sizes]
    search = (f"every K ⊆ C ({2 ** len(c.circuit_names)} sets: F(C∖K) and F(M∖K) of each in one sweep)"
              if c.exhaustive else "greedy and random K only (too many units for every subset)")
    lines = [
        "## Completeness and minimality",
        "",
        f"Wang et al.'s other two criteria, {c.ablation} ablation, on this analysis's {c.circuit_side.shape[0]} "
        f"prompts, with the circuit's {len(c.circuit_names)} {many} as units ({', '.join(c.circuit_names)}) and "
        f"{len(c.outside_names)} units outside it. F(X) = mean logit difference with every head outside X "
        "ablated; d(K) = F(C∖K) − F(M∖K) for K ⊆ C, the incompleteness is |d(K)|, and a complete circuit has "
        f"d(K) = 0 for every K. Searched: {search}, Wang et al.'s greedy K (add the {one} that makes |d| "
        f"largest, one at a time) and up to {max(r.n_random for r in c.sizes)} random K of each size. "
        "d is given with its 95% bootstrap CI over prompts.",
        "",
        "![completeness](completeness.png)",
        "",
        markdown_table(rows, ("|K|", "greedy K", "d(K) greedy", "exhaustive worst K", "d(K) worst",
                              "largest |d| of random K (how many)")),
        "",
    ]
    gap = c.value(())
    worst = c.value(c.worst)
    resel = (f"; re-choosing the worst K in every bootstrap resample, |d| lies in [{c.worst_ci_reselected[0]:.3f}, "
             f"{c.worst_ci_reselected[1]:.3f}]" if c.worst_ci_reselected else "")
    lines.append(f"- Completeness: the circuit's own gap d(∅) = F(C) − F(M) is {_d(gap)} ({_ci_words(gap)}). "
                 f"The largest incompleteness found is at K = {c.name(c.worst)}: d = {_d(worst)}, "
                 + (f"{abs(worst[0]) / abs(fm):.0%} of F(M) = {fm:.3f}" if fm else "F(M) = 0")
                 + f"{resel}. Picked as the largest of "
                 f"{len(c.lattice[0]) if c.lattice is not None else len(c.sets)} K, it is read against the 95% "
                 f"simultaneous bound {c.simultaneous:.3f} on how far any K's mean strays from its truth "
                 "(bootstrap of the max over K): "
                 + (f"|d| exceeds it, so removing the same {many} from the circuit and from the whole model does "
                    "not leave them equal, even allowing for the choice: the circuit is not complete."
                    if c.incomplete else
                    "|d| stays within it, so the prompts cannot tell the worst K's incompleteness from what "
                    "choosing the largest of many noisy values gives: no K shows the circuit incomplete."))
    gaps = greedy_gaps(c)
    if c.exhaustive and not gaps:
        lines.append("- Greedy K reaches the exhaustive worst |d| at every size: here the one-at-a-time search "
                     "loses nothing.")
    for g in gaps:
        terms = ", ".join(f"D[{c.name(J)}] = {v:+.3f}" for J, v in g.top_terms) or "none"
        why = {"interaction": f"the interaction terms among its members outweigh their single terms, so no one "
                              f"{one} ranks high alone and greedy, adding one {one} at a time, does not see them",
               "offset": "d(K) has the sign opposite to d(∅): its members' own terms work against the circuit's "
                         "own gap, so each alone makes |d| smaller and greedy, maximising |d| step by step, does "
                         "not start there; only together do they overshoot",
               "path": f"greedy's earlier picks, each the best {one} on its own, lead it to another set"}[g.cause]
        apart = ("the CIs of |d| are apart" if g.significant else
                 "the CIs of |d| overlap, so the prompts do not separate the two")
        cause = (f"Why greedy misses it: {why}." if g.significant else
                 "No cause is given: on these prompts greedy's K is not shown to fall short.")
        lines.append(f"- |K| = {g.k}: greedy's {c.name(g.greedy)} reaches |d| = {abs(g.greedy_value[0]):.3f}, the "
                     f"exhaustive worst {c.name(g.worst)} {abs(g.worst_value[0]):.3f} ({apart}). Of the worst K's "
                     f"d(K) − d(∅) = {g.single + g.joint:+.3f} (exact Möbius split over circuit {many}), its "
                     f"single-{one} terms give {g.single:+.3f} and the interactions among its members "
                     f"{g.joint:+.3f} (largest: {terms}). {cause}")
    for split in c.splits:
        top = split.ranked()[:3]
        se = np.std(split.outside, axis=0, ddof=1) / np.sqrt(split.outside.shape[0])
        carried = ", ".join(f"{split.outside_names[i]} {split.outside[:, i].mean():+.3f} ± {se[i]:.3f}"
                            for i in top)
        lines.append(f"- What carries d({split.name}) = {split.total.mean():+.3f}: d(∅) = {split.empty.mean():+.3f} "
                     f"is the circuit's own gap; interactions between K and one outside unit at a time give "
                     f"{split.outside.sum(1).mean():+.3f} (largest {carried}; each Δ_o = [h(K∪o) − h(K)] − "
                     f"[h(o) − h(∅)], how much ablating o matters once K is ablated); interactions between K and two "
                     f"or more outside units together give {split.joint.mean():+.3f}.")
    lines += ["", _minimality_lines(c, m), ""]
    return "\n".join(lines)


def _minimality_lines(c: Completeness, m: Minimality) -> str:
    """Minimality table and its reading."""
    one, many = UNIT_WORDS[c.unit]
    fc = float(m.circuit.mean())
    rows = [(m.names[i], c.name(m.best[i]), f"{m.share[i]:.1%} [{m.share_ci[i, 0]:.1%}, {m.share_ci[i, 1]:.1%}]",
             f"{m.at_empty[i]:.1%}", "below" if i in m.flagged else "") for i in range(len(m.names))]
    how = ("every K ⊆ C∖{v} (the completeness sweep's F(C∖K) lattice; the CI re-chooses K in every resample)"
           if m.exhaustive else f"K = ∅, C∖{{v}} and a greedy search over {m.n_candidates} candidates")
    flagged = [m.names[i] for i in m.flagged]
    sure = [m.names[i] for i in m.confidently_flagged()]
    verdict = (f"Below the {m.threshold:.0%} threshold: {', '.join(flagged)}"
               + (f" (CI wholly below for {', '.join(sure)})" if sure else " (none with its CI wholly below)")
               + f": removing {'it' if len(flagged) == 1 else 'them'} changes F(C∖K) little for every K examined, "
                 "so the circuit would be as good without."
               if flagged else f"No {one} lies below the {m.threshold:.0%} threshold: each matters for some K.")
    unsettled = [m.names[i] for i in m.unsettled()]
    if unsettled:  # above the threshold, but not at 95%
        verdict += (f" The 95% CI of {', '.join(unsettled)} reaches below {m.threshold:.0%}: the prompts do not "
                    f"settle whether {'it matters' if len(unsettled) == 1 else 'they matter'}.")
    # the best K is the largest of many noisy shares: a unit counts only when its CI (K re-chosen in every
    # resample) lies wholly above the threshold
    hidden = [m.names[i] for i in range(len(m.names)) if m.at_empty[i] < m.threshold < m.share_ci[i, 0]]
    hidden_text = (f" {', '.join(hidden)} change F(C) by less than {m.threshold:.0%} when removed from the full "
                   "circuit and pass the threshold only at their best K: their effect grows once the "
                   f"{many} in K are removed (an interaction with K, as a backup's), which removing one {one} at "
                   "a time from the full circuit misses." if hidden else "")
    return "\n".join([
        f"Minimality: for each {one} v, the K ⊆ C∖{{v}} searched over {how} for which removing v changes "
        f"F(C∖K) most, |F(C∖(K∪v)) − F(C∖K)| as a share of |F(C)| = {abs(fc):.3f} (95% bootstrap CI over "
        f"prompts), beside the share at K = ∅.",
        "",
        markdown_table(rows, (one, "best K", "share of F(C) [95% CI]", "share at K = ∅",
                              f"< {m.threshold:.0%}")),
        "",
        verdict + hidden_text,
    ])


def completeness_summary_lines(c: Completeness | None, m: Minimality | None) -> list[str]:
    """The completeness and minimality findings in one line each."""
    if c is None or m is None:
        return []
    worst = c.value(c.worst)
    gaps = greedy_gaps(c)
    apart = [g for g in gaps if g.significant]
    shortfall = (f"greedy's K has a smaller mean |d| than the exhaustive worst at |K| = "
                 f"{', '.join(str(g.k) for g in gaps)}; their CIs are apart at "
                 + (", ".join(f"{g.k} ({g.cause})" for g in apart) if apart else
                    "none, so no shortfall (and no cause) is shown") if gaps else
                 "greedy K matches the exhaustive worst at every size" if c.exhaustive else
                 "the search is greedy and random only")
    split = c.splits[0]
    top = split.outside_names[split.ranked()[0]]
    flagged = ", ".join(m.names[i] for i in m.flagged) or "none"
    unsettled = ", ".join(m.names[i] for i in m.unsettled())
    if unsettled:
        flagged += f" (95% CI reaching below it: {unsettled})"
    verdict = "beyond" if c.incomplete else "within"
    return [f"- Completeness ({c.ablation} ablation): largest |F(C∖K) − F(M∖K)| at K = {c.name(c.worst)}, d = "
            f"{_d(worst)}, {verdict} the 95% simultaneous bound {c.simultaneous:.3f} over all K; {shortfall}; the "
            f"outside unit carrying most of it is {top}. Minimality: "
            f"{c.unit}s below {m.threshold:.0%} of F(C): {flagged}."]



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


def _boot_ci(x: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap 95% CI of the mean of `x` (resamples, prompts)."""
    return mean_ci(x, n_boot, seed)[1:]


def studies_summary(studies: IOIStudies) -> list[str]:
    """One line per study section: what it found, with its uncertainty."""
    f = studies.faithfulness
    faith = "; ".join(f"{name} {f.faithfulness[a].mean():.0%} [{_boot_ci(f.faithfulness[a])[0]:.0%}, "
                      f"{_boot_ci(f.faithfulness[a])[1]:.0%}]" for a, name in enumerate(f.ablations))
    rows = {e: studies.remedy(e, "head") for e in ("noising", "denoising")}

    flagged = "; ".join(label_summary(e, label_claims_of(r)) for e, r in rows.items())
    w = studies.witnesses
    top = int(np.argmax(np.abs(w.importance)))  # the largest change, compensation or mediation
    lo, hi = w.ci()[top]
    worse = [r for r in studies.search if r.greedy_worse]
    return [
        f"- Faithfulness over {f.faithfulness.shape[1]} resamples (mean [95% CI over resamples]): {faith}.",
        *completeness_summary_lines(studies.completeness, studies.minimality),
        f"- Heads flagged by single patch against context ({studies.remedy('noising', 'head').visibility.rule}; "
        f"stated only where at least {SUPPORT:.0%} of 1000 bootstrap resamples of the prompts give the same "
        f"label or sign flip, the share in parentheses): {flagged}.",
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
    natural = [line for line in regime_reading(study.by_regime, int(max(study.by_order)))
               if line.startswith("- Natural")]
    return natural or [f"- |INT_T| against the distance of the patch: log-log {study.fit.label()} over "
                       f"{study.fit.n_points} (set, prompt, patch kind) points."]
