"""How many XLA programs the engine builds, counted with jax.monitoring listeners (`count_compiles`):
a sweep is a fixed set of compiled programs whatever its order, mask count or chunk, so a change that
multiplies programs fails here. The counts are upper bounds the issue set (build_problem ≤ 4 programs,
a sweep ≤ 8) and the exact number this engine needs (one program per sweep shape)."""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np
import pytest

from intjax.compile_stats import count_compiles
from intjax.estimands.derivatives import mixed_partial
from intjax.estimands.mobius import subset_masks, subsets_up_to
from intjax.patching import build_problem, evaluate, make_prompt_set, parse_components
from intjax.patching.evaluate import SweepStats
from test_patching import prompt_rows

SPEC = "L0H1,L0MLP,L1H2,g=L0H3+L2H0,L1RESID@3,L2MLP,L2H1"


@pytest.fixture(scope="module")
def fresh_problem(tiny_model):
    """A problem of shapes no other test uses (5 prompts of 7–11 tokens), built with empty in-memory caches."""
    jax.clear_caches()
    model = tiny_model[0]
    rows = prompt_rows(model.config.vocab_size, (7, 9, 11, 8, 10), seed=3)
    with count_compiles() as built:
        problem = build_problem(model, make_prompt_set(rows), parse_components(SPEC, model.config))
    return problem, built


def test_build_problem_is_at_most_four_programs(fresh_problem):
    _, built = fresh_problem
    assert 1 <= built.programs <= 4, built.by_name


def test_every_sweep_of_a_problem_shares_one_program(fresh_problem):
    """NIE, order 2, order 3 and fractional masks at one chunk setting: one program for all of them
    (and the values match one mask at a time through the differentiable path, so the counts are of a
    working engine)."""
    problem, _ = fresh_problem
    n = problem.n_components
    sweeps = [subset_masks(subsets_up_to(n, k), n) for k in (1, 2, 3)]
    sweeps.append(np.random.default_rng(0).uniform(size=(37, n)))
    counts, values = [], []
    for masks in sweeps:
        with count_compiles() as swept:
            values.append(evaluate(problem, masks, chunk=16))
        counts.append(swept.programs)
    assert counts[0] <= 8 and counts[1:] == [0, 0, 0], counts
    f = eqx.filter_jit(lambda p, a: p(a))
    one_at_a_time = np.stack([np.asarray(f(problem, np.asarray(m, np.float32))) for m in sweeps[3][:5]])
    np.testing.assert_allclose(values[3][:5], one_at_a_time, atol=1e-5)


def test_chunk_setting_changes_shapes_not_program_count(fresh_problem):
    """Each --chunk is one more program (its buffers' shape), never one per chunk or per layer."""
    problem, _ = fresh_problem
    n = problem.n_components
    masks = subset_masks(subsets_up_to(n, 2), n)
    for chunk in (4, 7, 29):
        stats = SweepStats()
        with count_compiles() as swept:
            evaluate(problem, masks, chunk=chunk, stats=stats)
        assert swept.programs <= 2 and stats.chunks == -(-(len(masks) - 1) // stats.schedule.capacity), (
            chunk, swept.by_name, stats)


def test_mixed_partials_share_one_program_per_order(fresh_problem):
    """D_T for sets starting in different layers: the start layer is traced, one program per order."""
    problem, _ = fresh_problem
    with count_compiles() as first:
        mixed_partial(problem, (0, 2))  # starts in layer 0
    with count_compiles() as again:
        mixed_partial(problem, (2, 6))  # starts in layer 1
        mixed_partial(problem, (5, 6))  # starts in layer 2
    assert first.programs >= 1 and again.programs == 0, again.by_name


def test_problems_of_nearby_lengths_directions_and_sources_share_the_base_run_program(tiny_model):
    """Prompt sets of 17–20 tokens run at one padded length (`padded_length`: a multiple of 4 here), and
    direction, source, shared prefix and site kinds are chosen on the host: after the first problem, the
    sets of 18/19/20 tokens, the other direction, the zero source and another site kind compile no base
    run program. (That the padding changes no value is the HF comparisons' job: test_patching's prompts
    of 7–11 tokens run padded to 8 and 12.)"""
    from intjax.patching.prompts import padded_length

    assert [padded_length(n) for n in (1, 4, 5, 17, 20, 31, 33, 64, 65, 200)] == [4, 4, 8, 20, 20, 32, 36, 64,
                                                                                   72, 208]
    assert padded_length(30, limit=29) == 30 and padded_length(18, limit=19) == 19  # never past n_positions
    model = tiny_model[0]
    jax.clear_caches()
    sets = [make_prompt_set(prompt_rows(model.config.vocab_size, (n, n - 2, n - 1), seed=n)) for n in (17, 18, 19, 20)]
    heads, mixed = parse_components("L0H1,L1H2", model.config), parse_components("L0MLP,L1H0", model.config)
    with count_compiles() as first:
        build_problem(model, sets[0], heads)
    with count_compiles() as rest:
        for s in sets[1:]:
            build_problem(model, s, heads)
        build_problem(model, sets[2], heads, direction="denoising")
        build_problem(model, sets[3], mixed, source="zero")
    assert first.by_name["jit(_base_runs)"] == 1 and "jit(_base_runs)" not in rest.by_name, rest.by_name
