"""The layer-by-layer Hessian-vector products against reverse mode over the evaluator's differentiable loop
(`PatchProblem.__call__` with a traced start, jvp of grad) where the finite-difference tests do not reach:
a shared prefix, frozen semantics, and components at role positions."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from intjax.estimands import hessian
from intjax.estimands.layerwise_hvp import layerwise_hvp, supports_layerwise
from intjax.patching import build_problem, make_prompt_set, parse_components
from intjax.patching.evaluate import compile_view
from test_patching import prompt_rows


@pytest.mark.slow  # 20-30 s each on the loaded 2-core machine (two programs compiled); the fast FD tests of
# tests/test_hessian_screen.py run the same products without a shared prefix
@pytest.mark.parametrize("semantics", ["recompute", "frozen"])
def test_layerwise_products_equal_reverse_mode_over_the_loop(tiny_model, semantics):
    model = tiny_model[0]
    rows = prompt_rows(model.config.vocab_size, (7, 8), seed=6)
    for p, row in enumerate(rows):  # the first two tokens shared: a prefix the products take from the base run
        row["corrupted_ids"][:2] = row["clean_ids"][:2]
        row["positions"] = {"X": 3 + p}
    problem = build_problem(model, make_prompt_set(rows), parse_components("L0H1@X,L0H2,L1MLP,L1H0@~X,L2H3",
                                                                           model.config), semantics=semantics)
    assert problem.shared_prefix == 2 and supports_layerwise(problem)
    game, width = compile_view(problem), problem.slots
    tangents = np.zeros((3, width), np.float32)
    tangents[np.arange(3), np.arange(3)] = 1  # L0H1@X, L0H2, L1MLP from layer 0
    alpha = jax.device_put(np.zeros((problem.n_prompts, width), np.float32))
    for start in (0, 1):
        got = np.asarray(layerwise_hvp(game, jax.device_put(tangents), np.int32(start)))
        want = np.asarray(hessian._hvp_from_layer(game, alpha, jax.device_put(tangents), np.int32(start)))
        rows_above = np.flatnonzero(problem.first_layers() >= start)
        assert np.abs(want[..., rows_above]).max() > 1e-3
        np.testing.assert_allclose(got[..., rows_above], want[..., rows_above], atol=1e-5 * np.abs(want).max())
