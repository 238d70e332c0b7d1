"""Estimands on the real (tiny random) GPT-2 against references outside the code path under test:
mixed partials at interior α against central finite differences of f, and context effects
against HF torch runs with explicit hooks."""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

import intjax
from intjax.estimands import context_effects, interactions, mixed_partial, nie
from intjax.estimands.mobius import subset_masks, subsets_up_to
from intjax.patching import build_problem, make_prompt_set, parse_components
from test_patching import prompt_rows, reference_values

COMPONENTS = "L0H1,L1MLP,L1H2,L2H3"  # heads from layers 0, 1, 2 and the MLP of layer 1
ALPHA = np.array([0.3, 0.55, 0.7, 0.45])  # interior: on a multilinear game D_T(α) would not depend on α_T
SETS = {2: [(0, 1), (0, 3), (1, 2)], 3: [(0, 1, 3), (0, 2, 3), (1, 2, 3)]}
STEP = 1e-3
# Tolerances, relative to each |D_T(α)| (all ≥ 2e-3 here; asserted below so a relative bound means something).
# The 2^k-point central stencil has truncation error ≈ (h²/6)·Σ_{i∈T} ∂²D_T/∂α_i² and rounding error
# ≈ 2^k·δ/(2h)^k with δ a few float64 ulps of |f| (|f| ≲ 5 here, δ ~ 1e-15). At h = 1e-3 that is ~1e-9
# rounding for order 2 (truncation dominates: halving h quarters the error) and ~1e-6 for order 3
# (rounding dominates: halving h multiplies it by 8), i.e. up to ~5e-4 of the smallest |D_T|.
# Measured on this model (max over sets and prompts): order 2: 4.8e-6 recompute, 5.9e-6 frozen;
# order 3: 2.7e-5 recompute, 9.9e-5 frozen. The bounds leave ≥ 17× margin.
# A wrong derivative, e.g. the vertex difference over the unit square of α_T (which equals D_T on a
# multilinear game), is off by 3.9%–97% of max |D_T| per set here: asserted to exceed 10× the bound.
RTOL = {2: 1e-4, 3: 2e-3}


def central_mixed_difference(problem, T, alpha, h):
    """∂^|T| f / Π_{i∈T} ∂α_i at α by the 2^|T|-point central stencil:
    Σ_{σ∈{±1}^T} (Π σ) f(α + h σ) / (2h)^|T|, f from the chunked evaluator (no JVPs)."""
    signs = np.array(list(itertools.product((1, -1), repeat=len(T))))
    points = np.repeat(np.asarray(alpha, np.float64)[None], len(signs), axis=0)
    points[:, list(T)] += h * signs
    return signs.prod(axis=1) @ problem.values(points) / (2 * h) ** len(T)


def mixed_partial_errors(problem, alpha=ALPHA, h=STEP):
    """{order: [(T, D_T(α) by nested JVPs, finite-difference value)]}, each value `[P]`."""
    return {k: [(T, mixed_partial(problem, T, jnp.asarray(alpha)), central_mixed_difference(problem, T, alpha, h))
                for T in sets] for k, sets in SETS.items()}


@pytest.mark.parametrize("semantics", ["recompute", "frozen"])
def test_mixed_partials_at_interior_alpha_match_central_differences_through_the_model(tiny, x64, semantics):
    """D_T(α) (|T| nested jax.jvp through the differentiable scan path) against central differences of
    f (the chunked evaluator) at an interior α, orders 2 and 3, float64."""
    model, _ = intjax.load_model(tiny[0], dtype=jnp.float64, tokenizer=False)
    rows = prompt_rows(model.config.vocab_size, (7, 8))
    comps = parse_components(COMPONENTS, model.config)
    problem = build_problem(model, make_prompt_set(rows), comps, direction="noising", semantics=semantics)
    for k, results in mixed_partial_errors(problem).items():
        for T, D, fd in results:
            assert D.dtype == np.float64 and D.shape == (2,)
            assert np.abs(D).min() > 1e-3, (T, D)  # far enough from 0 for a relative tolerance
            np.testing.assert_allclose(D, fd, rtol=RTOL[k], atol=0, err_msg=f"order {k}, set {T}")
            # The test discriminates: the vertex difference over the unit square of α_T (the other α
            # kept), which equals D_T exactly on a multilinear game, is far outside the tolerance.
            centre = ALPHA.copy()
            centre[list(T)] = 0.5
            vertex = central_mixed_difference(problem, T, centre, 0.5)
            assert np.abs(vertex - D).max() > 10 * RTOL[k] * np.abs(D).max(), (T, vertex, D)



def test_face_mixed_partials_starting_above_layer_0_match_central_differences(tiny, x64):
    """On the face of T (every α outside T is 0) nested JVPs start at T's first layer from the
    cached base run (`derivatives.start_layer`); D_T there against central differences of f."""
    from intjax.estimands.derivatives import face_derivatives, start_layer

    model, _ = intjax.load_model(tiny[0], dtype=jnp.float64, tokenizer=False)
    problem = build_problem(model, make_prompt_set(prompt_rows(model.config.vocab_size, (7, 8))),
                            parse_components(COMPONENTS, model.config), direction="noising")
    nodes = np.array([0.3, 0.8])
    for T in [(1, 2), (1, 3), (2, 3), (1, 2, 3)]:
        assert start_layer(problem, T) >= 1
        D = face_derivatives(problem, T, nodes)  # [len(nodes)^|T|, P]
        for row, point in enumerate(itertools.product(nodes, repeat=len(T))):
            alpha = np.zeros(4)
            alpha[list(T)] = point
            fd = central_mixed_difference(problem, T, alpha, STEP)
            np.testing.assert_allclose(D[row], fd, rtol=RTOL[len(T)], atol=1e-7, err_msg=f"set {T} at {point}")


@pytest.mark.parametrize("semantics", ["recompute", "frozen"])
def test_context_effects_and_their_int_expansion_match_hf_runs(tiny, tiny_model, semantics):
    """Δ_i(C) from `context_effects`, and Σ_{T: i∈T⊆C∪i} INT_T from `interactions`/`nie`, against
    f(1_{C∪i}) − f(1_{C∖i}) from HF torch runs with explicit hooks (one run per patch)."""
    model, _ = tiny_model
    rows = prompt_rows(model.config.vocab_size, (7, 8), seed=3)
    comps = parse_components(COMPONENTS, model.config)
    n = len(comps)
    problem = build_problem(model, make_prompt_set(rows), comps, semantics=semantics)
    subsets = subsets_up_to(n, n)
    ref = reference_values(tiny[1], rows, comps, subset_masks(subsets, n), "noising", "counterfactual", semantics)
    f = {U: ref[m] for m, U in enumerate(subsets)}
    C = (1, 3)
    expected = np.stack([f[tuple(sorted(set(C) | {i}))] - f[tuple(sorted(set(C) - {i}))] for i in range(n)], axis=1)
    assert np.abs(expected).max() > 1e-2  # not vacuous
    np.testing.assert_allclose(context_effects(problem, C), expected, atol=2e-4)
    sets, ints, _ = interactions(problem, order=n)
    INT = {T: ints[:, j] for j, T in enumerate(sets)} | {(i,): v for i, v in enumerate(nie(problem).T)}
    for i in range(n):
        rest = tuple(c for c in C if c != i)
        expansion = sum(INT[tuple(sorted((i,) + U))] for j in range(len(rest) + 1)
                        for U in itertools.combinations(rest, j))
        np.testing.assert_allclose(expansion, expected[:, i], atol=3e-4)
