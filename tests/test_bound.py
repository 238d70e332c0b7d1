"""The sampled sup of |D_T| over a face, the looseness of |INT_T| ≤ sup |D_T|, and the
affinity of f on the face, against closed forms (and a quick run on the tiny model)."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import erf

from intjax.estimands import FunctionGame, interactions
from intjax.estimands.bound import (
    affine_fit, affinity_vs_interaction, bound_report, looseness_ratio, sampled_sup, spearman,
)
from intjax.estimands.derivatives import face_check, gauss_legendre_01


def gauss_primitive(x, centre, width):
    """∫_0^x exp(−(u − centre)² / (2 width²)) du."""
    r = width * math.sqrt(2.0)
    return width * math.sqrt(math.pi / 2) * (erf((x - centre) / r) + erf(centre / r))


def bump_game(centre, width, n=3):
    """f(a, b) = ∫_0^a ∫_0^b G: D_{01} = G, a Gaussian bump of peak 1 at `centre`."""
    (ca, cb) = centre
    return FunctionGame(lambda a: gauss_primitive(a[0], ca, width) * gauss_primitive(a[1], cb, width), n)


def grid_variance(m):
    """Variance of the uniform m-point grid on [0, 1]."""
    return (m + 1) / (12 * (m - 1))


# ---------------------------------------------------------------------------------------------
# 1. A narrow bump between the Gauss–Legendre nodes


@pytest.mark.parametrize("centre, qs", [((0.5, 0.5), (4, 12)), ((0.45, 0.55), (4,))])
def test_bump_between_quadrature_nodes_is_found(x64, centre, qs):
    """q = 4 is face_check's default, q = 12 what the theorem table uses for pairs."""
    width = 0.05
    game = bump_game(centre, width)
    T = (0, 1)
    # the nodes really miss it: no Gauss–Legendre node within 1.2 widths of the centre per axis
    for q in qs:
        nodes, _ = gauss_legendre_01(q)
        assert min(np.abs(nodes - c).min() for c in centre) > 1.2 * width
        node_sup = face_check(game, T, q, grid=0)[1][0]
        assert node_sup < 0.5, (q, node_sup)  # the old "bound" sees at most half the peak

    found = sampled_sup(game, T)
    assert found.converged
    assert found.sampled_sup[0] == pytest.approx(1.0, rel=0.01)
    assert found.sampled_sup[0] <= 1.0 + 1e-12  # a sample of |D| never exceeds the true sup
    np.testing.assert_allclose(found.argmax[0], centre, atol=0.01)
    assert found.n_points == found.grid_points + found.polish_points
    assert found.grid_points == 9 ** 2 and found.points_per_axis == (3, 5, 9)

    # the integral identity: INT = ∫∫ G = (∫ of the 1-d bump)², and |INT| ≤ sup holds
    exact = float(gauss_primitive(1.0, centre[0], width) * gauss_primitive(1.0, centre[1], width))
    (row,) = bound_report(game, [T])
    assert row["int"][0] == pytest.approx(exact, rel=1e-10)
    assert row["int_le_sampled_sup"]
    assert row["looseness_median"] == pytest.approx(found.sampled_sup[0] / exact, rel=1e-9)
    assert row["looseness_median"] == pytest.approx(1 / exact, rel=0.01)


