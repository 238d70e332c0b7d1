"""The Llama family (llama, qwen2, mistral) and GPT-NeoX against HuggingFace: logits, every layer's residual,
attention patterns, config refusals, bf16 weights, and the patch engine against a torch hook loop."""

from __future__ import annotations

import json
import shutil
from typing import NamedTuple, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hf_patching_llama as ref
import intjax
from conftest import hf_forward, save_tokenizer
from intjax.errors import ConfigError, InputError, LoadError
from intjax.estimands import interactions, nie
from intjax.model.llama import Llama, check_edits, norm, rms_norm
from intjax.patching import build_problem, evaluate, make_prompt_set, parse_components
from intjax.cli import main as cli_main

TOL = 1e-5
N_POSITIONS = 24
BASE = dict(vocab_size=120, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
            max_position_embeddings=N_POSITIONS, bos_token_id=0, eos_token_id=0)
# One checkpoint per family, each with what sets it apart: grouped-query attention and llama3 RoPE
# scaling (untied); q/k/v biases and a tied unembedding; one key/value head and a sliding window
# shorter than the longest prompt; GPT-NeoX's parallel residual and RoPE on a quarter of each head.
FAMILIES = {
    "llama": dict(num_key_value_heads=2, rope_parameters=dict(
        rope_type="llama3", rope_theta=10000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
        original_max_position_embeddings=8)),
    "qwen2": dict(num_key_value_heads=2, tie_word_embeddings=True),
    "mistral": dict(num_key_value_heads=1, sliding_window=6),
    "gpt_neox": dict(rotary_pct=0.25),
}


def hf_classes(family):
    import transformers

    name = {"llama": "Llama", "qwen2": "Qwen2", "mistral": "Mistral", "gpt_neox": "GPTNeoX"}[family]
    return getattr(transformers, f"{name}Config"), getattr(transformers, f"{name}ForCausalLM")


