"""Estimands on functions whose Möbius coefficients and derivatives are known in closed form."""

from __future__ import annotations

import itertools
from math import comb

import jax.numpy as jnp
import numpy as np
import pytest

from intjax.estimands import (
    FunctionGame, context_effects, fast_mobius, full_lattice_interactions, interactions, linear,
    local_affine_bound, mixed_partial, n_subsets_up_to, nie, quadrature_interaction,
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


def test_nie_context_effects_and_their_identity():
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


def test_linear_mixed_partials_quadrature_and_bound():
    n = 4
    coef, fn = multilinear(n, seed=4, density=1.0)
    game = FunctionGame(fn, n)
    np.testing.assert_allclose(linear(game)[0], [coef[(i,)] for i in range(n)], atol=1e-5)
    for T in [(0, 1), (1, 3), (0, 2, 3)]:
        assert mixed_partial(game, T)[0] == pytest.approx(coef[T], abs=1e-5)
        # multilinear: D_T is affine in each remaining α, so the quadrature is exact
        exact = interactions(game, sets=[T])[1][0, 0]
        assert quadrature_interaction(game, T, q=2)[0] == pytest.approx(exact, abs=1e-5)
        assert abs(exact) <= local_affine_bound(game, T)[0] + 1e-6


def test_affine_function_has_no_interactions_and_zero_mixed_partials():
    w = np.random.default_rng(5).normal(size=4)
    game = FunctionGame(lambda a: 0.3 + a @ jnp.asarray(w, jnp.float32), 4)
    _, ints, _ = interactions(game, order=4)
    np.testing.assert_allclose(ints, 0, atol=1e-6)
    assert local_affine_bound(game, (0, 2))[0] == pytest.approx(0, abs=1e-6)
