"""Report section: how much of the faithfulness spread the parts explain, in both expansions.

Every sentence is computed from the numbers by these rules (`faithfulness_variance`
gives the numbers; CIs are bootstrap percentile intervals over resamples):

1. Fewer than `MIN_RESAMPLES` (8) resamples: the section is one sentence saying
   the shares are too noisy to read, with no shares, R² or CIs.
2. Per expansion, the INT share (INT = pairwise + higher) is quoted with its CI
   and "excludes 0" when the CI lies on one side of 0, else "cannot be told
   apart from 0"; the R² of F on INT alone is quoted with its CI. An INT whose
   SD is at the rounding floor is called constant instead (share 0).
3. Cancellation: stated for an expansion when some part (INT included) has an
   SD at least `CANCEL_RATIO` (1.1) times F's. Since F = part + rest,
   Var(part) > Var(F) implies Cov(part, rest) < 0 exactly: that part moves
   against the others (below 1.1 the cancellation is too small to matter). The
   sentence names the part with the largest SD(part)/SD(F) and the parts whose
   share lies outside 0–100% (by more than half a point).
4. Expansion dependence: "the split depends on the expansion point, so no
   expansion-free 'share of the variance due to interactions' exists" is stated
   when (c) both INT share CIs exclude 0, on opposite sides ("opposite
   signs"), or (a) the knock-in and knock-out INT share CIs are disjoint, or
   (b) the paired bootstrap CI of their difference (same draws) excludes 0.
   Point estimates alone never fire it: opposite-signed means whose CIs
   include 0 are "cannot be told apart". Otherwise the section says the two
   expansions cannot be told apart on these resamples.

Comparisons with 0 and between CIs allow `SHARE_TOL` (1e-9) for rounding.
"""

from __future__ import annotations

import math

from intjax.studies.faithfulness_variance import (
    EXPANSIONS, MIN_RESAMPLES, SHARE_TOL, VarianceTable, faithfulness_variance, paired_difference_ci)
from intjax.report.markdown import markdown_table

CANCEL_RATIO = 1.1  # rule 3: cancellation is stated when a part's SD exceeds F's by this factor


def _pct(x: float) -> str:
    if not math.isfinite(x):
        return "—"
    return "0%" if abs(x) < 0.005 else f"{x:+.0%}"


def _ci_pct(ci: tuple[float, float]) -> str:
    return "—" if not all(map(math.isfinite, ci)) else f"[{_pct(ci[0])}, {_pct(ci[1])}]"


def _num(x: float, fmt: str) -> str:
    return "—" if not math.isfinite(x) else format(x, fmt)


def _row(expansion: str, t: VarianceTable, part: str) -> tuple:
    r2 = "—" if not math.isfinite(t.r2[part]) else (
        f"{t.r2[part]:.2f} [{t.r2_ci[part][0]:.2f}, {t.r2_ci[part][1]:.2f}]")
    label = "INT = pairwise + higher" if part == "INT" else part
    if t.constant(part):
        return (expansion, label, "0 (constant)", "0×", "—", "—", "0%")
    return (expansion, label, f"{t.var[part]:.2e}", _num(t.sd_ratio(part), ".1f") + "×",
            _num(t.corr[part], "+.2f"), r2, f"{_pct(t.share[part])} {_ci_pct(t.share_ci[part])}")


def expansion_dependent(tin: VarianceTable, tout: VarianceTable, part: str = "INT") -> tuple[bool, str]:
    """Rule 4 of the module doc: whether the two expansions' shares of `part` differ, and which clause fired."""
    (a0, a1), (b0, b1) = tin.share_ci[part], tout.share_ci[part]
    _, d0, d1 = paired_difference_ci(tin, tout, part)
    if (a0 > SHARE_TOL and b1 < -SHARE_TOL) or (a1 < -SHARE_TOL and b0 > SHARE_TOL):
        return True, "their CIs exclude 0 on opposite sides"
    if a1 < b0 - SHARE_TOL or b1 < a0 - SHARE_TOL:
        return True, "their CIs do not overlap"
    if d0 > SHARE_TOL or d1 < -SHARE_TOL:
        return True, "the CI of their paired difference excludes 0"
    return False, ""


