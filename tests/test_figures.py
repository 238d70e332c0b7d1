"""The report's figures: each writes a PNG, and what a reader relies on is in the figure.

The `build_*` functions return the matplotlib Figure; the tests read its Axes,
texts, norms, legends and containers (matplotlib's object model), so a lost
legend, a shared colour or a missing cell value fails here, not only on sight.
"""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import SymLogNorm, to_hex
from matplotlib.container import BarContainer, ErrorbarContainer

from intjax.report import figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == PNG_MAGIC


def _legend(ax):
    leg = ax.get_legend()
    assert leg is not None, f"no legend on {ax.get_title()!r}"
    return leg, [t.get_text() for t in leg.get_texts()]


def _handle_color(handle) -> str:
    fc = handle.get_facecolor()
    fc = np.atleast_2d(fc)[0]  # a scatter handle has one row per point, a patch a single colour
    return to_hex(fc)


# --------------------------------------------------------------------------- NIE heatmaps

def _grids():
    rng = np.random.default_rng(0)
    noising = rng.normal(0, 0.05, (3, 4))
    noising[2, 1], noising[1, 3] = -3.0, 0.15  # one dominant head, one at 5% of it
    denoising = -0.8 * noising + rng.normal(0, 0.01, (3, 4))
    return noising, denoising, np.abs(noising) * 0.1 + 0.003, np.abs(denoising) * 0.1 + 0.004


def _panels(fig):
    """The two heatmap Axes (those holding an image that is not a colour bar) and their images."""
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 2
    return panels, [ax.images[0] for ax in panels]


def test_nie_heatmaps_symlog_norm_values_in_cells_and_labelled_colour_bars(tmp_path):
    noising, denoising, se_n, se_d = _grids()
    fig = figures.build_nie_heatmaps(noising, denoising, noising_se=se_n, denoising_se=se_d)
    (ax_n, ax_d), (im_n, im_d) = _panels(fig)
    for ax, im, grid, se, label in ((ax_n, im_n, noising, se_n, "NIE (noising)"),
                                    (ax_d, im_d, denoising, se_d, "NIE (denoising)")):
        norm = im.norm
        assert isinstance(norm, SymLogNorm)
        top = np.abs(grid).max()
        assert norm.vmin == pytest.approx(-top) and norm.vmax == pytest.approx(top)  # centred at 0
        assert norm.linthresh == pytest.approx(0.05 * top)
        assert float(norm(0.0)) == pytest.approx(0.5)
        assert im.get_cmap().name == "RdBu"
        assert ax.get_xlabel() == "head" and ax.get_ylabel() == "layer"
        assert im.colorbar is not None and im.colorbar.ax.get_ylabel() == label
        dec = figures._decimals(grid)
        values = [t.get_text() for t in ax.texts if t.get_gid() == "value"]
        ses = [t.get_text() for t in ax.texts if t.get_gid() == "se"]
        assert len(values) == grid.size and len(ses) == grid.size
        for l in range(grid.shape[0]):
            for h in range(grid.shape[1]):
                assert figures.cell_text(grid[l, h], dec) in values
                assert "±" + figures.cell_text(se[l, h], dec) in ses
        # each cell (x = head, y ≈ layer) prints its own value to `dec` decimals, its SE below it in a smaller font
        for gid, want in (("value", grid), ("se", se)):
            cell = {(round(t.get_position()[0]), round(t.get_position()[1])): t.get_text()
                    for t in ax.texts if t.get_gid() == gid}
            assert len(cell) == grid.size
            for (h, l), text in cell.items():
                assert float(text.lstrip("±")) == pytest.approx(want[l, h], abs=0.51 * 10.0 ** -dec)
        value_pos = {t.get_text(): t.get_position()[1] for t in ax.texts if t.get_gid() == "value"}
        se_pos = {t.get_text(): t.get_position()[1] for t in ax.texts if t.get_gid() == "se"}
        assert se_pos["±" + figures.cell_text(se[0, 0], dec)] > value_pos[figures.cell_text(grid[0, 0], dec)]
        size = {t.get_gid(): t.get_fontsize() for t in ax.texts}
        assert size["se"] < size["value"]
    # the point of the symlog scale: a head at 5% of the dominant one is still clearly coloured
    # (a linear map puts it 2.5% from white)
    assert abs(float(im_n.norm(noising[1, 3])) - 0.5) > 0.15
    title = fig._suptitle.get_text()
    assert figures.SIGN_NOTE in title and "negative noising NIE" in title and "positive denoising NIE" in title

    path = figures.nie_heatmaps(noising, denoising, tmp_path / "nie.png", noising_se=se_n, denoising_se=se_d)
    assert _is_png(path)


