"""HuggingFace GPT-NeoX checkpoints (`gpt_neox`: Pythia, GPT-NeoX-20B) → `Llama` with GPT-NeoX's switches
(LayerNorm, plain MLP, partial rotary, parallel residual), refusing by name what is not implemented."""

from __future__ import annotations

import re
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

from intjax.errors import ConfigError
from intjax.loading.keys import IGNORED, REFUSED_UNLESS, check_keys
from intjax.loading.llama import rope_config
from intjax.loading.weights import Tensors, to_device, unembedding
from intjax.model.llama import Llama, LlamaBlocks, LlamaConfig

# config.json keys the computation reads.
_USED = {
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
    "max_position_embeddings", "layer_norm_eps", "tie_word_embeddings", "use_parallel_residual",
    "rope_parameters", "rope_scaling", "rotary_pct", "rotary_emb_base", "attention_bias",
}
# Dropout, the classifier head's dropout and bookkeeping do not change an inference forward pass.
_IGNORED = IGNORED | {"attention_dropout", "hidden_dropout", "classifier_dropout", "rope_type"}
# Buffers older checkpoints store beside the parameters.
_BUFFER = re.compile(r"^gpt_neox\.layers\.\d+\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)$")


def neox_config_from_hf(hf: dict[str, Any], *, strict: bool = True) -> LlamaConfig:
    """Translate a GPT-NeoX config.json dict (HF's defaults where keys are left out); unknown or
    unsupported keys raise ConfigError. With `strict=False`, unknown keys are ignored."""
    if hf.get("model_type") != "gpt_neox":
        raise ConfigError(f"model_type {hf.get('model_type')!r} is not gpt_neox")
    check_keys(hf, _USED, REFUSED_UNLESS, _IGNORED, ("hidden_act", "gelu"), strict)
    try:
        d_model, n_heads = int(hf["hidden_size"]), int(hf["num_attention_heads"])
        if d_model % n_heads:
            raise ValueError(f"hidden_size={d_model} is not divisible by num_attention_heads={n_heads}")
        d_head = d_model // n_heads
        theta, rope_type, scaling, partial = rope_config(hf, partial_default=0.25)
        bias = bool(hf.get("attention_bias", True))
        return LlamaConfig(
            model_type="gpt_neox",
            vocab_size=int(hf["vocab_size"]),
            n_positions=int(hf.get("max_position_embeddings", 2048)),
            d_model=d_model,
            n_layers=int(hf["num_hidden_layers"]),
            n_heads=n_heads,
            n_kv_heads=n_heads,
            d_head=d_head,
            d_mlp=int(hf["intermediate_size"]),
            norm_eps=float(hf.get("layer_norm_eps", 1e-5)),
            activation=hf.get("hidden_act", "gelu"),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
            qkv_bias=bias,
            o_bias=bias,
            mlp_bias=True,
            rope_theta=theta,
            rope_type=rope_type,
            rope_scaling=scaling,
            norm="layer",
            gated_mlp=False,
            rotary_dim=int(d_head * partial),
            parallel_residual=bool(hf.get("use_parallel_residual", True)),
        )
    except KeyError as e:
        raise ConfigError(f"config.json of a gpt_neox model has no {e.args[0]!r}; the file is incomplete") from e
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config.json is not a valid gpt_neox config: {e}") from e


def neox_from_state_dict(state: Mapping[str, np.ndarray], config: LlamaConfig, dtype=jnp.float32) -> Llama:
    """Build the model from a HF GPT-NeoX state dict (fused query_key_value, per head [q, k, v])."""
    L, H, D, M, Dh = config.n_layers, config.n_heads, config.d_model, config.d_mlp, config.d_head
    tensors = Tensors(dict(state), f"config: gpt_neox, {L} layers, d_model={D}")

    def stack(name: str, shape: tuple[int, ...]) -> np.ndarray:
        return tensors.stack("gpt_neox.layers.{}." + name, shape, L)

    qkv = stack("attention.query_key_value.weight", (3 * D, D)).reshape(L, H, 3, Dh, D).transpose(0, 2, 1, 4, 3)
    blocks = dict(
        ln1_w=stack("input_layernorm.weight", (D,)),
        ln1_b=stack("input_layernorm.bias", (D,)),
        W_Q=qkv[:, 0], W_K=qkv[:, 1], W_V=qkv[:, 2],  # each [L, H, D, Dh]
        W_O=stack("attention.dense.weight", (D, D)).transpose(0, 2, 1).reshape(L, H, Dh, D),
        ln2_w=stack("post_attention_layernorm.weight", (D,)),
        ln2_b=stack("post_attention_layernorm.bias", (D,)),
        W_up=stack("mlp.dense_h_to_4h.weight", (M, D)).transpose(0, 2, 1),
        b_up=stack("mlp.dense_h_to_4h.bias", (M,)),
        W_down=stack("mlp.dense_4h_to_h.weight", (D, M)).transpose(0, 2, 1),
        b_down=stack("mlp.dense_4h_to_h.bias", (D,)),
    )
    if config.qkv_bias:
        b = stack("attention.query_key_value.bias", (3 * D,)).reshape(L, H, 3, Dh)
        blocks.update(b_Q=b[:, :, 0], b_K=b[:, :, 1], b_V=b[:, :, 2],
                      b_O=stack("attention.dense.bias", (D,)))
    W_E = tensors.take("gpt_neox.embed_in.weight", (config.vocab_size, D))
    lnf_w = tensors.take("gpt_neox.final_layer_norm.weight", (D,))
    lnf_b = tensors.take("gpt_neox.final_layer_norm.bias", (D,))
    W_U = unembedding(tensors, W_E, config.tie_word_embeddings, "gpt_neox.embed_in.weight", "embed_out.weight")
    tensors.check_all_used(_BUFFER, "a plain gpt_neox causal-LM checkpoint (or its config.json leaves out "
                           "attention_bias)")
    return Llama(
        config=config,
        W_E=to_device(W_E, dtype),
        blocks=LlamaBlocks(**{k: to_device(v, dtype) for k, v in blocks.items()}),
        lnf_w=to_device(lnf_w, dtype),
        lnf_b=to_device(lnf_b, dtype),
        W_U=None if W_U is None else to_device(W_U, dtype),
    )
