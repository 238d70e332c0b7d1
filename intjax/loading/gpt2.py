"""HuggingFace GPT-2 checkpoints (`gpt2`) → `GPT2`: config.json → GPT2Config, refusing by name whatever is
not implemented, and the state dict (torch names, Conv1D layout) → the stacked weights."""

from __future__ import annotations

import re
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

from intjax.errors import ConfigError
from intjax.loading.keys import IGNORED, REFUSED_UNLESS, check_keys
from intjax.loading.weights import Tensors, to_device, unembedding
from intjax.model.gpt2 import GPT2, Blocks, GPT2Config

# config.json key -> GPT2Config field (the computation reads these).
_USED = {
    "vocab_size": "vocab_size",
    "n_positions": "n_positions",
    "n_embd": "d_model",
    "n_layer": "n_layers",
    "n_head": "n_heads",
    "layer_norm_epsilon": "layer_norm_eps",
    "activation_function": "activation",
    "scale_attn_weights": "scale_attn_weights",
    "scale_attn_by_inverse_layer_idx": "scale_attn_by_inverse_layer_idx",
    "tie_word_embeddings": "tie_word_embeddings",
}

# Keys that fix the model's shape: required, never defaulted.
_SHAPE_KEYS = ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head")

# Buffers HF stores beside the parameters (causal masks in old checkpoints).
_BUFFER = re.compile(r"^h\.\d+\.attn\.(bias|masked_bias)$")


def gpt2_config_from_hf(hf: dict[str, Any], *, strict: bool = True) -> GPT2Config:
    """Translate a GPT-2 config.json dict; unknown or unsupported keys raise ConfigError.

    With `strict=False`, keys intjax has never heard of are ignored instead of refused.
    """
    if hf.get("model_type", "gpt2") != "gpt2":
        raise ConfigError(f"model_type {hf['model_type']!r} is not GPT-2")
    check_keys(hf, set(_USED), REFUSED_UNLESS, IGNORED, ("activation_function", "gelu_new"), strict)
    missing = [key for key in _SHAPE_KEYS if key not in hf]
    if missing:  # HF would take GPT-2 small's values; a checkpoint of another shape then fails obscurely
        raise ConfigError(f"config.json of a GPT-2 model has no {', '.join(missing)}; the file is incomplete: "
                          f"add {'it' if len(missing) == 1 else 'them'} (save_pretrained writes them all)")
    kwargs = {field: hf[key] for key, field in _USED.items() if key in hf}
    n_embd = kwargs.get("d_model", GPT2Config.d_model)
    kwargs["d_mlp"] = hf.get("n_inner") or 4 * n_embd
    try:
        return GPT2Config(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config.json is not a valid GPT-2 config: {e}") from e


def _strip_prefix(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k.removeprefix("transformer."): v for k, v in state.items()}


def gpt2_from_state_dict(
    state: Mapping[str, np.ndarray], config: GPT2Config, dtype=jnp.float32
) -> GPT2:
    """Build GPT2 from a HF GPT-2 state dict (torch names, Conv1D [in, out] layout)."""
    L, H, D, M = config.n_layers, config.n_heads, config.d_model, config.d_mlp
    Dh = config.d_head
    tensors = Tensors(_strip_prefix(dict(state)), f"config: {L} layers, d_model={D}")
    take = tensors.take

    def stack(fmt: str, shape: tuple[int, ...]) -> np.ndarray:
        return tensors.stack(fmt, shape, L)

    c_attn_w = stack("h.{}.attn.c_attn.weight", (D, 3 * D))  # [L, D, 3D]
    c_attn_b = stack("h.{}.attn.c_attn.bias", (3 * D,))
    W_q, W_k, W_v = np.split(c_attn_w, 3, axis=-1)
    b_q, b_k, b_v = np.split(c_attn_b, 3, axis=-1)

    def heads_in(w):  # [L, D, H*Dh] -> [L, H, D, Dh]
        return w.reshape(L, D, H, Dh).transpose(0, 2, 1, 3)

    def heads_b(b):  # [L, H*Dh] -> [L, H, Dh]
        return b.reshape(L, H, Dh)

    blocks = dict(
        ln1_w=stack("h.{}.ln_1.weight", (D,)),
        ln1_b=stack("h.{}.ln_1.bias", (D,)),
        W_Q=heads_in(W_q), b_Q=heads_b(b_q),
        W_K=heads_in(W_k), b_K=heads_b(b_k),
        W_V=heads_in(W_v), b_V=heads_b(b_v),
        W_O=stack("h.{}.attn.c_proj.weight", (D, D)).reshape(L, H, Dh, D),
        b_O=stack("h.{}.attn.c_proj.bias", (D,)),
        ln2_w=stack("h.{}.ln_2.weight", (D,)),
        ln2_b=stack("h.{}.ln_2.bias", (D,)),
        W_in=stack("h.{}.mlp.c_fc.weight", (D, M)),
        b_in=stack("h.{}.mlp.c_fc.bias", (M,)),
        W_out=stack("h.{}.mlp.c_proj.weight", (M, D)),
        b_out=stack("h.{}.mlp.c_proj.bias", (D,)),
    )
    W_E = take("wte.weight", (config.vocab_size, D))
    W_pos = take("wpe.weight", (config.n_positions, D))
    lnf_w, lnf_b = take("ln_f.weight", (D,)), take("ln_f.bias", (D,))
    W_U = unembedding(tensors, W_E, config.tie_word_embeddings, "wte.weight")

    tensors.check_all_used(_BUFFER, "a plain GPT-2 LM checkpoint")

    def arr(a):
        return to_device(a, dtype)

    return GPT2(
        config=config,
        W_E=arr(W_E),
        W_pos=arr(W_pos),
        blocks=Blocks(**{k: arr(v) for k, v in blocks.items()}),
        lnf_w=arr(lnf_w),
        lnf_b=arr(lnf_b),
        W_U=None if W_U is None else arr(W_U),
    )
