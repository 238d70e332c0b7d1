"""Circuit faithfulness over resamples and ablations, its exact split into main effects and interactions of
the circuit's classes, and what the parts say about its spread."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from intjax.report.faithfulness_variance import variance_section
from intjax.report.section import Section
from intjax.report import figures
from intjax.report.markdown import markdown_table
from intjax.bootstrap import mean_ci, standard_error
from intjax.ioi.saved import IOIAnalysis

WANG_2022 = "a mean logit difference near 3.5 and a circuit faithfulness near 87% (Wang et al. 2022, mean ablation)"


def _boot_ci(x: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap 95% CI of the mean of `x` (resamples, prompts)."""
    return mean_ci(x, n_boot, seed)[1:]


def faithfulness_markdown(studies, gpt2_small: bool) -> str:
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


def summary_line(studies) -> str:
    """Faithfulness per ablation with its 95% CI over resamples."""
    f = studies.faithfulness
    faith = "; ".join(f"{name} {f.faithfulness[a].mean():.0%} [{_boot_ci(f.faithfulness[a])[0]:.0%}, "
                      f"{_boot_ci(f.faithfulness[a])[1]:.0%}]" for a, name in enumerate(f.ablations))
    return f"- Faithfulness over {f.faithfulness.shape[1]} resamples (mean [95% CI over resamples]): {faith}."


def section(analysis: IOIAnalysis, out: Path) -> Section:
    """The faithfulness section, its summary line and the strips of faithfulness per resample."""
    f = analysis.studies.faithfulness
    fig = figures.faithfulness_strips(f.faithfulness, f.ablations, f.parts, out / "faithfulness.png")
    return Section(faithfulness_markdown(analysis.studies, analysis.gpt2_small), (summary_line(analysis.studies),),
                   {"faithfulness": fig})
