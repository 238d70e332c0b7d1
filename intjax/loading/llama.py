"""HuggingFace Llama-family checkpoints (`llama`, `qwen2`, `mistral`) → `Llama`, refusing by name
every config value that changes the computation and is not implemented."""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional

import jax.numpy as jnp
import numpy as np

from intjax.errors import ConfigError
from intjax.loading.keys import IGNORED, REFUSED_UNLESS, check_keys
from intjax.loading.weights import Tensors, to_device, unembedding
from intjax.model.llama import ROPE_TYPES, Llama, LlamaBlocks, LlamaConfig

# config.json keys the computation reads (translated in `llama_config_from_hf`).
_USED = {
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "hidden_act", "max_position_embeddings", "rms_norm_eps",
    "tie_word_embeddings", "attention_bias", "mlp_bias", "rope_theta", "rope_scaling", "rope_parameters",
    "sliding_window", "use_sliding_window", "max_window_layers", "layer_types", "partial_rotary_factor",
}

# Keys that change the computation, and the only values intjax accepts.
_REFUSED_UNLESS = {
    **REFUSED_UNLESS,
    "use_mrope": False,
}

# Keys that do not change an inference forward pass: dropout, init, tensor-parallel slicing
# (pretraining_tp splits the same matmuls), generation and bookkeeping.
_IGNORED = IGNORED | {"attention_dropout", "pretraining_tp", "rope_type", "mlp_dropout"}

