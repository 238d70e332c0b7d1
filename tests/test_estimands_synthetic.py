"""Estimands on functions whose Möbius coefficients and derivatives are known in closed form."""

from __future__ import annotations

import itertools
from math import comb

import jax.numpy as jnp
import numpy as np
import pytest

from intjax.estimands import (
    FunctionGame, context_effects, fast_mobius, full_lattice_interactions, interactions, linear,
    linear_gap, local_affine_bound, mixed_partial, n_subsets_up_to, nie, quadrature_interaction,
)
from intjax.estimands.mobius import lattice_masks


def multilinear(n, seed=0, density=0.5):
    """f(α) = Σ_T c_T Π_{i∈T} α_i with random c_T: INT_T = c_T, D_T(0) = c_T."""
    rng = np.random.default_rng(seed)
    coef = {T: rng.normal() for j in range(n + 1) for T in itertools.combinations(range(n), j)
            if rng.uniform() < density or len(T) <= 1}

    def fn(a):
        return sum(c * jnp.prod(a[np.array(T)]) if T else c for T, c in coef.items())

    return coef, fn


class CountingGame(FunctionGame):
    """Counts the masks it is asked for."""

    def __init__(self, fn, n):
        super().__init__(fn, n)
        self.masks_seen = []

    def values(self, masks):
        self.masks_seen += [tuple(m) for m in np.asarray(masks)]
        return super().values(masks)


def test_multilinear_coefficients_recovered_exactly_each_subset_once():
    n, k = 6, 3
    coef, fn = multilinear(n)
    game = CountingGame(fn, n)
    sets, ints, _ = interactions(game, order=k)
    assert len(sets) == sum(comb(n, j) for j in range(2, k + 1))
    for T, value in zip(sets, ints[0]):
        assert value == pytest.approx(coef.get(T, 0.0), abs=1e-5)
    assert len(game.masks_seen) == n_subsets_up_to(n, k) == len(set(game.masks_seen))


def test_product_and_threshold_games():
    n = 5
    _, product = (None, FunctionGame(lambda a: jnp.prod(a), n))
    sets, ints, _ = interactions(product, order=n)
    for T, v in zip(sets, ints[0]):
        assert v == pytest.approx(1.0 if len(T) == n else 0.0, abs=1e-6)
    m = 2  # f(1_U) = 1[|U| >= m]: INT_T = (-1)^{|T|-m} C(|T|-1, m-1) for |T| >= m
    threshold = FunctionGame(lambda a: (a.sum() >= m - 1e-6).astype(jnp.float32), n)
    sets, ints, _ = interactions(threshold, order=n)
    for T, v in zip(sets, ints[0]):
        expected = (-1) ** (len(T) - m) * comb(len(T) - 1, m - 1) if len(T) >= m else 0
        assert v == pytest.approx(expected, abs=1e-9)


def test_fast_mobius_matches_direct_sums_and_closed_form():
    n = 7
    coef, fn = multilinear(n, seed=3)
    game = FunctionGame(fn, n)
    full = full_lattice_interactions(game)[0]
    for b in range(1 << n):
        T = tuple(i for i in range(n) if b >> i & 1)
        assert full[b] == pytest.approx(coef.get(T, 0.0), abs=1e-5)
    f = np.random.default_rng(0).normal(size=(2, 1 << 4))
    direct = np.zeros_like(f)
    for b in range(16):
        for u in range(16):
            if u & b == u:
                direct[:, b] += (-1) ** (bin(b).count("1") - bin(u).count("1")) * f[:, u]
    np.testing.assert_allclose(fast_mobius(f), direct, atol=1e-12)
    assert lattice_masks(3)[5].tolist() == [1, 0, 1]


def test_user_family_of_sets_evaluates_its_downward_closure_once():
    coef, fn = multilinear(6, seed=1)
    game = CountingGame(fn, 6)
    family = [(0, 1, 2), (2, 5), (1, 2)]
    sets, ints, _ = interactions(game, sets=family)
    assert sets == [(0, 1, 2), (2, 5), (1, 2)]
    np.testing.assert_allclose(ints[0], [coef.get(T, 0.0) for T in sets], atol=1e-5)
    assert len(game.masks_seen) == len(set(game.masks_seen)) == 1 + 4 + 4 + 1  # ∅, 4 singles, 4 pairs, 1 triple