def _readings(tables: dict[str, VarianceTable], level: float) -> list[str]:
    tin, tout = tables["knock-in"], tables["knock-out"]
    pct = f"{level:.0%}"
    lines = []
    for name, t in tables.items():
        if t.constant("INT"):
            lines.append(f"- {name}: INT does not vary across resamples beyond rounding: its share is 0.")
        else:
            lines.append(f"- {name}: the INT share is {_pct(t.share['INT'])}; {t.verdict('INT')}. INT alone gives "
                         f"R² {t.r2['INT']:.2f} [{t.r2_ci['INT'][0]:.2f}, {t.r2_ci['INT'][1]:.2f}].")
        worst = max(t.parts, key=lambda p: round(t.sd_ratio(p), 6))  # ties: a base part before INT
        if t.sd[worst] > CANCEL_RATIO * t.sd_total:
            outside = [p for p in t.parts if not -0.005 <= t.share[p] <= 1.005]
            why = (" Shares outside 0–100% come only from such cancellation (here " + ", ".join(
                f"{p} {_pct(t.share[p])}" for p in outside) + "), not from explaining more than all (or less "
                "than none) of the variance." if outside else "")
            lines.append(f"- {name}: the parts cancel — {worst} varies {t.sd_ratio(worst):.2f}× as much as F, so "
                         f"it moves against the other parts (its covariance with their sum is negative).{why}")
    d, d0, d1 = paired_difference_ci(tin, tout, "INT")
    depends, why = expansion_dependent(tin, tout)
    head = (f"- Knock-in and knock-out expansions give INT shares of {_pct(tin.share['INT'])} and "
            f"{_pct(tout.share['INT'])} (paired difference {_pct(d)}, {pct} CI {_ci_pct((d0, d1))})")
    if depends:
        lines.append(head + f"; {why}: the split depends on the expansion point, so no expansion-free "
                            "'share of the variance due to interactions' exists.")
    else:
        lines.append(head + ": on these resamples the two expansions cannot be told apart.")
    return lines


def _cov_lines(tables: dict[str, VarianceTable], ablation: str) -> list[str]:
    lines = [f"Covariance of the parts ({ablation} ablation), in units of Var(F); each row sums to that part's "
             "share, the whole matrix to 100%. Large entries of opposite sign are the cancellation.", ""]
    for name, t in tables.items():
        if not t.sd_total > 0:
            continue
        m = t.cov_matrix / t.var_total
        rows = [(p, *(f"{v:+.2f}" for v in m[i]), _pct(m[i].sum())) for i, p in enumerate(t.base)]
        lines += [f"{name}:", "", markdown_table(rows, ("part", *t.base, "row sum = share")), ""]
    return lines


def variance_section(study, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> str:
    """Markdown: per ablation, each part's Var, corr with F, R² alone and share (CIs), in both expansions."""
    R = study.faithfulness.shape[1]
    lines = ["## How much of the faithfulness spread do interactions explain?", ""]
    if R < MIN_RESAMPLES:
        return "\n".join(lines + [
            f"With {R} resamples (fewer than {MIN_RESAMPLES}) the variance shares are too noisy to read, so none "
            "are given; rerun with 20 or more resamples.", ""])
    pct = f"{level:.0%}"
    lines += [
        f"Across the {R} resamples, F = F(C)/F(M) = ablated + main + pairwise + higher exactly, in two exact "
        "expansions. Knock-in builds the circuit up from the fully ablated model: a class's main effect is what "
        "it adds alone, INT what classes add only together. Knock-out takes it apart from the full circuit: a "
        "class's main effect is what the circuit loses when that class alone is removed, INT what removing "
        "classes together costs beyond the sum of removing each. Both share the ablated part g(∅) and the sum "
        "main + INT = g(all) − g(∅), and divide that sum differently.",
        "",
        "Columns: Var of the part across resamples and its SD relative to F's; corr with F; R² alone = corr², "
        "the fraction of Var(F) a regression of F on that part alone explains; share = Cov(part, F)/Var(F). The "
        "shares of ablated, main, pairwise and higher sum to exactly 100%, but a share is not an R²: share = "
        "corr × SD(part)/SD(F), so parts that vary more than F and cancel get shares above 100% or below 0 "
        f"with little R². Brackets: {pct} bootstrap percentile CIs ({n_boot} draws of the resamples with "
        "replacement; the same draws for both expansions).",
        "",
    ]
    first = None
    for ablation in study.ablations:
        tables = faithfulness_variance(study, ablation, n_boot=n_boot, seed=seed, level=level)
        first = first or (ablation, tables)
        t0 = tables["knock-in"]
        lines += [f"### {ablation} ablation", ""]
        if not t0.sd_total > 0:
            lines += ["F does not vary across these resamples: there is no variance to split.", ""]
            continue
        rows = [_row(name, t, p) for name in EXPANSIONS for t in [tables[name]]
                for p in t.parts if not (name == "knock-out" and p == "ablated")]
        lines += [f"Var(F) = {t0.var_total:.2e} (SD {t0.sd_total:.1%} of F(M)); the ablated part is the same in "
                  "both expansions and is listed once.", "",
                  markdown_table(rows, ("expansion", "part", "Var", "SD ÷ SD(F)", "corr with F",
                                        f"R² alone [{pct} CI]", f"share [{pct} CI]")),
                  "", *_readings(tables, level), ""]
    if first is not None and first[1]["knock-in"].sd_total > 0:
        lines += _cov_lines(first[1], first[0])
    return "\n".join(lines)
