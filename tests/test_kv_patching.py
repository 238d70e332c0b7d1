"""Key/value patching (site kinds `k` and `v`, components `L{l}KV{h}[@pos]`, `L{l}K{h}`, `L{l}V{h}`) against
HuggingFace torch models whose rotated keys and values are replaced, per key/value head, in an explicit
reference attention function (tests/hf_patching.py): GPT-2 and every Llama-family model and GPT-NeoX,
grouped-query attention included; attention-pattern patching on a grouped-query model against the same
reference; the causal structure of key and value sites against hand-derived truth."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hf_patching
import hf_patching_llama as ref_llama
import intjax
from conftest import hf_forward
from intjax.errors import InputError
from intjax.estimands import interactions, nie
from intjax.estimands.mobius import subset_masks, subsets_up_to
from intjax.patching import build_problem, evaluate, make_prompt_set, parse_component, parse_components
from intjax.patching.components import Site
from intjax.patching.structure import reads, site_reads
from test_llama import save_hf_llama, shared_prefix_rows
from test_patching import reference_values as gpt2_reference, some_masks

FAMILIES = ("llama", "qwen2", "mistral", "gpt_neox")  # GQA 4/2 heads; 4/2; 4/1 with a window of 6; 4/4
# key/value components (one inside the shared prefix of 4 positions, whose patch must change nothing),
# keys or values alone, a query head of a patched group, a group mixing kinds
SPECS = {
    "gpt2": "L1KV3,L1H3,L0KV0@5,L2K1,L2V2,g=L0KV2+L1MLP",
    "llama": "L1KV0,L1H1,L0KV1@6,L0KV1@2,L2K1,L1V1,g=L0KV0+L2H3",
    "qwen2": "L0KV1,L1KV0@7,L2K0,L1H2",
    "mistral": "L0KV0@5,L1KV0,L2V0,L1H2",
    "gpt_neox": "L0KV2,L1KV0@6,L1H0,L2V3",
}


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny, tiny_model):
    """family -> (torch model, intjax model): the tiny GPT-2 and one tiny checkpoint per Llama family."""
    out = {"gpt2": (tiny[1], tiny_model[0])}
    for family in FAMILIES:
        folder = tmp_path_factory.mktemp(family)
        out[family] = save_hf_llama(folder, family), intjax.load_model(folder, tokenizer=False)[0]
    return out


def view(family, hf_model):
    """The torch model as `hf_patching.run` reads it."""
    return hf_model if family == "gpt2" else ref_llama.GPT2View(hf_model)


def reference(family, hf_model, rows, components, masks, direction):
    """f at every mask from one torch run per patch (recompute semantics, counterfactual source)."""
    if family == "gpt2":
        return gpt2_reference(hf_model, rows, components, masks, direction, "counterfactual", "recompute")
    return ref_llama.reference_values(hf_model, rows, components, masks, direction)


@pytest.mark.parametrize("family", ["gpt2", *FAMILIES])
def test_reference_attention_is_hfs_and_records_intjax_keys_and_values(models, family):
    """The reference attention function, unpatched, gives HF's own logits (so its masks, grouping and
    window are HF's), and the keys and values it sees are intjax's `Activations.k` and `.v`."""
    hf_model, model = models[family]
    tokens = np.random.default_rng(5).integers(0, model.config.vocab_size, 11)
    logits, recorded = hf_patching.run(view(family, hf_model), tokens, record=True)
    np.testing.assert_allclose(logits, hf_forward(hf_model, tokens)[0], atol=1e-5, rtol=0)
    acts = jax.jit(lambda t: model.activations(t))(tokens)
    assert acts.k.shape == (model.config.n_layers, 11, model.config.n_kv_heads, model.config.d_head)
    for layer in range(model.config.n_layers):
        np.testing.assert_allclose(np.asarray(acts.k[layer]), recorded[("k", layer)].numpy(), atol=1e-5)
        np.testing.assert_allclose(np.asarray(acts.v[layer]), recorded[("v", layer)].numpy(), atol=1e-5)


# both directions on GPT-2 and on a grouped-query Llama; one each on the other families (both covered)
@pytest.mark.parametrize("family, direction", [
    ("gpt2", "noising"), ("gpt2", "denoising"), ("llama", "noising"), ("llama", "denoising"),
    ("qwen2", "denoising"), ("mistral", "noising"), ("gpt_neox", "denoising")])
def test_nie_and_pairwise_int_of_kv_components_match_torch(models, family, direction):
    """Every vertex up to pairs, with the shared prefix's keys and values reused, equals HF torch with the
    keys and values replaced in its attention; so do the NIE and pairwise INT read off them, and the run
    that recomputes the prefix. A patch inside the shared prefix changes nothing in either."""
    hf_model, model = models[family]
    rows = shared_prefix_rows(model.config.vocab_size, (9, 11, 10) if family in ("gpt2", "llama") else (9, 11))
    components = parse_components(SPECS[family], model.config)
    problem = build_problem(model, make_prompt_set(rows), components, direction=direction)
    assert problem.shared_prefix == 4
    n = len(components)
    subsets = subsets_up_to(n, 2)
    masks = subset_masks(subsets, n)
    expected = reference(family, hf_model, rows, components, masks, direction)  # [M, P]
    f = {U: expected[i] for i, U in enumerate(subsets)}
    nie_ref = np.stack([f[(i,)] - f[()] for i in range(n)], axis=1)
    in_prefix = np.array([c.name.endswith("@2") for c in components])
    assert (np.abs(nie_ref).max(axis=0)[~in_prefix] > 1e-3).all()  # every other patch moves the metric
    got_nie = nie(problem)
    np.testing.assert_allclose(got_nie, nie_ref, atol=2e-4, rtol=1e-4)
    assert np.abs(got_nie[:, in_prefix]).max(initial=0) < 1e-6
    sets, ints, _ = interactions(problem, order=2)
    int_ref = np.stack([f[T] - f[(T[0],)] - f[(T[1],)] + f[()] for T in sets], axis=1)
    np.testing.assert_allclose(ints, int_ref, atol=3e-4, rtol=1e-4)
    whole = build_problem(model, make_prompt_set(rows), components, direction=direction, shared_prefix=False)
    np.testing.assert_allclose(evaluate(whole, masks), evaluate(problem, masks), atol=2e-5, rtol=1e-5)
    print(f"{family} {direction}: max |NIE - torch| = {np.abs(got_nie - nie_ref).max():.1e}, "
          f"max |INT - torch| = {np.abs(ints - int_ref).max():.1e}")


@pytest.mark.parametrize("direction, source, semantics", [("denoising", "mean", "frozen"),
                                                          ("noising", "zero", "recompute")])
def test_kv_sources_and_semantics_on_gpt2_match_torch(models, direction, source, semantics):
    """Mean and zero sources and frozen semantics (PIE) act on keys and values like on any site."""
    from test_patching import prompt_rows

    hf_model, model = models["gpt2"]
    rows = prompt_rows(model.config.vocab_size)
    components = parse_components("L1KV3,L0K1@4,L2V0,g=L0KV2+L1H0", model.config)
    problem = build_problem(model, make_prompt_set(rows), components, direction=direction, source=source,
                            semantics=semantics)
    masks = some_masks(len(components), np.random.default_rng(3))
    expected = gpt2_reference(hf_model, rows, components, masks, direction, source, semantics)
    np.testing.assert_allclose(evaluate(problem, masks), expected, atol=2e-4, rtol=1e-4)


def patched_layer(model, problem, alpha, layer):
    """intjax's z `[T, H, Dh]` at `layer` of prompt 0 under mask `alpha`, and the unpatched one."""
    d = jax.tree.map(lambda a: a[0], problem.data)
    edits = problem.layer_edits(jnp.asarray(alpha, jnp.float32), d)
    _, acts = model.run_blocks(d.resid_start[0], edits=edits, collect=True)
    _, plain = model.run_blocks(d.resid_start[0], collect=True)
    return np.asarray(acts.z[layer]), np.asarray(plain.z[layer])


