"""The IOI studies' machinery on games with planted interactions, against closed forms and brute force."""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from intjax.errors import InputError
from intjax.estimands import FunctionGame
from intjax.ioi.faithfulness import decompose, variance_shares
from intjax.studies.search import beam_search, greedy_vs_best, n_exhaustive_sets
from intjax.studies.visibility import label_components, visibility


def planted_search_fn(a):
    """0 and 1 act only together (5); 4 and 5 are redundant (3 either way); 2, 3, 6, 7 act alone."""
    synergy = 5 * a[0] * a[1]
    redundant = 3 * (a[4] + a[5] - a[4] * a[5])
    return synergy + redundant + 1.0 * a[2] + 0.9 * a[3] + 0.2 * a[6] + 0.1 * a[7]


def brute_best(fn, n, k):
    """The best k-set by |f(1_S) − f(0)|, by trying every set."""
    def effect(s):
        return float(fn(jnp.zeros(n).at[np.array(s, int)].set(1.0)) - fn(jnp.zeros(n)))
    return max(itertools.combinations(range(n), k), key=lambda s: abs(effect(s))), effect


def test_greedy_misses_synergy_exhaustive_finds_it():
    game = FunctionGame(planted_search_fn, 8)
    rows = greedy_vs_best(game, k_max=6)
    assert [r.method for r in rows] == ["exhaustive"] * 6
    assert rows[0].n_evaluated == n_exhaustive_sets(8, 6)
    # k = 2: the ranking takes the redundant pair (NIE 3 each, joint 3); the best pair is the synergy (5)
    assert rows[1].top_by_nie == (4, 5) and rows[1].top_effect == pytest.approx(3.0)
    assert rows[1].best == (0, 1) and rows[1].best_effect == pytest.approx(5.0)
    assert rows[1].missed == (0, 1)
    for r in rows:  # every budget agrees with brute force over all k-sets
        best, effect = brute_best(planted_search_fn, 8, r.k)
        assert r.best_effect == pytest.approx(effect(best), abs=1e-5)
        assert r.top_effect == pytest.approx(effect(r.top_by_nie), abs=1e-5)
    assert rows[0].missed == ()  # one component: the ranking is right (4 or 5, effect 3)


def test_beam_search_beyond_the_exhaustive_limit():
    game = FunctionGame(planted_search_fn, 8)
    rows = greedy_vs_best(game, k_max=4, exhaustive_limit=4, beam_width=8)
    assert rows[0].method == "beam(8)"
    for r in rows:
        best, effect = brute_best(planted_search_fn, 8, r.k)
        assert r.best_effect == pytest.approx(effect(best), abs=1e-5)
    # a beam of width 1 is forward selection: it starts from a redundant member and never sees the synergy
    best, _ = beam_search(game, range(8), 2, width=1)
    assert best[2][0] != (0, 1)


def test_search_rejects_bad_pools():
    game = FunctionGame(planted_search_fn, 8)
    with pytest.raises(InputError, match="pool"):
        greedy_vs_best(game, pool=[0, 9])
    with pytest.raises(InputError, match="k_max"):
        greedy_vs_best(game, k_max=0)


def planted_visibility_fn(a):
    """0 strong; 1 acts only with 0 (invisible); 2 redundant with 0 (inflated); 3 tiny; 4 flips sign with 0."""
    return (2 * a[0] + 2 * a[0] * a[1] + 1.5 * a[2] - 1.5 * a[0] * a[2] + 0.01 * a[3]
            + 0.5 * a[4] - 1.0 * a[0] * a[4])


def test_detector_flags_planted_components():
    vis = visibility(FunctionGame(planted_visibility_fn, 5), n_context=1)
    assert vis.context_set == (0,)
    np.testing.assert_allclose(vis.nie, [2, 0, 1.5, 0.01, 0.5], atol=1e-6)
    np.testing.assert_allclose(vis.context, [2, 2, 0, 0.01, -0.5], atol=1e-6)
    assert vis.labels == ("", "invisible", "inflated", "", "flipped")
    assert vis.flagged("invisible") == [1] and vis.flagged("inflated") == [2]
    assert "3×" in vis.rule


def test_detector_thresholds():
    # below the floor nothing is flagged; the ratio decides between invisible and unlabelled
    assert label_components([0.0, 0.0], [0.04, 1.0], scale=1.0) == ("", "invisible")
    assert label_components([1.0], [0.4], scale=1.0, ratio=3) == ("",)
    assert label_components([1.0], [0.3], scale=1.0, ratio=3) == ("inflated",)
    with pytest.raises(InputError, match="ratio"):
        label_components([1.0], [1.0], 1.0, ratio=1.0)


