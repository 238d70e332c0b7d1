"""Figures of the IOI report (matplotlib, Agg backend: no screen needed).

Each figure has a `build_*` function that returns the `matplotlib.figure.Figure`
(tests inspect its Axes, texts, legends and containers) and a wrapper of the old
name that builds it, writes the PNG and returns the path. The figures are made
with `matplotlib.figure.Figure` directly, not through pyplot: nothing is left
open in pyplot's global state and no GUI backend is touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

DPI = 110
Z95 = 1.959963984540054

# Left panel of the faithfulness figure: one colour per ablation (ColorBrewer Dark2 without its grey).
ABLATION_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d")
ABLATION_MARKERS = ("o", "s", "^")  # after 7 ablations the colours repeat with the next marker
# Right panel: one colour per part of F(C), hues absent from ABLATION_COLORS. The two INT parts
# (pairwise, higher) are two shades of one red; the ablated part is a light grey.
PART_COLORS = {"ablated": "#bdbdbd", "main": "#3182bd", "pairwise": "#cb181d", "higher": "#fc9272"}
EXTRA_PART_COLORS = ("#17becf", "#08306b", "#67000d", "#525252")  # parts with other names
MEAN_COLOR = "black"  # the mean faithfulness, the same meaning in both panels
REFERENCE = dict(color="0.35", lw=0.8, ls=":")  # reference lines (F = 1, 0): no legend entry, no data colour
# Interaction bars: one colour per direction.
DIRECTION_COLORS = {"noising": "tab:blue", "denoising": "tab:orange"}
SIGN_NOTE = "negative noising NIE / positive denoising NIE: the head supports the behaviour"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure(figsize: tuple[float, float]):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    return Path(path)


def _ci_interval(ci: np.ndarray | None, n: int, what: str) -> np.ndarray | None:
    if ci is None:
        return None
    ci = np.asarray(ci, dtype=np.float64)
    if ci.shape != (n, 2):
        raise ValueError(f"{what} must have shape ({n}, 2) (lower, upper), got {ci.shape}")
    return ci


# --------------------------------------------------------------------------- NIE heatmaps

def nie_linthresh(grid: np.ndarray) -> float:
    """The SymLogNorm's linear threshold for a heatmap: 5% of the largest |value|.

    Below it the colour scale is linear, above it logarithmic. A GPT-2 NIE grid
    is dominated by a few heads (name movers) an order of magnitude above the
    rest; on a linear scale every other cell is white. With the threshold at 5%
    of the maximum the logarithmic part spans the top log10(20) ≈ 1.3 decades,
    where the heads that matter lie, and the linear part (given one decade's
    width of colour, `linscale=1`) still shades a head at 5% of the maximum to
    ~45% of full saturation; heads below it — within noise of zero — fade
    linearly to white, so the sign of a small value is never exaggerated.
    """
    return max(0.05 * float(np.nanmax(np.abs(grid))) if np.size(grid) else 0.0, 1e-12)


def _decimals(grid: np.ndarray) -> int:
    """Decimals that give the largest |value| three significant digits (between 1 and 6)."""
    top = float(np.nanmax(np.abs(grid))) if np.size(grid) else 0.0
    if not np.isfinite(top) or top == 0:
        return 2
    return int(np.clip(2 - np.floor(np.log10(top)), 1, 6))


def cell_text(value: float, decimals: int) -> str:
    """A heatmap cell's printed value ('-0.00' written '0.00')."""
    s = f"{value:.{decimals}f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s