def test_kv_of_a_group_moves_every_query_head_of_the_group_and_no_other(models):
    """Llama with 4 query heads on 2 key/value heads: L1KV0 changes the outputs z of query heads 0 and 1
    (both read key/value head 0) and leaves heads 2 and 3 as they were; the patched z equals the one torch
    computes with key/value head 0 replaced before the query heads are grouped onto it."""
    hf_model, model = models["llama"]
    rows = shared_prefix_rows(model.config.vocab_size, (9,))
    problem = build_problem(model, make_prompt_set(rows), parse_components("L1KV0", model.config))
    z, plain = patched_layer(model, problem, [1.0], layer=1)
    changed = np.abs(z - plain).max(axis=(0, 2))  # per query head
    assert (changed[:2] > 1e-3).all() and (changed[2:] < 1e-6).all(), changed
    hf_view = ref_llama.GPT2View(hf_model)
    _, src = hf_patching.run(hf_view, rows[0]["corrupted_ids"], record=True)
    site = ("k", 1, 0, None), ("v", 1, 0, None)
    replace = {s: (lambda cur, _, s=s: hf_patching.site_value(src, s, hf_view.d_head)) for s in site}
    _, patched = hf_patching.run(hf_view, rows[0]["clean_ids"], replace, record=True)
    n = len(rows[0]["clean_ids"])  # intjax runs the prompt padded (`padded_length`); torch at its length
    z_torch = patched[("z", 1)].numpy().reshape(n, *z.shape[1:])
    np.testing.assert_allclose(z[:n], z_torch, atol=1e-5)


