"""Attention-pattern patching (site kind `pattern`, components `L{l}H{h}PATTERN[@pos]`), against
HuggingFace's torch GPT-2 with the attention weights replaced in an explicit reference attention
function (tests/hf_patching.py), and the causal structure of pattern sites against hand-derived truth."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hf_patching as ref
from intjax.errors import InputError
from intjax.patching import build_problem, evaluate, make_prompt_set, parse_component, parse_components
from intjax.patching.components import Site
from intjax.patching.structure import site_reads
from test_patching import corrupted_from, prompt_rows, reference_values, some_masks

SPEC = "L1H2PATTERN,L0H1PATTERN@3,L2H0,L1H3PATTERN@5,L1MLP,g=L0H0PATTERN+L2H1PATTERN@4"


def test_pattern_equals_hf_attention_weights(tiny, tiny_model):
    model, _ = tiny_model
    for n in (1, 9):
        tokens = np.random.default_rng(n).integers(0, model.config.vocab_size, n)
        _, acts = model(tokens, with_pattern=True)
        _, recorded = ref.run(tiny[1], tokens, record=True)
        for layer in range(model.config.n_layers):
            np.testing.assert_allclose(np.asarray(acts.pattern[layer]), recorded[("pattern", layer)].numpy(),
                                       atol=1e-6)


@pytest.mark.parametrize("semantics", ["recompute", "frozen"])
@pytest.mark.parametrize("source", ["counterfactual", "mean", "zero"])
@pytest.mark.parametrize("direction", ["noising", "denoising"])
def test_pattern_patches_match_hf_reference(tiny, tiny_model, semantics, source, direction):
    model, _ = tiny_model
    rows = prompt_rows(model.config.vocab_size)
    components = parse_components(SPEC, model.config)
    problem = build_problem(model, make_prompt_set(rows), components, direction=direction, source=source,
                            semantics=semantics)
    masks = some_masks(len(components), np.random.default_rng(2))
    got = evaluate(problem, masks, chunk=4)
    expected = reference_values(tiny[1], rows, components, masks, direction, source, semantics)
    np.testing.assert_allclose(got, expected, atol=2e-4, rtol=1e-4)
    singles = np.abs(expected[1:1 + len(components)] - expected[:1]).max(axis=1)
    assert (singles > 1e-4).all(), "every pattern patch moves the reference metric: the check is not vacuous"


def test_pattern_patches_with_a_shared_prefix_match_hf_and_the_whole_run(tiny, tiny_model):
    """Single-token corruption: the queries before it are taken from the base run."""
    model, _ = tiny_model
    rows = corrupted_from(prompt_rows(model.config.vocab_size, (8, 10, 9), seed=21), [[5], [6], [5]], 22)
    prompts = make_prompt_set(rows)
    components = parse_components("L0H1PATTERN,L1H2PATTERN@6,L2H3PATTERN@2,L1H0", model.config)
    masks = some_masks(len(components), np.random.default_rng(3))
    problem = build_problem(model, prompts, components, direction="denoising")
    assert problem.shared_prefix == 5
    got = evaluate(problem, masks, chunk=4)
    expected = reference_values(tiny[1], rows, components, masks, "denoising", "counterfactual", "recompute")
    np.testing.assert_allclose(got, expected, atol=2e-4, rtol=1e-4)
    whole = build_problem(model, prompts, components, direction="denoising", shared_prefix=False)
    np.testing.assert_allclose(got, evaluate(whole, masks, chunk=4), atol=1e-5)


def test_pattern_gradient_equals_finite_differences_of_the_reference(tiny, tiny_model):
    """df/dα of a pattern component (the linear estimate's input) against central differences of HF."""
    model, _ = tiny_model
    rows = prompt_rows(model.config.vocab_size)
    components = parse_components("L1H2PATTERN,L2H3PATTERN@5", model.config)
    problem = build_problem(model, make_prompt_set(rows), components, direction="noising")
    alpha = jnp.array([0.3, 0.6])
    grad = np.asarray(jax.jacfwd(problem)(alpha))  # [P, n]
    h = 1e-2
    for i in range(2):
        up, down = np.array(alpha), np.array(alpha)
        up[i] += h
        down[i] -= h
        fd = (reference_values(tiny[1], rows, components, [up], "noising", "counterfactual", "recompute")
              - reference_values(tiny[1], rows, components, [down], "noising", "counterfactual", "recompute"))[0]
        np.testing.assert_allclose(grad[:, i], fd / (2 * h), atol=2e-3, rtol=2e-2)


def test_pattern_component_names(tiny_model):
    cfg = tiny_model[0].config
    c = parse_component("L2H1PATTERN@END", cfg)
    assert c.sites == (Site("pattern", 2, 1, "END"),) and c.spec == "L2H1PATTERN@END"
    assert parse_component("L0H3PATTERN", cfg).sites == (Site("pattern", 0, 3, None),)
    for bad, words in (("L0PATTERN", "cannot parse"), (f"L0H{cfg.n_heads}PATTERN", "out of range"),
                       ("L0H1PATTERNS", "cannot parse")):
        with pytest.raises(InputError, match=words):
            parse_component(bad, cfg)
    # a head's pattern and its z are different sites: both may be listed
    assert len(parse_components("L1H1,L1H1PATTERN", cfg)) == 2


@pytest.mark.parametrize("a, b, truth", [
    (Site("resid_pre", 3, None, 4), Site("pattern", 3, 0, 6), True),  # the pattern's keys read position 4
    (Site("resid_pre", 3, None, 6), Site("pattern", 3, 0, 4), False),  # a later key is never read (causal)
    (Site("pattern", 3, 0, 4), Site("z", 3, 0, 6), False),  # z at 6 weighs values with its own row only
    (Site("pattern", 3, 0, 4), Site("z", 3, 0, 4), True),  # ... which is the pattern's row at 4
    (Site("pattern", 3, 0, 4), Site("mlp_out", 3, None, 6), False),  # no attention in between
    (Site("pattern", 3, 0, 4), Site("pattern", 4, 1, 6), True),  # through layer 4's attention
    (Site("z", 3, 1, 4), Site("pattern", 3, 0, 6), False),  # computed before z
    (Site("mlp_out", 2, None, 4), Site("pattern", 3, 0, 4), True),
])
def test_pattern_sites_in_the_causal_structure(a, b, truth):
    assert site_reads(a, b, {}, 10) is truth