def _heatmap_panel(fig, ax, grid: np.ndarray, se: np.ndarray | None, title: str, label: str) -> None:
    from matplotlib.colors import SymLogNorm
    from matplotlib.ticker import FuncFormatter, NullLocator

    lim = max(float(np.nanmax(np.abs(grid))), 1e-12)
    norm = SymLogNorm(linthresh=nie_linthresh(grid), linscale=1.0, vmin=-lim, vmax=lim, base=10)
    im = ax.imshow(grid, cmap="RdBu", norm=norm, aspect="auto", interpolation="nearest")
    L, H = grid.shape
    ax.set(title=title, xlabel="head", ylabel="layer", xticks=range(H), yticks=range(L))
    ax.tick_params(length=0, labelsize=8)
    dec = _decimals(grid)
    small = 6 if H <= 16 else 5
    for l in range(L):
        for h in range(H):
            v = float(grid[l, h])
            dark = abs(float(norm(v)) - 0.5) > 0.3  # a saturated cell: white text
            color = "white" if dark else "black"
            dy = -0.16 if se is not None else 0.0
            ax.text(h, l + dy, cell_text(v, dec), ha="center", va="center", fontsize=small + 1, color=color,
                    gid="value")
            if se is not None:
                ax.text(h, l + 0.24, "±" + cell_text(float(se[l, h]), dec), ha="center", va="center",
                        fontsize=small - 1, color=color, gid="se")
    cb = fig.colorbar(im, ax=ax, shrink=0.9)
    cb.set_ticks(_symlog_ticks(norm.linthresh, lim))
    cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    cb.ax.yaxis.set_minor_locator(NullLocator())
    cb.set_label(label)


def _symlog_ticks(linthresh: float, lim: float) -> list[float]:
    """0, ± every power of ten in [linthresh, lim] and ± lim (two significant digits, rounded down)
    unless a power of ten lies within a factor 2 of it."""
    lo, hi = int(np.ceil(np.log10(linthresh))), int(np.floor(np.log10(lim)))
    mags = [10.0 ** k for k in range(lo, hi + 1)]
    scale = 10.0 ** (np.floor(np.log10(lim)) - 1)
    top = float(np.floor(lim / scale) * scale)
    if not mags or top >= 2 * mags[-1]:
        mags.append(top)
    return sorted([-m for m in mags] + [0.0] + mags)


def build_nie_heatmaps(noising: np.ndarray, denoising: np.ndarray, *, noising_se: np.ndarray | None = None,
                       denoising_se: np.ndarray | None = None):
    """Figure of the mean NIE per head (layers × heads) under noising and denoising, side by side.

    Each panel: diverging RdBu map centred at 0 on a symmetric-log scale
    (`nie_linthresh`), its own colour bar, the value in every cell and, when
    given, its standard error below it.
    """
    noising, denoising = np.asarray(noising, np.float64), np.asarray(denoising, np.float64)
    if noising.ndim != 2 or noising.shape != denoising.shape:
        raise ValueError(f"noising and denoising must be [layers, heads] grids of one shape, "
                         f"got {noising.shape} and {denoising.shape}")
    ses = []
    for se, name in ((noising_se, "noising_se"), (denoising_se, "denoising_se")):
        if se is not None:
            se = np.asarray(se, np.float64)
            if se.shape != noising.shape:
                raise ValueError(f"{name} must have shape {noising.shape}, got {se.shape}")
        ses.append(se)
    L, H = noising.shape
    with_se = any(se is not None for se in ses)
    cell_w, cell_h = 0.55, (0.48 if with_se else 0.36)
    fig = _figure((max(2 * (H * cell_w + 1.6), 8.0), L * cell_h + 1.9))
    axes = fig.subplots(1, 2)
    panels = (("noising: clean base, corrupted source", "NIE (noising)"),
              ("denoising: corrupted base, clean source", "NIE (denoising)"))
    for ax, grid, se, (title, label) in zip(axes, (noising, denoising), ses, panels):
        _heatmap_panel(fig, ax, grid, se, title, label)
    se_note = ", ± standard error" if with_se else ""
    fig.suptitle(f"Mean NIE per head on logit(IO) − logit(S){se_note}, symlog colour scale\n{SIGN_NOTE}",
                 fontsize=10)
    return fig


def nie_heatmaps(noising: np.ndarray, denoising: np.ndarray, path: Path, *, noising_se: np.ndarray | None = None,
                 denoising_se: np.ndarray | None = None) -> Path:
    """`build_nie_heatmaps` written to `path` (PNG)."""
    return _save(build_nie_heatmaps(noising, denoising, noising_se=noising_se, denoising_se=denoising_se), path)