def test_kv_is_not_the_head_and_a_position_restricted_kv_reaches_later_queries_only(models):
    """GPT-2: L1KV3 (what head 3 reads) and L1H3 (what head 3 writes) are different patches with
    different effects (both as torch computes them); L1KV3@5 changes head 3's z at positions 5 and
    after, and no other head's."""
    hf_model, model = models["gpt2"]
    rows = shared_prefix_rows(model.config.vocab_size, (9, 11), prefix=2)
    components = parse_components("L1KV3,L1H3", model.config)
    effects = nie(build_problem(model, make_prompt_set(rows), components))
    expected = reference("gpt2", hf_model, rows, components, np.array([[0, 0], [1, 0], [0, 1]]), "noising")
    np.testing.assert_allclose(effects, (expected[1:] - expected[:1]).T, atol=2e-4, rtol=1e-4)
    assert np.abs(effects[:, 0] - effects[:, 1]).min() > 1e-2, effects
    problem = build_problem(model, make_prompt_set(rows), parse_components("L1KV3@5", model.config))
    z, plain = patched_layer(model, problem, [1.0], layer=1)
    changed = np.abs(z - plain).max(axis=2)  # [T, H]
    assert changed[:5].max() < 1e-6 and changed[:, :3].max() < 1e-6 and (changed[5:9, 3] > 1e-4).all(), changed


# ---- attention-pattern patching on a grouped-query model, against the same reference function ----

@pytest.mark.parametrize("family, direction", [("llama", "noising"), ("mistral", "denoising")])
def test_pattern_patches_on_grouped_query_models_match_torch(models, family, direction):
    """LxHyPATTERN on query heads that share a key/value head (and, on Mistral, a sliding window): singles
    and pairs against torch with the attention weights replaced per query head."""
    hf_model, model = models[family]
    rows = shared_prefix_rows(model.config.vocab_size, (9, 11))
    components = parse_components("L1H0PATTERN,L1H1PATTERN@7,L0H3PATTERN,L2H2PATTERN@8,L1KV0@6", model.config)
    problem = build_problem(model, make_prompt_set(rows), components, direction=direction)
    masks = subset_masks(subsets_up_to(len(components), 2), len(components))
    expected = reference(family, hf_model, rows, components, masks, direction)
    got = evaluate(problem, masks)
    np.testing.assert_allclose(got, expected, atol=2e-4, rtol=1e-4)
    assert (np.abs(expected[1:1 + len(components)] - expected[:1]).max(axis=1) > 1e-3).all()
    print(f"{family} {direction} patterns: max |f - torch| = {np.abs(got - expected).max():.1e}")


# ---- names and structure --------------------------------------------------------------------------