def test_nie_heatmaps_without_se_and_shape_checks(tmp_path):
    noising, denoising, _, _ = _grids()
    fig = figures.build_nie_heatmaps(noising, denoising)
    (ax_n, ax_d), _ = _panels(fig)
    for ax in (ax_n, ax_d):
        assert [t.get_gid() for t in ax.texts].count("value") == noising.size
        assert not [t for t in ax.texts if t.get_gid() == "se"]
    assert _is_png(figures.nie_heatmaps(noising, denoising, tmp_path / "nie.png"))  # old call still works
    with pytest.raises(ValueError):
        figures.build_nie_heatmaps(noising, denoising[:2])
    with pytest.raises(ValueError):
        figures.build_nie_heatmaps(noising, denoising, noising_se=np.ones((2, 2)))
    # an all-zero grid (an untrained toy model) draws without dividing by zero
    assert _is_png(figures.nie_heatmaps(np.zeros((2, 2)), np.zeros((2, 2)), tmp_path / "zero.png"))


def test_cell_text_and_colour_bar_ticks():
    assert figures.cell_text(-0.0004, 2) == "0.00"
    assert figures.cell_text(-0.014, 2) == "-0.01"
    assert figures._decimals(np.array([3.2])) == 2 and figures._decimals(np.array([0.031])) == 4
    ticks = figures._symlog_ticks(0.16, 3.2)
    assert ticks == sorted(ticks) and 0.0 in ticks and ticks == [-t for t in reversed(ticks)]
    assert 1.0 in ticks and 3.2 in ticks and max(ticks) <= 3.2


# --------------------------------------------------------------------------- interaction bars

NAMES = ["L9H9,L9H6", "L10H0,L9H9", "L8H6,L7H9"]
NOISING = np.array([-1.2, 0.4, -0.1])
DENOISING = np.array([0.9, -0.3, 0.05])
NOISING_CI = np.stack([NOISING - 0.2, NOISING + 0.3], axis=1)
DENOISING_CI = np.stack([DENOISING - 0.1, DENOISING + 0.1], axis=1)


def test_interaction_bars_both_directions_with_ci_and_legend(tmp_path):
    fig = figures.build_interaction_bars(NAMES, NOISING, DENOISING, "order 2",
                                         noising_ci=NOISING_CI, denoising_ci=DENOISING_CI)
    (ax,) = fig.axes
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    errs = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert [b.get_label() for b in bars] == ["noising", "denoising"]
    assert len(errs) == 2
    for b, values in zip(bars, (NOISING, DENOISING)):
        np.testing.assert_allclose([p.get_width() for p in b.patches], values)
        assert len({to_hex(p.get_facecolor()) for p in b.patches}) == 1  # colour = direction, not sign
    assert to_hex(bars[0].patches[0].get_facecolor()) != to_hex(bars[1].patches[0].get_facecolor())
    # noising and denoising of a set sit side by side, around its tick
    ticks = ax.get_yticks()
    for k in range(len(NAMES)):
        yn = bars[0].patches[k].get_y() + bars[0].patches[k].get_height() / 2
        yd = bars[1].patches[k].get_y() + bars[1].patches[k].get_height() / 2
        assert (yn + yd) / 2 == pytest.approx(ticks[k]) and yn > yd
    assert [t.get_text() for t in ax.get_yticklabels()] == NAMES
    assert ticks[0] > ticks[-1]  # the first (strongest) set on top
    # whiskers span the CIs exactly
    for err, ci in zip(errs, (NOISING_CI, DENOISING_CI)):
        (segments,) = [c.get_segments() for c in err.lines[2]]
        np.testing.assert_allclose(sorted((s[0][0], s[1][0]) for s in segments), sorted(map(tuple, ci)))
    _, labels = _legend(ax)
    assert labels == ["noising", "denoising"]
    assert any(line.get_xdata()[0] == 0 for line in ax.lines)  # the zero line
    assert "95% CI" in ax.get_xlabel()
    assert _is_png(figures.interaction_bars(NAMES, NOISING, DENOISING, tmp_path / "int.png", "order 2",
                                            noising_ci=NOISING_CI, denoising_ci=DENOISING_CI))