def test_nie_and_context_effects_match_planted_coefficients():
    """On a multilinear game the vertex values are closed-form sums of the planted coefficients:
    NIE_i = c_i and Δ_i(C) = Σ_{T: i∈T⊆C∪i} c_T, computed here from `coef`, not from `interactions`."""
    n = 5
    coef, fn = multilinear(n, seed=2, density=1.0)
    game = FunctionGame(fn, n)
    np.testing.assert_allclose(nie(game)[0], [coef[(i,)] for i in range(n)], atol=1e-5)
    C = (1, 3)
    delta = context_effects(game, C)[0]
    for i in range(n):
        rest = tuple(c for c in C if c != i)
        expected = sum(coef.get(tuple(sorted((i,) + U)), 0.0)
                       for j in range(len(rest) + 1) for U in itertools.combinations(rest, j))
        assert delta[i] == pytest.approx(expected, abs=1e-5)


def cubic_edge_game(n, seed=0):
    """f(α) = Σ_T c_T Π_{i∈T} g_i(α_i) with g_i(x) = (1 − b_i)·x + b_i·x³, b_i ∈ [0.2, 0.8].

    g_i(0) = 0 and g_i(1) = 1, so the vertex values, and hence every Möbius coefficient, are
    those of the multilinear game: INT_T = c_T and NIE_i = c_i. But f is NOT multilinear, so
    interior derivatives differ from vertex differences; everything is known in closed form:
      ∂f/∂α_i(0) = c_i (1 − b_i)                      (so NIE_i − linear_i = c_i b_i)
      D_T(α) = Σ_{T'⊇T} c_T' Π_{i∈T} g_i'(α_i) Π_{j∈T'∖T} g_j(α_j),  g'(x) = 1 − b + 3b x²
      on the face α_rest = 0: D_T = c_T Π_{i∈T} g_i'(α_i) (degree 2 per axis), whose integral is c_T,
      whose 1-point Gauss value (node ½) is c_T Π (1 − b_i/4), and whose sup over [0, 1]^T is
      |c_T| Π (1 + 2 b_i) (g' > 0 increases to g'(1) = 1 + 2b).
    """
    rng = np.random.default_rng(seed)
    coef = {T: rng.normal() for j in range(n + 1) for T in itertools.combinations(range(n), j)}
    b = rng.uniform(0.2, 0.8, n)
    table = np.zeros((2,) * n)  # table[bits of T] = c_T: f = table contracted with (1, g_i) on each axis
    for T, c in coef.items():
        table[tuple(int(i in T) for i in range(n))] = c

    def fn(a):
        g = (1 - b) * a + b * a**3
        out = jnp.asarray(table, a.dtype)
        for i in range(n):
            out = jnp.tensordot(jnp.stack([1.0, g[i]]), out, axes=1)  # the leading axis: component i
        return out

    def g(x, i):
        return (1 - b[i]) * x + b[i] * x**3

    def dg(x, i):
        return 1 - b[i] + 3 * b[i] * x**2

    def D(T, alpha):
        total = 0.0
        for Tp, c in coef.items():
            if set(T) <= set(Tp):
                total += c * np.prod([dg(alpha[i], i) for i in T]) * np.prod(
                    [g(alpha[j], j) for j in Tp if j not in T])
        return total

    return coef, b, fn, D