def save_hf_llama(folder, family="llama", *, seed=0, std=0.1, with_tokenizer=False, **overrides):
    """Save a random HF model of `family` into `folder`; returns the torch model (eval mode, eager
    attention). Every parameter (biases included) is drawn from N(0, std), norm weights from N(1, 2·std)."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    kwargs = {**BASE, **FAMILIES[family], **overrides}
    if family == "gpt_neox":
        kwargs.pop("num_key_value_heads", None)
    if with_tokenizer:
        kwargs["vocab_size"] = save_tokenizer(folder, kwargs["vocab_size"])
    config_cls, model_cls = hf_classes(family)
    config = config_cls(**kwargs)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            norm = name.endswith("norm.weight")
            p.copy_(torch.randn_like(p) * (2 * std if norm else std) + float(norm))
    model.save_pretrained(folder)
    return model


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """family -> (folder, torch model, intjax model) of the tiny random checkpoints."""
    out = {}
    for family in FAMILIES:
        folder = tmp_path_factory.mktemp(family)
        hf_model = save_hf_llama(folder, family, with_tokenizer=True)
        out[family] = folder, hf_model, intjax.load_model(folder, tokenizer=False)[0]
    return out


def assert_parity(model, hf_model, tokens, tol=TOL, with_pattern=False):
    """Logits, every layer's input residual and the final normed residual equal HF's; returns the max logit
    error (and the attention pattern, `with_pattern`)."""
    logits, acts = jax.jit(lambda t: model(t, with_pattern=with_pattern))(tokens)
    ref_logits, ref_hidden = hf_forward(hf_model, tokens)
    L = model.config.n_layers
    np.testing.assert_allclose(np.asarray(logits), ref_logits, atol=tol, rtol=0)
    np.testing.assert_allclose(np.asarray(acts.resid_pre), ref_hidden[:L], atol=tol, rtol=0)
    final = norm(model.config, acts.resid_post[-1], model.lnf_w, model.lnf_b)
    np.testing.assert_allclose(np.asarray(final), ref_hidden[L], atol=tol, rtol=0)
    err = float(np.abs(np.asarray(logits) - ref_logits).max())
    return (err, np.asarray(acts.pattern)) if with_pattern else err


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_logits_residuals_and_patterns_match_hf(checkpoints, family):
    import torch

    _, hf_model, model = checkpoints[family]
    assert isinstance(model, Llama) and model.config.model_type == family
    rng = np.random.default_rng(0)
    assert_parity(model, hf_model, rng.integers(0, model.config.vocab_size, 1))
    tokens = rng.integers(0, model.config.vocab_size, N_POSITIONS)
    _, pattern = assert_parity(model, hf_model, tokens, with_pattern=True)  # pattern [L, T, H, K]
    with torch.no_grad():
        attn = hf_model(torch.tensor(tokens[None]), output_attentions=True).attentions
    np.testing.assert_allclose(pattern, np.stack([a[0].numpy().transpose(1, 0, 2) for a in attn]), atol=TOL)


def test_parameter_count_matches_hf(checkpoints):
    for _, hf_model, model in checkpoints.values():
        assert model.n_params() == hf_model.num_parameters()


NON_DEFAULT = {
    "linear_rope_theta_eps": ("llama", dict(rope_parameters=dict(rope_type="linear", rope_theta=500000.0, factor=2.0),
                                            rms_norm_eps=1e-2)),
    "dynamic_rope": ("llama", dict(rope_parameters=dict(rope_type="dynamic", rope_theta=10000.0, factor=2.0))),
    "yarn_rope": ("llama", dict(rope_parameters=dict(rope_type="yarn", rope_theta=10000.0, factor=4.0,
                                                     original_max_position_embeddings=8))),
    "biases_gelu_tied": ("llama", dict(attention_bias=True, mlp_bias=True, tie_word_embeddings=True,
                                       hidden_act="gelu")),
    "head_dim_no_gqa": ("llama", dict(head_dim=8, num_key_value_heads=4)),
    "qwen2_sliding_layers_untied_mqa": ("qwen2", dict(use_sliding_window=True, sliding_window=3, max_window_layers=1,
                                                      tie_word_embeddings=False, num_key_value_heads=1)),
    "mistral_no_window": ("mistral", dict(sliding_window=None, head_dim=24)),
    "neox_sequential_half_rotary_no_bias": ("gpt_neox", dict(use_parallel_residual=False, rotary_pct=0.5,
                                                             attention_bias=False, layer_norm_eps=1e-2)),
    "neox_full_rotary_tied_relu": ("gpt_neox", dict(rotary_pct=1.0, tie_word_embeddings=True, hidden_act="relu")),
}


@pytest.mark.parametrize("name", sorted(NON_DEFAULT))
def test_non_default_config_matches_hf(tmp_path, name):
    family, overrides = NON_DEFAULT[name]
    hf_model = save_hf_llama(tmp_path, family, seed=1, num_hidden_layers=2, **overrides)
    model, _ = intjax.load_model(tmp_path, tokenizer=False)
    tokens = np.random.default_rng(0).integers(0, model.config.vocab_size, N_POSITIONS)
    assert_parity(model, hf_model, tokens)


def test_pre_v5_config_keys_match_hf(checkpoints, tmp_path):
    """An older config.json (rope_theta and rope_scaling with "type" at the top level) gives the logits
    HF computes from the same file."""
    from transformers import AutoModelForCausalLM

    folder = shutil.copytree(checkpoints["llama"][0], tmp_path / "old")
    cfg = json.loads((folder / "config.json").read_text())
    del cfg["rope_parameters"]
    cfg.update(rope_theta=20000.0, rope_scaling={"type": "linear", "factor": 3.0}, torch_dtype="float32")
    (folder / "config.json").write_text(json.dumps(cfg))
    hf_model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    model, _ = intjax.load_model(folder, tokenizer=False)
    assert (model.config.rope_type, model.config.rope_theta) == ("linear", 20000.0)
    assert_parity(model, hf_model, np.arange(N_POSITIONS) % 50)


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2"])
def test_keys_left_out_take_hfs_defaults(family):
    """A config.json that leaves out the keys with family-specific defaults reads as HF's config class does."""
    from intjax.loading import config_from_hf

    minimal = dict(model_type=family, vocab_size=100, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                   num_attention_heads=32)
    for extra in ({}, dict(use_sliding_window=True, max_window_layers=1)) if family == "qwen2" else ({},):
        cfg = config_from_hf({**minimal, **extra})
        hf = hf_classes(family)[0](**{k: v for k, v in {**minimal, **extra}.items() if k != "model_type"})
        assert cfg.n_positions == hf.max_position_embeddings
        assert cfg.n_kv_heads == hf.num_key_value_heads
        assert cfg.rope_theta == hf.rope_parameters["rope_theta"] and cfg.norm_eps == hf.rms_norm_eps
        assert cfg.tie_word_embeddings == hf.tie_word_embeddings
        types = getattr(hf, "layer_types", None) or ["sliding_attention"] * 3
        window = getattr(hf, "sliding_window", None)
        expected = tuple(window if t == "sliding_attention" and window else 0 for t in types)
        assert tuple(cfg.windows()) == expected


