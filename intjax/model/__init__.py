"""The model families as pure-functional Equinox modules: GPT-2 and the Llama family (Llama, Qwen2, Mistral,
GPT-NeoX), on the shared sites, patched block and `Decoder`."""

from intjax.model.decoder import Decoder
from intjax.model.gpt2 import (
    GPT2,
    Blocks,
    GPT2Config,
    attention,
    attn_output,
    block_forward,
    keys_values,
    mlp,
)
from intjax.model.llama import Llama, LlamaBlocks, LlamaConfig
from intjax.model.primitives import ACTIVATIONS, layer_norm
from intjax.model.sites import Activations, LayerEdits, SiteEdit

__all__ = [
    "ACTIVATIONS", "GPT2Config", "GPT2", "Activations", "Blocks", "Decoder", "LayerEdits", "SiteEdit",
    "attention", "attn_output", "block_forward", "keys_values", "layer_norm", "mlp",
    "Llama", "LlamaBlocks", "LlamaConfig",
]
