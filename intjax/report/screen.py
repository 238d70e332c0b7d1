"""The Hessian screen of the pairs (H_ij at the base run, `int2_hessian_*`) next to their exact pairwise INT
(`int2_*`, the same heads): both top-k lists, recall@k, the exact top-k pairs the screen misses, and the
Spearman correlation of the mean values over pairs with a bootstrap CI over prompts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from jaxtyping import Float, Int

from intjax.bootstrap import draws, percentile_ci
from intjax.estimands.screen import recall_at, spearman, strongest
from intjax.ioi.saved import IOIAnalysis
from intjax.report.markdown import markdown_table
from intjax.report.section import Section

TOP = 10  # the pairs compared: recall@TOP
N_BOOT = 1000


def missed(screen: Float[np.ndarray, "P K"], exact: Float[np.ndarray, "P K"], k: int) -> Int[np.ndarray, " m"]:
    """The exact k strongest items (by |mean|) that are not among the screen's k strongest, strongest first."""
    picked = set(strongest(screen, k).tolist())
    return np.array([i for i in strongest(exact, k) if i not in picked], int)


def spearman_ci(screen: Float[np.ndarray, "P K"], exact: Float[np.ndarray, "P K"], n_boot: int = N_BOOT,
                seed: int = 0) -> tuple[float, float, float]:
    """Spearman correlation of the screen's and the exact means over items, and its 95% percentile
    bootstrap interval over prompts (the same prompts resampled for both)."""
    screen, exact = np.asarray(screen, np.float64), np.asarray(exact, np.float64)
    point = spearman(screen.mean(0), exact.mean(0))
    rows = draws(screen.shape[0], n_boot, seed)
    samples = np.array([spearman(screen[r].mean(0), exact[r].mean(0)) for r in rows])
    lo, hi = percentile_ci(samples[np.isfinite(samples)]) if np.isfinite(samples).any() else (np.nan, np.nan)
    return point, float(lo), float(hi)


def _table(items, screen: np.ndarray, exact: np.ndarray, k: int) -> str:
    """Rank, the exact top k (exact mean), the screen's top k (its mean, and that pair's exact mean)."""
    s, e = screen.mean(0), exact.mean(0)
    top_e, top_s = strongest(exact, k), strongest(screen, k)
    rows = [(r + 1, items[i], f"{e[i]:+.3f}", items[j], f"{s[j]:+.3f}", f"{e[j]:+.3f}")
            for r, (i, j) in enumerate(zip(top_e, top_s))]
    return markdown_table(rows, ("rank", "exact: pair", "INT", "screen: pair", "H_ij", "its exact INT"))


def section(analysis: IOIAnalysis, out: Path) -> Section:
    """Per direction: the two top-k lists, recall@k, the missed pairs, Spearman with its CI; a summary line."""
    res = analysis.results
    if "int2_hessian_noising" not in res:  # an analysis saved before the screen was part of it
        return Section()
    n_pairs = len(res["int2_noising"].items)
    k = min(TOP, n_pairs)
    lines = ["## Hessian screen of the pairs against their exact INT", "",
             f"Every pair among the {len(analysis.pair_pool)} heads of the pairwise interactions ({n_pairs} pairs), "
             "screened by the mixed partial H_ij = ∂²f/∂α_i∂α_j at the base run (`intjax patch --order 2 "
             "--estimate hessian`, DESIGN.md §2), next to the exact INT of the same pairs. Pairs are ranked by "
             "|mean over prompts|. The screen ranks; only exact values are measurements.", ""]
    summary = []
    for d in ("noising", "denoising"):
        exact, screen = res[f"int2_{d}"], res[f"int2_hessian_{d}"]
        assert exact.items == screen.items, "the screen and the exact sweep list different pairs"
        recall = recall_at(screen.values, exact.values, k)
        lost = [exact.items[i] for i in missed(screen.values, exact.values, k)]
        rho, lo, hi = spearman_ci(screen.values, exact.values)
        lines += [f"**{d}**: recall@{k} {recall:.0%} (the screen's {k} strongest pairs hold {round(recall * k)} of "
                  f"the exact {k} strongest); missed: {'; '.join(lost) or '—'}. Spearman correlation of the mean "
                  f"values over all {n_pairs} pairs {rho:.2f} (95% bootstrap CI over prompts [{lo:.2f}, {hi:.2f}]).",
                  "", _table(exact.items, screen.values, exact.values, k), ""]
        summary.append(f"{d} recall@{k} {recall:.0%}, Spearman {rho:.2f} [{lo:.2f}, {hi:.2f}]")
    return Section("\n".join(lines), (f"- Hessian screen of the {n_pairs} pairs against exact INT: "
                                      + "; ".join(summary) + ".",))