def test_pre_v5_gpt_neox_config_keys_match_hf(checkpoints, tmp_path):
    """Pythia's config.json keys (rotary_pct, rotary_emb_base at the top level) give HF's logits."""
    from transformers import AutoModelForCausalLM

    folder = shutil.copytree(checkpoints["gpt_neox"][0], tmp_path / "old")
    cfg = json.loads((folder / "config.json").read_text())
    del cfg["rope_parameters"]
    cfg.update(rotary_pct=0.5, rotary_emb_base=20000, torch_dtype="float32")
    (folder / "config.json").write_text(json.dumps(cfg))
    hf_model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    model, _ = intjax.load_model(folder, tokenizer=False)
    assert (model.config.rotary_dims, model.config.rope_theta) == (8, 20000.0)
    assert_parity(model, hf_model, np.arange(N_POSITIONS) % 50)


def write_config(folder, **changes):
    cfg = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    (folder / "config.json").write_text(json.dumps(cfg))


LLAMA3 = dict(rope_type="llama3", rope_theta=10000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(rope_parameters=dict(rope_type="longrope", rope_theta=1e4, factor=2.0)), "rope type 'longrope'"),
        (dict(rope_parameters=dict(LLAMA3, partial_rotary_factor=0.5)), "partial_rotary_factor=0.5"),
        (dict(partial_rotary_factor=0.5), "partial_rotary_factor=0.5"),
        (dict(rope_parameters=dict(LLAMA3, beta_fast=3)), r"rope parameters \['beta_fast'\]"),
        (dict(rope_parameters=dict(rope_type="linear", rope_theta=1e4)), r"needs \['factor'\]"),
        (dict(hidden_act="swiglu_7"), "hidden_act='swiglu_7'"),
        (dict(my_new_attention=True), r"keys intjax does not know: \['my_new_attention'\]"),
        (dict(num_key_value_heads=3), "not a multiple of num_key_value_heads=3"),
        (dict(hidden_size=None), "has no 'hidden_size'"),
    ],
)
def test_unsupported_config_is_refused_by_name(checkpoints, tmp_path, changes, message):
    folder = shutil.copytree(checkpoints["llama"][0], tmp_path / "m")
    write_config(folder, **changes)
    with pytest.raises(ConfigError, match=message):
        intjax.load_model(folder)


def test_bad_qwen2_layer_types_and_lenient_keys(checkpoints, tmp_path):
    folder = shutil.copytree(checkpoints["qwen2"][0], tmp_path / "q")
    write_config(folder, use_sliding_window=True, sliding_window=4, layer_types=["full_attention", "chunked"])
    with pytest.raises(ConfigError, match="layer_types must list"):
        intjax.load_model(folder, tokenizer=False)
    write_config(folder, use_sliding_window=False, my_note="hello")
    assert intjax.load_model(folder, tokenizer=False, strict_config=False)[0].config.layer_windows == ()