def test_mixed_partials_at_interior_points_match_closed_form():
    """D_T at interior α on a non-multilinear game (a vertex difference would give c_T, far off)."""
    n = 4
    coef, b, fn, D = cubic_edge_game(n, seed=4)
    game = FunctionGame(fn, n)
    for alpha in ([0.3, 0.55, 0.7, 0.45], [0.9, 0.15, 0.4, 0.65]):
        for T in [(0, 1), (1, 3), (0, 2, 3), (0, 1, 2, 3)]:
            expected = D(T, np.array(alpha))
            assert abs(expected - coef[T]) > 0.05 * abs(expected)  # the vertex difference would fail
            assert mixed_partial(game, T, jnp.asarray(alpha))[0] == pytest.approx(expected, rel=1e-4, abs=1e-5)
    assert mixed_partial(game, (0, 1))[0] == pytest.approx(D((0, 1), np.zeros(n)), rel=1e-4, abs=1e-5)  # α = 0


def test_linear_estimate_and_gap_match_closed_form():
    """A_i = c_i (1 − b_i) and NIE_i − A_i = c_i b_i: the gap is not zero, unlike on a multilinear game."""
    n = 4
    coef, b, fn, _ = cubic_edge_game(n, seed=4)
    game = FunctionGame(fn, n)
    c = np.array([coef[(i,)] for i in range(n)])
    np.testing.assert_allclose(linear(game)[0], c * (1 - b), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(linear_gap(game)[0], c * b, rtol=1e-5, atol=1e-5)


def test_quadrature_and_bound_match_closed_form_integrals_and_sup():
    """∫ D_T over the face = c_T (2-point Gauss–Legendre is exact on degree 2 per axis), the
    1-point rule gives c_T Π (1 − b_i/4) (so the quadrature really samples the interior), and
    the local-affine bound is the closed-form sup |c_T| Π (1 + 2 b_i), attained at the grid node 1."""
    n = 4
    coef, b, fn, _ = cubic_edge_game(n, seed=4)
    game = FunctionGame(fn, n)
    for T in [(0, 1), (1, 3), (0, 2, 3)]:
        assert interactions(game, sets=[T])[1][0, 0] == pytest.approx(coef[T], abs=1e-5)
        assert quadrature_interaction(game, T, q=2)[0] == pytest.approx(coef[T], rel=1e-4, abs=1e-5)
        midpoint = coef[T] * np.prod([1 - b[i] / 4 for i in T])
        assert quadrature_interaction(game, T, q=1)[0] == pytest.approx(midpoint, rel=1e-4, abs=1e-5)
        sup = abs(coef[T]) * np.prod([1 + 2 * b[i] for i in T])
        assert local_affine_bound(game, T)[0] == pytest.approx(sup, rel=1e-4, abs=1e-5)


def test_affine_function_has_no_interactions_and_zero_mixed_partials():
    w = np.random.default_rng(5).normal(size=4)
    game = FunctionGame(lambda a: 0.3 + a @ jnp.asarray(w, jnp.float32), 4)
    _, ints, _ = interactions(game, order=4)
    np.testing.assert_allclose(ints, 0, atol=1e-6)
    assert local_affine_bound(game, (0, 2))[0] == pytest.approx(0, abs=1e-6)
    assert mixed_partial(game, (0, 2), jnp.full(4, 0.4))[0] == pytest.approx(0, abs=1e-6)


def test_game_capabilities_are_named_by_protocols(tiny_model):
    """The estimands use a per-prompt α and a start layer only where a game has them: a PatchProblem
    has both, a FunctionGame neither; a wrong per-prompt shape is refused by name."""
    import jax.numpy as jnp

    from intjax.estimands.game import FunctionGame, LayeredGame, PromptwiseGame
    from intjax.errors import InputError
    from intjax.patching import build_problem, make_prompt_set, parse_components

    model, _ = tiny_model
    rows = [dict(clean_ids=[1, 2, 3, 4], corrupted_ids=[1, 5, 3, 6], target_id=7, foil_id=8)] * 2
    problem = build_problem(model, make_prompt_set(rows), parse_components("L0H1,L2MLP", model.config))
    assert isinstance(problem, PromptwiseGame) and isinstance(problem, LayeredGame)
    game = FunctionGame(lambda a: a.sum(), 2)
    assert not isinstance(game, PromptwiseGame) and not isinstance(game, LayeredGame)
    with pytest.raises(InputError, match="per-prompt"):
        problem.per_prompt(jnp.zeros((3, 2)))