def random_multilinear(n, seed):
    """Three "prompts" f_p = s_p Σ_T c_T Π_{i∈T} α_i (s = 1, 0.5, −2); returns (coef, scales, fn)."""
    rng = np.random.default_rng(seed)
    coef = {T: rng.normal() for j in range(n + 1) for T in itertools.combinations(range(n), j)}
    scales = np.array([1.0, 0.5, -2.0])

    def fn(a):
        return jnp.stack([sum(c * s * jnp.prod(a[np.array(T)]) if T else c * s for T, c in coef.items())
                          for s in scales])
    return coef, scales, fn


def test_faithfulness_decomposition_matches_closed_form_coefficients():
    """Keeping classes S sets α_i = 1 − [i ∈ S] for the k classes and α_rest = 1, so with
    x_i = [i ∈ S]: Π_{i∈T} α_i = Π_{i∈T∖rest} (1 − x_i) = Σ_{U⊆T∖rest} (−1)^|U| x^U, and the Möbius
    term of kept set U is (−1)^|U| Σ_{T ⊇ U} c_T (T over all k + 1 units): computed here from the
    planted coefficients, not from the kept values."""
    k = 3
    coef, scales, fn = random_multilinear(k + 1, seed=3)
    dec = decompose(FunctionGame(fn, k + 1), k)

    def closed_form_term(U):
        return scales * (-1) ** len(U) * sum(c for T, c in coef.items() if set(U) <= set(T))

    subsets = [U for j in range(k + 1) for U in itertools.combinations(range(k), j)]
    for S in subsets:  # brute force: g(S) = f with the rest and every class outside S ablated
        mask = np.ones(k + 1)
        mask[list(S)] = 0
        np.testing.assert_allclose(dec.kept[:, sum(1 << i for i in S)], fn(jnp.asarray(mask)), rtol=1e-5)
        np.testing.assert_allclose(dec.term(S), closed_form_term(S), atol=1e-5)
    np.testing.assert_allclose(dec.model, scales * coef[()], rtol=1e-6)  # f(0)
    np.testing.assert_allclose(dec.circuit, scales * (coef[()] + coef[(k,)]), rtol=1e-5)  # only rest ablated
    parts = dec.order_sums()
    for name, sizes in (("ablated", {0}), ("main", {1}), ("pairwise", {2}), ("higher", set(range(3, k + 1)))):
        expected = sum((closed_form_term(U) for U in subsets if len(U) in sizes), np.zeros(3))
        np.testing.assert_allclose(parts[name], expected, atol=1e-5, err_msg=name)
    assert dec.faithfulness == pytest.approx((coef[()] + coef[(k,)]) / coef[()], rel=1e-5)


def test_variance_shares_match_numpy_covariances():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), 0.3 * rng.normal(size=50)
    shares = variance_shares(a + b, {"a": a, "b": b})
    for name, part in (("a", a), ("b", b)):
        assert shares[name] == pytest.approx(np.cov(a + b, part, bias=True)[0, 1] / np.var(a + b))
    with pytest.raises(InputError, match="sum"):
        variance_shares(a + b, {"a": a})


def test_label_support_is_one_for_identical_prompts_and_near_half_on_a_threshold():
    """Bootstrap support of a label: every resample agrees when all prompts are equal; a mean
    sitting on the 3× threshold with symmetric noise is labelled either way about half the time."""
    from intjax.studies.visibility import label_components, label_support

    nie = np.tile([1.0, 0.1, 1.0], (40, 1))
    ctx = np.tile([0.1, 1.0, 1.0], (40, 1))
    labels = label_components(nie.mean(0), ctx.mean(0), scale=1.0)
    assert labels == ("inflated", "invisible", "")
    assert np.all(label_support(nie, ctx, labels, scale=1.0) == 1.0)
    noise = np.random.default_rng(0).choice([-0.2, 0.2], size=40)
    noise -= noise.mean()  # the mean context effect is exactly 3 × NIE: "invisible" by ≥
    nie2, ctx2 = np.full((40, 1), 0.5), (1.5 + noise)[:, None]
    labels2 = label_components(nie2.mean(0), ctx2.mean(0), scale=1.0)
    assert labels2 == ("invisible",)
    assert 0.35 < label_support(nie2, ctx2, labels2, scale=1.0)[0] < 0.65