def edit_weights(folder, fn):
    from safetensors.numpy import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    fn(state)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def test_weights_that_do_not_match_the_config(checkpoints, tmp_path):
    folder = shutil.copytree(checkpoints["llama"][0], tmp_path / "a")
    edit_weights(folder, lambda s: s.update({"model.layers.0.self_attn.q_proj.bias": np.ones(64, np.float32)}))
    with pytest.raises(LoadError, match="tensors intjax does not know.*attention_bias"):
        intjax.load_model(folder)
    edit_weights(folder, lambda s: s.update({"model.layers.0.self_attn.rotary_emb.inv_freq": np.ones(8, np.float32)}))
    with pytest.raises(LoadError, match=r"tensors intjax does not know: \['model.layers.0.self_attn.q_proj.bias'\]"):
        intjax.load_model(folder)  # an old checkpoint's inv_freq buffer is known, the bias is not
    folder = shutil.copytree(checkpoints["qwen2"][0], tmp_path / "b")
    edit_weights(folder, lambda s: s.pop("model.layers.2.self_attn.k_proj.bias"))
    with pytest.raises(LoadError, match="no tensor 'model.layers.2.self_attn.k_proj.bias'"):
        intjax.load_model(folder)
    folder = shutil.copytree(checkpoints["mistral"][0], tmp_path / "c")
    write_config(folder, num_key_value_heads=2)
    with pytest.raises(LoadError, match=r"k_proj.weight' has shape \(16, 64\), expected \(32, 64\)"):
        intjax.load_model(folder)


def test_bf16_weights_load_in_float32_and_compute_in_bf16(checkpoints, tmp_path):
    """bf16 safetensors load as float32 by default (HF's logits from the same bf16 weights upcast,
    to 1e-5); `dtype=jnp.bfloat16` computes in bfloat16 (compared with HF's bf16 forward)."""
    import torch

    hf_model = checkpoints["llama"][1]
    hf16 = save_hf_llama(tmp_path, "llama").to(torch.bfloat16)
    hf16.save_pretrained(tmp_path)
    model, _ = intjax.load_model(tmp_path, tokenizer=False)
    assert model.W_E.dtype == jnp.float32
    hf32 = save_hf_llama(tmp_path / "ref", "llama")
    hf32.load_state_dict({k: v.float() for k, v in hf16.state_dict().items()})
    tokens = np.random.default_rng(3).integers(0, 120, N_POSITIONS)
    assert_parity(model, hf32, tokens)
    model16, _ = intjax.load_model(tmp_path, tokenizer=False, dtype=jnp.bfloat16)
    logits16 = np.asarray(model16(tokens)[0], np.float32)
    with torch.no_grad():
        ref16 = hf16(torch.tensor(tokens[None])).logits[0].float().numpy()
        ref32 = hf32(torch.tensor(tokens[None])).logits[0].numpy()
    # bfloat16 compute strays from the float32 logits about as far as HF's bfloat16 run does
    hf_error, error = np.abs(ref16 - ref32).max(), np.abs(logits16 - ref32).max()
    assert 0 < error < 2 * hf_error, (error, hf_error)
    assert hf_model is not hf16


def test_float64_is_float64_throughout(checkpoints, x64):
    """Loaded in float64 (as the theorem checks run), norms and softmax stay in float64: GPT-NeoX's logits
    at position 0 equal HF's float64 ones to 1e-12 (HF's softmax, and Llama's RMSNorm, run in float32
    even in a float64 model, so elsewhere they agree to float32's 1e-6), RMSNorm is float64's, and
    attention rows sum to 1 to float64 rounding. RoPE's angles are float32 in both, as HF's."""
    import copy

    import torch

    folder, hf_model, _ = checkpoints["gpt_neox"]
    model, _ = intjax.load_model(folder, tokenizer=False, dtype=jnp.float64)
    tokens = np.random.default_rng(4).integers(0, model.config.vocab_size, N_POSITIONS)
    with torch.no_grad():
        ref64 = copy.deepcopy(hf_model).double()(torch.tensor(tokens[None])).logits[0].numpy()
    logits, acts = model(tokens, with_pattern=True)
    assert logits.dtype == jnp.float64 and acts.pattern.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(logits[0]), ref64[0], atol=1e-12, rtol=0)
    np.testing.assert_allclose(np.asarray(logits), ref64, atol=1e-6, rtol=0)
    x = np.asarray(acts.resid_post[-1])
    expected = x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(np.asarray(rms_norm(jnp.asarray(x), jnp.ones(x.shape[-1]), 1e-6)), expected,
                               atol=1e-13, rtol=0)
    assert np.abs(np.asarray(acts.pattern).sum(-1) - 1).max() < 1e-12


