"""The model families as pure-functional Equinox modules: GPT-2 and the Llama family (Llama, Qwen2, Mistral)."""

from intjax.model.config import ACTIVATIONS, GPT2Config
from intjax.model.gpt2 import (
    GPT2,
    Activations,
    Blocks,
    LayerEdits,
    SiteEdit,
    attention,
    attn_output,
    block_forward,
    keys_values,
    layer_norm,
    mlp,
)
from intjax.model.llama import Llama, LlamaBlocks, LlamaConfig

__all__ = [
    "ACTIVATIONS", "GPT2Config", "GPT2", "Activations", "Blocks", "LayerEdits", "SiteEdit",
    "attention", "attn_output", "block_forward", "keys_values", "layer_norm", "mlp",
    "Llama", "LlamaBlocks", "LlamaConfig",
]
