"""Held-out greedy-versus-best search (studies.heldout_search) on planted games with per-prompt noise,
against direct evaluations of f and a loop bootstrap; and once on the shipped model."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from intjax.errors import InputError
from intjax.estimands import FunctionGame, context_effects, nie
from intjax.patching.prompts import PromptSet
from intjax.studies.heldout_search import (
    PromptSlice, bootstrap_means, context_pool, heldout_greedy_vs_best, pool_rule, search_pool, split_indices,
    split_prompts,
)
from intjax.report.heldout_search import heldout_search_section

NAMES = [f"c{i}" for i in range(8)]


def synergy_game(P: int, seed: int, noise: float = 0.3) -> FunctionGame:
    """0 and 1 act only together (5); 2 and 3 are redundant (3 either way); 4, 5 act alone (1, 0.5).

    Per prompt: the synergy and the redundant pair's effect are scaled by 1 + noise·N(0, 1), and every
    component gets a linear term noise·N(0, 1) (so NIE_0, NIE_1 are small but not exactly 0).
    """
    rng = np.random.default_rng(seed)
    u, v = map(jnp.asarray, 1 + noise * rng.standard_normal((2, P)))
    lin = jnp.asarray(noise * rng.standard_normal((P, 6)))

    def fn(a):
        return 5 * u * a[0] * a[1] + 3 * v * (a[2] + a[3] - a[2] * a[3]) + 1.0 * a[4] + 0.5 * a[5] + lin @ a
    return FunctionGame(fn, 6)


def additive_game(P: int, seed: int, noise: float = 0.3) -> FunctionGame:
    """f = Σ_i w_i·(1 + noise·N(0, 1)) a_i, w = 3, 2, 1.5, 1, 0.5, 0.2: no interaction, so the top-k by |NIE|
    is the best k-set on any prompts."""
    rng = np.random.default_rng(seed)
    w = jnp.asarray(np.array([3, 2, 1.5, 1, 0.5, 0.2]) * (1 + noise * rng.standard_normal((P, 6))))
    return FunctionGame(lambda a: w @ a, 6)


def invisible_game(P: int, seed: int, noise: float = 0.2) -> FunctionGame:
    """0 strong (2); 1 acts only with 0 (2·a0·a1: NIE 0, context effect 2 once 0 is patched);
    2..5 act alone (1, 0.9, 0.8, 0.7)."""
    rng = np.random.default_rng(seed)
    lin = jnp.asarray(noise * rng.standard_normal((P, 6)))
    w = jnp.asarray([2, 0, 1, 0.9, 0.8, 0.7])
    return FunctionGame(lambda a: a @ w + 2 * a[0] * a[1] + lin @ a, 6)


def null_game(P: int, seed: int, n: int = 6) -> FunctionGame:
    """Pure noise: every NIE and pairwise interaction is N(0, 1) per prompt, mean 0."""
    rng = np.random.default_rng(seed)
    lin = jnp.asarray(rng.standard_normal((P, n)))
    pairs = list(itertools.combinations(range(n), 2))
    quad = jnp.asarray(rng.standard_normal((P, len(pairs))))
    I, J = (jnp.asarray(x) for x in zip(*pairs))
    return FunctionGame(lambda a: lin @ a + quad @ (a[I] * a[J]), n)


def direct_joint(game: FunctionGame, s) -> np.ndarray:
    """f(1_S) − f(0) per prompt through the differentiable path, one set at a time."""
    n = game.n_components
    return np.asarray(game(jnp.zeros(n).at[np.array(s, int)].set(1.0)) - game(jnp.zeros(n)), np.float64)


def test_synergy_greedy_misses_and_the_held_out_shortfall_is_significant():
    rows = heldout_greedy_vs_best(synergy_game(30, 1), synergy_game(30, 2), 3, range(6))
    assert [r.k for r in rows] == [1, 2, 3] and rows[0].method == "exhaustive"
    assert rows[0].same_set and rows[0].shortfall == 0 and not rows[0].significant
    two, three = rows[1], rows[2]
    # k = 2: the ranking takes the redundant pair (joint ≈ 3), the best pair is the synergy (≈ 5)
    assert two.top_by_nie == (2, 3) and two.best == (0, 1) and two.missed == (0, 1)
    assert two.top_effect == pytest.approx(3, rel=0.15) and two.best_effect == pytest.approx(5, rel=0.15)
    assert two.shortfall == pytest.approx(0.4, abs=0.08)
    assert two.significant and two.greedy_worse and not two.greedy_better
    assert two.shortfall_ci[0] > 0.15 and two.shortfall_ci[0] <= two.shortfall <= two.shortfall_ci[1]
    assert two.difference == pytest.approx(two.best_effect - two.top_effect)  # both positive: |b| − |t|
    # k = 3: top (2, 3, 4) ≈ 4 against the synergy plus one redundant member ≈ 8
    assert set(three.missed) == {0, 1} and three.shortfall == pytest.approx(0.5, abs=0.08)
    assert three.greedy_worse and three.sign_holds
    for r in rows:  # CIs contain their point estimates; in-sample numbers are the selection game's
        assert r.top_ci[0] <= r.top_effect <= r.top_ci[1] and r.best_ci[0] <= r.best_effect <= r.best_ci[1]
        assert r.n_select == r.n_score == 30 and r.in_shortfall >= 0


def test_additive_greedy_is_optimal_and_nothing_is_significant():
    rows = heldout_greedy_vs_best(additive_game(30, 3), additive_game(30, 4), 4, range(6))
    for r in rows:
        assert r.same_set and r.top_by_nie == tuple(range(r.k)) and r.missed == ()
        assert r.shortfall == 0 and r.shortfall_ci == (0.0, 0.0)
        assert r.difference == 0 and r.difference_ci == (0.0, 0.0)
        assert not r.significant and r.in_shortfall == 0 and r.optimism == 0
        assert r.best_effect == pytest.approx(sum([3, 2, 1.5, 1][: r.k]), rel=0.1)


def test_pool_admits_an_invisible_component_that_an_nie_pool_excludes():
    select, score = invisible_game(30, 5), invisible_game(30, 6)
    effects = nie(select)
    np.testing.assert_allclose(effects.mean(0), [2, 0, 1, 0.9, 0.8, 0.7], atol=0.1)
    context = context_effects(select, (0, 2))  # the two strongest by |NIE| already patched
    assert abs(context.mean(0)[1]) == pytest.approx(2, abs=0.1)
    assert search_pool(effects, None, 3) == [0, 2, 3]  # by NIE alone, 1 never enters
    assert search_pool(effects, context, 3) == [0, 1, 2]  # NIE: 0; context: 1 (0 taken); NIE: 2
    pool, C, extra = context_pool(select, 3, n_context=2)
    assert (pool, C, extra) == ([0, 1, 2], (0, 2), [1])
    # the searches: with the NIE pool greedy looks optimal; with the context pool the best pair {0, 1} wins
    nie_rows = heldout_greedy_vs_best(select, score, 2, [0, 2, 3], nie=effects)
    assert nie_rows[1].same_set and not nie_rows[1].significant
    rows = heldout_greedy_vs_best(select, score, 2, pool, nie=effects)
    assert rows[1].top_by_nie == (0, 2) and rows[1].best == (0, 1) and rows[1].missed == (1,)
    assert rows[1].shortfall == pytest.approx(0.25, abs=0.05) and rows[1].greedy_worse
    assert "alternately" in pool_rule(3, ["c0", "c2"]) and "strongest by |mean NIE|" in pool_rule(3)


def test_search_pool_fills_alternately_and_keeps_the_lower_index_on_ties():
    nie_ = np.array([[5.0, 4, 3, 0, 0, 0]])
    ctx = np.array([[5.0, 0, 0, 1, 1, 2]])
    assert search_pool(nie_, ctx, 1) == [0]
    assert search_pool(nie_, ctx, 2) == [0, 5]  # NIE 0; context 0 is taken, so 5
    assert search_pool(nie_, ctx, 4) == [0, 1, 3, 5]  # … NIE 1; context 3 (ties with 4: lower index)
    assert search_pool(nie_, ctx, 6) == list(range(6))


def test_held_out_effects_and_cis_match_direct_evaluation_and_a_loop_bootstrap():
    select, score = synergy_game(12, 7), synergy_game(10, 8)
    rows = heldout_greedy_vs_best(select, score, 3, [0, 1, 2, 3, 4], n_boot=300, seed=3)
    rng = np.random.default_rng(3)
    idx = np.stack([rng.integers(0, 10, 10) for _ in range(300)])  # the resamples bootstrap_means draws
    for r in rows:
        t, b = direct_joint(score, r.top_by_nie), direct_joint(score, r.best)
        np.testing.assert_allclose(r.top_per_prompt, t, atol=1e-5)
        np.testing.assert_allclose(r.best_per_prompt, b, atol=1e-5)
        assert r.top_effect == pytest.approx(t.mean(), abs=1e-5)
        assert r.best_effect == pytest.approx(b.mean(), abs=1e-5)
        assert r.in_best_effect == pytest.approx(direct_joint(select, r.best).mean(), abs=1e-5)
        sign = np.sign(r.in_best_effect)
        assert r.difference == pytest.approx((sign * (b - t)).mean(), abs=1e-5)
        assert r.shortfall == pytest.approx(1 - abs(t.mean()) / abs(b.mean()), abs=1e-5)
        diffs = sign * (b[idx].mean(1) - t[idx].mean(1))
        shorts = 1 - np.abs(t[idx].mean(1)) / np.abs(b[idx].mean(1))
        np.testing.assert_allclose(r.difference_ci, np.quantile(diffs, [0.025, 0.975]), atol=1e-5)
        np.testing.assert_allclose(r.shortfall_ci, np.quantile(shorts, [0.025, 0.975]), atol=1e-5)
        np.testing.assert_allclose(r.best_ci, np.quantile(b[idx].mean(1), [0.025, 0.975]), atol=1e-5)
    values = np.random.default_rng(0).standard_normal((2, 7))
    np.testing.assert_allclose(bootstrap_means(values, 4, seed=1)[2],
                               values[:, np.random.default_rng(1).integers(0, 7, (4, 7))[2]].mean(1))


def test_in_sample_search_is_optimistic_on_a_null_game():
    rows = heldout_greedy_vs_best(null_game(20, 0), null_game(20, 1), 3, range(6))
    differ = [r for r in rows if not r.same_set]
    assert differ
    for r in differ:  # the winner's curse: the best set's in-sample effect does not carry over
        assert r.in_shortfall > 0.9 and abs(r.best_effect) < 0.6 * abs(r.in_best_effect)
        assert not r.significant
    text = heldout_search_section(rows, NAMES, NAMES[:6], pool_rule(6))
    assert "CI that includes 0: greedy cannot be told apart from the best set on held-out prompts" in text
    assert "At no budget does the best set beat the top-k" in text


def test_report_states_the_numbers_and_the_rule():
    rows = heldout_greedy_vs_best(synergy_game(30, 1), synergy_game(30, 2), 3, range(6))
    text = heldout_search_section(rows, NAMES, NAMES[:6], pool_rule(6))
    assert "| k | top-k by \\|NIE\\| | held-out joint [95% CI] | best k-set |" in text
    two = rows[1]
    assert (f"At k = 2 greedy's held-out shortfall is {two.shortfall:.0%} [{two.shortfall_ci[0]:.0%}, "
            f"{two.shortfall_ci[1]:.0%}] (in-sample {two.in_shortfall:.0%}): significant") in text
    assert f"| 2 | c2, c3 | {two.top_effect:+.3f} [" in text and "| c0, c1 | yes: best set ahead |" not in text
    assert f"| c0, c1 | {two.shortfall:.0%} [" in text and "| yes: best set ahead |" in text
    assert "At k = 1 the top-1 by |NIE| is the best 1-set" in text
    assert "Reading rule: a budget is significant when the 95% CI of the paired difference excludes 0" in text
    assert "k = 2, 3" in text and "-0.000" not in text
    additive = heldout_greedy_vs_best(additive_game(30, 3), additive_game(30, 4), 2, range(6))
    assert "there is no shortfall to overstate" in heldout_search_section(additive, NAMES, NAMES[:6], "all")


def test_bad_inputs_are_refused_with_the_problem_named():
    select, score = synergy_game(8, 0), synergy_game(8, 1)
    with pytest.raises(InputError, match="k_max must be in 1..3"):
        heldout_greedy_vs_best(select, score, 4, [0, 1, 2])
    with pytest.raises(InputError, match="pool is empty"):
        heldout_greedy_vs_best(select, score, 1, [])
    with pytest.raises(InputError, match="0..5"):
        heldout_greedy_vs_best(select, score, 1, [0, 6])
    with pytest.raises(InputError, match="6 components but the score game has 8"):
        heldout_greedy_vs_best(select, null_game(8, 0, n=8), 1, [0, 1])
    with pytest.raises(InputError, match="at least 2"):
        heldout_greedy_vs_best(select, synergy_game(1, 1), 1, [0, 1])
    with pytest.raises(InputError, match="n_boot"):
        heldout_greedy_vs_best(select, score, 1, [0, 1], n_boot=0)
    with pytest.raises(InputError, match="pool size must be in 1..6"):
        search_pool(np.zeros((2, 6)), None, 7)
    with pytest.raises(InputError, match="same components"):
        search_pool(np.zeros((2, 6)), np.zeros((2, 5)), 2)
    with pytest.raises(InputError, match="no held-out search rows"):
        heldout_search_section([], NAMES, NAMES, "all")


def _prompt_set(P: int) -> PromptSet:
    rng = np.random.default_rng(0)
    clean = tuple(rng.integers(1, 50, 4 + p % 3) for p in range(P))
    return PromptSet(clean, tuple(c[::-1].copy() for c in clean), np.arange(P), np.arange(P) + 100,
                     {"S": np.array([p % 4 for p in range(P)])})


def test_split_prompts_is_a_seeded_disjoint_split():
    prompts = _prompt_set(9)
    select, score = split_prompts(prompts, 0.5, seed=0)
    assert (len(select), len(score)) == (4, 5)  # round(4.5) = 4 (banker's rounding)
    targets = np.concatenate([select.target, score.target])
    assert sorted(targets.tolist()) == list(range(9))  # target p = p names the prompt: disjoint, complete
    for part in (select, score):
        for j, p in enumerate(part.target):
            np.testing.assert_array_equal(part.clean[j], prompts.clean[p])
            assert part.foil[j] == p + 100 and part.positions["S"][j] == p % 4
    again, _ = split_prompts(prompts, 0.5, seed=0)
    other, _ = split_prompts(prompts, 0.5, seed=1)
    np.testing.assert_array_equal(again.target, select.target)
    assert other.target.tolist() != select.target.tolist()
    assert len(split_prompts(prompts, 0.25)[0]) == 2
    with pytest.raises(InputError, match="strictly between 0 and 1"):
        split_prompts(prompts, 1.0)
    with pytest.raises(InputError, match="at least one prompt"):
        split_prompts(_prompt_set(1), 0.5)


def test_prompt_slice_is_the_game_on_some_prompts():
    game = synergy_game(10, 0)
    masks = np.array([[0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 1, 0]], float)
    part = PromptSlice(game, [7, 2, 3])
    assert part.n_components == 6
    np.testing.assert_allclose(part.values(masks), game.values(masks)[:, [7, 2, 3]])
    np.testing.assert_allclose(part(jnp.ones(6)), game(jnp.ones(6))[jnp.array([7, 2, 3])])
    with pytest.raises(InputError, match="outside 0..9"):
        PromptSlice(game, [3, 10]).values(masks)
    with pytest.raises(InputError, match="at least one prompt"):
        PromptSlice(game, [])


def test_held_out_search_on_the_shipped_model_matches_direct_runs():
    import intjax
    from intjax.patching.components import parse_components
    from intjax.patching.problem import build_problem
    from intjax.ioi.task import ioi_prompts

    model, tokenizer = intjax.load_model("ioi-small")
    heads = parse_components("heads", model.config)
    problem = build_problem(model, ioi_prompts(tokenizer, 8, seed=0).prompts, heads, direction="noising")
    select, score = split_indices(8, 0.5, seed=0)
    rows = heldout_greedy_vs_best(PromptSlice(problem, select), PromptSlice(problem, score), 2,
                                  [1, 4, 8, 11, 14], n_boot=500)
    f = jax.jit(problem.__call__)  # the differentiable path, one set at a time, on every prompt
    base = np.asarray(f(jnp.zeros(len(heads))))
    for r in rows:
        for s, per_prompt in ((r.top_by_nie, r.top_per_prompt), (r.best, r.best_per_prompt)):
            direct = np.asarray(f(jnp.zeros(len(heads)).at[np.array(s)].set(1.0))) - base
            np.testing.assert_allclose(per_prompt, direct[score], atol=1e-3)
        assert r.n_select == r.n_score == 4 and r.method == "exhaustive"
        assert r.best_names == tuple(heads[i].name for i in r.best)  # names, not indices (PromptSlice's game's)
        assert r.missed_names == tuple(heads[i].name for i in r.best if i not in r.top_by_nie)
