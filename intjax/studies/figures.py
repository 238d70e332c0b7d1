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
