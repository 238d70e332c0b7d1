"""intjax's GPT-2 against HuggingFace's: logits and every layer's residual stream."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import intjax
from conftest import hf_forward, save_hf_gpt2

TOL = 1e-5


def assert_parity(model, hf_model, tokens):
    logits, acts = jax.jit(lambda t: model(t))(tokens)
    ref_logits, ref_hidden = hf_forward(hf_model, tokens)
    np.testing.assert_allclose(np.asarray(logits), ref_logits, atol=TOL, rtol=0)
    L = model.config.n_layers
    np.testing.assert_allclose(np.asarray(acts.resid_pre), ref_hidden[:L], atol=TOL, rtol=0)
    # HF's last hidden state has the final LayerNorm applied.
    from intjax.model import layer_norm

    final = layer_norm(acts.resid_post[-1], model.lnf_w, model.lnf_b, model.config.layer_norm_eps)
    np.testing.assert_allclose(np.asarray(final), ref_hidden[L], atol=TOL, rtol=0)
    return float(np.abs(np.asarray(logits) - ref_logits).max())


@pytest.mark.parametrize("length", [1, 2, 7, 32])
def test_logits_and_residuals_match_hf(tiny, tiny_model, length):
    folder, hf_model = tiny
    model, _ = tiny_model
    tokens = np.random.default_rng(length).integers(0, model.config.vocab_size, length)
    assert_parity(model, hf_model, tokens)


NON_DEFAULT = {
    "layer_norm_epsilon": dict(layer_norm_epsilon=1e-2),
    "n_inner": dict(n_inner=40),
    "gelu": dict(activation_function="gelu"),
    "relu": dict(activation_function="relu"),
    "quick_gelu": dict(activation_function="quick_gelu"),
    "gelu_fast": dict(activation_function="gelu_fast"),
    "silu": dict(activation_function="silu"),
    "no_attn_scale": dict(scale_attn_weights=False),
    "inverse_layer_idx": dict(scale_attn_by_inverse_layer_idx=True),
    "untied": dict(tie_word_embeddings=False),
    "one_head_one_layer": dict(n_head=1, n_layer=1),
}


@pytest.mark.parametrize("name", sorted(NON_DEFAULT))
def test_non_default_config_matches_hf(tmp_path, name):
    hf_model = save_hf_gpt2(tmp_path, seed=1, with_tokenizer=False, **NON_DEFAULT[name])
    model, _ = intjax.load_model(tmp_path, tokenizer=False)
    tokens = np.random.default_rng(0).integers(0, model.config.vocab_size, 19)
    assert_parity(model, hf_model, tokens)


def test_parameter_count_matches_hf(tiny, tiny_model):
    assert tiny_model[0].n_params() == tiny[1].num_parameters()


@pytest.mark.slow
def test_gpt2_small_shape_matches_hf(tmp_path):
    """The real gpt2 config, random weights at GPT-2's init scale (prints the max logit error)."""
    hf_model = save_hf_gpt2(
        tmp_path, with_tokenizer=False, std=0.02, vocab_size=50257, n_positions=1024,
        n_embd=768, n_layer=12, n_head=12,
    )
    model, _ = intjax.load_model(tmp_path, tokenizer=False)
    rng = np.random.default_rng(0)
    for length in (1, 15, 64):
        err = assert_parity(model, hf_model, rng.integers(0, 50257, length))
        print(f"gpt2-small shape, length {length}: max |logit error| = {err:.2e}")
