"""GPT-2 as a pure-functional Equinox module."""

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

__all__ = [
    "ACTIVATIONS", "GPT2Config", "GPT2", "Activations", "Blocks", "LayerEdits", "SiteEdit",
    "attention", "attn_output", "block_forward", "keys_values", "layer_norm", "mlp",
]
