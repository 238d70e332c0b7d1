"""The pairwise / higher-order split of joint − Σ NIE against planted Möbius coefficients."""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from intjax.errors import InputError
from intjax.estimands import FunctionGame
from intjax.studies.order_split import order_split, order_split_sentence


def planted(n, P, seed=0):
    """f(α) = Σ_T c_T(p) Π_{i∈T} α_i with planted singles, pairs and a few triples per prompt."""
    rng = np.random.default_rng(seed)
    terms = {(i,): rng.normal(-1, 0.3, P) for i in range(n)}
    terms.update({T: rng.normal(0.2, 0.1, P) for T in itertools.combinations(range(n), 2)})
    terms.update({T: rng.normal(0.5, 0.1, P) for T in list(itertools.combinations(range(n), 3))[:4]})

    def f(a):
        return sum(jnp.asarray(c) * jnp.prod(a[jnp.array(T)]) for T, c in terms.items())

    pair_sum = sum(c for T, c in terms.items() if len(T) == 2).mean()
    higher_sum = sum(c for T, c in terms.items() if len(T) == 3).mean()
    return FunctionGame(f, n), pair_sum, higher_sum


def test_exact_split_equals_the_planted_coefficient_sums():
    game, pair_sum, higher_sum = planted(6, 12)
    split = order_split(game)
    assert split.exact and split.n_pairs == 15
    np.testing.assert_allclose(split.pairwise, pair_sum, atol=1e-5)
    np.testing.assert_allclose(split.higher, higher_sum, atol=1e-5)
    assert split.pairwise_ci[0] <= pair_sum <= split.pairwise_ci[1]
    assert "cannot be told apart" not in order_split_sentence(split, "noising")


def test_sampled_pairs_cover_the_true_sum():
    game, pair_sum, _ = planted(12, 16, seed=1)  # 66 pairs, 20 sampled
    covered = 0
    for seed in range(10):
        split = order_split(game, max_pairs=20, seed=seed, n_boot=500)
        assert not split.exact and split.n_pairs_evaluated == 20
        covered += split.pairwise_ci[0] <= pair_sum <= split.pairwise_ci[1]
    assert covered >= 8
    assert "sampled uniformly" in order_split_sentence(split, "noising")


def test_too_few_components():
    with pytest.raises(InputError, match="at least 2 components"):
        order_split(FunctionGame(lambda a: a.sum(), 1))
