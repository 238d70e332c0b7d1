"""`load_model`: one call from a folder or hub id to (model, tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp

from intjax.errors import ConfigError, LoadError
from intjax.loading.gpt2 import gpt2_config_from_hf, gpt2_from_state_dict
from intjax.loading.gpt_neox import neox_config_from_hf, neox_from_state_dict
from intjax.loading.llama import LLAMA_TYPES, llama_config_from_hf, llama_from_state_dict
from intjax.loading.resolve import resolve_model_dir
from intjax.loading.tokenizer import load_tokenizer
from intjax.loading.weights import read_flax_msgpack, read_safetensors
from intjax.model.decoder import Decoder
from intjax.model.protocol import ModelConfig
from intjax.runtime import enable_compilation_cache

# config.json model_type -> (config translation, state dict conversion): the one line a family adds here
LOADERS = {
    "gpt2": (gpt2_config_from_hf, gpt2_from_state_dict),
    **{model_type: (llama_config_from_hf, llama_from_state_dict) for model_type in LLAMA_TYPES},
    "gpt_neox": (neox_config_from_hf, neox_from_state_dict),
}
MODEL_TYPES = tuple(LOADERS)  # the config.json model_type values intjax loads


def _model_type(hf: dict) -> str:
    return hf.get("model_type", "gpt2")


def config_from_hf(hf: dict, *, strict: bool = True) -> ModelConfig:
    """Translate a config.json dict of a family intjax implements (`MODEL_TYPES`, GPT-2 when it names
    none) to its family's config; unknown or unsupported keys raise ConfigError. With `strict=False`,
    keys intjax has never heard of are ignored instead of refused."""
    model_type = _model_type(hf)
    if not isinstance(model_type, str) or model_type not in LOADERS:
        raise ConfigError(
            f"model_type {model_type!r} is not implemented; intjax loads {list(MODEL_TYPES)}: the GPT-2 "
            "family (gpt2, gpt2-medium/large/xl, distilgpt2, GPT2LMHeadModel fine-tunes), the Llama "
            "family (Llama 2/3, Qwen2/2.5, Mistral) and GPT-NeoX (Pythia)"
        )
    return LOADERS[model_type][0](hf, strict=strict)


def read_config(folder: Path) -> dict:
    """The parsed config.json of a model folder."""
    try:
        return json.loads((folder / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise LoadError(f"{folder / 'config.json'} is not valid JSON: {e}") from e


def read_state_dict(folder: Path) -> dict:
    """All weight tensors of a HF folder: single or sharded safetensors, else Flax msgpack."""
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        return read_safetensors(single)
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        state: dict = {}
        for shard in shards:
            if not (folder / shard).is_file():
                raise LoadError(f"shard {shard} listed in {index} is missing; download it again")
            state.update(read_safetensors(folder / shard))
        return state
    return read_flax_msgpack(folder / "flax_model.msgpack")


def load_model(
    name_or_path: str | Path,
    *,
    dtype=jnp.float32,
    tokenizer: bool = True,
    strict_config: bool = True,
    revision: str | None = None,
):
    """Load a model: `model, tokenizer = load_model("gpt2" or "/path")`.

    `name_or_path` is a local folder in HuggingFace layout, the name of a model
    shipped with intjax, or a hub id (downloaded and cached as HF caches). The
    family follows config.json's model_type: `gpt2` gives a `GPT2`; `llama`,
    `qwen2`, `mistral` and `gpt_neox` give a `Llama`. Weights stored in bfloat16 or float16
    are converted to `dtype` (float32 by default; `dtype=jnp.bfloat16` computes
    in bfloat16, with norms, RoPE angles and softmax in float32 as HF does).

    Also turns on JAX's persistent compilation cache (`runtime.enable_compilation_cache`: in
    ~/.cache/intjax/xla, or $INTJAX_COMPILATION_CACHE; "off" leaves it off), unless a cache
    folder is already set, so a second process reuses the compiled programs.
    """
    if jax.config.jax_compilation_cache_dir is None:
        enable_compilation_cache()
    folder = resolve_model_dir(name_or_path, revision=revision)
    hf = read_config(folder)
    config = config_from_hf(hf, strict=strict_config)
    model: Decoder = LOADERS[_model_type(hf)][1](read_state_dict(folder), config, dtype=dtype)
    return model, (load_tokenizer(folder) if tokenizer else None)