# Per-model keys the rope scaling types read (others in the dict are refused by name).
_ROPE_KEYS = {
    "default": set(),
    "dynamic": {"factor"},
    "linear": {"factor"},
    "llama3": {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"},
    "yarn": {"factor", "original_max_position_embeddings", "attention_factor", "beta_fast", "beta_slow",
             "mscale", "mscale_all_dim", "truncate"},
}

# HF's defaults where config.json leaves a key out, per family (the keys every family defaults alike
# are read with their default in place).
_DEFAULTS = {
    "llama": dict(max_position_embeddings=2048, num_key_value_heads=None, sliding_window=None),
    "qwen2": dict(max_position_embeddings=32768, num_key_value_heads=32, sliding_window=4096),
    "mistral": dict(max_position_embeddings=4096 * 32, num_key_value_heads=8, sliding_window=4096),
}

LLAMA_TYPES = tuple(_DEFAULTS)  # the model_type values this loader reads

# Buffers older checkpoints store beside the parameters.
_BUFFER = re.compile(r"^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$")


def rope_config(hf: dict[str, Any], partial_default: Optional[float] = None,
                ) -> tuple[float, str, tuple[tuple[str, Any], ...], float]:
    """(rope_theta, rope type, scaling numbers, partial_rotary_factor) from `rope_parameters`
    (transformers ≥ 5) or the older `rope_theta` + `rope_scaling` (GPT-NeoX: `rotary_emb_base`,
    `rotary_pct`). A partial factor other than 1 is refused unless `partial_default` is given (the
    family implements partial rotary and that is its default)."""
    params = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
    if any(isinstance(v, dict) for v in params.values()):
        raise ConfigError(f"config.json has per-layer-type rope parameters {sorted(params)}, which intjax "
                          "does not implement for the Llama family")
    theta = float(params.pop("rope_theta", hf.get("rope_theta", hf.get("rotary_emb_base", 10000.0))))
    kind = params.pop("rope_type", None) or params.pop("type", None) or "default"
    params.pop("type", None)
    if kind not in ROPE_TYPES:
        raise ConfigError(f"config.json sets rope type {kind!r}, which intjax does not implement; "
                          f"implemented: {list(ROPE_TYPES)}")
    partial = params.pop("partial_rotary_factor", hf.get("rotary_pct", hf.get("partial_rotary_factor")))
    if partial_default is None and partial not in (None, 1, 1.0):
        raise ConfigError(f"config.json sets partial_rotary_factor={partial!r}, which intjax does not implement "
                          f"for model_type {hf.get('model_type')!r} (only 1.0)")
    partial = float(partial if partial is not None else partial_default or 1.0)
    if kind in ("llama3", "yarn"):
        params.setdefault("original_max_position_embeddings", hf["max_position_embeddings"])
    unknown = sorted(set(params) - _ROPE_KEYS[kind])
    if unknown:
        raise ConfigError(f"config.json's rope parameters {unknown} are not read by rope type {kind!r} in "
                          "intjax; remove them or use a checkpoint without them")
    missing = sorted(k for k in _ROPE_KEYS[kind] if k in ("factor", "low_freq_factor", "high_freq_factor")
                     and params.get(k) is None)
    if missing:
        raise ConfigError(f"rope type {kind!r} needs {missing} in config.json's rope parameters")
    return theta, kind, tuple(sorted(params.items())), partial


def _windows(hf: dict[str, Any], model_type: str, n_layers: int) -> tuple[int, ...]:
    """Per-layer sliding-window sizes (0: full attention), as HF's model of `model_type` applies them."""
    window = hf.get("sliding_window")
    if model_type == "llama":
        return ()
    if model_type == "mistral":
        return () if window is None else (int(window),) * n_layers
    # qwen2: a window only with use_sliding_window, on the layers layer_types names (by default
    # those from max_window_layers on)
    if not hf.get("use_sliding_window", False) or window is None:
        return ()
    types = hf.get("layer_types") or [
        "sliding_attention" if i >= hf.get("max_window_layers", 28) else "full_attention" for i in range(n_layers)
    ]
    bad = sorted(set(types) - {"full_attention", "sliding_attention"})
    if bad or len(types) != n_layers:
        raise ConfigError(f"config.json's layer_types must list 'full_attention' or 'sliding_attention' for each "
                          f"of the {n_layers} layers; got {types}")
    return tuple(int(window) if t == "sliding_attention" else 0 for t in types)


def llama_config_from_hf(hf: dict[str, Any], *, strict: bool = True) -> LlamaConfig:
    """Translate a Llama / Qwen2 / Mistral config.json dict; unknown or unsupported keys raise ConfigError.

    With `strict=False`, keys intjax has never heard of are ignored instead of refused.
    """
    model_type = hf.get("model_type")
    if model_type not in _DEFAULTS:
        raise ConfigError(f"model_type {model_type!r} is not in the Llama family {list(_DEFAULTS)}")
    check_keys(hf, _USED, _REFUSED_UNLESS, _IGNORED, ("hidden_act", "silu"), strict)
    hf = {**_DEFAULTS[model_type], **hf}
    act = hf.get("hidden_act", "silu")
    try:
        d_model, n_heads = int(hf["hidden_size"]), int(hf["num_attention_heads"])
        n_layers = int(hf["num_hidden_layers"])
        theta, rope_type, scaling, _ = rope_config(hf)
        attention_bias = bool(hf.get("attention_bias", False))
        return LlamaConfig(
            model_type=model_type,
            vocab_size=int(hf["vocab_size"]),
            n_positions=int(hf["max_position_embeddings"]),
            d_model=d_model,
            n_layers=n_layers,
            n_heads=n_heads,
            n_kv_heads=int(hf.get("num_key_value_heads") or n_heads),
            d_head=int(hf.get("head_dim") or d_model // n_heads),
            d_mlp=int(hf["intermediate_size"]),
            norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            activation=act,
            tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
            qkv_bias=model_type == "qwen2" or (model_type == "llama" and attention_bias),
            o_bias=model_type == "llama" and attention_bias,
            mlp_bias=model_type == "llama" and bool(hf.get("mlp_bias", False)),
            rope_theta=theta,
            rope_type=rope_type,
            rope_scaling=scaling,
            layer_windows=_windows(hf, model_type, n_layers),
        )
    except KeyError as e:
        raise ConfigError(f"config.json of a {model_type} model has no {e.args[0]!r}; the file is incomplete") from e
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config.json is not a valid {model_type} config: {e}") from e


def llama_from_state_dict(state: Mapping[str, np.ndarray], config: LlamaConfig, dtype=jnp.float32) -> Llama:
    """Build `Llama` from a HF Llama-family state dict (torch Linear weights, `[out, in]`)."""
    L, H, K, D, M, Dh = (config.n_layers, config.n_heads, config.n_kv_heads, config.d_model, config.d_mlp,
                         config.d_head)
    tensors = Tensors(dict(state), f"config: {config.model_type}, {L} layers, d_model={D}")

    def stack(name: str, shape: tuple[int, ...]) -> np.ndarray:
        return tensors.stack("model.layers.{}." + name, shape, L)

    def heads_in(name: str, n: int) -> np.ndarray:  # [L, n*Dh, D] -> [L, n, D, Dh]
        return stack(name, (n * Dh, D)).reshape(L, n, Dh, D).transpose(0, 1, 3, 2)

    def bias(name: str, shape: tuple[int, ...], present: bool):
        return stack(name, shape) if present else None

    blocks = dict(
        ln1_w=stack("input_layernorm.weight", (D,)),
        W_Q=heads_in("self_attn.q_proj.weight", H),
        W_K=heads_in("self_attn.k_proj.weight", K),
        W_V=heads_in("self_attn.v_proj.weight", K),
        W_O=stack("self_attn.o_proj.weight", (D, H * Dh)).transpose(0, 2, 1).reshape(L, H, Dh, D),
        ln2_w=stack("post_attention_layernorm.weight", (D,)),
        W_gate=stack("mlp.gate_proj.weight", (M, D)).transpose(0, 2, 1),
        W_up=stack("mlp.up_proj.weight", (M, D)).transpose(0, 2, 1),
        W_down=stack("mlp.down_proj.weight", (D, M)).transpose(0, 2, 1),
        b_Q=bias("self_attn.q_proj.bias", (H * Dh,), config.qkv_bias),
        b_K=bias("self_attn.k_proj.bias", (K * Dh,), config.qkv_bias),
        b_V=bias("self_attn.v_proj.bias", (K * Dh,), config.qkv_bias),
        b_O=bias("self_attn.o_proj.bias", (D,), config.o_bias),
        b_gate=bias("mlp.gate_proj.bias", (M,), config.mlp_bias),
        b_up=bias("mlp.up_proj.bias", (M,), config.mlp_bias),
        b_down=bias("mlp.down_proj.bias", (D,), config.mlp_bias),
    )
    for name, n in (("b_Q", H), ("b_K", K), ("b_V", K)):
        if blocks[name] is not None:
            blocks[name] = blocks[name].reshape(L, n, Dh)
    W_E = tensors.take("model.embed_tokens.weight", (config.vocab_size, D))
    lnf_w = tensors.take("model.norm.weight", (D,))
    W_U = unembedding(tensors, W_E, config.tie_word_embeddings, "model.embed_tokens.weight")
    tensors.check_all_used(_BUFFER, f"a plain {config.model_type} causal-LM checkpoint (or its config.json "
                           "leaves out attention_bias / mlp_bias)")
    return Llama(
        config=config,
        W_E=to_device(W_E, dtype),
        blocks=LlamaBlocks(**{k: None if v is None else to_device(v, dtype) for k, v in blocks.items()}),
        lnf_w=to_device(lnf_w, dtype),
        W_U=None if W_U is None else to_device(W_U, dtype),
    )
