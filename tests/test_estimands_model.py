"""Estimands on a real (tiny random) GPT-2: brute force against HF, finite differences, code-path
comparisons, theorems."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import intjax
from intjax.estimands import interactions, linear, linear_gap, nie, theorem_table
from intjax.estimands.mobius import subset_masks, subsets_up_to
from intjax.estimands.theorems import integral_verdict
from intjax.patching import build_problem, make_prompt_set, parse_components
from test_patching import prompt_rows, reference_values


def brute_force_int(f_of_subset, T):
    """Inclusion–exclusion written out: Σ_{U⊆T} (−1)^{|T|−|U|} f(1_U)."""
    return sum((-1) ** (len(T) - j) * f_of_subset[U] for j in range(len(T) + 1)
               for U in itertools.combinations(T, j))


@pytest.mark.parametrize("semantics", ["recompute", "frozen"])
def test_pairs_and_triples_match_brute_force_hf_loop(tiny, tiny_model, semantics):
    model, _ = tiny_model
    rows = prompt_rows(model.config.vocab_size, (7, 8))
    comps = parse_components("L0H1,L1MLP,L2H3,L1H0@4", model.config)
    problem = build_problem(model, make_prompt_set(rows), comps, semantics=semantics)
    sets, ints, _ = interactions(problem, order=3)
    subsets = subsets_up_to(4, 4)
    ref = reference_values(tiny[1], rows, comps, subset_masks(subsets, 4), "noising", "counterfactual", semantics)
    f = {U: ref[i] for i, U in enumerate(subsets)}
    expected = np.stack([brute_force_int(f, T) for T in sets], axis=1)
    np.testing.assert_allclose(ints, expected, atol=3e-4)


def identity_residual(problem, order, dtype):
    """max |f(1_S) − f(0) − Σ_{∅≠T⊆S} INT_T| / effect scale, f(1_S) from the scan path."""
    sets, ints, values = interactions(problem, order=order)
    n = problem.n_components
    INT = {T: ints[:, i] for i, T in enumerate(sets)} | {(i,): values[(i,)] - values[()] for i in range(n)}
    worst, scale = 0.0, max(np.abs(v).max() for v in INT.values())
    f0 = np.asarray(problem(jnp.zeros(n, dtype)), np.float64)
    for S in itertools.combinations(range(n), order):
        mask = np.zeros(n)
        mask[list(S)] = 1
        fresh = np.asarray(problem(jnp.asarray(mask, dtype)), np.float64)
        total = sum(INT[T] for j in range(1, order + 1) for T in itertools.combinations(S, j))
        worst = max(worst, float(np.abs(fresh - f0 - total).max()))
    return worst / scale


@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-9), ("float32", 1e-5)])
def test_mobius_sums_from_chunked_evaluator_equal_fresh_scan_path_values(tiny, dtype, tolerance):
    """Σ_{∅≠T⊆S} INT_T from the chunked evaluator's vertex values against fresh f(1_S) − f(0) from the
    differentiable scan path: Möbius inversion makes the sum the chunked f(1_S) − f(0) by construction,
    so this compares the two code paths (the brute-force HF test above checks INT itself)."""
    jax.config.update("jax_enable_x64", dtype == "float64")
    try:
        model, _ = intjax.load_model(tiny[0], dtype=getattr(jnp, dtype), tokenizer=False)
        rows = prompt_rows(model.config.vocab_size, (7, 8))
        comps = parse_components("L0H1,L1MLP,L2H3,L0MLP", model.config)
        problem = build_problem(model, make_prompt_set(rows), comps)
        assert identity_residual(problem, 3, getattr(jnp, dtype)) < tolerance
    finally:
        jax.config.update("jax_enable_x64", False)


def test_linear_estimate_matches_finite_differences_and_gap_matches_hf(tiny, tiny_model):
    """A = ∂f/∂α(0) (reverse mode through the scan path) against central differences of f along
    each e_i (chunked evaluator); NIE and the gap NIE − A against HF torch runs minus those differences."""
    model, _ = tiny_model
    rows = prompt_rows(model.config.vocab_size, (6, 9))
    comps = parse_components("heads,mlps", model.config)
    problem = build_problem(model, make_prompt_set(rows), comps)
    A = linear(problem)
    eps = 1e-2
    n = problem.n_components
    plus = problem.values(eps * np.eye(n))
    minus = problem.values(-eps * np.eye(n))
    fd = ((plus - minus) / (2 * eps)).T
    np.testing.assert_allclose(A, fd, atol=2e-3, rtol=2e-2)
    ref = reference_values(tiny[1], rows, comps, np.concatenate([np.zeros((1, n)), np.eye(n)]), "noising",
                           "counterfactual", "recompute")
    nie_hf = (ref[1:] - ref[:1]).T
    np.testing.assert_allclose(nie(problem), nie_hf, atol=2e-4)
    gap = linear_gap(problem)  # NIE − linear: the non-linear part of each single patch
    # the two tolerances above added: |A − fd| ≤ 2e-3 + 2e-2|fd| and |NIE − NIE_hf| ≤ 2e-4
    assert np.all(np.abs(gap - (nie_hf - fd)) <= 2e-3 + 2e-2 * np.abs(fd) + 2e-4)
    assert gap.shape == (2, n) and np.abs(gap).max() > 1e-2  # the check is not vacuous: f is far from affine


def test_frozen_with_linear_readout_has_no_interactions(tiny, x64):
    """Last-layer heads with the last MLP pinned and a readout without the final LayerNorm:
    nothing non-linear lies between the analysed components and the metric."""
    model, _ = intjax.load_model(tiny[0], dtype=jnp.float64, tokenizer=False)
    rows = prompt_rows(model.config.vocab_size, (7, 8))
    comps = parse_components("L2H0,L2H1,L2H2,L2H3,L2MLP", model.config)
    problem = build_problem(model, make_prompt_set(rows), comps, semantics="frozen",
                            metric="logit_diff_direct")
    _, ints, _ = interactions(problem, order=4)
    assert np.abs(ints).max() < 1e-10
    recompute = build_problem(model, make_prompt_set(rows), comps, metric="logit_diff_direct")
    assert np.abs(interactions(recompute, order=2)[1]).max() > 1e-3  # the MLP is non-linear


def test_theorem_table_fresh_scan_vs_chunked_identities_integral_vs_exact_bound_and_slopes(tiny, x64):
    """The two identity residuals compare fresh f values from the scan path with Möbius sums of the
    chunked evaluator's values (equal by construction if both paths agree: a code-path check, not a
    theorem check); the integral of nested-JVP mixed partials against the exact INT, the bound
    and the scaling slopes are the theorem checks."""
    model, _ = intjax.load_model(tiny[0], dtype=jnp.float64, tokenizer=False)
    rows = prompt_rows(model.config.vocab_size, (7, 7, 7))
    comps = parse_components("L0H1,L0MLP,L1H2,L1MLP,L2H0", model.config)
    prompts = make_prompt_set(rows)
    problems = {s: build_problem(model, prompts, comps, semantics=s) for s in ("recompute", "frozen")}
    ticks = []
    table = theorem_table(lambda s, t: problems[s].with_source_scale(t), order=3, n_check=2,
                          bound_order=2, tick=ticks.append)  # the sampled sup on triples: tests/test_bound.py
    faces = [t for t in ticks if t.startswith("integral over face") and t.endswith("scramblings")]
    levels = [t for t in ticks if t.startswith("sampled sup:")]
    assert len(faces) == len(table["checked_sets"]), ticks  # a progress line after every face
    assert any(t.endswith("new points") for t in ticks), ticks  # and inside each, every 4 batches of points
    assert len(levels) >= sum(len(r["level_sampled_sups_max"]) for r in table["bound_by_set"]) > 0, ticks
    assert table["identity_max_residual"] < 1e-9 * table["effect_scale"]
    assert table["context_identity_max_residual"] < 1e-9 * table["effect_scale"]
    assert integral_verdict(table) == "pass", (table["integral_max_z"], table["integral_resolution"])
    assert table["integral_max_rel_error"] < 0.05
    assert table["bound_holds_fraction"] == 1.0
    for k, slope in table["slope_frozen"].items():
        assert abs(slope - k) < 0.15, (k, slope)
    assert abs(table["slope_recompute"][2] - 1) < 0.3  # a blocked path adds an O(t) term