# --------------------------------------------------------------------------- interaction bars

def build_interaction_bars(names: Sequence[str], noising: np.ndarray, denoising: np.ndarray | None, title: str,
                           *, noising_ci: np.ndarray | None = None, denoising_ci: np.ndarray | None = None):
    """Grouped horizontal bars: per set, its mean INT under noising and under denoising side by side.

    Colour is the direction (legend), the sign is the side of the zero line;
    whiskers are the 95% CIs (`[K, 2]`: lower, upper) when given. The first
    name is drawn at the top. `denoising=None` draws the noising bars alone.
    """
    K = len(names)
    series = [("noising", noising, noising_ci)]
    if denoising is not None:
        series.append(("denoising", denoising, denoising_ci))
    elif denoising_ci is not None:
        raise ValueError("denoising_ci given without denoising values")
    fig = _figure((7.5, 0.42 * K * len(series) + 1.6))
    ax = fig.subplots()
    y = np.arange(K)[::-1].astype(np.float64)
    height = 0.8 / len(series)
    for j, (direction, values, ci) in enumerate(series):
        values = np.asarray(values, np.float64)
        if values.shape != (K,):
            raise ValueError(f"{direction} must have shape ({K},), got {values.shape}")
        ci = _ci_interval(ci, K, f"{direction}_ci")
        yj = y + (len(series) - 1) / 2 * height - j * height  # noising above denoising within a set
        ax.barh(yj, values, height=height, color=DIRECTION_COLORS[direction], label=direction)
        if ci is not None:  # drawn about the CI's midpoint: exact even when the interval excludes the mean
            lo, hi = ci.min(axis=1), ci.max(axis=1)
            ax.errorbar((lo + hi) / 2, yj, xerr=(hi - lo) / 2, fmt="none", ecolor="0.15", elinewidth=1,
                        capsize=2.5, label=f"_{direction} 95% CI")
    ax.axvline(0, color="k", lw=0.8)
    any_ci = noising_ci is not None or denoising_ci is not None
    ax.set(yticks=y, yticklabels=list(names), ylim=(-0.6, K - 0.4),
           xlabel="mean INT (logit diff)" + (", whiskers: 95% CI" if any_ci else ""), title=title)
    ax.legend(title="direction", fontsize=8, title_fontsize=8, loc="best")
    return fig


def interaction_bars(names: Sequence[str], noising: np.ndarray, denoising, path=None, title: str = "", *,
                     noising_ci: np.ndarray | None = None, denoising_ci: np.ndarray | None = None) -> Path:
    """`build_interaction_bars` written to `path` (PNG).

    The old call `interaction_bars(names, values, path, title)` (noising only)
    still works: a path or string in the third place is taken as the path.
    """
    if isinstance(denoising, (str, Path)):  # old signature: (names, values, path, title)
        denoising, path, title = None, denoising, (path if path is not None else title)
    if path is None:
        raise TypeError("interaction_bars needs a path")
    fig = build_interaction_bars(names, noising, denoising, title, noising_ci=noising_ci, denoising_ci=denoising_ci)
    return _save(fig, path)


# --------------------------------------------------------------------------- linear vs exact

def build_linear_vs_exact(exact: np.ndarray, linear: np.ndarray, names: Optional[Sequence[str]] = None,
                          n_labels: int = 2):
    """Scatter of the linear (attribution) estimate `[n]` against the exact NIE `[n]`, one point per head;
    with `names`, the `n_labels` heads furthest from the diagonal are labelled."""
    exact, linear = np.asarray(exact, np.float64), np.asarray(linear, np.float64)
    fig = _figure((4.5, 4.5))
    ax = fig.subplots()
    ax.scatter(exact, linear, s=14, color="tab:blue", label="head")
    lim = float(max(np.abs(exact).max(), np.abs(linear).max(), 1e-9)) * 1.1
    ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8, label="linear = exact")
    if names is not None:
        for i in np.argsort(-np.abs(linear - exact), kind="stable")[:n_labels]:
            ax.annotate(names[i], (exact[i], linear[i]), fontsize=8, xytext=(4, 4), textcoords="offset points")
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="exact NIE (noising)", ylabel="linear estimate",
           title="attribution vs patching, per head")
    ax.legend(fontsize=8)
    return fig


