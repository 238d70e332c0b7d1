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
