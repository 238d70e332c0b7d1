"""Completeness and minimality (Wang et al.): F(C∖K) against F(M∖K) over greedy, random and exhaustive K,
why greedy misses the worst K, which outside units carry it, and each unit's minimality."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from intjax.ioi.completeness import Completeness, Minimality, greedy_gaps
from intjax.report.section import Section
from intjax.report import figures
from intjax.report.markdown import markdown_table
from intjax.bootstrap import standard_error
from intjax.ioi.saved import IOIAnalysis

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


def completeness_markdown(c: Completeness, m: Minimality) -> str:
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


def section(analysis: IOIAnalysis, out: Path) -> Section:
    """The completeness and minimality section, its summary line and the scatter ("" when they were skipped)."""
    c, m = analysis.studies.completeness, analysis.studies.minimality
    if c is None or m is None:
        return Section()
    fig = figures._save(build_completeness_scatter(c), out / "completeness.png")
    return Section(completeness_markdown(c, m), tuple(completeness_summary_lines(c, m)), {"completeness": fig})