def test_kv_component_names(models):
    cfg = models["llama"][1].config  # 4 query heads, 2 key/value heads
    assert parse_component("L2KV1", cfg).sites == (Site("k", 2, 1, None), Site("v", 2, 1, None))
    assert parse_component("L2KV1@END", cfg).sites == (Site("k", 2, 1, "END"), Site("v", 2, 1, "END"))
    assert parse_component("L0K0@3", cfg).sites == (Site("k", 0, 0, 3),)
    assert parse_component("L0V1@~S2", cfg).sites == (Site("v", 0, 1, "~S2"),)
    assert [c.name for c in parse_components("kvs", cfg)] == ["L0KV0", "L0KV1", "L1KV0", "L1KV1", "L2KV0", "L2KV1"]
    assert len(parse_components("L1KV1,L1H1,L1H1PATTERN", cfg)) == 3  # what it reads is not the head itself
    assert parse_component("g=L1KV0+L1H3", cfg).members == ("L1KV0", "L1H3")
    with pytest.raises(InputError, match=r"key/value head 2 is out of range 0..1 \(the model has 2 key/value "
                                         r"heads, each read by 2 query heads\)"):
        parse_component("L0KV2", cfg)  # a query head index, not a key/value one
    for bad in ("L0KV", "L0KVH1", "L0KV1PATTERN", "L0KK1"):
        with pytest.raises(InputError, match="cannot parse"):
            parse_component(bad, cfg)
    gpt2_cfg = models["gpt2"][1].config
    assert gpt2_cfg.n_kv_heads == gpt2_cfg.n_heads and parse_component("L0KV3", gpt2_cfg).sites[0].head == 3
    with pytest.raises(InputError, match="share sites"):
        problem_rows = shared_prefix_rows(gpt2_cfg.vocab_size, (9,))
        build_problem(models["gpt2"][1], make_prompt_set(problem_rows), parse_components("L0KV1,L0K1", gpt2_cfg))


@pytest.mark.parametrize("a, b, truth", [
    (Site("resid_pre", 3, None, 4), Site("k", 3, 0, 4), True),  # a key reads its own position's residual
    (Site("resid_pre", 3, None, 4), Site("v", 3, 0, 6), False),  # ... and no other
    (Site("k", 3, 0, 4), Site("v", 3, 0, 4), False),  # keys and values are computed side by side
    (Site("v", 3, 0, 4), Site("k", 3, 0, 4), False),
    (Site("k", 3, 0, 4), Site("pattern", 3, 1, 6), True),  # a later query's weights read the key at 4
    (Site("k", 3, 0, 6), Site("pattern", 3, 1, 4), False),  # causal: an earlier query never does
    (Site("v", 3, 0, 4), Site("pattern", 3, 1, 6), False),  # the weights are not computed from the values
    (Site("v", 3, 0, 4), Site("z", 3, 1, 6), True),  # ... but z weighs them
    (Site("v", 3, 0, 6), Site("z", 3, 1, 4), False),
    (Site("k", 3, 0, 4), Site("mlp_out", 3, None, 6), True),  # through z at 6
    (Site("v", 3, 0, 4), Site("pattern", 4, 1, 6), True),  # through layer 3's z and layer 4's keys
    (Site("z", 3, 1, 4), Site("k", 3, 0, 4), False),  # z comes after the keys
    (Site("mlp_out", 2, None, 4), Site("k", 3, 0, 6), False),  # the key at 6 reads the residual at 6 only
    (Site("mlp_out", 2, None, 4), Site("v", 3, 0, 4), True),
    (Site("pattern", 2, 0, 4), Site("k", 3, 0, 6), False),  # layer 2's z at 4 reaches layer 3's key at 4 only
    (Site("pattern", 2, 0, 4), Site("k", 3, 0, 4), True),
])
def test_kv_sites_in_the_causal_structure(a, b, truth):
    assert site_reads(a, b, {}, 10) is truth


def test_kv_components_in_the_causal_structure(models):
    cfg = models["llama"][1].config
    kv, head, keys, values = (parse_component(c, cfg) for c in ("L1KV0@5", "L1H1@7", "L1K1@5", "L1V1@5"))
    assert reads(kv, head) and not reads(head, kv)  # a later query of the same layer reads position 5
    assert not reads(keys, values) and not reads(values, keys)
    assert not reads(parse_component("L1KV0@8", cfg), head)  # position 8 is after the query at 7