def linear_vs_exact(exact: np.ndarray, linear: np.ndarray, path: Path,
                    names: Optional[Sequence[str]] = None) -> Path:
    """`build_linear_vs_exact` written to `path` (PNG)."""
    return _save(build_linear_vs_exact(exact, linear, names), path)


# --------------------------------------------------------------------------- faithfulness

def ablation_colors(ablations: Sequence[str]) -> dict[str, tuple[str, str]]:
    """(colour, marker) per ablation."""
    n = len(ABLATION_COLORS)
    return {a: (ABLATION_COLORS[i % n], ABLATION_MARKERS[(i // n) % len(ABLATION_MARKERS)])
            for i, a in enumerate(ablations)}


def part_colors(parts: Sequence[str]) -> dict[str, str]:
    """Colour per part of F(C): PART_COLORS, then EXTRA_PART_COLORS for other names."""
    extra = iter(EXTRA_PART_COLORS * (1 + len(parts) // len(EXTRA_PART_COLORS)))
    return {p: PART_COLORS[p] if p in PART_COLORS else next(extra) for p in parts}


def build_faithfulness_strips(faithfulness: np.ndarray, ablations: Sequence[str], parts: dict):
    """Left: faithfulness per resample for each ablation. Right: the mean decomposition into parts.

    Colours mean one thing each across both panels: on the left the ablation
    (legend "ablation"), on the right the part of F(C) (legend "part"), from
    disjoint palettes; black is the mean faithfulness in both panels.
    """
    faithfulness = np.asarray(faithfulness, np.float64)
    A, R = faithfulness.shape
    if len(ablations) != A:
        raise ValueError(f"{len(ablations)} ablation names for {A} rows of faithfulness")
    fig = _figure((12.5, 4.2))
    ax, bx = fig.subplots(1, 2)
    rng = np.random.default_rng(0)
    x = np.arange(A)
    for a, (name, (color, marker)) in enumerate(ablation_colors(ablations).items()):
        ax.scatter(a + rng.uniform(-0.15, 0.15, R), faithfulness[a], s=14, color=color, marker=marker,
                   alpha=0.8, label=name)
    mean = faithfulness.mean(axis=1)
    ax.scatter(x, mean, marker="D", s=36, color=MEAN_COLOR, edgecolor="white", zorder=3, label="mean faithfulness")
    ax.axhline(1, **REFERENCE)
    ax.set(xticks=x, xticklabels=list(ablations), xlim=(-0.6, A - 0.4), xlabel="ablation",
           ylabel="faithfulness F(C)/F(M)  (dotted: 1)", title=f"faithfulness over {R} resamples")
    ax.legend(title="ablation", fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))

    bottom_pos, bottom_neg = np.zeros(A), np.zeros(A)
    for name, color in part_colors(list(parts)).items():
        v = np.asarray(parts[name], np.float64).mean(axis=1)
        bottom = np.where(v >= 0, bottom_pos, bottom_neg)
        bx.bar(x, v, bottom=bottom, color=color, edgecolor="white", lw=0.5, label=name)
        bottom_pos, bottom_neg = bottom_pos + np.maximum(v, 0), bottom_neg + np.minimum(v, 0)
    bx.scatter(x, mean, marker="D", s=36, color=MEAN_COLOR, edgecolor="white", zorder=3, label="mean faithfulness")
    bx.axhline(0, **REFERENCE)
    bx.set(xticks=x, xticklabels=list(ablations), xlabel="ablation", ylabel="mean share of F(M)",
           title="F(C) = ablated + main + pairwise + higher")
    bx.legend(title="part", fontsize=8, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def faithfulness_strips(faithfulness: np.ndarray, ablations: Sequence[str], parts: dict, path: Path) -> Path:
    """`build_faithfulness_strips` written to `path` (PNG)."""
    return _save(build_faithfulness_strips(faithfulness, ablations, parts), path)


# --------------------------------------------------------------------------- search curves

def build_search_curves(ks: Sequence[int], top: Sequence[float] | np.ndarray, best: Sequence[float] | np.ndarray, *,
                        top_ci: np.ndarray | None = None, best_ci: np.ndarray | None = None):
    """Joint effect of the top-k by |NIE| and of the best k-set against the budget k; 95% CIs shaded."""
    ks = np.asarray(ks)
    fig = _figure((5.5, 4.2))
    ax = fig.subplots()
    any_ci = False
    for values, ci, style, color, label, what in (
            (best, best_ci, "o-", "tab:green", "best k-set (combinatorial)", "best_ci"),
            (top, top_ci, "s--", "tab:purple", "top-k by |NIE| (greedy)", "top_ci")):
        ax.plot(ks, np.asarray(values, np.float64), style, color=color, label=label)
        ci = _ci_interval(ci, len(ks), what)
        if ci is not None:
            any_ci = True
            ax.fill_between(ks, ci.min(axis=1), ci.max(axis=1), color=color, alpha=0.2, lw=0,
                            label=f"{label.split(' (')[0]}: 95% CI")
    ax.axhline(0, **REFERENCE)
    ax.set(xlabel="budget k (heads patched together)", ylabel="mean joint effect (logit diff)",
           title="greedy vs combinatorial search" + (" (shaded: 95% CI)" if any_ci else ""))
    if len(ks):
        ax.set_xticks(ks)
    ax.legend(fontsize=8)
    return fig


def search_curves(ks: Sequence[int], top: Sequence[float] | np.ndarray, best: Sequence[float] | np.ndarray, path: Path, *,
                  top_ci: np.ndarray | None = None, best_ci: np.ndarray | None = None) -> Path:
    """`build_search_curves` written to `path` (PNG)."""
    return _save(build_search_curves(ks, top, best, top_ci=top_ci, best_ci=best_ci), path)


# --------------------------------------------------------------------------- visibility

VISIBILITY_COLORS = {"invisible": "tab:red", "inflated": "tab:orange", "flipped": "tab:purple", "": "tab:gray"}


def build_visibility_scatter(nie: np.ndarray, context: np.ndarray, labels: Sequence[str], names: Sequence[str],
                             title: str):
    """Context effect against NIE per component (symlog axes); flagged ones labelled by name."""
    nie, context = np.asarray(nie, np.float64), np.asarray(context, np.float64)
    fig = _figure((5.2, 5.2))
    ax = fig.subplots()
    for lab, color in VISIBILITY_COLORS.items():
        idx = [i for i, x in enumerate(labels) if x == lab]
        if idx:  # no legend entry for an empty class
            ax.scatter(nie[idx], context[idx], s=16, color=color, label=lab or "unflagged")
    for i, lab in enumerate(labels):
        if lab:
            ax.annotate(names[i], (nie[i], context[i]), fontsize=7)
    lim = float(max(np.abs(nie).max(initial=0), np.abs(context).max(initial=0), 1e-9)) * 1.1
    ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8, label="context = NIE")
    for scale in (ax.set_xscale, ax.set_yscale):  # linear near zero, logarithmic beyond: small heads stay visible
        scale("symlog", linthresh=lim / 100)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="NIE (alone), symlog", ylabel="context effect, symlog",
           title=title)
    ax.legend(title="flag", fontsize=8, title_fontsize=8)
    return fig


def visibility_scatter(nie: np.ndarray, context: np.ndarray, labels: Sequence[str], names: Sequence[str],
                       path: Path, title: str) -> Path:
    """`build_visibility_scatter` written to `path` (PNG)."""
    return _save(build_visibility_scatter(nie, context, labels, names, title), path)
