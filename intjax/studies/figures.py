"""Figures of the IOI report (matplotlib, Agg backend: no screen needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def nie_heatmaps(noising: np.ndarray, denoising: np.ndarray, path: Path) -> Path:
    """Mean NIE per head (layers × heads) under noising and denoising, side by side."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    lim = float(max(np.abs(noising).max(), np.abs(denoising).max(), 1e-9))
    for ax, grid, title in zip(axes, (noising, denoising),
                               ("noising: clean base, corrupted source", "denoising: corrupted base, clean source")):
        im = ax.imshow(grid, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
        ax.set(title=title, xlabel="head", ylabel="layer", xticks=range(grid.shape[1]), yticks=range(grid.shape[0]))
    fig.colorbar(im, ax=axes, label="mean NIE on logit(IO) − logit(S)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def interaction_bars(names: Sequence[str], values: np.ndarray, path: Path, title: str) -> Path:
    """Horizontal bars of the strongest interactions, coloured by sign."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(names) + 1.2), constrained_layout=True)
    y = np.arange(len(names))[::-1]
    ax.barh(y, values, color=["tab:red" if v < 0 else "tab:blue" for v in values])
    ax.set(yticks=y, yticklabels=names, xlabel="mean INT (logit diff)", title=title)
    ax.axvline(0, color="k", lw=0.8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def linear_vs_exact(exact: np.ndarray, linear: np.ndarray, path: Path) -> Path:
    """Scatter of the linear (attribution) estimate against the exact NIE, one point per head."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 4.5), constrained_layout=True)
    ax.scatter(exact, linear, s=14)
    lim = float(max(np.abs(exact).max(), np.abs(linear).max(), 1e-9)) * 1.1
    ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="exact NIE (noising)", ylabel="linear estimate",
           title="attribution vs patching, per head")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def faithfulness_strips(faithfulness: np.ndarray, ablations: Sequence[str], parts: dict, path: Path) -> Path:
    """Left: faithfulness per resample for each ablation. Right: the mean decomposition into parts."""
    plt = _plt()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    rng = np.random.default_rng(0)
    for a, name in enumerate(ablations):
        ax.scatter(a + rng.uniform(-0.12, 0.12, faithfulness.shape[1]), faithfulness[a], s=14)
    ax.set(xticks=range(len(ablations)), xticklabels=ablations, ylabel="faithfulness F(C)/F(M)",
           title=f"faithfulness over {faithfulness.shape[1]} resamples")
    ax.axhline(1, color="k", lw=0.8, ls="--")
    bottom_pos, bottom_neg = np.zeros(len(ablations)), np.zeros(len(ablations))
    for name, values in parts.items():
        v = values.mean(axis=1)
        bottom = np.where(v >= 0, bottom_pos, bottom_neg)
        bx.bar(range(len(ablations)), v, bottom=bottom, label=name)
        bottom_pos, bottom_neg = bottom_pos + np.maximum(v, 0), bottom_neg + np.minimum(v, 0)
    bx.scatter(range(len(ablations)), faithfulness.mean(axis=1), color="k", zorder=3, label="faithfulness")
    bx.axhline(0, color="k", lw=0.8)
    bx.set(xticks=range(len(ablations)), xticklabels=ablations, ylabel="share of F(M)",
           title="F(C) = ablated + main + pairwise + higher")
    bx.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def search_curves(ks: Sequence[int], top: Sequence[float], best: Sequence[float], path: Path) -> Path:
    """Joint effect of the top-k by |NIE| and of the best k-set, against the budget k."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 4), constrained_layout=True)
    ax.plot(ks, best, "o-", label="best k-set (combinatorial)")
    ax.plot(ks, top, "s--", label="top-k by |NIE| (greedy)")
    ax.set(xlabel="budget k", ylabel="mean joint effect", title="greedy vs combinatorial search")
    ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def visibility_scatter(nie: np.ndarray, context: np.ndarray, labels: Sequence[str], names: Sequence[str],
                       path: Path, title: str) -> Path:
    """Context effect against NIE per component; flagged ones labelled by name."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5), constrained_layout=True)
    colors = {"invisible": "tab:red", "inflated": "tab:orange", "flipped": "tab:purple", "": "tab:gray"}
    for lab, color in colors.items():
        idx = [i for i, x in enumerate(labels) if x == lab]
        ax.scatter(nie[idx], context[idx], s=16, color=color, label=lab or "unflagged")
    for i, lab in enumerate(labels):
        if lab:
            ax.annotate(names[i], (nie[i], context[i]), fontsize=7)
    lim = float(max(np.abs(nie).max(), np.abs(context).max(), 1e-9)) * 1.1
    ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
    for scale in (ax.set_xscale, ax.set_yscale):  # linear near zero, logarithmic beyond: small heads stay visible
        scale("symlog", linthresh=lim / 100)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="NIE (alone), symlog", ylabel="context effect, symlog",
           title=title)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
