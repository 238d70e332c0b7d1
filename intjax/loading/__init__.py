"""Loading HuggingFace checkpoints (GPT-2, the Llama family, GPT-NeoX) and tokenizers."""

from intjax.loading.gpt2 import gpt2_from_state_dict
from intjax.loading.load import MODEL_TYPES, config_from_hf, load_model, read_config, read_state_dict
from intjax.loading.resolve import embedded_models, resolve_model_dir
from intjax.loading.tokenizer import load_tokenizer

__all__ = [
    "MODEL_TYPES", "config_from_hf", "load_model", "read_config", "read_state_dict",
    "embedded_models", "resolve_model_dir", "load_tokenizer", "gpt2_from_state_dict",
]
