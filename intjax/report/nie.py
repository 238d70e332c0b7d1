"""NIE and PIE of every head in both directions, the split of joint − Σ NIE by order, and the heads whose
effect depends most on the direction."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from intjax.report.numbers import pm
from intjax.report.section import Section
from intjax.report import figures
from intjax.report.markdown import markdown_table
from intjax.studies.order_split import order_split_sentence
from intjax.bootstrap import standard_error as se
from intjax.ioi.saved import IOIAnalysis


def section(analysis: IOIAnalysis, out: Path) -> Section:
    """The NIE section, its summary line and the NIE heatmaps."""
    res, k = analysis.results, analysis.options.top
    names = res["nie_noising"].items
    n_arr, d_arr = res["nie_noising"].values, res["nie_denoising"].values
    noise, denoise, se_n, se_d = n_arr.mean(0), d_arr.mean(0), se(n_arr), se(d_arr)
    by_noise = np.argsort(noise)[:k]  # most negative: patching the head breaks the behaviour
    by_denoise = np.argsort(-denoise)[:k]  # most positive: the head restores it alone
    summary = (f"- NIE: noising hurts most at {', '.join(f'{names[i]} {pm(noise[i], se_n[i])}' for i in by_noise[:3])}; "
               f"denoising restores most at "
               f"{', '.join(f'{names[i]} {pm(denoise[i], se_d[i])}' for i in by_denoise[:3])}.")
    L, H = analysis.n_layers, analysis.n_heads
    fig = figures.nie_heatmaps(noise.reshape(L, H), denoise.reshape(L, H), out / "nie_heads.png",
                               noising_se=se_n.reshape(L, H), denoising_se=se_d.reshape(L, H))
    return Section("\n".join(_lines(analysis, by_noise, by_denoise)), (summary,), {"nie": fig})


def _tables(res, by_noise, by_denoise) -> list[str]:
    """The two tables: heads by most negative noising NIE, by most positive denoising NIE."""
    names = res["nie_noising"].items
    n_arr, d_arr = res["nie_noising"].values, res["nie_denoising"].values
    p_n, p_d = res["pie_noising"].values, res["pie_denoising"].values
    noise, denoise, pie_n, pie_d = n_arr.mean(0), d_arr.mean(0), p_n.mean(0), p_d.mean(0)
    se_n, se_d, se_pn, se_pd = se(n_arr), se(d_arr), se(p_n), se(p_d)
    gap_n_se, gap_d_se = se(n_arr - p_n), se(d_arr - p_d)
    return [
        markdown_table([(names[i], pm(noise[i], se_n[i]), pm(pie_n[i], se_pn[i]), pm(noise[i] - pie_n[i], gap_n_se[i]),
                         pm(denoise[i], se_d[i])) for i in by_noise],
                       ("head (most negative noising NIE)", "noising NIE", "noising PIE", "NIE − PIE",
                        "denoising NIE")),
        "",
        markdown_table([(names[i], pm(denoise[i], se_d[i]), pm(pie_d[i], se_pd[i]),
                         pm(denoise[i] - pie_d[i], gap_d_se[i]), pm(noise[i], se_n[i])) for i in by_denoise],
                       ("head (most positive denoising NIE)", "denoising NIE", "denoising PIE", "NIE − PIE",
                        "noising NIE")),
    ]


def _lines(analysis, by_noise, by_denoise) -> list[str]:
    """The section's lines: tables, the sum of NIEs against the joint effect, the lopsided heads."""
    res, splits = analysis.results, analysis.splits
    names = res["nie_noising"].items
    n_arr, d_arr = res["nie_noising"].values, res["nie_denoising"].values
    noise, denoise, se_n, se_d = n_arr.mean(0), d_arr.mean(0), se(n_arr), se(d_arr)
    te = float((res["metric_corrupted"].values[:, 0] - res["metric_clean"].values[:, 0]).mean())
    ratio = (np.abs(noise) + 1e-9) / (np.abs(denoise) + 1e-9)
    lopsided = [i for i in np.argsort(-np.abs(np.log(ratio)))
                if max(abs(noise[i]), abs(denoise[i])) > 0.05 * abs(te)][:5]
    joint = splits["noising"].joint
    return [
        "## NIE of every head",
        "",
        "![NIE heatmaps](nie_heads.png)",
        "",
        "PIE is the same patch with every other head pinned at its base-run value (frozen semantics): the "
        "head's effect through paths that avoid the other heads. NIE − PIE is what flows through the other "
        "heads' responses.",
        "",
        *_tables(res, by_noise, by_denoise),
        "",
        f"The single-head noising NIEs sum to {float(noise.sum()):+.3f}, against TE = {te:+.3f} for patching everything "
        + (f"(patching every head together gives {joint:+.3f}, TE itself: the heads are a "
           "complete cut here, no path avoids them). " if abs(joint - te) <= 1e-3 * abs(te) else
           f"(patching every head together gives {joint:+.3f}: the paths that avoid the heads "
           "carry the rest). ")
        + "Patching every head together, the gap between the joint "
        "effect and Σ NIE is exactly the sum of every interaction among the heads; split by order:",
        "",
        *[f"- {order_split_sentence(sp, d)}" for d, sp in splits.items()],
        "",
        "Heads whose effect depends most on the direction (|noising| vs |denoising| NIE; the two directions "
        "are different games, not related by sums of interactions under recompute semantics: see the "
        "duality rows of the theorem table):",
        "",
        markdown_table([(names[i], pm(noise[i], se_n[i]), pm(denoise[i], se_d[i])) for i in lopsided],
                       ("head", "noising NIE", "denoising NIE")),
        "",
    ]