class EditsWithPattern(NamedTuple):
    """LayerEdits with a pattern site (the engine's, as it grows) and a kind no family applies."""

    resid_pre: Optional[object] = None
    pattern: Optional[object] = None
    z: Optional[object] = None
    mlp_out: Optional[object] = None
    keys: Optional[object] = None


def test_edits_of_other_site_kinds_are_refused():
    check_edits(EditsWithPattern(z=1, pattern=1))
    with pytest.raises(InputError, match=r"not \['keys'\]"):
        check_edits(EditsWithPattern(keys=1))


def test_pattern_edit_weighs_the_values(checkpoints):
    """A pattern edit replaces the attention weights of the masked (query, head) rows before they weigh
    the values: one-hot on key 0 makes those heads' z the value at position 0 of their key/value head."""
    from intjax.model.gpt2 import SiteEdit
    from intjax.model.llama import block_forward, keys_values

    model = checkpoints["mistral"][2]  # one key/value head, a sliding window
    cfg, T = model.config, 9
    resid = jax.jit(lambda t: model.activations(t))(np.arange(T) + 3).resid_pre[1]
    p = jax.tree.map(lambda a: a[1], model.blocks)
    window = jnp.asarray(cfg.windows()[1])
    mask = jnp.zeros((T, cfg.n_heads)).at[5:, 2].set(1.0)
    source = jnp.zeros((T, cfg.n_heads, T)).at[:, :, 0].set(1.0)
    edits = EditsWithPattern(pattern=SiteEdit(mask, source))
    _, acts = block_forward(cfg, p, window, resid, edits, with_pattern=True)
    _, plain = block_forward(cfg, p, window, resid, None, with_pattern=True)
    v = keys_values(cfg, p, resid)[1]
    np.testing.assert_allclose(acts.z[5:, 2], jnp.broadcast_to(v[0, 0], (T - 5, cfg.d_head)), atol=1e-6)
    np.testing.assert_allclose(acts.pattern[5:, 2], source[5:, 2], atol=0)
    keep = np.ones((T, cfg.n_heads), bool)
    keep[5:, 2] = False
    np.testing.assert_allclose(np.asarray(acts.z)[keep], np.asarray(plain.z)[keep], atol=1e-6)


def test_bad_tokens(checkpoints):
    model = checkpoints["llama"][2]
    with pytest.raises(InputError, match="outside the vocabulary"):
        model(np.array([1, model.config.vocab_size]))
    with pytest.raises(InputError, match=f"n_positions={N_POSITIONS}"):
        model(np.zeros(N_POSITIONS + 1, np.int32))


# ---- the patch engine, unchanged, against one torch run per patch -----------------------------------

# Heads sharing a key/value group (L0H0, L0H1), a head at a position, an MLP, a residual, a group and
# a layer's attention at a position; a shorter list for the other two families.
SPECS = {
    "llama": "L0H1,L0H0,L1H3@7,L2MLP,L1MLP@6,L1RESID@7,grp=L0H2+L2H3,L1ATTN@8",
    "qwen2": "L0H1,L1H0@7,L1MLP,grp=L0H3+L2RESID@6",
    "mistral": "L0H0,L2H3,L1MLP@7,L1RESID@8",
    "gpt_neox": "L0H1,L1H0@7,L1MLP,grp=L0MLP+L2H2@6",
}