def test_interaction_bars_without_ci_old_call_and_checks(tmp_path):
    fig = figures.build_interaction_bars(NAMES, NOISING, DENOISING, "t")
    (ax,) = fig.axes
    assert not [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len([c for c in ax.containers if isinstance(c, BarContainer)]) == 2
    path = figures.interaction_bars(NAMES, NOISING, tmp_path / "old.png", "noising only")  # old signature
    assert path == tmp_path / "old.png" and _is_png(path)
    with pytest.raises(ValueError):
        figures.build_interaction_bars(NAMES, NOISING, DENOISING, "t", noising_ci=NOISING_CI[:2])
    with pytest.raises(ValueError):
        figures.build_interaction_bars(NAMES, NOISING, DENOISING[:2], "t")


# --------------------------------------------------------------------------- faithfulness

ABLATIONS = ["mean", "resample", "zero"]


def _faithfulness():
    rng = np.random.default_rng(1)
    parts = {p: rng.normal(m, 0.05, (3, 4)) for p, m in
             (("ablated", -0.05), ("main", 0.3), ("pairwise", 0.5), ("higher", 0.1))}
    faith = sum(parts.values())
    return faith, parts


def test_faithfulness_panels_have_legends_and_no_colour_means_two_things(tmp_path):
    faith, parts = _faithfulness()
    fig = figures.build_faithfulness_strips(faith, ABLATIONS, parts)
    ax, bx = fig.axes
    leg_a, labels_a = _legend(ax)
    leg_b, labels_b = _legend(bx)
    assert leg_a.get_title().get_text() == "ablation" and leg_b.get_title().get_text() == "part"
    assert set(ABLATIONS) <= set(labels_a) and set(parts) <= set(labels_b)
    meaning: dict[str, str] = {}
    for leg, labels in ((leg_a, labels_a), (leg_b, labels_b)):
        for handle, label in zip(leg.legend_handles, labels):
            color = _handle_color(handle)
            assert meaning.setdefault(color, label) == label, f"{color} means {meaning[color]} and {label}"
    ablation_colors = {_handle_color(h) for h, t in zip(leg_a.legend_handles, labels_a) if t in ABLATIONS}
    part_colors = {_handle_color(h) for h, t in zip(leg_b.legend_handles, labels_b) if t in parts}
    assert len(ablation_colors) == len(ABLATIONS) and len(part_colors) == len(parts)
    assert not ablation_colors & part_colors
    # the drawn artists use the legend's colours: the points by ablation, the bars by part
    drawn = {to_hex(c.get_facecolor()[0]) for c in ax.collections}
    assert ablation_colors <= drawn and not drawn & part_colors
    bar_colors = {to_hex(p.get_facecolor()) for p in bx.patches}
    assert bar_colors == part_colors
    # the stacked bars add up, per ablation, to the mean faithfulness
    heights = np.zeros(len(ABLATIONS))
    for p in bx.patches:
        heights[round(p.get_x() + p.get_width() / 2)] += p.get_height()
    np.testing.assert_allclose(heights, faith.mean(axis=1))
    assert _is_png(figures.faithfulness_strips(faith, ABLATIONS, parts, tmp_path / "f.png"))


def test_faithfulness_many_ablations_keep_distinct_styles():
    styles = figures.ablation_colors([f"a{i}" for i in range(10)])
    assert len(set(styles.values())) == 10
    assert not {c for c, _ in styles.values()} & set(figures.part_colors(["ablated", "main", "pairwise", "higher",
                                                                          "other"]).values())


# --------------------------------------------------------------------------- search curves, visibility, linear

def test_search_curves_legend_labels_and_ci_bands(tmp_path):
    ks, top, best = [1, 2, 3], np.array([0.5, 0.8, 1.0]), np.array([0.5, 1.0, 1.3])
    top_ci, best_ci = np.stack([top - 0.1, top + 0.2], 1), np.stack([best - 0.3, best + 0.1], 1)
    fig = figures.build_search_curves(ks, top, best, top_ci=top_ci, best_ci=best_ci)
    (ax,) = fig.axes
    assert ax.get_xlabel() and ax.get_ylabel()
    _, labels = _legend(ax)
    assert "best k-set (combinatorial)" in labels and "top-k by |NIE| (greedy)" in labels
    bands = ax.collections
    assert len(bands) == 2
    for band, ci in zip(bands, (best_ci, top_ci)):  # the band covers exactly the CI
        (lo_y, hi_y) = band.get_paths()[0].vertices[:, 1].min(), band.get_paths()[0].vertices[:, 1].max()
        assert lo_y == pytest.approx(ci[:, 0].min()) and hi_y == pytest.approx(ci[:, 1].max())
    lines = {line.get_label(): line for line in ax.lines}
    for band, name in zip(bands, ("best k-set (combinatorial)", "top-k by |NIE| (greedy)")):
        assert to_hex(band.get_facecolor()[0]) == to_hex(lines[name].get_color())
    assert not figures.build_search_curves(ks, top, best).axes[0].collections  # no CI, no band
    assert _is_png(figures.search_curves(ks, top, best, tmp_path / "s.png", top_ci=top_ci, best_ci=best_ci))
    assert _is_png(figures.search_curves(ks, top, best, tmp_path / "s0.png"))  # old call


def test_visibility_scatter_legend_and_labels(tmp_path):
    rng = np.random.default_rng(2)
    nie, context = rng.normal(size=6), rng.normal(size=6)
    labels = ["", "invisible", "", "flipped", "", ""]
    names = [f"L0H{i}" for i in range(6)]
    fig = figures.build_visibility_scatter(nie, context, labels, names, "noising")
    (ax,) = fig.axes
    leg, texts = _legend(ax)
    assert leg.get_title().get_text() == "flag"
    assert set(texts) == {"invisible", "flipped", "unflagged", "context = NIE"}  # no entry for an empty class
    assert ax.get_xlabel().startswith("NIE") and ax.get_ylabel().startswith("context")
    assert {t.get_text() for t in ax.texts} == {"L0H1", "L0H3"}
    assert _is_png(figures.visibility_scatter(nie, context, labels, names, tmp_path / "v.png", "noising"))


def test_linear_vs_exact_writes_png(tmp_path):
    x = np.linspace(-1, 1, 8)
    fig = figures.build_linear_vs_exact(x, 0.9 * x)
    (ax,) = fig.axes
    assert ax.get_xlabel() and ax.get_ylabel() and _legend(ax)[1] == ["head", "linear = exact"]
    assert _is_png(figures.linear_vs_exact(x, 0.9 * x, tmp_path / "l.png"))
    # the two heads furthest from the diagonal are named: the planted outlier, then the first end (0.1·|x| = 0.1)
    y = 0.9 * x
    y[3] += 0.5  # a planted outlier
    (ax,) = figures.build_linear_vs_exact(x, y, [f"H{i}" for i in range(8)]).axes
    assert [t.get_text() for t in ax.texts] == ["H3", "H0"]