def test_without_polishing_dyadic_grids_stall_below_an_off_grid_peak(x64):
    """Why `sampled_sup` polishes: a peak at (0.45, 0.55) keeps the nearest grid point
    (0.5, 0.5) for spacings 1/2, 1/4, 1/8, so the grid sup does not grow and the
    stopping rule stops at e^{-1} of the peak."""
    found = sampled_sup(bump_game((0.45, 0.55), 0.05), (0, 1), polish=False)
    assert found.converged and found.polish_points == 0
    np.testing.assert_allclose(found.level_sampled_sups[:, 0], np.exp(-1.0), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# 2. Polynomial games: known sup of |D_T|, known INT, so a known looseness ratio


def test_looseness_ratio_polynomial_pair(x64):
    """f_p = ab + c_p a²b: D = 1 + 2 c_p a, sup |D| = max(1, |1 + 2c_p|) (at a = 0 or 1),
    INT = 1 + c_p."""
    c = jnp.array([1.0, -3.0, 0.5])
    game = FunctionGame(lambda a: a[0] * a[1] + c * a[0] ** 2 * a[1], 3)
    sup = np.array([3.0, 5.0, 2.0])
    ints = np.array([2.0, -2.0, 1.5])
    found = sampled_sup(game, (0, 1))
    np.testing.assert_allclose(found.sampled_sup, sup, rtol=1e-12)
    (row,) = bound_report(game, [(0, 1)])
    np.testing.assert_allclose(row["int"], ints, rtol=1e-12)
    np.testing.assert_allclose(row["looseness"], sup / np.abs(ints), rtol=1e-12)
    assert row["looseness_median"] == pytest.approx(1.5, rel=1e-12)
    assert row["sampled_sup_max"] == pytest.approx(5.0) and row["sampled_sup_mean"] == pytest.approx(10 / 3)
    assert row["int_le_sampled_sup"] and row["converged"]


def test_looseness_ratio_interior_maximum_and_triple(x64):
    """D = 1 − 4(a − 1/3)² peaks at a = 1/3, on no dyadic grid: sup 1, INT = 5/9.
    Triple f = abc(1 + a): D = 1 + 2a, sup 3, INT 2."""
    def F(a):  # ∫_0^a 1 − 4(x − 1/3)² dx
        return a - 4 / 3 * ((a - 1 / 3) ** 3 + 1 / 27)

    game = FunctionGame(lambda a: jnp.stack([F(a[0]) * a[1], a[0] * a[1] * a[2] * (1 + a[0])]), 4)
    pair, triple = bound_report(game, [(0, 1), (0, 1, 2)])
    assert pair["int"][0] == pytest.approx(5 / 9, rel=1e-12)
    # polished until a move gains less than polish_gain·rtol = 1e-4 of the value
    assert 1.0 - 1e-4 <= pair["sampled_sup"][0] <= 1.0
    assert pair["looseness"][0] == pytest.approx(9 / 5, rel=1e-4)
    assert triple["int"][1] == pytest.approx(2.0, rel=1e-12)
    assert triple["sampled_sup"][1] == pytest.approx(3.0, rel=1e-12)
    assert triple["looseness"][1] == pytest.approx(1.5, rel=1e-12)
    # prompt 0 has no triple term and prompt 1 no pair term: INT 0, and D 0 too (0/0)
    assert triple["int"][0] == 0 and np.isnan(triple["looseness"][0])
    assert pair["int"][1] == 0 and np.isnan(pair["looseness"][1])
    assert pair["looseness_median"] == pytest.approx(9 / 5, rel=1e-4)  # nan prompts ignored


def test_looseness_ratio_zero_interaction():
    ratio = looseness_ratio(np.array([2.0, 0.0, 1.0]), np.array([0.0, 0.0, -0.5]), atol=1e-9)
    assert ratio[0] == np.inf and np.isnan(ratio[1]) and ratio[2] == 2.0


# ---------------------------------------------------------------------------------------------
# 3. Affinity of f on the face


def test_affine_face_has_no_interaction_and_no_affinity_error(x64):
    game = FunctionGame(lambda a: 1 + 2 * a[0] - 3 * a[1] + 0.5 * a[2], 3)
    (row,) = bound_report(game, [(0, 1)])
    assert row["int"][0] == pytest.approx(0, abs=1e-14)
    assert row["affinity_error"][0] == pytest.approx(0, abs=1e-12)
    assert row["sampled_sup"][0] == pytest.approx(0, abs=1e-12)
    assert np.isnan(row["looseness"][0]) and row["int_le_sampled_sup"]
    fit = affine_fit(game, (0, 1))
    np.testing.assert_allclose(fit.coefficients[0], [1.0, 2.0, -3.0], atol=1e-12)


@pytest.mark.parametrize("m", [5, 9])
def test_affinity_error_of_a_bilinear_face(x64, m):
    """f = c + b1 a + b2 b + I ab on the m×m grid: the residual is I(a − ½)(b − ½), so the
    relative error is |I| v / sqrt((b1 + I/2)² v + (b2 + I/2)² v + I² v²), v the grid variance."""
    v = grid_variance(m)
    c, b1, b2, I = 0.3, 0.7, -1.1, 2.0
    game = FunctionGame(lambda a: jnp.stack([a[0] * a[1], c + b1 * a[0] + b2 * a[1] + I * a[0] * a[1]]), 2)
    fit = affine_fit(game, (0, 1), points=m)
    expect_ab = math.sqrt(v / (0.5 + v))  # 0.447 on 5 points, → 1/√7 = 0.378
    expect = abs(I) * v / math.sqrt(((b1 + I / 2) ** 2 + (b2 + I / 2) ** 2) * v + I ** 2 * v ** 2)
    np.testing.assert_allclose(fit.relative_error, [expect_ab, expect], rtol=1e-10)
    np.testing.assert_allclose(fit.rms_residual, [v, abs(I) * v], rtol=1e-10)
    assert fit.relative_error[0] > 0.35  # strongly non-affine


def test_affinity_error_of_a_bilinear_family_matches_its_closed_form(x64):
    """f_p = a + b + c_p ab on the 5-point face grid (axis variance v = 1/8 about ½): the affine residual is
    c(a − ½)(b − ½), so the relative error is |c|·v / sqrt(2(1 + c/2)²·v + c²v²) and |INT|/range = c/(2 + c).
    A fit that misses the cross term, or scales by the range instead of the RMS, changes these numbers."""
    cs = np.array([0.0, 0.05, 0.3, 1.0, 3.0])
    game = FunctionGame(lambda a: a[0] + a[1] + jnp.asarray(cs) * a[0] * a[1] + a[2], 3)
    report = bound_report(game, [(0, 1)])
    v = 1 / 8
    expected = np.abs(cs) * v / np.sqrt(2 * (1 + cs / 2) ** 2 * v + cs**2 * v**2)
    np.testing.assert_allclose(report[0]["affinity_error"], expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(report[0]["relative_int"], cs / (2 + cs), rtol=1e-10)
    summary = affinity_vs_interaction(report)
    assert summary["n_pairs"] == 5
    assert summary["near_affine_pairs"] == int((expected < 0.05).sum()) == 2
    assert summary["near_affine_max_relative_int"] == pytest.approx(0.05 / 2.05)


def test_spearman_with_ties():
    x = [1.0, 2.0, 2.0, 3.0, 5.0]
    y = [2.0, 1.0, 4.0, 4.0, 9.0]
    rx = np.array([1, 2.5, 2.5, 4, 5])
    ry = np.array([2, 1, 3.5, 3.5, 5])
    expect = np.corrcoef(rx, ry)[0, 1]
    assert spearman(x, y) == pytest.approx(expect, rel=1e-12)
    assert spearman(x, x) == pytest.approx(1.0) and np.isnan(spearman([1, 1, 1], [1, 2, 3]))


# ---------------------------------------------------------------------------------------------
# 4. Convergence: stops at rtol and counts its points


def ridge_game(x0=1 / 3, width=0.1):
    """D_{01}(a, b) = exp(−(a − x0)²/(2 width²)), the same for every b. The nearest point to
    1/3 on a dyadic grid of spacing h is h/3 away, so level ℓ's grid sup is known exactly."""
    return FunctionGame(lambda a: gauss_primitive(a[0], x0, width) * a[1], 2)


def ridge_level_sups(levels, width=0.1):
    h = 0.5 ** (np.arange(levels) + 1)
    return np.exp(-((h / 3) ** 2) / (2 * width ** 2))


@pytest.mark.parametrize("rtol, m_last", [(0.01, 65), (0.05, 33)])
def test_refinement_stops_at_rtol_and_counts_points(x64, rtol, m_last):
    found = sampled_sup(ridge_game(), (0, 1), rtol=rtol, polish=False)
    L = int(np.log2(m_last - 1))  # 3, 5, 9, … m_last
    assert found.points_per_axis == tuple(2 ** j + 1 for j in range(1, L + 1))
    np.testing.assert_allclose(found.level_sampled_sups[:, 0], ridge_level_sups(L), rtol=1e-12)
    growth = found.growth[:, 0]
    assert growth[-1] <= rtol and np.all(growth[1:-1] > rtol)  # stopped at the first small growth
    assert found.converged
    assert found.grid_points == found.n_points == m_last ** 2  # nested: every point evaluated once


def test_point_budget_stops_refinement_unconverged(x64):
    found = sampled_sup(ridge_game(), (0, 1), polish=False, max_points=1000)
    assert not found.converged
    assert found.points_per_axis[-1] == 17 and found.n_points == 17 ** 2  # 33² would pass 1000
    assert found.sampled_sup[0] == pytest.approx(ridge_level_sups(4)[-1], rel=1e-12)


def test_polishing_finds_the_ridge_top_at_once(x64):
    found = sampled_sup(ridge_game(), (0, 1))
    assert found.converged and found.points_per_axis == (3, 5, 9)
    # to within polish_gain·rtol = 1e-4 of the peak: |a − 1/3| ≤ 0.1·sqrt(2e-4) on this ridge
    assert 1.0 - 1e-4 <= found.sampled_sup[0] <= 1.0
    assert found.argmax[0, 0] == pytest.approx(1 / 3, abs=1.5e-3)
    assert found.polish_points > 0 and found.n_points < 9 ** 2 + 250
    # a search step that tries as many step sizes as fill a batch: fewer sequential batches
    # than one that tries two (2h, h), for the same peak
    plain = sampled_sup(ridge_game(), (0, 1), polish_scales=2)
    assert plain.sampled_sup[0] == pytest.approx(1.0, abs=1e-4)
    assert found.batches <= 12 and found.batches < plain.batches


# ---------------------------------------------------------------------------------------------
# 5. The tiny model


def test_bound_report_on_the_tiny_model(tiny_model):
    from intjax.patching import build_problem, make_prompt_set, parse_components
    from test_patching import prompt_rows

    model, _ = tiny_model
    rows = prompt_rows(model.config.vocab_size, (7, 8))
    comps = parse_components("L0H0,L1H1,L2MLP", model.config)
    problem = build_problem(model, make_prompt_set(rows), comps, direction="noising")
    report = bound_report(problem, [(0, 1), (0, 1, 2)])
    _, ints, _ = interactions(problem, sets=[(0, 1), (0, 1, 2)])
    for col, row in enumerate(report):
        assert row["set"] == ((0, 1), (0, 1, 2))[col]
        np.testing.assert_allclose(row["int"], ints[:, col], rtol=1e-4, atol=1e-5)  # float32 batches
        assert row["int_le_sampled_sup"], row
        # the rule stops only once the grid holds ≥ 64 points: 9 per axis for a pair, 5 for a triple
        assert row["converged"] and row["points_per_axis"] >= {2: 9, 3: 5}[row["order"]]
        assert row["points"] >= row["points_per_axis"] ** row["order"]
        assert row["looseness_median"] >= 1.0
        assert all(0 <= e <= 1 for e in row["affinity_error"])
        assert all(0 < r for r in row["face_range"])
    summary = affinity_vs_interaction(report)
    assert summary["n_pairs"] == 4 and -1 <= summary["spearman"] <= 1


# ---------------------------------------------------------------------------------------------
# The integral identity's estimate and its error bar (bound.face_integral, theorems.integral_verdict)


def _game(fn, n):
    from intjax.estimands.game import FunctionGame

    return FunctionGame(fn, n)


def test_face_integral_equals_the_closed_form_within_its_error_bar():
    """f = a²b·c + sin(a)·b: D_{ab} = 2a·c + cos(a), whose integral over the face {a, b} (c = 0) is
    sin(1); D_{abc} = 2a, integral 1."""
    import jax.numpy as jnp

    from intjax.estimands.bound import face_integral

    game = _game(lambda x: x[0] ** 2 * x[1] * x[2] + jnp.sin(x[0]) * x[1], 3)
    for T, exact in (((0, 1), np.sin(1.0)), ((0, 1, 2), 1.0)):
        r = face_integral(game, T, points=32, scramblings=8)
        assert abs(r.estimate[0] - exact) < 1e-3 and r.z_scores(np.array([exact]), 1e-9)[0] < 5, (T, r)
        assert r.standard_error[0] < 1e-3


def test_face_integral_error_bar_covers_a_sharply_peaked_partial():
    """D_{ab} of atan(30(a − ½))·atan(30(b − ½)) is a narrow bump; its integral is atan(15)². Over 20
    seeds the estimate lies within 5 SE of the truth every time, and the bar is wide (the check would
    say inconclusive, not fail)."""
    import jax.numpy as jnp

    from intjax.estimands.bound import face_integral

    game = _game(lambda x: jnp.arctan(30 * (x[0] - 0.5)) * jnp.arctan(30 * (x[1] - 0.5)), 2)
    exact = np.arctan(15.0) ** 2
    zs, bars = [], []
    for seed in range(20):
        r = face_integral(game, (0, 1), points=8, scramblings=4, seed=100 * seed)
        zs.append(r.z_scores(np.array([exact]))[0])
        bars.append(3 * r.standard_error[0] / exact)
    assert max(zs) < 5, zs
    assert np.median(bars) > 0.1, bars


def test_integral_verdict_fails_a_wrong_derivative_path():
    """A game whose differentiable path (nested JVPs) is not the one its values come from: the
    integral of its D_T misses the exact INT by far more than the error bar, so the verdict is fail."""
    from intjax.estimands.bound import face_integral
    from intjax.estimands.theorems import integral_verdict

    game = _game(lambda x: x[0] * x[1] * 1.5, 2)  # D = 1.5 everywhere; the values' INT says 1.0
    r = face_integral(game, (0, 1))
    exact = np.array([1.0])
    z = float(r.z_scores(exact, 1e-7)[0])
    table = dict(integral_max_z=z, integral_resolution=float(3 * r.standard_error.max()))
    assert integral_verdict(table) == "fail"
    assert integral_verdict(dict(integral_max_z=1.0, integral_resolution=0.02)) == "pass"
    assert integral_verdict(dict(integral_max_z=1.0, integral_resolution=0.5)) == "inconclusive"


def test_face_integral_refuses_bad_sizes():
    from intjax.errors import InputError
    from intjax.estimands.bound import face_integral

    game = _game(lambda x: x[0] * x[1], 2)
    with pytest.raises(InputError, match="power of 2"):
        face_integral(game, (0, 1), points=10)
    with pytest.raises(InputError, match="at least 2 scramblings"):
        face_integral(game, (0, 1), scramblings=1)


def test_face_integral_refinement_evaluates_only_new_points_and_equals_a_fresh_integral(monkeypatch):
    """Growing 16 → 64 Sobol points reuses the 16 already evaluated (a scrambled Sobol set of m points
    is the first m of 4m): only 48 new points per scrambling are evaluated, and the estimate and its
    error bar equal a fresh 64-point integral's."""
    import jax.numpy as jnp

    import intjax.estimands.bound as bound

    game = _game(lambda x: jnp.sin(2 * x[0]) * x[1] ** 2 * jnp.exp(x[2]), 3)
    evaluated = []
    real = bound.mixed_partials_batched
    monkeypatch.setattr(bound, "mixed_partials_batched", lambda g, d, pts, *a: evaluated.append(len(pts)) or
                        real(g, d, pts, *a))
    def points_evaluated(**kwargs) -> tuple[bound.FaceIntegral, int]:
        evaluated.clear()
        return bound.face_integral(game, (0, 1), scramblings=4, **kwargs), sum(evaluated)

    coarse, n_coarse = points_evaluated(points=16, seed=3)
    progress = []
    refined, n_refined = points_evaluated(points=64, seed=3, previous=coarse, chunk=8,
                                          on_points=lambda done, total: progress.append((done, total)))
    fresh, n_fresh = points_evaluated(points=64, seed=3)
    assert (n_coarse, n_refined, n_fresh) == (16 * 4, 48 * 4, 64 * 4)
    assert progress == [(32 * i, 192) for i in range(1, 7)]  # after every 4 batches of 8 new points
    np.testing.assert_allclose(refined.estimate, fresh.estimate, rtol=1e-12)
    np.testing.assert_allclose(refined.standard_error, fresh.standard_error, rtol=1e-12)
    other_seed, n_other = points_evaluated(points=64, seed=4, previous=coarse)
    assert n_other == 64 * 4  # another seed's points are not the coarse set's: nothing reused
    assert other_seed.estimate[0] != refined.estimate[0]
