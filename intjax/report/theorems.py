"""The theorem table in words: its rows (check, value, tolerance, verdict, meaning) for the command
line and the report, and the report's theorem section. The numbers come from
`intjax.estimands.theorems.theorem_table`; only their wording lives here."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from intjax.estimands.theorems import INTEGRAL_RESOLUTION, INTEGRAL_Z, SLOPE_TOLERANCE, integral_verdict
from intjax.ioi.saved import IOIAnalysis
from intjax.report.section import Section
from intjax.runs.theorems import TheoremTable
from intjax.report.markdown import markdown_table


def theorem_rows(table: TheoremTable) -> list[dict]:
    """The table as rows {check, value, tolerance, verdict, meaning}, for the CLI and reports.

    verdict is "pass", "fail", "inconclusive" where the check's own error bar is too
    wide to tell (the integral identity), or "measured" where nothing is claimed
    (the duality outside a frozen complete cut).
    """
    float64 = table.dtype == "float64"
    scale = table.effect_scale
    tol = (1e-9 if float64 else 1e-4) * scale

    def row(check, value, tolerance, ok, meaning):
        verdict = "measured" if ok is None else ok if isinstance(ok, str) else ("pass" if ok else "fail")
        return dict(check=check, value=value, tolerance=tolerance, verdict=verdict, meaning=meaning)

    rows = [
        row("Möbius identity", f"{table.identity_max_residual:.2e}", f"{tol:.0e}",
            table.identity_max_residual <= tol,
            "f(1_S) − f(0) from fresh runs of the differentiable path = Σ INT_T from the chunked sweep"),
        row("context identity", f"{table.context_identity_max_residual:.2e}", f"{tol:.0e}",
            table.context_identity_max_residual <= tol,
            "Δ_i(C) from fresh runs = Σ INT_T over i ∈ T ⊆ C∪i from the sweep"),
        row("integral identity", f"max {table.integral_max_z:.1f} SE (error bar ±{table.integral_resolution:.1%})",
            f"≤ {INTEGRAL_Z} SE, bar ≤ {INTEGRAL_RESOLUTION:.0%}", integral_verdict(table.as_dict()),
            f"∫ D_T over the face by {table.integral_points['scramblings']} scramblings of "
            f"{_sobol_points(table.integral_points)} Sobol points (D_T by nested JVPs in "
            f"{table.derivative_dtype or table.dtype}) vs the exact INT_T from patched runs, in "
            "standard errors of the estimate; the bar is 3 SE as a share of the effect scale. Fails only "
            "when the two differ beyond their error bar; inconclusive when the bar is too wide to tell"),
    ]
    bound = table.bound_by_set
    if bound:
        held = sum(r["int_le_sampled_sup"] for r in bound)
        converged = sum(r["converged"] for r in bound)
        rows.append(row("local-affine bound", f"{held}/{len(bound)} sets (orders ≤ "
                        f"{max(r['order'] for r in bound)})", "|INT| ≤ sampled sup", held == len(bound),
                        f"|INT_T| against the sup of |D_T| over the face, sampled on nested grids refined until it "
                        f"grew < 1% ({converged}/{len(bound)} converged, {table.bound_points} points): a lower "
                        f"estimate of the true sup, so evidence, not proof; median looseness sup/|INT| "
                        f"{table.bound_looseness_median:.1f}"))
        a = table.affinity_vs_interaction
        rows.append(row("affinity vs INT", f"ρ = {a['spearman']:+.2f} (n = {a['n_pairs']})", "—", None,
                        f"Spearman rank correlation over {a['n_pairs']} (set, prompt) pairs between how far f is "
                        "from affine on the face (relative error of its best affine fit) and |INT_T| / range of f "
                        "there. An algebraic tie, not a test: for any affine a, |INT_T| ≤ 2^|T| max|f − a| on the "
                        "face, so the two measures rise together whatever the model does; the local-affine claim "
                        "is tested on the t-scaled family (the claims table)"))
    by_set = table.slopes_by_set
    for semantics, key in (("frozen", "predicted_frozen"), ("recompute", "predicted_recompute")):
        pairs = [(r[semantics], r[key]) for r in by_set if key in r and np.isfinite(r[semantics])]
        unmeasured = sum(1 for r in by_set if key in r and not np.isfinite(r[semantics]))
        if pairs:
            ok = sum(abs(m - p) <= SLOPE_TOLERANCE for m, p in pairs)
            below = f" ({unmeasured} below the rounding floor)" if unmeasured else ""
            rows.append(row(f"scaling slope ({semantics})", f"{ok}/{len(pairs)} sets{below}", f"±{SLOPE_TOLERANCE}",
                            ok == len(pairs),
                            "log-log slope of |INT_T(t)| as sources move toward the base, against "
                            + ("|T|" if semantics == "frozen" else
                               "the fewest chains of members (each reading every earlier one) covering T: a "
                               "conjecture (the rule is argued as an upper bound on the order, not proven), "
                               "exercised here only where it predicts "
                               + ", ".join(str(v) for v in sorted({int(p) for _, p in pairs})))))
    duality = table.duality
    if "skipped" in duality:
        rows.append(row("duality", "skipped", "—", None, duality["skipped"]))
    for semantics in ("frozen", "recompute"):
        d = duality.get(semantics)
        if d is None:
            continue
        claimed = semantics == "frozen" and d["complete_cut"]
        cut = f"{len(duality['cut'])} components"
        meaning = (f"NIE^reverse_i = −Σ_{{T∋i}} INT_T over a complete cut ({cut}) under frozen semantics"
                   if claimed else
                   f"gap between NIE^reverse_i and −Σ_{{T∋i}} INT_T ({cut}); not an identity "
                   + ("under recompute semantics" if semantics == "recompute" else
                      f"here: the components are not a complete cut (patching all of them misses the other "
                      f"run's metric by {d['cut_residual']:.2e})"))
        rows.append(row(f"duality ({semantics})", f"{d['max_rel_residual']:.2e} rel",
                        f"{d['tolerance']:.0e} rel" if claimed else "—", d["holds"] if claimed else None, meaning))
    return rows


def format_theorem_rows(rows: list[dict]) -> str:
    """The rows as aligned text."""
    width = [max(len(r[k]) for r in rows) for k in ("check", "value", "tolerance", "verdict")]
    return "\n".join(f"{r['check']:<{width[0]}}  {r['value']:<{width[1]}}  {r['tolerance']:<{width[2]}}  "
                     f"{r['verdict']:<{width[3]}}  {r['meaning']}" for r in rows)


def _table(theorems: TheoremTable | None) -> list[str]:
    """The rows as a markdown table, and the scaling slope of every checked set."""
    if theorems is None:
        return ["Skipped (`--theorem-heads 0`); `intjax theorems` runs it on its own.", ""]
    rows = [(r["check"], r["value"], r["tolerance"], r["verdict"], r["meaning"]) for r in theorem_rows(theorems)]
    slopes = [(", ".join(r["set"]), f"{r['frozen']:.2f}", str(r["predicted_frozen"]), f"{r['recompute']:.2f}",
               str(r.get("predicted_recompute", "—")), " → ".join(r.get("chain", [])) or "—")
              for r in theorems.slopes_by_set]
    return [markdown_table(rows, ("check", "value", "tolerance", "verdict", "what it compares")), "",
            f"Checked on {len(theorems.checked_sets)} sets ({', '.join(theorems.checked_sets[:3])}, …), "
            f"{theorems.n_components} heads, float64 (mixed partials for the face integral and the sampled sup in "
            f"{theorems.derivative_dtype or 'float64'}). Distance-scaling slope per set (frozen: every analysed "
            "head pinned; recompute: a patched member blocks the paths of the members it reads, one order of t "
            "per chain of members):", "",
            markdown_table(slopes, ("set", "frozen", "predicted", "recompute", "predicted", "longest chain")), ""]


def _reading(theorems: TheoremTable | None) -> list[str]:
    """Summary lines: how many checks pass, and what the duality rows say."""
    if theorems is None:
        return []
    rows = {r["check"]: r for r in theorem_rows(theorems)}
    failed = [name for name, r in rows.items() if r["verdict"] == "fail"]
    unsure = [name for name, r in rows.items() if r["verdict"] == "inconclusive"]
    frozen_dual = rows.get("duality (frozen)")
    recompute_dual = rows.get("duality (recompute)")
    lines = [f"- Theorem table: {sum(r['verdict'] == 'pass' for r in rows.values())} checks pass"
             + (f", {len(failed)} fail ({', '.join(failed)})" if failed else ", none fails")
             + (f"; {len(unsure)} inconclusive ({', '.join(unsure)}: the check's error bar is too wide to "
                "tell)." if unsure else ".")]
    gap = theorems.duality.get("recompute", {}).get("max_rel_residual", 0.0)
    if frozen_dual is not None and recompute_dual is not None and gap > 1e-2:
        lines.append(f"- Noising and denoising NIE are related through interactions only under frozen semantics "
                     f"over a complete cut (here: {frozen_dual['verdict']}, residual {frozen_dual['value']}); "
                     f"under recompute semantics denoising NIE and −Σ_{{T∋i}} INT_T (noising) differ by up to "
                     f"{recompute_dual['value']} of the effect scale, so neither direction's NIE can be read "
                     "off the other's.")
    return lines


def section(analysis: IOIAnalysis, out: Path) -> Section:
    """The theorem table section (float64) and its summary lines; no figures."""
    return Section("\n".join(["## Theorem table (float64)", "", *_table(analysis.theorems)]),
                   tuple(_reading(analysis.theorems)))


def _sobol_points(points: dict) -> str:
    """The Sobol points per face the integral used: "16", or "16 or 64" where some faces needed more."""
    used = sorted(set(points.get("by_face") or [points["points"]]))
    return " or ".join(str(p) for p in used)
