"""The model's own contract: vmap, one compile per shape, consistent activations."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from conftest import hf_forward


def test_vmap_equals_one_sequence_at_a_time(tiny_model):
    model, _ = tiny_model
    batch = np.random.default_rng(0).integers(0, model.config.vocab_size, (5, 9))
    logits_b, acts_b = jax.vmap(model)(batch)
    for i, seq in enumerate(batch):
        logits, acts = model(seq)
        np.testing.assert_allclose(logits_b[i], logits, atol=1e-5, rtol=0)
        np.testing.assert_allclose(acts_b.z[i], acts.z, atol=1e-5, rtol=0)


def test_batched_logits_match_hf(tiny, tiny_model):
    model, _ = tiny_model
    batch = np.random.default_rng(1).integers(0, model.config.vocab_size, (3, 11))
    logits_b, _ = jax.jit(jax.vmap(model))(batch)
    for i, seq in enumerate(batch):
        np.testing.assert_allclose(logits_b[i], hf_forward(tiny[1], seq)[0], atol=1e-5, rtol=0)


def test_jit_compiles_once_per_shape(tiny_model):
    model, _ = tiny_model
    f = jax.jit(jax.vmap(lambda t: model(t)[0]))
    rng = np.random.default_rng(2)
    for _ in range(3):
        f(rng.integers(0, model.config.vocab_size, (4, 6)))
    assert f._cache_size() == 1
    f(rng.integers(0, model.config.vocab_size, (4, 7)))
    assert f._cache_size() == 2


def test_activation_shapes_and_identities(tiny_model):
    model, _ = tiny_model
    cfg = model.config
    T = 10
    tokens = np.random.default_rng(3).integers(0, cfg.vocab_size, T)
    _, acts = model(tokens, with_pattern=True)
    L, H, D, Dh = cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head
    for name in ("resid_pre", "attn_out", "resid_mid", "mlp_out", "resid_post"):
        assert getattr(acts, name).shape == (L, T, D), name
    assert acts.z.shape == (L, T, H, Dh)
    assert acts.pattern.shape == (L, T, H, T)  # query, head, key
    np.testing.assert_allclose(acts.resid_mid, acts.resid_pre + acts.attn_out, atol=1e-5)
    np.testing.assert_allclose(acts.resid_post, acts.resid_mid + acts.mlp_out, atol=1e-5)
    np.testing.assert_allclose(acts.resid_post[:-1], acts.resid_pre[1:], atol=0)
    # attn_out is the sum over heads of z through W_O, plus the bias (a plain loop).
    for l in range(L):
        expected = np.asarray(model.blocks.b_O[l]).copy()
        for h in range(H):
            expected = expected + np.asarray(acts.z[l, :, h]) @ np.asarray(model.blocks.W_O[l, h])
        np.testing.assert_allclose(acts.attn_out[l], expected, atol=1e-5)
    # attention is causal and normalised
    pattern = np.asarray(acts.pattern).transpose(0, 2, 1, 3)  # [L, H, query, key]
    np.testing.assert_allclose(pattern.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.triu(pattern, k=1) == 0)
    _, no_pattern = model(tokens)
    assert no_pattern.pattern is None


def test_float64_model_matches_float32(tiny):
    import intjax

    jax.config.update("jax_enable_x64", True)
    try:
        m64, _ = intjax.load_model(tiny[0], dtype=jnp.float64, tokenizer=False)
        m32, _ = intjax.load_model(tiny[0], tokenizer=False)
        tokens = np.arange(12) % m32.config.vocab_size
        l64, _ = m64(tokens)
        assert l64.dtype == jnp.float64
        np.testing.assert_allclose(l64, m32(tokens)[0], atol=1e-4)
    finally:
        jax.config.update("jax_enable_x64", False)