def shared_prefix_rows(vocab, lengths=(9, 11, 10), prefix=4, seed=0):
    """Prompt pairs whose clean and corrupted tokens agree on the first `prefix` positions."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in lengths:
        clean = rng.integers(0, vocab, n)
        corrupted = np.concatenate([clean[:prefix], rng.integers(0, vocab, n - prefix)])
        rows.append(dict(clean_ids=clean.tolist(), corrupted_ids=corrupted.tolist(),
                         target_id=int(rng.integers(vocab)), foil_id=int(rng.integers(vocab))))
    return rows


@pytest.fixture(scope="module")
def patching(checkpoints):
    """family -> (rows, components, problem built with the shared prefix reused)."""
    out = {}
    for family, (_, _, model) in checkpoints.items():
        rows = shared_prefix_rows(model.config.vocab_size, (9, 11, 10) if family == "llama" else (9, 11))
        components = parse_components(SPECS[family], model.config)
        out[family] = rows, components, build_problem(model, make_prompt_set(rows), components)
    return out


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_nie_and_pairwise_int_match_torch_hook_loop(checkpoints, patching, family):
    """Every vertex up to pairs from the chunked evaluator (the shared prefix's keys and values reused)
    equals HF torch with explicit hooks, and so do the NIE and pairwise INT read off them."""
    from intjax.estimands.mobius import subset_masks, subsets_up_to

    hf_model = checkpoints[family][1]
    rows, components, problem = patching[family]
    n = len(components)
    assert problem.shared_prefix == 4
    subsets = subsets_up_to(n, 2)
    expected = ref.reference_values(hf_model, rows, components, subset_masks(subsets, n))  # [M, P]
    f = {U: expected[i] for i, U in enumerate(subsets)}
    nie_ref = np.stack([f[(i,)] - f[()] for i in range(n)], axis=1)
    assert (np.abs(nie_ref).max(axis=0) > 1e-3).all()  # every component's patch changes the metric
    np.testing.assert_allclose(nie(problem), nie_ref, atol=2e-4, rtol=1e-4)
    sets, ints, values = interactions(problem, order=2)
    int_ref = np.stack([f[T] - f[(T[0],)] - f[(T[1],)] + f[()] for T in sets], axis=1)
    np.testing.assert_allclose(ints, int_ref, atol=3e-4, rtol=1e-4)
    for U, v in values.items():
        np.testing.assert_allclose(v, f[U], atol=2e-4, rtol=1e-4)


def test_shared_prefix_and_scan_path_give_the_same_values(checkpoints, patching):
    """Fractional masks: the chunked evaluator with the shared prefix reused, without it, the
    differentiable scan path and the torch hook loop agree."""
    hf_model, model = checkpoints["llama"][1:]
    rows, components, problem = patching["llama"]
    masks = np.random.default_rng(1).uniform(0, 1, (4, len(components))) * (np.arange(4) > 0)[:, None]
    got = evaluate(problem, masks)
    whole = build_problem(model, make_prompt_set(rows), components, shared_prefix=False)
    assert whole.shared_prefix == 0
    np.testing.assert_allclose(evaluate(whole, masks), got, atol=2e-5, rtol=1e-5)
    scan = eqx.filter_jit(lambda p, a: jax.vmap(p)(a))(problem, jnp.asarray(masks, jnp.float32))
    np.testing.assert_allclose(np.asarray(scan), got, atol=2e-5, rtol=1e-5)
    np.testing.assert_allclose(got, ref.reference_values(hf_model, rows, components, masks), atol=2e-4, rtol=1e-4)


def test_prefix_keys_are_rotated_at_their_positions(checkpoints):
    """keys_values of a prefix equals the keys the full run computes there (RoPE at the true positions),
    and a layer entered after the prefix gives the full run's residuals."""
    from intjax.model.llama import keys_values

    model = checkpoints["llama"][2]
    tokens = np.random.default_rng(2).integers(0, model.config.vocab_size, 12)
    acts = jax.jit(lambda t: model.activations(t))(tokens)
    S = 5
    k, v = jax.jit(lambda r: model.keys_values(r))(acts.resid_pre[:, :S])
    p = jax.tree.map(lambda a: a[1], model.blocks)
    k_full, v_full = keys_values(model.config, p, acts.resid_pre[1])
    np.testing.assert_allclose(k[1], k_full[:S], atol=1e-6)
    np.testing.assert_allclose(v[1], v_full[:S], atol=1e-6)
    after = jax.jit(lambda i, r, kv: model.layer(i, r, prefix_kv=kv))
    for layer in range(model.config.n_layers):
        out = after(layer, acts.resid_pre[layer, S:], (k[layer], v[layer]))
        np.testing.assert_allclose(out, acts.resid_post[layer, S:], atol=1e-5)


def test_cli_info_and_patch_run_on_a_llama_checkpoint(checkpoints, tmp_path, capsys):
    folder, hf_model, model = checkpoints["qwen2"]
    assert cli_main(["info", "--model", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "model_type: qwen2" in out and "n_kv_heads: 2" in out and out.count("d_head:") == 1
    assert f"parameters: {hf_model.num_parameters():,}" in out
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in shared_prefix_rows(model.config.vocab_size, (8, 9))))
    code = cli_main(["patch", "--model", str(folder), "--data", str(data), "--components", "L0H1,L2MLP",
                     "--direction", "noising", "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 0
    values = np.load(tmp_path / "out" / "values.npz")
    assert values.files and all(np.isfinite(values[k]).all() for k in values.files)


def test_text_prompts_with_a_tokenizer_that_adds_bos(tmp_path):
    """Llama and Mistral tokenizers put BOS before every encoding: prompts keep it, and a one-word target
    or foil still reads as one token."""
    from tokenizers import Tokenizer, processors

    save_tokenizer(tmp_path)
    tok = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    tok.add_special_tokens(["<s>"])
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    prompts = make_prompt_set([dict(clean="When Mary and John went", corrupted="When John and Mary went",
                                    target=" Mary", foil=" John")], tok)
    assert prompts.clean[0][0] == bos and prompts.target[0] == tok.encode(" Mary", add_special_tokens=False).ids[0]


REALISTIC = {  # the hub configs with fewer layers, random weights at the init scale
    "llama-3.2-1b": ("llama", dict(
        vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=2, num_attention_heads=32,
        num_key_value_heads=8, head_dim=64, max_position_embeddings=131072, rms_norm_eps=1e-5,
        tie_word_embeddings=True, rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=32.0,
                                                       low_freq_factor=1.0, high_freq_factor=4.0,
                                                       original_max_position_embeddings=8192))),
    "qwen2.5-0.5b": ("qwen2", dict(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=2, num_attention_heads=14,
        num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6, tie_word_embeddings=True,
        rope_parameters=dict(rope_type="default", rope_theta=1000000.0))),
    # Mistral-7B-v0.1: grouped-query attention (32 query heads on 8 key/value heads of 128) and a 4096-token
    # sliding window (longer than the prompts here), the full vocabulary
    "mistral-7b": ("mistral", dict(
        vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=2, num_attention_heads=32,
        num_key_value_heads=8, head_dim=128, max_position_embeddings=32768, rms_norm_eps=1e-5, sliding_window=4096,
        tie_word_embeddings=False, rope_parameters=dict(rope_type="default", rope_theta=10000.0))),
    "pythia-160m": ("gpt_neox", dict(
        vocab_size=50304, hidden_size=768, intermediate_size=3072, num_hidden_layers=4, num_attention_heads=12,
        max_position_embeddings=2048, rotary_pct=0.25, layer_norm_eps=1e-5, tie_word_embeddings=False)),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REALISTIC))
def test_realistic_shape_matches_hf(tmp_path, name):
    """Llama-3.2-1B's, Qwen2.5-0.5B's, Mistral-7B's and Pythia-160M's configs with 2 to 4 layers (prints the
    max logit error). Tolerance 2e-5: at d_model=2048 one float32 matmul alone differs from float64 by ~5e-6 in XLA
    and in torch (their sums run in different orders), and logits reach ~5; the measured max is 1.3e-5.
    Mistral-7B's shape (d_model 4096, d_mlp 14336; 15 GB peak, 2 to 4 minutes on 2 cores) gets 1e-4, not 2e-5: there
    one float32 matmul of 14336 inputs differs from float64 by 3.8e-5 in XLA and in torch's matmul (1.8e-5 in
    torch's linear, which HF's layers call), and residuals reach 12. Measured (length 1, the worst): logits
    |intjax - HF| 2.9e-5, |intjax - float64 HF| 2.6e-5, |HF - float64 HF| 1.0e-5; the residual after layer 0
    5.0e-5, 3.9e-5 and 2.3e-5: float32 rounding in both, XLA's sums rounding more than torch's linear."""
    family, overrides = REALISTIC[name]
    hf_model = save_hf_llama(tmp_path, family, std=0.02, **overrides)
    model, _ = intjax.load_model(tmp_path, tokenizer=False)
    rng = np.random.default_rng(0)
    tol = 1e-4 if name == "mistral-7b" else 2e-5
    for length in (1, 17, 128):
        err = assert_parity(model, hf_model, rng.integers(0, model.config.vocab_size, length), tol=tol)
        print(f"{name} shape ({model.config.n_layers} layers), length {length}: max |logit error| = {err:.2e}")
